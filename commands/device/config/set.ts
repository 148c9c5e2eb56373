import { DoorctlCommand } from '../../../src/cli/base-command.js'
import { targetFlags } from '../../../src/cli/flags.js'
import { UnsupportedError, UsageError } from '../../../src/types/errors.js'
import { followMovedDevice } from '../../../src/ops/settings-plan.js'

export default class DeviceConfigSet extends DoorctlCommand {
  static override description = "Change settings in a section of devices' configuration"
  static override usage = 'device config set SECTION KEY=VALUE... [DEVICES...] [--all] [--tag T]'
  static override examples = [
    'doorctl device config set smartface faceThre=6 tempDetecEnable=1 door-1',
    'doorctl device config set perpara unlockOuttime=5 --tag lobby',
    `doorctl device config set json '{"cmd":"getVersion"}' door-1`,
  ]
  static override strict = false
  static override flags = { ...targetFlags }

  async run() {
    const { argv, flags } = await this.parse(DeviceConfigSet)
    const [section, ...rest] = argv as string[]
    if (!section) throw new UsageError('name the SECTION to change', 'doorctl device config set SECTION KEY=VALUE… DEVICE…')
    const values: Record<string, unknown> = {}
    const names: string[] = []
    for (const a of rest) {
      if (section === 'json' && a.trimStart().startsWith('{')) {
        try {
          Object.assign(values, JSON.parse(a))
        } catch {
          throw new UsageError(`"${a}" is not valid JSON`, `quote the JSON object: '{"key":"value"}'`)
        }
      } else if (a.includes('=')) {
        const i = a.indexOf('=')
        values[a.slice(0, i)] = a.slice(i + 1)
      } else names.push(a)
    }
    if (Object.keys(values).length === 0) throw new UsageError('nothing to set', 'give at least one KEY=VALUE')
    const devices = this.targets(names, flags)
    const known = await this.configSectionsOf(devices)
    if (!known.has(section) && section !== 'json') throw new UsageError(`unknown config section "${section}"`, `sections of these devices: ${[...known].join(', ') || 'none'}`)
    return this.operate(devices, flags, `setting ${section}`, async (d, ctx, device) => {
      if (!d.configSections().includes(section) && section !== 'json') {
        throw new UnsupportedError(`${d.protocol} devices have no config section "${section}"`, `sections: ${d.configSections().join(', ') || 'none'}`)
      }
      const r = await d.setConfig(section, values, ctx)
      if (!r.queued) await followMovedDevice(this.inventory, device.name, r.data)
      return { status: r.queued ? 'queued' : undefined, message: r.message ?? `set ${Object.keys(values).join(', ')}`, fields: { section, ...r.data } }
    })
  }
}

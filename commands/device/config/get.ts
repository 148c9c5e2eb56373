import { DoorctlCommand } from '../../../src/cli/base-command.js'
import { targetFlags } from '../../../src/cli/flags.js'
import { UnsupportedError, UsageError } from '../../../src/types/errors.js'

export default class DeviceConfigGet extends DoorctlCommand {
  static override description = "Read a section of devices' settings (openapi: network, smartface, perpara)"
  static override usage = 'device config get SECTION [DEVICES...] [--all] [--tag T]'
  static override examples = ['doorctl device config get smartface door-1', 'doorctl device config get network --all --json']
  static override strict = false
  static override flags = { ...targetFlags }

  async run() {
    const { argv, flags } = await this.parse(DeviceConfigGet)
    const [section, ...names] = argv as string[]
    if (!section) throw new UsageError('name the SECTION to read', 'doorctl device config get SECTION DEVICE… (openapi sections: network, smartface, perpara)')
    const devices = this.targets(names, flags)
    const known = await this.configSectionsOf(devices)
    if (!known.has(section)) throw new UsageError(`unknown config section "${section}"`, `sections of these devices: ${[...known].join(', ') || 'none'}`)
    const doc = await this.operate(devices, flags, `reading ${section}`, async (d, ctx) => {
      if (!d.configSections().includes(section)) throw new UnsupportedError(`${d.protocol} devices have no config section "${section}"`, `sections: ${d.configSections().join(', ') || 'none'}`)
      const config = await d.getConfig(section, ctx)
      return { message: `${Object.keys(config).length} settings`, fields: { section, config } }
    })
    if (!this.jsonEnabled()) for (const r of doc.results) if (r.config) this.log(`\n${r.device} ${section}:\n${JSON.stringify(r.config, null, 2)}`)
    return doc
  }
}

import { Flags } from '@oclif/core'
import { DoorctlCommand } from '../../../src/cli/base-command.js'
import { targetFlags } from '../../../src/cli/flags.js'
import { renderSettings } from '../../../src/cli/settings-render.js'
import { UsageError } from '../../../src/types/errors.js'
import { settingsSchemas } from '../../../src/ops/settings-file.js'
import { readSettingsOutcome } from '../../../src/ops/settings-plan.js'

export default class DeviceConfigGet extends DoorctlCommand {
  static override description = "Read devices' settings: every section, or the ones named (openapi: network, smartface, perpara)"
  static override usage = 'device config get [DEVICES...] [SECTION...] [--all] [--tag T] [--format table|csv]'
  static override examples = [
    'doorctl device config get door-1',
    'doorctl device config get door-1 smartface',
    'doorctl device config get golden --format csv > site.csv   # a settings file for `device config apply`',
    'doorctl device config get network --all --json',
  ]
  static override strict = false
  static override flags = {
    ...targetFlags,
    format: Flags.string({ description: 'table, or csv: device,section,key,value rows (a settings file); with --json the settings are in each result', options: ['table', 'csv'], default: 'table' }),
  }

  async run() {
    const { argv, flags } = await this.parse(DeviceConfigGet)
    // device names and section names, in any order (`config get SECTION DEVICE` and `config get DEVICE [SECTION]`)
    const names = (argv as string[]).filter((a) => this.inventory.get(a) !== undefined)
    const asked = (argv as string[]).filter((a) => this.inventory.get(a) === undefined)
    const devices = this.targets(names, flags)
    const known = await this.configSectionsOf(devices)
    const unknown = asked.filter((s) => !known.has(s))
    if (unknown.length > 0) throw new UsageError(`unknown device or config section: ${unknown.join(', ')}`, `devices: \`doorctl device list\`; sections of these devices: ${[...known].join(', ') || 'none'}`)
    const results = await this.spin('reading settings', async () => {
      const { runOnTargets } = await import('../../../src/ops/run.js')
      return runOnTargets(devices, this.runOptions(flags), (d, ctx) => readSettingsOutcome(d, asked, ctx))
    })
    const ok = results.every((r) => r.ok)
    if (!ok) process.exitCode = 1
    const doc = { ok, results }
    if (this.jsonEnabled()) return doc
    renderSettings(results, { format: flags.format as 'csv' | 'table', device: (n) => this.inventory.get(n)!, schemaOf: await settingsSchemas(devices), log: this.log_ })
    return doc
  }
}

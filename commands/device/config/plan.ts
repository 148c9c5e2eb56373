import { Args } from '@oclif/core'
import { DoorctlCommand } from '../../../src/cli/base-command.js'
import { answeredTargetFlags } from '../../../src/cli/flags.js'
import { devicesText, renderPlan } from '../../../src/cli/settings-render.js'
import { loadDesiredState, planSite } from '../../../src/ops/settings-provision.js'

export default class DeviceConfigPlan extends DoorctlCommand {
  static override description = 'Show what a settings file (device,section,key,value) would change on each device; nothing is written'
  static override usage = 'device config plan FILE.csv [DEVICES...] [--all] [--tag T]'
  static override examples = [
    'doorctl device config plan site.csv',
    'doorctl device config plan site.csv --tag lobby --json',
    'doorctl device config get golden --format csv > site.csv   # a door as the template',
  ]
  static override strict = false
  static override args = { file: Args.string({ description: 'settings file: device (name, tag:NAME or *),section,key,value', required: true }) }
  static override flags = { ...answeredTargetFlags }

  async run() {
    const { args, argv, flags } = await this.parse(DeviceConfigPlan)
    const state = await loadDesiredState(args.file, this.inventory, this.optionalTargets((argv as string[]).slice(1), flags))
    const { results } = await this.spin(`reading the settings of ${devicesText(state.doors.length)}`, () => planSite(state, this.runOptions(flags)))
    const ok = results.every((r) => r.ok)
    if (!ok) process.exitCode = 1
    if (!this.jsonEnabled()) renderPlan(results)
    const planned = results.filter((r) => r.status === 'ok')
    return {
      ok, file: args.file, results,
      to_change: planned.filter((r) => r.in_line === false).map((r) => r.device),
      in_line: planned.filter((r) => r.in_line === true).map((r) => r.device),
    }
  }
}

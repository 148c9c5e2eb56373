import { Args, Flags } from '@oclif/core'
import { DoorctlCommand } from '../../../src/cli/base-command.js'
import { answeredTargetFlags } from '../../../src/cli/flags.js'
import { devicesText, renderPlan } from '../../../src/cli/settings-render.js'
import { applySite, doorsToChange, loadDesiredState, planSite } from '../../../src/ops/settings-provision.js'

export default class DeviceConfigApply extends DoorctlCommand {
  static override description = 'Make devices match a settings file: send only the settings that differ, read them back'
  static override usage = 'device config apply FILE.csv [DEVICES...] [--all] [--tag T] [--yes]'
  static override examples = [
    'doorctl device config apply site.csv            # shows the plan and asks',
    'doorctl device config apply site.csv --tag lobby --yes --json',
  ]
  static override strict = false
  static override args = { file: Args.string({ description: 'settings file: device (name, tag:NAME or *),section,key,value', required: true }) }
  static override flags = {
    ...answeredTargetFlags,
    yes: Flags.boolean({ char: 'y', description: 'apply without showing the plan and asking (needed without a terminal)' }),
  }

  async run() {
    const { args, argv, flags } = await this.parse(DeviceConfigApply)
    const state = await loadDesiredState(args.file, this.inventory, this.optionalTargets((argv as string[]).slice(1), flags))
    // a script cannot answer: refuse before any device is read
    this.requireConfirmable('applying settings', '--yes', flags.yes)
    const opts = this.runOptions(flags)
    const plan = await this.spin(`reading the settings of ${devicesText(state.doors.length)}`, () => planSite(state, opts))
    const changing = doorsToChange(plan)
    if (changing.length > 0 && !flags.yes) {
      renderPlan(plan.results, process.stderr)
      const n = changing.reduce((sum, p) => sum + p.changes.length, 0)
      await this.confirm(`Apply ${n} change${n === 1 ? '' : 's'} to ${devicesText(changing.length)}?`, '--yes', false)
    }
    const results = await this.spin(`applying settings to ${devicesText(changing.length)}`, () => applySite(plan, { ...opts, inventory: this.inventory }))
    return this.finish(results, { file: args.file })
  }
}

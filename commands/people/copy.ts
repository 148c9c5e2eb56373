import { Args, Flags } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { targetFlags } from '../../src/cli/flags.js'
import { UsageError } from '../../src/types/errors.js'
import { assertKnown } from '../../src/store/inventory.js'
import { copyPeople } from '../../src/ops/people-copy.js'

export default class PeopleCopy extends DoorctlCommand {
  static override description = 'Copy the people (and face photos, where the source lists them) of one device to others, across protocols'
  static override usage = 'people copy SOURCE [TARGETS...] [--all] [--tag T] [--id ID...] [--dry-run] [--report OUT.csv]'
  static override examples = [
    'doorctl people copy old-door new-door --report copy.csv',
    'doorctl people copy lobby --tag floor-2 --dry-run',
    'doorctl people copy lobby door-7 --id 1001 --id 1002',
  ]
  static override strict = false
  static override args = { source: Args.string({ description: 'the device to read the people from', required: true }) }
  static override flags = {
    ...targetFlags,
    id: Flags.string({ description: 'copy only this person (repeatable; default: everyone on SOURCE)', multiple: true }),
    'dry-run': Flags.boolean({ description: "read the targets' people and show who would be added, updated or left unchanged; send nothing" }),
    report: Flags.string({ description: 'write one row per person per device: device,id,name,status,message' }),
  }

  async run() {
    const { args, argv, flags } = await this.parse(PeopleCopy)
    const [source] = assertKnown(this.inventory, [args.source])
    const targets = this.targets((argv as string[]).slice(1), flags).filter((d) => d.name !== source.name)
    if (targets.length === 0) throw new UsageError('no target other than the source', 'name the devices to copy to, or use --tag or --all')
    const ids = flags.id?.map((i) => i.trim()).filter((i) => i !== '')
    const verb = flags['dry-run'] ? 'comparing' : 'copying'
    // a copy counts people per target (as people import does); a dry run counts the targets compared
    const progressOpts = flags['dry-run'] ? { label: verb, devices: targets.length } : { label: verb, unit: 'people', devices: targets.length }
    const r = await this.withProgress(progressOpts, (progress) =>
      copyPeople({ source, targets, ids, dryRun: flags['dry-run'], report: flags.report, run: { ...this.runOptions(flags), progress } }),
    )
    const extra = { source: source.name, people: r.people, photos: r.photos, without_photo: r.withoutPhoto, ...(flags['dry-run'] ? { dry_run: true } : {}), report: flags.report }
    if (!this.jsonEnabled() && r.withoutPhoto > 0) process.stderr.write(`${r.withoutPhoto} people copied without their photo: ${source.protocol} people lists do not carry photos\n`)
    return this.finish(r.results, extra)
  }
}

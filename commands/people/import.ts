import { Args, Flags } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { targetFlags } from '../../src/cli/flags.js'
import { readPeopleCsv } from '../../src/ops/people-csv.js'
import { PeopleReport, syncPeople } from '../../src/ops/people-sync.js'
import { loadDriver } from '../../src/drivers/registry.js'

export default class PeopleImport extends DoorctlCommand {
  static override description = 'Add or update people (and their photos) on devices from a CSV file'
  static override usage = 'people import FILE.csv [DEVICES...] [--all] [--tag T] [--dry-run] [--report OUT.csv]'
  static override examples = [
    'doorctl people import staff.csv door-1 door-2 --report result.csv',
    'doorctl people import staff.csv --tag hq --photos-dir ./photos --dry-run',
  ]
  static override strict = false
  static override args = { file: Args.string({ description: 'CSV: id,name,card,password,phone,department,role,valid_from,valid_to,photo,room,unit', required: true }) }
  static override flags = {
    ...targetFlags,
    'dry-run': Flags.boolean({ description: 'validate everything for every target, send nothing' }),
    'photos-dir': Flags.string({ description: 'where relative photo paths are found (default: next to the CSV)' }),
    report: Flags.string({ description: 'write one row per person per device: device,id,name,status,message' }),
  }

  async run() {
    const { args, argv, flags } = await this.parse(PeopleImport)
    const devices = this.targets((argv as string[]).slice(1), flags)
    const rules = await Promise.all([...new Set(devices.map((d) => d.protocol))].map(async (p) => (await loadDriver(p)).personRules))
    const { people } = await this.spin(`checking ${args.file}`, () => readPeopleCsv(args.file, { rules, photosDir: flags['photos-dir'] }))
    if (flags['dry-run']) {
      const message = `${people.length} people valid; nothing sent (dry run)`
      return this.finish(devices.map((d) => ({ device: d.name, protocol: d.protocol, ok: true, status: 'skipped' as const, message })), { people: people.length, dry_run: true })
    }
    const report = flags.report ? new PeopleReport(flags.report) : undefined
    try {
      const results = await this.withProgress({ label: 'importing', unit: 'people', devices: devices.length }, (progress) =>
        syncPeople(devices, people, { ...this.runOptions(flags), progress }, report, (d, ctx) => d.upsertPeople(people, ctx), 'imported'),
      )
      return this.finish(results, { people: people.length, report: flags.report })
    } finally {
      await report?.close()
    }
  }
}

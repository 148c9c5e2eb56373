import { Flags } from '@oclif/core'
import { parse } from 'csv-parse/sync'
import { readFileSync } from 'node:fs'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { targetFlags } from '../../src/cli/flags.js'
import { InputError, UsageError } from '../../src/types/errors.js'
import { PeopleReport, syncPeople } from '../../src/ops/people-sync.js'

export default class PeopleDelete extends DoorctlCommand {
  static override description = 'Delete people from devices'
  static override usage = 'people delete [DEVICES...] [--all] [--tag T] (--id ID... | --from FILE.csv | --everyone --yes)'
  static override examples = ['doorctl people delete door-1 --id 1001 --id 1002', 'doorctl people delete --tag hq --from leavers.csv', 'doorctl people delete door-1 --everyone --yes']
  static override strict = false
  static override flags = {
    ...targetFlags,
    id: Flags.string({ description: 'person id (repeatable)', multiple: true }),
    from: Flags.string({ description: 'CSV file with an id column' }),
    everyone: Flags.boolean({ description: 'delete every person on the device' }),
    yes: Flags.boolean({ char: 'y', description: 'do not ask for confirmation' }),
    report: Flags.string({ description: 'write one row per person per device: device,id,name,status,message' }),
  }

  async run() {
    const { argv, flags } = await this.parse(PeopleDelete)
    const chosen = [flags.id ? '--id' : '', flags.from ? '--from' : '', flags.everyone ? '--everyone' : ''].filter(Boolean)
    if (chosen.length !== 1) throw new UsageError(chosen.length === 0 ? 'say who to delete' : `${chosen.join(' and ')} cannot be combined`, 'pass one of --id ID…, --from FILE.csv or --everyone --yes')
    const devices = this.targets(argv as string[], flags)
    const ids = flags.everyone ? 'all' : flags.id ?? readIds(flags.from!)
    if (ids === 'all') await this.confirm(`Delete EVERY person on ${devices.map((d) => d.name).join(', ')}?`, '--yes', flags.yes)
    const people = ids === 'all' ? [] : ids.map((id) => ({ id }))
    const report = flags.report ? new PeopleReport(flags.report) : undefined
    try {
      const results = await this.spin('deleting', () => syncPeople(devices, people, this.runOptions(flags), report, (d, ctx) => d.deletePeople(ids, ctx), 'deleted'))
      return this.finish(results)
    } finally {
      await report?.close()
    }
  }
}

function readIds(file: string): string[] {
  let rows: Record<string, string>[]
  try {
    rows = parse(readFileSync(file, 'utf8'), { bom: true, columns: (h: string[]) => h.map((c) => c.trim().toLowerCase()), skip_empty_lines: true, relax_column_count: true })
  } catch (err) {
    throw new InputError([{ file, message: (err as Error).message }])
  }
  if (rows.length === 0 || !('id' in rows[0])) throw new InputError([{ file, line: 1, field: 'id', message: 'needs an "id" column with at least one row' }])
  const problems = rows.flatMap((r, i) => (r.id?.trim() ? [] : [{ file, line: i + 2, field: 'id', message: 'id is empty' }]))
  if (problems.length > 0) throw new InputError(problems)
  return [...new Set(rows.map((r) => r.id.trim()))]
}

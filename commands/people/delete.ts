import { Flags } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { targetFlags } from '../../src/cli/flags.js'
import { UsageError } from '../../src/types/errors.js'
import { PeopleReport, syncPeople } from '../../src/ops/people-sync.js'
import { readIdList } from '../../src/util/id-list.js'

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
    const ids = flags.everyone ? 'all' : flags.id ?? readIdList(flags.from!, '--from')
    if (ids === 'all') await this.confirm(`Delete EVERY person on ${devices.map((d) => d.name).join(', ')}?`, '--yes', flags.yes)
    const people = ids === 'all' ? [] : ids.map((id) => ({ id }))
    const report = flags.report ? new PeopleReport(flags.report) : undefined
    try {
      const results = await this.withProgress({ label: 'deleting', unit: 'people', devices: devices.length }, (progress) =>
        syncPeople(devices, people, { ...this.runOptions(flags), progress }, report, (d, ctx) => d.deletePeople(ids, ctx), 'deleted'),
      )
      return this.finish(results)
    } finally {
      await report?.close()
    }
  }
}

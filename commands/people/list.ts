import { Flags } from '@oclif/core'
import { stringify } from 'csv-stringify/sync'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { targetFlags } from '../../src/cli/flags.js'
import { renderTable } from '../../src/cli/render.js'
import { isoInZone, isoWithOffset } from '../../src/util/time.js'
import type { PersonInfo } from '../../src/types/driver.js'

const COLUMNS = ['id', 'name', 'card', 'phone', 'department', 'role', 'valid_from', 'valid_to', 'has_photo'] as const

export default class PeopleList extends DoorctlCommand {
  static override description = 'List the people a device knows'
  static override examples = ['doorctl people list door-1', 'doorctl people list --tag hq --format csv > people.csv', 'doorctl people list door-1 --json']
  static override strict = false
  static override flags = {
    ...targetFlags,
    format: Flags.string({ description: 'output format (with --json the people are in each result)', options: ['table', 'csv', 'json'], default: 'table' }),
  }

  async run() {
    const { argv, flags } = await this.parse(PeopleList)
    const devices = this.targets(argv as string[], flags)
    const quiet = flags.format !== 'table' || this.jsonEnabled()
    const results = await this.withProgress({ label: 'reading', unit: 'people', devices: devices.length }, async (progress) => {
      const { runOnTargets } = await import('../../src/ops/run.js')
      return runOnTargets(devices, { ...this.runOptions(flags), perRequest: true, progress }, async (d, ctx, device) => {
        const people: ReturnType<typeof row>[] = []
        for await (const p of d.listPeople(ctx)) {
          people.push(row(p, device.tz))
          progress?.advance(device.name)
        }
        return { message: `${people.length} people`, fields: { count: people.length, people } }
      })
    })
    const doc = { ok: results.every((r) => r.ok), results }
    if (!doc.ok) process.exitCode = 1
    if (this.jsonEnabled()) return doc
    const all = results.flatMap((r) => ((r.people as ReturnType<typeof row>[] | undefined) ?? []).map((p) => ({ device: r.device, ...p })))
    if (flags.format === 'csv') process.stdout.write(stringify(all, { header: true, columns: ['device', ...COLUMNS], cast: { boolean: (b) => String(b) } }))
    else if (flags.format === 'json') process.stdout.write(JSON.stringify(doc, null, 2) + '\n')
    else renderTable(['DEVICE', ...COLUMNS.map((c) => c.toUpperCase())], all.map((p) => [p.device, ...COLUMNS.map((c) => p[c])]))
    for (const r of results) if (!r.ok) process.stderr.write(`${r.device}: ${r.status}: ${r.message}\n`)
    if (!quiet && all.length === 0) this.log('no people')
    return doc
  }
}

/** Validity times in the device's zone (--tz of device add), else this machine's. */
function row(p: PersonInfo, zone: string | undefined) {
  const time = (d: Date | undefined) => (!d ? '' : zone ? isoInZone(d, zone) : isoWithOffset(d))
  return {
    id: p.id, name: p.name, card: p.card, phone: p.phone, department: p.department, role: p.role,
    valid_from: time(p.validFrom), valid_to: time(p.validTo), has_photo: p.hasPhoto,
    // protocol extras (e.g. wsjson: enrolled on the device itself) in --json only; CSV keeps the CLI.md columns
    ...(p.extras && Object.keys(p.extras).length > 0 ? { extras: p.extras } : {}),
  }
}

import { createWriteStream, renameSync } from 'node:fs'
import { once } from 'node:events'
import { stringify } from 'csv-stringify'
import { openOutputTemp } from '../util/user-paths.js'
import { errorResult, runOnTargets, type RunOptions, type TargetResult } from './run.js'
import type { DeviceDriver, DeviceEntry, OperationContext, Person, PersonOutcome } from '../types/driver.js'

export const REPORT_COLUMNS = ['device', 'id', 'name', 'status', 'message'] as const

/** Per-person outcomes as the `--report OUT.csv` file has them, written as they arrive. */
export class PeopleReport {
  private readonly csv = stringify({ header: true, columns: [...REPORT_COLUMNS] })
  private readonly temp: string
  private readonly done: Promise<unknown>

  /** Opens the report before anything is sent: a report that cannot be written is a usage error (exit 2). */
  constructor(private readonly path: string) {
    const { temp, fd } = openOutputTemp(path, '--report')
    this.temp = temp
    const out = createWriteStream(this.temp, { fd })
    this.csv.pipe(out)
    this.done = once(out, 'close')
  }

  add(device: string, o: PersonOutcome): void {
    this.csv.write({ device, id: o.id, name: o.name ?? '', status: o.status, message: o.message })
  }

  async close(): Promise<void> {
    this.csv.end()
    await this.done
    renameSync(this.temp, this.path)
  }
}

export interface SyncSummary {
  outcomes: number
  byStatus: Record<string, number>
  byAction: Record<string, number>
  problems: PersonOutcome[]
}

/**
 * Runs a per-person operation (import, delete, enroll) on every target and accounts for every
 * person on every device: if a device stops half way, the people it never answered for are
 * reported as skipped with the device's error, so nobody silently goes missing.
 */
export async function syncPeople(
  devices: readonly DeviceEntry[],
  people: readonly Pick<Person, 'id' | 'name'>[],
  opts: RunOptions,
  report: PeopleReport | undefined,
  op: (driver: DeviceDriver, ctx: OperationContext) => AsyncIterable<PersonOutcome>,
  verb: string,
): Promise<TargetResult[]> {
  return runOnTargets(devices, { ...opts, perRequest: true }, async (driver, ctx, device) => {
    opts.progress?.begin(device.name, people.length > 0 ? people.length : undefined)
    const summary: SyncSummary = { outcomes: 0, byStatus: {}, byAction: {}, problems: [] }
    const answered = new Set<string>()
    const note = (o: PersonOutcome) => {
      answered.add(o.id)
      summary.outcomes++
      summary.byStatus[o.status] = (summary.byStatus[o.status] ?? 0) + 1
      if (o.action && o.status === 'ok') summary.byAction[o.action] = (summary.byAction[o.action] ?? 0) + 1
      if (o.status !== 'ok' && o.status !== 'queued') summary.problems.push(o)
      report?.add(device.name, o)
    }
    let failure: unknown
    try {
      for await (const o of op(driver, ctx)) {
        note(o)
        opts.progress?.advance(device.name)
      }
    } catch (err) {
      failure = err
    }
    if (failure !== undefined) {
      const reason = errorResult(failure)
      for (const p of people) if (!answered.has(p.id)) note({ id: p.id, name: p.name, status: 'skipped', message: `not sent: ${reason.message}` })
      throw failure
    }
    const queued = summary.byStatus.queued ?? 0
    const failed = summary.outcomes - (summary.byStatus.ok ?? 0) - queued
    const actions = Object.entries(summary.byAction).map(([a, n]) => `${n} ${a}`)
    const message = [actions.length > 0 ? actions.join(', ') : `${summary.byStatus.ok ?? 0} ${verb}`, failed > 0 ? `${failed} failed` : undefined].filter(Boolean).join(', ')
    return {
      status: failed > 0 ? 'failed' : queued > 0 ? 'queued' : 'ok',
      message,
      fields: { counts: summary.byStatus, actions: summary.byAction, problems: summary.problems },
    }
  })
}

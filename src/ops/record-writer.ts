import { once } from 'node:events'
import type { Writable } from 'node:stream'
import { stringify, type Stringifier } from 'csv-stringify'
import { isoInZone, isoWithOffset } from '../util/time.js'
import type { AccessRecord } from '../types/driver.js'

export const RECORD_FORMATS = ['csv', 'ndjson', 'json'] as const
export type RecordFormat = (typeof RECORD_FORMATS)[number]

export const BASE_RECORD_COLUMNS = ['device', 'record_id', 'time', 'user_id', 'name', 'type', 'result', 'direction', 'method'] as const

export type RecordRow = Record<string, string | number | boolean | null>

/**
 * One access record as an output row: the CLI.md columns, protocol extras, then `photo`. `zone`
 * (--tz, --utc, else the device's own --tz) renders the time with that zone's offset at the
 * record's instant; without one, the offset the device gave, else this machine's.
 */
export function recordRow(device: string, r: AccessRecord, photo: string, zone?: string): RecordRow {
  return {
    device,
    record_id: r.recordId,
    time: zone ? isoInZone(r.time, zone) : isoWithOffset(r.time, r.utcOffsetMinutes),
    user_id: r.userId,
    name: r.name,
    type: r.type,
    result: r.result,
    direction: r.direction,
    method: r.method,
    ...r.extras,
    photo,
  }
}

/**
 * Streams rows to `out` in one of the formats, honouring back-pressure so a million records
 * never pile up in memory. `json` is one array (or, embedded, a `"records"` member).
 */
export class RecordWriter {
  private readonly csv?: Stringifier
  private first = true
  count = 0

  constructor(
    private readonly out: Writable,
    readonly format: RecordFormat,
    columns: readonly string[],
  ) {
    if (format === 'csv') {
      this.csv = stringify({ header: true, columns: [...columns], cast: { boolean: (v) => (v ? 'true' : 'false') } })
      this.csv.pipe(out, { end: false })
    }
  }

  /** Opening text for json (the caller may have written a prefix of its own). */
  async begin(prefix = '['): Promise<void> {
    if (this.format === 'json') await this.raw(prefix)
  }

  async write(row: RecordRow): Promise<void> {
    this.count++
    if (this.csv) {
      if (!this.csv.write(row)) await once(this.csv, 'drain')
      return
    }
    const text = JSON.stringify(row)
    if (this.format === 'ndjson') return this.raw(text + '\n')
    const sep = this.first ? '' : ','
    this.first = false
    return this.raw(sep + '\n' + text)
  }

  /** Flushes everything written so far into `out`; does not end `out`. */
  async finish(suffix = '\n]\n'): Promise<void> {
    if (this.csv) {
      const done = once(this.csv, 'end')
      this.csv.end()
      await done
    } else if (this.format === 'json') {
      await this.raw(suffix)
    }
  }

  private async raw(text: string): Promise<void> {
    if (!this.out.write(text)) await once(this.out, 'drain')
  }
}

import { once } from 'node:events'
import type { Writable } from 'node:stream'
import { stringify } from 'csv-stringify/sync'
import { isoInZone, isoWithOffset } from '../util/time.js'
import { Utf8Batch } from '../util/utf8-batch.js'
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

/** Rows given to csv-stringify at a time: each piece of CSV text stays a small string (see Utf8Batch). */
const CSV_SLICE = 100

/**
 * Writes rows to `out` in one of the formats, a batch as one chunk (a page of a million-record
 * pull is one write, not a thousand), honouring back-pressure so the rows never pile up in
 * memory. `json` is one array (or, embedded, a `"records"` member).
 */
export class RecordWriter {
  private readonly columns: string[]
  private headerWritten = false
  private first = true
  /** Bytes per row of the last batch, to size the next one's buffer. */
  private rowBytes = 512
  /** Buffers of batches already written, to fill again: off-heap memory stays flat. */
  private readonly spare: Buffer[] = []
  count = 0

  /**
   * `reuseBuffers`: fill a batch's buffer again once `out` has written it; only for a sink that
   * is done with a chunk when it calls back (a file, a socket), not one that passes it on.
   */
  constructor(
    private readonly out: Writable,
    readonly format: RecordFormat,
    columns: readonly string[],
    private readonly opts: { reuseBuffers?: boolean } = {},
  ) {
    this.columns = [...columns]
  }

  /** Opening text for json (the caller may have written a prefix of its own). */
  async begin(prefix = '['): Promise<void> {
    if (this.format === 'json') await this.raw(prefix)
  }

  write(row: RecordRow): Promise<void> {
    return this.writeBatch([row])
  }

  /** The rows as one chunk; resolves when `out` can take more. */
  writeBatch(rows: readonly RecordRow[]): Promise<void> {
    return this.writeRows(rows.length, (i) => rows[i]!)
  }

  /**
   * Rows 0 … count-1 as one chunk, each made by `rowAt` only when its turn comes (a page's rows
   * are never all in memory at once); resolves when `out` can take more.
   */
  writeRows(count: number, rowAt: (i: number) => RecordRow): Promise<void> {
    if (count === 0) return Promise.resolve()
    this.count += count
    const batch = new Utf8Batch(Math.ceil(count * this.rowBytes * 1.25), this.spare.pop())
    if (this.format === 'csv') {
      for (let from = 0; from < count; from += CSV_SLICE) {
        // as arrays in column order: csv-stringify looks an object's fields up as paths, at a cost
        const slice: unknown[][] = []
        for (let i = from; i < Math.min(count, from + CSV_SLICE); i++) {
          const row = rowAt(i)
          slice.push(this.columns.map((c) => row[c]))
        }
        batch.add(this.csv(slice))
      }
    } else if (this.format === 'ndjson') {
      for (let i = 0; i < count; i++) batch.add(JSON.stringify(rowAt(i)) + '\n')
    } else {
      for (let i = 0; i < count; i++) {
        batch.add((this.first ? '\n' : ',\n') + JSON.stringify(rowAt(i)))
        this.first = false
      }
    }
    this.rowBytes = Math.max(64, Math.ceil(batch.byteLength / count))
    if (!this.opts.reuseBuffers) return this.raw(batch.take())
    const buffer = batch.buffer
    return this.raw(batch.take(), () => {
      if (this.spare.length < 2) this.spare.push(buffer)
    })
  }

  /** Writes what is still owed (the CSV header of an empty export, json's closing text); does not end `out`. */
  async finish(suffix = '\n]\n'): Promise<void> {
    if (this.format === 'csv' && !this.headerWritten) await this.raw(this.csv([]))
    else if (this.format === 'json') await this.raw(suffix)
  }

  private csv(rows: unknown[][]): string {
    const header = !this.headerWritten
    this.headerWritten = true
    return stringify(rows, { header, columns: this.columns, cast: { boolean: (v) => (v ? 'true' : 'false') } })
  }

  /** `written` runs once `out` is done with the chunk. */
  private raw(chunk: string | Buffer, written?: () => void): Promise<void> {
    const more = written ? this.out.write(chunk, (err) => { if (!err) written() }) : this.out.write(chunk)
    return more ? Promise.resolve() : once(this.out, 'drain').then(() => {})
  }
}

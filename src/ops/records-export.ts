import { createWriteStream, readdirSync, renameSync, statSync, unlinkSync } from 'node:fs'
import { open, writeFile } from 'node:fs/promises'
import { once } from 'node:events'
import { basename, dirname, join } from 'node:path'
import type { Writable } from 'node:stream'
import { CursorStore, type CursorEntry } from '../store/cursors.js'
import type { SharedCursors } from '../store/shared-cursors.js'
import { fsyncDir } from '../util/atomic-file.js'
import { RecordWriter, recordRow, BASE_RECORD_COLUMNS, type RecordFormat } from './record-writer.js'
import { contextFor, errorResult, mapPool, type TargetResult } from './run.js'
import { isoWithOffset } from '../util/time.js'
import { openOutputTemp, prepareOutputDir } from '../util/user-paths.js'
import { loadDriver } from '../drivers/registry.js'
import type { AccessRecord, DeviceDriver, DeviceEntry, PullQuery } from '../types/driver.js'
import type { DriverEnv } from '../types/driver-module.js'
import type { ProgressListener } from '../types/progress.js'

export interface ExportOptions {
  home: string
  env: DriverEnv
  devices: readonly DeviceEntry[]
  format: RecordFormat
  /** A file path, or '-' for `stdout`. */
  output: string
  stdout: Writable
  /** Write capture photos here as files instead of base64 in the output. */
  photosDir?: string
  sinceLast: boolean
  since?: Date
  until?: Date
  concurrency: number
  /** Per-request budget, ms. */
  timeoutMs: number
  signal: AbortSignal
  /** Ask push-style devices that can to upload every record they hold again (--repost). */
  repost?: boolean
  /** --tz ZONE / --utc: render every time in this zone rather than each device's own. */
  zone?: string
  /** For --json with records on stdout: the JSON document opens with this instead of '['. */
  jsonPrefix?: string
  /** Told of every device's start and end and of each record exported. */
  progress?: ProgressListener
  /** --since last cursors kept in a shared store (default: files in `home`). */
  cursors?: SharedCursors
}

export interface ExportResult {
  results: TargetResult[]
  total: number
  output: string
}

/**
 * `records pull`: streams every target's records into one output, oldest first per device.
 * With --since last, the per-device cursors are committed only after the output is durably in
 * place (see CursorStore), so consecutive runs export each record exactly once, kills included.
 */
export async function exportRecords(o: ExportOptions): Promise<ExportResult> {
  // before the output is opened: a driver that cannot be loaded leaves no temp file behind
  const extras = await extraColumns(o.devices)
  // an output that cannot be written is refused before any device is asked for anything
  if (o.photosDir) prepareOutputDir(o.photosDir, '--photos')
  const out = o.output !== '-' ? openOutputTemp(o.output, '--output') : undefined
  const cursors = o.cursors ?? new CursorStore(o.home)
  const recovered = await cursors.recover()
  if (recovered !== 'none') o.env.log.info(`previous interrupted pull ${recovered === 'committed' ? 'was completed' : 'was rolled back'}`)
  const previous = await cursors.read()

  const toFile = out !== undefined
  const outputPath = out?.target ?? '-'
  const temp = out?.temp
  if (out) removeStaleTemps(out.target)
  // a page's rows (~0.5 MB) go to the file while the next page is decoded
  const sink: Writable = out ? createWriteStream(out.temp, { fd: out.fd, highWaterMark: 1 << 20 }) : o.stdout

  // our own temp file is done with a chunk once it calls back
  const writer = new RecordWriter(sink, o.format, [...BASE_RECORD_COLUMNS, ...extras, 'photo'], { reuseBuffers: toFile })
  await writer.begin(o.jsonPrefix)

  const drivers = new Map<string, DeviceDriver>()
  for (const device of o.devices) drivers.set(device.name, (await loadDriver(device.protocol)).createDriver(device, o.env))
  // push-style devices upload only while a gateway runs: without serve, every target is collected at
  // once (a wait for the device's call takes no --concurrency slot), then its spool is read
  const collecting = new Map<string, Promise<unknown>>()
  for (const device of o.devices) collecting.set(device.name, collect(device, drivers.get(device.name)!, o))

  const newCursors: Record<string, CursorEntry> = {}
  const results = await mapPool(o.devices, o.concurrency, async (device): Promise<TargetResult & { count: number }> => {
    const base = { device: device.name, protocol: device.protocol }
    const ctx = contextFor(device, { signal: o.signal, timeoutMs: o.timeoutMs }, o.env.log, false)
    const driver = drivers.get(device.name)!
    // --tz/--utc, else the device's own zone, else the offset each record carries
    const zone = o.zone ?? device.tz
    const collectError = await collecting.get(device.name)
    const query: PullQuery = { since: o.since, until: o.until }
    if (o.sinceLast && previous[device.name]?.protocol === device.protocol) query.after = previous[device.name].cursor
    let count = 0
    o.progress?.begin(device.name)
    const pull = driver.pullRecords(query, ctx)
    // the position after the last batch that was completely written
    let cursor: unknown
    const remember = () => {
      if (!o.sinceLast || count === 0) return
      newCursors[device.name] = {
        protocol: device.protocol,
        cursor,
        updated_at: isoWithOffset(new Date()),
        exported_total: (previous[device.name]?.exported_total ?? 0) + count,
      }
    }
    try {
      for await (const batch of pull.batches) {
        const n = batch.length
        const files = o.photosDir ? await writePhotos(o.photosDir, device.name, batch) : undefined
        // a photo is a file name with --photos, else base64 in the row
        const photo = (r: AccessRecord, i: number): string => (files ? (files[i] ?? '') : r.photo?.length ? r.photo.toString('base64') : '')
        await writer.writeRows(n, (i) => recordRow(device.name, batch[i]!, photo(batch[i]!, i), zone))
        count += n
        cursor = pull.cursor()
        o.progress?.advance(device.name, n)
      }
      // what the device uploaded before its collection ended (a timeout, say) is exported all the same
      if (collectError !== undefined) throw collectError
      remember()
      o.progress?.end(device.name, true)
      return { ...base, ok: true, status: 'ok' as const, message: `${count} record${count === 1 ? '' : 's'}`, count }
    } catch (err) {
      // what was written is kept and its cursor committed: the next --since last run continues after it
      // (a batch that failed half way, e.g. a photo that could not be written, is not in the cursor)
      remember()
      o.progress?.end(device.name, false)
      const r = errorResult(err)
      return { ...base, ...r, message: count > 0 ? `${r.message} (after ${count} records, which were exported)` : r.message, count }
    } finally {
      ctx.dispose()
      await driver.close().catch(() => {})
    }
  })
  const total = results.reduce((n, r) => n + r.count, 0)

  if (o.format !== 'json' || !o.jsonPrefix) await writer.finish()
  if (toFile && temp) {
    const done = once(sink, 'close')
    sink.end()
    await done
    await fsyncFile(temp)
    const size = statSync(temp).size
    if (o.sinceLast) await cursors.prepare(temp, outputPath, size, newCursors)
    renameSync(temp, outputPath)
    fsyncDir(dirname(outputPath))
  }
  if (o.sinceLast) await cursors.commit(newCursors)
  return { results, total, output: outputPath }
}

/** Resolves with what went wrong collecting `device`'s records (undefined: nothing, or nothing to collect). */
async function collect(device: DeviceEntry, driver: DeviceDriver, o: ExportOptions): Promise<unknown> {
  if (!driver.collectRecords) return undefined
  const ctx = contextFor(device, { signal: o.signal, timeoutMs: o.timeoutMs }, o.env.log, false)
  try {
    await driver.collectRecords(ctx, { repost: o.repost })
    return undefined
  } catch (err) {
    return err
  } finally {
    ctx.dispose()
  }
}

async function extraColumns(devices: readonly DeviceEntry[]): Promise<string[]> {
  const cols: string[] = []
  for (const d of devices) {
    const m = await loadDriver(d.protocol)
    for (const c of m.recordExtrasFor?.(d) ?? m.recordExtras ?? []) if (!cols.includes(c)) cols.push(c)
  }
  return cols
}

async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r+')
  await fh.sync()
  await fh.close()
}

/** The batch's capture photos as files in `dir`, written together; their paths by index in the batch. */
async function writePhotos(dir: string, device: string, batch: readonly AccessRecord[]): Promise<string[]> {
  const paths: string[] = []
  const writes: Promise<void>[] = []
  batch.forEach((r, i) => {
    if (!r.photo || r.photo.length === 0) return
    paths[i] = join(dir, `${safeName(device)}_${safeName(r.recordId)}.jpg`)
    writes.push(writeFile(paths[i]!, r.photo))
  })
  await Promise.all(writes)
  return paths
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_')
}

/** Temp files of earlier runs that were killed (their pid is gone) are garbage. */
function removeStaleTemps(output: string): void {
  const prefix = `.${basename(output)}.tmp-`
  let names: string[]
  try {
    names = readdirSync(dirname(output))
  } catch {
    return
  }
  for (const n of names) {
    if (!n.startsWith(prefix)) continue
    const pid = Number(n.slice(prefix.length).split('-')[0])
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) {
      try { unlinkSync(join(dirname(output), n)) } catch { /* raced with another cleaner */ }
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

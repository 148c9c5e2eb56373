import { createWriteStream, mkdirSync, readdirSync, renameSync, statSync, unlinkSync } from 'node:fs'
import { open, writeFile } from 'node:fs/promises'
import { once } from 'node:events'
import { basename, dirname, join, resolve } from 'node:path'
import type { Writable } from 'node:stream'
import { CursorStore, type CursorEntry } from '../store/cursors.js'
import type { SharedCursors } from '../store/shared-cursors.js'
import { fsyncDir, tempPathFor } from '../util/atomic-file.js'
import { RecordWriter, recordRow, BASE_RECORD_COLUMNS, type RecordFormat } from './record-writer.js'
import { contextFor, errorResult, mapPool, type TargetResult } from './run.js'
import { loadDriver } from '../drivers/registry.js'
import type { DeviceEntry, PullQuery } from '../types/driver.js'
import type { DriverEnv } from '../types/driver-module.js'

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
  /** For --json with records on stdout: the JSON document opens with this instead of '['. */
  jsonPrefix?: string
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
  const cursors = o.cursors ?? new CursorStore(o.home)
  const recovered = await cursors.recover()
  if (recovered !== 'none') o.env.log.info(`previous interrupted pull ${recovered === 'committed' ? 'was completed' : 'was rolled back'}`)
  const previous = await cursors.read()

  const toFile = o.output !== '-'
  const outputPath = toFile ? resolve(o.output) : '-'
  let temp: string | undefined
  let sink: Writable
  if (toFile) {
    mkdirSync(dirname(outputPath), { recursive: true })
    removeStaleTemps(outputPath)
    temp = tempPathFor(outputPath)
    sink = createWriteStream(temp, { mode: 0o644 })
  } else {
    sink = o.stdout
  }
  if (o.photosDir) mkdirSync(o.photosDir, { recursive: true })

  const extras = await extraColumns(o.devices)
  const writer = new RecordWriter(sink, o.format, [...BASE_RECORD_COLUMNS, ...extras, 'photo'])
  await writer.begin(o.jsonPrefix)

  const newCursors: Record<string, CursorEntry> = {}
  const results = await mapPool(o.devices, o.concurrency, async (device): Promise<TargetResult & { count: number }> => {
    const base = { device: device.name, protocol: device.protocol }
    const ctx = contextFor(device, { signal: o.signal, timeoutMs: o.timeoutMs }, o.env.log, false)
    const driver = (await loadDriver(device.protocol)).createDriver(device, o.env)
    const query: PullQuery = { since: o.since, until: o.until }
    if (o.sinceLast && previous[device.name]?.protocol === device.protocol) query.after = previous[device.name].cursor
    let count = 0
    const pull = driver.pullRecords(query, ctx)
    const remember = () => {
      if (!o.sinceLast || count === 0) return
      newCursors[device.name] = {
        protocol: device.protocol,
        cursor: pull.cursor(),
        updated_at: new Date().toISOString(),
        exported_total: (previous[device.name]?.exported_total ?? 0) + count,
      }
    }
    try {
      for await (const r of pull.records) {
        let photo = ''
        if (r.photo && r.photo.length > 0) {
          if (o.photosDir) {
            photo = join(o.photosDir, `${safeName(device.name)}_${safeName(r.recordId)}.jpg`)
            await writeFile(photo, r.photo)
          } else {
            photo = r.photo.toString('base64')
          }
        }
        await writer.write(recordRow(device.name, r, photo))
        count++
      }
      remember()
      return { ...base, ok: true, status: 'ok' as const, message: `${count} record${count === 1 ? '' : 's'}`, count }
    } catch (err) {
      // what was written is kept and its cursor committed: the next --since last run continues after it
      remember()
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

import { stringify } from 'csv-stringify/sync'
import type { TargetResult } from '../ops/run.js'
import type { DeviceEntry, Logger } from '../types/driver.js'
import { SETTINGS_COLUMNS } from '../ops/settings-file.js'
import { settingRows } from '../ops/settings-plan.js'
import type { SettingsSchema } from '../types/settings.js'
import { settingText } from '../util/setting-values.js'
import { renderTable } from './render.js'

interface PlannedChange {
  section: string
  key: string
  current: unknown
  desired: unknown
  known: boolean
}

export function devicesText(n: number): string {
  return `${n} device${n === 1 ? '' : 's'}`
}

function text(v: unknown): string {
  const t = settingText(v)
  return t === '' ? '""' : t
}

/**
 * A settings plan for humans: per door each change as `section.key: current → desired`, then
 * the doors already in line, then the doors that could not be read.
 */
export function renderPlan(results: readonly TargetResult[], out: NodeJS.WritableStream = process.stdout): void {
  const inLine: string[] = []
  const lines: string[] = []
  for (const r of results) {
    const changes = (r.changes as PlannedChange[] | undefined) ?? []
    if (r.status === 'ok' && changes.length === 0) inLine.push(r.device)
    else if (r.status === 'ok') {
      lines.push(`${r.device} (${r.protocol}): ${r.message}`)
      for (const c of changes) lines.push(`  ${c.section}.${c.key}: ${c.known ? text(c.current) : '(unknown)'} → ${text(c.desired)}`)
    }
  }
  if (inLine.length > 0) lines.push(`already in line: ${inLine.join(', ')}`)
  for (const r of results) {
    if (r.status === 'skipped') lines.push(`${r.device} (${r.protocol}): skipped: ${r.message}`)
    else if (!r.ok) lines.push(`${r.device} (${r.protocol}): ${r.status}: ${r.message}${r.suggestion ? ` (try: ${String(r.suggestion)})` : ''}`)
  }
  out.write(lines.join('\n') + '\n')
}

type Sections = Record<string, Record<string, unknown>>

/** The settings a `config get` result carries: `sections`, or one `section` with its `config`. */
function sectionsOf(r: TargetResult): Sections {
  return (r.sections as Sections | undefined) ?? (r.config ? { [String(r.section)]: r.config as Record<string, unknown> } : {})
}

/**
 * `config get` for humans and files: csv = a settings file (device,section,key,value; the keys
 * of each protocol's table, secrets left out and said so on stderr); table = everything the
 * devices reported. Devices that failed are listed on stderr.
 */
export function renderSettings(
  results: readonly TargetResult[],
  opts: { format: 'csv' | 'table'; device: (name: string) => DeviceEntry; schemaOf: (d: DeviceEntry) => SettingsSchema; log: Logger },
): void {
  const read = results.filter((r) => r.ok)
  if (opts.format === 'csv') {
    const rows: string[][] = []
    for (const r of read) {
      const out = settingRows(r.device, opts.schemaOf(opts.device(r.device)), sectionsOf(r))
      rows.push(...out.rows)
      if (out.secrets.length > 0) opts.log.notice(`${r.device}: secret settings are not exported (${out.secrets.join(', ')}); add rows for them by hand`)
    }
    process.stdout.write(stringify(rows, { header: true, columns: [...SETTINGS_COLUMNS] }))
  } else {
    renderTable(['DEVICE', 'SECTION', 'KEY', 'VALUE'], read.flatMap((r) => Object.entries(sectionsOf(r)).flatMap(([s, kv]) => Object.entries(kv).map(([k, v]) => [r.device, s, k, settingText(v)]))))
  }
  for (const r of results) if (!r.ok) process.stderr.write(`${r.device}: ${r.status}: ${r.message}\n`)
}

import type { TargetResult } from '../core/run.js'
import { settingText } from '../util/setting-values.js'

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

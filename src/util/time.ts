import { UsageError } from '../types/errors.js'

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** "30s", "5m", "1h30m", "1500ms", or a bare number of seconds. */
export function parseDuration(text: string, flag = '--timeout'): number {
  const t = text.trim()
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000)
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy
  let total = 0
  let matched = 0
  for (let m = re.exec(t); m; m = re.exec(t)) {
    total += Number(m[1]) * UNITS[m[2]]
    matched = re.lastIndex
  }
  if (matched !== t.length || t.length === 0) {
    throw new UsageError(`${flag} "${text}" is not a duration`, `write it like 30s, 5m, 1h or 1500ms`)
  }
  return Math.round(total)
}

/** Parses an ISO 8601 date or date-time; a date alone means local midnight. */
export function parseTime(text: string, what: string): Date {
  const t = text.trim()
  const ymd = /^(\d{4})-(\d{2})-(\d{2})/.exec(t)
  const dateOnly = ymd !== null && ymd[0].length === t.length
  const d = dateOnly ? new Date(Number(ymd[1]), Number(ymd[2]) - 1, Number(ymd[3])) : new Date(t)
  // Date rolls 2026-13-45 over into 2027; a calendar date that does not exist is a typo
  const realDay = ymd !== null && Number(ymd[2]) >= 1 && Number(ymd[2]) <= 12 && Number(ymd[3]) >= 1 && Number(ymd[3]) <= new Date(Date.UTC(Number(ymd[1]), Number(ymd[2]), 0)).getUTCDate()
  if (!realDay || Number.isNaN(d.getTime())) {
    throw new UsageError(`${what} "${text}" is not an ISO 8601 date or date-time`, 'e.g. 2026-11-24 or 2026-11-24T08:00:00+08:00')
  }
  return d
}

const pad = (n: number, w = 2) => String(Math.abs(n)).padStart(w, '0')

/** ISO 8601 with an explicit offset (never "Z"-only): what people in the field read and sort. */
export function isoWithOffset(date: Date, offsetMinutes = -date.getTimezoneOffset()): string {
  const shifted = new Date(date.getTime() + offsetMinutes * 60_000)
  const sign = offsetMinutes >= 0 ? '+' : '-'
  return (
    `${shifted.getUTCFullYear()}-${pad(shifted.getUTCMonth() + 1)}-${pad(shifted.getUTCDate())}` +
    `T${pad(shifted.getUTCHours())}:${pad(shifted.getUTCMinutes())}:${pad(shifted.getUTCSeconds())}` +
    `${sign}${pad(Math.trunc(Math.abs(offsetMinutes) / 60))}:${pad(Math.abs(offsetMinutes) % 60)}`
  )
}

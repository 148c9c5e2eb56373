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

const offsets = new Map<number, string>()

/** "+08:00", "-03:30", "+00:00" for minutes east of UTC. */
function offsetText(offsetMinutes: number): string {
  let text = offsets.get(offsetMinutes)
  if (text === undefined) {
    const abs = Math.abs(offsetMinutes)
    text = `${offsetMinutes >= 0 ? '+' : '-'}${pad(Math.trunc(abs / 60))}:${pad(abs % 60)}`
    if (offsets.size < 64) offsets.set(offsetMinutes, text)
  }
  return text
}

const DAY_MS = 86_400_000
const TWO_DIGITS = Array.from({ length: 60 }, (_, i) => pad(i))
// the date part of the day last rendered: a pull renders a million times, mostly of a few days
let cachedDay = NaN
let cachedDayText = ''

/** ISO 8601 with an explicit offset (never "Z"-only): what people in the field read and sort. */
export function isoWithOffset(date: Date, offsetMinutes = -date.getTimezoneOffset()): string {
  const local = date.getTime() + offsetMinutes * 60_000
  const day = Math.floor(local / DAY_MS)
  if (day !== cachedDay) {
    const d = new Date(day * DAY_MS)
    if (Number.isNaN(d.getTime())) return `NaN-NaN-NaNTNaN:NaN:NaN${offsetText(offsetMinutes)}`
    cachedDayText = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T`
    cachedDay = day
  }
  const s = Math.floor((local - day * DAY_MS) / 1000)
  return `${cachedDayText}${TWO_DIGITS[Math.floor(s / 3600)]}:${TWO_DIGITS[Math.floor(s / 60) % 60]}:${TWO_DIGITS[s % 60]}${offsetText(offsetMinutes)}`
}

/** isoWithOffset with milliseconds, where events a few ms apart must keep their order (log lines, file names). */
export function isoWithOffsetMs(date: Date, offsetMinutes = -date.getTimezoneOffset()): string {
  const text = isoWithOffset(date, offsetMinutes)
  const ms = ((date.getTime() % 1000) + 1000) % 1000
  return `${text.slice(0, -6)}.${pad(ms, 3)}${text.slice(-6)}`
}

// ---- time zones ---------------------------------------------------------------------------------
// IANA zones through Intl (no zone database of our own): every offset below is the zone's offset
// at a given instant, so a record of July and one of January from the same door get different
// offsets where the zone has daylight saving time.

/** A wall-clock time without a zone, as devices send it: [year, month 1-12, day, hour, minute, second]. */
export type WallTime = readonly [number, number, number, number, number, number]

/** How to read a device's zone-less times: its IANA zone when known, else a fixed offset it reported, else this machine's zone. */
export interface DeviceClock {
  zone?: string
  offsetMinutes?: number
}

/** This machine's IANA zone (what a device without --tz is assumed to be in). */
export function machineZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone
}

const formatters = new Map<string, Intl.DateTimeFormat>()

function formatterFor(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric'
    })
    formatters.set(zone, f)
  }
  return f
}

/** The canonical IANA name of a zone, or undefined when Intl does not know it. */
export function canonicalZone(name: string): string | undefined {
  const t = name.trim()
  if (t === '' || /^[+-]?\d/.test(t)) return undefined
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: t }).resolvedOptions().timeZone
  } catch {
    return undefined
  }
}

/** An IANA zone from a flag or column (Asia/Shanghai, UTC); UsageError naming `what` otherwise. */
export function parseTimeZone(text: string, what = '--tz'): string {
  const zone = canonicalZone(text)
  if (!zone) throw new UsageError(`${what} "${text}" is not an IANA time zone`, 'e.g. Asia/Shanghai, Europe/Berlin, America/New_York or UTC')
  return zone
}

/** The wall-clock time in `zone` at an instant. */
export function epochToWallTime(epochMs: number, zone: string): WallTime {
  const parts: Record<string, string> = {}
  for (const p of formatterFor(zone).formatToParts(new Date(epochMs))) parts[p.type] = p.value
  return [Number(parts.year), Number(parts.month), Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second)]
}

/** Offsets are looked up per quarter hour (Intl is slow: a million records would spend seconds in it). */
const OFFSET_SPAN_MS = 15 * 60_000
const offsetCache = new Map<string, number>()

/** Minutes east of UTC that `zone` is at the instant `epochMs` (DST included). */
export function zoneOffsetMinutes(zone: string, epochMs: number): number {
  const span = Math.floor(epochMs / OFFSET_SPAN_MS)
  const key = `${zone}\n${span}`
  const cached = offsetCache.get(key)
  if (cached !== undefined) return cached
  const start = span * OFFSET_SPAN_MS
  const first = offsetAt(zone, start)
  // a span the offset changes within is never cached: it is computed for the instant asked
  if (offsetAt(zone, start + OFFSET_SPAN_MS - 1000) !== first) return offsetAt(zone, epochMs)
  if (offsetCache.size >= 10_000) offsetCache.clear()
  offsetCache.set(key, first)
  return first
}

function offsetAt(zone: string, epochMs: number): number {
  const whole = Math.floor(epochMs / 1000) * 1000
  const [y, mo, d, h, mi, s] = epochToWallTime(whole, zone)
  const utc = new Date(0)
  utc.setUTCFullYear(y, mo - 1, d)
  utc.setUTCHours(h, mi, s, 0)
  return Math.round((utc.getTime() - whole) / 60_000)
}

function wallAsUtc([y, mo, d, h, mi, s]: WallTime): number {
  const t = new Date(0)
  t.setUTCFullYear(y, mo - 1, d)
  t.setUTCHours(h, mi, s, 0)
  return t.getTime()
}

/**
 * The instant a wall-clock time in `zone` means. Around a DST change a wall time can be missing or
 * occur twice; we choose what JavaScript's Date and Temporal's "compatible" do: a time that occurs
 * twice (autumn, clocks go back) is the earlier one, still in summer time; a time skipped (spring,
 * clocks go forward) is read with the offset before the change, i.e. moved forward by the gap
 * (New York 2026-03-08 02:30 → 03:30 EDT). A device's clock shows skipped times only when it does
 * not follow the change, and then the offset before the change is the one it still keeps.
 */
export function wallTimeToEpoch(wall: WallTime, zone: string): number {
  const asUtc = wallAsUtc(wall)
  // no zone changes its offset twice within two days
  const before = zoneOffsetMinutes(zone, asUtc - 86_400_000)
  const after = zoneOffsetMinutes(zone, asUtc + 86_400_000)
  const fits = (offset: number) => zoneOffsetMinutes(zone, asUtc - offset * 60_000) === offset
  const candidates = [before, after].filter(fits).map((o) => asUtc - o * 60_000)
  if (candidates.length > 0) return Math.min(...candidates)
  return asUtc - before * 60_000
}

/** The instant a device's zone-less wall time means, read in its zone, else its fixed offset, else this machine's zone. */
export function deviceWallToEpoch(wall: WallTime, clock: DeviceClock = {}): number {
  if (clock.zone) return wallTimeToEpoch(wall, clock.zone)
  if (clock.offsetMinutes !== undefined) return wallAsUtc(wall) - clock.offsetMinutes * 60_000
  return wallTimeToEpoch(wall, machineZone())
}

/** The offset a device shows at an instant: its zone's (DST-correct), else its fixed offset, else this machine's. */
export function deviceOffsetAt(clock: DeviceClock, epochMs: number): number {
  if (clock.zone) return zoneOffsetMinutes(clock.zone, epochMs)
  if (clock.offsetMinutes !== undefined) return clock.offsetMinutes
  return -new Date(epochMs).getTimezoneOffset()
}

/** ISO 8601 in a zone, with the zone's offset at that instant. */
export function isoInZone(date: Date, zone: string): string {
  return isoWithOffset(date, zoneOffsetMinutes(zone, date.getTime()))
}

/** The offset written in an ISO 8601 date-time ("Z" = 0, "+05:30" = 330), undefined when it has none. */
export function explicitOffset(text: string): number | undefined {
  const m = /[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(Z|([+-])(\d{2}):?(\d{2}))$/i.exec(text.trim())
  if (!m) return undefined
  if (m[1].toUpperCase() === 'Z') return 0
  return (m[2] === '-' ? -1 : 1) * (Number(m[3]) * 60 + Number(m[4]))
}

/**
 * parseTime, with a date or date-time that has no offset read as a wall time in `zone` (a device's
 * own zone: `sync-time --time 08:00` means 08:00 on each door's clock). The offset to show is
 * the one written, else the zone's at that instant.
 */
export function parseTimeInZone(text: string, what: string, zone: string): { date: Date; offsetMinutes: number } {
  const parsed = parseTime(text, what)
  const written = explicitOffset(text)
  if (written !== undefined) return { date: parsed, offsetMinutes: written }
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?$/.exec(text.trim())
  if (!m) return { date: parsed, offsetMinutes: zoneOffsetMinutes(zone, parsed.getTime()) }
  const ms = m[7] ? Math.round(Number(m[7]) * 1000) : 0
  const epoch = wallTimeToEpoch([+m[1], +m[2], +m[3], +(m[4] ?? 0), +(m[5] ?? 0), +(m[6] ?? 0)], zone) + ms
  return { date: new Date(epoch), offsetMinutes: zoneOffsetMinutes(zone, epoch) }
}

import { describe, expect, it } from 'vitest'
import {
  canonicalZone, deviceOffsetAt, deviceWallToEpoch, epochToWallTime, explicitOffset, isoInZone, parseTimeZone, wallTimeToEpoch, zoneOffsetMinutes,
} from '../../src/util/time.js'

const at = (iso: string) => Date.parse(iso)

describe('zone offsets at an instant', () => {
  it('America/New_York: EST in winter, EDT in summer, switching at the March and November changes', () => {
    expect(zoneOffsetMinutes('America/New_York', at('2026-01-15T12:00:00Z'))).toBe(-300)
    expect(zoneOffsetMinutes('America/New_York', at('2026-07-15T12:00:00Z'))).toBe(-240)
    // 2026-03-08 02:00 EST → 03:00 EDT = 07:00Z
    expect(zoneOffsetMinutes('America/New_York', at('2026-03-08T06:59:59Z'))).toBe(-300)
    expect(zoneOffsetMinutes('America/New_York', at('2026-03-08T07:00:00Z'))).toBe(-240)
    // 2026-11-01 02:00 EDT → 01:00 EST = 06:00Z
    expect(zoneOffsetMinutes('America/New_York', at('2026-11-01T05:59:59Z'))).toBe(-240)
    expect(zoneOffsetMinutes('America/New_York', at('2026-11-01T06:00:00Z'))).toBe(-300)
  })

  it('Asia/Tokyo has no DST; Asia/Kolkata is half an hour off the hour; UTC is 0', () => {
    expect(zoneOffsetMinutes('Asia/Tokyo', at('2026-01-15T00:00:00Z'))).toBe(540)
    expect(zoneOffsetMinutes('Asia/Tokyo', at('2026-07-15T00:00:00Z'))).toBe(540)
    expect(zoneOffsetMinutes('Asia/Kolkata', at('2026-03-08T07:00:00Z'))).toBe(330)
    expect(zoneOffsetMinutes('UTC', at('2026-03-08T07:00:00Z'))).toBe(0)
  })

  it('renders ISO 8601 with the offset of the instant', () => {
    expect(isoInZone(new Date('2026-03-08T06:30:00Z'), 'America/New_York')).toBe('2026-03-08T01:30:00-05:00')
    expect(isoInZone(new Date('2026-03-08T07:30:00Z'), 'America/New_York')).toBe('2026-03-08T03:30:00-04:00')
    expect(isoInZone(new Date('2026-06-30T23:15:00Z'), 'Asia/Kolkata')).toBe('2026-07-01T04:45:00+05:30')
    expect(isoInZone(new Date('2026-06-30T23:15:00Z'), 'Asia/Tokyo')).toBe('2026-07-01T08:15:00+09:00')
  })
})

describe('zone-less wall times read in a zone', () => {
  it('ordinary times, both sides of a change', () => {
    expect(new Date(wallTimeToEpoch([2026, 3, 8, 1, 30, 0], 'America/New_York')).toISOString()).toBe('2026-03-08T06:30:00.000Z')
    expect(new Date(wallTimeToEpoch([2026, 3, 8, 3, 30, 0], 'America/New_York')).toISOString()).toBe('2026-03-08T07:30:00.000Z')
    expect(new Date(wallTimeToEpoch([2026, 11, 1, 3, 0, 0], 'America/New_York')).toISOString()).toBe('2026-11-01T08:00:00.000Z')
    expect(new Date(wallTimeToEpoch([2026, 1, 1, 0, 0, 0], 'Asia/Tokyo')).toISOString()).toBe('2025-12-31T15:00:00.000Z')
    expect(new Date(wallTimeToEpoch([2026, 1, 1, 0, 0, 0], 'Asia/Kolkata')).toISOString()).toBe('2025-12-31T18:30:00.000Z')
  })

  it('a skipped time (March, 02:30 does not exist in New York) moves forward by the gap', () => {
    expect(new Date(wallTimeToEpoch([2026, 3, 8, 2, 30, 0], 'America/New_York')).toISOString()).toBe('2026-03-08T07:30:00.000Z')
  })

  it('a repeated time (November, 01:30 happens twice in New York) is the earlier one, in EDT', () => {
    const t = wallTimeToEpoch([2026, 11, 1, 1, 30, 0], 'America/New_York')
    expect(new Date(t).toISOString()).toBe('2026-11-01T05:30:00.000Z')
    expect(zoneOffsetMinutes('America/New_York', t)).toBe(-240)
  })

  it('round-trips through the wall time', () => {
    for (const iso of ['2026-03-08T07:00:00Z', '2026-11-01T06:00:00Z', '2026-11-01T04:59:59Z', '2026-07-01T12:34:56Z']) {
      const wall = epochToWallTime(at(iso), 'America/New_York')
      const back = wallTimeToEpoch(wall, 'America/New_York')
      expect(epochToWallTime(back, 'America/New_York')).toEqual(wall)
    }
    expect(epochToWallTime(at('2026-07-01T00:00:00Z'), 'Asia/Tokyo')).toEqual([2026, 7, 1, 9, 0, 0])
  })

  it('a device clock: its zone first, then a fixed offset it reported', () => {
    expect(deviceWallToEpoch([2026, 7, 1, 9, 0, 0], { zone: 'Asia/Tokyo', offsetMinutes: 0 })).toBe(at('2026-07-01T00:00:00Z'))
    expect(deviceWallToEpoch([2026, 7, 1, 9, 0, 0], { offsetMinutes: 480 })).toBe(at('2026-07-01T01:00:00Z'))
    expect(deviceOffsetAt({ zone: 'America/New_York' }, at('2026-01-01T00:00:00Z'))).toBe(-300)
    expect(deviceOffsetAt({ offsetMinutes: 60 }, at('2026-01-01T00:00:00Z'))).toBe(60)
  })
})

describe('zone names and explicit offsets', () => {
  it('validates IANA names with Intl', () => {
    expect(parseTimeZone('Asia/Shanghai')).toBe('Asia/Shanghai')
    expect(canonicalZone('utc')).toBe('UTC')
    expect(canonicalZone('Mars/Olympus')).toBeUndefined()
    expect(canonicalZone('+08:00')).toBeUndefined()
    expect(canonicalZone('')).toBeUndefined()
    expect(() => parseTimeZone('Asia/Shangai', '--tz')).toThrow(/--tz "Asia\/Shangai" is not an IANA time zone/)
  })

  it('finds the offset written in a date-time', () => {
    expect(explicitOffset('2026-11-24T08:00:00+08:00')).toBe(480)
    expect(explicitOffset('2026-11-24T08:00:00-0330')).toBe(-210)
    expect(explicitOffset('2026-11-24T08:00:00.123Z')).toBe(0)
    expect(explicitOffset('2026-11-24T08:00:00')).toBeUndefined()
    expect(explicitOffset('2026-11-24')).toBeUndefined()
  })
})

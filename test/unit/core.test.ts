import { describe, expect, it } from 'vitest'
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CursorStore } from '../../src/store/cursors.js'
import { InputError, UsageError } from '../../src/types/errors.js'
import { buildDeviceEntry, maskSecrets } from '../../src/store/inventory.js'
import { readPeopleCsv } from '../../src/ops/people-csv.js'
import { isoWithOffset, isoWithOffsetMs, parseDuration, parseTime } from '../../src/util/time.js'
import { mapPool } from '../../src/ops/run.js'
import { PeopleReport } from '../../src/ops/people-sync.js'
import type { PersonRules } from '../../src/types/driver.js'
import { FIXTURES, tempDir } from '../helpers.js'

const rules: PersonRules = { protocol: 'openapi', maxLength: { id: 5, name: 4, phone: 20 }, required: ['id', 'name'], maxPhotoBytes: 400 * 1024 }
const udpRules: PersonRules = { protocol: 'udp', maxLength: { phone: 11 }, required: ['phone'], maxPhotoBytes: 400 * 1024, idPattern: { re: /^\d+$/, description: 'digits only' } }

describe('durations and times', () => {
  it('parses durations', () => {
    expect(parseDuration('30s')).toBe(30_000)
    expect(parseDuration('5m')).toBe(300_000)
    expect(parseDuration('1h30m')).toBe(5_400_000)
    expect(parseDuration('1500ms')).toBe(1500)
    expect(parseDuration('2')).toBe(2000)
    for (const bad of ['', 'soon', '5x', '5m trailing']) expect(() => parseDuration(bad)).toThrow(UsageError)
  })
  it('formats ISO 8601 with an explicit offset', () => {
    const t = new Date(Date.UTC(2026, 10, 24, 1, 2, 3))
    expect(isoWithOffset(t, 480)).toBe('2026-11-24T09:02:03+08:00')
    expect(isoWithOffset(t, -330)).toBe('2026-11-23T19:32:03-05:30')
    expect(isoWithOffset(t, 0)).toBe('2026-11-24T01:02:03+00:00')
    // whole seconds, like the records: the milliseconds are dropped, not rounded
    expect(isoWithOffset(new Date(t.getTime() + 999), 60)).toBe('2026-11-24T02:02:03+01:00')
    // the offset can move the date across a year boundary
    expect(isoWithOffset(new Date(Date.UTC(2026, 0, 1, 2, 0, 0)), -180)).toBe('2025-12-31T23:00:00-03:00')
    // years toISOString writes differently (6 digits and a sign) still come out as YYYY-…
    expect(isoWithOffset(new Date(Date.UTC(12026, 0, 2, 3, 4, 5)), 0)).toBe('12026-01-02T03:04:05+00:00')
    expect(isoWithOffset(new Date(Date.UTC(999, 0, 2, 3, 4, 5)), 0)).toBe('0999-01-02T03:04:05+00:00')
  })
  it('with milliseconds, for log lines and file names', () => {
    const t = new Date(Date.UTC(2026, 10, 24, 1, 2, 3, 45))
    expect(isoWithOffsetMs(t, 480)).toBe('2026-11-24T09:02:03.045+08:00')
    expect(isoWithOffsetMs(new Date(Date.UTC(2026, 10, 24, 1, 2, 3)), -330)).toBe('2026-11-23T19:32:03.000-05:30')
  })
  it("without an offset given, the machine's own, never Z", () => {
    const tz = process.env.TZ
    try {
      process.env.TZ = 'Asia/Kolkata'
      expect(isoWithOffset(new Date(Date.UTC(2026, 10, 24, 1, 2, 3)))).toBe('2026-11-24T06:32:03+05:30')
      process.env.TZ = 'UTC'
      expect(isoWithOffset(new Date(Date.UTC(2026, 10, 24, 1, 2, 3)))).toBe('2026-11-24T01:02:03+00:00')
    } finally {
      if (tz === undefined) delete process.env.TZ
      else process.env.TZ = tz
    }
  })
  it('parses dates and date-times, rejects the rest', () => {
    expect(parseTime('2026-11-24T09:02:03+08:00', 'x').getTime()).toBe(Date.UTC(2026, 10, 24, 1, 2, 3))
    expect(parseTime('2026-11-24', 'x').getDate()).toBe(24)
    expect(() => parseTime('yesterday', 'x')).toThrow(UsageError)
    expect(() => parseTime('2026-13-45', 'x')).toThrow(UsageError)
    expect(() => parseTime('2026-02-30', 'x')).toThrow(UsageError)
  })
})

describe('inventory entries', () => {
  it('validates per protocol and names the field', () => {
    expect(buildDeviceEntry({ name: 'a', protocol: 'openapi', host: '127.0.0.1' }).entry).toMatchObject({ port: 8899, wsPort: 9000, password: '123456', mode: 'direct' })
    expect(buildDeviceEntry({ name: 'a', protocol: 'openapi', deviceId: '7' }).entry).toMatchObject({ mode: 'platform', deviceId: '7' })
    expect(buildDeviceEntry({ name: 'a', protocol: 'httpv2' }).problems).toEqual([expect.objectContaining({ field: 'sn' })])
    expect(buildDeviceEntry({ name: 'a', protocol: 'udp', community: '1' }).problems).toEqual([expect.objectContaining({ field: 'code' })])
    expect(buildDeviceEntry({ name: 'a', protocol: 'best', sn: 'x', transport: 'tcp' }).problems).toEqual([expect.objectContaining({ field: 'transport' })])
    expect(buildDeviceEntry({ name: '-bad', protocol: 'nope' }).problems.map((p) => p.field)).toEqual(['name', 'protocol'])
    expect(buildDeviceEntry({ name: 'a', protocol: 'openapi', host: 'http://x:1' }).problems).toEqual([expect.objectContaining({ field: 'host' })])
    expect(buildDeviceEntry({ name: 'a', protocol: 'openapi', host: 'h', port: '70000' }).problems).toEqual([expect.objectContaining({ field: 'port' })])
  })
  it('masks every secret', () => {
    const e = buildDeviceEntry({ name: 'b', protocol: 'best', sn: 's', deviceSecret: 'k1', brokerKey: 'k2', password: 'pw' }).entry!
    const m = maskSecrets(e)
    expect(JSON.stringify(m)).not.toMatch(/k1|k2|pw"/)
  })
})

describe('people CSV', () => {
  const dir = tempDir()
  const write = (name: string, text: string) => {
    const p = join(dir.path, name)
    writeFileSync(p, text)
    return p
  }
  it('reads UTF-8 with a BOM, any column order, quoted fields', async () => {
    const f = write('ok.csv', '\uFEFFname,id,phone\n"Li, Na",1,138\n张伟,2,139\n')
    const { people } = await readPeopleCsv(f, { rules: [{ ...rules, maxLength: {} }] })
    expect(people).toEqual([{ id: '1', name: 'Li, Na', phone: '138' }, { id: '2', name: '张伟', phone: '139' }])
  })
  it('counts characters, not bytes, unless the protocol says bytes', async () => {
    const f = write('len.csv', 'id,name\n1,张伟张伟\n')
    await expect(readPeopleCsv(f, { rules: [rules] })).resolves.toBeTruthy()
    await expect(readPeopleCsv(f, { rules: [{ ...rules, lengthInBytes: true, maxLength: { name: 8 } }] })).rejects.toThrow(/12 bytes/)
  })
  it('lists every problem of every target protocol with line and column', async () => {
    const f = write('bad.csv', 'id,name,phone,role,valid_from,valid_to,photo,colour\n1,Ann,,boss,,,\n1,Bob,123456789012,,2026-01-02,2026-01-01,\nabcdef,TooLongName,,,notadate,,\n2,Cy,1,,,,nope.jpg\n')
    const err = await readPeopleCsv(f, { rules: [rules, udpRules] }).catch((e) => e)
    expect(err).toBeInstanceOf(InputError)
    const got = (err as InputError).problems.map((p) => `${p.line}:${p.field}`)
    expect(got).toEqual(expect.arrayContaining([
      '1:colour', '2:role', '2:phone', '3:phone', '3:valid_to', '3:id', '4:id', '4:name', '4:valid_from', '5:photo',
    ]))
    expect((err as InputError).message).toContain('line 3, column "id": duplicate id "1" (first on line 2)')
  })
  it('checks photos: missing, not JPEG, too large; finds them next to the CSV or in --photos-dir', async () => {
    writeFileSync(join(dir.path, 'big.jpg'), Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.alloc(500 * 1024)]))
    writeFileSync(join(dir.path, 'text.jpg'), 'text')
    const f = write('photos.csv', `id,name,photo\n1,A,big.jpg\n2,B,text.jpg\n3,C,${join(FIXTURES, 'face.jpg')}\n4,D,face.jpg\n`)
    const err = (await readPeopleCsv(f, { rules: [rules] }).catch((e) => e)) as InputError
    expect(err.problems.map((p) => `${p.line}:${p.message}`)).toEqual([
      expect.stringMatching(/^2:big.jpg: 501 KB is larger than the 400 KB/),
      expect.stringMatching(/^3:text.jpg: not a JPEG/),
      expect.stringMatching(/^5:face.jpg: no such file/),
    ])
    const ok = await readPeopleCsv(write('p2.csv', 'id,name,photo\n4,D,face.jpg\n'), { rules: [rules], photosDir: FIXTURES })
    expect(ok.people[0].photoPath).toBe(join(FIXTURES, 'face.jpg'))
  })
  it('rejects an empty file, a header-only file and broken CSV', async () => {
    await expect(readPeopleCsv(write('e.csv', ''), { rules: [rules] })).rejects.toThrow(/empty/)
    await expect(readPeopleCsv(write('h.csv', 'id,name\n'), { rules: [rules] })).rejects.toThrow(/no people/)
    await expect(readPeopleCsv(write('q.csv', 'id,name\n1,"unterminated\n'), { rules: [rules] })).rejects.toThrow(/not valid CSV/)
    await expect(readPeopleCsv(join(dir.path, 'absent.csv'), { rules: [rules] })).rejects.toThrow(/no such file/)
  })
})

describe('cursor store: exactly once across a kill at any step', () => {
  const setup = () => {
    const d = tempDir()
    const store = new CursorStore(d.path)
    const temp = join(d.path, '.out.csv.tmp-1-abcd')
    const out = join(d.path, 'out.csv')
    writeFileSync(temp, 'a,b\n1,2\n')
    return { d, store, temp, out, cursors: { door: { protocol: 'openapi', cursor: { time: 5, ids: ['9'] }, updated_at: 'x', exported_total: 1 } } }
  }
  it('killed after the pending commit, before the rename: rolled back, temp removed', () => {
    const { store, temp, out, cursors } = setup()
    store.prepare(temp, out, 8, cursors)
    expect(new CursorStore(store.path.replace(/record-cursors.json$/, '')).recover()).toBe('dropped')
    expect(store.read()).toEqual({})
    expect(existsSync(temp)).toBe(false)
  })
  it('killed after the rename, before the cursors were written: committed', () => {
    const { store, temp, out, cursors } = setup()
    store.prepare(temp, out, 8, cursors)
    renameSync(temp, out)
    expect(store.recover()).toBe('committed')
    expect(store.read().door.cursor).toEqual({ time: 5, ids: ['9'] })
    expect(existsSync(store.pendingPath)).toBe(false)
    expect(store.recover()).toBe('none')
  })
  it('killed after the cursors, before the pending file was removed: idempotent', () => {
    const { store, temp, out, cursors } = setup()
    store.prepare(temp, out, 8, cursors)
    renameSync(temp, out)
    store.commit(cursors)
    writeFileSync(store.pendingPath, JSON.stringify({ temp, output: out, size: 8, cursors }))
    expect(store.recover()).toBe('committed')
    expect(JSON.parse(readFileSync(store.path, 'utf8')).door.exported_total).toBe(1)
  })
})

describe('mapPool', () => {
  it('bounds concurrency and keeps order', async () => {
    let running = 0
    let peak = 0
    const out = await mapPool([5, 1, 4, 2, 3], 2, async (n) => {
      running++
      peak = Math.max(peak, running)
      await new Promise((r) => setTimeout(r, n))
      running--
      return n * 10
    })
    expect(out).toEqual([50, 10, 40, 20, 30])
    expect(peak).toBe(2)
  })
})

describe('people report', () => {
  it('creates its folder, writes atomically, and refuses an unwritable path up front', async () => {
    const d = tempDir()
    const path = join(d.path, 'new', 'folder', 'report.csv')
    const r = new PeopleReport(path)
    r.add('door-1', { id: '7', name: '张伟', status: 'failed', message: 'no face' })
    await r.close()
    expect(readFileSync(path, 'utf8')).toBe('device,id,name,status,message\ndoor-1,7,张伟,failed,no face\n')
    writeFileSync(join(d.path, 'file'), '')
    expect(() => new PeopleReport(join(d.path, 'file', 'report.csv'))).toThrow(UsageError)
  })
})

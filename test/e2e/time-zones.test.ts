import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startOpenapiSimulator, type OpenapiSimulator } from '../../src/simulators/openapi/index.js'
import { createHttpv2Simulator, type Httpv2Simulator } from '../../src/simulators/httpv2/index.js'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { doorctl, freePort, startDoorctl, tempDir, until } from '../helpers.js'

const seconds = (iso: string) => Date.parse(iso) / 1000
const timesOf = (ndjson: string) => ndjson.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { record_id: string; time: string })

describe('a time zone per device (built binary, simulated devices on 127.0.0.1)', () => {
  const home = tempDir()
  const run = (args: string[]) => doorctl(args, { home: home.path })
  afterAll(() => home.cleanup())

  it('device add --tz validates the IANA name; device show and list show it', async () => {
    const bad = await run(['device', 'add', 'x', '--protocol', 'httpv2', '--sn', 'FC-1', '--tz', 'Asia/Tokio', '--json'])
    expect(bad.code).toBe(2)
    expect(JSON.stringify(bad.json().error)).toMatch(/--tz.*Asia\/Tokio.*not an IANA time zone/)
    const ok = await run(['device', 'add', 'x', '--protocol', 'httpv2', '--sn', 'FC-1', '--tz', 'asia/tokyo', '--json'])
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.json().device.tz).toBe('Asia/Tokyo')
    const show = await run(['device', 'show', 'x', '--json'])
    expect(show.json().device.tz).toBe('Asia/Tokyo')
    const list = await run(['device', 'list', '--json'])
    expect(list.json().devices[0]).toMatchObject({ name: 'x', tz: 'Asia/Tokyo' })
    expect((await run(['device', 'remove', 'x'])).code).toBe(0)
  }, 120_000)

  describe('an openapi device in America/New_York, records across both DST changes of 2026', () => {
    let sim: OpenapiSimulator
    beforeAll(async () => {
      sim = await startOpenapiSimulator({ port: 0, wsPort: 0 })
      const r = await run(['device', 'add', 'ny', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(sim.httpPort), '--ws-port', String(sim.wsPort), '--tz', 'America/New_York'])
      expect(r.code, r.stderr).toBe(0)
      // 01:30 EST and 03:30 EDT on 8 March (02:00 → 03:00); 01:30 EDT and again 01:30 EST on 1 November
      for (const iso of ['2026-03-08T06:30:00Z', '2026-03-08T07:30:00Z', '2026-11-01T05:30:00Z', '2026-11-01T06:30:00Z']) sim.addRecord({ signTime: seconds(iso) })
    }, 120_000)
    afterAll(async () => sim?.close())

    const pull = (extra: string[]) => run(['records', 'pull', 'ny', '--since', '2026-03-01T00:00:00Z', '--until', '2026-11-30T00:00:00Z', '--format', 'ndjson', ...extra])

    it("renders each record with the device zone's offset at the record's instant", async () => {
      const r = await pull([])
      expect(r.code, r.stderr).toBe(0)
      expect(timesOf(r.stdout).map((x) => x.time)).toEqual([
        '2026-03-08T01:30:00-05:00', '2026-03-08T03:30:00-04:00', '2026-11-01T01:30:00-04:00', '2026-11-01T01:30:00-05:00',
      ])
    }, 120_000)

    it('--utc and --tz render every time in one zone; a bad --tz is exit 2', async () => {
      const [utc, kolkata, bad] = await Promise.all([pull(['--utc']), pull(['--tz', 'Asia/Kolkata']), pull(['--tz', 'Nowhere/Land', '--json'])])
      expect(utc.code, utc.stderr).toBe(0)
      expect(timesOf(utc.stdout).map((x) => x.time)).toEqual(['2026-03-08T06:30:00+00:00', '2026-03-08T07:30:00+00:00', '2026-11-01T05:30:00+00:00', '2026-11-01T06:30:00+00:00'])
      expect(timesOf(kolkata.stdout).map((x) => x.time)).toEqual(['2026-03-08T12:00:00+05:30', '2026-03-08T13:00:00+05:30', '2026-11-01T11:00:00+05:30', '2026-11-01T12:00:00+05:30'])
      expect(bad.code).toBe(2)
      expect(bad.json().error.message).toMatch(/--tz "Nowhere\/Land" is not an IANA time zone/)
    }, 120_000)

    it("people list shows validity times in the device's zone", async () => {
      const csv = join(home.path, 'visitors.csv')
      writeFileSync(csv, 'id,name,valid_from,valid_to\nv1,Visitor,2026-01-10T12:00:00Z,2026-07-10T12:00:00Z\n')
      const imp = await run(['people', 'import', csv, 'ny', '--json'])
      expect(imp.code, imp.stdout + imp.stderr).toBe(0)
      const list = await run(['people', 'list', 'ny', '--json'])
      expect(list.json().results[0].people.find((p: { id: string }) => p.id === 'v1')).toMatchObject({ valid_from: '2026-01-10T07:00:00-05:00', valid_to: '2026-07-10T08:00:00-04:00' })
    }, 120_000)
  })

  describe('an httpv2 device in Asia/Tokyo', () => {
    let sim: Httpv2Simulator
    let listen: string[]
    beforeAll(async () => {
      const port = await freePort()
      listen = ['--http-port', String(port), '--udp-port', '0', '--mqtt-port', '0', '--bind', '127.0.0.1']
      sim = createHttpv2Simulator({ server: `http://127.0.0.1:${port}`, sn: 'FC-8200H00000909', intervalMs: 100, requestTimeoutMs: 500, retryDelayMs: 100 })
      sim.start()
      const r = await run(['device', 'add', 'tokyo', '--protocol', 'httpv2', '--sn', 'FC-8200H00000909', '--tz', 'Asia/Tokyo'])
      expect(r.code, r.stderr).toBe(0)
    }, 120_000)
    afterAll(async () => sim?.stop())

    it("sync-time sends the device's wall time in its own zone; --time's written offset is honoured; a zone-less --time is Tokyo wall time", async () => {
      const before = Math.floor(Date.now() / 1000)
      const now = await run(['device', 'sync-time', 'tokyo', ...listen, '--json', '--timeout', '30s'])
      expect(now.code, now.stdout + now.stderr).toBe(0)
      expect(now.json().results[0].time).toMatch(/\+09:00$/)
      const explicit = await run(['device', 'sync-time', 'tokyo', '--time', '2026-11-24T08:00:00-05:00', ...listen, '--json', '--timeout', '30s'])
      expect(explicit.code, explicit.stdout + explicit.stderr).toBe(0)
      expect(explicit.json().results[0].time).toBe('2026-11-24T08:00:00-05:00')
      const wall = await run(['device', 'sync-time', 'tokyo', '--time', '2026-11-24T08:00:00', ...listen, '--json', '--timeout', '30s'])
      expect(wall.code, wall.stdout + wall.stderr).toBe(0)
      expect(wall.json().results[0].time).toBe('2026-11-24T08:00:00+09:00')

      const sets = sim.events.timeSets as { SystemTime: number; TimeZone: number }[]
      expect(sets).toHaveLength(3)
      expect(sets[0].TimeZone).toBe(9)
      expect(sets[0].SystemTime).toBeGreaterThanOrEqual(before)
      expect(sets[1]).toEqual({ SystemTime: seconds('2026-11-24T13:00:00Z'), TimeZone: -5 })
      expect(sets[2]).toEqual({ SystemTime: seconds('2026-11-23T23:00:00Z'), TimeZone: 9 })
    }, 180_000)

    it("records: a zone-less RecordDate is read as Tokyo wall time and rendered +09:00; --utc", async () => {
      const serve = startDoorctl(['serve', ...listen, '--json'], { home: home.path })
      try {
        await until(() => serve.out.stdout.includes('"ok":true'), 60_000, 'serve to start')
        const text = sim.addRecord({ RecordDate: '2026-07-01 09:00:00' })
        const unix = sim.addRecord({ RecordDate: seconds('2026-01-15T03:00:00Z') })
        await until(() => [text, unix].every((id) => sim.acknowledgedRecords().includes(id)), 60_000, 'uploads')
        const local = await run(['records', 'pull', 'tokyo', '--since', '2026-01-01T00:00:00Z', '--until', '2026-08-01T00:00:00Z', '--format', 'ndjson'])
        expect(local.code, local.stderr).toBe(0)
        const byId = (out: string) => new Map(timesOf(out).map((x) => [x.record_id, x.time]))
        expect(byId(local.stdout).get(text)).toBe('2026-07-01T09:00:00+09:00')
        expect(byId(local.stdout).get(unix)).toBe('2026-01-15T12:00:00+09:00')
        const utc = await run(['records', 'pull', 'tokyo', '--since', '2026-01-01T00:00:00Z', '--until', '2026-08-01T00:00:00Z', '--format', 'ndjson', '--utc'])
        expect(byId(utc.stdout).get(text)).toBe('2026-07-01T00:00:00+00:00')
        expect(byId(utc.stdout).get(unix)).toBe('2026-01-15T03:00:00+00:00')
      } finally {
        serve.child.kill('SIGTERM')
        await serve.exited
      }
    }, 240_000)
  })
})

import { createHash } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import {
  makeTinyJpeg,
  openapiSign,
  startOpenapiSimulator,
  testJpegBase64,
  type OpenapiSimulator,
  type OpenapiSimulatorOptions,
} from '../../src/simulators/openapi/index.js'

// The test signs on its own (openapi 4.1), so it checks the simulator rather than trusting it.
const md5sign = (ts: string | number, password = '123456'): string => createHash('md5').update(`${ts}#${password}`).digest('hex')

const running: OpenapiSimulator[] = []
async function sim(opts: OpenapiSimulatorOptions = {}): Promise<OpenapiSimulator> {
  const s = await startOpenapiSimulator({ port: 0, wsPort: 0, ...opts })
  running.push(s)
  return s
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()))
})

interface CallOpts {
  method?: string
  query?: Record<string, string | number>
  body?: unknown
  rawBody?: string | Buffer
  ts?: number
  password?: string
  noAuth?: boolean
}
async function call(s: OpenapiSimulator, path: string, o: CallOpts = {}): Promise<{ status: number; json: any }> {
  const ts = o.ts ?? Date.now()
  const q = new URLSearchParams()
  if (!o.noAuth) {
    q.set('timestamp', String(ts))
    q.set('sign', md5sign(ts, o.password))
  }
  for (const [k, v] of Object.entries(o.query ?? {})) q.set(k, String(v))
  const body = o.rawBody ?? (o.body === undefined ? undefined : JSON.stringify(o.body))
  const res = await fetch(`${s.url}${path}?${q}`, {
    method: o.method ?? (body === undefined ? 'GET' : 'POST'),
    headers: body === undefined ? undefined : { 'content-type': 'application/json' },
    body,
  })
  return { status: res.status, json: await res.json() }
}
const post = (s: OpenapiSimulator, path: string, o: CallOpts = {}) => call(s, path, { method: 'POST', ...o })

function wsUrl(s: OpenapiSimulator, ts = Date.now(), sign = md5sign(ts)): string {
  return `ws://127.0.0.1:${s.wsPort}/api/record?timestamp=${ts}&sign=${sign}`
}
/** Opens a push client and collects every message it receives. */
function openWs(url: string): Promise<{ ws: WebSocket; messages: any[]; closed: Promise<number>; next: () => Promise<any> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const messages: any[] = []
    const waiters: ((m: any) => void)[] = []
    let seen = 0
    ws.on('message', (d) => {
      messages.push(JSON.parse(String(d)))
      const w = waiters.shift()
      if (w) w(messages[seen++])
    })
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)))
    const next = (): Promise<any> => (seen < messages.length ? Promise.resolve(messages[seen++]) : new Promise((r) => waiters.push(r)))
    ws.on('open', () => resolve({ ws, messages, closed, next }))
    ws.on('error', reject)
  })
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const user = (id: string, extra: Record<string, unknown> = {}) => ({
  userId: id,
  userType: 1,
  name: `Name ${id}`,
  icNumber: '',
  jobNumber: '',
  mobile: '',
  remark: '',
  ...extra,
})

describe('openapi simulator: signing (openapi 4)', () => {
  it('matches the document test vector', () => {
    expect(md5sign('1573539353795', '123456')).toBe('188ef735093645c802b0e4741bd3e9a1')
    expect(openapiSign('1573539353795', '123456')).toBe('188ef735093645c802b0e4741bd3e9a1')
  })

  it('answers a well-signed request (lower- and upper-case hex)', async () => {
    const s = await sim()
    const r = await post(s, '/api/device/open', { query: { remark: 'test' } })
    expect(r).toEqual({ status: 200, json: { code: 200, message: 'OK', desc: '' } })
    expect(s.opens.map((o) => o.remark)).toEqual(['test'])
    const ts = Date.now()
    const res = await fetch(`${s.url}/api/device/open?timestamp=${ts}&sign=${md5sign(ts).toUpperCase()}`, { method: 'POST' })
    expect(((await res.json()) as { code: number }).code).toBe(200)
  })

  it('refuses a bad sign with 10005, a stale timestamp with 10003, missing params with 30003', async () => {
    const s = await sim({ password: 'secret' })
    let r = await post(s, '/api/device/open', { password: '123456' })
    expect(r.status).toBe(200)
    expect(r.json).toMatchObject({ code: 10005, message: 'Signature Failed' })
    expect(typeof r.json.desc).toBe('string')
    r = await post(s, '/api/device/open', { password: 'secret', ts: Date.now() - 6 * 60_000 })
    expect(r.json).toMatchObject({ code: 10003, message: 'Request Expired' })
    r = await post(s, '/api/device/open', { password: 'secret', ts: Date.now() + 6 * 60_000 })
    expect(r.json.code).toBe(10003)
    r = await post(s, '/api/device/open', { password: 'secret', ts: Date.now() - 4 * 60_000 })
    expect(r.json.code).toBe(200)
    r = await post(s, '/api/device/open', { noAuth: true })
    expect(r.json).toMatchObject({ code: 30003, message: 'Missing Param' })
    const ts = Date.now()
    r = { status: 0, json: (await (await fetch(`${s.url}/api/device/open?timestamp=${ts}`, { method: 'POST' })).json()) as any }
    expect(r.json.code).toBe(30003)
    r = { status: 0, json: (await (await fetch(`${s.url}/api/device/open?sign=${md5sign(ts, 'secret')}`, { method: 'POST' })).json()) as any }
    expect(r.json.code).toBe(30003)
    // Stale and wrongly signed: expiry is checked first (documented order).
    r = await post(s, '/api/device/open', { password: 'wrong', ts: Date.now() - 3_600_000 })
    expect(r.json.code).toBe(10003)
    expect(s.requestCount).toBe(8)
  })

  it('uses the device clock (real time + skew) for the 5-minute check', async () => {
    const s = await sim({ clockSkewSeconds: 3600 })
    expect(Math.abs(s.now() - (Date.now() + 3_600_000))).toBeLessThan(1000)
    expect((await post(s, '/api/device/information')).json.code).toBe(10003)
    expect((await post(s, '/api/device/information', { ts: Date.now() + 3_600_000 })).json.code).toBe(200)
    // AMBIGUITIES openapi #2: syncTime's timestamp must pass the window too, so real time is refused here.
    expect((await post(s, '/api/device/syncTime')).json.code).toBe(10003)
  })

  it('syncTime sets the device clock to the timestamp', async () => {
    const s = await sim({ clockSkewSeconds: 200 })
    const target = Date.now() + 60_000
    expect((await post(s, '/api/device/syncTime', { ts: target })).json.code).toBe(200)
    expect(Math.abs(s.now() - (Date.now() + 60_000))).toBeLessThan(1000)
  })

  it('answers an unknown path with 404/40001 and a wrong method with 50004, and counts both', async () => {
    const s = await sim()
    const r1 = await call(s, '/api/nothing')
    expect(r1.status).toBe(404)
    expect(r1.json).toMatchObject({ code: 40001, message: 'Not Support' })
    const r2 = await call(s, '/api/device/open', { method: 'GET' })
    expect(r2.json).toMatchObject({ code: 50004, message: 'Request Method Not Allowed' })
    const r3 = await post(s, '/api/user/list')
    expect(r3.json.code).toBe(50004)
    expect(s.requestCount).toBe(3)
  })
})

describe('openapi simulator: device endpoints (8.1)', () => {
  it('information uses the documented deviceMoel key', async () => {
    const s = await sim({ deviceId: 'DEV-1' })
    const r = await post(s, '/api/device/information')
    expect(r.json.code).toBe(200)
    expect(r.json.data).toMatchObject({ deviceID: 'DEV-1' })
    expect(Object.keys(r.json.data).sort()).toEqual(['appVer', 'deviceID', 'deviceMoel', 'deviceName', 'webVer'])
  })

  it('cfg endpoints validate, merge, and the getters reflect the change', async () => {
    const s = await sim()
    expect((await post(s, '/api/device/smartfacecfg', { body: { faceThre: 8, tempWarnThre: 37.2, unknownKey: 1 } })).json.code).toBe(200)
    let r = await post(s, '/api/device/smartface')
    expect(r.json.data).toMatchObject({ faceThre: 8, tempWarnThre: 37.2, faceEnable: 1 })
    expect(r.json.data.unknownKey).toBeUndefined()
    for (const bad of [{ faceThre: 11 }, { faceThre: '8' }, { faceThre: 2.5 }, { tempWarnThre: 38 }, { faceMinsize: 20 }, { imgType: 3 }]) {
      const b = await post(s, '/api/device/smartfacecfg', { body: bad })
      expect(b.json, JSON.stringify(bad)).toMatchObject({ code: 30001, message: 'Param Invalid' })
    }
    // Atomic: a bad key leaves the good one unapplied.
    expect((await post(s, '/api/device/smartfacecfg', { body: { faceThre: 3, faceInterval: 99 } })).json.code).toBe(30001)
    expect((await post(s, '/api/device/smartface')).json.data.faceThre).toBe(8)

    expect((await post(s, '/api/device/perparacfg', { body: { unlockOuttime: 10, RecordOpen: 1 } })).json.code).toBe(200)
    expect((await post(s, '/api/device/perpara')).json.data).toMatchObject({ unlockOuttime: 10, RecordOpen: 1 })
    expect((await post(s, '/api/device/perparacfg', { body: { unlockOuttime: 31 } })).json.code).toBe(30001)

    expect((await post(s, '/api/device/networkcfg', { body: { ipAddress: '10.0.0.9', dhcpEnable: 1 } })).json.code).toBe(200)
    expect((await post(s, '/api/device/network')).json.data).toMatchObject({ ipAddress: '10.0.0.9', dhcpEnable: 1 })
    expect((await post(s, '/api/device/networkcfg', { body: { ipAddress: '10.0.0.300' } })).json.code).toBe(30001)
    expect((await post(s, '/api/device/networkcfg', { body: [1, 2] })).json.code).toBe(30001)
    expect((await post(s, '/api/device/networkcfg')).json.code).toBe(30003)
  })

  it('jsonCmd echoes the object under json; remark over 255 is refused', async () => {
    const s = await sim()
    const r = await post(s, '/api/device/jsonCmd', { body: { cmd: 'x', n: 1 } })
    expect(r.json).toEqual({ code: 200, message: 'OK', desc: '', json: { cmd: 'x', n: 1 } })
    expect((await post(s, '/api/device/open', { query: { remark: 'x'.repeat(256) } })).json.code).toBe(30001)
    expect((await post(s, '/api/device/open', { query: { remark: '开'.repeat(255) } })).json.code).toBe(200)
  })

  it('reboot is counted; with rebootMs the device is unreachable for that long', async () => {
    const s = await sim({ rebootMs: 300 })
    expect((await post(s, '/api/device/reboot')).json.code).toBe(200)
    expect(s.rebootCount).toBe(1)
    await expect(post(s, '/api/device/information')).rejects.toThrow()
    await sleep(400)
    expect((await post(s, '/api/device/information')).json.code).toBe(200)
  })

  it('latencyMs delays every answer', async () => {
    const s = await sim({ latencyMs: 200 })
    const t0 = Date.now()
    expect((await post(s, '/api/device/information')).json.code).toBe(200)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190)
  })

  it('survives an oversized body and invalid JSON', async () => {
    const s = await sim()
    const big = await post(s, '/api/user', { rawBody: 'x'.repeat(3 * 1024 * 1024) })
    expect(big.status).toBe(413)
    expect(big.json.code).toBe(30001)
    expect((await post(s, '/api/user', { rawBody: '{"userId": "a",' })).json).toMatchObject({ code: 30001, message: 'Param Invalid' })
    expect((await post(s, '/api/user', { rawBody: '"just a string"' })).json.code).toBe(30001)
    expect((await post(s, '/api/device/information')).json.code).toBe(200)
  })
})

describe('openapi simulator: users (8.2)', () => {
  it('adds, lists in pages of at most 10, updates and deletes', async () => {
    const s = await sim()
    for (let i = 1; i <= 25; i++) {
      const r = await post(s, '/api/user', { body: user(`p${i}`, { department: i % 2 ? 'Sales' : 'R&D' }) })
      expect(r.json.code).toBe(200)
      expect(r.json.data.userId).toBe(`p${i}`)
    }
    const pages = []
    for (let page = 1; page <= 4; page++) pages.push((await call(s, '/api/user/list', { query: { page, size: 50 } })).json.data)
    expect(pages.map((p) => p.data.length)).toEqual([10, 10, 5, 0])
    expect(pages[0]).toMatchObject({ total: 25, pageNum: 1, size: 10, pageSize: 10, totalPage: 3 })
    expect(pages[2]).toMatchObject({ total: 25, pageNum: 3, size: 5 })
    expect(pages.flatMap((p) => p.data.map((u: any) => u.userId))).toEqual(Array.from({ length: 25 }, (_, i) => `p${i + 1}`))
    const def = (await call(s, '/api/user/list')).json.data
    expect(def.pageSize).toBe(10)

    expect((await call(s, '/api/user/list', { query: { userId: 'p7' } })).json.data.data.map((u: any) => u.userId)).toEqual(['p7'])
    expect((await call(s, '/api/user/list', { query: { department: 'Sales' } })).json.data.total).toBe(13)

    const up = await post(s, '/api/user/update/p3', { body: { mobile: '13800000000', name: '张三' } })
    expect(up.json.code).toBe(200)
    expect(s.users().get('p3')).toMatchObject({ userId: 'p3', name: '张三', mobile: '13800000000', department: 'Sales' })
    expect((await post(s, '/api/user/update/nobody', { body: { name: 'x' } })).json).toMatchObject({ code: 20001, message: 'User Not Exists' })

    expect((await call(s, '/api/user/delete/p3')).json.code).toBe(200)
    expect(s.users().has('p3')).toBe(false)
    expect((await call(s, '/api/user/delete/p3')).json.code).toBe(20001)
    expect((await call(s, '/api/user/delete', { query: { id: 'p4' } })).json.code).toBe(200)
    expect((await call(s, '/api/user/delete/all')).json.code).toBe(200)
    expect((await call(s, '/api/user/list')).json.data.total).toBe(0)
  })

  it('refuses a duplicate id, bad fields, and a full database', async () => {
    const s = await sim({ users: 3, maxUsers: 4 })
    expect(s.users().size).toBe(3)
    expect((await post(s, '/api/user', { body: user('u1') })).json).toMatchObject({ code: 30001, desc: 'user exists' })
    const long = await post(s, '/api/user', { body: user('x', { mobile: '1'.repeat(21) }) })
    expect(long.json.code).toBe(30001)
    expect(long.json.desc).toContain('mobile')
    expect((await post(s, '/api/user', { body: user('x', { userType: 5 }) })).json.code).toBe(30001)
    expect((await post(s, '/api/user', { body: user('y'.repeat(41)) })).json.code).toBe(30001)
    expect((await post(s, '/api/user', { body: { userId: 'x', userType: 1 } })).json.desc).toContain('name')
    expect((await post(s, '/api/user', { body: { userId: 'x', name: 'X', userType: 2 } })).json.code).toBe(200)
    expect((await post(s, '/api/user', { body: user('z') })).json).toMatchObject({ code: 50009, message: 'Database Full' })
  })

  it('checks photos: JPEG only, data: prefix accepted, NOFACE → 30002', async () => {
    const s = await sim()
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]).toString('base64')
    expect((await post(s, '/api/user', { body: user('a', { photo: png }) })).json).toMatchObject({ code: 30004, message: 'Avatar File Illegal' })
    expect((await post(s, '/api/user', { body: user('a', { photo: '@@not base64@@' }) })).json.code).toBe(30004)
    expect((await post(s, '/api/user', { body: user('a', { photo: testJpegBase64({ noFace: true }) }) })).json).toMatchObject({
      code: 30002,
      message: 'No Face Detected In The Image',
    })
    const jpeg = testJpegBase64()
    expect((await post(s, '/api/user', { body: user('a', { photo: `data:image/jpeg;base64,${jpeg}` }) })).json.code).toBe(200)
    expect(s.users().get('a')!.photo).toBe(jpeg)
    expect((await post(s, '/api/user/update/a', { body: { photo: testJpegBase64({ noFace: true }) } })).json.code).toBe(30002)
  })

  it('builds a structurally valid JPEG', () => {
    const j = makeTinyJpeg()
    expect([...j.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff])
    expect([...j.subarray(-2)]).toEqual([0xff, 0xd9])
    expect(makeTinyJpeg('NOFACE').includes('NOFACE')).toBe(true)
  })
})

describe('openapi simulator: records (8.3)', () => {
  async function allRecords(s: OpenapiSimulator, size: number, query: Record<string, string | number> = {}) {
    const out: any[] = []
    let total = -1
    for (let page = 1; ; page++) {
      const d = (await call(s, '/api/record', { query: { startTime: 0, endTime: 4_000_000_000, ...query, page, size } })).json.data
      total = d.total
      out.push(...d.data)
      if (d.data.length === 0 || page >= d.totalPage) break
    }
    return { total, out }
  }
  const newestFirst = (a: any, b: any) => b.signTime - a.signTime || b.id - a.id

  it('pages newest first with size capped at 1000', async () => {
    const s = await sim({ records: 2500 })
    const d = (await call(s, '/api/record', { query: { startTime: 0, endTime: 4_000_000_000, size: 5000 } })).json.data
    expect(d).toMatchObject({ total: 2500, pageNum: 1, size: 1000, pageSize: 1000, totalPage: 3 })
    const { out } = await allRecords(s, 1000)
    expect(out).toHaveLength(2500)
    expect(new Set(out.map((r) => r.id)).size).toBe(2500)
    expect(out).toEqual([...out].sort(newestFirst))
    expect(out[0].id).toBe(2500)
    expect(Math.abs(out[0].signTime - Math.floor(s.now() / 1000))).toBeLessThanOrEqual(1)
    // Equal signTimes happen (several records per second), and every field of SignObject is there.
    expect(out.some((r, i) => i > 0 && out[i - 1].signTime === r.signTime)).toBe(true)
    for (const k of ['id', 'userId', 'userType', 'name', 'signTime', 'type', 'inputType', 'similarity', 'temperature', 'temperatureState', 'wearMask', 'wearMaskAlarm', 'deviceMark']) {
      expect(out[3], k).toHaveProperty(k)
    }
    expect(out.some((r) => typeof r.signAvatar === 'string' && Buffer.from(r.signAvatar, 'base64')[0] === 0xff)).toBe(true)
    expect(out.some((r) => r.userType === -1 && r.type === -1)).toBe(true)
    expect((await call(s, '/api/record', { query: { startTime: 0, endTime: 4_000_000_000 } })).json.data.pageSize).toBe(20)
  })

  it('treats startTime and endTime as inclusive, and defaults to the device-local today', async () => {
    const s = await sim({ records: 100_000, utcOffsetMinutes: 480 })
    const first = (await call(s, '/api/record', { query: { startTime: 0, endTime: 4_000_000_000, size: 40 } })).json.data.data
    const t = first.find((r: any, i: number) => i > 0 && first[i - 1].signTime === r.signTime).signTime
    const exact = (await call(s, '/api/record', { query: { startTime: t, endTime: t, size: 1000 } })).json.data
    expect(exact.total).toBe(first.filter((r: any) => r.signTime === t).length)
    expect(exact.total).toBeGreaterThanOrEqual(2)
    expect(exact.data.every((r: any) => r.signTime === t)).toBe(true)

    const off = 480 * 60
    const nowSec = Math.floor(s.now() / 1000)
    const dayStart = Math.floor((nowSec + off) / 86_400) * 86_400 - off
    const today = (await call(s, '/api/record', { query: { size: 1000 } })).json.data
    const expected = (await call(s, '/api/record', { query: { startTime: dayStart, endTime: dayStart + 86_399, size: 1 } })).json.data.total
    expect(today.total).toBe(expected)
    expect(today.total).toBeLessThan(100_000)
    expect(today.data.every((r: any) => r.signTime >= dayStart)).toBe(true)
  })

  it('merges several batches and added records in the right order, on any page size', async () => {
    const s = await sim({ records: 300 })
    await sleep(1100)
    s.addRecords(200)
    s.addRecord({ signTime: Math.floor(s.now() / 1000) - 250 })
    s.addRecord({ signTime: Math.floor(s.now() / 1000) - 250 })
    s.addRecord()
    const { total, out } = await allRecords(s, 1000)
    expect(total).toBe(503)
    const sorted = [...out].sort(newestFirst)
    expect(out.map((r) => r.id)).toEqual(sorted.map((r) => r.id))
    for (const size of [7, 20, 333]) {
      const paged = await allRecords(s, size)
      expect(paged.out.map((r) => r.id), `size ${size}`).toEqual(sorted.map((r) => r.id))
    }
  })

  it('filters by type, userId and username', async () => {
    const s = await sim({ records: 3000, users: 30 })
    const strangers = await allRecords(s, 1000, { type: -1 })
    expect(strangers.total).toBeGreaterThan(0)
    expect(strangers.out.every((r) => r.type === -1)).toBe(true)
    const u5 = await allRecords(s, 1000, { userId: 'u5' })
    expect(u5.total).toBeGreaterThan(0)
    expect(u5.out.every((r) => r.userId === 'u5')).toBe(true)
    expect(u5.out).toEqual([...u5.out].sort(newestFirst))
    const byName = await allRecords(s, 1000, { username: s.users().get('u5')!.name as string })
    expect(byName.total).toBeGreaterThanOrEqual(u5.total)
    expect((await allRecords(s, 1000, { userId: '0', type: 0 })).total).toBe(3000)
    expect((await call(s, '/api/record', { query: { type: 7 } })).json.code).toBe(30001)
    expect((await call(s, '/api/record', { query: { page: 0 } })).json.code).toBe(30001)
  })

  it('serves 1,000,000 generated records with fast paging', async () => {
    const s = await sim({ records: 1_000_000 })
    const q = { startTime: 0, endTime: 4_000_000_000, size: 1000 }
    await call(s, '/api/record', { query: { ...q, page: 1 } }) // warm-up
    let t0 = performance.now()
    const p1 = (await call(s, '/api/record', { query: { ...q, page: 1 } })).json.data
    const firstMs = performance.now() - t0
    t0 = performance.now()
    const last = (await call(s, '/api/record', { query: { ...q, page: 1000 } })).json.data
    const lastMs = performance.now() - t0
    expect(p1).toMatchObject({ total: 1_000_000, size: 1000, totalPage: 1000 })
    expect(p1.data[0].id).toBe(1_000_000)
    expect(last.data).toHaveLength(1000)
    expect(last.data.at(-1).id).toBe(1)
    expect(firstMs).toBeLessThan(250)
    expect(lastMs).toBeLessThan(250)
    // A page in the middle, and one more record on top moves everything by one.
    const mid = (await call(s, '/api/record', { query: { ...q, page: 500 } })).json.data.data
    s.addRecord()
    const midAfter = (await call(s, '/api/record', { query: { ...q, page: 500 } })).json.data.data
    expect(midAfter[1].id).toBe(mid[0].id)
  })
})

describe('openapi simulator: record push WebSocket (8.3.3)', () => {
  it('greets a signed client and pushes new records', async () => {
    const s = await sim()
    const c = await openWs(wsUrl(s))
    expect(await c.next()).toEqual({ code: 20000, message: ' Connected!', desc: 'Connected!' })
    const rec = s.addRecord({ userId: 'p1', name: 'Pushed', userType: 1 })
    const m = await c.next()
    expect(m).toMatchObject({ code: 30000, message: 'push record', desc: '' })
    expect(m.data).toMatchObject({ id: rec.id, userId: 'p1', name: 'Pushed', type: 1 })
    expect(s.wsClientCount).toBe(1)
    c.ws.close()
    await c.closed
  })

  it('refuses a bad sign or stale timestamp with 20002 and closes', async () => {
    const s = await sim()
    for (const url of [wsUrl(s, Date.now(), 'bad'), wsUrl(s, Date.now() - 10 * 60_000), `ws://127.0.0.1:${s.wsPort}/api/record`]) {
      const c = await openWs(url)
      expect(await c.next()).toEqual({ code: 20002, message: 'Permission Denied!', desc: 'app key not exist' })
      await c.closed
    }
    expect(s.wsClientCount).toBe(0)
  })

  it('drops a silent client after wsIdleMs and keeps one that heartbeats', async () => {
    const s = await sim({ wsIdleMs: 300 })
    const quiet = await openWs(wsUrl(s))
    const chatty = await openWs(wsUrl(s))
    const beat = setInterval(() => chatty.ws.send('{"heartbeat":1}'), 100)
    const t0 = Date.now()
    await quiet.closed
    expect(Date.now() - t0).toBeLessThan(2000)
    await sleep(500)
    expect(chatty.ws.readyState).toBe(WebSocket.OPEN)
    clearInterval(beat)
    // ws pings count as heartbeats too.
    const pinger = setInterval(() => chatty.ws.ping(), 100)
    await sleep(500)
    expect(chatty.ws.readyState).toBe(WebSocket.OPEN)
    clearInterval(pinger)
    await chatty.closed
  })
})

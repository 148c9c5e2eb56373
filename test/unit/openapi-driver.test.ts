/**
 * The openapi driver against a small fake device written here from the document (sections 4–8):
 * node:http on 127.0.0.1, port 0, signature and clock checked on every request.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { WebSocketServer, type WebSocket as WsSocket } from 'ws'
import { DeviceError, statusOf, TimeoutError, UnsupportedError, UsageError } from '../../src/types/errors.js'
import { OpenapiDriver, type OpenapiCursor } from '../../src/drivers/openapi/driver.js'
import { createDriver, personRules } from '../../src/drivers/openapi/index.js'
import { sign } from '../../src/drivers/openapi/signing.js'
import type { AccessRecord, Logger, OperationContext, PersonOutcome } from '../../src/types/driver.js'

type Json = Record<string, unknown>
interface Rec {
  id: number
  signTime: number
  userId: string
  name: string
  type: number
  userType: number
  inputType: number
}
interface Req {
  method: string
  path: string
  query: URLSearchParams
  body?: Json
}
type Override = (req: Req) => Json | 'hang' | { status: number; text: string } | undefined

class FakeDevice {
  server!: Server
  port = 0
  password = '123456'
  users = new Map<string, Json>()
  records: Rec[] = []
  requests: Req[] = []
  inFlight = 0
  maxInFlight = 0
  delayMs = 0
  override?: Override
  /** Called after each /api/record page is computed (to add records "during" a pull). */
  onRecordPage?: (page: number) => void
  private sockets = new Set<import('node:net').Socket>()

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res))
    this.server.on('connection', (s) => {
      this.sockets.add(s)
      s.on('close', () => this.sockets.delete(s))
    })
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r))
    this.port = (this.server.address() as AddressInfo).port
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((r) => this.server.close(() => r()))
  }

  reset(): void {
    this.users.clear()
    this.records = []
    this.requests = []
    this.override = undefined
    this.onRecordPage = undefined
    this.delayMs = 0
    this.maxInFlight = 0
    this.password = '123456'
  }

  paths(prefix = '/'): string[] {
    return this.requests.filter((r) => r.path.startsWith(prefix)).map((r) => `${r.method} ${r.path}`)
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url!, 'http://x')
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const raw = Buffer.concat(chunks).toString()
    const r: Req = { method: req.method!, path: url.pathname, query: url.searchParams }
    if (raw) r.body = JSON.parse(raw)
    this.requests.push(r)
    this.inFlight++
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight)
    try {
      if (this.delayMs) await new Promise((d) => setTimeout(d, this.delayMs))
      const over = this.override?.(r)
      if (over === 'hang') return
      if (over && 'status' in over && typeof over.status === 'number') {
        res.writeHead(over.status as number, { 'content-type': 'text/plain' }).end(over.text as string)
        return
      }
      const answer = (over as Json | undefined) ?? this.route(r)
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer))
    } finally {
      this.inFlight--
    }
  }

  private route(r: Req): Json {
    const ts = r.query.get('timestamp') ?? ''
    if (!ts || !r.query.get('sign')) return err(30003, 'Missing Param')
    if (sign(ts, this.password) !== r.query.get('sign')) return err(10005, 'Signature Failed')
    if (Math.abs(Number(ts) - Date.now()) > 5 * 60_000) return err(10003, 'Request Expired')
    const p = r.path
    if (r.method === 'POST' && p === '/api/device/open') return ok()
    if (r.method === 'POST' && p === '/api/device/reboot') return ok()
    if (r.method === 'POST' && p === '/api/device/syncTime') return ok()
    if (r.method === 'POST' && p === '/api/device/information')
      return ok({ deviceID: 'D1', deviceName: 'gate', appVer: '1', webVer: '2', deviceMoel: 'F1' })
    if (r.method === 'POST' && p === '/api/device/network') return ok({ dhcpEnable: 0, ipAddress: '127.0.0.1' })
    if (r.method === 'POST' && p === '/api/device/smartface')
      return ok({ faceEnable: 1, faceThre: 5, tempWarnThre: 37.3, faceInterval: 10 })
    if (r.method === 'POST' && p === '/api/device/perpara') return ok({ unlockOuttime: 3, unlockControl: 1 })
    if (r.method === 'POST' && /^\/api\/device\/(networkcfg|smartfacecfg|perparacfg)$/.test(p)) return ok()
    if (r.method === 'POST' && p === '/api/device/jsonCmd') return { ...ok(), json: { echo: r.body } }
    if (r.method === 'POST' && p === '/api/user') {
      const u = r.body!
      if (u.photo === Buffer.from('noface').toString('base64')) return err(30002, 'No Face Detected In The Image')
      if (this.users.has(String(u.userId))) return err(30001, 'Param Invalid', 'user exists')
      this.users.set(String(u.userId), u)
      return ok(u)
    }
    let m = /^\/api\/user\/update\/(.+)$/.exec(p)
    if (r.method === 'POST' && m) {
      const id = decodeURIComponent(m[1]!)
      if (!this.users.has(id)) return err(20001, 'User Not Exists')
      if (r.body!.photo === Buffer.from('noface').toString('base64')) return err(30002, 'No Face Detected In The Image')
      this.users.set(id, r.body!)
      return ok(r.body)
    }
    m = /^\/api\/user\/delete\/(.+)$/.exec(p)
    if (r.method === 'GET' && m) {
      const id = decodeURIComponent(m[1]!)
      if (id === 'all') {
        this.users.clear()
        return ok()
      }
      if (!this.users.delete(id)) return err(20001, 'User Not Exists')
      return ok()
    }
    if (r.method === 'GET' && p === '/api/user/list') {
      let all = [...this.users.values()]
      const uid = r.query.get('userId')
      if (uid) all = all.filter((u) => String(u.userId).includes(uid))
      return ok(this.page(all, r.query, 10))
    }
    if (r.method === 'GET' && p === '/api/record') {
      const start = Number(r.query.get('startTime') ?? NaN)
      const end = Number(r.query.get('endTime') ?? NaN)
      const sel = this.records
        .filter((x) => x.signTime >= start && x.signTime <= end)
        .sort((a, b) => b.signTime - a.signTime || b.id - a.id)
      const page = this.page(sel, r.query, 1000)
      this.onRecordPage?.(Number(r.query.get('page') ?? 1))
      return ok(page)
    }
    return err(50004, 'Request Method Not Allowed')
  }

  private page(all: unknown[], q: URLSearchParams, max: number): Json {
    const size = Math.min(max, Number(q.get('size') ?? 10))
    const page = Number(q.get('page') ?? 1)
    const data = all.slice((page - 1) * size, page * size)
    return { total: all.length, pageNum: page, size: data.length, pageSize: size, totalPage: Math.ceil(all.length / size), data }
  }

  addRecords(n: number, firstId: number, time: (i: number) => number): void {
    for (let i = 0; i < n; i++) {
      this.records.push({ id: firstId + i, signTime: time(i), userId: `U${i % 7}`, name: 'n', type: 1, userType: 1, inputType: 1 })
    }
  }
}

function ok(data?: unknown): Json {
  return data === undefined ? { code: 200, message: 'OK', desc: '' } : { code: 200, message: 'OK', desc: '', data }
}
function err(code: number, message: string, desc = ''): Json {
  return { code, message, desc }
}

const logs: { level: string; msg: string; fields?: Record<string, unknown> }[] = []
const log: Logger = {
  debug: () => {},
  info: (msg, fields) => logs.push({ level: 'info', msg, fields }),
  notice: (msg, fields) => logs.push({ level: 'notice', msg, fields }),
  warn: (msg, fields) => logs.push({ level: 'warn', msg, fields }),
}
function ctx(timeoutMs = 5000, signal: AbortSignal = new AbortController().signal): OperationContext {
  return { signal, timeoutMs, log }
}
async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

const dev = new FakeDevice()
let driver: OpenapiDriver
let dir: string
const NOW = Math.floor(Date.now() / 1000)

beforeAll(async () => {
  await dev.start()
  dir = await mkdtemp(join(tmpdir(), 'doorctl-openapi-'))
})
afterAll(async () => {
  await dev.stop()
  await rm(dir, { recursive: true, force: true })
})
beforeEach(() => {
  dev.reset()
  logs.length = 0
  driver = new OpenapiDriver({ name: 'gate', protocol: 'openapi', tags: [], host: '127.0.0.1', port: dev.port })
})
afterEach(async () => {
  await driver.close()
})

describe('module shape', () => {
  it('createDriver and personRules', async () => {
    const d = createDriver({ name: 'x', protocol: 'openapi', tags: [], host: '127.0.0.1', port: dev.port }, { home: dir, log })
    expect(d.protocol).toBe('openapi')
    expect(personRules.protocol).toBe('openapi')
    await d.open('pulse', ctx())
    await d.close()
  })

  it('a device without a host is unsupported for direct operations', async () => {
    const d = createDriver({ name: 'plat', protocol: 'openapi', tags: [], deviceId: '7', mode: 'platform' }, { home: dir, log })
    await expect(d.reboot(ctx())).rejects.toBeInstanceOf(UnsupportedError)
  })
})

describe('device operations', () => {
  it('open pulse → POST /api/device/open with remark doorctl, signed', async () => {
    expect((await driver.open('pulse', ctx())).message).toMatch(/opened/)
    const r = dev.requests[0]!
    expect(`${r.method} ${r.path}`).toBe('POST /api/device/open')
    expect(r.query.get('remark')).toBe('doorctl')
    expect(r.query.get('sign')).toBe(sign(r.query.get('timestamp')!, '123456'))
  })

  it('other open modes are unsupported and nothing is sent', async () => {
    for (const mode of ['keep-open', 'close', 'lock', 'unlock'] as const) {
      const e = await driver.open(mode, ctx()).catch((x: unknown) => x)
      expect(e).toBeInstanceOf(UnsupportedError)
      expect((e as Error).message).toContain(mode)
      expect((e as Error).message).toContain('momentary')
    }
    expect(dev.requests).toHaveLength(0)
  })

  it('reboot and syncTime (the signed timestamp is the time to set)', async () => {
    await driver.reboot(ctx())
    const t = new Date(Date.now() - 60_000)
    await driver.syncTime(t, ctx())
    expect(dev.paths()).toEqual(['POST /api/device/reboot', 'POST /api/device/syncTime'])
    const q = dev.requests[1]!.query
    expect(q.get('timestamp')).toBe(String(t.getTime()))
    expect(q.get('sign')).toBe(sign(t.getTime(), '123456'))
  })

  it('info merges the four objects and adds deviceModel', async () => {
    const info = await driver.info(ctx())
    expect(info.device).toMatchObject({ deviceID: 'D1', deviceMoel: 'F1', deviceModel: 'F1' })
    expect(info.network).toMatchObject({ ipAddress: '127.0.0.1' })
    expect(info.smartface).toMatchObject({ faceThre: 5 })
    expect(info.perpara).toMatchObject({ unlockOuttime: 3 })
    expect(info.notes).toBeUndefined()
  })

  it('info leaves out a section that answers 40001, with a note', async () => {
    dev.override = (r) => (r.path === '/api/device/smartface' ? err(40001, 'Not Support', 'device-not-support') : undefined)
    const info = await driver.info(ctx())
    expect(info.smartface).toBeUndefined()
    expect(info.device).toBeDefined()
    expect(String(info.notes)).toContain('smartface')
  })

  it('40001 → UnsupportedError (status unsupported) with the device code', async () => {
    dev.override = (r) => (r.path === '/api/device/reboot' ? err(40001, 'Not Support', 'device-not-support') : undefined)
    const e = await driver.reboot(ctx()).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(UnsupportedError)
    expect(statusOf(e)).toBe('unsupported')
    expect((e as { deviceCode?: number }).deviceCode).toBe(40001)
    expect((e as Error).message).toContain('device answered 40001')
  })

  it('wrong password → DeviceError 10005 with a re-add suggestion', async () => {
    dev.password = 'other'
    const e = (await driver.reboot(ctx()).catch((x: unknown) => x)) as DeviceError
    expect(e).toBeInstanceOf(DeviceError)
    expect(e.deviceCode).toBe(10005)
    expect(e.message).toContain('device answered 10005 Signature Failed')
    expect(e.suggestion).toContain('doorctl device add gate --protocol openapi --host 127.0.0.1 --password-stdin')
  })

  it('a numeric-string code is read as the code', async () => {
    dev.override = () => ({ code: '10003', message: 'Request Expired', desc: '' })
    const e = (await driver.reboot(ctx()).catch((x: unknown) => x)) as DeviceError
    expect(e.deviceCode).toBe(10003)
    expect(e.message).toContain('more than 5 minutes')
  })

  it('config: get, set with coercion of the merged object, unknown keys, json', async () => {
    expect(driver.configSections()).toEqual(['network', 'smartface', 'perpara'])
    expect(await driver.getConfig('perpara', ctx())).toEqual({ unlockOuttime: 3, unlockControl: 1 })
    const res = await driver.setConfig('smartface', { faceThre: '8', tempWarnThre: '37.5' }, ctx())
    expect(res.message).toContain('faceThre=8')
    const sent = dev.requests.at(-1)!
    expect(`${sent.method} ${sent.path}`).toBe('POST /api/device/smartfacecfg')
    expect(sent.body).toEqual({ faceEnable: 1, faceThre: 8, tempWarnThre: 37.5, faceInterval: 10 })

    const before = dev.requests.length
    const e = await driver.setConfig('smartface', { bogus: '1' }, ctx()).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(UsageError)
    expect((e as UsageError).suggestion).toContain('faceThre')
    expect(dev.paths().slice(before)).toEqual(['POST /api/device/smartface'])
    await expect(driver.setConfig('smartface', { faceThre: 'x' }, ctx())).rejects.toBeInstanceOf(UsageError)
    await expect(driver.getConfig('audio', ctx())).rejects.toBeInstanceOf(UsageError)

    const j = await driver.setConfig('json', { cmd: 'x', n: 1 }, ctx())
    expect(dev.requests.at(-1)!.body).toEqual({ cmd: 'x', n: 1 })
    expect(j.data).toEqual({ json: { echo: { cmd: 'x', n: 1 } } })
  })
})

describe('transport failures', () => {
  it('connection refused → DeviceError naming the address', async () => {
    const s = createServer()
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
    const port = (s.address() as AddressInfo).port
    await new Promise<void>((r) => s.close(() => r()))
    const d = new OpenapiDriver({ name: 'x', protocol: 'openapi', tags: [], host: '127.0.0.1', port })
    const e = await d.reboot(ctx()).catch((x: unknown) => x)
    await d.close()
    expect(e).toBeInstanceOf(DeviceError)
    expect((e as Error).message).toContain(`cannot reach 127.0.0.1:${port}: connection refused`)
  })

  it('no answer within the timeout → TimeoutError', async () => {
    dev.override = () => 'hang'
    const t0 = Date.now()
    const e = await driver.reboot(ctx(300)).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(TimeoutError)
    expect(statusOf(e)).toBe('timeout')
    expect((e as Error).message).toContain('within 300 ms')
    expect(Date.now() - t0).toBeLessThan(3000)
  })

  it('abort signal cancels with its reason', async () => {
    dev.override = () => 'hang'
    const ac = new AbortController()
    setTimeout(() => ac.abort(new Error('stop now')), 50)
    await expect(driver.reboot(ctx(10_000, ac.signal))).rejects.toThrow('stop now')
  })

  it('non-JSON and non-200 answers → DeviceError naming the HTTP status', async () => {
    dev.override = () => ({ status: 500, text: 'oops' })
    await expect(driver.reboot(ctx())).rejects.toThrow(/answered HTTP 500: "oops"/)
    dev.override = () => ({ status: 200, text: '<html>' })
    await expect(driver.reboot(ctx())).rejects.toThrow(/HTTP 200 with something that is not JSON/)
    // An envelope inside a non-200 answer still counts by its code (AMBIGUITIES #4).
    dev.override = () => ({ status: 401, text: JSON.stringify(err(10005, 'Signature Failed')) })
    const e = (await driver.reboot(ctx()).catch((x: unknown) => x)) as DeviceError
    expect(e.deviceCode).toBe(10005)
    expect(e.message).toContain('HTTP 401')
  })
})

describe('people', () => {
  it('listPeople reads 25 people in 3 pages of 10', async () => {
    for (let i = 0; i < 25; i++) dev.users.set(`P${i}`, { userId: `P${i}`, userType: 1, name: `n${i}`, photo: i % 2 ? 'x' : '' })
    const people = await collect(driver.listPeople(ctx()))
    expect(people.map((p) => p.id)).toEqual([...dev.users.keys()])
    expect(people.filter((p) => p.hasPhoto)).toHaveLength(12)
    const lists = dev.requests.filter((r) => r.path === '/api/user/list')
    expect(lists.map((r) => [r.query.get('page'), r.query.get('size')])).toEqual([
      ['1', '10'],
      ['2', '10'],
      ['3', '10'],
    ])
  })

  it('listPeople stops on an empty page and on 50008', async () => {
    dev.override = (r) => (r.path === '/api/user/list' ? ok({ total: 99, data: [] }) : undefined)
    expect(await collect(driver.listPeople(ctx()))).toEqual([])
    dev.override = () => err(50008, 'Search List Null')
    expect(await collect(driver.listPeople(ctx()))).toEqual([])
  })

  it('upsert: add, or update when the id exists; photo read when sent', async () => {
    dev.users.set('A', { userId: 'A', userType: 1, name: 'old' })
    const photo = join(dir, 'b.jpg')
    await writeFile(photo, Buffer.from([0xff, 0xd8, 0xff, 0xd9]))
    const out = await collect(
      driver.upsertPeople(
        [
          { id: 'A', name: 'new', role: 'admin' },
          { id: 'B', name: 'b', photoPath: photo },
        ],
        ctx(),
      ),
    )
    const byId = Object.fromEntries(out.map((o) => [o.id, o]))
    expect(byId.A).toMatchObject({ status: 'ok', action: 'updated' })
    expect(byId.A!.message).toMatch(/no admin type/)
    expect(byId.B).toMatchObject({ status: 'ok', action: 'added', message: 'added' })
    expect(dev.users.get('A')).toMatchObject({ name: 'new', icNumber: '', mobile: '', jobNumber: '', remark: '' })
    expect(dev.users.get('B')!.photo).toBe(Buffer.from([0xff, 0xd8, 0xff, 0xd9]).toString('base64'))
    expect(dev.paths('/api/user').filter((p) => p.includes('update'))).toEqual(['POST /api/user/update/A'])
  })

  it('per-person failures are reported and the rest carries on', async () => {
    const noface = join(dir, 'noface.jpg')
    await writeFile(noface, 'noface')
    dev.override = (r) => (r.path === '/api/user' && r.body?.userId === 'X' ? err(30001, 'Param Invalid', 'bad') : undefined)
    const out = await collect(
      driver.upsertPeople(
        [
          { id: 'F', name: 'f', photoPath: noface },
          { id: 'M', name: 'm', photoPath: join(dir, 'missing.jpg') },
          { id: 'X', name: 'x' },
          { id: 'G', name: 'g' },
        ],
        ctx(),
      ),
    )
    const byId = Object.fromEntries(out.map((o) => [o.id, o]))
    expect(byId.F).toMatchObject({ status: 'failed', deviceCode: 30002 })
    expect(byId.F!.message).toContain('no face detected')
    expect(byId.M).toMatchObject({ status: 'failed' })
    expect(byId.M!.message).toContain('cannot read photo')
    // add refused (30001) → update → 20001: the add's own error is reported
    expect(byId.X).toMatchObject({ status: 'failed', deviceCode: 30001 })
    expect(byId.X!.message).toContain('30001')
    expect(byId.G).toMatchObject({ status: 'ok', action: 'added' })
    // 30002 is never taken for "exists"
    expect(dev.paths().filter((p) => p.includes('/update/F'))).toEqual([])
    expect(dev.paths().filter((p) => p.includes('/update/X'))).toEqual(['POST /api/user/update/X'])
  })

  it('an auth error aborts the whole device and stops sending', async () => {
    dev.password = 'other'
    const people = Array.from({ length: 50 }, (_, i) => ({ id: `P${i}`, name: 'p' }))
    const e = await collect(driver.upsertPeople(people, ctx())).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(DeviceError)
    expect((e as DeviceError).deviceCode).toBe(10005)
    expect(dev.requests.length).toBeLessThanOrEqual(4)
  })

  it('40001 on add makes the device unsupported', async () => {
    dev.override = () => err(40001, 'Not Support')
    const e = await collect(driver.upsertPeople([{ id: 'a', name: 'a' }], ctx())).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(UnsupportedError)
  })

  it('keeps at most 4 requests in flight and yields as they finish', async () => {
    dev.delayMs = 30
    const people = Array.from({ length: 20 }, (_, i) => ({ id: `P${i}`, name: 'p' }))
    const out = await collect(driver.upsertPeople(people, ctx()))
    expect(out).toHaveLength(20)
    expect(out.every((o) => o.status === 'ok')).toBe(true)
    expect(dev.maxInFlight).toBeLessThanOrEqual(4)
    expect(dev.maxInFlight).toBeGreaterThan(1)
  })

  it('inflight option', async () => {
    const d = new OpenapiDriver({ name: 'x', protocol: 'openapi', tags: [], host: '127.0.0.1', port: dev.port }, { inflight: 1 })
    dev.delayMs = 10
    await collect(d.upsertPeople(Array.from({ length: 6 }, (_, i) => ({ id: `Q${i}`, name: 'q' })), ctx()))
    await d.close()
    expect(dev.maxInFlight).toBe(1)
  })

  it('abort stops an import', async () => {
    dev.delayMs = 20
    const ac = new AbortController()
    const people = Array.from({ length: 100 }, (_, i) => ({ id: `P${i}`, name: 'p' }))
    const seen: PersonOutcome[] = []
    const e = await (async () => {
      for await (const o of driver.upsertPeople(people, ctx(5000, ac.signal))) {
        seen.push(o)
        if (seen.length === 3) ac.abort(new Error('interrupted'))
      }
    })().catch((x: unknown) => x)
    expect((e as Error).message).toBe('interrupted')
    expect(dev.requests.length).toBeLessThan(20)
  })

  it('delete: ids in the path, 20001 → skipped, "all" refused as an id, everyone', async () => {
    dev.users.set('A', { userId: 'A' })
    dev.users.set('B', { userId: 'B' })
    const out = await collect(driver.deletePeople(['A', 'nobody', 'all'], ctx()))
    const byId = Object.fromEntries(out.map((o) => [o.id, o]))
    expect(byId.A).toMatchObject({ status: 'ok', action: 'deleted' })
    expect(byId.nobody).toMatchObject({ status: 'skipped', message: 'not on the device', deviceCode: 20001 })
    expect(byId.all).toMatchObject({ status: 'failed' })
    expect(dev.paths().sort()).toEqual(['GET /api/user/delete/A', 'GET /api/user/delete/nobody'])
    expect(dev.users.has('B')).toBe(true)
    const everyone = await collect(driver.deletePeople('all', ctx()))
    expect(everyone).toEqual([{ id: 'all', status: 'ok', action: 'deleted', message: 'every person deleted' }])
    expect(dev.users.size).toBe(0)
  })

  it('enrollFace updates the existing user with the photo', async () => {
    dev.users.set('E1', { userId: 'E1', userType: 2, name: 'e', mobile: '5', startTime: 100 })
    dev.users.set('E10', { userId: 'E10', userType: 1, name: 'other' })
    const photo = join(dir, 'e.jpg')
    await writeFile(photo, Buffer.from([0xff, 0xd8, 1, 0xff, 0xd9]))
    const o = await driver.enrollFace('E1', { photoPath: photo }, ctx())
    expect(o).toMatchObject({ id: 'E1', status: 'ok', action: 'enrolled' })
    expect(dev.users.get('E1')).toMatchObject({ userType: 2, name: 'e', mobile: '5', startTime: 100, icNumber: '' })
    expect(dev.users.get('E1')!.photo).toBe(Buffer.from([0xff, 0xd8, 1, 0xff, 0xd9]).toString('base64'))
    const list = dev.requests.find((r) => r.path === '/api/user/list')!
    expect(list.query.get('userId')).toBe('E1')
  })

  it('enrollFace: unknown person, no face, capture', async () => {
    const photo = join(dir, 'nf.jpg')
    await writeFile(photo, 'noface')
    expect(await driver.enrollFace('ghost', { photoPath: photo }, ctx())).toMatchObject({
      status: 'failed',
      message: 'no such person on the device; import them first',
    })
    dev.users.set('E1', { userId: 'E1', userType: 1, name: 'e' })
    expect(await driver.enrollFace('E1', { photoPath: photo }, ctx())).toMatchObject({
      status: 'failed',
      message: 'no face detected in the photo',
      deviceCode: 30002,
    })
    await expect(driver.enrollFace('E1', { capture: true }, ctx())).rejects.toBeInstanceOf(UnsupportedError)
  })
})

describe('records pull', () => {
  const T = NOW - 10_000

  function recordPages(): number[] {
    return dev.requests.filter((r) => r.path === '/api/record').map((r) => Number(r.query.get('page')))
  }

  it('reads the last page first and yields oldest first; startTime 0 and a fixed endTime', async () => {
    // 2500 records, three per second
    dev.addRecords(2500, 1, (i) => T + Math.floor(i / 3))
    const pull = driver.pullRecords({}, ctx())
    const recs = await collect(pull.records)
    expect(recs).toHaveLength(2500)
    expect(recs.map((r) => Number(r.recordId))).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1))
    const reqs = dev.requests.filter((r) => r.path === '/api/record')
    const newest = T + 833
    const endNow = reqs[0]!.query.get('endTime')
    expect(Math.abs(Number(endNow) - Math.floor(Date.now() / 1000))).toBeLessThanOrEqual(2)
    // probe, then seconds ≤ newest-2 walked from the last page, then the newest seconds
    expect(reqs.map((r) => [r.query.get('page'), r.query.get('startTime'), r.query.get('endTime')])).toEqual([
      ['1', '0', endNow],
      ['1', '0', String(newest - 1)],
      ['3', '0', String(newest - 1)],
      ['2', '0', String(newest - 1)],
      ['1', '0', String(newest - 1)],
      ['1', String(newest - 2), endNow],
    ])
    for (const r of reqs) expect(r.query.get('size')).toBe('1000')
    // 2500 = 3·833 + 1: the last second holds one record
    expect(pull.cursor()).toEqual({ time: newest, ids: ['2500'] })
  })

  it('a consumer that stops early gets a cursor covering exactly what it took', async () => {
    dev.addRecords(2500, 1, (i) => T + i)
    const pull = driver.pullRecords({}, ctx())
    let n = 0
    for await (const r of pull.records) {
      if (++n === 1500) {
        expect(r.recordId).toBe('1500')
        break
      }
    }
    expect(pull.cursor()).toEqual({ time: T + 1499, ids: ['1500'] })
  })

  it('a single page is read once', async () => {
    dev.addRecords(5, 1, (i) => T + i)
    const recs = await collect(driver.pullRecords({}, ctx()).records)
    expect(recs.map((r) => r.recordId)).toEqual(['1', '2', '3', '4', '5'])
    expect(recordPages()).toEqual([1])
  })

  it('cursor: equal-second records are neither repeated nor skipped across runs', async () => {
    dev.addRecords(10, 1, (i) => T + Math.floor(i / 4)) // seconds T..T+2, last second holds ids 9,10
    const p1 = driver.pullRecords({}, ctx())
    expect((await collect(p1.records)).map((r) => r.recordId)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10'])
    const c1 = p1.cursor() as OpenapiCursor
    expect(c1).toEqual({ time: T + 2, ids: ['9', '10'] })

    // later: one more record in the same second, and two newer ones
    dev.addRecords(1, 11, () => T + 2)
    dev.addRecords(2, 12, () => T + 5)
    dev.requests = []
    const p2 = driver.pullRecords({ after: JSON.parse(JSON.stringify(c1)) }, ctx())
    expect((await collect(p2.records)).map((r) => r.recordId)).toEqual(['11', '12', '13'])
    expect(dev.requests.find((r) => r.path === '/api/record')!.query.get('startTime')).toBe(String(T + 1))
    expect(p2.cursor()).toEqual({ time: T + 5, ids: ['12', '13'] })

    // nothing new: the cursor stays
    const p3 = driver.pullRecords({ after: p2.cursor() }, ctx())
    expect(await collect(p3.records)).toEqual([])
    expect(p3.cursor()).toEqual({ time: T + 5, ids: ['12', '13'] })
  })

  it('a device whose filter is exclusive still gives every record (one second wider asked)', async () => {
    dev.addRecords(6, 1, (i) => T + i)
    const p1 = driver.pullRecords({ since: new Date((T + 2) * 1000), until: new Date((T + 4) * 1000 + 500) }, ctx())
    expect((await collect(p1.records)).map((r) => r.recordId)).toEqual(['3', '4', '5'])
    const q = dev.requests.find((r) => r.path === '/api/record')!.query
    expect(q.get('startTime')).toBe(String(T + 1))
    expect(q.get('endTime')).toBe(String(T + 5))
  })

  function expectComplete(recs: AccessRecord[], originals: number): void {
    const ids = recs.map((r) => Number(r.recordId))
    const seen = new Set(ids)
    expect(seen.size).toBe(ids.length)
    expect(Array.from({ length: originals }, (_, i) => i + 1).filter((i) => !seen.has(i))).toEqual([])
    expect(recs.every((r) => r.time.getTime() <= NOW * 1000)).toBe(true)
  }

  it('records arriving during the pull (newest seconds) are not duplicated and none is missed', async () => {
    dev.addRecords(3500, 1, (i) => T + Math.floor(i / 2))
    let next = 100_000
    // After each page, three records arrive inside the window (a device clock behind ours) and one after it.
    dev.onRecordPage = () => {
      dev.addRecords(3, next, () => NOW - 5)
      next += 3
      dev.addRecords(1, next++, () => NOW + 3600)
    }
    const recs = await collect(driver.pullRecords({}, ctx()).records)
    expectComplete(recs, 3500)
    const times = recs.map((r) => r.time.getTime())
    expect([...times].sort((a, b) => a - b)).toEqual(times)
  })

  it('records landing in front of the pages being walked shift them, and nothing is missed', async () => {
    dev.addRecords(3500, 1, (i) => T + Math.floor(i / 2))
    const newest = T + 1749
    let next = 100_000
    let calls = 0
    // A device whose clock went back: new records land among the older seconds, at the front of the walk.
    dev.onRecordPage = () => {
      if (++calls > 6) return
      dev.addRecords(calls * 7, next, () => newest - 2)
      next += calls * 7
    }
    const recs = await collect(driver.pullRecords({}, ctx()).records)
    expectComplete(recs, 3500)
    const pages = dev.requests.filter((r) => r.path === '/api/record').length
    expect(pages).toBeLessThan(20)
  })

  it('dedupes a record the device repeats on two pages', async () => {
    dev.addRecords(2000, 1, (i) => T + i)
    dev.override = (r) => {
      if (r.path !== '/api/record' || r.query.get('page') !== '1') return undefined
      // page 1 also carries the newest record of page 2 (an odd, overlapping filter)
      const sel = [...dev.records].sort((a, b) => b.signTime - a.signTime)
      return ok({ total: 2000, pageNum: 1, size: 1000, pageSize: 1000, totalPage: 2, data: [...sel.slice(0, 999), sel[1000]] })
    }
    const recs = await collect(driver.pullRecords({}, ctx()).records)
    const ids = recs.map((r) => r.recordId)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('a device that ignores startTime/endTime costs no extra walk', async () => {
    dev.addRecords(2500, 1, (i) => T + Math.floor(i / 3))
    dev.override = (r) => {
      if (r.path !== '/api/record') return undefined
      const page = Number(r.query.get('page'))
      const sel = [...dev.records].sort((a, b) => b.signTime - a.signTime || b.id - a.id)
      const data = sel.slice((page - 1) * 1000, page * 1000)
      return ok({ total: sel.length, pageNum: page, size: data.length, pageSize: 1000, totalPage: Math.ceil(sel.length / 1000), data })
    }
    const p1 = driver.pullRecords({}, ctx())
    expect((await collect(p1.records)).map((r) => Number(r.recordId))).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1))
    expect(recordPages()).toEqual([1, 1, 3, 2, 1, 1])
    dev.addRecords(5, 2501, () => T + 900)
    dev.requests = []
    const p2 = driver.pullRecords({ after: p1.cursor() }, ctx())
    expect((await collect(p2.records)).map((r) => r.recordId)).toEqual(['2501', '2502', '2503', '2504', '2505'])
    expect(recordPages()).toEqual([1])
  })

  it('an empty log (50008 or total 0) yields nothing', async () => {
    expect(await collect(driver.pullRecords({}, ctx()).records)).toEqual([])
    dev.override = () => err(50008, 'Search List Null')
    const p = driver.pullRecords({}, ctx())
    expect(await collect(p.records)).toEqual([])
    expect(p.cursor()).toEqual({ time: 0, ids: [] })
  })

  it('a bad stored cursor is a usage error', () => {
    expect(() => driver.pullRecords({ after: 'yesterday' }, ctx())).toThrow(UsageError)
  })

  it('a device that caps the page size below 1000 is walked with its size', async () => {
    dev.addRecords(45, 1, (i) => T + i)
    dev.override = (r) => {
      if (r.path !== '/api/record') return undefined
      const page = Number(r.query.get('page'))
      const sel = [...dev.records].sort((a, b) => b.signTime - a.signTime)
      const data = sel.slice((page - 1) * 20, page * 20)
      return ok({ total: 45, pageNum: page, size: data.length, pageSize: 20, totalPage: 3, data })
    }
    const recs = await collect(driver.pullRecords({}, ctx()).records)
    expect(recs.map((r) => Number(r.recordId))).toEqual(Array.from({ length: 45 }, (_, i) => i + 1))
  })
})

describe('live records (8.3.3)', () => {
  let wss: WebSocketServer
  let wsPort: number
  let onConn: (ws: WsSocket, url: URL) => void
  const conns: URL[] = []

  beforeAll(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false })
    await new Promise<void>((r) => wss.once('listening', () => r()))
    wsPort = (wss.address() as AddressInfo).port
    wss.on('connection', (ws, req) => {
      const url = new URL(req.url!, 'ws://x')
      conns.push(url)
      onConn(ws, url)
    })
  })
  afterAll(async () => {
    for (const c of wss.clients) c.terminate()
    await new Promise<void>((r) => wss.close(() => r()))
  })
  beforeEach(() => {
    conns.length = 0
  })

  function liveDriver(password = '123456', timings = { heartbeatMs: 50, deadMs: 200, backoffMs: 20 }): OpenapiDriver {
    return new OpenapiDriver(
      { name: 'gate', protocol: 'openapi', tags: [], host: '127.0.0.1', port: dev.port, wsPort, password },
      { live: timings },
    )
  }
  const push = (ws: WsSocket, id: number): void =>
    ws.send(JSON.stringify({ code: 30000, message: 'push record', desc: '', data: { id, signTime: NOW, userId: 'U', name: 'n', type: 1, inputType: 3 } }))

  it('greets, pushes records, heartbeats with pings, ends on abort', async () => {
    let pings = 0
    onConn = (ws, url) => {
      expect(url.pathname).toBe('/api/record')
      expect(url.searchParams.get('sign')).toBe(sign(url.searchParams.get('timestamp')!, '123456'))
      ws.on('ping', () => pings++)
      ws.send(JSON.stringify({ code: 20000, message: ' Connected!', desc: 'Connected!' }))
      push(ws, 1)
      setTimeout(() => push(ws, 2), 150)
    }
    const d = liveDriver()
    const ac = new AbortController()
    const got: AccessRecord[] = []
    for await (const r of d.watchRecords(ctx(1000, ac.signal))) {
      got.push(r)
      if (got.length === 2) ac.abort()
    }
    expect(got.map((r) => [r.recordId, r.method])).toEqual([
      ['1', 'card'],
      ['2', 'card'],
    ])
    expect(pings).toBeGreaterThanOrEqual(1)
    expect(conns).toHaveLength(1)
  })

  it('20002 → DeviceError (wrong password)', async () => {
    onConn = (ws) => ws.send(JSON.stringify({ code: 20002, message: 'Permission Denied!', desc: 'app key not exist' }))
    const e = await collect(liveDriver('bad').watchRecords(ctx())).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(DeviceError)
    expect((e as DeviceError).message).toContain('password is wrong')
    expect((e as DeviceError).deviceCode).toBe(20002)
  })

  it('a silent link is dropped after the dead time and reconnected, with a log line', async () => {
    onConn = (ws) => {
      if (conns.length === 1) {
        ws.send(JSON.stringify({ code: 20000, message: ' Connected!', desc: 'Connected!' }))
        return // then silence: no pongs (autoPong off), no messages
      }
      ws.send(JSON.stringify({ code: 20000, message: ' Connected!', desc: 'Connected!' }))
      push(ws, 7)
    }
    const ac = new AbortController()
    const got: AccessRecord[] = []
    const t0 = Date.now()
    for await (const r of liveDriver().watchRecords(ctx(1000, ac.signal))) {
      got.push(r)
      ac.abort()
    }
    expect(got.map((r) => r.recordId)).toEqual(['7'])
    expect(conns.length).toBe(2)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200)
    expect(logs.some((l) => l.level === 'warn' && /reconnecting/.test(l.msg))).toBe(true)
    expect(conns[0]!.searchParams.get('timestamp')).not.toBe(null)
  })

  it('reconnects with backoff when the device is unreachable, until aborted', async () => {
    const d = new OpenapiDriver(
      { name: 'gate', protocol: 'openapi', tags: [], host: '127.0.0.1', port: dev.port, wsPort: 1, password: '123456' },
      { live: { heartbeatMs: 50, deadMs: 200, backoffMs: 10 } },
    )
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 300)
    expect(await collect(d.watchRecords(ctx(1000, ac.signal)))).toEqual([])
    const delays = logs.filter((l) => /reconnecting/.test(l.msg)).map((l) => Number(l.fields?.inMs))
    expect(delays.length).toBeGreaterThanOrEqual(3)
    expect(delays.slice(0, 3)).toEqual([10, 20, 40])
  })

  it('timings come from the environment when not given', async () => {
    const { liveTimings } = await import('../../src/drivers/openapi/live.js')
    expect(liveTimings({}, {})).toEqual({ heartbeatMs: 10_000, deadMs: 33_000, backoffMs: 500, maxBackoffMs: 30_000 })
    expect(
      liveTimings({}, { DOORCTL_OPENAPI_HEARTBEAT_MS: '100', DOORCTL_OPENAPI_DEAD_MS: '300', DOORCTL_OPENAPI_BACKOFF_MS: '5' }),
    ).toEqual({ heartbeatMs: 100, deadMs: 300, backoffMs: 5, maxBackoffMs: 30_000 })
    expect(liveTimings({ deadMs: 1 }, { DOORCTL_OPENAPI_DEAD_MS: '300' }).deadMs).toBe(1)
  })
})

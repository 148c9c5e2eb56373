import { createHash, pbkdf2Sync } from 'node:crypto'
import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net'
import { Aedes } from 'aedes'
import { connect as mqttConnect, type MqttClient } from 'mqtt'
import { WebSocketServer, type WebSocket } from 'ws'
import { afterEach, describe, expect, it } from 'vitest'
import { until } from '../helpers.js'
import {
  BEST_CODES,
  BEST_DEFAULT_PRODUCT_ID,
  bestDevKey,
  bestPasswordDigest,
  bestSign,
  createBestSimulator,
  makeJpeg,
  type BestSimulator,
  type BestSimulatorOptions,
} from '../../src/simulators/best/index.js'

// ---------------------------------------------------------------------------------------------
// A fake best server, written in the test from protocols/best.txt (and CLI.md for our side:
// getBrokerServer on the HTTP port, ws://HOST:PORT/best, MQTT topics best/{sn}/up|down QoS 1),
// so that the simulator is checked against the document rather than against its own code.

type Json = Record<string, any>
const OK = '00000000'

interface FileUpload {
  size: number
  checksum: string
  parts: { offset: number; data: Buffer }[]
  data?: Buffer
}

interface Dev {
  sn: string
  messages: Json[]
  mids: Set<string>
  send?: (msg: Json) => void
  connections: number
  heartbeats: Json[]
  responses: Map<string, Json>
  waiters: Map<string, (m: Json) => void>
  userUploads: Json[]
  verifyLogs: Json[]
  verifyPhotos: { entry: Json; bytes: Buffer }[]
  files: Map<string, FileUpload>
  report?: Json
  authCode?: string
  secret?: string
}

interface FakeOptions {
  brokerKey?: string
  /** When set, devKey must be PBKDF2(deviceSecret, productId) at register, accredit and login. */
  deviceSecret?: string
  /** What dev.accredit hands out as `secret` (default `secret-{sn}`). */
  accreditSecret?: string
  refuseLogin?: boolean
  /** payload.results of the answer to dev.system.sync.time. */
  syncAnswer?: Json
  mqtt?: boolean
}

/** Every violation of "all values are strings", "mid ≤ 32 and unique per device". */
function checkShape(msg: Json, dev: { mids: Set<string> } | undefined, out: string[]): void {
  const walk = (v: unknown, path: string): void => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`))
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k)
    else if (typeof v !== 'string') out.push(`${msg.funcId}: ${path} is ${typeof v}`)
  }
  walk(msg, '')
  if (typeof msg.mid !== 'string' || msg.mid.length === 0 || msg.mid.length > 32) out.push(`${msg.funcId}: bad mid ${msg.mid}`)
  else if (dev) {
    if (dev.mids.has(msg.mid)) out.push(`${msg.funcId}: mid ${msg.mid} repeated`)
    dev.mids.add(msg.mid)
  }
}

class FakeBestServer {
  readonly devices = new Map<string, Dev>()
  readonly brokerRequests: { path: string; query: URLSearchParams; raw: string }[] = []
  readonly violations: string[] = []
  readonly photos = new Map<string, Buffer>()
  /** QoS of publishes the device made on best/{sn}/up, and of its subscriptions. */
  readonly upQos: number[] = []
  readonly subscriptions: { topic: string; qos: number; clientId: string }[] = []
  httpPort = 0
  mqttPort = 0
  private http!: Server
  private wss!: WebSocketServer
  private broker?: Aedes
  private mqttNet?: NetServer
  private mqttClient?: MqttClient
  private seq = 0

  constructor(readonly opts: FakeOptions = {}) {}

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`
  }

  static async start(opts: FakeOptions = {}): Promise<FakeBestServer> {
    const s = new FakeBestServer(opts)
    await s.listen()
    return s
  }

  dev(sn: string): Dev {
    let d = this.devices.get(sn)
    if (!d) {
      d = { sn, messages: [], mids: new Set(), connections: 0, heartbeats: [], responses: new Map(), waiters: new Map(), userUploads: [], verifyLogs: [], verifyPhotos: [], files: new Map() }
      this.devices.set(sn, d)
    }
    return d
  }

  funcIds(sn: string): string[] {
    return this.dev(sn).messages.map((m) => m.funcId)
  }

  private async listen(): Promise<void> {
    this.http = createHttpServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x')
      if (req.method === 'GET' && u.pathname === '/v3/device/getBrokerServer') {
        this.brokerRequests.push({ path: u.pathname, query: u.searchParams, raw: req.url ?? '' })
        const q = u.searchParams
        const sn = q.get('sn') ?? ''
        const want = bestSign(sn, q.get('nonce') ?? '', q.get('timestamp') ?? '', this.opts.brokerKey ?? '')
        res.setHeader('content-type', 'application/json')
        if (q.get('sign') !== want) return res.end(JSON.stringify({ code: '10000001', message: 'bad sign' }))
        const type = q.get('type')
        const url = type === 'best-m' ? `mqtt://127.0.0.1:${this.mqttPort}` : `ws://127.0.0.1:${this.httpPort}/best`
        return res.end(JSON.stringify({ code: OK, message: 'success', payload: { results: { url } } }))
      }
      const photo = this.photos.get(u.pathname)
      if (req.method === 'GET' && photo) {
        res.setHeader('content-type', 'image/jpeg')
        return res.end(photo)
      }
      res.statusCode = 404
      res.end('not found')
    })
    this.wss = new WebSocketServer({ server: this.http, path: '/best' })
    this.wss.on('connection', (ws: WebSocket) => {
      const conn: { sn?: string; early: Json[] } = { early: [] }
      const send = (m: Json): void => ws.send(JSON.stringify(m))
      ws.on('message', (data) => this.handle(conn, JSON.parse(data.toString()), send))
    })
    await new Promise<void>((r) => this.http.listen(0, '127.0.0.1', r))
    this.httpPort = (this.http.address() as AddressInfo).port

    if (this.opts.mqtt) {
      this.broker = await Aedes.createBroker()
      this.broker.on('publish', (packet, client) => {
        if (client && /^best\/[^/]+\/up$/.test(packet.topic)) this.upQos.push(packet.qos)
      })
      this.broker.on('subscribe', (subs, client) => {
        for (const s of subs) this.subscriptions.push({ topic: s.topic, qos: s.qos, clientId: client.id })
      })
      this.mqttNet = createNetServer((sock) => {
        sock.setNoDelay(true) // else every hop waits out Nagle + delayed ACK (~40 ms)
        this.broker!.handle(sock)
      })
      await new Promise<void>((r) => this.mqttNet!.listen(0, '127.0.0.1', r))
      this.mqttPort = (this.mqttNet.address() as AddressInfo).port
      // The server side is an ordinary MQTT client of the broker, as the gateway would be.
      const client = mqttConnect(`mqtt://127.0.0.1:${this.mqttPort}`, { clientId: 'fake-best-server', reconnectPeriod: 0 })
      await new Promise<void>((r, j) => {
        client.once('connect', () => r())
        client.once('error', j)
      })
      await client.subscribeAsync('best/+/up', { qos: 1 })
      const conns = new Map<string, { sn?: string; early: Json[] }>()
      client.on('message', (topic, payload) => {
        const sn = topic.split('/')[1]!
        let conn = conns.get(sn)
        if (!conn) conns.set(sn, (conn = { early: [] }))
        this.handle(conn, JSON.parse(payload.toString()), (m) => void client.publish(`best/${sn}/down`, JSON.stringify(m), { qos: 1 }), sn)
      })
      this.mqttClient = client
    }
  }

  private handle(conn: { sn?: string; early: Json[] }, msg: Json, send: (m: Json) => void, topicSn?: string): void {
    const f: string = msg.funcId
    const reply = (extra: Json = {}, withFuncId = true): void =>
      send({ ...(withFuncId ? { funcId: 'cmd.dev.response' } : {}), code: OK, message: 'success', mid: msg.mid, ...extra })
    if (f === 'dev.register') {
      conn.sn = topicSn ?? msg.sn
      const d = this.dev(conn.sn!)
      d.connections++
      d.send = send
      for (const e of conn.early) this.record(d, e)
      conn.early = []
    }
    if (!conn.sn) {
      conn.early.push(msg)
      checkShape(msg, undefined, this.violations)
    }
    const d = conn.sn ? this.dev(conn.sn) : undefined
    if (d) this.record(d, msg)
    const p: Json = msg.payload?.params ?? {}
    const productId = p.productId ?? BEST_DEFAULT_PRODUCT_ID
    switch (f) {
      // 2.1 / 2.2: the answers carry no funcId.
      case 'device.exchange.publicKey':
        return reply({ payload: { results: { publicKey: 'server-public-key' } } }, false)
      case 'device.exchange.factor':
        return reply({ payload: { results: { factor: 'server-factor' } } }, false)
      case 'dev.register': {
        if (this.opts.deviceSecret !== undefined && p.devKey !== bestDevKey(this.opts.deviceSecret, productId)) return reply({ code: '10000403', message: 'bad devKey' })
        d!.authCode = `auth-${conn.sn}`
        return reply({ payload: { results: { authCode: d!.authCode } } })
      }
      case 'dev.accredit': {
        if (p.authCode !== d!.authCode) return reply({ code: '10000401', message: 'bad authCode' })
        d!.secret = this.opts.accreditSecret ?? `secret-${conn.sn}`
        return reply({ payload: { results: { secret: d!.secret } } })
      }
      case 'dev.login': {
        const plain = this.opts.deviceSecret ?? d!.secret!
        if (this.opts.refuseLogin || p.authCode !== d!.authCode || p.secret !== d!.secret || p.devKey !== bestDevKey(plain, productId)) return reply({ code: '10000403', message: 'refused' })
        return reply()
      }
      case 'dev.report':
        d!.report = p
        return reply({ payload: { results: { timezone: '+08:00', supportHeartbeat: '1', heartbeatInterval: '60', multiBioDataSupport: '0:0:0:0:0:0:0:0:0:0', multiBioPhotoSupport: '0:0:0:0:0:0:0:0:0:1', funcIds: ['dev.heartbeat'] } } })
      case 'dev.heartbeat':
        d!.heartbeats.push(msg)
        return reply()
      case 'dev.system.sync.time':
        return reply({ payload: { results: this.opts.syncAnswer ?? { time: '2031-05-06T07:08:09+02:00', timeZone: '+02:00' } } })
      case 'dev.cmd.response': {
        const cmdId: string = p.cmdId
        d!.responses.set(cmdId, msg)
        d!.waiters.get(cmdId)?.(msg)
        d!.waiters.delete(cmdId)
        return reply()
      }
      case 'dev.data.upload.user':
        d!.userUploads.push(msg)
        return reply()
      case 'dev.data.upload.verifyLog':
        d!.verifyLogs.push(...(p.verifyLog ?? []))
        return reply()
      case 'dev.data.upload.verifyPhoto': {
        for (const e of p.verifyPhotos ?? []) {
          const fileId = e.contentFileId || e.contentFileDialog
          const bytes = e.content ? Buffer.from(e.content, 'base64') : d!.files.get(fileId)?.data
          if (!bytes) return reply({ code: '10000404', message: 'no such file' })
          d!.verifyPhotos.push({ entry: e, bytes })
        }
        return reply()
      }
      case 'dev.file.upload.start':
        d!.files.set(p.fileId, { size: Number(p.size), checksum: p.checksum, parts: [] })
        return reply()
      case 'dev.file.upload.package': {
        const fu = d!.files.get(p.fileId)
        if (!fu) return reply({ code: '10000404', message: 'no such file' })
        fu.parts.push({ offset: Number(p.offset), data: Buffer.from(p.content, 'base64') })
        return reply()
      }
      case 'dev.file.upload.end': {
        const fu = d!.files.get(p.fileId)
        if (!fu) return reply({ code: '10000404', message: 'no such file' })
        const data = Buffer.concat([...fu.parts].sort((a, b) => a.offset - b.offset).map((x) => x.data))
        if (data.length !== fu.size || (fu.checksum && createHash('md5').update(data).digest('hex') !== fu.checksum)) return reply({ code: '10000422', message: 'checksum' })
        fu.data = data
        return reply()
      }
      default:
        return reply({ code: '10000400', message: `unknown ${f}` })
    }
  }

  private record(d: Dev, msg: Json): void {
    d.messages.push(msg)
    checkShape(msg, d, this.violations)
  }

  /** Sends a cmd.* to the device; `response` resolves with its dev.cmd.response. */
  command(sn: string, funcId: string, params: Json = {}, cmdId = `cmd${++this.seq}`): { cmdId: string; response: Promise<Json> } {
    const d = this.dev(sn)
    const response = new Promise<Json>((r) => d.waiters.set(cmdId, r))
    d.send!({ funcId, imme: '1', mid: `srv${++this.seq}`, payload: { params: { cmdId, ...params } } })
    return { cmdId, response }
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate()
    await new Promise<void>((r) => this.wss.close(() => r()))
    this.http.closeAllConnections()
    await new Promise<void>((r) => this.http.close(() => r()))
    if (this.mqttClient) await this.mqttClient.endAsync(true)
    if (this.broker) await new Promise<void>((r) => this.broker!.close(() => r()))
    if (this.mqttNet) await new Promise<void>((r) => this.mqttNet!.close(() => r()))
  }
}

// ---------------------------------------------------------------------------------------------

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

async function setup(fake: FakeOptions = {}, sim: Partial<BestSimulatorOptions> = {}): Promise<{ srv: FakeBestServer; sim: BestSimulator; sn: string }> {
  const srv = await FakeBestServer.start({ brokerKey: 'broker-key', ...fake })
  cleanups.push(() => srv.close())
  const sn = sim.sn ?? 'BEST00000001'
  const s = createBestSimulator({
    server: srv.url,
    sn,
    transport: 'ws',
    productId: BEST_DEFAULT_PRODUCT_ID,
    brokerKey: 'broker-key',
    reconnectMs: 30,
    requestTimeoutMs: 5000,
    ...sim,
  })
  cleanups.push(() => s.stop())
  return { srv, sim: s, sn }
}

/** The checks every test ends with: every value a string, mids ≤ 32 and unique per device, nothing odd seen by the device. */
function expectClean(srv: FakeBestServer, sim: BestSimulator): void {
  expect(srv.violations).toEqual([])
  expect(sim.events.badMessages).toEqual([])
}

describe('best: document test vectors (README.md)', () => {
  it('getBrokerServer sign = md5(sn + nonce + timestamp + secretKey)', () => {
    expect(bestSign('abcd', '123456', '1646102871000', 'aabbcc')).toBe('bdd58420c142a11569ff3eb8a9ec535c')
  })
  it('devKey = PBKDF2-HMAC-SHA256(secret, productId text bytes, 1000, 32)', () => {
    expect(bestDevKey('123456', '5d9b11e1a3f448ae81f9f920e976d852')).toBe('7f666475e1cea7d10964055343367701c2fb3a96f82e8b0adc25147992c8bb65')
  })
  it('user password = the same PBKDF2 with passwordSalt hex-decoded (document copy is OCR-damaged)', () => {
    const d = bestPasswordDigest('123456', '5d9b11e1a3f448ae81f9f920e976d852')
    expect(d).toBe('486bbe9335aca3878178a51542e4e919d1146a01bdd0f2ad5a68043e2289abf7')
    expect(d).not.toBe('486bbe9335aca3878178a51542e4e919d1146ao1bddof2ad5a68o43e2289abf7')
    // and the two salts really differ: text bytes vs hex bytes
    expect(pbkdf2Sync('123456', Buffer.from('5d9b11e1a3f448ae81f9f920e976d852', 'hex'), 1000, 32, 'sha256').toString('hex')).toBe(d)
    expect(bestDevKey('123456', '5d9b11e1a3f448ae81f9f920e976d852')).not.toBe(d)
  })
})

describe('best simulator over WebSocket (best-w)', () => {
  it('asks getBrokerServer with the documented query (sn, type, nonce, timestamp, sign)', async () => {
    const { srv, sim, sn } = await setup()
    const before = Date.now()
    await sim.start()
    expect(srv.brokerRequests).toHaveLength(1)
    const { path, query, raw } = srv.brokerRequests[0]!
    expect(path).toBe('/v3/device/getBrokerServer')
    expect([...query.keys()].sort()).toEqual(['nonce', 'sign', 'sn', 'timestamp', 'type'])
    expect(raw).not.toContain('×') // AMBIGUITIES best #1
    expect(query.get('sn')).toBe(sn)
    expect(query.get('type')).toBe('best-w')
    const nonce = query.get('nonce')!
    expect(nonce.length).toBeGreaterThan(0)
    expect(nonce.length).toBeLessThanOrEqual(32)
    const ts = Number(query.get('timestamp'))
    expect(query.get('timestamp')).toMatch(/^\d{13}$/) // milliseconds
    expect(ts).toBeGreaterThanOrEqual(before - 1000)
    expect(ts).toBeLessThanOrEqual(Date.now() + 1000)
    expect(query.get('sign')).toMatch(/^[0-9a-f]{32}$/)
    expect(query.get('sign')).toBe(bestSign(sn, nonce, query.get('timestamp')!, 'broker-key'))
    expectClean(srv, sim)
  })

  it('logs in: exchange, register, accredit, login, report, then heartbeats', async () => {
    const { srv, sim, sn } = await setup({}, { heartbeatMs: 25 })
    await sim.start()
    expect(sim.loggedIn).toBe(true)
    expect(sim.events.logins).toBe(1)
    expect(srv.funcIds(sn).slice(0, 6)).toEqual(['device.exchange.publicKey', 'device.exchange.factor', 'dev.register', 'dev.accredit', 'dev.login', 'dev.report'])
    const [pub, factor, reg, acc, login, report] = srv.dev(sn).messages
    expect(pub!.payload.params.publicKey).toMatch(/\S/)
    expect(factor!.payload.params.factor).toMatch(/\S/)
    expect(reg!.sn).toBe(sn)
    expect(reg!.payload.params).toMatchObject({ protType: 'best-w', protVer: '1.0.0', productId: BEST_DEFAULT_PRODUCT_ID, devType: 'acc' })
    expect(acc!.payload.params).toMatchObject({ productId: BEST_DEFAULT_PRODUCT_ID, authCode: `auth-${sn}` })
    // No device secret given: the secret comes from dev.accredit and devKey is derived from it.
    expect(login!.payload.params).toEqual({ productId: BEST_DEFAULT_PRODUCT_ID, devKey: bestDevKey(`secret-${sn}`, BEST_DEFAULT_PRODUCT_ID), authCode: `auth-${sn}`, secret: `secret-${sn}` })
    expect(report!.sn).toBe(sn)
    expect(report!.payload.params).toMatchObject({ lockCount: '1', userCount: '0', maxPackageSize: '64' })
    expect(Array.isArray(report!.payload.params.funcIds)).toBe(true)
    expect(report!.payload.params.funcIds).toContain('dev.cmd.response')

    await until(() => srv.dev(sn).heartbeats.length >= 2, 5000, 'two heartbeats')
    const hb = srv.dev(sn).heartbeats[0]!
    expect(hb.sn).toBeUndefined() // AMBIGUITIES best #13
    expect(hb.payload.params.isFree).toBe('1')
    expect(sim.events.heartbeats).toBeGreaterThanOrEqual(2)
    expectClean(srv, sim)
  })

  it('with a device secret, devKey = PBKDF2(secret, productId) from register on', async () => {
    const { srv, sim, sn } = await setup({ deviceSecret: '123456', accreditSecret: 'login-password' }, { deviceSecret: '123456' })
    await sim.start()
    const msgs = srv.dev(sn).messages
    const key = '7f666475e1cea7d10964055343367701c2fb3a96f82e8b0adc25147992c8bb65'
    expect(msgs.find((m) => m.funcId === 'dev.register')!.payload.params.devKey).toBe(key)
    expect(msgs.find((m) => m.funcId === 'dev.accredit')!.payload.params.devKey).toBe(key)
    expect(msgs.find((m) => m.funcId === 'dev.login')!.payload.params).toMatchObject({ devKey: key, secret: 'login-password' })
    expectClean(srv, sim)
  })

  it('start() rejects when the server refuses the login or getBrokerServer', async () => {
    const a = await setup({ refuseLogin: true })
    await expect(a.sim.start()).rejects.toThrow(/dev\.login refused: code 10000403/)
    expect(a.sim.loggedIn).toBe(false)

    const b = await setup({}, { brokerKey: 'wrong-key', sn: 'BEST00000002' })
    await expect(b.sim.start()).rejects.toThrow(/getBrokerServer refused: code 10000001/)
    expect(b.srv.devices.size).toBe(0)

    const c = await setup({ deviceSecret: 'right' }, { deviceSecret: 'wrong', sn: 'BEST00000003' })
    await expect(c.sim.start()).rejects.toThrow(/dev\.register refused/)
  })

  it('answers every command with dev.cmd.response carrying its cmdId', async () => {
    const { srv, sim, sn } = await setup()
    srv.photos.set('/photos/ok.jpg', makeJpeg(5000))
    srv.photos.set('/photos/noface.jpg', makeJpeg(5000, 'NOFACE'))
    srv.photos.set('/photos/text.jpg', Buffer.from('this is not a jpeg'))
    await sim.start()
    const salt = 'c09eb7463827cda245f3a398bd453c42'
    const password = bestPasswordDigest('4321', salt)
    const user = {
      pin: '2956', role: '1', password, passwordSalt: salt,
      startTime: '2020-01-01T00:00:00+08:00', endTime: '2030-12-31T23:59:59+08:00',
      firstName: 'huiwu', lastName: 'lin', funSwitch: '0', disable: '0',
      bioDatas: [{ no: '0', index: '0', valid: '1', duress: '0', type: '2', majorVer: '10', minorVer: '1', fmt: '0', tmp: 'abcd' }],
      ruleType: '2',
    }

    // cmd.data.update.user: stored as received (password digest and salt untouched)
    let c = srv.command(sn, 'cmd.data.update.user', { users: [user, { pin: '7', firstName: 'seven', funSwitch: '0', disable: '0' }] })
    let r = await c.response
    expect(r.code).toBe(OK)
    expect(r.payload.params.cmdId).toBe(c.cmdId)
    expect(sim.users().get('2956')).toMatchObject({ password, passwordSalt: salt, startTime: user.startTime, endTime: user.endTime, firstName: 'huiwu' })
    expect(sim.users().size).toBe(2)

    // validity without an offset is refused (non-zero code), the good user of the batch is kept
    c = srv.command(sn, 'cmd.data.update.user', { users: [{ pin: '8', firstName: 'x', funSwitch: '0', disable: '0', endTime: '2030-12-31 23:59:59' }, { pin: '9', firstName: 'nine', funSwitch: '0', disable: '0' }] })
    r = await c.response
    expect(r.code).not.toBe(OK)
    expect(r.message).toMatch(/8: endTime/)
    expect(sim.users().has('8')).toBe(false)
    expect(sim.users().has('9')).toBe(true)

    // cmd.data.update.bioPhoto: downloaded from the url
    c = srv.command(sn, 'cmd.data.update.bioPhoto', { bioPhotos: [{ pin: '2956', no: '0', index: '0', type: '9', url: `${srv.url}/photos/ok.jpg` }] })
    r = await c.response
    expect(r.code).toBe(OK)
    const bio = (sim.users().get('2956')!.bioPhotos as Json[])[0]!
    expect(bio).toMatchObject({ type: '9', size: '5000', md5: createHash('md5').update(srv.photos.get('/photos/ok.jpg')!).digest('hex') })

    for (const [url, pin, code] of [
      [`${srv.url}/photos/noface.jpg`, '2956', BEST_CODES.invalidPhoto],
      [`${srv.url}/photos/text.jpg`, '2956', BEST_CODES.invalidPhoto],
      [`${srv.url}/photos/missing.jpg`, '2956', BEST_CODES.downloadFailed],
      [`${srv.url}/photos/ok.jpg`, 'nobody', BEST_CODES.notFound],
    ] as const) {
      c = srv.command(sn, 'cmd.data.update.bioPhoto', { bioPhotos: [{ pin, no: '0', index: '0', type: '9', url }] })
      r = await c.response
      expect(r.code, url).toBe(code)
      expect(r.payload.params.cmdId).toBe(c.cmdId)
    }

    // cmd.option.set
    c = srv.command(sn, 'cmd.option.set', { option: { meetRoomName: 'Room 1', meetRoomCapacity: '12' } })
    r = await c.response
    expect(r.code).toBe(OK)
    expect(sim.events.options).toEqual([{ meetRoomName: 'Room 1', meetRoomCapacity: '12' }])

    // cmd.data.delete.user, cmd.data.clear.user
    c = srv.command(sn, 'cmd.data.delete.user', { pins: ['7'] })
    expect((await c.response).code).toBe(OK)
    expect([...sim.users().keys()].sort()).toEqual(['2956', '9'])
    c = srv.command(sn, 'cmd.data.clear.user')
    expect((await c.response).code).toBe(OK)
    expect(sim.users().size).toBe(0)

    // a funcId the device does not know is still answered, with a non-zero code
    c = srv.command(sn, 'cmd.firmware.upgrade.all', { url: 'x' })
    r = await c.response
    expect(r.code).toBe(BEST_CODES.unsupported)
    expect(r.payload.params.cmdId).toBe(c.cmdId)

    expect(sim.events.commands).toMatchObject({ 'cmd.data.update.user': 2, 'cmd.data.update.bioPhoto': 5, 'cmd.option.set': 1, 'cmd.data.delete.user': 1, 'cmd.data.clear.user': 1 })
    expectClean(srv, sim)
  })

  it('cmd.data.query.user is answered with dev.data.upload.user before dev.cmd.response', async () => {
    const { srv, sim, sn } = await setup()
    await sim.start()
    const users = [
      { pin: '1', role: '0', firstName: 'one', funSwitch: '0', disable: '0', startTime: '2024-01-01T00:00:00+08:00', endTime: '2025-01-01T00:00:00+08:00' },
      { pin: '2', firstName: 'two', funSwitch: '0', disable: '1', password: bestPasswordDigest('1', 'aa'), passwordSalt: 'aa' },
    ]
    expect((await srv.command(sn, 'cmd.data.update.user', { users }).response).code).toBe(OK)

    let c = srv.command(sn, 'cmd.data.query.user', { pin: '' })
    let r = await c.response
    expect(r.code).toBe(OK)
    const d = srv.dev(sn)
    const order = d.messages.map((m) => m.funcId)
    expect(order.lastIndexOf('dev.data.upload.user')).toBeLessThan(order.lastIndexOf('dev.cmd.response'))
    let up = d.userUploads.at(-1)!
    expect(up.payload.params.cmdId).toBe(c.cmdId) // AMBIGUITIES best #8: added
    expect(up.payload.params.users).toEqual([
      { pin: '1', role: '0', startTime: users[0]!.startTime, endTime: users[0]!.endTime, firstName: 'one', funSwitch: '0', disable: '0' },
      { pin: '2', password: users[1]!.password, passwordSalt: 'aa', firstName: 'two', funSwitch: '0', disable: '1' },
    ])

    c = srv.command(sn, 'cmd.data.query.user', { pin: '2' })
    r = await c.response
    expect(r.code).toBe(OK)
    up = d.userUploads.at(-1)!
    expect(up.payload.params.users.map((u: Json) => u.pin)).toEqual(['2'])

    c = srv.command(sn, 'cmd.data.query.user', { pin: '404' })
    r = await c.response
    expect(r.code).toBe(BEST_CODES.notFound)
    expect(d.userUploads.at(-1)!.payload.params.users).toEqual([])
    expectClean(srv, sim)
  })

  it('cmd.system.sync.time: asks dev.system.sync.time and applies the answer (time + time zone)', async () => {
    const { srv, sim, sn } = await setup()
    await sim.start()
    const c = srv.command(sn, 'cmd.system.sync.time')
    const r = await c.response
    expect(r.code).toBe(OK)
    expect(r.payload.params.cmdId).toBe(c.cmdId)
    const msgs = srv.dev(sn).messages
    const ask = msgs.find((m) => m.funcId === 'dev.system.sync.time')!
    expect(ask.sn).toBeUndefined()
    expect(msgs.indexOf(ask)).toBeLessThan(msgs.indexOf(srv.dev(sn).responses.get(c.cmdId)!))
    expect(sim.events.timeSyncs).toEqual([{ time: '2031-05-06T07:08:09+02:00', timeZone: '+02:00' }])
    // The device clock now runs from the server's time, in the server's zone.
    const log = await sim.verifyLog({ pin: '1' })
    expect(log.verifyTime).toMatch(/^2031-05-06T07:08:\d{2}\+02:00$/)
  })

  it('reads a sync answer given as epoch milliseconds with a separate zone', async () => {
    const { srv, sim, sn } = await setup({ syncAnswer: { serverTime: String(Date.UTC(2030, 0, 2, 3, 4, 5)), timezone: '-05:00' } })
    await sim.start()
    expect((await srv.command(sn, 'cmd.system.sync.time').response).code).toBe(OK)
    const log = await sim.verifyLog({ time: new Date(Date.UTC(2030, 0, 2, 3, 4, 5)) })
    expect(log.verifyTime).toBe('2030-01-01T22:04:05-05:00')
    expectClean(srv, sim)
  })

  it('cmd.control.reboot: answered, then the device reboots and logs in again', async () => {
    const { srv, sim, sn } = await setup()
    await sim.start()
    const c = srv.command(sn, 'cmd.control.reboot', { operator: 'luther' })
    const r = await c.response
    expect(r.code).toBe(OK)
    expect(r.payload.params.cmdId).toBe(c.cmdId)
    await until(() => sim.events.reboots === 1 && sim.events.logins === 2 && sim.loggedIn, 5000, 'reboot and second login')
    expect(srv.dev(sn).connections).toBe(2)
    expect(srv.brokerRequests).toHaveLength(2)
    // and commands work on the new connection
    expect((await srv.command(sn, 'cmd.option.set', { option: { meetRoomName: 'a', meetRoomCapacity: '1' } }).response).code).toBe(OK)
    expectClean(srv, sim)
  })

  it('uploads a verifyLog with a small photo inline (verifyPhoto content)', async () => {
    const { srv, sim, sn } = await setup()
    await sim.start()
    const photo = makeJpeg(3000)
    const log = await sim.verifyLog({ pin: '2956', photo, time: new Date(Date.UTC(2024, 5, 25, 16, 0, 0)) })
    expect(log).toMatchObject({ pin: '2956', verifyTime: '2024-06-26T00:00:00+08:00', status: '255', recodeType: '255' })
    expect(log.meetCode).toMatch(/\S/)
    const d = srv.dev(sn)
    expect(d.verifyLogs).toEqual([log])
    expect(d.verifyPhotos).toHaveLength(1)
    expect(d.verifyPhotos[0]!.bytes.equals(photo)).toBe(true)
    expect(d.verifyPhotos[0]!.entry).toMatchObject({ pin: '2956', logId: log.logId, photoTime: log.verifyTime, extension: 'jpg' })
    expect(srv.funcIds(sn)).not.toContain('dev.file.upload.start')
    // logIds are unique per device
    const second = await sim.verifyLog({ pin: '2956' })
    expect(second.logId).not.toBe(log.logId)
    expectClean(srv, sim)
  })

  it('uploads a large photo through dev.file.upload.start/package/end with an md5 checksum', async () => {
    const { srv, sim, sn } = await setup()
    await sim.start()
    const photo = makeJpeg(200_000)
    const log = await sim.verifyLog({ pin: '5', photo })
    const d = srv.dev(sn)
    const msgs = d.messages
    const start = msgs.find((m) => m.funcId === 'dev.file.upload.start')!
    const fileId: string = start.payload.params.fileId
    expect(fileId).toMatch(/^[0-9a-zA-Z]{1,64}$/)
    expect(start.payload.params.size).toBe('200000')
    expect(start.payload.params.checksum).toBe(createHash('md5').update(photo).digest('hex'))
    const packages = msgs.filter((m) => m.funcId === 'dev.file.upload.package')
    expect(packages.length).toBeGreaterThan(1)
    let expected = 0
    for (const p of packages) {
      expect(p.payload.params.fileId).toBe(fileId)
      expect(Number(p.payload.params.offset)).toBe(expected)
      expected += Buffer.from(p.payload.params.content, 'base64').length
      expect(JSON.stringify(p).length).toBeLessThanOrEqual(64 * 1024) // maxPackageSize 64 KB
    }
    expect(expected).toBe(200_000)
    const order = msgs.map((m) => m.funcId)
    expect(order.indexOf('dev.file.upload.end')).toBeGreaterThan(order.lastIndexOf('dev.file.upload.package'))
    expect(order.indexOf('dev.data.upload.verifyPhoto')).toBeGreaterThan(order.indexOf('dev.file.upload.end'))
    const vp = d.verifyPhotos[0]!
    expect(vp.entry).toMatchObject({ content: '', contentFileId: fileId, contentFileDialog: fileId, logId: log.logId })
    expect(vp.bytes.equals(photo)).toBe(true)
    expectClean(srv, sim)
  })

  it('dropOnCommand: disconnects without answering, comes back, answers the re-sent command', async () => {
    const { srv, sim, sn } = await setup({}, { dropOnCommand: 'cmd.data.clear.user' })
    await sim.start()
    const first = srv.command(sn, 'cmd.data.clear.user')
    await until(() => sim.events.logins === 2 && sim.loggedIn, 5000, 'reconnect after the drop')
    expect(srv.dev(sn).responses.has(first.cmdId)).toBe(false)
    expect(srv.dev(sn).connections).toBe(2)
    const again = srv.command(sn, 'cmd.data.clear.user', {}, first.cmdId)
    const r = await again.response
    expect(r.code).toBe(OK)
    expect(r.payload.params.cmdId).toBe(first.cmdId)
    expect(sim.events.commands['cmd.data.clear.user']).toBe(2)
    expectClean(srv, sim)
  })

  it('every value sent is a string, mids are ≤ 32 characters and unique across reconnects', async () => {
    const { srv, sim, sn } = await setup({}, { heartbeatMs: 10 })
    await sim.start()
    await until(() => srv.dev(sn).heartbeats.length >= 5, 5000, 'heartbeats')
    await sim.verifyLog({ photo: makeJpeg(100_000) })
    await srv.command(sn, 'cmd.control.reboot').response
    await until(() => sim.events.logins === 2 && sim.loggedIn, 5000, 'second login')
    await until(() => srv.dev(sn).heartbeats.length >= 8, 5000, 'heartbeats')
    const d = srv.dev(sn)
    expect(d.mids.size).toBe(d.messages.length)
    for (const m of d.messages) expect(m.mid.length).toBeLessThanOrEqual(32)
    expectClean(srv, sim)
  })
})

describe('best simulator over MQTT (best-m)', () => {
  it('logs in through the broker on best/{sn}/up|down with QoS 1 and executes commands', async () => {
    const { srv, sim, sn } = await setup({ mqtt: true }, { transport: 'mqtt', heartbeatMs: 25 })
    await sim.start()
    expect(sim.loggedIn).toBe(true)
    expect(srv.brokerRequests[0]!.query.get('type')).toBe('best-m')
    expect(srv.funcIds(sn).slice(0, 6)).toEqual(['device.exchange.publicKey', 'device.exchange.factor', 'dev.register', 'dev.accredit', 'dev.login', 'dev.report'])
    expect(srv.dev(sn).messages[2]!.payload.params.protType).toBe('best-m')
    expect(srv.subscriptions).toContainEqual({ topic: `best/${sn}/down`, qos: 1, clientId: sn })
    await until(() => srv.dev(sn).heartbeats.length >= 2, 5000, 'heartbeats over mqtt')

    const c = srv.command(sn, 'cmd.data.update.user', { users: [{ pin: '42', firstName: 'mq', funSwitch: '0', disable: '0' }] })
    const r = await c.response
    expect(r.code).toBe(OK)
    expect(r.payload.params.cmdId).toBe(c.cmdId)
    expect(sim.users().has('42')).toBe(true)

    const q = srv.command(sn, 'cmd.data.query.user', { pin: '42' })
    expect((await q.response).code).toBe(OK)
    expect(srv.dev(sn).userUploads.at(-1)!.payload.params.users[0].pin).toBe('42')

    const t = srv.command(sn, 'cmd.system.sync.time')
    expect((await t.response).code).toBe(OK)
    expect(sim.events.timeSyncs).toHaveLength(1)

    const log = await sim.verifyLog({ pin: '42', photo: makeJpeg(90_000) })
    expect(srv.dev(sn).verifyLogs.at(-1)).toEqual(log)
    expect(srv.dev(sn).verifyPhotos.at(-1)!.bytes.length).toBe(90_000)

    // heartbeats keep coming every 25 ms: one the broker has seen may not have reached the server yet
    await until(() => srv.upQos.length === srv.dev(sn).messages.length, 5000, 'every message published on up to reach the server')
    expect(new Set(srv.upQos)).toEqual(new Set([1]))
    expectClean(srv, sim)
  })

  it('reconnects through getBrokerServer after a dropped MQTT link', async () => {
    const { srv, sim, sn } = await setup({ mqtt: true }, { transport: 'mqtt', dropOnCommand: 'cmd.control.reboot' })
    await sim.start()
    const c = srv.command(sn, 'cmd.control.reboot')
    await until(() => sim.events.logins === 2 && sim.loggedIn, 5000, 'second login over mqtt')
    expect(srv.brokerRequests).toHaveLength(2)
    expect(sim.events.reboots).toBe(0) // dropped before executing
    const again = srv.command(sn, 'cmd.control.reboot', {}, c.cmdId)
    expect((await again.response).code).toBe(OK)
    await until(() => sim.events.reboots === 1 && sim.events.logins === 3 && sim.loggedIn, 5000, 'reboot over mqtt')
    expectClean(srv, sim)
  })
})

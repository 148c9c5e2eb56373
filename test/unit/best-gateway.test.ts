/**
 * The best handler mounted in real Gateways, with a WebSocket client and an MQTT client playing
 * the device as best.txt describes it (getBrokerServer → exchange → register → accredit → login →
 * report → heartbeats; cmd.* answered with dev.cmd.response; uploads). Everything on 127.0.0.1,
 * random ports; timers of the handler are shortened through its options, nothing sleeps.
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { Inventory } from '../../src/store/inventory.js'
import { brokerSign, devKeyOf, userPasswordHash } from '../../src/drivers/best/codec.js'
import { createHandler, type BestOptions } from '../../src/drivers/best/gateway.js'
import { GATEWAY_USER, loadBrokerSecret, withCredentials } from '../../src/drivers/best/broker-auth.js'
import type { DeviceEntry, Logger } from '../../src/types/driver.js'
import { Gateway } from '../../src/gateway/gateway.js'
import type { CommandKind, QueuedCommand } from '../../src/types/gateway.js'

type Json = Record<string, any>
const SN = 'BEST0001'
const PRODUCT = '5d9b11e1a3f448ae81f9f920e976d852'
const SECRET = '123456'
const BROKER_KEY = 'aabbcc'
const FACE_PATH = join(import.meta.dirname, '..', 'fixtures', 'face.jpg')
const FACE = readFileSync(FACE_PATH)

async function until(cond: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

let midSeq = 0
const nextMid = () => `m${Date.now().toString(16)}${(++midSeq).toString(16).padStart(6, '0')}`

/** A device: sends requests, collects everything the server sends, answers commands when told to. */
class Player {
  received: Json[] = []
  replies = new Map<string, Json[]>()
  closed = false
  private sendText!: (text: string) => void
  constructor(readonly sn: string) {}

  attach(send: (text: string) => void) {
    this.sendText = send
  }

  onText(text: string) {
    const m = JSON.parse(text) as Json
    this.received.push(m)
    if (m.funcId === 'cmd.dev.response' || m.funcId === undefined) {
      const list = this.replies.get(m.mid) ?? []
      list.push(m)
      this.replies.set(m.mid, list)
    }
  }

  raw(text: string) {
    this.sendText(text)
  }

  send(msg: Json): string {
    const full = { mid: nextMid(), ...msg }
    this.sendText(JSON.stringify(full))
    return full.mid
  }

  async request(funcId: string, params?: Json, extra: Json = {}): Promise<Json> {
    const mid = this.send({ funcId, ...extra, ...(params ? { payload: { params } } : {}) })
    await until(() => this.replies.has(mid), 5000, `answer to ${funcId}`)
    return this.replies.get(mid)![0]
  }

  commands(funcId?: string): Json[] {
    return this.received.filter((m) => typeof m.funcId === 'string' && m.funcId.startsWith('cmd.') && m.funcId !== 'cmd.dev.response' && (!funcId || m.funcId === funcId))
  }

  async command(funcId: string, n = 1): Promise<Json> {
    await until(() => this.commands(funcId).length >= n, 5000, `command ${funcId}`)
    return this.commands(funcId)[n - 1]
  }

  respond(cmd: Json, code = '00000000', message = 'ok'): void {
    this.send({ funcId: 'dev.cmd.response', code, message, payload: { params: { cmdId: cmd.payload.params.cmdId } } })
  }

  /** provision: a device without a production secret (empty devKey until accredit gives it one). */
  async login(opts: { productId?: string; secret?: string; devKey?: string; withSn?: boolean; provision?: boolean } = {}): Promise<Json> {
    const productId = opts.productId ?? PRODUCT
    const devKey = opts.provision ? '' : opts.devKey ?? devKeyOf(opts.secret ?? SECRET, productId)
    const sn = opts.withSn === false ? {} : { sn: this.sn }
    expect((await this.request('device.exchange.publicKey', { publicKey: 'dev-public-key' })).code).toBe('00000000')
    expect((await this.request('device.exchange.factor', { factor: 'dev-factor' })).code).toBe('00000000')
    const reg = await this.request('dev.register', { protType: 'best-w', protVer: '1.0.0', productId, devKey, devType: 'acc' }, sn)
    if (reg.code !== '00000000') return reg
    const authCode = reg.payload.results.authCode
    const acc = await this.request('dev.accredit', { productId, devKey, authCode }, sn)
    if (acc.code !== '00000000') return acc
    const secret = acc.payload.results.secret
    const login = await this.request('dev.login', { productId, devKey: opts.provision ? devKeyOf(secret, productId) : devKey, authCode, secret }, sn)
    return login
  }

  report(extra: Json = {}): Promise<Json> {
    return this.request('dev.report', { fwVer: 'ZAM170-NF-Ver1.1.21', devModel: 'TDB08Z-PLUS', userCount: '0', multiBioDataSupport: '0:1', multiBioPhotoSupport: '0:0:1', capturePic: '2', funcIds: ['dev.report'], ...extra }, { sn: this.sn })
  }
}

async function wsPlayer(url: string, sn = SN): Promise<Player & { ws: WebSocket }> {
  const p = new Player(sn) as Player & { ws: WebSocket }
  const ws = new WebSocket(url)
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  ws.on('message', (d) => p.onText(d.toString()))
  ws.on('close', () => { p.closed = true })
  p.ws = ws
  p.attach((t) => ws.send(t))
  return p
}

async function mqttPlayer(url: string, sn = SN): Promise<Player & { client: MqttClient }> {
  const p = new Player(sn) as Player & { client: MqttClient }
  const client = connect(url, { clientId: sn, clean: true, reconnectPeriod: 0 })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
  })
  await client.subscribeAsync(`best/${sn}/down`, { qos: 1 })
  client.on('message', (_t, payload) => p.onText(payload.toString()))
  p.client = client
  p.attach((t) => client.publish(`best/${sn}/up`, t, { qos: 1 }))
  return p
}

class Harness {
  home = mkdtempSync(join(tmpdir(), 'doorctl-best-'))
  warnings: string[] = []
  notices: string[] = []
  debugs: string[] = []
  gw!: Gateway
  device: DeviceEntry = { name: 'door-1', protocol: 'best', sn: SN, tags: [], transport: 'ws', productId: PRODUCT, deviceSecret: SECRET, brokerKey: BROKER_KEY }
  base = ''
  closers: (() => Promise<unknown> | unknown)[] = []

  async start(opts: BestOptions = {}, settings: Json = {}, devices: DeviceEntry[] = [this.device]) {
    new Inventory(this.home).save(devices)
    const log: Logger = {
      debug: (m, f) => this.debugs.push(`${m} ${JSON.stringify(f ?? {})}`), info() {},
      notice: (m) => this.notices.push(m),
      warn: (m, f) => this.warnings.push(`${m} ${JSON.stringify(f ?? {})}`),
    }
    this.gw = new Gateway({
      home: this.home, log,
      settings: { httpPort: 0, bind: '127.0.0.1', mqttPort: 0, maxBodyBytes: 256 * 1024, ...settings },
      handlers: [createHandler({ listQuietMs: 100, photoWaitMs: 200, timeAskMs: 300, sweepMs: 50, reportGraceMs: 300, ...opts })],
    })
    await this.gw.start()
    this.base = `http://127.0.0.1:${this.gw.httpPort}`
    return this
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.gw.httpPort}/best`
  }

  get mqttUrl() {
    return String(this.gw.bound.mqtt_url)
  }

  /** The broker URL with the credentials getBrokerServer hands device `sn`. */
  deviceUrl(sn = SN) {
    return withCredentials(this.mqttUrl, sn, loadBrokerSecret(this.home).devicePassword(sn))
  }

  /** The broker URL for another gateway (its gateway user and password). */
  get gatewayUrl() {
    return withCredentials(this.mqttUrl, GATEWAY_USER, loadBrokerSecret(this.home).gatewayPassword)
  }

  async stop() {
    for (const c of this.closers.reverse()) await c()
    await this.gw.stop()
    rmSync(this.home, { recursive: true, force: true })
  }

  async ws(sn = SN) {
    const p = await wsPlayer(this.wsUrl, sn)
    this.closers.push(() => p.ws.terminate())
    return p
  }

  async mqtt(sn = SN, url = this.deviceUrl(sn)) {
    const p = await mqttPlayer(url, sn)
    this.closers.push(() => p.client.endAsync(true))
    return p
  }

  async broker(q: Record<string, string>): Promise<{ status: number; json: Json }> {
    const res = await fetch(`${this.base}/v3/device/getBrokerServer?${new URLSearchParams(q)}`)
    return { status: res.status, json: (await res.json()) as Json }
  }

  brokerQuery(type: string, over: Record<string, string> = {}) {
    const timestamp = over.timestamp ?? String(Date.now())
    const nonce = over.nonce ?? Math.random().toString(16).slice(2)
    const sn = over.sn ?? SN
    return { sn, type, nonce, timestamp, sign: brokerSign(sn, nonce, timestamp, over.key ?? BROKER_KEY), ...over }
  }

  submit(kind: CommandKind, payload: Json = {}, device = this.device): QueuedCommand {
    return this.gw.submit(device, kind, payload, 60_000)
  }

  cmd(id: number): QueuedCommand {
    return this.gw.command(id)!
  }

  final(id: number): Promise<QueuedCommand> {
    return this.gw.waitFor(id, AbortSignal.timeout(8000))
  }
}

/** How many times the gateway sent a device command (its debug log line per send). */
function sent(h: Harness, funcId: string): number {
  return h.debugs.filter((l) => l.startsWith('best command sent') && JSON.parse(l.slice(l.indexOf('{'))).funcId === funcId).length
}

let hs: Harness[] = []
async function harness(opts: BestOptions = {}, settings: Json = {}, devices?: DeviceEntry[]) {
  const h = new Harness()
  hs.push(h)
  return h.start(opts, settings, devices)
}
afterEach(async () => {
  for (const h of hs.reverse()) await h.stop()
  hs = []
})

describe('getBrokerServer (3.1)', () => {
  it('answers the ws URL from the request Host for best-w and the broker URL for best-m', async () => {
    const h = await harness()
    const w = await h.broker(h.brokerQuery('best-w'))
    expect(w).toEqual({ status: 200, json: { code: '00000000', message: 'success', payload: { results: { url: `ws://127.0.0.1:${h.gw.httpPort}/best` } } } })
    const m = await h.broker(h.brokerQuery('best-m'))
    expect(m.json.payload.results.url).toBe(h.deviceUrl(SN))
    expect(m.json.payload.results.url).toMatch(new RegExp(`^mqtt://${SN}:[\\w-]{32}@127\\.0\\.0\\.1:\\d+$`))
  })

  it('refuses a bad sign, an old timestamp, a reused nonce, other types; an unknown sn is discovered', async () => {
    const h = await harness()
    expect((await h.broker(h.brokerQuery('best-w', { key: 'wrong' }))).json).toEqual({ code: '40100002', message: 'sign does not match' })
    expect((await h.broker(h.brokerQuery('best-w', { timestamp: String(Date.now() - 10 * 60_000) }))).json.code).toBe('40100003')
    const q = h.brokerQuery('best-w', { nonce: 'n1' })
    expect((await h.broker(q)).json.code).toBe('00000000')
    expect((await h.broker(q)).json.code).toBe('40100005')
    expect((await h.broker(h.brokerQuery('best-a'))).json.code).toBe('40000002')
    expect((await h.broker(h.brokerQuery('best-w', { sn: 'NOBODY' }))).json.code).toBe('40100001')
    expect(h.gw.discoveredDevices().map((d) => d.identity)).toEqual(['NOBODY'])
    const bad = await h.broker({ sn: SN, type: 'best-w' })
    expect(bad.status).toBe(400)
  })

  it('without --broker-key the sign is not checked (and a notice says so)', async () => {
    const h = await harness({}, {}, [{ name: 'door-1', protocol: 'best', sn: SN, tags: [] }])
    expect((await h.broker(h.brokerQuery('best-w', { key: 'anything' }))).json.code).toBe('00000000')
    expect(h.notices.some((n) => n.includes('no --broker-key'))).toBe(true)
  })
})

describe('best-w: login and session', () => {
  it('exchange, register → authCode, accredit → secret, login, report → zone and heartbeat, heartbeat without sn (#13)', async () => {
    const h = await harness({ heartbeatSeconds: 30 })
    const d = await h.ws()
    expect((await d.login()).code).toBe('00000000')
    const rep = await d.report()
    expect(rep.payload.results).toMatchObject({ supportHeartbeat: '1', heartbeatInterval: '30', multiBioDataSupport: '0:1', multiBioPhotoSupport: '0:0:1' })
    expect(rep.payload.results.timezone).toMatch(/^[+-]\d{2}:\d{2}$/)
    const hb = await d.request('dev.heartbeat', { isFree: '1' }, { imme: '0' })
    expect(hb).toMatchObject({ funcId: 'cmd.dev.response', code: '00000000', imme: '0' })
    const p = h.gw.presence().find((x) => x.device === 'door-1')!
    expect(p.online).toBe(true)
    expect(p.info).toMatchObject({ devModel: 'TDB08Z-PLUS', model: 'TDB08Z-PLUS' })
    // every value the server sent is a string
    const nonStrings = (v: unknown, path: string): string[] =>
      Array.isArray(v) ? v.flatMap((x, i) => nonStrings(x, `${path}[${i}]`))
        : typeof v === 'object' && v !== null ? Object.entries(v).flatMap(([k, x]) => nonStrings(x, `${path}.${k}`))
          : typeof v === 'string' ? [] : [path]
    for (const m of d.received) expect(nonStrings(m, String(m.mid))).toEqual([])
  })

  it('refuses an unknown sn (discovered), a wrong devKey, a wrong productId, and business before login', async () => {
    const h = await harness()
    const stranger = await h.ws('STRANGER')
    const r = await stranger.login()
    expect(r.code).toBe('40100001')
    expect(h.gw.discoveredDevices().map((x) => x.identity)).toContain('STRANGER')
    const d = await h.ws()
    expect((await d.request('dev.heartbeat', {})).code).toBe('40100004')
    expect((await d.login({ secret: 'wrong' })).code).toBe('40100002')
    expect((await d.login({ productId: 'other' })).code).toBe('40100002')
    expect((await d.request('dev.data.upload.verifyLog', { verifyLog: [] })).code).toBe('40100004')
    expect((await d.login()).code).toBe('00000000')
  })

  it('trust on first use: with no --device-secret the first devKey is pinned (a notice), another one is refused', async () => {
    const h = await harness({}, {}, [{ name: 'door-1', protocol: 'best', sn: SN, tags: [] }])
    const d = await h.ws()
    expect((await d.login({ secret: 'first' })).code).toBe('00000000')
    expect(h.notices.some((n) => n.includes('pinned') && n.includes('door-1'))).toBe(true)
    const e = await h.ws()
    expect((await e.login({ secret: 'second' })).code).toBe('40100002')
    expect((await e.login({ secret: 'first' })).code).toBe('00000000')
  })

  it('a device without a production secret (empty devKey) is issued one at accredit while we trust on first use', async () => {
    const h = await harness({}, {}, [{ name: 'door-1', protocol: 'best', sn: SN, tags: [] }])
    const d = await h.ws()
    expect((await d.login({ provision: true })).code).toBe('00000000')
    expect(h.notices.some((n) => n.includes('issued it a device secret'))).toBe(true)
    const issued = h.gw.store.getState('door-1', 'issuedSecret') as Json
    expect(issued).toMatchObject({ productId: PRODUCT, confirmed: true })
    // from now on the device logs in with the devKey derived from that secret; nobody else is provisioned
    const again = await h.ws()
    expect((await again.login({ secret: issued.secret })).code).toBe('00000000')
    const intruder = await h.ws()
    expect((await intruder.login({ provision: true })).code).toBe('40100002')
    // with --device-secret an empty devKey is a mismatch
    const strict = await harness()
    const s = await strict.ws()
    expect((await s.login({ provision: true })).code).toBe('40100002')
  })

  it('a duplicate mid is answered again from memory, not processed twice', async () => {
    const h = await harness()
    const d = await h.ws()
    await d.login()
    await d.report()
    const text = JSON.stringify({ funcId: 'dev.data.upload.verifyLog', mid: 'dup-1', payload: { params: { verifyLog: [{ pin: '1', verifyTime: '2024-06-26T00:00:00+08:00', logId: 'L1', verifyStyle: '15', meetCode: '1', status: '255', category: '0', recodeType: '255' }] } } })
    d.raw(text)
    d.raw(text)
    await until(() => (d.replies.get('dup-1')?.length ?? 0) === 2)
    expect(d.replies.get('dup-1')!.map((r) => r.code)).toEqual(['00000000', '00000000'])
    await until(() => h.gw.store.records('door-1', 0, 10).length === 1)
    expect(h.gw.store.records('door-1', 0, 10)).toHaveLength(1)
  })

  it('malformed frames: an error answer and a log line; the connection and the gateway go on', async () => {
    const h = await harness()
    const d = await h.ws()
    d.raw('{"funcId": ')
    d.raw('[1,2]')
    d.raw('{"mid":"x1"}')
    await until(() => d.received.length === 3)
    expect(d.received.map((m) => m.code)).toEqual(['40000001', '40000001', '40000001'])
    expect(d.received[2]).toMatchObject({ mid: 'x1', message: 'funcId missing' })
    expect(h.warnings.filter((w) => w.includes('best malformed message'))).toHaveLength(3)
    expect(d.closed).toBe(false)
    expect((await d.login()).code).toBe('00000000')
    expect((await h.broker(h.brokerQuery('best-w'))).json.code).toBe('00000000')
  })
})

describe('best-w: commands', () => {
  async function online(opts: BestOptions = {}) {
    const h = await harness(opts)
    const d = await h.ws()
    expect((await d.login()).code).toBe('00000000')
    await d.report()
    return { h, d }
  }

  it('reboot: cmd.control.reboot with a cmdId; dev.cmd.response acknowledges it', async () => {
    const { h, d } = await online()
    const c = h.submit('reboot')
    const cmd = await d.command('cmd.control.reboot')
    expect(cmd).toMatchObject({ imme: '1', payload: { params: { operator: 'doorctl' } } })
    expect(cmd.payload.params.cmdId).toMatch(/^[0-9a-z]+-\d+-\d+$/)
    expect(String(cmd.mid).length).toBeLessThanOrEqual(32)
    expect(h.cmd(c.id).state).toBe('delivered')
    d.respond(cmd, '00000000', 'rebooting')
    expect((await h.final(c.id))).toMatchObject({ state: 'acknowledged', result: { message: 'rebooting' } })
  })

  it('a device refusing a command: failed with its code and message', async () => {
    const { h, d } = await online()
    const c = h.submit('setConfig', { section: 'option', values: { meetRoomName: 'Blue', meetRoomCapacity: 12 } })
    const cmd = await d.command('cmd.option.set')
    expect(cmd.payload.params.option).toEqual({ meetRoomName: 'Blue', meetRoomCapacity: '12' })
    d.respond(cmd, '00000002', 'bad option')
    expect(await h.final(c.id)).toMatchObject({ state: 'failed', result: { message: 'bad option', deviceCode: '00000002' } })
    // a section best does not have fails at once, device or not
    const bad = h.submit('setConfig', { section: 'smartface', values: { a: 1 } })
    expect(await h.final(bad.id)).toMatchObject({ state: 'failed', result: { message: expect.stringContaining('no config section') } })
  })

  it('sync-time: the command, then the device asks dev.system.sync.time and gets the time in its zone', async () => {
    const { h, d } = await online()
    const at = Date.UTC(2026, 10, 24, 0, 0, 0)
    const c = h.submit('syncTime', { epochMs: at, utcOffsetMinutes: 480 })
    const cmd = await d.command('cmd.system.sync.time')
    const t = await d.request('dev.system.sync.time', undefined, { imme: '1' })
    expect(t.payload.results.timezone).toBe('+08:00')
    expect(t.payload.results.timeZone).toBe('+08:00')
    expect(t.payload.results.time).toMatch(/^2026-11-24T08:00:0\d\+08:00$/)
    d.respond(cmd)
    const done = await h.final(c.id)
    expect(done.state).toBe('acknowledged')
    expect(done.result?.message).toMatch(/^time set to 2026-11-24T08:00/)
    // the zone is the device's from now on: the next report answer says so
    expect((await d.report()).payload.results.timezone).toBe('+08:00')
  })

  it('info is answered from the last dev.report; device config options are kept in it', async () => {
    const { h } = await online()
    const c = h.submit('info')
    const done = await h.final(c.id)
    expect(done.state).toBe('acknowledged')
    expect(done.result?.data).toMatchObject({ model: 'TDB08Z-PLUS', firmware: 'ZAM170-NF-Ver1.1.21', devModel: 'TDB08Z-PLUS', option: {} })
  })

  it('info waits for a device that never reported', async () => {
    const h = await harness()
    const c = h.submit('info')
    expect(h.cmd(c.id).state).toBe('queued')
    const d = await h.ws()
    await d.login()
    await d.report({ devModel: 'LATE' })
    expect((await h.final(c.id)).result?.data).toMatchObject({ model: 'LATE' })
  })

  it('people import: users (hashed passwords, validity with offset), cards, then one bioPhoto per face by URL', async () => {
    const { h, d } = await online({ usersPerCommand: 2 })
    const people = [
      { id: '101', name: '张伟', card: '5001', password: '1234', role: 'user', photoPath: FACE_PATH, validFrom: Date.UTC(2026, 0, 1), validTo: Date.UTC(2026, 11, 31) },
      { id: '102', name: 'Maria', role: 'admin', phone: '555' },
      { id: '103', name: 'Lee', role: 'blacklist', card: '12AB' },
    ]
    const c = h.submit('upsertPeople', { people })
    const users = await d.command('cmd.data.update.user')
    const wire = users.payload.params.users
    expect(wire.map((u: Json) => u.pin)).toEqual(['101', '102'])
    expect(wire[0].password).toBe(userPasswordHash('1234', wire[0].passwordSalt))
    expect(wire[0].startTime).toMatch(/^2026-01-01T\d{2}:\d{2}:00[+-]\d{2}:\d{2}$/)
    expect(wire[1]).toMatchObject({ role: '14', disable: '0' })
    d.respond(users)
    const cards = await d.command('cmd.data.update.multiCard')
    expect(cards.payload.params.multiCards).toEqual([{ pin: '101', card: '5001', type: '0', lossFlag: '0' }])
    d.respond(cards)
    const photo = await d.command('cmd.data.update.bioPhoto')
    const bp = photo.payload.params.bioPhotos[0]
    expect(bp).toMatchObject({ pin: '101', type: '9', no: '0', index: '0' })
    const img = Buffer.from(await (await fetch(bp.url)).arrayBuffer())
    expect(img.equals(FACE)).toBe(true)
    d.respond(photo)
    const done = await h.final(c.id)
    expect(done.state).toBe('acknowledged')
    expect(done.result?.people).toEqual([
      { id: '101', name: '张伟', status: 'ok', action: 'stored', message: 'stored, face enrolled' },
      { id: '102', name: 'Maria', status: 'ok', action: 'stored', message: 'stored' },
      { id: '103', name: 'Lee', status: 'failed', action: 'store', message: expect.stringContaining('not a decimal number') },
    ])
    expect(done.result?.message).toContain('phone and department are not sent')
    // the photo is no longer served
    expect((await fetch(bp.url)).status).toBe(404)
  })

  it('a refused batch is asked again one by one, so each person gets the device\'s own reason', async () => {
    const { h, d } = await online()
    const c = h.submit('upsertPeople', { people: [{ id: '1', name: 'A' }, { id: '2', name: 'B' }] })
    d.respond(await d.command('cmd.data.update.user'), '00000002', '1 stored, 1 refused')
    const one = await d.command('cmd.data.update.user', 2)
    expect(one.payload.params.users.map((u: Json) => u.pin)).toEqual(['1'])
    d.respond(one)
    const two = await d.command('cmd.data.update.user', 3)
    expect(two.payload.params.users.map((u: Json) => u.pin)).toEqual(['2'])
    d.respond(two, '00000002', 'B: name too long')
    const done = await h.final(c.id)
    expect(done.result?.people?.map((p) => [p.id, p.status, p.message])).toEqual([['1', 'ok', 'stored'], ['2', 'failed', 'B: name too long']])
    expect(done.result?.people?.[1].deviceCode).toBe('00000002')
  })

  it('face enroll: a refused photo is a failed person with the device reason; capture is refused at once', async () => {
    const { h, d } = await online()
    const c = h.submit('enrollFace', { id: '101', photoPath: FACE_PATH })
    d.respond(await d.command('cmd.data.update.bioPhoto'), '00000004', 'no face detected in the photo')
    const done = await h.final(c.id)
    expect(done.result?.people).toEqual([{ id: '101', status: 'failed', action: 'enroll', message: 'no face detected in the photo', deviceCode: '00000004' }])
    const cap = h.submit('enrollFace', { id: '101', capture: true })
    expect(await h.final(cap.id)).toMatchObject({ state: 'failed', result: { message: expect.stringContaining('cannot capture') } })
  })

  it('delete by id, and everyone (cmd.data.clear.user)', async () => {
    const { h, d } = await online({ idsPerCommand: 2 })
    const c = h.submit('deletePeople', { ids: ['1', '2', '3'] })
    const first = await d.command('cmd.data.delete.user')
    expect(first.payload.params.pins).toEqual(['1', '2'])
    d.respond(first)
    const second = await d.command('cmd.data.delete.user', 2)
    expect(second.payload.params.pins).toEqual(['3'])
    d.respond(second)
    expect((await h.final(c.id)).result?.people?.map((p) => p.status)).toEqual(['ok', 'ok', 'ok'])
    const all = h.submit('deletePeople', { ids: 'all' })
    const clear = await d.command('cmd.data.clear.user')
    expect(Object.keys(clear.payload.params)).toEqual(['cmdId'])
    d.respond(clear)
    expect(await h.final(all.id)).toMatchObject({ state: 'acknowledged', result: { message: 'all people deleted' } })
  })

  it('people list: dev.data.upload.user without cmdId (#8) is matched by time, the listing ends after a quiet period', async () => {
    const { h, d } = await online()
    const c = h.submit('listPeople')
    const q = await d.command('cmd.data.query.user')
    expect(q.payload.params.pin).toBe('')
    d.respond(q)
    expect((await d.request('dev.data.upload.user', { users: [{ pin: '1', firstName: 'Ann', disable: '0', role: '0', startTime: '2026-01-01T00:00:00+08:00' }] })).code).toBe('00000000')
    expect((await d.request('dev.data.upload.user', { users: [{ pin: '2', firstName: 'Bob', lastName: 'Li', disable: '1', role: '0' }] })).code).toBe('00000000')
    const done = await h.final(c.id)
    expect(done.result?.data?.people).toEqual([
      expect.objectContaining({ id: '1', name: 'Ann', role: 'user', hasPhoto: false, validFrom: Date.UTC(2025, 11, 31, 16) }),
      expect.objectContaining({ id: '2', name: 'Bob Li', role: 'blacklist' }),
    ])
  })

  it('people list: uploads tagged with our cmdId before the answer end the listing with the answer', async () => {
    const { h, d } = await online({ listQuietMs: 60_000 })
    const c = h.submit('listPeople')
    const q = await d.command('cmd.data.query.user')
    await d.request('dev.data.upload.user', { cmdId: q.payload.params.cmdId, users: [{ pin: '7', firstName: 'Gus' }] })
    d.respond(q)
    expect((await h.final(c.id)).result?.data?.people).toEqual([expect.objectContaining({ id: '7', name: 'Gus' })])
  })

  it('a device that drops the connection mid-command gets it again after logging in; bounded', async () => {
    const { h, d } = await online({ maxAttempts: 2 })
    const c = h.submit('setConfig', { section: 'option', values: { meetRoomName: 'X' } })
    const first = await d.command('cmd.option.set')
    d.ws.terminate()
    await until(() => h.warnings.length >= 0 && d.closed)
    const again = await h.ws()
    await again.login()
    const second = await again.command('cmd.option.set')
    expect(second.payload.params.cmdId).not.toBe(first.payload.params.cmdId)
    again.ws.terminate()
    // second loss: maxAttempts 2 → failed, not hung
    const done = await h.final(c.id)
    expect(done).toMatchObject({ state: 'failed', result: { message: expect.stringContaining('disconnected before answering, 2 times') } })
  })

  it('a reboot taken and followed by a disconnect is done', async () => {
    const { h, d } = await online()
    const c = h.submit('reboot')
    await d.command('cmd.control.reboot')
    d.ws.terminate()
    expect(await h.final(c.id)).toMatchObject({ state: 'acknowledged' })
  })
})

describe('records', () => {
  async function online() {
    const h = await harness()
    const d = await h.ws()
    await d.login()
    await d.report()
    return { h, d }
  }
  const log = (logId: string, pin = '5') => ({ pin, meetCode: '123', verifyTime: '2024-06-26T09:30:00+08:00', verifyStyle: '15', status: '0', category: '0', logId, recodeType: '0' })

  it('a verify log and its photo become one record with the photo', async () => {
    const { h, d } = await online()
    expect((await d.request('dev.data.upload.verifyLog', { verifyLog: [log('1')] })).code).toBe('00000000')
    expect((await d.request('dev.data.upload.verifyPhoto', { verifyPhotos: [{ pin: '5', meetCode: '123', photoTime: '2024-06-26T09:30:00+08:00', extension: 'jpg', logId: '1', content: FACE.toString('base64') }] })).code).toBe('00000000')
    const recs = h.gw.store.records('door-1', 0, 10)
    expect(recs).toHaveLength(1)
    expect(recs[0]).toMatchObject({ recordId: '1', userId: '5', time: Date.UTC(2024, 5, 26, 1, 30), utcOffsetMinutes: 480, direction: 'in', method: 'face', type: 'employee', extras: { meet_code: '123' } })
    expect(h.gw.store.photo(recs[0].photoPath!)!.equals(FACE)).toBe(true)
  })

  it('a verify log whose photo never comes is stored after the wait; on disk (held) before the answer', async () => {
    const { h, d } = await online()
    await d.request('dev.data.upload.verifyLog', { verifyLog: [log('2')] })
    expect(h.gw.store.getState('door-1', 'held')).toEqual([expect.objectContaining({ recordId: '2' })])
    await until(() => h.gw.store.records('door-1', 0, 10).length === 1)
    expect(h.gw.store.records('door-1', 0, 10)[0].photoPath).toBeUndefined()
    expect(h.gw.store.getState('door-1', 'held')).toBeUndefined()
  })

  it('a large photo through dev.file.upload.* (checksum checked) is attached by contentFileDialog (#11)', async () => {
    const { h, d } = await online()
    await d.request('dev.data.upload.verifyLog', { verifyLog: [log('3')] })
    const checksum = createHash('md5').update(FACE).digest('hex')
    expect((await d.request('dev.file.upload.start', { fileId: 'f1', size: String(FACE.length), checksum })).code).toBe('00000000')
    const half = Math.floor(FACE.length / 2)
    expect((await d.request('dev.file.upload.package', { fileId: 'f1', offset: '0', content: FACE.subarray(0, half).toString('base64') })).code).toBe('00000000')
    // a package that skips bytes is refused
    expect((await d.request('dev.file.upload.package', { fileId: 'f1', offset: String(half + 10), content: 'AAAA' })).code).toBe('40000003')
    expect((await d.request('dev.file.upload.package', { fileId: 'f1', offset: String(half), content: FACE.subarray(half).toString('base64') })).code).toBe('00000000')
    expect((await d.request('dev.file.upload.end', { fileId: 'f1' })).code).toBe('00000000')
    expect((await d.request('dev.data.upload.verifyPhoto', { verifyPhotos: [{ pin: '5', logId: '3', contentFileDialog: 'f1' }] })).code).toBe('00000000')
    const rec = h.gw.store.records('door-1', 0, 10)[0]
    expect(h.gw.store.photo(rec.photoPath!)!.equals(FACE)).toBe(true)
    // a checksum that does not match is refused at the end
    await d.request('dev.file.upload.start', { fileId: 'f2', size: '3', checksum: 'ff'.repeat(16) })
    await d.request('dev.file.upload.package', { fileId: 'f2', offset: '0', content: Buffer.from('abc').toString('base64') })
    expect((await d.request('dev.file.upload.end', { fileId: 'f2' })).code).toBe('40000003')
  })

  it('a device without a camera (capturePic 0) has its logs stored at once; bad logs are refused', async () => {
    const { h, d } = await online()
    await d.report({ capturePic: '0' })
    await d.request('dev.data.upload.verifyLog', { verifyLog: [log('9')] })
    expect(h.gw.store.records('door-1', 0, 10)).toHaveLength(1)
    expect((await d.request('dev.data.upload.verifyLog', { verifyLog: [{ ...log('10'), verifyTime: 'never' }] })).code).toBe('40000001')
  })
})

describe('best-m over the embedded broker', () => {
  it('login on best/{sn}/up, commands on best/{sn}/down (QoS 1), records; a redelivered mid is processed once', async () => {
    const h = await harness()
    const url = (await h.broker(h.brokerQuery('best-m'))).json.payload.results.url
    const d = await h.mqtt(SN, url)
    // best-m: sn and productId are "not needed" in register; the topic names the device
    expect((await d.login({ withSn: false })).code).toBe('00000000')
    await d.report()
    const c = h.submit('reboot')
    const cmd = await d.command('cmd.control.reboot')
    d.respond(cmd)
    expect((await h.final(c.id)).state).toBe('acknowledged')
    const text = JSON.stringify({ funcId: 'dev.data.upload.verifyLog', mid: 'mq-dup', payload: { params: { verifyLog: [{ pin: '1', verifyTime: '2024-06-26T00:00:00+08:00', logId: 'M1' }] } } })
    d.raw(text)
    d.raw(text)
    await until(() => (d.replies.get('mq-dup')?.length ?? 0) === 2)
    await until(() => h.gw.store.records('door-1', 0, 10).length === 1)
    expect(d.commands('cmd.control.reboot')).toHaveLength(1)
  })

  it('anonymous clients, wrong passwords and another serial\'s topics are refused, logged and counted (Gateway.onRefused)', async () => {
    const h = await harness()
    const seen: string[] = []
    h.gw.onRefused((r) => seen.push(`${r.reason} ${r.device ?? '-'} ${r.address}`))
    const refusedConnect = (url: string, opts: Json = {}) => new Promise<string>((resolve) => {
      const c = connect(url, { reconnectPeriod: 0, ...opts })
      c.once('connect', () => { c.end(true); resolve('connected') })
      c.once('error', (e) => { c.end(true); resolve(e.message) })
    })
    expect(await refusedConnect(h.mqttUrl)).toMatch(/not authorized/i)
    expect(await refusedConnect(withCredentials(h.mqttUrl, SN, 'guess'), { clientId: SN })).toMatch(/bad user ?name or password/i)
    // a device with its own credentials, wandering into another serial's topics
    const d = await h.mqtt()
    await expect(d.client.subscribeAsync('best/OTHER/down', { qos: 1 })).rejects.toThrow(/subscribe error/i)
    const closed = new Promise<void>((r) => d.client.once('close', () => r()))
    d.client.publish('best/OTHER/up', '{}', { qos: 1 })
    await closed
    await until(() => seen.length === 4)
    expect(seen).toEqual(['anonymous - 127.0.0.1', 'credentials door-1 127.0.0.1', 'acl door-1 127.0.0.1', 'acl door-1 127.0.0.1'])
    expect(h.gw.refusedTotal).toBe(4)
    for (const w of ['mqtt anonymous client refused', 'mqtt device login refused', 'mqtt subscribe refused', 'mqtt publish refused']) expect(h.warnings.some((x) => x.startsWith(w)), w).toBe(true)
    // the password is a secret: never in a log line
    expect(h.warnings.join('\n')).not.toContain(loadBrokerSecret(h.home).devicePassword(SN))
  })

  it('a device whose sn is not in the inventory cannot connect to the broker; a topic/sn mismatch is refused', async () => {
    const h = await harness()
    await expect(h.mqtt('STRANGER')).rejects.toThrow(/not authorized/i)
    expect(h.warnings.some((w) => w.includes('mqtt device login refused') || w.includes('refused'))).toBe(true)
    const d = await h.mqtt()
    expect((await d.request('dev.heartbeat', {}, { sn: 'OTHER' })).code).toBe('40000001')
    expect((await d.request('dev.heartbeat', {})).code).toBe('40100004')
  })

  it('a device that logs in again before answering gets the command again', async () => {
    const h = await harness()
    const d = await h.mqtt()
    await d.login()
    const c = h.submit('setConfig', { section: 'option', values: { meetRoomName: 'Y' } })
    await d.command('cmd.option.set')
    await d.login()
    const again = await d.command('cmd.option.set', 2)
    d.respond(again)
    expect((await h.final(c.id)).state).toBe('acknowledged')
  })

  it('a time sync the device took while logging in again is not sent again, whether it asks for the time before or after its login', async () => {
    for (const askFirst of [true, false]) {
      const h = await harness()
      const d = await h.mqtt()
      await d.login()
      await d.report()
      const c = h.submit('syncTime', { epochMs: Date.UTC(2030, 0, 1), utcOffsetMinutes: 60 })
      const sc = await d.command('cmd.system.sync.time')
      // the device took the command and logs in again meanwhile (back from a reboot, say): the login is
      // driven explicitly on either side of its time request, the two orders a real device may take
      if (askFirst) await d.request('dev.system.sync.time', undefined)
      expect((await d.login()).code).toBe('00000000')
      await d.report()
      if (!askFirst) expect((await d.request('dev.system.sync.time', undefined)).payload.results.time).toMatch(/^2030-01-01T01:00:0\d\+01:00$/)
      d.respond(sc)
      expect(await h.final(c.id), `askFirst=${askFirst}`).toMatchObject({ state: 'acknowledged', result: { message: expect.stringMatching(/^time set to 2030-01-01T01:00:0\d\+01:00/) } })
      expect(sent(h, 'cmd.system.sync.time'), `askFirst=${askFirst}`).toBe(1)
      expect(d.commands('cmd.system.sync.time')).toHaveLength(1)
    }
  })

  it('a time sync that never reached the device is sent again once it has logged in again and does not ask for the time', async () => {
    const h = await harness()
    const d = await h.mqtt()
    await d.login()
    await d.report()
    const c = h.submit('syncTime', { epochMs: Date.UTC(2030, 0, 1), utcOffsetMinutes: 0 })
    const first = await d.command('cmd.system.sync.time')
    // the device neither asks nor answers: it did not take it
    await d.login()
    await d.report()
    const again = await d.command('cmd.system.sync.time', 2)
    expect(again.payload.params.cmdId).not.toBe(first.payload.params.cmdId)
    await d.request('dev.system.sync.time', undefined)
    d.respond(again)
    expect((await h.final(c.id)).state).toBe('acknowledged')
    expect(sent(h, 'cmd.system.sync.time')).toBe(2)
  })

  it('the embedded broker port in use: best-m is off with a warning, the gateway still serves', async () => {
    const a = await harness()
    const port = Number(new URL(a.mqttUrl).port)
    const b = await harness({}, { mqttPort: port })
    expect(b.warnings).toEqual([])
    expect((await b.broker(b.brokerQuery('best-m'))).json.code).toBe('50300001')
    expect(b.warnings.some((w) => w.includes('asks for the MQTT broker') && w.includes('in use'))).toBe(true)
    expect((await b.broker(b.brokerQuery('best-w'))).json.code).toBe('00000000')
  })
})

describe('two gateways on one broker', () => {
  it('a command queued in gateway A reaches the device once and its answer reaches A, wherever the shared subscription hands it', async () => {
    const a = await harness({ gatewayId: 'aaaa' })
    const b = await harness({ gatewayId: 'bbbb' }, { mqttUrl: a.gatewayUrl })
    const d = await a.mqtt()
    expect((await d.login()).code).toBe('00000000')
    await d.report()
    // several device messages: each answered exactly once, by one of the two gateways
    for (let i = 0; i < 6; i++) await d.request('dev.heartbeat', { isFree: '1' })
    for (const [mid, list] of d.replies) expect(list, mid).toHaveLength(1)

    for (const kind of ['reboot', 'setConfig'] as const) {
      const before = d.commands().length
      const c = kind === 'reboot' ? a.submit('reboot') : a.submit('setConfig', { section: 'option', values: { meetRoomName: 'Z' } })
      await until(() => d.commands().length === before + 1, 5000, `${kind} on the device`)
      const cmd = d.commands()[before]
      expect(cmd.payload.params.cmdId.startsWith('aaaa-')).toBe(true)
      d.respond(cmd)
      expect((await a.final(c.id)).state).toBe('acknowledged')
    }
    // sync-time: the device's time request is claimed by A, so A answers it with A's time and zone
    const sync = a.submit('syncTime', { epochMs: Date.UTC(2030, 0, 1), utcOffsetMinutes: -300 })
    const sc = await d.command('cmd.system.sync.time')
    for (let i = 0; i < 4; i++) {
      const t = await d.request('dev.system.sync.time', undefined)
      expect(t.payload.results.time).toMatch(/^2029-12-31T19:00:0\d-05:00$/)
    }
    d.respond(sc)
    expect((await a.final(sync.id)).state).toBe('acknowledged')
    // a listing: uploads without cmdId go to A too (claim), whichever gateway receives them
    const list = a.submit('listPeople')
    const q = await d.command('cmd.data.query.user')
    for (let i = 1; i <= 4; i++) await d.request('dev.data.upload.user', { users: [{ pin: String(i), firstName: `P${i}` }] })
    d.respond(q)
    expect(((await a.final(list.id)).result?.data?.people as Json[]).map((p) => p.id).sort()).toEqual(['1', '2', '3', '4'])

    // exactly once each, and nothing queued in B
    expect(d.commands().map((m) => m.funcId)).toEqual(['cmd.control.reboot', 'cmd.option.set', 'cmd.system.sync.time', 'cmd.data.query.user'])
    for (const [mid, list] of d.replies) expect(list, mid).toHaveLength(1)
    expect(b.gw.store.pending('door-1')).toEqual([])
    // the shared subscription did hand A's messages to B, which relayed them
    const relayed = b.debugs.filter((l) => l.includes('relayed to its gateway')).map((l) => JSON.parse(l.slice(l.indexOf('{'))).funcId)
    expect(relayed).toEqual(expect.arrayContaining(['dev.cmd.response', 'dev.system.sync.time', 'dev.data.upload.user']))
  })

  it('B knows the session A saw (retained), so a command queued in B after the login is delivered too', async () => {
    const a = await harness({ gatewayId: 'aaaa' })
    const d = await a.mqtt()
    await d.login()
    await d.report()
    const b = await harness({ gatewayId: 'bbbb' }, { mqttUrl: a.gatewayUrl })
    const c = b.submit('info')
    expect((await b.final(c.id)).result?.data).toMatchObject({ model: 'TDB08Z-PLUS' })
    const r = b.submit('reboot')
    const cmd = await d.command('cmd.control.reboot')
    expect(cmd.payload.params.cmdId.startsWith('bbbb-')).toBe(true)
    d.respond(cmd)
    expect((await b.final(r.id)).state).toBe('acknowledged')
  })
})

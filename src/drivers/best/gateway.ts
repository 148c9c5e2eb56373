/**
 * best gateway side (best.txt): the device asks GET /v3/device/getBrokerServer for its server,
 * then holds a WebSocket to /best (best-w) or an MQTT session on best/{sn}/up|down (best-m),
 * goes through key exchange, dev.register → dev.accredit → dev.login, reports (dev.report),
 * heartbeats, takes our cmd.* commands (each answered by dev.cmd.response with its cmdId) and
 * uploads its records. Both transports share one codec (codec.ts) and everything below the
 * "channel": a channel only knows how to send a JSON document to the device.
 *
 * Delivery (both transports):
 * - One command of a device at a time, in queue order. A command may take several device
 *   commands ("steps": users in batches, then cards, then one bioPhoto per face); each step's
 *   cmdId is `{gatewayId}-{command id}-{n}` and its dev.cmd.response finishes that step.
 * - A device that drops its connection (best-w) or logs in again (best-m, or best-w on a new
 *   connection) before answering the step in flight gets that step again when it is back, at
 *   most `maxAttempts` times in all; then the command fails. A reboot is done when the device goes
 *   away after taking it. Nothing waits longer than the command's --timeout (expired by the
 *   gateway; the job here is dropped at the next sweep).
 *
 * best-m with several gateways on one broker (topic layout):
 *   best/{sn}/up                    device → gateways; subscribed as `$share/doorctl/best/+/up`, so
 *                                   each device message reaches exactly one gateway
 *   best/{sn}/down                  gateway → device (QoS 1)
 *   doorctl/best/gw/{gatewayId}     messages relayed to the gateway that owns them (QoS 1)
 *   doorctl/best/dev/{sn}/session   retained: the device's current login session and last report
 *   doorctl/best/dev/{sn}/claim     "this gateway awaits these funcIds from sn" (QoS 1)
 * Rule: a command is queued in the gateway the CLI talked to, and only that gateway publishes it
 * on best/{sn}/down, once per login session (so the device gets it once). Whichever gateway the
 * shared subscription hands a device message to handles it — unless another gateway owns it: a
 * reply whose cmdId carries another gateway's id, or (for messages without cmdId: the answer to
 * a time sync, users uploaded for a query, AMBIGUITIES #8) a funcId another gateway claimed while
 * its command is in flight. Those are relayed, unanswered, to the owner's topic, and the owner
 * answers the device. The gateway that handles a login publishes the session (retained) before
 * answering, so every gateway knows the device is logged in before it can send anything else.
 * Duplicate deliveries (QoS 1) are dropped by `mid`, remembered per device in DOORCTL_HOME.
 */
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import type { WebSocket } from 'ws'
import type {
  CommandResult, GatewayContext, GatewayRequest, GatewayResponse, ProtocolHandler, QueuedCommand, Route, SpoolRecord, WebSocketRoute,
} from '../../types/gateway.js'
import type { DeviceEntry, PersonOutcome } from '../../types/driver.js'
import {
  brokerAnswer, brokerError, brokerSign, checksumOk, claimedSn, CODE, command, credentials, devKeyOf, exchangeAnswer, infoData, isObject, isoTime,
  LOGIN_FUNCS, newMid, offsetText, parseBrokerQuery, parseCmdResponse, parseFilePackage, parseFileStart, parseMessage, personInfoJson,
  personProblem, rebootCommand, reply, reportAnswer, reportInfo, sameHex, sessionValue, str, timeAnswer, TOPICS, uploadCmdId, uploadedCards,
  uploadedPhotoPins, uploadedUsers, upTopicSn, verifyLogEntries, verifyLogRecord, verifyPhotos, wireBioPhoto, wireCard, wireUser,
  type BestMessage, type Credentials, type Json, type Parsed, type PersonPayload,
} from './codec.js'
import type { BrokerLink } from './broker.js'
import { kinds, OPTION_KEYS } from './rules.js'
import { readPersonPayload } from '../../gateway/payloads.js'

export interface BestOptions {
  /** heartbeatInterval given to devices in the report answer, s (document default 60). */
  heartbeatSeconds?: number
  /** getBrokerServer timestamps further than this from our clock are refused (document: "比如5分钟"). */
  timestampWindowMs?: number
  /** A user listing without cmdId-tagged uploads ends this long after the last upload/answer. */
  listQuietMs?: number
  /** How long a time sync waits for the second half (dev.system.sync.time or the command's answer). */
  timeAskMs?: number
  /** A verify log is held (durably) this long for its verify photo before it is spooled without one. */
  photoWaitMs?: number
  /** Deliveries of one step lost to disconnects before the command fails. */
  maxAttempts?: number
  usersPerCommand?: number
  idsPerCommand?: number
  /** Largest file accepted through dev.file.upload.*. */
  maxFileBytes?: number
  sweepMs?: number
  /** Commands wait for the device's dev.report after its login, at most this long. */
  reportGraceMs?: number
  /** Fixed gateway id (tests); default: random, kept in DOORCTL_HOME. */
  gatewayId?: string
  /** false: no MQTT at all (best-w only). */
  mqtt?: boolean
}

type Channel = {
  kind: 'ws' | 'mqtt'
  /** Login session the channel belongs to (ws: the connection; mqtt: the login). */
  session: string
  address: string
  /** host[:port] the device reaches our HTTP port by (for photo URLs). */
  host?: string
  send(msg: Json): void
}

interface WsConn {
  id: string
  socket: WebSocket
  address: string
  host: string
  dev?: Dev
  loggedIn: boolean
  /** Logged in and reported (or the grace period passed): commands may be sent. */
  ready: boolean
  lastSeen: number
  bad: number
}

type StepWhat = 'user' | 'card' | 'photo' | 'delete' | 'clear' | 'query' | 'reboot' | 'sync' | 'option'

interface Step {
  funcId: string
  what: StepWhat
  ids: string[]
  imme?: boolean
  params?: Json
}

interface Job {
  cmd: QueuedCommand
  steps: Step[]
  next: number
  seq: number
  inflight?: { step: Step; cmdId: string; session: string }
  sending: boolean
  attempts: number
  people: Map<string, PersonPayload>
  outcomes: Map<string, PersonOutcome>
  order: string[]
  enrollOnly: boolean
  list?: { users: Map<string, Json>; cards: Map<string, string[]>; photos: Set<string>; open: boolean; responded: boolean; tagged: boolean; seen: boolean }
  sync?: { epochMs: number; offset: number; since: number; responded: boolean; answered?: string }
  files: string[]
  claimed: boolean
  timer?: NodeJS.Timeout
  done: boolean
}

interface UploadFile {
  size: number
  checksum: string
  data: Buffer
  written: number
  done: boolean
  at: number
}

interface Dev {
  name: string
  sn: string
  entry: DeviceEntry
  ws?: WsConn
  mqtt?: { session: string; at: number; gw: string; ready: boolean }
  sessionPublishedAt: number
  readyTimer?: NodeJS.Timeout
  job?: Job
  /** mid → our answer (null: answered by nobody, e.g. dev.cmd.response), most recent last. */
  mids: Map<string, Json | null>
  files: Map<string, UploadFile>
  held: Map<string, { record: SpoolRecord; timer: NodeJS.Timeout }>
  strayPhotos: Map<string, { photo: Buffer; pin: string; timer: NodeJS.Timeout }>
}

const EXCHANGE = new Set(['device.exchange.publicKey', 'device.exchange.factor'])
const LOGIN = LOGIN_FUNCS
const CLAIMS: Partial<Record<StepWhat, string[]>> = {
  sync: ['dev.system.sync.time'],
  query: ['dev.data.upload.user', 'dev.data.upload.userPhoto', 'dev.data.upload.bioPhoto', 'dev.data.upload.multiCard'],
}
const GLOBAL = '#best'
const MIDS_KEPT = 256
const MIDS_PERSISTED = 128
const MQTT_SAFE_SN = /^[^/+#\s\u0000]{1,64}$/

const localOffset = () => -new Date().getTimezoneOffset()

function chunk<T>(list: T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size))
  return out
}

function bracket(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
}


class BestGateway {
  readonly gwId: string
  private readonly devs = new Map<string, Dev>()
  private readonly conns = new Set<WsConn>()
  private readonly claims = new Map<string, { gw: string; funcIds: Set<string>; until: number }>()
  private readonly nonces = new Map<string, number>()
  private readonly unkeyedWarned = new Set<string>()
  private link?: BrokerLink
  private sweeper?: NodeJS.Timeout
  private stopping = false
  private brokerProblem?: string
  private readonly o: Required<Omit<BestOptions, 'gatewayId' | 'mqtt'>> & { mqtt: boolean }

  constructor(private readonly ctx: GatewayContext, opts: BestOptions) {
    this.o = {
      heartbeatSeconds: opts.heartbeatSeconds ?? 60,
      timestampWindowMs: opts.timestampWindowMs ?? 5 * 60_000,
      listQuietMs: opts.listQuietMs ?? 1000,
      timeAskMs: opts.timeAskMs ?? 5000,
      photoWaitMs: opts.photoWaitMs ?? 2000,
      maxAttempts: opts.maxAttempts ?? 3,
      usersPerCommand: opts.usersPerCommand ?? 50,
      idsPerCommand: opts.idsPerCommand ?? 100,
      maxFileBytes: opts.maxFileBytes ?? 8 * 1024 * 1024,
      sweepMs: opts.sweepMs ?? 1000,
      reportGraceMs: opts.reportGraceMs ?? 3000,
      mqtt: opts.mqtt !== false,
    }
    let id = opts.gatewayId ?? (ctx.state(GLOBAL, 'gatewayId') as string | undefined)
    if (!id || !/^[0-9a-z]{1,16}$/.test(id)) {
      id = randomBytes(4).toString('hex')
      ctx.setState(GLOBAL, 'gatewayId', id)
    }
    this.gwId = id
    ctx.onQueued((device) => this.onQueued(device))
  }

  // ---- lifecycle ----------------------------------------------------------------------------------

  routes(): Route[] {
    return [{ method: '*', path: '/v3/device/getBrokerServer', handle: (req) => this.guard('getBrokerServer', () => this.brokerServer(req)) }]
  }

  websockets(): WebSocketRoute[] {
    return [{ path: '/best', onConnection: (socket, req) => this.onWsConnection(socket, req) }]
  }

  async start(): Promise<Record<string, string | number> | void> {
    this.flushHeldFromLastRun()
    this.sweeper = setInterval(() => this.safe('sweep', () => this.sweep()), this.o.sweepMs)
    this.sweeper.unref()
    if (!this.o.mqtt) return
    const { openBroker, BrokerUnavailable } = await import('./broker.js')
    try {
      this.link = await openBroker({
        settings: this.ctx.settings,
        log: this.ctx.log,
        clientId: `doorctl-${this.gwId}`,
        subscriptions: [TOPICS.sharedUp, `doorctl/best/gw/${this.gwId}`, 'doorctl/best/dev/+/session', 'doorctl/best/dev/+/claim'],
        onMessage: (topic, payload) => this.safe('mqtt message', () => this.onMqtt(topic, payload)),
      })
    } catch (err) {
      if (!(err instanceof BrokerUnavailable)) throw err
      // other protocols (and best-w) keep working; best-m devices are told the broker is unavailable,
      // and the warning comes when one asks (a gateway with no best-m device has nothing to say)
      this.brokerProblem = err.message
      this.ctx.log.info(`best-m disabled: the embedded MQTT broker could not start (${err.message})`)
      return
    }
    return { ...this.link.bound }
  }

  async stop(): Promise<void> {
    this.stopping = true
    if (this.sweeper) clearInterval(this.sweeper)
    for (const conn of this.conns) conn.socket.terminate()
    for (const dev of this.devs.values()) {
      if (dev.job?.timer) clearTimeout(dev.job.timer)
      if (dev.readyTimer) clearTimeout(dev.readyTimer)
      for (const s of dev.strayPhotos.values()) clearTimeout(s.timer)
      // held verify logs are stored now, without the photo that did not come
      for (const id of [...dev.held.keys()]) this.flushHeld(dev, id)
    }
    await this.link?.close().catch(() => undefined)
    this.link = undefined
  }

  private safe(what: string, fn: () => void): void {
    try {
      fn()
    } catch (err) {
      this.ctx.log.warn(`best ${what} failed`, { error: String(err) })
    }
  }

  private guard(what: string, fn: () => GatewayResponse): GatewayResponse {
    try {
      return fn()
    } catch (err) {
      this.ctx.log.warn(`best ${what} failed`, { error: String(err) })
      return { status: 500, json: brokerError(CODE.unavailable, 'internal error') }
    }
  }

  private devOf(entry: DeviceEntry): Dev {
    let d = this.devs.get(entry.name)
    if (!d) {
      const mids = new Map<string, Json | null>()
      for (const m of (this.ctx.state(entry.name, 'mids') as string[] | undefined) ?? []) mids.set(m, null)
      d = { name: entry.name, sn: entry.sn ?? '', entry, sessionPublishedAt: 0, mids, files: new Map(), held: new Map(), strayPhotos: new Map() }
      this.devs.set(entry.name, d)
    }
    d.entry = entry
    d.sn = entry.sn ?? d.sn
    return d
  }

  private offsetOf(name: string): number {
    const tz = this.ctx.state(name, 'timezone')
    return typeof tz === 'number' && Number.isFinite(tz) ? tz : localOffset()
  }

  // ---- getBrokerServer (3.1) ------------------------------------------------------------------

  private brokerServer(req: GatewayRequest): GatewayResponse {
    const address = `${req.remoteAddress}:${req.remotePort}`
    const q = parseBrokerQuery(req.query)
    if ('error' in q) {
      this.ctx.log.warn('best getBrokerServer malformed', { from: address, reason: q.error })
      return { status: 400, json: brokerError(CODE.badRequest, q.error) }
    }
    const entry = this.ctx.findDevice('best', q.sn)
    if (!entry) {
      this.ctx.discovered('best', q.sn, address, { type: q.type })
      return { json: brokerError(CODE.unknownDevice, 'unknown device: add it with doorctl device add --protocol best') }
    }
    const refuse = (code: string, message: string): GatewayResponse => {
      this.ctx.log.warn('best getBrokerServer refused', { device: entry.name, from: address, reason: message })
      return { json: brokerError(code, message) }
    }
    if (Math.abs(Date.now() - Number(q.timestamp)) > this.o.timestampWindowMs) return refuse(CODE.expired, 'timestamp too far from the server time')
    if (entry.brokerKey) {
      if (!sameHex(q.sign, brokerSign(q.sn, q.nonce, q.timestamp, entry.brokerKey))) return refuse(CODE.badKey, 'sign does not match')
    } else if (!this.unkeyedWarned.has(entry.name)) {
      this.unkeyedWarned.add(entry.name)
      this.ctx.log.notice(`best device ${entry.name} has no --broker-key: its getBrokerServer sign is not checked`, { device: entry.name })
    }
    // "随机数不得重复": a nonce is good once within the timestamp window
    const nk = `${entry.name}\u0000${q.nonce}`
    if (this.nonces.has(nk)) return refuse(CODE.badAuth, 'nonce used before')
    this.nonces.set(nk, Date.now() + this.o.timestampWindowMs)
    const host = typeof req.headers.host === 'string' && req.headers.host !== '' ? req.headers.host : `${bracket(req.localAddress)}:${req.localPort}`
    if (this.ctx.state(entry.name, 'httpHost') !== host) this.ctx.setState(entry.name, 'httpHost', host)
    this.ctx.touch(entry, address)
    if (entry.transport && ((entry.transport === 'ws') !== (q.type === 'best-w'))) {
      this.ctx.log.info('best device asks for another transport than the inventory says', { device: entry.name, type: q.type, inventory: entry.transport })
    }
    switch (q.type) {
      case 'best-w':
        return { json: brokerAnswer(`ws://${host}/best`) }
      case 'best-m': {
        if (!this.link) {
          this.ctx.log.warn(`best-m device ${entry.name} asks for the MQTT broker, but ${this.brokerProblem ? `the embedded broker could not start (${this.brokerProblem})` : 'this gateway has none'}`, { suggestion: 'pick another --mqtt-port, or point --mqtt-url at a broker' })
          return refuse(CODE.unavailable, 'this gateway has no MQTT broker')
        }
        if (!MQTT_SAFE_SN.test(q.sn)) return refuse(CODE.badRequest, 'this sn cannot be used in MQTT topics')
        const hostname = host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1')
        return { json: brokerAnswer(this.link.deviceUrl(hostname)) }
      }
      default:
        return refuse(CODE.unsupportedType, `type ${q.type} is not served here (best-w, best-m)`)
    }
  }

  // ---- best-w -------------------------------------------------------------------------------------

  private onWsConnection(socket: WebSocket, req: IncomingMessage): void {
    if (this.stopping) {
      // an upgrade that completes while the gateway stops would keep its HTTP server from closing
      socket.terminate()
      return
    }
    const conn: WsConn = {
      id: `ws-${randomBytes(6).toString('hex')}`,
      socket,
      address: `${req.socket.remoteAddress ?? ''}:${req.socket.remotePort ?? 0}`,
      host: typeof req.headers.host === 'string' ? req.headers.host : '',
      loggedIn: false,
      ready: false,
      lastSeen: Date.now(),
      bad: 0,
    }
    this.conns.add(conn)
    socket.on('message', (data) => {
      conn.lastSeen = Date.now()
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer)
      this.safe('websocket message', () => this.onWsFrame(conn, buf))
    })
    socket.on('pong', () => { conn.lastSeen = Date.now() })
    socket.on('close', () => this.safe('websocket close', () => this.onWsClose(conn)))
  }

  private wsChannel(conn: WsConn): Channel {
    return {
      kind: 'ws', session: conn.id, address: conn.address, host: conn.host || undefined,
      send: (msg) => {
        if (conn.socket.readyState === 1) conn.socket.send(JSON.stringify(msg))
      },
    }
  }

  private onWsFrame(conn: WsConn, data: Buffer): void {
    const ch = this.wsChannel(conn)
    const p = parseMessage(data)
    if ('error' in p) {
      this.malformed(ch, p, conn.dev?.name)
      if (++conn.bad >= 20) conn.socket.close(1008, 'too many malformed messages')
      return
    }
    conn.bad = 0
    const m = p.msg
    let dev = conn.dev
    if (LOGIN.has(m.funcId)) {
      const sn = claimedSn(m)
      if (!sn) return this.answerOnce(undefined, ch, m, CODE.badRequest, 'sn is required on best-w')
      if (dev && dev.sn !== sn) return this.answerOnce(dev, ch, m, CODE.badRequest, 'sn differs from the one this connection registered with')
      const entry = this.ctx.findDevice('best', sn)
      if (!entry) return this.unknown(sn, ch, m)
      dev = conn.dev = this.devOf(entry)
    }
    if (!dev) {
      if (EXCHANGE.has(m.funcId)) return this.exchange(undefined, ch, m)
      return this.answerOnce(undefined, ch, m, CODE.notLoggedIn, 'register and log in first')
    }
    this.handle(dev, ch, m, conn)
  }

  private onWsClose(conn: WsConn): void {
    this.conns.delete(conn)
    const dev = conn.dev
    if (!dev || dev.ws !== conn) return
    dev.ws = undefined
    const job = dev.job
    if (job?.inflight && job.inflight.session === conn.id) this.lost(dev, job, 'the device disconnected before answering')
  }

  // ---- best-m -------------------------------------------------------------------------------------

  private mqttChannel(sn: string, dev?: Dev): Channel {
    const host = dev ? (this.ctx.state(dev.name, 'httpHost') as string | undefined) : undefined
    return {
      kind: 'mqtt', session: dev?.mqtt?.session ?? '', address: `mqtt:${sn}`, host,
      send: (msg) => {
        this.link?.client.publish(TOPICS.down(sn), JSON.stringify(msg), { qos: 1 }, (err) => {
          if (err) this.ctx.log.warn('best mqtt publish failed', { sn, error: err.message })
        })
      },
    }
  }

  private onMqtt(topic: string, payload: Buffer): void {
    const sn = upTopicSn(topic)
    if (sn !== undefined) return this.onMqttUp(sn, payload)
    const parts = topic.split('/')
    if (topic === `doorctl/best/gw/${this.gwId}`) return this.onRelay(payload)
    if (parts.length === 5 && parts[0] === 'doorctl' && parts[1] === 'best' && parts[2] === 'dev') {
      if (parts[4] === 'session') return this.onSessionNotice(parts[3], payload)
      if (parts[4] === 'claim') return this.onClaim(parts[3], payload)
    }
  }

  private onMqttUp(sn: string, payload: Buffer): void {
    const p = parseMessage(payload)
    const entry = this.ctx.findDevice('best', sn)
    const dev = entry ? this.devOf(entry) : undefined
    const ch = this.mqttChannel(sn, dev)
    if ('error' in p) return this.malformed(ch, p, dev?.name)
    const m = p.msg
    // over best-m the topic names the device; sn in a message must agree
    if (m.sn && m.sn !== sn) return this.answerOnce(dev, ch, m, CODE.badRequest, 'sn differs from the topic')
    if (!dev) {
      if (EXCHANGE.has(m.funcId)) return this.exchange(undefined, ch, m)
      return this.unknown(sn, ch, m)
    }
    if (this.duplicate(dev, ch, m)) return
    const owner = this.ownerOf(dev, m)
    if (owner !== undefined && owner !== this.gwId) {
      this.remember(dev, m.mid, null)
      this.link?.client.publish(`doorctl/best/gw/${owner}`, JSON.stringify({ from: this.gwId, sn, payload: payload.toString('utf8') }), { qos: 1 })
      this.ctx.log.debug('best message relayed to its gateway', { device: dev.name, funcId: m.funcId, to: owner })
      return
    }
    this.handle(dev, ch, m)
  }

  /** The gateway a device message belongs to: by the cmdId it answers, else by a live claim. */
  private ownerOf(dev: Dev, m: BestMessage): string | undefined {
    const cmdId = str(m.params.cmdId).trim()
    const prefix = /^([0-9a-z]{1,16})-\d+-\d+$/.exec(cmdId)
    if (prefix) return prefix[1]
    const c = this.claims.get(dev.sn)
    if (c && c.until > Date.now() && c.funcIds.has(m.funcId)) return c.gw
    return undefined
  }

  private onRelay(payload: Buffer): void {
    let r: unknown
    try {
      r = JSON.parse(payload.toString('utf8'))
    } catch {
      return
    }
    if (!isObject(r) || typeof r.sn !== 'string' || typeof r.payload !== 'string') return
    const entry = this.ctx.findDevice('best', r.sn)
    if (!entry) return
    const dev = this.devOf(entry)
    const p = parseMessage(r.payload)
    if ('error' in p) return
    const ch = this.mqttChannel(r.sn, dev)
    if (this.duplicate(dev, ch, p.msg)) return
    this.handle(dev, ch, p.msg)
  }

  private publishSession(dev: Dev): void {
    if (!this.link || !dev.mqtt) return
    dev.sessionPublishedAt = Date.now()
    const report = this.ctx.state(dev.name, 'report')
    this.link.client.publish(`doorctl/best/dev/${dev.sn}/session`, JSON.stringify({ gw: this.gwId, session: dev.mqtt.session, ready: dev.mqtt.ready, at: Date.now(), report }), { qos: 1, retain: true })
  }

  private onSessionNotice(sn: string, payload: Buffer): void {
    if (payload.length === 0) return
    let n: unknown
    try {
      n = JSON.parse(payload.toString('utf8'))
    } catch {
      return
    }
    if (!isObject(n) || typeof n.session !== 'string') return
    const entry = this.ctx.findDevice('best', sn)
    if (!entry) return
    const dev = this.devOf(entry)
    // our own notice echoed back; one of this gateway's earlier runs (same id, retained) still counts
    if (n.gw === this.gwId && dev.mqtt?.session === n.session) return
    const at = typeof n.at === 'number' ? n.at : 0
    if (isObject(n.report) && isObject(n.report.info)) {
      const mine = this.ctx.state(dev.name, 'report') as { at?: number } | undefined
      if (!mine || (mine.at ?? 0) < Number(n.report.at ?? 0)) {
        this.ctx.setState(dev.name, 'report', n.report)
        if (dev.job?.cmd.kind === 'info') this.finishInfo(dev, dev.job)
      }
    }
    if (Date.now() - at < this.ctx.settings.offlineAfterMs) this.ctx.touch(entry, `mqtt:${sn}`, isObject(n.report) && isObject(n.report.info) ? infoData(n.report.info) : undefined)
    if (!dev.mqtt || dev.mqtt.session !== n.session) {
      this.newSession(dev, n.session)
      dev.mqtt = { session: n.session, at, gw: String(n.gw), ready: false }
      if (n.ready === true) this.sessionReady(dev, 'mqtt')
      else this.awaitReport(dev, 'mqtt', Math.max(0, at + this.o.reportGraceMs - Date.now()))
    } else {
      dev.mqtt.at = at
      if (n.ready === true && !dev.mqtt.ready) this.sessionReady(dev, 'mqtt')
    }
  }

  private onClaim(sn: string, payload: Buffer): void {
    let c: unknown
    try {
      c = JSON.parse(payload.toString('utf8'))
    } catch {
      return
    }
    if (!isObject(c) || typeof c.gw !== 'string' || c.gw === this.gwId) return
    if (c.release === true) {
      if (this.claims.get(sn)?.gw === c.gw) this.claims.delete(sn)
      return
    }
    const funcIds = Array.isArray(c.funcIds) ? c.funcIds.map(String) : []
    this.claims.set(sn, { gw: c.gw, funcIds: new Set(funcIds), until: typeof c.until === 'number' ? c.until : Date.now() + 60_000 })
  }

  private async claim(dev: Dev, job: Job, funcIds: string[]): Promise<void> {
    if (!this.link) return
    await this.link.client.publishAsync(`doorctl/best/dev/${dev.sn}/claim`, JSON.stringify({ gw: this.gwId, funcIds, until: job.cmd.expiresAt }), { qos: 1 })
    job.claimed = true
  }

  private release(dev: Dev, job: Job): void {
    if (!job.claimed || !this.link) return
    job.claimed = false
    this.link.client.publish(`doorctl/best/dev/${dev.sn}/claim`, JSON.stringify({ gw: this.gwId, release: true }), { qos: 1 })
  }

  // ---- messages (both transports) ---------------------------------------------------------------

  private malformed(ch: Channel, p: Extract<Parsed, { error: string }>, device?: string): void {
    this.ctx.log.warn('best malformed message', { from: ch.address, device, reason: p.error })
    ch.send({ funcId: 'cmd.dev.response', code: CODE.badRequest, message: p.error, mid: p.mid ?? '' })
  }

  private unknown(sn: string, ch: Channel, m: BestMessage): void {
    const c = credentials(m)
    this.ctx.discovered('best', sn, ch.address, { funcId: m.funcId, productId: c.productId, protType: c.protType, devType: c.devType })
    ch.send(reply(m, CODE.unknownDevice, 'unknown device: add it with doorctl device add --protocol best'))
  }

  /**
   * Answers, and remembers a success under the request's mid (a repeat gets the same answer, and is
   * not processed again). A refusal is not remembered: the same message may succeed later (after a
   * login, or once the file it names is complete).
   */
  private answerOnce(dev: Dev | undefined, ch: Channel, m: BestMessage, code: string, message: string, results?: Json, persist = true): void {
    const r = reply(m, code, message, results)
    ch.send(r)
    if (code !== CODE.ok) this.ctx.log.info('best request refused', { device: dev?.name, from: ch.address, funcId: m.funcId, code, reason: message })
    else if (dev) this.remember(dev, m.mid, r, persist)
  }

  private duplicate(dev: Dev, ch: Channel, m: BestMessage): boolean {
    if (!dev.mids.has(m.mid)) return false
    const cached = dev.mids.get(m.mid)
    if (cached) ch.send(cached)
    this.ctx.log.debug('best duplicate message dropped', { device: dev.name, mid: m.mid, funcId: m.funcId })
    return true
  }

  private remember(dev: Dev, mid: string, answer: Json | null, persist = true): void {
    dev.mids.delete(mid)
    dev.mids.set(mid, answer)
    while (dev.mids.size > MIDS_KEPT) dev.mids.delete(dev.mids.keys().next().value as string)
    if (persist) this.ctx.setState(dev.name, 'mids', [...dev.mids.keys()].slice(-MIDS_PERSISTED))
  }

  private handle(dev: Dev, ch: Channel, m: BestMessage, conn?: WsConn): void {
    if (this.duplicate(dev, ch, m)) return
    if (EXCHANGE.has(m.funcId)) return this.exchange(dev, ch, m)
    if (LOGIN.has(m.funcId)) return this.loginPhase(dev, ch, m, conn)
    const loggedIn = ch.kind === 'ws' ? conn?.loggedIn === true : dev.mqtt !== undefined
    if (!loggedIn) return this.answerOnce(dev, ch, m, CODE.notLoggedIn, 'log in first (dev.login)')
    const answer = (code: string, message: string, results?: Json, persist = true) => this.answerOnce(dev, ch, m, code, message, results, persist)
    switch (m.funcId) {
      case 'dev.report':
        return this.report(dev, ch, m, conn)
      case 'dev.heartbeat':
        this.ctx.touch(dev.entry, ch.address)
        if (ch.kind === 'mqtt' && Date.now() - dev.sessionPublishedAt > 10_000) this.publishSession(dev)
        return answer(CODE.ok, 'success', undefined, false)
      case 'dev.system.sync.time':
        return this.syncTimeAsked(dev, ch, m)
      case 'dev.cmd.response':
        this.remember(dev, m.mid, null)
        return this.cmdResponse(dev, m)
      case 'dev.file.upload.start':
      case 'dev.file.upload.package':
      case 'dev.file.upload.end':
        return this.fileUpload(dev, m, answer)
      case 'dev.data.upload.verifyLog':
        return this.verifyLog(dev, ch, m, answer)
      case 'dev.data.upload.verifyPhoto':
        return this.verifyPhoto(dev, m, answer)
      case 'dev.data.upload.user':
      case 'dev.data.upload.userPhoto':
      case 'dev.data.upload.bioPhoto':
      case 'dev.data.upload.multiCard':
        return this.dataUpload(dev, m, answer)
      case 'cmd.dev.response':
        // an answer to nothing we asked (we send no requests that expect cmd.dev.response)
        return
      default:
        this.ctx.log.info('best message not handled', { device: dev.name, funcId: m.funcId })
        return answer(CODE.badRequest, `funcId ${m.funcId} is not supported by this server`)
    }
  }

  /** 2.1 / 2.2: answered, no cipher (see exchangeAnswer). */
  private exchange(dev: Dev | undefined, ch: Channel, m: BestMessage): void {
    const r = exchangeAnswer(m)
    ch.send(r)
    if (dev) this.remember(dev, m.mid, r)
  }

  // ---- register, accredit, login ----------------------------------------------------------------

  /**
   * Which devKey the device must present: derived from --device-secret, or from the secret this
   * gateway issued it (provisioning), or the one pinned on first use; undefined before first contact.
   */
  private expectedKey(dev: Dev, productId: string): { devKey?: string; known: boolean; problem?: string } {
    const e = dev.entry
    if (e.deviceSecret) {
      // best-m register/login may leave productId out ("当使用发布、订阅网络协议时不需要此参数")
      if (!productId) return { known: true, problem: 'productId unknown: the device sent none and the inventory has none (device add --product-id)' }
      return { devKey: devKeyOf(e.deviceSecret, productId), known: true }
    }
    const issued = this.ctx.state(dev.name, 'issuedSecret') as { secret: string; productId: string } | undefined
    if (issued) return { devKey: devKeyOf(issued.secret, productId || issued.productId), known: true }
    const pinned = this.ctx.state(dev.name, 'devKey') as { devKey: string; productId?: string } | undefined
    if (pinned) {
      if (pinned.productId && productId && pinned.productId !== productId) return { known: true, problem: 'productId differs from the one pinned on first use' }
      return { devKey: pinned.devKey, known: true }
    }
    return { known: false }
  }

  /** The devKey check: against --device-secret when given, else trust on first use (the first devKey is pinned). */
  private checkKey(dev: Dev, c: Credentials): { devKey: string } | { code: string; message: string } {
    const e = dev.entry
    if (e.productId && c.productId && c.productId !== e.productId) return { code: CODE.badKey, message: 'productId differs from the inventory' }
    if (c.devKey === '') return { code: CODE.badKey, message: 'devKey missing' }
    const want = this.expectedKey(dev, c.productId || e.productId || '')
    if (want.problem) return { code: CODE.badKey, message: want.problem }
    if (want.devKey !== undefined) {
      if (!sameHex(c.devKey, want.devKey)) return { code: CODE.badKey, message: e.deviceSecret ? 'devKey does not match the device secret' : 'devKey differs from the one trusted on first use' }
      return { devKey: c.devKey }
    }
    this.ctx.setState(dev.name, 'devKey', { devKey: c.devKey.toLowerCase(), productId: c.productId || undefined, pinnedAt: new Date().toISOString() })
    this.ctx.log.notice(`best device ${dev.name}: pinned the devKey it presented (trust on first use); pass --device-secret to check it instead`, { device: dev.name })
    return { devKey: c.devKey }
  }

  /**
   * 3.2 register → authCode, 3.3 accredit → secret, login. A device with its production secret
   * presents devKey = PBKDF2(secret, productId) throughout. A device without one ("由软件平台提供":
   * the platform provides it) registers with an empty devKey while we trust on first use: accredit
   * then issues it a secret (kept in DOORCTL_HOME), and it logs in with the devKey derived from that.
   * Login is checked: devKey as above, authCode as issued, and the secret either as accredit gave
   * it or one the devKey derives from (devKey = PBKDF2(secret, productId)).
   */
  private loginPhase(dev: Dev, ch: Channel, m: BestMessage, conn?: WsConn): void {
    const c = credentials(m)
    const refuse = (code: string, message: string) => {
      this.ctx.log.warn('best device refused', { device: dev.name, from: ch.address, funcId: m.funcId, reason: message })
      this.answerOnce(dev, ch, m, code, message)
    }
    const productId = c.productId || dev.entry.productId || ''
    const provisionCode = sessionValue('authCode', 'provision', dev.sn)
    const issued = this.ctx.state(dev.name, 'issuedSecret') as { secret: string; productId: string; confirmed?: boolean } | undefined
    if (c.devKey === '' && m.funcId !== 'dev.login') {
      // provisioning: only for a device we have no key for yet (or one whose issued secret it has not used)
      const want = this.expectedKey(dev, productId)
      if (want.known && !(issued && !issued.confirmed)) return refuse(CODE.badKey, 'devKey missing')
      if (m.funcId === 'dev.register') return this.answerOnce(dev, ch, m, CODE.ok, 'success', { authCode: provisionCode })
      if (!sameHex(c.authCode, provisionCode)) return refuse(CODE.badAuth, 'authCode is not the one dev.register gave: register again')
      if (!productId) return refuse(CODE.badKey, 'productId missing')
      const secret = issued && !issued.confirmed ? issued.secret : randomBytes(16).toString('hex')
      if (!issued || issued.secret !== secret) {
        this.ctx.setState(dev.name, 'issuedSecret', { secret, productId, confirmed: false, issuedAt: new Date().toISOString() })
        this.ctx.log.notice(`best device ${dev.name}: issued it a device secret (trust on first use); its devKey is derived from it from now on`, { device: dev.name })
      }
      return this.answerOnce(dev, ch, m, CODE.ok, 'success', { secret })
    }
    const key = this.checkKey(dev, c)
    if ('code' in key) return refuse(key.code, key.message)
    const authCode = sessionValue('authCode', key.devKey, dev.sn)
    if (m.funcId === 'dev.register') return this.answerOnce(dev, ch, m, CODE.ok, 'success', { authCode })
    if (!sameHex(c.authCode, authCode) && !sameHex(c.authCode, provisionCode)) return refuse(CODE.badAuth, 'authCode is not the one dev.register gave: register again')
    const derived = sessionValue('secret', key.devKey, dev.sn)
    if (m.funcId === 'dev.accredit') {
      // a device that got its secret from us keeps getting that one (it derives its devKey from it)
      const secret = issued && productId && sameHex(devKeyOf(issued.secret, productId), key.devKey) ? issued.secret : derived
      return this.answerOnce(dev, ch, m, CODE.ok, 'success', { secret })
    }
    const secretOk = c.secret !== '' && (sameHex(c.secret, derived) || (productId !== '' && sameHex(devKeyOf(c.secret, productId), key.devKey)))
    if (!secretOk) return refuse(CODE.badAuth, 'secret is not the one dev.accredit gave: register again')
    if (issued && !issued.confirmed) this.ctx.setState(dev.name, 'issuedSecret', { ...issued, confirmed: true })
    // logged in: a new session
    if (ch.kind === 'ws' && conn) {
      const old = dev.ws
      conn.loggedIn = true
      conn.ready = false
      dev.ws = conn
      this.newSession(dev, conn.id)
      if (old && old !== conn) old.socket.terminate()
    } else {
      const session = newMid()
      this.newSession(dev, session)
      dev.mqtt = { session, at: Date.now(), gw: this.gwId, ready: false }
      // before the answer: every gateway knows the session before the device can send anything else
      this.publishSession(dev)
    }
    this.ctx.touch(dev.entry, ch.address)
    this.answerOnce(dev, ch, m, CODE.ok, 'success')
    this.ctx.log.info('best device logged in', { device: dev.name, via: ch.kind, from: ch.address })
    // the document's start-up ends with dev.report: commands wait for it (or for the grace period)
    this.awaitReport(dev, ch.kind, this.o.reportGraceMs)
  }

  private awaitReport(dev: Dev, kind: 'ws' | 'mqtt', ms: number): void {
    if (dev.readyTimer) clearTimeout(dev.readyTimer)
    dev.readyTimer = setTimeout(() => this.safe('session', () => this.sessionReady(dev, kind)), ms)
    dev.readyTimer.unref()
  }

  /** The device's current session takes commands from now on. */
  private sessionReady(dev: Dev, kind: 'ws' | 'mqtt'): void {
    if (dev.readyTimer) clearTimeout(dev.readyTimer)
    dev.readyTimer = undefined
    if (kind === 'ws') {
      if (!dev.ws?.loggedIn) return
      dev.ws.ready = true
    } else {
      if (!dev.mqtt) return
      dev.mqtt.ready = true
    }
    this.schedulePump(dev)
  }

  /** A new login session: a step in flight on an older one was lost. */
  private newSession(dev: Dev, session: string): void {
    const job = dev.job
    if (job?.inflight && job.inflight.session !== session) this.lost(dev, job, 'the device logged in again before answering')
  }

  private lost(dev: Dev, job: Job, why: string): void {
    const step = job.inflight!.step
    job.inflight = undefined
    if (step.what === 'reboot') return this.finish(dev, job, 'acknowledged', { message: 'rebooting (the device went away after taking the command)' })
    job.attempts++
    if (job.attempts >= this.o.maxAttempts) {
      return this.finish(dev, job, 'failed', { message: `${why}, ${job.attempts} times; giving up`, people: this.outcomesFor(job, `not confirmed: ${why}`) })
    }
    this.ctx.log.info('best command in flight was lost; it is sent again when the device is back', { device: dev.name, id: job.cmd.id, attempt: job.attempts, reason: why })
  }

  // ---- report, time ---------------------------------------------------------------------------------

  private report(dev: Dev, ch: Channel, m: BestMessage, conn?: WsConn): void {
    const info = reportInfo(m)
    this.ctx.setState(dev.name, 'report', { info, at: Date.now() })
    this.ctx.touch(dev.entry, ch.address, infoData(info))
    const r = reportAnswer(m, info, { timezone: offsetText(this.offsetOf(dev.name)), heartbeatSeconds: this.o.heartbeatSeconds })
    ch.send(r)
    this.remember(dev, m.mid, r)
    if (ch.kind === 'ws' && conn && dev.ws === conn) this.sessionReady(dev, 'ws')
    if (ch.kind === 'mqtt' && dev.mqtt) {
      dev.mqtt.ready = true
      this.sessionReady(dev, 'mqtt')
      this.publishSession(dev)
    }
    if (dev.job?.cmd.kind === 'info') this.finishInfo(dev, dev.job)
  }

  private syncTimeAsked(dev: Dev, ch: Channel, m: BestMessage): void {
    const job = dev.job
    const s = job && !job.done ? job.sync : undefined
    const epochMs = s ? s.epochMs + (Date.now() - s.since) : Date.now()
    const offset = s ? s.offset : this.offsetOf(dev.name)
    const r = timeAnswer(m, epochMs, offset)
    ch.send(r)
    this.remember(dev, m.mid, r)
    if (job && s) {
      s.answered = isoTime(epochMs, offset)
      this.ctx.setState(dev.name, 'timezone', s.offset)
      this.ctx.delivered(job.cmd.id)
      this.syncProgress(dev, job)
    }
  }

  private syncProgress(dev: Dev, job: Job): void {
    const s = job.sync!
    if (s.responded && s.answered) return this.finish(dev, job, 'acknowledged', { message: `time set to ${s.answered}` })
    // one half came: the other gets timeAskMs
    this.arm(job, this.o.timeAskMs, () => {
      if (s.answered) this.finish(dev, job, 'acknowledged', { message: `time set to ${s.answered} (the device did not confirm the command)` })
      else this.finish(dev, job, 'acknowledged', { message: 'the device accepted the command but did not ask for the time' })
    })
  }

  private finishInfo(dev: Dev, job: Job): void {
    const data = this.infoFromState(dev.name)
    if (data) this.finish(dev, job, 'acknowledged', { data, message: 'as last reported by the device' })
  }

  private infoFromState(name: string): Json | undefined {
    const r = this.ctx.state(name, 'report') as { info?: Json; at?: number } | undefined
    if (!r || !isObject(r.info)) return undefined
    const options = this.ctx.state(name, 'options')
    return infoData(r.info, { reported_at: new Date(r.at ?? 0).toISOString(), timezone: offsetText(this.offsetOf(name)), option: isObject(options) ? options : {} })
  }

  // ---- uploads ----------------------------------------------------------------------------------------

  private fileUpload(dev: Dev, m: BestMessage, answer: (code: string, message: string) => void): void {
    const now = Date.now()
    if (m.funcId === 'dev.file.upload.start') {
      const s = parseFileStart(m, this.o.maxFileBytes)
      if ('error' in s) return answer(CODE.badFile, s.error)
      dev.files.set(s.fileId, { size: s.size, checksum: s.checksum, data: Buffer.alloc(s.size), written: 0, done: false, at: now })
      while (dev.files.size > 16) dev.files.delete(dev.files.keys().next().value as string)
      this.extendHolds(dev)
      return answer(CODE.ok, 'success')
    }
    if (m.funcId === 'dev.file.upload.package') {
      const p = parseFilePackage(m)
      if ('error' in p) return answer(CODE.badFile, p.error)
      const f = dev.files.get(p.fileId)
      if (!f || f.done) return answer(CODE.notFound, `no upload ${p.fileId} in progress (dev.file.upload.start first)`)
      // offset = "上次已传输文件偏移位置": the bytes already sent; a package may repeat, never skip
      if (p.offset > f.written) return answer(CODE.badFile, `offset ${p.offset} skips bytes: ${f.written} received so far`)
      if (p.offset + p.content.length > f.size) return answer(CODE.badFile, `package ends past the announced size ${f.size}`)
      p.content.copy(f.data, p.offset)
      f.written = Math.max(f.written, p.offset + p.content.length)
      f.at = now
      this.extendHolds(dev)
      return answer(CODE.ok, 'success')
    }
    const fileId = str(m.params.fileId).trim()
    const f = dev.files.get(fileId)
    if (!f) return answer(CODE.notFound, `no upload ${fileId}`)
    if (f.written !== f.size) {
      dev.files.delete(fileId)
      return answer(CODE.badFile, `incomplete: ${f.written} of ${f.size} bytes`)
    }
    if (!checksumOk(f.data, f.checksum)) {
      dev.files.delete(fileId)
      return answer(CODE.badFile, 'checksum does not match the content')
    }
    f.done = true
    f.at = now
    this.extendHolds(dev)
    answer(CODE.ok, 'success')
  }

  private verifyLog(dev: Dev, ch: Channel, m: BestMessage, answer: (code: string, message: string) => void): void {
    const entries = verifyLogEntries(m)
    if (entries.length === 0) return answer(CODE.badRequest, 'no verifyLog entries')
    const records: SpoolRecord[] = []
    const problems: string[] = []
    for (const e of entries) {
      const r = verifyLogRecord(dev.name, e, this.offsetOf(dev.name))
      if ('error' in r) problems.push(r.error)
      else records.push(r)
    }
    if (problems.length > 0) this.ctx.log.warn('best verify logs skipped', { device: dev.name, from: ch.address, problems })
    if (records.length === 0) return answer(CODE.badRequest, problems.join('; '))
    try {
      // a device sends a log's photo right after the log: logs held from an earlier message get no
      // photo any more, and go to the spool first, so the spool keeps the order they came in
      const fresh = new Set(records.map((r) => r.recordId))
      for (const id of [...dev.held.keys()]) if (!fresh.has(id)) this.flushHeld(dev, id)
      // on disk (spooled, or held in the gateway's state for its photo) before the device hears success
      for (const r of records) this.acceptRecord(dev, r)
    } catch (err) {
      this.ctx.log.warn('best could not store verify logs; the device will send them again', { device: dev.name, error: String(err) })
      const r = reply(m, CODE.storeFailed, 'could not store the records: send them again')
      ch.send(r)
      return
    }
    answer(CODE.ok, problems.length > 0 ? `${records.length} stored, ${problems.length} unreadable` : 'success')
  }

  /** A device that takes photos sends a verify log's photo right after it: the log waits for it, durably. */
  private expectsPhotos(dev: Dev): boolean {
    const r = this.ctx.state(dev.name, 'report') as { info?: Json } | undefined
    const info = r?.info ?? {}
    if (str(info.capturePic) === '0' || str(info.capturePic) === '1' || str(info.cameraOn) === '0') return false
    return true
  }

  private acceptRecord(dev: Dev, record: SpoolRecord): void {
    const stray = dev.strayPhotos.get(record.recordId)
    if (stray) {
      clearTimeout(stray.timer)
      dev.strayPhotos.delete(record.recordId)
      this.ctx.spool({ ...record, photo: stray.photo })
      return
    }
    if (dev.held.has(record.recordId) || !this.expectsPhotos(dev)) {
      if (!dev.held.has(record.recordId)) this.ctx.spool(record)
      return
    }
    const timer = setTimeout(() => this.safe('verify log', () => this.flushHeld(dev, record.recordId)), this.o.photoWaitMs)
    timer.unref()
    dev.held.set(record.recordId, { record, timer })
    this.persistHeld(dev)
  }

  private extendHolds(dev: Dev): void {
    for (const [id, h] of dev.held) {
      clearTimeout(h.timer)
      h.timer = setTimeout(() => this.safe('verify log', () => this.flushHeld(dev, id)), this.o.photoWaitMs)
      h.timer.unref()
    }
  }

  private persistHeld(dev: Dev): void {
    const records = [...dev.held.values()].map((h) => h.record)
    this.ctx.setState(dev.name, 'held', records.length > 0 ? records : undefined)
    const index = new Set((this.ctx.state(GLOBAL, 'heldDevices') as string[] | undefined) ?? [])
    const had = index.has(dev.name)
    if (records.length > 0) index.add(dev.name)
    else index.delete(dev.name)
    if (had !== index.has(dev.name)) this.ctx.setState(GLOBAL, 'heldDevices', [...index])
  }

  private flushHeld(dev: Dev, id: string, photo?: Buffer): void {
    const h = dev.held.get(id)
    if (!h) return
    clearTimeout(h.timer)
    this.ctx.spool(photo ? { ...h.record, photo } : h.record)
    dev.held.delete(id)
    this.persistHeld(dev)
  }

  /** Verify logs held when the gateway stopped (or died) go to the spool, without the photo they waited for. */
  private flushHeldFromLastRun(): void {
    const names = (this.ctx.state(GLOBAL, 'heldDevices') as string[] | undefined) ?? []
    for (const name of names) {
      const records = (this.ctx.state(name, 'held') as SpoolRecord[] | undefined) ?? []
      for (const r of records) this.ctx.spool(r)
      this.ctx.setState(name, 'held', undefined)
    }
    if (names.length > 0) this.ctx.setState(GLOBAL, 'heldDevices', undefined)
  }

  private verifyPhoto(dev: Dev, m: BestMessage, answer: (code: string, message: string) => void): void {
    const photos = verifyPhotos(m)
    if ('error' in photos) return answer(CODE.badRequest, photos.error)
    for (const ph of photos) {
      let data = ph.content
      if (!data && ph.fileId) {
        const f = dev.files.get(ph.fileId)
        if (!f || !f.done) return answer(CODE.notFound, `no complete upload ${ph.fileId}: upload the file again`)
        data = f.data
      }
      if (!data || data.length === 0) continue
      let id = ph.logId
      if (id === '') {
        // no logId: the latest held log of the same pin
        for (const [k, h] of dev.held) if (h.record.userId === ph.pin) id = k
        if (id === '') this.ctx.log.info('best verify photo names no log and no log of its pin waits: not kept', { device: dev.name, pin: ph.pin })
      }
      if (id !== '' && dev.held.has(id)) {
        try {
          this.flushHeld(dev, id, data)
        } catch (err) {
          this.ctx.log.warn('best could not store a verify photo; the device will send it again', { device: dev.name, error: String(err) })
          return answer(CODE.storeFailed, 'could not store the photo: send it again')
        }
      } else if (id !== '') {
        // the log has not come yet (or was stored already): keep the photo a while for it
        const old = dev.strayPhotos.get(id)
        if (old) clearTimeout(old.timer)
        const timer = setTimeout(() => {
          dev.strayPhotos.delete(id)
          this.ctx.log.info('best verify photo without a waiting verify log: not kept', { device: dev.name, log: id, pin: ph.pin })
        }, this.o.photoWaitMs)
        timer.unref()
        dev.strayPhotos.set(id, { photo: data, pin: ph.pin, timer })
      }
      if (ph.fileId) dev.files.delete(ph.fileId)
    }
    answer(CODE.ok, 'success')
  }

  /** 3.8–3.11 uploads: collected while a user listing is open (matched as uploadCmdId says). */
  private dataUpload(dev: Dev, m: BestMessage, answer: (code: string, message: string) => void): void {
    const job = dev.job
    const list = job && !job.done ? job.list : undefined
    const cmdId = uploadCmdId(m)
    const ours = list !== undefined && list.open && (cmdId === '' || cmdId === job!.inflight?.cmdId || cmdId.startsWith(`${this.gwId}-${job!.cmd.id}-`))
    if (list && ours) {
      if (m.funcId === 'dev.data.upload.user') for (const u of uploadedUsers(m)) list.users.set(str(u.pin).trim(), u)
      else if (m.funcId === 'dev.data.upload.multiCard') {
        for (const c of uploadedCards(m)) if (!c.lost) list.cards.set(c.pin, [...(list.cards.get(c.pin) ?? []), c.card])
      } else for (const pin of uploadedPhotoPins(m)) list.photos.add(pin)
      list.seen = true
      if (cmdId !== '') list.tagged = true
      answer(CODE.ok, 'success')
      this.listProgress(dev, job!)
      return
    }
    this.ctx.log.debug('best data upload with no listing waiting', { device: dev.name, funcId: m.funcId })
    answer(CODE.ok, 'success')
  }

  // ---- commands ----------------------------------------------------------------------------------------

  private onQueued(device: string): void {
    this.safe('queue', () => {
      for (const c of this.ctx.pending(device)) {
        if (c.protocol !== 'best' || c.state !== 'queued') continue
        const problem = this.precheck(c)
        if (problem) this.ctx.finish(c.id, 'failed', { message: problem })
        else if (c.kind === 'info') {
          // answered from the device's last dev.report; a device that never reported is waited for
          const data = this.infoFromState(c.device)
          if (data) this.ctx.finish(c.id, 'acknowledged', { data, message: 'as last reported by the device' })
        }
      }
      const dev = this.devs.get(device)
      if (dev) this.schedulePump(dev)
    })
  }

  /** Why a command can never work, whatever the device does. */
  private precheck(c: QueuedCommand): string | undefined {
    const p = c.payload
    switch (c.kind) {
      case 'setConfig': {
        const section = String(p.section ?? '')
        if (section !== 'option' && section !== 'json') return `best devices have no config section "${section}" (option, or json)`
        if (!isObject(p.values) || Object.keys(p.values).length === 0) return 'nothing to set'
        return undefined
      }
      case 'enrollFace':
        if (p.capture === true) return 'best devices cannot capture a face on request (best.txt has no such command): enroll with --photo'
        if (typeof p.photoPath !== 'string') return 'enrollFace needs a photo'
        return undefined
      case 'upsertPeople':
        return Array.isArray(p.people) ? undefined : 'upsertPeople payload has no people'
      case 'deletePeople':
        return p.ids === 'all' || Array.isArray(p.ids) ? undefined : 'deletePeople payload has no ids'
      case 'syncTime':
        return Number.isFinite(Number(p.epochMs)) ? undefined : 'syncTime needs epochMs'
      default:
        return kinds.has(c.kind) ? undefined : `best devices cannot ${c.kind}`
    }
  }

  private schedulePump(dev: Dev): void {
    setImmediate(() => this.safe('pump', () => this.pump(dev)))
  }

  private channel(dev: Dev): Channel | undefined {
    if (dev.ws?.loggedIn && dev.ws.ready) return this.wsChannel(dev.ws)
    if (this.link && dev.mqtt?.ready) return this.mqttChannel(dev.sn, dev)
    return undefined
  }

  private stillPending(dev: Dev, job: Job): boolean {
    return this.ctx.pending(dev.name).some((c) => c.id === job.cmd.id)
  }

  private pump(dev: Dev): void {
    if (this.stopping) return
    let job = dev.job
    if (job && (job.done || !this.stillPending(dev, job))) {
      this.drop(dev, job)
      job = undefined
    }
    if (!job) {
      for (const c of this.ctx.pending(dev.name)) {
        if (c.protocol !== 'best') continue
        job = this.build(dev, c)
        if (job) break
      }
      dev.job = job
    }
    if (job) void this.sendNext(dev, job)
  }

  /** A job whose command finished elsewhere (expired): forget it. */
  private drop(dev: Dev, job: Job): void {
    job.done = true
    if (job.timer) clearTimeout(job.timer)
    for (const f of job.files) this.ctx.unpublish(f)
    this.release(dev, job)
    if (dev.job === job) dev.job = undefined
  }

  private newJob(cmd: QueuedCommand): Job {
    return { cmd, steps: [], next: 0, seq: 0, sending: false, attempts: 0, people: new Map(), outcomes: new Map(), order: [], enrollOnly: false, files: [], claimed: false, done: false }
  }

  /** Sets a command up as steps; undefined when it finished right away. */
  private build(dev: Dev, cmd: QueuedCommand): Job | undefined {
    const job = this.newJob(cmd)
    const p = cmd.payload
    const problem = this.precheck(cmd)
    if (problem) return void this.finish(dev, job, 'failed', { message: problem })
    switch (cmd.kind) {
      case 'reboot':
        if (cmd.state === 'delivered') return void this.finish(dev, job, 'acknowledged', { message: 'delivered before the gateway restarted; assumed received' })
        job.steps.push({ funcId: 'cmd.control.reboot', what: 'reboot', ids: [], imme: true, params: { operator: 'doorctl' } })
        return job
      case 'syncTime': {
        const offset = Number(p.utcOffsetMinutes)
        job.sync = { epochMs: Number(p.epochMs), offset: Number.isFinite(offset) ? offset : this.offsetOf(dev.name), since: cmd.createdAt, responded: false }
        job.steps.push({ funcId: 'cmd.system.sync.time', what: 'sync', ids: [], imme: true })
        return job
      }
      case 'info': {
        const data = this.infoFromState(dev.name)
        if (data) return void this.finish(dev, job, 'acknowledged', { data, message: 'as last reported by the device' })
        return job // waits for the device's dev.report
      }
      case 'setConfig': {
        const values = p.values as Json
        const option: Json = {}
        for (const [k, v] of Object.entries(values)) option[k] = typeof v === 'string' ? v : JSON.stringify(v)
        const unknown = Object.keys(option).filter((k) => !OPTION_KEYS.includes(k))
        if (unknown.length > 0) this.ctx.log.info('best option keys the document does not list are passed through', { device: dev.name, keys: unknown })
        job.steps.push({ funcId: 'cmd.option.set', what: 'option', ids: [], params: { option } })
        return job
      }
      case 'upsertPeople':
        return this.buildImport(dev, job, (p.people as unknown[]).filter(isObject).map(readPersonPayload), false)
      case 'enrollFace':
        return this.buildImport(dev, job, [{ id: String(p.id ?? ''), photoPath: String(p.photoPath) }], true)
      case 'deletePeople': {
        if (p.ids === 'all') {
          job.steps.push({ funcId: 'cmd.data.clear.user', what: 'clear', ids: [] })
          return job
        }
        const ids = [...new Set((p.ids as unknown[]).map(String))]
        job.order = ids
        if (ids.length === 0) return void this.finish(dev, job, 'acknowledged', { people: [], message: 'nobody to delete' })
        for (const batch of chunk(ids, this.o.idsPerCommand)) job.steps.push({ funcId: 'cmd.data.delete.user', what: 'delete', ids: batch })
        return job
      }
      case 'listPeople':
        job.list = { users: new Map(), cards: new Map(), photos: new Set(), open: false, responded: false, tagged: false, seen: false }
        // "pin 为空时默认查询所有人员"
        job.steps.push({ funcId: 'cmd.data.query.user', what: 'query', ids: [], params: { pin: '' } })
        return job
      default:
        return void this.finish(dev, job, 'failed', { message: `best devices cannot ${cmd.kind}` })
    }
  }

  private buildImport(dev: Dev, job: Job, people: PersonPayload[], enrollOnly: boolean): Job | undefined {
    job.enrollOnly = enrollOnly
    const valid: PersonPayload[] = []
    for (const p of people) {
      if (job.people.has(p.id)) continue
      job.people.set(p.id, p)
      job.order.push(p.id)
      const problem = personProblem(p)
      if (problem) job.outcomes.set(p.id, { id: p.id, name: p.name, status: 'failed', action: 'store', message: `not sent: ${problem}` })
      else valid.push(p)
    }
    if (!enrollOnly) {
      for (const batch of chunk(valid, this.o.usersPerCommand)) job.steps.push({ funcId: 'cmd.data.update.user', what: 'user', ids: batch.map((p) => p.id) })
      const withCards = valid.filter((p) => p.card !== undefined && p.card !== '')
      for (const batch of chunk(withCards, this.o.idsPerCommand)) job.steps.push({ funcId: 'cmd.data.update.multiCard', what: 'card', ids: batch.map((p) => p.id) })
    }
    for (const p of valid) if (p.photoPath) job.steps.push({ funcId: 'cmd.data.update.bioPhoto', what: 'photo', ids: [p.id] })
    if (job.steps.length === 0) return void this.finish(dev, job, 'acknowledged', { people: this.ordered(job), message: this.importSummary(job) })
    return job
  }

  /** Step ids still worth sending: cards and photos only for people stored. */
  private liveIds(job: Job, step: Step): string[] {
    if (step.what !== 'card' && step.what !== 'photo') return step.ids
    return step.ids.filter((id) => job.outcomes.get(id)?.status !== 'failed')
  }

  /** The params of a step, built when it is sent (passwords hashed, photos published). */
  private async stepParams(dev: Dev, job: Job, step: Step, ch: Channel): Promise<Json> {
    const ids = this.liveIds(job, step)
    switch (step.what) {
      case 'user': {
        const offset = this.offsetOf(dev.name)
        return { users: ids.map((id) => wireUser(job.people.get(id)!, offset)) }
      }
      case 'card':
        return { multiCards: ids.map((id) => wireCard(id, job.people.get(id)!.card!)) }
      case 'photo': {
        const person = job.people.get(ids[0])!
        const data = await readFile(person.photoPath!)
        const name = `best-${job.cmd.id}-${randomBytes(6).toString('hex')}.jpg`
        job.files.push(name)
        const url = this.ctx.publish(name, data, 'image/jpeg', ch.host)
        return { bioPhotos: [wireBioPhoto(person.id, url)] }
      }
      case 'delete':
        return { pins: ids }
      default:
        return step.params ?? {}
    }
  }

  private async sendNext(dev: Dev, job: Job): Promise<void> {
    if (job.done || job.inflight || job.sending || this.stopping) return
    const ch = this.channel(dev)
    if (!ch) return
    while (job.next < job.steps.length && this.liveIds(job, job.steps[job.next]).length === 0 && job.steps[job.next].ids.length > 0) job.next++
    if (job.next >= job.steps.length) return this.stepsDone(dev, job)
    const step = job.steps[job.next]
    job.sending = true
    try {
      const claim = CLAIMS[step.what]
      if (ch.kind === 'mqtt' && claim && !job.claimed) await this.claim(dev, job, claim)
      let params: Json
      try {
        params = await this.stepParams(dev, job, step, ch)
      } catch (err) {
        // e.g. a photo file that went away since the CSV was checked: that person fails, the rest goes on
        for (const id of this.liveIds(job, step)) this.fail(job, id, step, `not sent: ${(err as Error).message}`)
        job.next++
        job.sending = false
        return this.sendNext(dev, job)
      }
      const now = this.channel(dev)
      if (job.done || dev.job !== job || !now || now.session !== ch.session) return
      const cmdId = `${this.gwId}-${job.cmd.id}-${++job.seq}`
      job.inflight = { step, cmdId, session: now.session }
      if (job.list && step.what === 'query') job.list.open = true
      this.ctx.delivered(job.cmd.id)
      now.send(step.what === 'reboot' ? rebootCommand(cmdId) : command(step.funcId, cmdId, params, { imme: step.imme }))
      this.ctx.log.debug('best command sent', { device: dev.name, id: job.cmd.id, funcId: step.funcId, cmdId, via: now.kind })
    } catch (err) {
      this.ctx.log.warn('best could not send a command; retrying on the next contact', { device: dev.name, id: job.cmd.id, error: String(err) })
    } finally {
      job.sending = false
    }
  }

  private cmdResponse(dev: Dev, m: BestMessage): void {
    const r = parseCmdResponse(m)
    const job = dev.job
    if (!job || job.done || !job.inflight || job.inflight.cmdId !== r.cmdId) {
      this.ctx.log.debug('best answer to no command in flight', { device: dev.name, cmdId: r.cmdId, code: r.code })
      return
    }
    const step = job.inflight.step
    job.inflight = undefined
    job.next++
    const why = r.message !== '' ? r.message : `code ${r.code}`
    const failed = (message: string) => this.finish(dev, job, 'failed', { message, deviceCode: r.code })
    switch (step.what) {
      case 'reboot':
        return r.ok ? this.finish(dev, job, 'acknowledged', { message: 'rebooting' }) : failed(why)
      case 'option': {
        if (!r.ok) return failed(why)
        const option = (step.params?.option ?? {}) as Json
        const known = this.ctx.state(dev.name, 'options')
        this.ctx.setState(dev.name, 'options', { ...(isObject(known) ? known : {}), ...option })
        return this.finish(dev, job, 'acknowledged', { message: `set ${Object.keys(option).join(', ')}`, data: { option } })
      }
      case 'clear':
        if (!r.ok) return failed(why)
        this.ctx.setState(dev.name, 'faces', undefined)
        return this.finish(dev, job, 'acknowledged', { people: [], message: 'all people deleted' })
      case 'sync':
        if (!r.ok) return failed(why)
        job.sync!.responded = true
        return this.syncProgress(dev, job)
      case 'query':
        if (!r.ok) return failed(why)
        job.list!.responded = true
        return this.listProgress(dev, job)
      case 'user':
      case 'delete': {
        const ids = this.liveIds(job, step)
        if (r.ok) {
          for (const id of ids) {
            const p = job.people.get(id)
            job.outcomes.set(id, step.what === 'user'
              ? { id, name: p?.name, status: 'ok', action: 'stored', message: 'stored' }
              : { id, status: 'ok', action: 'deleted', message: 'deleted' })
          }
          if (step.what === 'delete') this.forgetFaces(dev, ids)
        } else if (ids.length > 1) {
          // the answer covers the batch: ask again one by one for each person's own reason
          job.steps.splice(job.next, 0, ...ids.map((id) => ({ ...step, ids: [id] })))
        } else for (const id of ids) this.fail(job, id, step, why, r.code)
        break
      }
      case 'card':
        if (!r.ok) for (const id of this.liveIds(job, step)) this.fail(job, id, step, `stored, but the device refused the card: ${why}`, r.code)
        break
      case 'photo': {
        const id = step.ids[0]
        if (r.ok) {
          const o = job.outcomes.get(id)
          job.outcomes.set(id, job.enrollOnly || !o
            ? { id, status: 'ok', action: 'enrolled', message: 'face enrolled' }
            : { ...o, message: `${o.message}, face enrolled` })
          const faces = new Set((this.ctx.state(dev.name, 'faces') as string[] | undefined) ?? [])
          faces.add(id)
          this.ctx.setState(dev.name, 'faces', [...faces])
        } else this.fail(job, id, step, job.enrollOnly ? why : `stored, but the device refused the face photo: ${why}`, r.code)
        break
      }
    }
    if (job.order.length > 0) this.ctx.progress(job.cmd.id, { people: this.ordered(job), message: `${job.outcomes.size} of ${job.order.length} answered` })
    void this.sendNext(dev, job)
  }

  private fail(job: Job, id: string, step: Step, message: string, deviceCode?: string): void {
    const p = job.people.get(id)
    const action = step.what === 'delete' ? 'delete' : step.what === 'photo' ? 'enroll' : 'store'
    job.outcomes.set(id, { id, name: p?.name, status: 'failed', action, message, ...(deviceCode !== undefined ? { deviceCode } : {}) })
  }

  private forgetFaces(dev: Dev, ids: string[]): void {
    const faces = (this.ctx.state(dev.name, 'faces') as string[] | undefined) ?? []
    const left = faces.filter((f) => !ids.includes(f))
    if (left.length !== faces.length) this.ctx.setState(dev.name, 'faces', left.length > 0 ? left : undefined)
  }

  /** Every step answered: people commands finish with one outcome per person. */
  private stepsDone(dev: Dev, job: Job): void {
    if (job.order.length > 0 || job.cmd.kind === 'upsertPeople' || job.cmd.kind === 'enrollFace' || job.cmd.kind === 'deletePeople') {
      const message = job.cmd.kind === 'deletePeople'
        ? `${[...job.outcomes.values()].filter((o) => o.status === 'ok').length} of ${job.order.length} deleted`
        : this.importSummary(job)
      this.finish(dev, job, 'acknowledged', { people: this.ordered(job), message })
    }
  }

  private ordered(job: Job): PersonOutcome[] {
    return job.order.map((id) => job.outcomes.get(id)).filter((o): o is PersonOutcome => o !== undefined)
  }

  /** Outcomes of a command that ends early: the people not answered for get `why`. */
  private outcomesFor(job: Job, why: string): PersonOutcome[] | undefined {
    if (job.order.length === 0) return undefined
    return job.order.map((id) => job.outcomes.get(id) ?? { id, name: job.people.get(id)?.name, status: 'timeout', message: why })
  }

  private importSummary(job: Job): string {
    const ok = [...job.outcomes.values()].filter((o) => o.status === 'ok').length
    if (job.enrollOnly) return ok === 1 ? 'face enrolled' : 'face not enrolled'
    const dropped = [...job.people.values()].some((p) => (p.phone ?? '') !== '' || (p.department ?? '') !== '')
    return `${ok} of ${job.people.size} stored` + (dropped ? ' (phone and department are not sent: best users have no such fields)' : '')
  }

  private listProgress(dev: Dev, job: Job): void {
    const list = job.list!
    if (job.done) return
    // a device that tags its uploads with our cmdId sends them all before its answer: done now
    if (list.responded && list.tagged) return this.finishList(dev, job)
    if (!list.responded && !list.seen) return
    // after the answer, uploads that follow it get a short quiet period; a device that uploads
    // but never answers gets a long one (its pages may come slowly), then what it sent is the list
    this.arm(job, list.responded ? this.o.listQuietMs : this.o.listQuietMs * 10, () => this.finishList(dev, job))
  }

  private finishList(dev: Dev, job: Job): void {
    const list = job.list!
    const offset = this.offsetOf(dev.name)
    const faces = new Set((this.ctx.state(dev.name, 'faces') as string[] | undefined) ?? [])
    const people = [...list.users.entries()]
      .filter(([pin]) => pin !== '')
      .map(([pin, u]) => personInfoJson(u, offset, list.cards.get(pin) ?? [], list.photos.has(pin) || faces.has(pin)))
    this.finish(dev, job, 'acknowledged', { data: { people }, message: `${people.length} people` })
  }

  private arm(job: Job, ms: number, fn: () => void): void {
    if (job.timer) clearTimeout(job.timer)
    job.timer = setTimeout(() => {
      job.timer = undefined
      if (!job.done) this.safe('timer', fn)
    }, Math.max(0, ms))
    job.timer.unref()
  }

  private finish(dev: Dev, job: Job, state: 'acknowledged' | 'failed', result: CommandResult): void {
    if (job.done) return
    this.drop(dev, job)
    this.ctx.finish(job.cmd.id, state, result)
    this.ctx.log.debug('best command finished', { device: dev.name, id: job.cmd.id, kind: job.cmd.kind, state })
    this.schedulePump(dev)
  }

  // ---- housekeeping --------------------------------------------------------------------------------

  private sweep(): void {
    const now = Date.now()
    for (const [k, until] of this.nonces) if (until < now) this.nonces.delete(k)
    for (const [sn, c] of this.claims) if (c.until < now) this.claims.delete(sn)
    for (const dev of this.devs.values()) {
      for (const [id, f] of dev.files) if (now - f.at > 10 * 60_000) dev.files.delete(id)
      if (dev.job && !dev.job.done && !this.stillPending(dev, dev.job)) this.drop(dev, dev.job)
      if (!dev.job && this.channel(dev) && this.ctx.pending(dev.name).length > 0) this.pump(dev)
      else if (dev.job && !dev.job.inflight && !dev.job.sending && this.channel(dev)) void this.sendNext(dev, dev.job)
    }
    // a WebSocket that stays silent past two heartbeats is dead (a device that lost power sends no close)
    const silentMs = 2 * this.o.heartbeatSeconds * 1000 + 30_000
    for (const conn of this.conns) {
      if (now - conn.lastSeen > silentMs) {
        this.ctx.log.info('best websocket silent too long: closed', { device: conn.dev?.name, from: conn.address })
        conn.socket.terminate()
      } else if (now - conn.lastSeen > 30_000 && conn.socket.readyState === 1) conn.socket.ping()
    }
  }
}

/** A best protocol handler; `handler` is the default one. Options exist for tests (shorter waits, fixed ids). */
export function createHandler(opts: BestOptions = {}): ProtocolHandler {
  const instances = new Map<GatewayContext, BestGateway>()
  const of = (ctx: GatewayContext) => {
    let gw = instances.get(ctx)
    if (!gw) instances.set(ctx, (gw = new BestGateway(ctx, opts)))
    return gw
  }
  return {
    protocol: 'best',
    kinds,
    routes: (ctx) => of(ctx).routes(),
    websockets: (ctx) => of(ctx).websockets(),
    start: (ctx) => of(ctx).start(),
    async stop(): Promise<void> {
      for (const gw of instances.values()) await gw.stop()
      instances.clear()
    },
  }
}

export const handler: ProtocolHandler = createHandler()

/**
 * best gateway side (best.txt): the device asks GET /v3/device/getBrokerServer for its server,
 * then holds a WebSocket to /best (best-w) or an MQTT session on best/{sn}/up|down (best-m),
 * goes through key exchange, dev.register → dev.accredit → dev.login, reports (dev.report),
 * heartbeats, takes our cmd.* commands (each answered by dev.cmd.response with its cmdId) and
 * uploads its records. Both transports share one codec (codec.ts) and everything below the
 * "channel": a channel only knows how to send a JSON document to the device.
 *
 * The parts, one file each:
 * - session.ts   getBrokerServer, key exchange, register → accredit → login, report: sessions
 * - delivery.ts  queued commands as steps to the device, their answers, time syncs, listings
 * - uploads.ts   verify logs and photos into the spool, files uploaded in pieces
 * - relay.ts     best-m over MQTT, and several gateways sharing one broker
 * - state.ts     what they share: per-device state, options, BestCore
 * This file wires them together (BestCore), takes best-w connections, and hands each device
 * message to the part that handles it. Duplicate deliveries (QoS 1, retries) are dropped by
 * `mid`, remembered per device in DOORCTL_HOME.
 */
import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { WebSocket } from 'ws'
import { REFUSED, type GatewayContext, type GatewayResponse, type ProtocolHandler, type Route, type WebSocketRoute } from '../../types/gateway.js'
import type { DeviceEntry } from '../../types/driver.js'
import type { BrokerLink } from './broker.js'
import { brokerError, claimedSn, CODE, credentials, parseMessage, reply, TOPICS, type BestMessage, type Json, type Parsed } from './codec.js'
import { Delivery } from './delivery.js'
import { Relay } from './relay.js'
import { kinds } from './rules.js'
import { Sessions } from './session.js'
import { EXCHANGE, GLOBAL, localOffset, LOGIN, MIDS_KEPT, MIDS_PERSISTED, type BestCore, type BestOptions, type Channel, type Dev, type ResolvedBestOptions, type WsConn } from './state.js'
import { Uploads } from './uploads.js'
import { zoneOffsetMinutes, type DeviceClock } from '../../util/time.js'

export type { BestOptions } from './state.js'

/** The best gateway of one Gateway: the parts above, wired together (BestCore). */
class BestGateway implements BestCore {
  readonly gwId: string
  readonly devs = new Map<string, Dev>()
  private readonly conns = new Set<WsConn>()
  link?: BrokerLink
  private sweeper?: NodeJS.Timeout
  stopping = false
  brokerProblem?: string
  readonly o: ResolvedBestOptions
  readonly sessions: Sessions = new Sessions(this)
  readonly delivery: Delivery = new Delivery(this)
  readonly relay: Relay = new Relay(this)
  readonly uploads: Uploads = new Uploads(this)

  constructor(readonly ctx: GatewayContext, opts: BestOptions) {
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
      sharedProbeMs: opts.sharedProbeMs ?? 3000,
      mqtt: opts.mqtt !== false,
    }
    let id = opts.gatewayId ?? (ctx.state(GLOBAL, 'gatewayId') as string | undefined)
    if (!id || !/^[0-9a-z]{1,16}$/.test(id)) {
      id = randomBytes(4).toString('hex')
      ctx.setState(GLOBAL, 'gatewayId', id)
    }
    this.gwId = id
    ctx.onQueued((device) => this.delivery.onQueued(device))
  }

  // ---- lifecycle ----------------------------------------------------------------------------------

  routes(): Route[] {
    return [{ method: '*', path: '/v3/device/getBrokerServer', handle: (req) => this.guard('getBrokerServer', () => this.sessions.brokerServer(req)) }]
  }

  websockets(): WebSocketRoute[] {
    return [{ path: '/best', onConnection: (socket, req) => this.onWsConnection(socket, req) }]
  }

  async start(): Promise<Record<string, string | number | boolean> | void> {
    this.uploads.flushHeldFromLastRun()
    this.sweeper = setInterval(() => this.safe('sweep', () => this.sweep()), this.o.sweepMs)
    this.sweeper.unref()
    if (!this.o.mqtt) return
    const s = this.ctx.settings
    // the embedded broker is a listening port: only when a best-m device needs it, or --mqtt-port asks for it
    if (!s.mqttUrl && s.mqttPort === undefined && !this.ctx.devices().some((d) => d.protocol === 'best' && d.transport === 'mqtt')) {
      this.brokerProblem = 'no best-m device was in the inventory when the gateway started (restart it, or pass --mqtt-port)'
      return
    }
    const { openBroker, BrokerUnavailable } = await import('./broker.js')
    try {
      this.link = await openBroker({
        settings: this.ctx.settings,
        log: this.ctx.log,
        home: this.ctx.home,
        tls: this.ctx.tls,
        admitDevice: (sn, address) => {
          const entry = this.ctx.findDevice('best', sn, address)
          if (!entry) this.ctx.log.warn('mqtt device login refused', { sn, from: address, reason: 'not in the inventory' })
          return entry !== undefined && entry !== REFUSED
        },
        onRefused: (r) => this.ctx.refused({ protocol: 'best', address: r.address, reason: r.reason, device: r.sn !== undefined ? this.ctx.findDevice('best', r.sn)?.name : undefined }),
        clientId: `doorctl-${this.gwId}`,
        sharedProbeMs: this.o.sharedProbeMs,
        subscriptions: [TOPICS.sharedUp, `doorctl/best/gw/${this.gwId}`, 'doorctl/best/dev/+/session', 'doorctl/best/dev/+/claim'],
        onMessage: (topic, payload) => this.safe('mqtt message', () => this.relay.onMqtt(topic, payload)),
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
      this.uploads.stop(dev)
    }
    await this.link?.close().catch(() => undefined)
    this.link = undefined
  }

  safe(what: string, fn: () => void): void {
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

  devOf(entry: DeviceEntry): Dev {
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

  /** The device's offset now: its --tz zone's, else the one we last gave it, else this machine's. */
  offsetOf(name: string): number {
    const zone = this.devs.get(name)?.entry.tz
    if (zone) return zoneOffsetMinutes(zone, Date.now())
    const tz = this.ctx.state(name, 'timezone')
    return typeof tz === 'number' && Number.isFinite(tz) ? tz : localOffset()
  }

  /** How to read the device's zone-less times. */
  clockOf(name: string): DeviceClock {
    return { zone: this.devs.get(name)?.entry.tz, offsetMinutes: this.offsetOf(name) }
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
      remoteAddress: req.socket.remoteAddress ?? '',
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
      const entry = this.ctx.findDevice('best', sn, conn.remoteAddress)
      if (entry === REFUSED) {
        this.answerOnce(undefined, ch, m, CODE.badAuth, 'not allowed from this address')
        conn.socket.close(1008, 'not allowed from this address')
        return
      }
      if (!entry) return this.unknown(sn, ch, m)
      dev = conn.dev = this.devOf(entry)
    }
    if (!dev) {
      if (EXCHANGE.has(m.funcId)) return this.sessions.exchange(undefined, ch, m)
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
    if (job?.inflight && job.inflight.session === conn.id) this.delivery.lost(dev, job, 'the device disconnected before answering')
  }

  // ---- messages (both transports) ---------------------------------------------------------------

  malformed(ch: Channel, p: Extract<Parsed, { error: string }>, device?: string): void {
    this.ctx.log.warn('best malformed message', { from: ch.address, device, reason: p.error })
    ch.send({ funcId: 'cmd.dev.response', code: CODE.badRequest, message: p.error, mid: p.mid ?? '' })
  }

  unknown(sn: string, ch: Channel, m: BestMessage): void {
    const c = credentials(m)
    this.ctx.discovered('best', sn, ch.address, { funcId: m.funcId, productId: c.productId, protType: c.protType, devType: c.devType })
    ch.send(reply(m, CODE.unknownDevice, 'unknown device: add it with doorctl device add --protocol best'))
  }

  /**
   * Answers, and remembers a success under the request's mid (a repeat gets the same answer, and is
   * not processed again). A refusal is not remembered: the same message may succeed later (after a
   * login, or once the file it names is complete).
   */
  answerOnce(dev: Dev | undefined, ch: Channel, m: BestMessage, code: string, message: string, results?: Json, persist = true): void {
    const r = reply(m, code, message, results)
    ch.send(r)
    if (code !== CODE.ok) this.ctx.log.info('best request refused', { device: dev?.name, from: ch.address, funcId: m.funcId, code, reason: message })
    else if (dev) this.remember(dev, m.mid, r, persist)
  }

  duplicate(dev: Dev, ch: Channel, m: BestMessage): boolean {
    if (!dev.mids.has(m.mid)) return false
    const cached = dev.mids.get(m.mid)
    if (cached) ch.send(cached)
    this.ctx.log.debug('best duplicate message dropped', { device: dev.name, mid: m.mid, funcId: m.funcId })
    return true
  }

  remember(dev: Dev, mid: string, answer: Json | null, persist = true): void {
    dev.mids.delete(mid)
    dev.mids.set(mid, answer)
    while (dev.mids.size > MIDS_KEPT) dev.mids.delete(dev.mids.keys().next().value as string)
    if (persist) this.ctx.setState(dev.name, 'mids', [...dev.mids.keys()].slice(-MIDS_PERSISTED))
  }

  /** A device message, once it is known to be this device's and this gateway's: each funcId to the part that handles it. */
  handle(dev: Dev, ch: Channel, m: BestMessage, conn?: WsConn): void {
    if (this.duplicate(dev, ch, m)) return
    if (EXCHANGE.has(m.funcId)) return this.sessions.exchange(dev, ch, m)
    if (LOGIN.has(m.funcId)) return this.sessions.loginPhase(dev, ch, m, conn)
    const loggedIn = ch.kind === 'ws' ? conn?.loggedIn === true : dev.mqtt !== undefined
    if (!loggedIn) return this.answerOnce(dev, ch, m, CODE.notLoggedIn, 'log in first (dev.login)')
    const answer = (code: string, message: string, results?: Json, persist = true) => this.answerOnce(dev, ch, m, code, message, results, persist)
    switch (m.funcId) {
      case 'dev.report':
        return this.sessions.report(dev, ch, m, conn)
      case 'dev.heartbeat':
        this.ctx.touch(dev.entry, ch.address)
        this.ctx.heartbeat(dev.entry)
        if (ch.kind === 'mqtt' && Date.now() - dev.sessionPublishedAt > 10_000) this.relay.publishSession(dev)
        return answer(CODE.ok, 'success', undefined, false)
      case 'dev.system.sync.time':
        return this.delivery.syncTimeAsked(dev, ch, m)
      case 'dev.cmd.response':
        this.remember(dev, m.mid, null)
        return this.delivery.cmdResponse(dev, m)
      case 'dev.file.upload.start':
      case 'dev.file.upload.package':
      case 'dev.file.upload.end':
        return this.uploads.fileUpload(dev, m, answer)
      case 'dev.data.upload.verifyLog':
        return this.uploads.verifyLog(dev, ch, m, answer)
      case 'dev.data.upload.verifyPhoto':
        return this.uploads.verifyPhoto(dev, m, answer)
      case 'dev.data.upload.user':
      case 'dev.data.upload.userPhoto':
      case 'dev.data.upload.bioPhoto':
      case 'dev.data.upload.multiCard':
        return this.delivery.dataUpload(dev, m, answer)
      case 'cmd.dev.response':
        // an answer to nothing we asked (we send no requests that expect cmd.dev.response)
        return
      default:
        this.ctx.log.info('best message not handled', { device: dev.name, funcId: m.funcId })
        return answer(CODE.badRequest, `funcId ${m.funcId} is not supported by this server`)
    }
  }

  /** The channel commands go down now: a ready WebSocket login, else a ready MQTT session. */
  channel(dev: Dev): Channel | undefined {
    if (dev.ws?.loggedIn && dev.ws.ready) return this.wsChannel(dev.ws)
    if (this.link && dev.mqtt?.ready) return this.relay.mqttChannel(dev.sn, dev)
    return undefined
  }

  // ---- housekeeping --------------------------------------------------------------------------------

  private sweep(): void {
    const now = Date.now()
    this.sessions.sweep(now)
    this.relay.sweep(now)
    for (const dev of this.devs.values()) {
      this.uploads.sweep(dev, now)
      this.delivery.sweep(dev)
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
    warnings: () => [...instances.values()].flatMap((gw) => [...(gw.link?.warnings ?? [])]),
    async stop(): Promise<void> {
      for (const gw of instances.values()) await gw.stop()
      instances.clear()
    },
  }
}

export const handler: ProtocolHandler = createHandler()

/**
 * best login and sessions (best.txt 2.1–2.2, 3.1–3.5): getBrokerServer tells a device where to connect
 * (sign and timestamp checked), then the key exchange, dev.register → authCode, dev.accredit →
 * secret, dev.login (devKey checked against --device-secret, or pinned on first use) and
 * dev.report, after which the session takes commands. A new login session means a step in flight
 * on an older one was lost (delivery.ts decides what to do with it).
 */
import { randomBytes } from 'node:crypto'
import { REFUSED, type GatewayContext, type GatewayRequest, type GatewayResponse } from '../../types/gateway.js'
import {
  brokerAnswer, brokerError, brokerSign, CODE, credentials, devKeyOf, exchangeAnswer, infoData, newMid, offsetText, parseBrokerQuery, reportAnswer,
  isObject, reportedOptions, reportInfo, sameHex, sessionValue, type BestMessage, type Credentials,
} from './codec.js'
import { bracket, MQTT_SAFE_SN, type BestCore, type Channel, type Dev, type ResolvedBestOptions, type SessionPart, type WsConn } from './state.js'

export class Sessions implements SessionPart {
  private readonly nonces = new Map<string, number>()
  private readonly unkeyedWarned = new Set<string>()

  constructor(private readonly core: BestCore) {}

  private get ctx(): GatewayContext {
    return this.core.ctx
  }

  private get o(): ResolvedBestOptions {
    return this.core.o
  }

  /** getBrokerServer nonces go stale with the timestamp window. */
  sweep(now: number): void {
    for (const [k, until] of this.nonces) if (until < now) this.nonces.delete(k)
  }

  brokerServer(req: GatewayRequest): GatewayResponse {
    const address = `${req.remoteAddress}:${req.remotePort}`
    const q = parseBrokerQuery(req.query)
    if ('error' in q) {
      this.ctx.log.warn('best getBrokerServer malformed', { from: address, reason: q.error })
      return { status: 400, json: brokerError(CODE.badRequest, q.error) }
    }
    const entry = this.ctx.findDevice('best', q.sn, req.remoteAddress)
    if (entry === REFUSED) return { json: brokerError(CODE.badAuth, 'not allowed from this address') }
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
        return { json: brokerAnswer(`${this.ctx.tls ? 'wss' : 'ws'}://${host}/best`) }
      case 'best-m': {
        if (!this.core.link) {
          this.ctx.log.warn(`best-m device ${entry.name} asks for the MQTT broker, but ${this.core.brokerProblem ? `the embedded broker is not running: ${this.core.brokerProblem}` : 'this gateway has none'}`, { suggestion: 'pick another --mqtt-port, or point --mqtt-url at a broker' })
          return refuse(CODE.unavailable, 'this gateway has no MQTT broker')
        }
        if (!MQTT_SAFE_SN.test(q.sn)) return refuse(CODE.badRequest, 'this sn cannot be used in MQTT topics')
        const hostname = host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1')
        return { json: brokerAnswer(this.core.link.deviceUrl(q.sn, hostname)) }
      }
      default:
        return refuse(CODE.unsupportedType, `type ${q.type} is not served here (best-w, best-m)`)
    }
  }

  /** 2.1 / 2.2: answered, no cipher (see exchangeAnswer). */
  exchange(dev: Dev | undefined, ch: Channel, m: BestMessage): void {
    const r = exchangeAnswer(m)
    ch.send(r)
    if (dev) this.core.remember(dev, m.mid, r)
  }

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
  loginPhase(dev: Dev, ch: Channel, m: BestMessage, conn?: WsConn): void {
    const c = credentials(m)
    const refuse = (code: string, message: string) => {
      this.ctx.log.warn('best device refused', { device: dev.name, from: ch.address, funcId: m.funcId, reason: message })
      this.core.answerOnce(dev, ch, m, code, message)
    }
    const productId = c.productId || dev.entry.productId || ''
    const provisionCode = sessionValue('authCode', 'provision', dev.sn)
    const issued = this.ctx.state(dev.name, 'issuedSecret') as { secret: string; productId: string; confirmed?: boolean } | undefined
    if (c.devKey === '' && m.funcId !== 'dev.login') {
      // provisioning: only for a device we have no key for yet (or one whose issued secret it has not used)
      const want = this.expectedKey(dev, productId)
      if (want.known && !(issued && !issued.confirmed)) return refuse(CODE.badKey, 'devKey missing')
      if (m.funcId === 'dev.register') return this.core.answerOnce(dev, ch, m, CODE.ok, 'success', { authCode: provisionCode })
      if (!sameHex(c.authCode, provisionCode)) return refuse(CODE.badAuth, 'authCode is not the one dev.register gave: register again')
      if (!productId) return refuse(CODE.badKey, 'productId missing')
      const secret = issued && !issued.confirmed ? issued.secret : randomBytes(16).toString('hex')
      if (!issued || issued.secret !== secret) {
        this.ctx.setState(dev.name, 'issuedSecret', { secret, productId, confirmed: false, issuedAt: new Date().toISOString() })
        this.ctx.log.notice(`best device ${dev.name}: issued it a device secret (trust on first use); its devKey is derived from it from now on`, { device: dev.name })
      }
      return this.core.answerOnce(dev, ch, m, CODE.ok, 'success', { secret })
    }
    const key = this.checkKey(dev, c)
    if ('code' in key) return refuse(key.code, key.message)
    const authCode = sessionValue('authCode', key.devKey, dev.sn)
    if (m.funcId === 'dev.register') return this.core.answerOnce(dev, ch, m, CODE.ok, 'success', { authCode })
    if (!sameHex(c.authCode, authCode) && !sameHex(c.authCode, provisionCode)) return refuse(CODE.badAuth, 'authCode is not the one dev.register gave: register again')
    const derived = sessionValue('secret', key.devKey, dev.sn)
    if (m.funcId === 'dev.accredit') {
      // a device that got its secret from us keeps getting that one (it derives its devKey from it)
      const secret = issued && productId && sameHex(devKeyOf(issued.secret, productId), key.devKey) ? issued.secret : derived
      return this.core.answerOnce(dev, ch, m, CODE.ok, 'success', { secret })
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
      dev.mqtt = { session, at: Date.now(), gw: this.core.gwId, ready: false }
      // before the answer: every gateway knows the session before the device can send anything else
      this.core.relay.publishSession(dev)
    }
    this.ctx.touch(dev.entry, ch.address)
    this.core.answerOnce(dev, ch, m, CODE.ok, 'success')
    this.ctx.log.info('best device logged in', { device: dev.name, via: ch.kind, from: ch.address })
    // the document's start-up ends with dev.report: commands wait for it (or for the grace period)
    this.awaitReport(dev, ch.kind, this.o.reportGraceMs)
  }

  awaitReport(dev: Dev, kind: 'ws' | 'mqtt', ms: number): void {
    if (dev.readyTimer) clearTimeout(dev.readyTimer)
    dev.readyTimer = setTimeout(() => this.core.safe('session', () => this.sessionReady(dev, kind)), ms)
    dev.readyTimer.unref()
  }

  /** The device's current session takes commands from now on. */
  sessionReady(dev: Dev, kind: 'ws' | 'mqtt'): void {
    if (dev.readyTimer) clearTimeout(dev.readyTimer)
    dev.readyTimer = undefined
    if (kind === 'ws') {
      if (!dev.ws?.loggedIn) return
      dev.ws.ready = true
    } else {
      if (!dev.mqtt) return
      dev.mqtt.ready = true
    }
    this.core.delivery.schedulePump(dev)
  }

  /** A new login session: a step in flight on an older one was lost. */
  newSession(dev: Dev, session: string): void {
    const job = dev.job
    if (job?.inflight && job.inflight.session !== session) this.core.delivery.lost(dev, job, 'the device logged in again before answering')
  }

  report(dev: Dev, ch: Channel, m: BestMessage, conn?: WsConn): void {
    const info = reportInfo(m)
    this.ctx.setState(dev.name, 'report', { info, at: Date.now() })
    // the device's own report of a setting is newer than what it confirmed to us before
    const confirmed = this.ctx.state(dev.name, 'options')
    if (isObject(confirmed)) {
      const reported = reportedOptions(info)
      this.ctx.setState(dev.name, 'options', Object.fromEntries(Object.entries(confirmed).filter(([k]) => !(k in reported))))
    }
    this.ctx.touch(dev.entry, ch.address, infoData(info))
    const r = reportAnswer(m, info, { timezone: offsetText(this.core.offsetOf(dev.name)), heartbeatSeconds: this.o.heartbeatSeconds })
    ch.send(r)
    this.core.remember(dev, m.mid, r)
    if (ch.kind === 'ws' && conn && dev.ws === conn) this.sessionReady(dev, 'ws')
    if (ch.kind === 'mqtt' && dev.mqtt) {
      dev.mqtt.ready = true
      this.sessionReady(dev, 'mqtt')
      this.core.relay.publishSession(dev)
    }
    if (dev.job?.cmd.kind === 'info') this.core.delivery.finishInfo(dev, dev.job)
  }

}

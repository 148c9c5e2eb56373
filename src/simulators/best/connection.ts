import { createHash, randomBytes } from 'node:crypto'
import { Agent, fetch, type Response } from 'undici'
import {
  bestDevKey, bestSign, BEST_GET_BROKER_PATH, codeOf, errMsg, findNonStrings, formatTimeZone, HANDLED_COMMANDS, isObj, isOk, MAX_USERS, obj,
  parseTimeZone, results, str, type Json, type Pending,
} from './protocol.js'
import type { BestState } from './state.js'
import { openLink, type BestLink } from './transport.js'

/** dev.report (3.5) switches this device reports, and follows when cmd.option.set changes them. */
const REPORTED_OPTIONS = ['capturePic', 'cameraOn', 'enableBioTest', 'voiceOn', 'keyPadBeepOn', 'volume']

/**
 * The device's link to the server: getBrokerServer, connect (transport.ts), key exchange,
 * register/accredit/login/report, heartbeats, reconnects, and requests matched to their answers.
 * Commands from the server go to `onCommand`.
 */
export class BestConnection {
  link: BestLink | undefined
  /** Bumped whenever a link is dropped, so events of an old link are ignored. */
  session = 0
  _loggedIn = false
  stopped = true
  autoReconnect = false
  private connecting = false
  reconnectTimer: NodeJS.Timeout | undefined
  private heartbeatTimer: NodeJS.Timeout | undefined
  private heartbeatInFlight = false
  private missedHeartbeats = 0
  private pending = new Map<string, Pending>()
  /** mids of device messages whose answer nobody waits for (dev.cmd.response): their answers are expected, not "unknown". */
  private unawaited = new Set<string>()
  private midSeq = 0
  private serverHeartbeatMs: number | undefined
  private serverSupportsHeartbeat = true
  private learnedSecret: string | undefined

  constructor(private readonly state: BestState, private readonly onCommand: (funcId: string, msg: Json) => void) {}

  /** 4.2: mid ≤ 32 chars, unique per device: time (hex) + sequence (hex, 8) + random filler = 32. */
  private nextMid(): string {
    const head = Date.now().toString(16) + (++this.midSeq).toString(16).padStart(8, '0')
    return (head + randomBytes(16).toString('hex')).slice(0, 32)
  }

  async firstConnect(): Promise<void> {
    this.stopped = false
    this.autoReconnect = false
    try {
      await this.connectOnce()
    } catch (err) {
      this.stopped = true
      throw err
    }
    this.autoReconnect = true
  }

  private scheduleReconnect(): void {
    if (this.stopped || !this.autoReconnect || this.reconnectTimer || this.connecting) return
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined
      if (this.stopped) return
      this.connectOnce().catch((err) => {
        this.state.log(`reconnect failed: ${errMsg(err)}`)
        this.scheduleReconnect()
      })
    }, this.state.o.reconnectMs)
  }

  /** Drops the current link (if any): not logged in, heartbeats stop, waiting requests fail. */
  async linkDown(reason: string, abrupt: boolean): Promise<void> {
    const l = this.link
    this.link = undefined
    this.session++
    const wasLoggedIn = this._loggedIn
    this._loggedIn = false
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer)
    this.heartbeatTimer = undefined
    for (const [mid, p] of this.pending) {
      clearTimeout(p.timer)
      p.reject(new Error(`${p.funcId}: link lost (${reason})`))
      this.pending.delete(mid)
    }
    this.unawaited.clear()
    if (l) {
      if (wasLoggedIn || reason !== 'stopped') this.state.log(`link down: ${reason}`)
      await l.close(abrupt).catch(() => undefined)
    }
    this.scheduleReconnect()
  }

  private async connectOnce(): Promise<void> {
    this.connecting = true
    try {
      const broker = await this.getBrokerServer()
      if (this.stopped) throw new Error('stopped')
      const session = ++this.session
      const link = await openLink(this.state.o.transport, broker.url, this.state.sn, {
        onMessage: (text) => {
          if (session === this.session) this.onMessage(text)
        },
        onClose: (reason) => {
          if (session === this.session) void this.linkDown(reason, false)
        },
      }, { timeoutMs: this.state.o.requestTimeoutMs, tls: broker.tls })
      if (session !== this.session || this.stopped) {
        await link.close(true)
        throw new Error('stopped')
      }
      this.link = link
      this.state.log(`connected to ${broker.url}`)
      try {
        await this.login()
      } catch (err) {
        await this.linkDown(`login failed: ${errMsg(err)}`, false)
        throw err
      }
    } finally {
      this.connecting = false
    }
  }

  /** 3.1 getBrokerServer. */
  private async getBrokerServer(): Promise<{ url: string; tls: { ca?: string; cert?: string; key?: string } }> {
    const base = new URL(this.state.o.server)
    const type = this.state.o.transport === 'ws' ? 'best-w' : 'best-m'
    const nonce = randomBytes(16).toString('hex') // 3.1: ≤ 32 characters, never repeated
    const timestamp = String(this.state.now()) // 3.1: milliseconds
    const sign = bestSign(this.state.sn, nonce, timestamp, this.state.o.brokerKey)
    // AMBIGUITIES best #1: the document's `×tamp` is a damaged `&timestamp` (HTML entity `&times`): send `timestamp`.
    const q = new URLSearchParams({ sn: this.state.sn, type, nonce, timestamp, sign })
    const url = new URL(`${base.pathname.replace(/\/+$/, '')}${BEST_GET_BROKER_PATH}?${q.toString()}`, base)
    // a gateway with its own CA (--ca): trusted for this request only, and the connection not kept
    const agent = this.state.o.ca ? new Agent({ connect: { ca: this.state.o.ca } }) : undefined
    let res: Response
    let text: string
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(this.state.o.requestTimeoutMs), ...(agent ? { dispatcher: agent } : {}) })
      text = await res.text()
    } catch (err) {
      throw new Error(`getBrokerServer ${base.origin}: ${errMsg(err)}`)
    } finally {
      void agent?.close()
    }
    let body: Json
    try {
      body = obj(JSON.parse(text))
    } catch {
      throw new Error(`getBrokerServer: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`)
    }
    if (!isOk(body)) throw new Error(`getBrokerServer refused: code ${codeOf(body) || '?'} ${str(body.message) ?? ''} (HTTP ${res.status})`.trim())
    const r = results(body)
    const brokerUrl = str(r.url)
    if (!brokerUrl) throw new Error('getBrokerServer: answer has no payload.results.url')
    const scheme = brokerUrl.split(':')[0]?.toLowerCase() ?? ''
    const wanted = this.state.o.transport === 'ws' ? ['ws', 'wss'] : ['mqtt', 'mqtts', 'tcp', 'ssl', 'tls', 'ws', 'wss']
    if (!wanted.includes(scheme)) throw new Error(`getBrokerServer answered ${brokerUrl}, not a ${type} address`)
    const tls: { ca?: string; cert?: string; key?: string } = {}
    if (str(r.rootCA) || this.state.o.ca) tls.ca = str(r.rootCA) || this.state.o.ca
    if (str(r.certificate)) tls.cert = str(r.certificate)
    if (str(r.privateKey)) tls.key = str(r.privateKey)
    return { url: brokerUrl, tls }
  }

  /** 2.1, 2.2, 3.2 register, 3.3 accredit, 3.2 login, 3.5 report. */
  private async login(): Promise<void> {
    const protType = this.state.o.transport === 'ws' ? 'best-w' : 'best-m'
    // AMBIGUITIES best #2: the key-exchange algorithm is not given: send the two messages with random keys, accept the answers, carry plaintext.
    for (const [funcId, key] of [['device.exchange.publicKey', 'publicKey'], ['device.exchange.factor', 'factor']] as const) {
      const value = randomBytes(key === 'publicKey' ? 32 : 16).toString('hex')
      try {
        const reply = await this.request({ funcId, payload: { params: { [key]: value } } })
        if (!isOk(reply)) this.state.log(`${funcId} answered ${codeOf(reply)} ${str(reply.message) ?? ''}: carrying on in plaintext`)
      } catch (err) {
        if (!this.link) throw err
        this.state.log(`${funcId}: ${errMsg(err)}: carrying on in plaintext`)
      }
    }

    // devKey is derived from the production secret; a device without one uses the accredit secret once it has it.
    const plain = (): string | undefined => this.state.o.deviceSecret ?? this.learnedSecret
    const devKey = (): string => {
      const p = plain()
      return p === undefined ? '' : bestDevKey(p, this.state.o.productId)
    }

    // 3.2 register table: sn and productId are "not needed" over best-m; sending them anyway is harmless and lets a server check them.
    const reg = await this.request({ funcId: 'dev.register', sn: this.state.sn, payload: { params: { protType, protVer: '1.0.0', productId: this.state.o.productId, devKey: devKey(), devType: 'acc' } } })
    if (!isOk(reg)) throw new Error(`dev.register refused: code ${codeOf(reg)} ${str(reg.message) ?? ''}`.trim())
    const authCode = str(results(reg).authCode)
    if (!authCode) throw new Error('dev.register: answer carries no authCode')

    const acc = await this.request({ funcId: 'dev.accredit', sn: this.state.sn, payload: { params: { productId: this.state.o.productId, devKey: devKey(), authCode } } })
    if (!isOk(acc)) throw new Error(`dev.accredit refused: code ${codeOf(acc)} ${str(acc.message) ?? ''}`.trim())
    const secret = str(results(acc).secret) ?? this.state.o.deviceSecret ?? this.learnedSecret
    if (!secret) throw new Error('dev.accredit: answer carries no secret')
    if (this.state.o.deviceSecret === undefined) this.learnedSecret = secret

    const lg = await this.request({ funcId: 'dev.login', sn: this.state.sn, payload: { params: { productId: this.state.o.productId, devKey: devKey(), authCode, secret } } })
    if (!isOk(lg)) throw new Error(`dev.login refused: code ${codeOf(lg)} ${str(lg.message) ?? ''}`.trim())
    this._loggedIn = true
    this.state.events.logins++
    this.missedHeartbeats = 0
    this.state.log('logged in')

    try {
      const rep = await this.request({ funcId: 'dev.report', sn: this.state.sn, payload: { params: this.reportParams() } })
      if (!isOk(rep)) this.state.log(`dev.report answered ${codeOf(rep)} ${str(rep.message) ?? ''}`)
      else this.applyReportAnswer(results(rep))
    } catch (err) {
      if (!this.link) throw err
      this.state.log(`dev.report: ${errMsg(err)}`)
    }
    this.startHeartbeats()
  }

  private reportParams(): Json {
    let bioPhotos = 0
    for (const u of this.state.store.values()) if (Array.isArray(u.bioPhotos) && u.bioPhotos.length) bioPhotos++
    return {
      fwVer: 'ZAM170-NF-Ver1.1.21',
      devModel: 'DOORCTL-SIM',
      commType: 'ethernet',
      ip: '127.0.0.1',
      netmask: '255.0.0.0',
      gateway: '127.0.0.1',
      mac: this.mac(),
      lockCount: '1',
      userCount: String(this.state.store.size),
      maxUserCount: String(MAX_USERS),
      transactionCount: String(this.state.logSeq),
      maxTransactionCount: '50000',
      multiBioDataSupport: '0:0:0:0:0:0:0:0:0:0',
      multiBioPhotoSupport: '0:0:0:0:0:0:0:0:0:1',
      multiBioVer: '0:0:0:0:0:0:0:0:0:0',
      multiBioDataCount: '0:0:0:0:0:0:0:0:0:0',
      multiBioPhotoCount: `0:0:0:0:0:0:0:0:0:${bioPhotos}`,
      maxMultiBioDataCount: '0:0:0:0:0:0:0:0:0:0',
      maxMultiBioPhotoCount: `0:0:0:0:0:0:0:0:0:${MAX_USERS}`,
      maxPackageSize: String(this.state.o.maxPackageKb),
      qrCodeSupport: '0',
      capturePic: '2',
      cameraOn: '1',
      enableBioTest: '1',
      voiceOn: '1',
      keyPadBeepOn: '1',
      volume: '50',
      attPhotoFunOn: '1',
      maxPendingCmdCount: '20',
      scene: '1',
      verifyStyles: '100000000010', // AMBIGUITIES best #12: the verify-style appendix is missing; the document's example value
      funcIds: [
        'dev.register', 'dev.accredit', 'dev.login', 'dev.report', 'cmd.dev.response', 'dev.cmd.response',
        'dev.heartbeat', 'dev.file.upload.start', 'dev.file.upload.package', 'dev.file.upload.end',
        'dev.data.upload.user', 'dev.data.upload.verifyLog', 'dev.data.upload.verifyPhoto', 'dev.system.sync.time',
        ...HANDLED_COMMANDS,
      ],
      // 3.5's switches report what cmd.option.set last set (3.28 sets "设备参数")
      ...Object.fromEntries(REPORTED_OPTIONS.filter((k) => this.state.deviceOptions[k] !== undefined).map((k) => [k, this.state.deviceOptions[k]])),
    }
  }

  private mac(): string {
    const h = createHash('md5').update(this.state.sn).digest()
    return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':')
  }

  private applyReportAnswer(r: Json): void {
    const tz = str(r.timezone) ?? str(r.timeZone)
    if (tz) {
      const m = parseTimeZone(tz)
      if (m === undefined) this.state.bad(`dev.report answer: timezone ${tz} is not ±HH:mm`)
      else this.state.timeZone = formatTimeZone(m)
    }
    const support = str(r.supportHeartbeat)
    this.serverSupportsHeartbeat = support !== '0' // 3.5: default 1
    const interval = Number(str(r.heartbeatInterval) ?? 'NaN')
    if (Number.isFinite(interval) && interval > 0) this.serverHeartbeatMs = interval * 1000
  }

  private startHeartbeats(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer)
    this.heartbeatTimer = undefined
    if (!this.serverSupportsHeartbeat) return
    const every = this.state.o.heartbeatMs ?? this.serverHeartbeatMs ?? 60_000 // 3.5/3.6: default 60 s
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), every)
  }

  private async heartbeat(): Promise<void> {
    if (!this._loggedIn || this.heartbeatInFlight) return
    this.heartbeatInFlight = true
    const session = this.session
    try {
      this.state.events.heartbeats++
      // AMBIGUITIES best #13: no sn, the connection (or topic) identifies the device. 3.6: isFree 0 busy, 1 idle.
      const reply = await this.request({ funcId: 'dev.heartbeat', payload: { params: { isFree: this.state.busy > 0 ? '0' : '1' } } })
      if (!isOk(reply)) this.state.log(`dev.heartbeat answered ${codeOf(reply)} ${str(reply.message) ?? ''}`)
      this.missedHeartbeats = 0
    } catch (err) {
      if (session !== this.session) return
      this.missedHeartbeats++
      this.state.log(`dev.heartbeat: ${errMsg(err)}`)
      if (this.missedHeartbeats >= 3) void this.linkDown('3 heartbeats unanswered', true)
    } finally {
      this.heartbeatInFlight = false
    }
  }

  // -------------------------------------------------------------------------------------------
  // Messages.

  /** Sends a device request and waits for the server's cmd.dev.response. */
  request(msg: Json, timeoutMs = this.state.o.requestTimeoutMs): Promise<Json> {
    const link = this.link
    if (!link) return Promise.reject(new Error(`${String(msg.funcId)}: not connected`))
    const mid = this.nextMid()
    const full: Json = { funcId: msg.funcId, ...(msg.sn !== undefined ? { sn: msg.sn } : {}), mid: '', ...msg }
    full.mid = mid
    return new Promise<Json>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(mid)
        reject(new Error(`${String(msg.funcId)}: no answer within ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(mid, { funcId: String(msg.funcId), resolve, reject, timer })
      link.send(full).catch((err) => {
        clearTimeout(timer)
        this.pending.delete(mid)
        reject(new Error(`${String(msg.funcId)}: ${errMsg(err)}`))
      })
    })
  }

  /** Sends a device message whose answer nobody waits for. */
  async notify(msg: Json): Promise<void> {
    const link = this.link
    if (!link) throw new Error(`${String(msg.funcId)}: not connected`)
    const mid = this.nextMid()
    this.unawaited.add(mid)
    const full: Json = { funcId: msg.funcId, mid: '', ...msg }
    full.mid = mid
    await link.send(full)
  }

  private onMessage(text: string): void {
    let msg: Json
    try {
      const v: unknown = JSON.parse(text)
      if (!isObj(v)) throw new Error('not an object')
      msg = v
    } catch {
      this.state.bad(`not a JSON object: ${text.slice(0, 120)}`)
      return
    }
    // AMBIGUITIES best #10: values should all be strings; numbers are read as their text, and noted.
    const nonStrings = findNonStrings(msg)
    if (nonStrings.length) this.state.bad(`${str(msg.funcId) ?? 'reply'}: non-string values at ${nonStrings.slice(0, 5).join(', ')}`)

    const funcId = str(msg.funcId)
    // 2.1/2.2: the exchange answers carry no funcId, only code/message/mid.
    if (funcId === 'cmd.dev.response' || (funcId === undefined && 'code' in msg)) return this.onReply(msg)
    if (funcId && funcId.startsWith('cmd.')) return this.onCommand(funcId, msg)
    this.state.bad(`unexpected message ${funcId ?? '(no funcId)'}`)
  }

  private onReply(msg: Json): void {
    const mid = str(msg.mid)
    // AMBIGUITIES best #6: whether replies echo the request's mid is not stated: match by mid; a reply without one answers the oldest waiting request.
    if (mid && this.pending.has(mid)) return this.settle(mid, msg)
    if (mid && this.unawaited.delete(mid)) {
      if (!isOk(msg)) this.state.log(`server answered ${codeOf(msg)} ${str(msg.message) ?? ''} to a dev.cmd.response`)
      return
    }
    if (!mid) {
      const oldest = this.pending.keys().next()
      if (!oldest.done) return this.settle(oldest.value, msg)
    }
    this.state.bad(`answer to no waiting request (mid ${mid ?? '-'})`)
  }

  private settle(mid: string, msg: Json): void {
    const p = this.pending.get(mid)
    if (!p) return
    this.pending.delete(mid)
    clearTimeout(p.timer)
    p.resolve(msg)
  }
}

/**
 * A simulated `best` access-control terminal (ZKTeco-style `funcId`/`mid` JSON), written from
 * the vendor document (protocols/best.txt), the best rows of protocols/README.md and the best
 * part of protocols/AMBIGUITIES.md — and from nothing else. It shares no code with the best
 * driver/gateway: a simulator built on the server's codec would only confirm its misreadings.
 *
 * Life of a device (document sections 3.1–3.7):
 *   GET {server}/v3/device/getBrokerServer?sn&type&nonce&timestamp&sign → url
 *   connect (best-w: WebSocket; best-m: MQTT, topics best/{sn}/up|down from CLI.md)
 *   device.exchange.publicKey, device.exchange.factor (no cipher is given: plaintext after)
 *   dev.register → authCode; dev.accredit → secret; dev.login; dev.report; dev.heartbeat…
 * then it executes the server's `cmd.*` messages one at a time, each answered with
 * `dev.cmd.response` carrying the command's `cmdId`, and uploads access records
 * (dev.data.upload.verifyLog / verifyPhoto, large photos through dev.file.upload.*).
 *
 * Every decision where the document is silent or contradicts itself is a one-line comment
 * naming the AMBIGUITIES item ("AMBIGUITIES best #N" = item N of the best section of AMBIGUITIES.md).
 */
import { createHash, pbkdf2Sync, randomBytes } from 'node:crypto'
import { openLink, type BestLink, type BestTransport } from './transport.js'

// ---------------------------------------------------------------------------------------------
// Public API.

export interface BestSimulatorOptions {
  /** http://127.0.0.1:PORT (getBrokerServer lives there; a path prefix is kept). */
  server: string
  sn: string
  /** Asks getBrokerServer with the matching `type` (best-w / best-m). */
  transport: 'ws' | 'mqtt'
  /** Default '5d9b11e1a3f448ae81f9f920e976d852' (the document's example). */
  productId: string
  /** The secret written at production; devKey = PBKDF2(it, productId). If absent, obtained via dev.accredit. */
  deviceSecret?: string
  /** getBrokerServer secretKey. */
  brokerKey: string
  /** Business heartbeat period; default: the server's heartbeatInterval (s) from the dev.report answer, else 60 s. */
  heartbeatMs?: number
  /** Wait before reconnecting after the link is lost or the device rebooted; default 5000. */
  reconnectMs?: number
  /** Bio photos containing this ASCII marker fail (non-zero code in dev.cmd.response); default 'NOFACE'. */
  invalidPhotoMarker?: string
  /** Disconnect without answering when this funcId arrives (once). */
  dropOnCommand?: string
  /** How long to wait for the server's answer to one request; default 10000. */
  requestTimeoutMs?: number
  /** dev.report maxPackageSize, KB (document default 64): larger photos go through dev.file.upload.*. */
  maxPackageKb?: number
  /** verifyLog's meetCode (required on this meeting firmware, AMBIGUITIES best #12); default '1'. */
  meetCode?: string
  log?: (line: string) => void
}

export interface BestEvents {
  reboots: number
  /** One entry per applied answer to dev.system.sync.time, values as received. */
  timeSyncs: { time: string; timeZone?: string }[]
  /** The `option` object of each cmd.option.set, as received. */
  options: Record<string, unknown>[]
  /** cmd.* funcIds received (including a dropped one), by funcId. */
  commands: Record<string, number>
  /** dev.heartbeat messages sent. */
  heartbeats: number
  /** Successful dev.login exchanges. */
  logins: number
  /** Protocol problems seen in what the server sent (bad JSON, non-string values, unknown replies…). */
  badMessages: string[]
}

export interface BestSimulator {
  readonly sn: string
  readonly loggedIn: boolean
  /** Users stored on the device, by pin (user id), fields as received. */
  users(): Map<string, Record<string, unknown>>
  readonly events: BestEvents
  /** Upload an access record (dev.data.upload.verifyLog, + verifyPhoto if photo); resolves when the server answered. Returns the log sent. */
  verifyLog(opts?: { pin?: string; photo?: Buffer; time?: Date; meetCode?: string; verifyStyle?: string }): Promise<Record<string, unknown>>
  /** getBrokerServer → connect → exchange → register/accredit/login → report; resolves when logged in (rejects if the server refuses). */
  start(): Promise<void>
  stop(): Promise<void>
}

export function createBestSimulator(opts: BestSimulatorOptions): BestSimulator {
  return new BestDevice(opts)
}

// ---------------------------------------------------------------------------------------------
// Document constants and helpers (exported for tests and for anyone checking a server).

export const BEST_DEFAULT_PRODUCT_ID = '5d9b11e1a3f448ae81f9f920e976d852'
export const BEST_GET_BROKER_PATH = '/v3/device/getBrokerServer'

/**
 * AMBIGUITIES best #5: only `00000000` (success) is documented, there is no error table: the device's own
 * failures use these 8-digit codes (any non-zero code means failure to a server).
 */
export const BEST_CODES = {
  ok: '00000000',
  failed: '00000001',
  badParams: '00000002',
  notFound: '00000003',
  invalidPhoto: '00000004',
  downloadFailed: '00000005',
  unsupported: '00000006',
  full: '00000007',
} as const

/** 3.1: sign = md5(sn + nonce + timestamp + secretKey), 32 lowercase hex. */
export function bestSign(sn: string, nonce: string, timestamp: string, secretKey: string): string {
  return createHash('md5').update(`${sn}${nonce}${timestamp}${secretKey}`, 'utf8').digest('hex')
}

/** 3.2 devKey: PBKDF2WithHmacSHA256, 32 bytes, 1000 iterations, salt = productId's text bytes (AMBIGUITIES best #4). */
export function bestDevKey(secret: string, productId: string): string {
  return pbkdf2Sync(Buffer.from(secret, 'utf8'), Buffer.from(productId, 'utf8'), 1000, 32, 'sha256').toString('hex')
}

/** 3.14 user password: the same PBKDF2, but the salt is passwordSalt **hex-decoded** (AMBIGUITIES best #4). */
export function bestPasswordDigest(plain: string, passwordSaltHex: string): string {
  return pbkdf2Sync(Buffer.from(plain, 'utf8'), Buffer.from(passwordSaltHex, 'hex'), 1000, 32, 'sha256').toString('hex')
}

/** dev.report (3.5) switches this device reports, and follows when cmd.option.set changes them. */
const REPORTED_OPTIONS = ['capturePic', 'cameraOn', 'enableBioTest', 'voiceOn', 'keyPadBeepOn', 'volume']

/** A small valid-looking JPEG (SOI, APP0 JFIF, filler, EOI) of `size` bytes, optionally containing an ASCII marker. */
export function makeJpeg(size = 2048, marker?: string): Buffer {
  const n = Math.max(size, 32 + (marker?.length ?? 0))
  const b = Buffer.alloc(n, 0x20)
  Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01]).copy(b, 0)
  for (let i = 12; i < n - 2; i++) b[i] = (i * 31) & 0x7f
  if (marker) b.write(marker, 20, 'ascii')
  b[n - 2] = 0xff
  b[n - 1] = 0xd9
  return b
}

export function isJpeg(b: Buffer): boolean {
  return b.length >= 4 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff
}

/** `±HH:mm` (also `Z`, `UTC+8`, `+0800`, `8`) → minutes east of UTC. */
export function parseTimeZone(s: string): number | undefined {
  const t = s.trim()
  if (/^z$/i.test(t)) return 0
  const m = /^(?:UTC|GMT)?\s*([+-])?(\d{1,2})(?::?(\d{2}))?$/i.exec(t)
  if (!m) return undefined
  const h = Number(m[2])
  const mm = Number(m[3] ?? '0')
  if (h > 14 || mm > 59) return undefined
  return (m[1] === '-' ? -1 : 1) * (h * 60 + mm)
}

export function formatTimeZone(minutes: number): string {
  const a = Math.abs(minutes)
  return `${minutes < 0 ? '-' : '+'}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`
}

/** ISO 8601 `yyyy-MM-ddTHH:mm:ss±HH:mm` in the given zone (the document's time format). */
export function formatBestTime(ms: number, timeZone: string): string {
  const off = parseTimeZone(timeZone) ?? 480
  const d = new Date(ms + off * 60_000)
  const p = (n: number): string => String(n).padStart(2, '0')
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}T${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}${formatTimeZone(off)}`
}

/** 3.14: validity is `yyyy-MM-ddTHH:mm:ss±HH:mm`; `Z` and fractional seconds are accepted too. */
const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$/

// ---------------------------------------------------------------------------------------------
// Implementation.

type Json = Record<string, unknown>

interface Pending {
  funcId: string
  resolve(reply: Json): void
  reject(err: Error): void
  timer: NodeJS.Timeout
}

interface CmdResult {
  code: string
  message: string
  /** Runs after dev.cmd.response was sent (reboot). */
  after?: () => void
}

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
const obj = (v: unknown): Json => (isObj(v) ? v : {})
/** AMBIGUITIES best #10: "all values are strings" against fields typed as integers: read numbers as their text. */
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined)
const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e))
const results = (reply: Json): Json => obj(obj(reply.payload).results)
/** AMBIGUITIES best #10: a server writing the code as a number 0 is read as success too. */
const codeOf = (reply: Json): string => str(reply.code) ?? ''
const isOk = (reply: Json): boolean => codeOf(reply) === BEST_CODES.ok || (typeof reply.code === 'number' && reply.code === 0)

/** Fields of a user as 3.8 (dev.data.upload.user) lists them; `role` (3.14) and `ruleType` kept as extensions. */
const USER_FIELDS = ['pin', 'role', 'password', 'passwordSalt', 'group', 'idNum', 'startTime', 'endTime', 'firstName', 'lastName', 'funSwitch', 'disable', 'threatLevelGroupNum', 'ruleType'] as const
const BIO_FIELDS = ['no', 'index', 'valid', 'duress', 'type', 'majorVer', 'minorVer', 'fmt', 'tmp'] as const

const MAX_USERS = 30000
const MAX_PHOTO_BYTES = 2 * 1024 * 1024
const USERS_PER_UPLOAD = 100

class BestDevice implements BestSimulator {
  readonly sn: string
  readonly events: BestEvents = { reboots: 0, timeSyncs: [], options: [], commands: {}, heartbeats: 0, logins: 0, badMessages: [] }

  private readonly o: Required<Pick<BestSimulatorOptions, 'server' | 'transport' | 'productId' | 'brokerKey' | 'reconnectMs' | 'invalidPhotoMarker' | 'requestTimeoutMs' | 'maxPackageKb' | 'meetCode'>> & BestSimulatorOptions
  private readonly store = new Map<string, Json>()
  private readonly cards = new Map<string, Json[]>()
  private readonly meetings = new Map<string, Json>()
  private readonly meetingMembers = new Map<string, Set<string>>()
  private readonly deviceOptions: Record<string, string> = {}

  private link: BestLink | undefined
  /** Bumped whenever a link is dropped, so events of an old link are ignored. */
  private session = 0
  private _loggedIn = false
  private stopped = true
  private autoReconnect = false
  private connecting = false
  private reconnectTimer: NodeJS.Timeout | undefined
  private heartbeatTimer: NodeJS.Timeout | undefined
  private heartbeatInFlight = false
  private missedHeartbeats = 0
  private pending = new Map<string, Pending>()
  /** mids of device messages whose answer nobody waits for (dev.cmd.response): their answers are expected, not "unknown". */
  private unawaited = new Set<string>()
  private midSeq = 0
  private logSeq = 0
  private clockOffsetMs = 0
  /** 3.5: the server's `timezone` default is +08:00. */
  private timeZone = '+08:00'
  private serverHeartbeatMs: number | undefined
  private serverSupportsHeartbeat = true
  private learnedSecret: string | undefined
  private cmdChain: Promise<void> = Promise.resolve()
  private busy = 0
  private dropped = false

  constructor(opts: BestSimulatorOptions) {
    this.sn = opts.sn
    this.o = {
      ...opts,
      productId: opts.productId || BEST_DEFAULT_PRODUCT_ID,
      reconnectMs: opts.reconnectMs ?? 5000,
      invalidPhotoMarker: opts.invalidPhotoMarker ?? 'NOFACE',
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      maxPackageKb: opts.maxPackageKb ?? 64,
      meetCode: opts.meetCode ?? '1',
    }
  }

  get loggedIn(): boolean {
    return this._loggedIn
  }

  users(): Map<string, Record<string, unknown>> {
    return this.store
  }

  private log(line: string): void {
    this.o.log?.(`best ${this.sn}: ${line}`)
  }

  private bad(what: string): void {
    this.events.badMessages.push(what)
    this.log(`bad message: ${what}`)
  }

  /** The device's clock (moved by dev.system.sync.time). */
  private now(): number {
    return Date.now() + this.clockOffsetMs
  }

  /** 4.2: mid ≤ 32 chars, unique per device: time (hex) + sequence (hex, 8) + random filler = 32. */
  private nextMid(): string {
    const head = Date.now().toString(16) + (++this.midSeq).toString(16).padStart(8, '0')
    return (head + randomBytes(16).toString('hex')).slice(0, 32)
  }

  // -------------------------------------------------------------------------------------------
  // Lifecycle.

  private starting: Promise<void> | undefined

  start(): Promise<void> {
    if (this.starting) return this.starting // a second call waits for the same attempt
    if (!this.stopped && this._loggedIn) return Promise.resolve()
    this.starting = this.firstConnect().finally(() => {
      this.starting = undefined
    })
    return this.starting
  }

  private async firstConnect(): Promise<void> {
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

  async stop(): Promise<void> {
    this.stopped = true
    this.autoReconnect = false
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    this.reconnectTimer = undefined
    await this.linkDown('stopped', false)
    await this.cmdChain.catch(() => undefined)
  }

  private scheduleReconnect(): void {
    if (this.stopped || !this.autoReconnect || this.reconnectTimer || this.connecting) return
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined
      if (this.stopped) return
      this.connectOnce().catch((err) => {
        this.log(`reconnect failed: ${errMsg(err)}`)
        this.scheduleReconnect()
      })
    }, this.o.reconnectMs)
  }

  /** Drops the current link (if any): not logged in, heartbeats stop, waiting requests fail. */
  private async linkDown(reason: string, abrupt: boolean): Promise<void> {
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
      if (wasLoggedIn || reason !== 'stopped') this.log(`link down: ${reason}`)
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
      const link = await openLink(this.o.transport, broker.url, this.sn, {
        onMessage: (text) => {
          if (session === this.session) this.onMessage(text)
        },
        onClose: (reason) => {
          if (session === this.session) void this.linkDown(reason, false)
        },
      }, { timeoutMs: this.o.requestTimeoutMs, tls: broker.tls })
      if (session !== this.session || this.stopped) {
        await link.close(true)
        throw new Error('stopped')
      }
      this.link = link
      this.log(`connected to ${broker.url}`)
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
    const base = new URL(this.o.server)
    const type = this.o.transport === 'ws' ? 'best-w' : 'best-m'
    const nonce = randomBytes(16).toString('hex') // 3.1: ≤ 32 characters, never repeated
    const timestamp = String(this.now()) // 3.1: milliseconds
    const sign = bestSign(this.sn, nonce, timestamp, this.o.brokerKey)
    // AMBIGUITIES best #1: the document's `×tamp` is a damaged `&timestamp` (HTML entity `&times`): send `timestamp`.
    const q = new URLSearchParams({ sn: this.sn, type, nonce, timestamp, sign })
    const url = new URL(`${base.pathname.replace(/\/+$/, '')}${BEST_GET_BROKER_PATH}?${q.toString()}`, base)
    let res: Response
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(this.o.requestTimeoutMs) })
    } catch (err) {
      throw new Error(`getBrokerServer ${base.origin}: ${errMsg(err)}`)
    }
    const text = await res.text()
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
    const wanted = this.o.transport === 'ws' ? ['ws', 'wss'] : ['mqtt', 'mqtts', 'tcp', 'ssl', 'tls', 'ws', 'wss']
    if (!wanted.includes(scheme)) throw new Error(`getBrokerServer answered ${brokerUrl}, not a ${type} address`)
    const tls: { ca?: string; cert?: string; key?: string } = {}
    if (str(r.rootCA)) tls.ca = str(r.rootCA)
    if (str(r.certificate)) tls.cert = str(r.certificate)
    if (str(r.privateKey)) tls.key = str(r.privateKey)
    return { url: brokerUrl, tls }
  }

  /** 2.1, 2.2, 3.2 register, 3.3 accredit, 3.2 login, 3.5 report. */
  private async login(): Promise<void> {
    const protType = this.o.transport === 'ws' ? 'best-w' : 'best-m'
    // AMBIGUITIES best #2: the key-exchange algorithm is not given: send the two messages with random keys, accept the answers, carry plaintext.
    for (const [funcId, key] of [['device.exchange.publicKey', 'publicKey'], ['device.exchange.factor', 'factor']] as const) {
      const value = randomBytes(key === 'publicKey' ? 32 : 16).toString('hex')
      try {
        const reply = await this.request({ funcId, payload: { params: { [key]: value } } })
        if (!isOk(reply)) this.log(`${funcId} answered ${codeOf(reply)} ${str(reply.message) ?? ''}: carrying on in plaintext`)
      } catch (err) {
        if (!this.link) throw err
        this.log(`${funcId}: ${errMsg(err)}: carrying on in plaintext`)
      }
    }

    // devKey is derived from the production secret; a device without one uses the accredit secret once it has it.
    const plain = (): string | undefined => this.o.deviceSecret ?? this.learnedSecret
    const devKey = (): string => {
      const p = plain()
      return p === undefined ? '' : bestDevKey(p, this.o.productId)
    }

    // 3.2 register table: sn and productId are "not needed" over best-m; sending them anyway is harmless and lets a server check them.
    const reg = await this.request({ funcId: 'dev.register', sn: this.sn, payload: { params: { protType, protVer: '1.0.0', productId: this.o.productId, devKey: devKey(), devType: 'acc' } } })
    if (!isOk(reg)) throw new Error(`dev.register refused: code ${codeOf(reg)} ${str(reg.message) ?? ''}`.trim())
    const authCode = str(results(reg).authCode)
    if (!authCode) throw new Error('dev.register: answer carries no authCode')

    const acc = await this.request({ funcId: 'dev.accredit', sn: this.sn, payload: { params: { productId: this.o.productId, devKey: devKey(), authCode } } })
    if (!isOk(acc)) throw new Error(`dev.accredit refused: code ${codeOf(acc)} ${str(acc.message) ?? ''}`.trim())
    const secret = str(results(acc).secret) ?? this.o.deviceSecret ?? this.learnedSecret
    if (!secret) throw new Error('dev.accredit: answer carries no secret')
    if (this.o.deviceSecret === undefined) this.learnedSecret = secret

    const lg = await this.request({ funcId: 'dev.login', sn: this.sn, payload: { params: { productId: this.o.productId, devKey: devKey(), authCode, secret } } })
    if (!isOk(lg)) throw new Error(`dev.login refused: code ${codeOf(lg)} ${str(lg.message) ?? ''}`.trim())
    this._loggedIn = true
    this.events.logins++
    this.missedHeartbeats = 0
    this.log('logged in')

    try {
      const rep = await this.request({ funcId: 'dev.report', sn: this.sn, payload: { params: this.reportParams() } })
      if (!isOk(rep)) this.log(`dev.report answered ${codeOf(rep)} ${str(rep.message) ?? ''}`)
      else this.applyReportAnswer(results(rep))
    } catch (err) {
      if (!this.link) throw err
      this.log(`dev.report: ${errMsg(err)}`)
    }
    this.startHeartbeats()
  }

  private reportParams(): Json {
    let bioPhotos = 0
    for (const u of this.store.values()) if (Array.isArray(u.bioPhotos) && u.bioPhotos.length) bioPhotos++
    return {
      fwVer: 'ZAM170-NF-Ver1.1.21',
      devModel: 'DOORCTL-SIM',
      commType: 'ethernet',
      ip: '127.0.0.1',
      netmask: '255.0.0.0',
      gateway: '127.0.0.1',
      mac: this.mac(),
      lockCount: '1',
      userCount: String(this.store.size),
      maxUserCount: String(MAX_USERS),
      transactionCount: String(this.logSeq),
      maxTransactionCount: '50000',
      multiBioDataSupport: '0:0:0:0:0:0:0:0:0:0',
      multiBioPhotoSupport: '0:0:0:0:0:0:0:0:0:1',
      multiBioVer: '0:0:0:0:0:0:0:0:0:0',
      multiBioDataCount: '0:0:0:0:0:0:0:0:0:0',
      multiBioPhotoCount: `0:0:0:0:0:0:0:0:0:${bioPhotos}`,
      maxMultiBioDataCount: '0:0:0:0:0:0:0:0:0:0',
      maxMultiBioPhotoCount: `0:0:0:0:0:0:0:0:0:${MAX_USERS}`,
      maxPackageSize: String(this.o.maxPackageKb),
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
      ...Object.fromEntries(REPORTED_OPTIONS.filter((k) => this.deviceOptions[k] !== undefined).map((k) => [k, this.deviceOptions[k]])),
    }
  }

  private mac(): string {
    const h = createHash('md5').update(this.sn).digest()
    return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':')
  }

  private applyReportAnswer(r: Json): void {
    const tz = str(r.timezone) ?? str(r.timeZone)
    if (tz) {
      const m = parseTimeZone(tz)
      if (m === undefined) this.bad(`dev.report answer: timezone ${tz} is not ±HH:mm`)
      else this.timeZone = formatTimeZone(m)
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
    const every = this.o.heartbeatMs ?? this.serverHeartbeatMs ?? 60_000 // 3.5/3.6: default 60 s
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), every)
  }

  private async heartbeat(): Promise<void> {
    if (!this._loggedIn || this.heartbeatInFlight) return
    this.heartbeatInFlight = true
    const session = this.session
    try {
      this.events.heartbeats++
      // AMBIGUITIES best #13: no sn, the connection (or topic) identifies the device. 3.6: isFree 0 busy, 1 idle.
      const reply = await this.request({ funcId: 'dev.heartbeat', payload: { params: { isFree: this.busy > 0 ? '0' : '1' } } })
      if (!isOk(reply)) this.log(`dev.heartbeat answered ${codeOf(reply)} ${str(reply.message) ?? ''}`)
      this.missedHeartbeats = 0
    } catch (err) {
      if (session !== this.session) return
      this.missedHeartbeats++
      this.log(`dev.heartbeat: ${errMsg(err)}`)
      if (this.missedHeartbeats >= 3) void this.linkDown('3 heartbeats unanswered', true)
    } finally {
      this.heartbeatInFlight = false
    }
  }

  // -------------------------------------------------------------------------------------------
  // Messages.

  /** Sends a device request and waits for the server's cmd.dev.response. */
  private request(msg: Json, timeoutMs = this.o.requestTimeoutMs): Promise<Json> {
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
  private async notify(msg: Json): Promise<void> {
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
      this.bad(`not a JSON object: ${text.slice(0, 120)}`)
      return
    }
    // AMBIGUITIES best #10: values should all be strings; numbers are read as their text, and noted.
    const nonStrings = findNonStrings(msg)
    if (nonStrings.length) this.bad(`${str(msg.funcId) ?? 'reply'}: non-string values at ${nonStrings.slice(0, 5).join(', ')}`)

    const funcId = str(msg.funcId)
    // 2.1/2.2: the exchange answers carry no funcId, only code/message/mid.
    if (funcId === 'cmd.dev.response' || (funcId === undefined && 'code' in msg)) return this.onReply(msg)
    if (funcId && funcId.startsWith('cmd.')) return this.onCommand(funcId, msg)
    this.bad(`unexpected message ${funcId ?? '(no funcId)'}`)
  }

  private onReply(msg: Json): void {
    const mid = str(msg.mid)
    // AMBIGUITIES best #6: whether replies echo the request's mid is not stated: match by mid; a reply without one answers the oldest waiting request.
    if (mid && this.pending.has(mid)) return this.settle(mid, msg)
    if (mid && this.unawaited.delete(mid)) {
      if (!isOk(msg)) this.log(`server answered ${codeOf(msg)} ${str(msg.message) ?? ''} to a dev.cmd.response`)
      return
    }
    if (!mid) {
      const oldest = this.pending.keys().next()
      if (!oldest.done) return this.settle(oldest.value, msg)
    }
    this.bad(`answer to no waiting request (mid ${mid ?? '-'})`)
  }

  private settle(mid: string, msg: Json): void {
    const p = this.pending.get(mid)
    if (!p) return
    this.pending.delete(mid)
    clearTimeout(p.timer)
    p.resolve(msg)
  }

  private onCommand(funcId: string, msg: Json): void {
    this.events.commands[funcId] = (this.events.commands[funcId] ?? 0) + 1
    if (this.o.dropOnCommand === funcId && !this.dropped) {
      this.dropped = true
      this.log(`${funcId} arrived: dropping the link without answering (dropOnCommand)`)
      void this.linkDown(`dropped on ${funcId}`, true)
      return
    }
    const session = this.session
    // Commands run one at a time, in arrival order (3.6 isFree: the device is busy while it handles one).
    this.cmdChain = this.cmdChain.then(() => this.runCommand(funcId, msg, session)).catch((err) => this.log(`${funcId}: ${errMsg(err)}`))
  }

  private async runCommand(funcId: string, msg: Json, session: number): Promise<void> {
    if (session !== this.session) return // the link it came on is gone; the server will send it again
    const params = obj(obj(msg.payload).params)
    const cmdId = str(params.cmdId)
    let result: CmdResult
    this.busy++
    try {
      if (cmdId === undefined) {
        this.bad(`${funcId}: no payload.params.cmdId`)
        result = { code: BEST_CODES.badParams, message: 'payload.params.cmdId is required' }
      } else {
        result = await this.execute(funcId, params, cmdId)
      }
    } catch (err) {
      result = { code: BEST_CODES.failed, message: errMsg(err) }
    } finally {
      this.busy--
    }
    if (session !== this.session || !this.link) {
      this.log(`${funcId} ${cmdId ?? ''}: link lost before the answer`)
      return
    }
    this.log(`${funcId} ${cmdId ?? ''}: ${result.code} ${result.message}`)
    // 3.14 ff.: every command is answered with dev.cmd.response carrying its cmdId; a fresh device mid (4.2.2: a device request).
    await this.notify({ funcId: 'dev.cmd.response', code: result.code, message: result.message, payload: { params: { cmdId: cmdId ?? '' } } })
    result.after?.()
  }

  private async execute(funcId: string, p: Json, cmdId: string): Promise<CmdResult> {
    switch (funcId) {
      case 'cmd.control.reboot':
        // AMBIGUITIES best #7: the reboot reply is undocumented: answered like every command (dev.cmd.response), then the device reboots.
        return { code: BEST_CODES.ok, message: 'rebooting', after: () => this.reboot() }
      case 'cmd.system.sync.time':
        return this.syncTime()
      case 'cmd.data.update.user':
        return this.updateUsers(p)
      case 'cmd.data.update.bioPhoto':
        return this.updateBioPhotos(p)
      case 'cmd.data.delete.user':
        return this.deleteUsers(p)
      case 'cmd.data.clear.user':
        this.store.clear()
        this.cards.clear()
        return ok('all users cleared')
      case 'cmd.data.query.user':
        return this.queryUsers(p, cmdId)
      case 'cmd.option.set':
        return this.setOptions(p)
      case 'cmd.data.delete.userPhoto':
      case 'cmd.data.delete.bioPhoto':
        return this.deletePhotos(funcId, p)
      case 'cmd.data.update.multiCard':
        return this.updateCards(p)
      case 'cmd.data.delete.multiCard': {
        const pins = strings(p.pins)
        if (!pins) return bad('pins must be an array of pins')
        for (const pin of pins) this.cards.delete(pin)
        return ok(`cards of ${pins.length} user(s) deleted`)
      }
      case 'cmd.data.clear.multiCard':
        this.cards.clear()
        return ok('all cards cleared')
      case 'cmd.data.clear.all':
        this.store.clear()
        this.cards.clear()
        this.meetings.clear()
        this.meetingMembers.clear()
        return ok('all data cleared')
      case 'cmd.data.update.meeting': {
        const list = Array.isArray(p.meeting) ? p.meeting : Array.isArray(p.meetings) ? p.meetings : undefined // 3.15: `meeting` against rule 4 (plural): both read
        if (!list) return bad('meeting must be an array')
        for (const m of list) if (isObj(m) && str(m.id)) this.meetings.set(str(m.id)!, m)
        return ok(`${list.length} meeting(s) stored`)
      }
      case 'cmd.data.update.meetingMember': {
        const list = Array.isArray(p.members) ? p.members : undefined
        if (!list) return bad('members must be an array')
        for (const m of list) {
          const id = isObj(m) ? str(m.meetingId) : undefined
          if (!id || !isObj(m)) continue
          const set = this.meetingMembers.get(id) ?? new Set<string>()
          for (const pin of strings(m.pins) ?? []) set.add(pin)
          this.meetingMembers.set(id, set)
        }
        return ok('members stored')
      }
      case 'cmd.data.delete.meeting': {
        const ids = strings(p.meetings)
        if (!ids) return bad('meetings must be an array of ids')
        for (const id of ids) {
          this.meetings.delete(id)
          this.meetingMembers.delete(id)
        }
        return ok(`${ids.length} meeting(s) deleted`)
      }
      case 'cmd.data.delete.meetingMember': {
        const id = str(p.meetingId)
        const pins = strings(p.pins)
        if (!id || !pins) return bad('meetingId and pins are required')
        for (const pin of pins) this.meetingMembers.get(id)?.delete(pin)
        return ok('members deleted')
      }
      default:
        return { code: BEST_CODES.unsupported, message: `unsupported funcId ${funcId}` }
    }
  }

  private reboot(): void {
    this.events.reboots++
    this.log('rebooting')
    // A reboot drops the link; the device comes back after reconnectMs and logs in again.
    this.autoReconnect = !this.stopped
    void this.linkDown('reboot', false)
  }

  /** 3.30: on cmd.system.sync.time the device asks the server's time with dev.system.sync.time and applies it. */
  private async syncTime(): Promise<CmdResult> {
    // AMBIGUITIES best #13: no sn; the document's example has no payload, so none is sent.
    const reply = await this.request({ funcId: 'dev.system.sync.time' })
    if (!isOk(reply)) return { code: BEST_CODES.failed, message: `dev.system.sync.time answered ${codeOf(reply)} ${str(reply.message) ?? ''}`.trim() }
    // AMBIGUITIES best #7: the answer's format is undocumented: time in payload.results (or the top level) as time/serverTime/dateTime/timestamp, zone as timeZone/timezone.
    const r = { ...reply, ...results(reply) }
    const rawTime = firstStr(r, ['time', 'serverTime', 'dateTime', 'datetime', 'sysTime', 'timestamp'])
    const rawTz = firstStr(r, ['timeZone', 'timezone', 'tz'])
    let tzMin: number | undefined
    if (rawTz !== undefined) {
      tzMin = parseTimeZone(rawTz)
      if (tzMin === undefined) {
        this.bad(`dev.system.sync.time answer: time zone ${rawTz} is not ±HH:mm`)
        return bad(`time zone ${rawTz} is not ±HH:mm`)
      }
    }
    if (rawTime === undefined) {
      if (tzMin === undefined) {
        this.bad('dev.system.sync.time answer carries no time')
        return bad('answer carries no time')
      }
    }
    let ms: number | undefined
    if (rawTime !== undefined) {
      ms = parseServerTime(rawTime, tzMin ?? parseTimeZone(this.timeZone) ?? 480)
      if (ms === undefined) {
        this.bad(`dev.system.sync.time answer: unreadable time ${rawTime}`)
        return bad(`unreadable time ${rawTime}`)
      }
    }
    if (ms !== undefined) this.clockOffsetMs = ms - Date.now()
    if (tzMin !== undefined) this.timeZone = formatTimeZone(tzMin)
    else if (rawTime !== undefined) {
      // An ISO time with an offset and no separate zone: the offset is the zone (3.14's format says the offset is the zone's).
      const m = /([+-]\d{2}:\d{2})$/.exec(rawTime)
      if (m) this.timeZone = m[1]!
    }
    const entry: { time: string; timeZone?: string } = { time: rawTime ?? '' }
    if (rawTz !== undefined) entry.timeZone = rawTz
    this.events.timeSyncs.push(entry)
    return ok(`clock set to ${formatBestTime(this.now(), this.timeZone)}`)
  }

  /** 3.14 cmd.data.update.user: store what arrives (password/passwordSalt untouched), merging with an existing user. */
  private updateUsers(p: Json): CmdResult {
    if (!Array.isArray(p.users)) return bad('users must be an array')
    const failures: string[] = []
    let stored = 0
    for (const [i, raw] of p.users.entries()) {
      if (!isObj(raw)) {
        failures.push(`users[${i}]: not an object`)
        continue
      }
      const pin = str(raw.pin)
      if (!pin) {
        failures.push(`users[${i}]: pin is required`)
        continue
      }
      const problem = checkUser(raw)
      if (problem) {
        failures.push(`${pin}: ${problem}`)
        continue
      }
      if (!this.store.has(pin) && this.store.size >= MAX_USERS) {
        failures.push(`${pin}: device full (${MAX_USERS} users)`)
        continue
      }
      // AMBIGUITIES best #9: role values are never defined: kept as received.
      const prev = this.store.get(pin) ?? {}
      this.store.set(pin, { ...prev, ...raw, pin })
      stored++
    }
    if (failures.length) return { code: BEST_CODES.badParams, message: `${stored} stored, ${failures.length} refused: ${failures.join('; ')}` }
    return ok(`${stored} user(s) stored`)
  }

  /** 3.18 cmd.data.update.bioPhoto: download each photo from its url. */
  private async updateBioPhotos(p: Json): Promise<CmdResult> {
    if (!Array.isArray(p.bioPhotos)) return bad('bioPhotos must be an array')
    const failures: string[] = []
    let code: string = BEST_CODES.ok
    const fail = (c: string, what: string): void => {
      failures.push(what)
      if (code === BEST_CODES.ok) code = c
    }
    let stored = 0
    for (const [i, raw] of p.bioPhotos.entries()) {
      const e = obj(raw)
      const pin = str(e.pin)
      const url = str(e.url)
      if (!pin || !url) {
        fail(BEST_CODES.badParams, `bioPhotos[${i}]: pin and url are required`)
        continue
      }
      const user = this.store.get(pin)
      if (!user) {
        fail(BEST_CODES.notFound, `${pin}: no such user`)
        continue
      }
      let bytes: Buffer
      try {
        bytes = await this.download(url)
      } catch (err) {
        fail(BEST_CODES.downloadFailed, `${pin}: download failed: ${errMsg(err)}`)
        continue
      }
      if (!isJpeg(bytes)) {
        fail(BEST_CODES.invalidPhoto, `${pin}: not a JPEG`)
        continue
      }
      if (this.o.invalidPhotoMarker && bytes.includes(Buffer.from(this.o.invalidPhotoMarker, 'ascii'))) {
        fail(BEST_CODES.invalidPhoto, `${pin}: no face detected in the photo`)
        continue
      }
      const type = str(e.type) ?? '9'
      const no = str(e.no) ?? '0' // 3.18: no/index default 0
      const index = str(e.index) ?? '0'
      const meta = { type, no, index, url, size: String(bytes.length), md5: createHash('md5').update(bytes).digest('hex') }
      const others = (Array.isArray(user.bioPhotos) ? (user.bioPhotos as Json[]) : []).filter((b) => !(b.type === type && b.no === no && b.index === index))
      user.bioPhotos = [...others, meta]
      stored++
    }
    if (failures.length) return { code, message: `${stored} stored, ${failures.length} refused: ${failures.join('; ')}` }
    return ok(`${stored} photo(s) stored`)
  }

  private async download(url: string): Promise<Buffer> {
    const target = new URL(url, this.o.server) // a relative url is taken relative to the server the device talks to
    const res = await fetch(target, { signal: AbortSignal.timeout(this.o.requestTimeoutMs) })
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    const len = Number(res.headers.get('content-length') ?? '0')
    if (len > MAX_PHOTO_BYTES) throw new Error(`photo larger than ${MAX_PHOTO_BYTES} bytes`)
    const buf = Buffer.from(await res.arrayBuffer())
    if (buf.length > MAX_PHOTO_BYTES) throw new Error(`photo larger than ${MAX_PHOTO_BYTES} bytes`)
    return buf
  }

  private deleteUsers(p: Json): CmdResult {
    const pins = strings(p.pins)
    if (!pins) return bad('pins must be an array of pins')
    const missing: string[] = []
    for (const pin of pins) {
      if (!this.store.delete(pin)) missing.push(pin)
      this.cards.delete(pin)
    }
    // Deleting a user the device does not have leaves the device as asked: success, with a note.
    return ok(`${pins.length - missing.length} user(s) deleted${missing.length ? `, not present: ${missing.join(',')}` : ''}`)
  }

  private deletePhotos(funcId: string, p: Json): CmdResult {
    if (funcId === 'cmd.data.delete.userPhoto') {
      const pins = strings(p.pins)
      if (!pins) return bad('pins must be an array of pins')
      for (const pin of pins) delete this.store.get(pin)?.userPhoto
      return ok('user photos deleted')
    }
    const list = Array.isArray(p.bioPhotos) ? p.bioPhotos : undefined
    if (!list) return bad('bioPhotos must be an array')
    for (const raw of list) {
      const e = obj(raw)
      const pin = str(e.pin) // 3.20: no pin = every user, no type = every type
      const type = str(e.type)
      const no = str(e.no)
      for (const [id, u] of this.store) {
        if (pin && id !== pin) continue
        if (!Array.isArray(u.bioPhotos)) continue
        u.bioPhotos = (u.bioPhotos as Json[]).filter((b) => !((!type || b.type === type) && (!no || b.no === no)))
      }
    }
    return ok('bio photos deleted')
  }

  private updateCards(p: Json): CmdResult {
    if (!Array.isArray(p.multiCards)) return bad('multiCards must be an array')
    for (const raw of p.multiCards) {
      const c = obj(raw)
      const pin = str(c.pin)
      if (!pin || !str(c.card)) return bad('pin and card are required')
      const list = (this.cards.get(pin) ?? []).filter((x) => x.card !== c.card)
      this.cards.set(pin, [...list, c])
    }
    return ok(`${p.multiCards.length} card(s) stored`)
  }

  private setOptions(p: Json): CmdResult {
    if (!isObj(p.option)) return bad('option must be an object')
    this.events.options.push(p.option)
    for (const [k, v] of Object.entries(p.option)) {
      const s = str(v)
      if (s !== undefined) this.deviceOptions[k] = s
    }
    return ok(`${Object.keys(p.option).length} option(s) set`)
  }

  /**
   * 3.25 cmd.data.query.user, answered with 3.8 dev.data.upload.user. The users are uploaded
   * first, then dev.cmd.response, so that a server sees the data before the command completes.
   */
  private async queryUsers(p: Json, cmdId: string): Promise<CmdResult> {
    const pin = str(p.pin)
    const all = !pin // 3.25: an empty pin asks for every user
    const list = all ? [...this.store.values()] : this.store.has(pin) ? [this.store.get(pin)!] : []
    const wire = list.map(userToWire)
    const batches: Json[][] = []
    for (let i = 0; i < wire.length; i += USERS_PER_UPLOAD) batches.push(wire.slice(i, i + USERS_PER_UPLOAD))
    if (batches.length === 0) batches.push([]) // an empty list is uploaded too, so the server's answer is never missing
    for (const users of batches) {
      // AMBIGUITIES best #8: dev.data.upload.user carries no cmdId in the document; it is added (4.2.2 allows cmdId on command replies) to spare the server matching by time/pin.
      const reply = await this.request({ funcId: 'dev.data.upload.user', payload: { params: { cmdId, users } } })
      if (!isOk(reply)) return { code: BEST_CODES.failed, message: `dev.data.upload.user answered ${codeOf(reply)} ${str(reply.message) ?? ''}`.trim() }
    }
    if (!all && list.length === 0) return { code: BEST_CODES.notFound, message: `no user ${pin}` }
    return ok(`${list.length} user(s) uploaded`)
  }

  // -------------------------------------------------------------------------------------------
  // Records.

  async verifyLog(opts: { pin?: string; photo?: Buffer; time?: Date; meetCode?: string; verifyStyle?: string } = {}): Promise<Record<string, unknown>> {
    if (!this._loggedIn || !this.link) throw new Error(`best ${this.sn}: not logged in`)
    const when = opts.time ? opts.time.getTime() : this.now()
    // AMBIGUITIES best #11: times are "server local" in one section, "device local" in another: the device writes its own zone's local time with the offset.
    const verifyTime = formatBestTime(when, this.timeZone)
    const logId = String(++this.logSeq)
    const pin = opts.pin ?? '1'
    const meetCode = opts.meetCode ?? this.o.meetCode // AMBIGUITIES best #12: meeting firmware, meetCode required on logs
    const log: Json = {
      pin,
      meetCode,
      verifyTime,
      verifyStyle: opts.verifyStyle ?? '1', // AMBIGUITIES best #12: the verify-style appendix is missing; the document's example value
      status: '255', // 3.12: 255 = neither sign-in nor sign-out window
      category: '0', // 3.12: 0 normal user (4 visitor); AMBIGUITIES best #9 leaves stored roles undefined, so not derived from them
      logId,
      recodeType: '255', // 3.12 (sic, "recode"): 255 default
    }
    // 3.12: the array is named `verifyLog` (singular, against rule 4 of 4): sent as the document writes it.
    const reply = await this.request({ funcId: 'dev.data.upload.verifyLog', payload: { params: { verifyLog: [log] } } })
    if (!isOk(reply)) throw new Error(`dev.data.upload.verifyLog answered ${codeOf(reply)} ${str(reply.message) ?? ''}`.trim())

    if (opts.photo) {
      const content = opts.photo.toString('base64')
      const entry: Json = { pin, meetCode, photoTime: verifyTime, extension: 'jpg', logId, content: '' }
      if (content.length + 1024 <= this.o.maxPackageKb * 1024) entry.content = content
      else {
        const fileId = await this.uploadFile(opts.photo)
        // AMBIGUITIES best #11: the example says contentFileId, the table contentFileDialog: both are sent, same value.
        entry.contentFileId = fileId
        entry.contentFileDialog = fileId
      }
      const pr = await this.request({ funcId: 'dev.data.upload.verifyPhoto', payload: { params: { verifyPhotos: [entry] } } })
      if (!isOk(pr)) throw new Error(`dev.data.upload.verifyPhoto answered ${codeOf(pr)} ${str(pr.message) ?? ''}`.trim())
    }
    return log
  }

  /** 3.7: dev.file.upload.start / package… / end; returns the fileId. */
  private async uploadFile(data: Buffer): Promise<string> {
    const fileId = randomBytes(16).toString('hex') // 3.7: letters and digits, a 32-character uuid suggested
    const checksum = createHash('md5').update(data).digest('hex') // 3.7: md5 of the whole file (lowercase hex)
    const expect = async (funcId: string, params: Json): Promise<void> => {
      const r = await this.request({ funcId, payload: { params } })
      if (!isOk(r)) throw new Error(`${funcId} answered ${codeOf(r)} ${str(r.message) ?? ''}`.trim())
    }
    await expect('dev.file.upload.start', { fileId, size: String(data.length), checksum })
    // Each package must fit maxPackageSize once base64-encoded (4/3) with the envelope: 3 bytes → 4 characters.
    const chunk = Math.max(3, Math.floor(((this.o.maxPackageKb * 1024 - 1024) * 3) / 4 / 3) * 3)
    for (let offset = 0; offset < data.length; offset += chunk) {
      // 3.7: offset = bytes of the file already sent (binary offset, not base64 characters).
      await expect('dev.file.upload.package', { fileId, offset: String(offset), content: data.subarray(offset, offset + chunk).toString('base64') })
    }
    await expect('dev.file.upload.end', { fileId })
    return fileId
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

const HANDLED_COMMANDS = [
  'cmd.control.reboot', 'cmd.system.sync.time', 'cmd.option.set',
  'cmd.data.update.user', 'cmd.data.update.bioPhoto', 'cmd.data.delete.user', 'cmd.data.clear.user', 'cmd.data.query.user',
  'cmd.data.delete.userPhoto', 'cmd.data.delete.bioPhoto', 'cmd.data.update.multiCard', 'cmd.data.delete.multiCard',
  'cmd.data.clear.multiCard', 'cmd.data.clear.all', 'cmd.data.update.meeting', 'cmd.data.update.meetingMember',
  'cmd.data.delete.meeting', 'cmd.data.delete.meetingMember',
]

const ok = (message: string): CmdResult => ({ code: BEST_CODES.ok, message })
const bad = (message: string): CmdResult => ({ code: BEST_CODES.badParams, message })

function strings(v: unknown): string[] | undefined {
  if (!Array.isArray(v)) return undefined
  const out: string[] = []
  for (const x of v) {
    const s = str(x)
    if (s === undefined) return undefined
    out.push(s)
  }
  return out
}

function firstStr(o: Json, keys: string[]): string | undefined {
  for (const k of keys) {
    const s = str(o[k])
    if (s !== undefined && s !== '') return s
  }
  return undefined
}

/** Paths of values that are neither strings nor containers (AMBIGUITIES best #10). */
function findNonStrings(v: unknown, path = '', out: string[] = []): string[] {
  if (Array.isArray(v)) v.forEach((x, i) => findNonStrings(x, `${path}[${i}]`, out))
  else if (isObj(v)) for (const [k, x] of Object.entries(v)) findNonStrings(x, path ? `${path}.${k}` : k, out)
  else if (typeof v !== 'string') out.push(path || '(root)')
  return out
}

/** Validity and password checks of one cmd.data.update.user entry; undefined when fine. */
function checkUser(u: Json): string | undefined {
  for (const k of ['startTime', 'endTime'] as const) {
    const v = u[k]
    if (v === undefined || v === '') continue
    if (typeof v !== 'string' || !ISO_WITH_OFFSET.test(v) || Number.isNaN(Date.parse(v))) return `${k} ${String(v)} is not yyyy-MM-ddTHH:mm:ss±HH:mm`
  }
  const s = str(u.startTime)
  const e = str(u.endTime)
  if (s && e && Date.parse(s) > Date.parse(e)) return `startTime ${s} is after endTime ${e}`
  const pw = str(u.password)
  if (pw && !/^[0-9a-f]{64}$/i.test(pw)) return 'password is not a 32-byte PBKDF2 digest in hex'
  const salt = str(u.passwordSalt)
  if (salt && !/^(?:[0-9a-f]{2})+$/i.test(salt)) return 'passwordSalt is not hex'
  if (u.bioDatas !== undefined && !Array.isArray(u.bioDatas)) return 'bioDatas must be an array'
  return undefined
}

/** A stored user as 3.8 dev.data.upload.user writes it: every value a string. */
function userToWire(u: Json): Json {
  const w: Json = {}
  for (const k of USER_FIELDS) {
    const s = str(u[k])
    if (s !== undefined) w[k] = s
  }
  w.firstName ??= '' // 3.8: firstName, funSwitch, disable are required
  w.funSwitch ??= '0'
  w.disable ??= '0'
  if (Array.isArray(u.bioDatas)) {
    w.bioDatas = u.bioDatas.filter(isObj).map((b) => {
      const o: Json = {}
      for (const k of BIO_FIELDS) {
        const s = str(b[k])
        if (s !== undefined) o[k] = s
      }
      return o
    })
  }
  return w
}

/** A time from the server: ISO 8601 (offset optional: then local to `tzMin`), or epoch seconds / milliseconds. */
function parseServerTime(s: string, tzMin: number): number | undefined {
  const t = s.trim()
  if (/^\d{13}$/.test(t)) return Number(t)
  if (/^\d{9,10}$/.test(t)) return Number(t) * 1000
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/i.exec(t)
  if (!m) return undefined
  if (m[8]) {
    const off = parseTimeZone(m[8])
    if (off === undefined) return undefined
    const ms = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) - off * 60_000
    return Number.isNaN(ms) ? undefined : ms
  }
  const ms = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) - tzMin * 60_000
  return Number.isNaN(ms) ? undefined : ms
}

/**
 * A simulated udp intercom door station ("门口机"), written from the vendor document
 * (protocols/udp-intercom.txt) plus the udp parts of protocols/README.md and
 * protocols/AMBIGUITIES.md — and from nothing else. It deliberately shares no code with the udp
 * driver/gateway: a simulator built on the server's codec would confirm its misreadings.
 *
 * The device sits behind NAT. It sends a JSON heartbeat (UDP) to the server every 50 s from its
 * source port (section 1); the server reaches it only by answering to that source address/port:
 * `unlock` (section 7), `setting` (8), `reboot` (9), each answered with `…ack` and the command's
 * `id`. Over HTTP the device calls the server: /oneLock (2), /unlockCallback (3), /addUpload (4),
 * /updateImage (5) and /authImage (6).
 *
 * Where the document is silent or contradicts itself, the decision is a one-line comment that
 * names the section or the AMBIGUITIES item ("AMB udp #n").
 */
import { createHash, randomBytes } from 'node:crypto'
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'

// ---------------------------------------------------------------------------------------------
// Public API.

export interface UdpSimulatorOptions {
  /** Server host for heartbeats, e.g. '127.0.0.1'. */
  server: string
  /** Server UDP port (the document's 7998). */
  udpPort: number
  /** Server base URL for the HTTP callbacks, e.g. 'http://127.0.0.1:8090' (a path prefix is kept). */
  httpUrl: string
  communityId: string
  deviceCode: string
  deviceSn?: string
  /** Section 1: `name` is the community's name (小区名称). */
  name?: string
  softVer?: string
  /** Heartbeat period; default 50000 (section 1: "50秒一次"). */
  intervalMs?: number
  /** Local UDP port to send from (0/undefined = random) — the "NAT" port. */
  sourcePort?: number
  /** Local address to bind; default 127.0.0.1/::1 when the server is on loopback, else all interfaces. */
  bindAddress?: string
  /** Drop the first N command datagrams received (simulates loss; the server must resend with the same id). */
  dropIncoming?: number
  /** Send acks with the document's `"id","1"` form (AMB udp #2). */
  brokenIdForm?: boolean
  /** Face photos whose bytes contain this ASCII marker are judged invalid (40); default 'NOFACE'. */
  invalidPhotoMarker?: string
  /** Poll /updateImage after every Nth heartbeat (default 1 = every heartbeat; 0 = never on its own). */
  facePollEvery?: number
  /** Initial `timestrap` for /updateImage (default 0: everything). */
  faceCursor?: number
  /** HTTP request bodies: 'form' (default, the updateImage example is key=value) or 'json' (AMB udp #6). */
  bodyEncoding?: 'form' | 'json'
  /** Send a feature file with valid (50) verdicts (`iffile=1`); default true. */
  featureFile?: boolean
  /** Also confirm deletions (state 30) to /authImage with iffile=2; default false (the document only reports photo verdicts). */
  reportDeletes?: boolean
  /** After a /oneLock answer, report the attempt to /unlockCallback (type 3, result 0 or 1); default true. */
  reportPasswordUnlocks?: boolean
  /**
   * Behave like a device behind NAT: accept datagrams only from the server's address and UDP port
   * (where the heartbeats went); default true.
   */
  natFilter?: boolean
  /** NAT mapping lifetime: datagrams arriving later than this after the last heartbeat are lost; default: never expires. */
  natTimeoutMs?: number
  /** HTTP request timeout; default 10000. */
  requestTimeoutMs?: number
  log?: (line: string) => void
}

export interface UdpEvents {
  heartbeats: number
  heartacks: number
  lastHeartackResult?: string
  /** Unlock commands executed, as received (each id once). */
  unlocks: Record<string, unknown>[]
  reboots: number
  /** Setting commands executed, as received (each id once). */
  settings: Record<string, unknown>[]
  /** Command datagrams that arrived (including dropped ones and duplicates). */
  commandsReceived: number
  /** Command datagrams dropped because of `dropIncoming`. */
  commandsDropped: number
  /** Commands that repeated an id already executed: not executed again, the first ack re-sent. */
  duplicatesIgnored: number
  /** Datagrams ignored: malformed, from a foreign address/port, or after the NAT mapping expired. */
  datagramsIgnored: number
  faceListPolls: number
  /** /authImage requests that the server accepted (code 0000). */
  authReports: number
  /** /addUpload requests sent. */
  uploads: number
  /** /unlockCallback requests sent. */
  unlockCallbacks: number
  /** /oneLock requests sent. */
  passwordChecks: number
  /** Protocol problems seen in the server's messages (also logged). */
  problems: string[]
}

export interface AccessEventOptions {
  /** Default: the first stored face's phone, else '' ("没有号码可填空"). */
  phone?: string
  /** Section 3 type; default 4 (人脸). */
  type?: number
  /** Section 3 result; default 0 (开锁成功). */
  result?: number
  /** The capture; default a generated JPEG. */
  photo?: Buffer
  /** Send the record without a capture (no /addUpload). */
  noPhoto?: boolean
  /** Default: the stored face's roomNumber / unitId, else ''. */
  roomNumber?: string
  unitId?: string
}

export interface UdpSimulator {
  readonly sourcePort: number
  /** Commands executed (each id once, even if the server resent it). */
  readonly events: UdpEvents
  /** Faces stored on the device, keyed by phone (the document keys faces by phone). */
  faces(): Map<string, Record<string, unknown>>
  /** Current communityId / deviceCode (a `setting` command can change them). */
  readonly communityId: string
  readonly deviceCode: string
  /** The `timestrap` the next /updateImage will send. */
  readonly faceCursor: number
  /** Bind the UDP socket, send the first heartbeat immediately, then every intervalMs. */
  start(): Promise<void>
  stop(): Promise<void>
  /** Send a heartbeat now. */
  heartbeat(): Promise<void>
  /** Poll /updateImage now, download new faces (imageUrl relative to httpUrl, or absolute), judge them, report /authImage. Resolves when done. */
  syncFaces(): Promise<void>
  /** Simulate a person at the door: upload the capture (/addUpload), then the access event (/unlockCallback) referring to it. Returns what was sent. */
  accessEvent(opts?: AccessEventOptions): Promise<Record<string, unknown>>
  /** Ask /oneLock whether this password opens the door; resolves with the server's verdict as parsed. */
  passwordCheck(password: string, extra?: Record<string, unknown>): Promise<Record<string, unknown>>
}

export function createUdpSimulator(opts: UdpSimulatorOptions): UdpSimulator {
  return new UdpDevice(opts)
}

// ---------------------------------------------------------------------------------------------
// Document constants.

/** HTTP paths as the document names them (sections 2–6). */
export const UDP_PATHS = {
  oneLock: '/oneLock',
  unlockCallback: '/unlockCallback',
  addUpload: '/addUpload',
  updateImage: '/updateImage',
  authImage: '/authImage',
} as const

/** Section 5/6 state values. */
export const FACE_STATE = { added: '10', modified: '20', deleted: '30', invalid: '40', valid: '50' } as const

/** Sections 7–9 ack `type`: 0 成功, 1 参数无效, 2 无权限. */
export const ACK_TYPE = { ok: '0', invalid: '1', denied: '2' } as const

/** Section 3 `type` (开锁类型). */
export const UNLOCK_TYPE = {
  qrCode: 0, miniProgram: 1, card: 2, oneTimePassword: 3, face: 4, extension: 5, propertyCentre: 6, fingerprint: 7, publicPassword: 8, phoneCall: 14,
} as const

/** Sections 2–6: `code` "0000" is success. */
const CODE_OK = '0000'

const COMMANDS = new Set(['unlock', 'setting', 'reboot'])
/** How many executed command ids are remembered for duplicate detection. */
const SEEN_IDS = 1024

// ---------------------------------------------------------------------------------------------
// Lenient JSON (the document's own examples are not JSON).

export interface ParsedMessage {
  /** The object, a later duplicate key overriding an earlier one (as JSON.parse does). */
  value: Record<string, unknown>
  /** Every key/value in order, duplicates included (section 8 lists `communityId` twice, AMB udp #9). */
  entries: [string, unknown][]
}

/**
 * Parses JSON and the document's broken forms: `"id","1"` pairs (AMB udp #2), `,,` and a key
 * missing its opening quote (the updateImage example, AMB udp #3), curly quotes, unquoted keys,
 * `//` comments and a missing comma (the authImage answer example, section 6), trailing commas.
 * Returns undefined when the text is not an object even under these rules.
 */
export function parseLenientJson(text: string): ParsedMessage | undefined {
  try {
    const p = new LenientParser(text)
    const v = p.parseTop()
    if (!v) return undefined
    return v
  } catch {
    return undefined
  }
}

const OPEN_QUOTES = new Set(['"', '\u201c', '\u201d'])
const CLOSE_QUOTES = new Set(['"', '\u201d', '\u201c'])
const BARE_STOP = new Set([':', ',', '{', '}', '[', ']', '"', '\u201c', '\u201d'])

class LenientParser {
  private i = 0
  constructor(private readonly s: string) {}

  parseTop(): ParsedMessage | undefined {
    this.ws()
    if (this.s[this.i] !== '{') return undefined
    const m = this.object()
    this.ws()
    if (this.i < this.s.length) throw new Error('trailing text')
    return m
  }

  private ws(): void {
    for (;;) {
      while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++
      if (this.s.startsWith('//', this.i)) {
        const nl = this.s.indexOf('\n', this.i)
        this.i = nl < 0 ? this.s.length : nl + 1
      } else if (this.s.startsWith('/*', this.i)) {
        const end = this.s.indexOf('*/', this.i + 2)
        this.i = end < 0 ? this.s.length : end + 2
      } else return
    }
  }

  private object(): ParsedMessage {
    this.i++ // {
    const entries: [string, unknown][] = []
    for (;;) {
      this.ws()
      const c = this.s[this.i]
      if (c === undefined) throw new Error('unterminated object')
      if (c === ',') { this.i++; continue } // `,,` and trailing commas
      if (c === '}') { this.i++; break }
      const key = OPEN_QUOTES.has(c) ? this.string() : this.bare()
      this.ws()
      if (this.s[this.i] === '"') { this.i++; this.ws() } // `message":` — key missing its opening quote
      const sep = this.s[this.i]
      if (sep !== ':' && sep !== ',') throw new Error(`expected : after key ${key}`)
      this.i++ // `:` or the document's `,` (AMB udp #2)
      entries.push([key, this.value()])
      this.ws()
      const after = this.s[this.i]
      if (after === ',') { this.i++; continue }
      if (after === '}') { this.i++; break }
      if (after === undefined) throw new Error('unterminated object')
      // no comma: section 6's answer example has `message:””    //提示语` then `data:{}` on the next line
    }
    const value: Record<string, unknown> = {}
    for (const [k, v] of entries) value[k] = v
    return { value, entries }
  }

  private value(): unknown {
    this.ws()
    const c = this.s[this.i]
    if (c === undefined) throw new Error('missing value')
    if (c === '{') return this.object().value
    if (c === '[') {
      this.i++
      const out: unknown[] = []
      for (;;) {
        this.ws()
        const d = this.s[this.i]
        if (d === undefined) throw new Error('unterminated array')
        if (d === ',') { this.i++; continue }
        if (d === ']') { this.i++; return out }
        out.push(this.value())
      }
    }
    if (OPEN_QUOTES.has(c)) return this.string()
    const word = this.bare()
    if (word === 'null') return null
    if (word === 'true') return true
    if (word === 'false') return false
    if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(word)) return Number(word)
    return word
  }

  private bare(): string {
    const start = this.i
    while (this.i < this.s.length && !BARE_STOP.has(this.s[this.i]!) && !/\s/.test(this.s[this.i]!) && !this.s.startsWith('//', this.i)) this.i++
    if (this.i === start) throw new Error('unexpected character')
    return this.s.slice(start, this.i)
  }

  private string(): string {
    this.i++ // opening quote
    let out = ''
    for (;;) {
      const c = this.s[this.i]
      if (c === undefined) throw new Error('unterminated string')
      if (CLOSE_QUOTES.has(c)) { this.i++; return out }
      if (c === '\\') {
        const e = this.s[this.i + 1]
        this.i += 2
        switch (e) {
          case 'n': out += '\n'; break
          case 'r': out += '\r'; break
          case 't': out += '\t'; break
          case 'b': out += '\b'; break
          case 'f': out += '\f'; break
          case 'u': out += String.fromCharCode(parseInt(this.s.slice(this.i, this.i + 4), 16)); this.i += 4; break
          default: out += e ?? ''
        }
        continue
      }
      out += c
      this.i++
    }
  }
}

/**
 * Serialises an outgoing datagram. With `brokenId`, `id` is written the document's way,
 * `"id","1"`, last (sections 7–9 examples, AMB udp #2); otherwise plain JSON.
 */
export function encodeMessage(msg: Record<string, unknown>, brokenId = false): string {
  if (!brokenId || !('id' in msg)) return JSON.stringify(msg)
  const { id, ...rest } = msg
  const head = JSON.stringify(rest).slice(0, -1)
  return `${head}${head.length > 1 ? ',' : ''}"id",${JSON.stringify(id)}}`
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined)
const errMsg = (e: unknown): string => {
  if (!(e instanceof Error)) return String(e)
  const cause = (e as { cause?: unknown }).cause
  return cause instanceof Error ? `${e.message}: ${cause.message}` : e.message // fetch's "fetch failed" hides the reason in cause
}

/** A minimal valid baseline JPEG (8x8 grey); `comment` goes into a COM segment (e.g. the NOFACE marker). */
export function makeJpeg(comment?: string): Buffer {
  const b: number[] = [0xff, 0xd8]
  b.push(0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00) // APP0 JFIF
  if (comment !== undefined) {
    const c = Buffer.from(comment, 'latin1').subarray(0, 60000)
    b.push(0xff, 0xfe, (c.length + 2) >> 8, (c.length + 2) & 0xff, ...c) // COM
  }
  b.push(0xff, 0xdb, 0x00, 0x43, 0x00, ...new Array<number>(64).fill(1)) // DQT
  b.push(0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00) // SOF0
  b.push(0xff, 0xc4, 0x00, 0x14, 0x00, 1, ...new Array<number>(15).fill(0), 0x00) // DHT DC
  b.push(0xff, 0xc4, 0x00, 0x14, 0x10, 1, ...new Array<number>(15).fill(0), 0x00) // DHT AC
  b.push(0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00) // SOS
  b.push(0x3f, 0xff, 0xd9)
  return Buffer.from(b)
}

const isJpeg = (b: Buffer): boolean => b.length >= 4 && b[0] === 0xff && b[1] === 0xd8

interface Part { name: string; data: string | Buffer; filename?: string; contentType?: string }

/** multipart/form-data by hand (CRLF, one boundary); sections 4 and 6 say only "multipart/form-data文件流格式". */
function buildMultipart(parts: Part[]): { body: Buffer; contentType: string } {
  const boundary = `----doorctlUdpSim${randomBytes(12).toString('hex')}`
  const chunks: Buffer[] = []
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}\r\n`
    if (p.contentType) head += `Content-Type: ${p.contentType}\r\n`
    chunks.push(Buffer.from(head + '\r\n', 'utf8'), typeof p.data === 'string' ? Buffer.from(p.data, 'utf8') : p.data, Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` }
}

class HttpStatusError extends Error {
  constructor(readonly status: number, message: string) {
    super(message)
  }
}

// ---------------------------------------------------------------------------------------------
// The device.

interface PendingReport { phone: string; state: string; feature?: Buffer; attempts?: number }

/** A verdict the server refused (9999) or could not take is re-sent at the next polls, this many times in all. */
const MAX_REPORT_ATTEMPTS = 3

class UdpDevice implements UdpSimulator {
  readonly events: UdpEvents = {
    heartbeats: 0, heartacks: 0, unlocks: [], reboots: 0, settings: [], commandsReceived: 0, commandsDropped: 0,
    duplicatesIgnored: 0, datagramsIgnored: 0, faceListPolls: 0, authReports: 0, uploads: 0, unlockCallbacks: 0, passwordChecks: 0, problems: [],
  }
  private community: string
  private code: string
  private readonly intervalMs: number
  private readonly facePollEvery: number
  private readonly marker: Buffer
  private readonly log: (line: string) => void
  private readonly http: URL
  private socket: Socket | undefined
  private boundPort = 0
  private serverAddress = ''
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private abort = new AbortController()
  private dropLeft: number
  private lastHeartbeatAt = 0
  /** `cmd|id` → the ack first sent, re-sent verbatim for duplicates. */
  private readonly seen = new Map<string, string>()
  private readonly faceStore = new Map<string, Record<string, unknown>>()
  /** phone → signature of the last face-list item handled for it (re-delivered items are skipped). */
  private readonly handled = new Map<string, string>()
  private pendingReports: PendingReport[] = []
  private cursor: number
  private syncChain: Promise<void> = Promise.resolve()
  private autoSyncRunning = false
  private readonly inflight = new Set<Promise<unknown>>()
  private lastUploadName = 0

  constructor(private readonly opts: UdpSimulatorOptions) {
    if (!opts.server) throw new Error('server is required')
    if (!Number.isInteger(opts.udpPort) || opts.udpPort <= 0 || opts.udpPort > 65535) throw new Error(`udpPort must be 1..65535, got ${opts.udpPort}`)
    this.http = new URL(opts.httpUrl)
    this.community = opts.communityId
    this.code = opts.deviceCode
    this.intervalMs = opts.intervalMs ?? 50_000
    this.facePollEvery = opts.facePollEvery ?? 1
    this.marker = Buffer.from(opts.invalidPhotoMarker ?? 'NOFACE', 'latin1')
    this.dropLeft = opts.dropIncoming ?? 0
    this.cursor = opts.faceCursor ?? 0
    const log = opts.log
    this.log = log ? (line) => log(`udp ${this.community}/${this.code}: ${line}`) : () => {}
  }

  get sourcePort(): number {
    return this.boundPort
  }
  get communityId(): string {
    return this.community
  }
  get deviceCode(): string {
    return this.code
  }
  get faceCursor(): number {
    return this.cursor
  }
  faces(): Map<string, Record<string, unknown>> {
    return new Map(this.faceStore)
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  async start(): Promise<void> {
    if (this.socket) throw new Error('already started')
    this.stopped = false
    this.abort = new AbortController()
    const host = this.opts.server.replace(/^\[|\]$/g, '')
    const resolved = isIP(host) ? { address: host, family: isIP(host) } : await lookup(host, { family: 4 }).catch(() => lookup(host))
    this.serverAddress = resolved.address
    const loopback = resolved.family === 6 ? resolved.address === '::1' : resolved.address.startsWith('127.')
    const bindAddress = this.opts.bindAddress ?? (loopback ? resolved.address : undefined)
    const socket = createSocket(resolved.family === 6 ? 'udp6' : 'udp4')
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(e)
      socket.once('error', onError)
      socket.bind({ port: this.opts.sourcePort ?? 0, ...(bindAddress ? { address: bindAddress } : {}), exclusive: true }, () => {
        socket.off('error', onError)
        resolve()
      })
    })
    socket.on('error', (e) => this.log(`socket error: ${e.message}`))
    socket.on('message', (buf, rinfo) => this.onDatagram(buf, rinfo))
    this.socket = socket
    this.boundPort = socket.address().port
    this.log(`bound UDP ${bindAddress ?? '*'}:${this.boundPort}, heartbeats to ${this.serverAddress}:${this.opts.udpPort} every ${this.intervalMs} ms`)
    try {
      await this.heartbeat()
    } catch (e) {
      await this.stop()
      throw e
    }
    this.schedule()
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    this.abort.abort(new Error('simulator stopped'))
    await Promise.allSettled([...this.inflight])
    const s = this.socket
    this.socket = undefined
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()))
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer)
    if (this.stopped || !this.socket) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.heartbeat().catch((e: unknown) => this.log(`heartbeat failed: ${errMsg(e)}`))
      this.schedule()
    }, this.intervalMs)
  }

  /** Keeps a background promise so stop() can wait for it; never rejects. */
  private track(p: Promise<unknown>): void {
    const q = p.catch(() => undefined)
    this.inflight.add(q)
    void q.finally(() => this.inflight.delete(q))
  }

  // ---- UDP -----------------------------------------------------------------------------------

  async heartbeat(): Promise<void> {
    // Section 1: heart with communityId, deviceCode, cmd (required), softVer, name, deviceSn.
    const msg = {
      communityId: this.community,
      deviceCode: this.code,
      cmd: 'heart',
      softVer: this.opts.softVer ?? '1.02.03.04',
      name: this.opts.name ?? '模拟小区',
      deviceSn: this.opts.deviceSn ?? `SIM${this.opts.communityId}${this.opts.deviceCode}`,
    }
    await this.send(JSON.stringify(msg))
    this.lastHeartbeatAt = Date.now()
    this.events.heartbeats++
    if (this.facePollEvery > 0 && this.events.heartbeats % this.facePollEvery === 0 && !this.autoSyncRunning) {
      this.autoSyncRunning = true
      this.track(
        this.syncFaces()
          .catch((e: unknown) => this.log(`face list poll failed: ${errMsg(e)}`))
          .finally(() => (this.autoSyncRunning = false)),
      )
    }
  }

  private send(text: string): Promise<void> {
    const s = this.socket
    if (!s) return Promise.reject(new Error('simulator not started'))
    return new Promise<void>((resolve, reject) => {
      s.send(Buffer.from(text, 'utf8'), this.opts.udpPort, this.serverAddress, (e) => (e ? reject(e) : resolve()))
    }).then(() => this.log(`-> ${text}`))
  }

  private problem(p: string): void {
    this.events.problems.push(p)
    this.log(`problem: ${p}`)
  }

  private onDatagram(buf: Buffer, rinfo: RemoteInfo): void {
    const text = buf.toString('utf8')
    // README "udp": the server reaches the device only through the heartbeat's NAT mapping.
    if (this.opts.natFilter !== false && (rinfo.address !== this.serverAddress || rinfo.port !== this.opts.udpPort)) {
      this.events.datagramsIgnored++
      this.log(`ignored datagram from ${rinfo.address}:${rinfo.port} (not the server's ${this.serverAddress}:${this.opts.udpPort}; a NAT would drop it): ${text}`)
      return
    }
    if (this.opts.natTimeoutMs !== undefined && Date.now() - this.lastHeartbeatAt > this.opts.natTimeoutMs) {
      this.events.datagramsIgnored++
      this.log(`ignored datagram: NAT mapping expired (${Date.now() - this.lastHeartbeatAt} ms since the last heartbeat): ${text}`)
      return
    }
    const parsed = parseLenientJson(text)
    if (!parsed) {
      this.events.datagramsIgnored++
      this.problem(`unparseable datagram: ${text.slice(0, 200)}`)
      return
    }
    const cmd = str(parsed.value.cmd) ?? ''
    if (cmd === 'heartack') {
      this.log(`<- ${text}`)
      this.events.heartacks++
      // Section 1: result "0" 成功 / "1" 失败 (CLI.md: an unknown device gets result "1").
      const result = str(parsed.value.result)
      this.events.lastHeartackResult = result
      if (result === undefined) this.problem(`heartack without result: ${text}`)
      else if (result !== '0') this.log(`server refused the heartbeat (result ${result}: ${str(parsed.value.message) ?? ''}); heartbeating on`)
      return
    }
    this.events.commandsReceived++
    if (this.dropLeft > 0) {
      this.dropLeft--
      this.events.commandsDropped++
      this.log(`dropped (simulated loss, ${this.dropLeft} more to drop): ${text}`)
      return
    }
    this.log(`<- ${text}`)
    this.onCommand(cmd, parsed)
  }

  private onCommand(cmd: string, parsed: ParsedMessage): void {
    const m = parsed.value
    const id = m.id
    const idText = str(id)
    const key = idText !== undefined ? `${cmd}|${idText}` : undefined
    if (key !== undefined) {
      const previous = this.seen.get(key)
      if (previous !== undefined) {
        // README "udp": id binds a command to its ack — a resent id is the same command: ack again, don't execute.
        this.events.duplicatesIgnored++
        this.log(`duplicate ${cmd} id ${idText}: not executed again, ack re-sent`)
        this.sendAck(previous)
        return
      }
    }
    const addressed = { communityId: this.community, deviceCode: this.code }
    let ack: Record<string, unknown>
    if (!COMMANDS.has(cmd)) {
      // Not in the document: answer `<cmd>ack` with type 1 (参数无效) so the server sees a refusal, not silence.
      this.problem(`unknown command ${JSON.stringify(cmd)}`)
      ack = { ...addressed, type: ACK_TYPE.invalid, message: `unknown command ${cmd}`, cmd: `${cmd || 'unknown'}ack` }
    } else if (cmd === 'unlock') {
      ack = this.unlock(m)
    } else if (cmd === 'setting') {
      ack = this.setting(parsed)
    } else {
      ack = this.reboot(m)
    }
    if (id !== undefined) ack.id = id // echoed as received (string or number)
    // AMB udp #2: the real device writes `"id","1"`; `brokenIdForm` reproduces it.
    const text = encodeMessage(ack, this.opts.brokenIdForm === true)
    if (key !== undefined) {
      this.seen.set(key, text)
      if (this.seen.size > SEEN_IDS) this.seen.delete(this.seen.keys().next().value as string)
    }
    this.sendAck(text)
    if (cmd === 'reboot' && ack.type === ACK_TYPE.ok) this.afterReboot()
  }

  private sendAck(text: string): void {
    this.send(text).catch((e: unknown) => this.log(`ack not sent: ${errMsg(e)}`))
  }

  /** Sections 7–9: a command naming another device is refused with type 1 (参数无效). */
  private misaddressed(m: Record<string, unknown>, checkCommunity = true): string | undefined {
    const dc = str(m.deviceCode)
    if (dc !== undefined && dc !== '' && dc !== this.code) return `deviceCode ${dc} is not this device (${this.code})`
    const ci = str(m.communityId)
    if (checkCommunity && ci !== undefined && ci !== '' && ci !== this.community) return `communityId ${ci} is not this device's (${this.community})`
    return undefined
  }

  private unlock(m: Record<string, unknown>): Record<string, unknown> {
    const phone = str(m.phone) ?? '' // section 7: "参数必填，可以为”””
    const roomNumber = str(m.roomNumber) ?? ''
    const unitId = str(m.unitId) ?? ''
    // AMB udp #9: the ack carries communityId/deviceCode (its table requires them; the example omits them).
    const ack: Record<string, unknown> = { communityId: this.community, deviceCode: this.code, type: ACK_TYPE.ok, message: '发送成功', cmd: 'unlockack', phone, roomNumber }
    const refuse = (why: string): Record<string, unknown> => {
      this.problem(`unlock refused: ${why}`)
      return { ...ack, type: ACK_TYPE.invalid, message: `参数无效: ${why}` }
    }
    const wrong = this.misaddressed(m)
    if (wrong) return refuse(wrong)
    // AMB udp #9: id is required for unlock (optional for setting/reboot); without it the ack cannot be bound.
    if (str(m.id) === undefined || str(m.id) === '') return refuse('id is required for unlock')
    // AMB udp #9: roomNumber is 4 digits in the command, 8 in the ack's table: accept 4 or 8 digits, or empty (a remote open names no room).
    if (roomNumber !== '' && !/^(\d{4}|\d{8})$/.test(roomNumber)) return refuse(`roomNumber ${roomNumber} is not 4 or 8 digits`)
    // Section 7: unitId "4位长度【0101,010栋1单元】"; empty accepted as for roomNumber.
    if (unitId !== '' && !/^\d{4}$/.test(unitId)) return refuse(`unitId ${unitId} is not 4 digits`)
    this.events.unlocks.push({ ...m })
    this.log(`door opened (remote unlock${phone ? ` for ${phone}` : ''}${roomNumber ? ` room ${roomNumber}` : ''})`)
    return ack
  }

  private setting(parsed: ParsedMessage): Record<string, unknown> {
    const m = parsed.value
    const before = { communityId: this.community, deviceCode: this.code }
    // The ack names the identity the command was addressed to; the next heartbeat carries the new one (section 8 does not say).
    const ack: Record<string, unknown> = { ...before, type: ACK_TYPE.ok, message: '发送成功', cmd: 'settingack' }
    const refuse = (why: string): Record<string, unknown> => {
      this.problem(`setting refused: ${why}`)
      return { ...ack, type: ACK_TYPE.invalid, message: `参数无效: ${why}` }
    }
    // AMB udp #9 / section 8: communityId is listed twice — the device's own (required) and the new one (optional).
    // Read: two communityId keys → first is the address, last the new value; one that differs from ours → the new value;
    // `communityIdNew` (by analogy with doorcodeNew) is accepted too.
    const cids = parsed.entries.filter(([k]) => k === 'communityId').map(([, v]) => str(v) ?? '')
    let newCommunity = str(m.communityIdNew)
    if (newCommunity === undefined && cids.length >= 2) newCommunity = cids[cids.length - 1]
    if (newCommunity === undefined && cids.length === 1 && cids[0] !== '' && cids[0] !== this.community) newCommunity = cids[0]
    if (cids.length >= 2 && cids[0] !== '' && cids[0] !== this.community) return refuse(`communityId ${cids[0]} is not this device's (${this.community})`)
    const wrong = this.misaddressed(m, false)
    if (wrong) return refuse(wrong)
    const newCode = str(m.doorcodeNew)
    if (m.doorcodeNew !== undefined && (newCode === undefined || newCode === '')) return refuse('doorcodeNew is empty')
    if (newCommunity !== undefined && newCommunity === '') return refuse('new communityId is empty')
    // Section 8: "服务器还想修改，添加参数即可" — other keys are accepted and recorded, not interpreted.
    this.events.settings.push({ ...m })
    if (newCode !== undefined && newCode !== this.code) {
      this.log(`deviceCode ${this.code} -> ${newCode}`)
      this.code = newCode
    }
    if (newCommunity !== undefined && newCommunity !== this.community) {
      this.log(`communityId ${this.community} -> ${newCommunity}`)
      this.community = newCommunity
    }
    return ack
  }

  private reboot(m: Record<string, unknown>): Record<string, unknown> {
    const ack: Record<string, unknown> = { communityId: this.community, deviceCode: this.code, type: ACK_TYPE.ok, message: '发送成功', cmd: 'rebootack' }
    const wrong = this.misaddressed(m)
    if (wrong) {
      this.problem(`reboot refused: ${wrong}`)
      return { ...ack, type: ACK_TYPE.invalid, message: `参数无效: ${wrong}` }
    }
    this.events.reboots++
    return ack
  }

  /** A rebooted device heartbeats at once (as on power-up) and restarts its period. Executed ids are kept. */
  private afterReboot(): void {
    this.log('rebooting')
    if (this.stopped) return
    this.track(
      this.heartbeat()
        .then(() => this.schedule())
        .catch((e: unknown) => this.log(`heartbeat after reboot failed: ${errMsg(e)}`)),
    )
  }

  // ---- HTTP ----------------------------------------------------------------------------------

  /** Path under httpUrl (a prefix such as /app/equipment is kept, section 4's example). */
  private url(path: string, query?: Record<string, string>): URL {
    const u = new URL(this.http.href)
    u.pathname = u.pathname.replace(/\/+$/, '') + path
    if (query) for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v)
    return u
  }

  private encodeBody(fields: Record<string, string>): { body: Buffer; contentType: string } {
    // AMB udp #6: the encoding is never stated; default form (section 5's request example is key=value), option JSON.
    if (this.opts.bodyEncoding === 'json') return { body: Buffer.from(JSON.stringify(fields), 'utf8'), contentType: 'application/json; charset=utf-8' }
    return { body: Buffer.from(new URLSearchParams(fields).toString(), 'utf8'), contentType: 'application/x-www-form-urlencoded; charset=UTF-8' }
  }

  private async request(url: URL, method: 'GET' | 'POST', payload?: { body: Buffer; contentType: string }): Promise<{ status: number; body: Buffer }> {
    if (this.stopped) throw new Error('simulator stopped')
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.opts.requestTimeoutMs ?? 10_000)])
    const res = await fetch(url, {
      method,
      signal,
      ...(payload ? { body: payload.body, headers: { 'content-type': payload.contentType } } : {}),
    })
    const body = Buffer.from(await res.arrayBuffer())
    return { status: res.status, body }
  }

  /** POST and parse the document's `{code, message, data}` answer (leniently: section 6's example is not JSON). */
  private async call(path: string, payload: { body: Buffer; contentType: string }, query?: Record<string, string>): Promise<Record<string, unknown>> {
    const url = this.url(path, query)
    const res = await this.request(url, 'POST', payload)
    const text = res.body.toString('utf8')
    this.log(`POST ${url.pathname}${url.search} -> ${res.status} ${text.length > 300 ? `${text.slice(0, 300)}…` : text}`)
    if (res.status < 200 || res.status >= 300) throw new HttpStatusError(res.status, `${path}: HTTP ${res.status} ${text.slice(0, 200)}`)
    const parsed = parseLenientJson(text)
    if (!parsed) throw new Error(`${path}: answer is not a JSON object: ${text.slice(0, 200)}`)
    return parsed.value
  }

  private post(path: string, fields: Record<string, string>, query?: Record<string, string>): Promise<Record<string, unknown>> {
    return this.call(path, this.encodeBody(fields), query)
  }

  private ok(answer: Record<string, unknown>): boolean {
    return str(answer.code) === CODE_OK
  }

  // ---- /oneLock ------------------------------------------------------------------------------

  async passwordCheck(password: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const fields: Record<string, string> = { communityId: this.community, deviceCode: this.code, onePassword: password }
    for (const [k, v] of Object.entries(extra)) fields[k] = typeof v === 'string' ? v : JSON.stringify(v)
    this.events.passwordChecks++
    // AMB udp #8: section 2 writes https://…/oneLock while the rest is http: every path is taken from httpUrl.
    const answer = await this.post(UDP_PATHS.oneLock, fields)
    const granted = this.ok(answer)
    if (this.opts.reportPasswordUnlocks !== false) {
      // Section 3: the device reports every unlock attempt (type 3 一次性密码; result 0 opened / 1 无权限).
      const data = isObj(answer.data) ? answer.data : {}
      await this.unlockCallback({
        type: String(UNLOCK_TYPE.oneTimePassword),
        result: granted ? '0' : '1',
        phone: str(data.phone) ?? '',
        roomNumber: str(data.roomNumber) ?? '',
        unitId: str(data.unitId) ?? '',
      }).catch((e: unknown) => this.log(`unlockCallback after /oneLock failed: ${errMsg(e)}`))
    }
    return answer
  }

  // ---- /addUpload + /unlockCallback ----------------------------------------------------------

  async accessEvent(o: AccessEventOptions = {}): Promise<Record<string, unknown>> {
    const phone = o.phone ?? this.faceStore.keys().next().value ?? ''
    const face = phone ? this.faceStore.get(phone) : undefined
    let file: string | undefined
    if (!o.noPhoto) {
      const photo = o.photo ?? makeJpeg(`capture ${this.community}/${this.code} ${new Date().toISOString()}`)
      try {
        file = await this.upload(photo)
      } catch (e) {
        // Section 3: file is optional ("如果有照片的话"): a failed upload still gets its record.
        this.log(`capture upload failed, record sent without file: ${errMsg(e)}`)
      }
    }
    const fields: Record<string, string> = {
      type: String(o.type ?? UNLOCK_TYPE.face),
      result: String(o.result ?? 0),
      phone,
      roomNumber: o.roomNumber ?? str(face?.roomNumber) ?? '',
      unitId: o.unitId ?? str(face?.unitId) ?? '',
    }
    if (file !== undefined) fields.file = file
    return this.unlockCallback(fields)
  }

  /** Section 3: every field is a string; `file` is the path /addUpload answered. Returns the fields sent. */
  private async unlockCallback(f: Record<string, string>): Promise<Record<string, unknown>> {
    const fields: Record<string, string> = { communityId: this.community, deviceCode: this.code, ...f }
    this.events.unlockCallbacks++
    const answer = await this.post(UDP_PATHS.unlockCallback, fields)
    if (!this.ok(answer)) this.problem(`/unlockCallback answered code ${String(answer.code)}: ${str(answer.message) ?? ''}`)
    return fields
  }

  /**
   * Section 4: multipart upload; the example `addUpload;uploadFile=/sdcard/1600657724098.jpg;newName=1600657724098.jpg`
   * is read as the file part `uploadFile` plus a field `newName` (AMB udp #8: the `;…` URL syntax is not sent),
   * file name = capture time in ms. communityId/deviceCode are added as fields (undocumented, harmless).
   */
  private async upload(photo: Buffer): Promise<string> {
    let ms = Date.now()
    if (ms <= this.lastUploadName) ms = this.lastUploadName + 1
    this.lastUploadName = ms
    const newName = `${ms}.jpg`
    const mp = buildMultipart([
      { name: 'communityId', data: this.community },
      { name: 'deviceCode', data: this.code },
      { name: 'newName', data: newName },
      { name: 'uploadFile', data: photo, filename: newName, contentType: 'image/jpeg' },
    ])
    this.events.uploads++
    const answer = await this.call(UDP_PATHS.addUpload, mp)
    const path = str(answer.data)
    if (!this.ok(answer) || !path) throw new Error(`/addUpload answered code ${String(answer.code)}, data ${JSON.stringify(answer.data)}`)
    return path
  }

  // ---- /updateImage + /authImage -------------------------------------------------------------

  syncFaces(): Promise<void> {
    const run = this.syncChain.then(() => this.doSync())
    this.syncChain = run.catch(() => undefined)
    this.track(run)
    return run
  }

  private async doSync(): Promise<void> {
    if (this.stopped) return
    await this.flushReports()
    // Section 5: timestrap (sic, AMB udp #3) in ms; its `state` parameter is copied from unlockCallback and not sent.
    const fields = { timestrap: String(this.cursor), communityId: this.community, deviceCode: this.code }
    this.events.faceListPolls++
    const answer = await this.post(UDP_PATHS.updateImage, fields)
    if (!this.ok(answer)) {
      this.problem(`/updateImage answered code ${String(answer.code)}: ${str(answer.message) ?? ''}`)
      return
    }
    if (answer.data !== null && answer.data !== undefined && !Array.isArray(answer.data)) {
      this.problem(`/updateImage data is not a list: ${JSON.stringify(answer.data).slice(0, 200)}`)
      return
    }
    const items = ((answer.data as unknown[] | null | undefined) ?? []).filter(isObj)
    // AMB udp #4: no lastQueryTime is returned: the next timestrap is the largest createTime seen. Whether the server
    // compares strictly or inclusively, re-delivered items are recognised (same createTime/state/imageUrl) and skipped.
    let maxTime = this.cursor
    let retryFrom: number | undefined
    // AMB udp #7: faces are keyed by phone; two items for one phone in an answer → the later one wins.
    const latest = new Map<string, Record<string, unknown>>()
    for (const item of items) {
      const t = Number(item.createTime)
      if (Number.isFinite(t) && t > maxTime) maxTime = t
      const phone = str(item.phone)
      if (!phone) {
        this.problem(`/updateImage item without phone: ${JSON.stringify(item).slice(0, 200)}`)
        continue
      }
      latest.set(phone, item)
    }
    for (const [phone, item] of latest) {
      const ok = await this.applyFaceItem(phone, item)
      if (!ok) {
        const t = Number(item.createTime)
        if (Number.isFinite(t)) retryFrom = Math.min(retryFrom ?? t, t)
      }
    }
    // An item whose photo could not be fetched (network) is asked for again next time.
    const next = retryFrom !== undefined ? Math.min(maxTime, retryFrom - 1) : maxTime
    if (next > this.cursor) this.cursor = next
    await this.flushReports()
  }

  /** Returns false when the item must be asked for again (transient failure). */
  private async applyFaceItem(phone: string, item: Record<string, unknown>): Promise<boolean> {
    const state = str(item.state) ?? ''
    const imageUrl = str(item.imageUrl) ?? ''
    const signature = `${str(item.createTime) ?? ''}|${state}|${imageUrl}`
    if (this.handled.get(phone) === signature) return true
    const ci = str(item.communityId)
    if (ci && ci !== this.community) this.log(`face ${phone}: item for community ${ci}, this device is ${this.community} (stored anyway)`)
    if (state === FACE_STATE.deleted) {
      const had = this.faceStore.delete(phone)
      this.log(`face ${phone} deleted${had ? '' : ' (was not stored)'}`)
      this.handled.set(phone, signature)
      if (this.opts.reportDeletes) this.pendingReports.push({ phone, state: FACE_STATE.deleted })
      return true
    }
    if (state !== FACE_STATE.added && state !== FACE_STATE.modified) {
      // 40/50 are the server's record of earlier verdicts; nothing to do on the device.
      if (state !== FACE_STATE.invalid && state !== FACE_STATE.valid) this.problem(`face ${phone}: unknown state ${JSON.stringify(item.state)}`)
      this.handled.set(phone, signature)
      return true
    }
    let photo: Buffer | undefined
    try {
      photo = await this.download(imageUrl)
    } catch (e) {
      if (e instanceof HttpStatusError) {
        this.log(`face ${phone}: image ${imageUrl} not downloadable (HTTP ${e.status}): invalid`)
      } else {
        this.log(`face ${phone}: image download failed (${errMsg(e)}), will ask again`)
        return false
      }
    }
    const valid = photo !== undefined && isJpeg(photo) && !photo.includes(this.marker)
    this.handled.set(phone, signature)
    if (valid) {
      this.faceStore.set(phone, {
        phone,
        roomNumber: str(item.roomNumber) ?? '',
        unitId: str(item.unitId) ?? '',
        communityId: str(item.communityId) ?? this.community,
        createTime: item.createTime,
        imageUrl,
        state: FACE_STATE.valid,
        photoBytes: photo!.length,
        photoSha256: createHash('sha256').update(photo!).digest('hex'),
      })
      this.log(`face ${phone} enrolled (${photo!.length} bytes)`)
      this.pendingReports.push({ phone, state: FACE_STATE.valid, ...(this.opts.featureFile !== false ? { feature: featureOf(photo!) } : {}) })
    } else {
      // An invalid photo for a modified face leaves the earlier face in place.
      this.log(`face ${phone} rejected: ${photo === undefined ? 'no image' : !isJpeg(photo) ? 'not a JPEG' : 'no face detected'}`)
      this.pendingReports.push({ phone, state: FACE_STATE.invalid })
    }
    return true
  }

  /**
   * AMB udp #5: imageUrl may be absolute or a path. A path is taken relative to httpUrl (prefix kept); when
   * httpUrl has a path prefix and that gives 404, the server's origin is tried (section 5's example path
   * /data/page/uploadImages/… looks origin-rooted).
   */
  private async download(imageUrl: string): Promise<Buffer> {
    if (!imageUrl) throw new HttpStatusError(404, 'empty imageUrl')
    const candidates: URL[] = []
    if (/^https?:\/\//i.test(imageUrl)) candidates.push(new URL(imageUrl))
    else {
      const rel = imageUrl.startsWith('/') ? imageUrl : `/${imageUrl}`
      const prefixed = new URL(this.http.href)
      prefixed.pathname = prefixed.pathname.replace(/\/+$/, '') + rel.split('?')[0]
      prefixed.search = rel.includes('?') ? rel.slice(rel.indexOf('?')) : ''
      candidates.push(prefixed)
      const rooted = new URL(rel, this.http.origin)
      if (rooted.href !== prefixed.href) candidates.push(rooted)
    }
    let last: HttpStatusError | undefined
    for (const u of candidates) {
      const res = await this.request(u, 'GET')
      this.log(`GET ${u.href} -> ${res.status} (${res.body.length} bytes)`)
      if (res.status >= 200 && res.status < 300) return res.body
      last = new HttpStatusError(res.status, `GET ${u.href}: HTTP ${res.status}`)
      if (res.status !== 404) break
    }
    throw last!
  }

  private async flushReports(): Promise<void> {
    const queue = this.pendingReports
    this.pendingReports = []
    for (const r of queue) {
      if (this.stopped) {
        this.pendingReports.push(r)
        continue
      }
      try {
        if (await this.authImage(r)) continue
      } catch (e) {
        this.log(`/authImage for ${r.phone} failed: ${errMsg(e)}`)
      }
      // Kept for the next poll (the face list will not repeat it once timestrap moved on), a few times at most.
      r.attempts = (r.attempts ?? 0) + 1
      if (r.attempts < MAX_REPORT_ATTEMPTS) this.pendingReports.push(r)
      else this.problem(`/authImage for ${r.phone} (state ${r.state}) given up after ${r.attempts} attempts`)
    }
  }

  /**
   * Section 6: parameters in the query string as its example (`/authImage?state=50&phone=…&iffile=1`) and again
   * in the body; the feature file is the multipart part `file`. iffile 1 = file sent, 2 = none.
   * communityId/deviceCode are added: the table names no device, yet the server must know which one judged (AMB udp #7).
   */
  private async authImage(r: PendingReport): Promise<boolean> {
    const fields: Record<string, string> = { phone: r.phone, state: r.state, iffile: r.feature ? '1' : '2', communityId: this.community, deviceCode: this.code }
    const payload = r.feature
      ? buildMultipart([
          ...Object.entries(fields).map(([name, data]) => ({ name, data })),
          { name: 'file', data: r.feature, filename: `${r.phone}.feature`, contentType: 'application/octet-stream' },
        ])
      : this.encodeBody(fields)
    const answer = await this.call(UDP_PATHS.authImage, payload, fields)
    // Section 6: 0000 received, 9999 failed.
    if (!this.ok(answer)) {
      this.problem(`/authImage for ${r.phone} answered code ${String(answer.code)}: ${str(answer.message) ?? ''}`)
      return false
    }
    this.events.authReports++
    return true
  }
}

/** A stand-in "人脸特征码" file: 512 bytes derived from the photo (deterministic). */
function featureOf(photo: Buffer): Buffer {
  const out = Buffer.alloc(512)
  Buffer.from('FEAT', 'latin1').copy(out, 0)
  let h = createHash('sha256').update(photo).digest()
  for (let o = 4; o < out.length; o += h.length) {
    h.copy(out, o)
    h = createHash('sha256').update(h).digest()
  }
  return out
}

/**
 * A simulated wsjson face terminal, written from the vendor document (protocols/ws-json.txt)
 * plus the wsjson parts of protocols/README.md and protocols/AMBIGUITIES.md — and from nothing
 * else. It deliberately shares no code with the wsjson driver/gateway: a simulator built on the
 * server's codec would confirm its misreadings.
 *
 * The device is a WebSocket *client* ("2.1 调用流程"): it connects to the server, registers
 * (code 205), heartbeats (206) at the interval the register answer gives, uploads events (207)
 * and answers the server's device-control commands (3.1: addUser, deleteUser, editUser,
 * selectUser, compareUser, queryEvent), each of which carries a commandId echoed in the answer.
 * "每次发送消息后,接收方需要有响应消息": every server command gets an answer, and every message the
 * device sends waits for the server's `{"command":"response",...}`.
 *
 * Where the document is silent or contradicts itself, the decision is a one-line comment that
 * names the AMBIGUITIES item (wsjson #n).
 */
import { createHash } from 'node:crypto'
import WebSocket from 'ws'

// ---------------------------------------------------------------------------------------------
// Public API.

export interface WsjsonSimulatorOptions {
  /** Server WebSocket URL, e.g. ws://127.0.0.1:8090/wsjson. */
  url: string
  sn: string
  /** PEM certificate(s) to trust besides the system's (`--ca F`): a gateway with a self-signed or private-CA certificate. */
  ca?: string
  /** Register `ip`; default: the local address of the connection. */
  ip?: string
  /** Register `mac`; default: 12 uppercase hex digits derived from the SN. */
  mac?: string
  /** Register `type` ("1 出口门禁, 2 入口门禁, 0 出入一体门禁"); default '0'. */
  type?: string
  /** Heartbeat interval used until the register answer gives one (ms); default 20000 (the document's example "interval":"20"). */
  heartbeatMs?: number
  /** Reconnect delay after a drop or a refused register, default 1000. */
  reconnectMs?: number
  /** How long the device waits for the server's answer to one of its messages before it drops the connection; default 10000. */
  replyTimeoutMs?: number
  /**
   * An event the server answers with an error stays in the outbox and is sent again (same eventid)
   * after this long, as a device that keeps every event until it is acknowledged; the document does
   * not say what a device does (only "每次发送消息后,接收方需要有响应消息"). Unset: the event is dropped
   * and accessEvent rejects.
   */
  retryRefusedEventsMs?: number
  /** addUser/editUser/compareUser images containing this ASCII marker are refused with 500 ("no face"); default 'NOFACE'. */
  invalidPhotoMarker?: string
  /** Close the connection (without answering or executing) when this command name arrives, once. */
  dropOnCommand?: string
  /** Refuse addUser unless all six fields of 4.1 are present (the table's "新增必传"); default false: only userId is required. */
  requireAllFields?: boolean
  /** The device clock's offset from UTC in minutes, for heartbeat `time` and event ids; default: the host's local zone. */
  utcOffsetMinutes?: number
  log?: (line: string) => void
}

export interface WsjsonEvents {
  /** Register messages (205) sent. */
  registers: number
  /** Heartbeat messages (206) sent. */
  heartbeats: number
  /** Server commands received, by command name (including a dropped one and refused ones). */
  commands: Record<string, number>
  /** Answers the device sent without a commandId (the server's message had none, or was not JSON). */
  repliesWithoutCommandId: number
  /** Events the server answered with an error (each sending counts). */
  eventsRefused: number
  /** The last answer the server gave to a register message, as received. */
  lastRegisterReply?: unknown
}

export interface WsjsonSimulator {
  readonly sn: string
  readonly connected: boolean
  readonly registered: boolean
  /** Interval the server assigned in its register answer (ms), if any. */
  readonly assignedHeartbeatMs?: number
  /** People stored on the device, by userId (copies; the six fields of 4.1, as strings). */
  users(): Map<string, Record<string, unknown>>
  readonly events: WsjsonEvents
  /** Push an access event (207 type 1); resolves when the server replied. Returns the event sent (`{eventid, type, data}`). */
  accessEvent(opts?: { userId?: string; img?: Buffer; door?: 0 | 1; time?: Date }): Promise<Record<string, unknown>>
  /** Enrol a person on the device itself (207 type 2). */
  enrollOnDevice(user: { userId: string; name: string; img?: Buffer }): Promise<void>
  /** Connect + register; resolves when registered (or refused by the server: then `registered` stays false and it retries after reconnectMs). */
  start(): Promise<void>
  stop(): Promise<void>
}

export function createWsjsonSimulator(opts: WsjsonSimulatorOptions): WsjsonSimulator {
  return new WsjsonDevice(opts)
}

// ---------------------------------------------------------------------------------------------
// Document constants ("4.2 响应参数").

export const WSJSON_CODE = {
  OK: '200',
  ERROR: '500',
  SELECT_USER: '203',
  COMPARE_USER: '204',
  REGISTER: '205',
  HEARTBEAT: '206',
  EVENT: '207',
  QUERY_EVENT: '208',
} as const

/** 207 `type`: "1:出入记录 2:设备主动新增". */
export const WSJSON_EVENT_TYPE = { ACCESS: '1', ENROL: '2' } as const

/** The six user fields of "4.1 设备控制参数". */
export const WSJSON_USER_FIELDS = ['user', 'userId', 'pwd', 'name', 'role', 'img'] as const

// ---------------------------------------------------------------------------------------------
// Helpers.

/** A valid 8x8 grey baseline JPEG; `comment` goes into a COM segment (makes every photo distinct). */
export function makeJpeg(comment?: string): Buffer {
  const b: number[] = [0xff, 0xd8]
  b.push(0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00) // APP0 JFIF
  if (comment !== undefined) {
    const c = Buffer.from(comment, 'latin1').subarray(0, 60000)
    b.push(0xff, 0xfe, (c.length + 2) >> 8, (c.length + 2) & 0xff, ...c)
  }
  b.push(0xff, 0xdb, 0x00, 0x43, 0x00, ...new Array<number>(64).fill(1)) // DQT
  b.push(0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00) // SOF0 8x8 grey
  b.push(0xff, 0xc4, 0x00, 0x14, 0x00, 1, ...new Array<number>(15).fill(0), 0x00) // DHT DC
  b.push(0xff, 0xc4, 0x00, 0x14, 0x10, 1, ...new Array<number>(15).fill(0), 0x00) // DHT AC
  b.push(0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00) // SOS
  b.push(0x3f, 0xff, 0xd9)
  return Buffer.from(b)
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0')

/** Wall-clock fields of `d` on a device whose clock runs at `offsetMin` from UTC (undefined: host local zone). */
function wallClock(d: Date, offsetMin: number | undefined): [number, number, number, number, number, number] {
  if (offsetMin === undefined) return [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()]
  const s = new Date(d.getTime() + offsetMin * 60_000)
  return [s.getUTCFullYear(), s.getUTCMonth() + 1, s.getUTCDate(), s.getUTCHours(), s.getUTCMinutes(), s.getUTCSeconds()]
}

/** Heartbeat `time` format of 3.2.2: "2023-12-25 15:47:30" (device wall clock, no zone: AMBIGUITIES wsjson #8). */
export function formatDeviceTime(d: Date, utcOffsetMinutes?: number): string {
  const [y, mo, da, h, mi, s] = wallClock(d, utcOffsetMinutes)
  return `${y}-${pad(mo)}-${pad(da)} ${pad(h)}:${pad(mi)}:${pad(s)}`
}

/** The document's eventid style "20240115113644" (yyyyMMddHHmmss, device wall clock). */
function compactTime(d: Date, utcOffsetMinutes?: number): string {
  const [y, mo, da, h, mi, s] = wallClock(d, utcOffsetMinutes)
  return `${y}${pad(mo)}${pad(da)}${pad(h)}${pad(mi)}${pad(s)}`
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
/** "所有字段为 string" in every table: numbers are read as their decimal text. */
const asStr = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined

/** Base64 image text → bytes; a `data:image/...;base64,` prefix is tolerated (the document only says "base64"). */
function decodeImage(s: string): Buffer {
  const comma = s.startsWith('data:') ? s.indexOf(',') : -1
  return Buffer.from(comma >= 0 ? s.slice(comma + 1) : s, 'base64')
}

class CommandError extends Error {}

interface PendingEvent {
  event: Record<string, unknown>
  resolve: (reply: Record<string, unknown>) => void
  reject: (e: Error) => void
}

type Inflight =
  | { kind: 'register'; timer: NodeJS.Timeout }
  | { kind: 'heartbeat'; timer: NodeJS.Timeout }
  | { kind: 'event'; pending: PendingEvent; timer: NodeJS.Timeout }

interface StoredUser {
  fields: Record<string, string>
  face?: Buffer
}

/** Events kept for queryEvent (3.1.6); older ones are forgotten. */
const EVENT_LOG_MAX = 10_000

// ---------------------------------------------------------------------------------------------
// The device.

class WsjsonDevice implements WsjsonSimulator {
  readonly sn: string
  readonly events: WsjsonEvents = { registers: 0, heartbeats: 0, commands: {}, repliesWithoutCommandId: 0, eventsRefused: 0 }

  private readonly url: string
  private readonly ca?: string
  private readonly ipOpt: string | undefined
  private readonly mac: string
  private readonly type: string
  private readonly heartbeatMs: number
  private readonly reconnectMs: number
  private readonly replyTimeoutMs: number
  private readonly retryRefusedMs: number | undefined
  /** Set while a refused event waits to be sent again. */
  private eventRetryTimer: NodeJS.Timeout | undefined
  private readonly noFace: Buffer
  private readonly dropOn: string | undefined
  private readonly requireAll: boolean
  private readonly utcOffset: number | undefined
  private readonly logFn: (line: string) => void

  private ws: WebSocket | undefined
  private localAddress: string | undefined
  private _connected = false
  private _registered = false
  private _assigned: number | undefined
  private stopped = false
  private startPromise: Promise<void> | undefined
  private startWaiters: (() => void)[] = []
  private reconnectTimer: NodeJS.Timeout | undefined
  private heartbeatTimer: NodeJS.Timeout | undefined
  private dropArmed: boolean

  /** AMBIGUITIES wsjson #7: the device's messages carry no correlation id, so one is in flight at a time and the next "response" answers it. */
  private inflight: Inflight | undefined
  private heartbeatDue = false
  /** Events not yet acknowledged; they survive reconnects (re-sent with the same eventid). */
  private readonly outbox: PendingEvent[] = []

  private readonly store = new Map<string, StoredUser>()
  private readonly eventLog = new Map<string, Record<string, unknown>>()
  private lastEventSecond = ''
  private eventSeq = 0

  constructor(opts: WsjsonSimulatorOptions) {
    const u = new URL(opts.url)
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error(`wsjson simulator: url must be ws:// or wss://, got ${opts.url}`)
    this.url = opts.url
    this.ca = opts.ca
    this.sn = opts.sn
    this.ipOpt = opts.ip
    this.mac = opts.mac ?? createHash('md5').update(`wsjson:${opts.sn}`).digest('hex').slice(0, 12).toUpperCase()
    this.type = opts.type ?? '0'
    this.heartbeatMs = Math.max(1, opts.heartbeatMs ?? 20_000)
    this.reconnectMs = Math.max(0, opts.reconnectMs ?? 1000)
    this.replyTimeoutMs = Math.max(1, opts.replyTimeoutMs ?? 10_000)
    this.retryRefusedMs = opts.retryRefusedEventsMs === undefined ? undefined : Math.max(0, opts.retryRefusedEventsMs)
    this.noFace = Buffer.from(opts.invalidPhotoMarker ?? 'NOFACE', 'latin1')
    this.dropOn = opts.dropOnCommand
    this.dropArmed = opts.dropOnCommand !== undefined
    this.requireAll = opts.requireAllFields ?? false
    this.utcOffset = opts.utcOffsetMinutes
    this.logFn = opts.log ?? (() => {})
  }

  get connected(): boolean {
    return this._connected
  }
  get registered(): boolean {
    return this._registered
  }
  get assignedHeartbeatMs(): number | undefined {
    return this._assigned
  }

  // -- public ---------------------------------------------------------------------------------

  users(): Map<string, Record<string, unknown>> {
    const m = new Map<string, Record<string, unknown>>()
    for (const [id, u] of this.store) m.set(id, { ...u.fields })
    return m
  }

  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error(`${this.sn}: simulator stopped`))
    if (this.startPromise) return this.startPromise
    this.startPromise = new Promise<void>((resolve) => this.startWaiters.push(resolve))
    this.connect()
    return this.startPromise
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.clearTimers()
    if (this.inflight) clearTimeout(this.inflight.timer)
    this.inflight = undefined
    for (const p of this.outbox.splice(0)) p.reject(new Error(`${this.sn}: simulator stopped`))
    this.settleStart()
    const ws = this.ws
    this.ws = undefined
    this._connected = false
    this._registered = false
    if (!ws || ws.readyState === WebSocket.CLOSED) return
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => ws.terminate(), 1000)
      force.unref()
      ws.once('close', () => {
        clearTimeout(force)
        resolve()
      })
      if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'stop')
      else ws.terminate()
    })
  }

  accessEvent(opts: { userId?: string; img?: Buffer; door?: 0 | 1; time?: Date } = {}): Promise<Record<string, unknown>> {
    if (this.stopped) return Promise.reject(new Error(`${this.sn}: simulator stopped`))
    const time = opts.time ?? new Date()
    const eventid = this.newEventId(time)
    // Register `type` 1 = exit terminal, 2 = entry terminal: its default door follows ("door": 0 入门, 1 出门).
    const door = opts.door ?? (this.type === '1' ? 1 : 0)
    // No userId given: the first person stored, else '' (a stranger; the document has no stranger event).
    const userId = opts.userId ?? this.store.keys().next().value ?? ''
    const img = opts.img ?? makeJpeg(`wsjson ${this.sn} ${eventid}`)
    // The document's 207 example has no time field; the time is only in the eventid (a device sends nothing more).
    const event = { eventid, type: WSJSON_EVENT_TYPE.ACCESS, data: { userId, img: img.toString('base64'), door: String(door) } }
    return this.upload(event).then(() => event)
  }

  async enrollOnDevice(user: { userId: string; name: string; img?: Buffer }): Promise<void> {
    if (this.stopped) throw new Error(`${this.sn}: simulator stopped`)
    const face = user.img ?? makeJpeg(`wsjson ${this.sn} face ${user.userId}`)
    // 207 example 2 sends the six fields of 4.1; enrolment on the device sets no login name or password of its own.
    const fields = { user: user.userId, userId: user.userId, pwd: '', name: user.name, role: '0', img: face.toString('base64') }
    this.store.set(user.userId, { fields, face })
    const event = { eventid: this.newEventId(new Date()), type: WSJSON_EVENT_TYPE.ENROL, data: { ...fields } }
    await this.upload(event)
  }

  // -- connection ------------------------------------------------------------------------------

  private log(line: string): void {
    this.logFn(`wsjson ${this.sn}: ${line}`)
  }

  private clearTimers(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer)
    if (this.eventRetryTimer) clearTimeout(this.eventRetryTimer)
    this.reconnectTimer = undefined
    this.heartbeatTimer = undefined
    this.eventRetryTimer = undefined
  }

  private settleStart(): void {
    for (const w of this.startWaiters.splice(0)) w()
  }

  private connect(): void {
    if (this.stopped) return
    this.reconnectTimer = undefined
    const ws = new WebSocket(this.url, { handshakeTimeout: this.replyTimeoutMs, ...(this.ca ? { ca: this.ca } : {}) })
    this.ws = ws
    this.localAddress = undefined
    ws.on('upgrade', (res) => {
      this.localAddress = res.socket.localAddress
    })
    ws.on('open', () => {
      if (this.ws !== ws) return
      this._connected = true
      this.log(`connected to ${this.url}`)
      this.sendRegister()
    })
    ws.on('message', (data, isBinary) => {
      if (this.ws !== ws) return
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8')
      if (isBinary) this.log('binary frame read as UTF-8 text (the document uses "JSON格式字符串")')
      this.onMessage(ws, text)
    })
    ws.on('error', (e) => {
      if (this.ws === ws) this.log(`connection error: ${e.message}`)
    })
    ws.on('close', (code) => {
      if (this.ws !== ws) return
      this.onClose(code)
    })
  }

  private onClose(code: number): void {
    const wasConnected = this._connected
    this.ws = undefined
    this._connected = false
    this._registered = false
    this.heartbeatDue = false
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer)
    this.heartbeatTimer = undefined
    // An event in flight stays in the outbox and is sent again (same eventid) after the next register.
    if (this.inflight) clearTimeout(this.inflight.timer)
    this.inflight = undefined
    if (this.stopped) return
    this.log(`${wasConnected ? `connection closed (${code})` : 'could not connect'}; reconnecting in ${this.reconnectMs} ms`)
    this.reconnectTimer = setTimeout(() => this.connect(), this.reconnectMs)
  }

  private drop(reason: string): void {
    this.log(`dropping the connection: ${reason}`)
    this.ws?.terminate()
  }

  private send(ws: WebSocket, msg: Record<string, unknown>): void {
    if (ws.readyState !== WebSocket.OPEN) return
    ws.send(JSON.stringify(msg))
  }

  // -- device → server (205, 206, 207) --------------------------------------------------------

  /** The register `ip`: the option, else the local address of the connection (what a device on that network reports). */
  private localIp(): string {
    if (this.ipOpt) return this.ipOpt
    const a = this.localAddress ?? '127.0.0.1'
    return a.startsWith('::ffff:') ? a.slice(7) : a
  }

  private sendUpstream(kind: 'register' | 'heartbeat', msg: Record<string, unknown>): void
  private sendUpstream(kind: 'event', msg: Record<string, unknown>, pending: PendingEvent): void
  private sendUpstream(kind: Inflight['kind'], msg: Record<string, unknown>, pending?: PendingEvent): void {
    const ws = this.ws
    if (!ws || ws.readyState !== WebSocket.OPEN) return
    const timer = setTimeout(() => {
      // A lost answer breaks the in-order matching (wsjson #7): resynchronise by reconnecting.
      this.drop(`no answer to ${kind} within ${this.replyTimeoutMs} ms`)
    }, this.replyTimeoutMs)
    this.inflight = kind === 'event' ? { kind, pending: pending as PendingEvent, timer } : { kind, timer }
    this.send(ws, msg)
  }

  private sendRegister(): void {
    if (!this.ws) return
    this.events.registers++
    // 3.2.1 门禁注册: {"code":"205","data":{"ip","mac","sn","type"}}, every value a string.
    this.sendUpstream('register', { code: WSJSON_CODE.REGISTER, data: { ip: this.localIp(), mac: this.mac, sn: this.sn, type: this.type } })
  }

  private upload(event: Record<string, unknown>): Promise<void> {
    this.eventLog.set(String(event.eventid), event)
    if (this.eventLog.size > EVENT_LOG_MAX) this.eventLog.delete(this.eventLog.keys().next().value as string)
    return new Promise<void>((resolve, reject) => {
      this.outbox.push({ event, resolve: () => resolve(), reject })
      this.pump()
    })
  }

  /** Sends the next upstream message if none is waiting for its answer: a due heartbeat first, then events in order. */
  private pump(): void {
    if (!this._registered || this.inflight || !this.ws || this.ws.readyState !== WebSocket.OPEN) return
    if (this.heartbeatDue) {
      this.heartbeatDue = false
      this.events.heartbeats++
      this.sendUpstream('heartbeat', { code: WSJSON_CODE.HEARTBEAT, data: { time: formatDeviceTime(new Date(), this.utcOffset) } })
      return
    }
    const next = this.eventRetryTimer ? undefined : this.outbox[0]
    if (next) this.sendUpstream('event', { code: WSJSON_CODE.EVENT, data: next.event }, next)
  }

  private scheduleHeartbeat(): void {
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer)
    const ms = this._assigned ?? this.heartbeatMs
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeatTimer = undefined
      if (!this._registered || this.stopped) return
      this.heartbeatDue = true
      this.pump()
      this.scheduleHeartbeat()
    }, ms)
  }

  /** The server's answer to the device's message in flight. */
  private onResponse(msg: Record<string, unknown>): void {
    const inflight = this.inflight
    if (!inflight) {
      this.log(`answer with nothing waiting for one, ignored: ${JSON.stringify(msg).slice(0, 200)}`)
      return
    }
    clearTimeout(inflight.timer)
    this.inflight = undefined
    // AMBIGUITIES wsjson #3: the answer's body is `content` in 3.2's tables and examples, `data` in 2.3's table: read either (or a flat answer).
    const body = isObj(msg.content) ? msg.content : isObj(msg.data) ? msg.data : msg
    const code = asStr(body.code) ?? asStr(msg.code)
    switch (inflight.kind) {
      case 'register': {
        this.events.lastRegisterReply = msg
        if (code !== WSJSON_CODE.OK) {
          // CLI.md: an unknown device's register is answered with code 500. Stay unregistered, reconnect later.
          this.log(`register refused (code ${code ?? 'none'}): retrying in ${this.reconnectMs} ms`)
          this.settleStart()
          this.ws?.close(1000, 'register refused')
          return
        }
        // 3.2.1 example "interval":"20" = "设置心跳间隔20s": seconds, as a string; fractions are accepted (tests use them).
        const sec = Number(asStr(body.interval) ?? NaN)
        if (Number.isFinite(sec) && sec > 0) this._assigned = Math.max(1, Math.round(sec * 1000))
        else if (body.interval !== undefined) this.log(`register answer interval ${JSON.stringify(body.interval)} unusable: keeping ${this._assigned ?? this.heartbeatMs} ms`)
        this._registered = true
        this.log(`registered; heartbeat every ${this._assigned ?? this.heartbeatMs} ms`)
        this.scheduleHeartbeat()
        this.settleStart()
        break
      }
      case 'heartbeat':
        if (code !== WSJSON_CODE.OK) this.log(`heartbeat answered with code ${code ?? 'none'}`)
        break
      case 'event': {
        const ev = inflight.pending.event
        if (code !== WSJSON_CODE.OK) this.events.eventsRefused++
        if (code !== WSJSON_CODE.OK && this.retryRefusedMs !== undefined) {
          this.log(`event ${String(ev.eventid)} answered with code ${code ?? 'none'}: sent again in ${this.retryRefusedMs} ms`)
          this.eventRetryTimer = setTimeout(() => {
            this.eventRetryTimer = undefined
            this.pump()
          }, this.retryRefusedMs)
          break
        }
        const i = this.outbox.indexOf(inflight.pending)
        if (i >= 0) this.outbox.splice(i, 1)
        if (code === WSJSON_CODE.OK) inflight.pending.resolve(msg)
        else inflight.pending.reject(new Error(`${this.sn}: event ${String(ev.eventid)} answered with code ${code ?? 'none'}: ${JSON.stringify(msg).slice(0, 200)}`))
        break
      }
    }
    this.pump()
  }

  // -- server → device ------------------------------------------------------------------------

  private onMessage(ws: WebSocket, text: string): void {
    let msg: unknown
    try {
      msg = JSON.parse(text)
    } catch {
      msg = undefined
    }
    if (!isObj(msg)) {
      this.log(`not a JSON object, answered 500: ${text.slice(0, 200)}`)
      this.reply(ws, undefined, { code: WSJSON_CODE.ERROR, data: 'invalid JSON' })
      return
    }
    const command = asStr(msg.command)
    // 3.2's answers are {"command":"response","content":{...}}; a bare {"code":...} (2.3's response format, wsjson #3) is read as an answer too.
    if (command === 'response' || (command === undefined && msg.code !== undefined)) {
      this.onResponse(msg)
      return
    }
    if (command === undefined || command === '') {
      this.log(`message without a command, answered 500: ${text.slice(0, 200)}`)
      this.reply(ws, msg.commandId, { code: WSJSON_CODE.ERROR, data: 'missing command' })
      return
    }
    this.events.commands[command] = (this.events.commands[command] ?? 0) + 1
    if (this.dropArmed && command === this.dropOn) {
      this.dropArmed = false
      this.drop(`dropOnCommand ${command} (not executed, not answered)`)
      return
    }
    // "[3.1设备控制]下所有命令都应有commandId参数": a command without one cannot be matched to its answer, so it is refused, not executed.
    if (msg.commandId === undefined || msg.commandId === null || msg.commandId === '') {
      this.log(`${command} without commandId, answered 500`)
      this.reply(ws, undefined, { code: WSJSON_CODE.ERROR, data: 'missing commandId' })
      return
    }
    let content: Record<string, unknown> = {}
    // The tables type `content` as "string": a JSON text is accepted as well as an object; absent ("非必传") means no parameters.
    if (isObj(msg.content)) content = msg.content
    else if (typeof msg.content === 'string' && msg.content.trim() !== '') {
      try {
        const parsed: unknown = JSON.parse(msg.content)
        if (isObj(parsed)) content = parsed
        else return this.reply(ws, msg.commandId, { code: WSJSON_CODE.ERROR, data: 'content is not a JSON object' })
      } catch {
        return this.reply(ws, msg.commandId, { code: WSJSON_CODE.ERROR, data: 'content is not JSON' })
      }
    }
    let answer: Record<string, unknown>
    try {
      answer = this.execute(command, content)
    } catch (e) {
      if (!(e instanceof CommandError)) this.log(`internal error in ${command}: ${(e as Error).stack ?? String(e)}`)
      answer = { code: WSJSON_CODE.ERROR, data: e instanceof CommandError ? e.message : 'internal error' }
    }
    this.log(`${command} ${String(msg.commandId)} -> ${String(answer.code)}${answer.code === WSJSON_CODE.ERROR ? ` (${String(answer.data)})` : ''}`)
    this.reply(ws, msg.commandId, answer)
  }

  private reply(ws: WebSocket, commandId: unknown, answer: Record<string, unknown>): void {
    if (commandId === undefined || commandId === null || commandId === '') {
      this.events.repliesWithoutCommandId++
      this.send(ws, answer)
      return
    }
    // "将处理的命令ID返回给站端": echoed exactly as received.
    this.send(ws, { ...answer, commandId })
  }

  /** A result-bearing answer. AMBIGUITIES wsjson #3: the tables name the field `data`, the examples `content`: both are sent, same value. */
  private result(code: string, value: unknown): Record<string, unknown> {
    return { code, content: value, data: value }
  }

  private execute(command: string, c: Record<string, unknown>): Record<string, unknown> {
    switch (command) {
      case 'addUser':
        return this.addUser(c)
      case 'editUser':
        return this.editUser(c)
      case 'deleteUser':
        return this.deleteUser(c)
      case 'selectUser':
        return this.selectUser(c)
      case 'compareUser':
        return this.compareUser(c)
      case 'queryEvent':
        return this.queryEvent(c)
      default:
        // wsjson #9: only 500 is documented as an error code; it is used for every refusal.
        throw new CommandError(`unknown command ${command}`)
    }
  }

  /** Checks an image field: base64 that decodes to something, without the no-face marker. */
  private face(v: unknown): Buffer {
    const s = asStr(v)
    if (s === undefined) throw new CommandError('img must be a base64 string')
    const b = decodeImage(s)
    if (b.length === 0) throw new CommandError('img is not base64 image data')
    if (b.includes(this.noFace)) throw new CommandError('no face')
    return b
  }

  private checkRole(v: string | undefined): void {
    // 4.1 role "0:普通用户 1:管理员".
    if (v !== undefined && v !== '0' && v !== '1') throw new CommandError(`invalid role ${v} (0 user, 1 admin)`)
  }

  private addUser(c: Record<string, unknown>): Record<string, unknown> {
    const userId = asStr(c.userId)
    if (!userId) throw new CommandError('userId required')
    // AMBIGUITIES wsjson #6: the table makes all six fields "新增必传"; by default only the primary key is required (others default), requireAllFields restores the table.
    if (this.requireAll) {
      const missing = WSJSON_USER_FIELDS.filter((f) => asStr(c[f]) === undefined || (f === 'img' && asStr(c[f]) === ''))
      if (missing.length) throw new CommandError(`missing ${missing.join(', ')}`)
    }
    const role = asStr(c.role)
    this.checkRole(role)
    const imgText = asStr(c.img)
    const face = imgText ? this.face(imgText) : undefined
    // Adding an existing userId replaces that person (the document is silent; this also makes the editUser example, which sends addUser, work — wsjson #2).
    const fields: Record<string, string> = {
      user: asStr(c.user) ?? userId,
      userId,
      pwd: asStr(c.pwd) ?? '',
      name: asStr(c.name) ?? '',
      role: role ?? '0',
      img: imgText && face ? imgText : '',
    }
    this.store.set(userId, face ? { fields, face } : { fields })
    return { code: WSJSON_CODE.OK, data: '' }
  }

  private editUser(c: Record<string, unknown>): Record<string, unknown> {
    const userId = asStr(c.userId)
    if (!userId) throw new CommandError('userId required')
    const cur = this.store.get(userId)
    if (!cur) throw new CommandError(`no user ${userId}`)
    const role = asStr(c.role)
    this.checkRole(role)
    const imgText = asStr(c.img)
    const face = imgText ? this.face(imgText) : undefined
    // Fields given replace the stored ones, fields left out are kept (3.1.3 "修改指定用户信息").
    const fields = { ...cur.fields }
    for (const f of WSJSON_USER_FIELDS) {
      if (f === 'userId' || f === 'img') continue
      const v = asStr(c[f])
      if (v !== undefined) fields[f] = v
    }
    if (face && imgText) fields.img = imgText
    this.store.set(userId, { fields, ...(face ? { face } : cur.face ? { face: cur.face } : {}) })
    return { code: WSJSON_CODE.OK, data: '' }
  }

  private deleteUser(c: Record<string, unknown>): Record<string, unknown> {
    const userId = asStr(c.userId)
    // The example also sends `name`; the key is userId alone ("唯一主键").
    if (!userId) throw new CommandError('userId required')
    if (!this.store.delete(userId)) throw new CommandError(`no user ${userId}`)
    return { code: WSJSON_CODE.OK, data: '' }
  }

  private selectUser(c: Record<string, unknown>): Record<string, unknown> {
    // "不传递查询参数返回所有用户信息"; given parameters (userId, name) must all match. No match: 203 with an empty list.
    const userId = asStr(c.userId)
    const name = asStr(c.name)
    const list: Record<string, string>[] = []
    for (const u of this.store.values()) {
      if (userId && u.fields.userId !== userId) continue
      if (name && u.fields.name !== name) continue
      list.push({ ...u.fields })
    }
    return this.result(WSJSON_CODE.SELECT_USER, list)
  }

  private compareUser(c: Record<string, unknown>): Record<string, unknown> {
    if (c.img === undefined || c.img === '') throw new CommandError('img required')
    const probe = this.face(c.img)
    // The simulator's "face recognition": the same image bytes as a stored person's photo.
    let found = false
    for (const u of this.store.values()) if (u.face && u.face.equals(probe)) found = true
    // AMBIGUITIES wsjson #5: the field is spelled `exit` and means "exists": "1" yes, "0" no.
    return this.result(WSJSON_CODE.COMPARE_USER, { exit: found ? '1' : '0' })
  }

  private queryEvent(c: Record<string, unknown>): Record<string, unknown> {
    const eventid = asStr(c.eventid) ?? asStr(c.eventId)
    if (!eventid) throw new CommandError('eventid required')
    const ev = this.eventLog.get(eventid)
    if (!ev) throw new CommandError(`no event ${eventid}`)
    // AMBIGUITIES wsjson #4: 4.2 calls 207 "查询命令正常响应", but 3.1.6's example answers 208 and 207 is the event upload: 208 it is.
    return this.result(WSJSON_CODE.QUERY_EVENT, ev)
  }

  /**
   * eventid "单设备应保持唯一", example 20240115113644 (the event's yyyyMMddHHmmss on the device
   * clock). A second event in the same second gets a 3-digit sequence appended, so the first 14
   * digits still give the time.
   */
  private newEventId(time: Date): string {
    const base = compactTime(time, this.utcOffset)
    let id = base
    if (base === this.lastEventSecond || this.eventLog.has(base)) {
      do {
        id = `${base}${pad(++this.eventSeq, 3)}`
      } while (this.eventLog.has(id))
    } else {
      this.eventSeq = 0
    }
    this.lastEventSecond = base
    return id
  }
}

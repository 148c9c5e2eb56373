/**
 * wsjson wire format (ws-json.txt): JSON text frames over one WebSocket the device opens to us.
 * Pure functions only — no sockets, no clock, no files — so every quirk of the document is
 * decided here once, with a one-line comment naming its AMBIGUITIES.md item (wsjson #n).
 *
 * Device → server: register `{"code":"205","data":{ip,mac,sn,type}}`, heartbeat
 * `{"code":"206","data":{time}}`, event `{"code":"207","data":{eventid,type,data}}`, and answers
 * to our commands `{"code":"200|500|203|204|208", "data"|"content": …, "commandId"}`.
 * Server → device: `{"command":"response","content":{"code","data"[,"interval"]}}` for each of
 * the device's messages, and commands `{"commandId","command","content"}` (3.1).
 */
import type { PersonInfo, Role } from '../../types/driver.js'
import type { SpoolRecord } from '../../types/gateway.js'
import { deviceWallToEpoch, isoWithOffset, type DeviceClock } from '../../util/time.js'

export type Json = Record<string, unknown>

/** AMBIGUITIES wsjson #1: 2.2 调用地址 is "待补充" (to be supplied): CLI.md puts it at /wsjson on the gateway's HTTP port. */
export const WS_PATH = '/wsjson'

/** 4.2 响应参数. */
export const CODE = {
  ok: '200',
  error: '500',
  selectUser: '203',
  compareUser: '204',
  register: '205',
  heartbeat: '206',
  event: '207',
  queryEvent: '208',
} as const

/** The device-control commands of 3.1. */
export type WireCommand = 'addUser' | 'editUser' | 'deleteUser' | 'selectUser' | 'compareUser' | 'queryEvent'

/** Codes a device answers a command with; anything else in an answer is a refusal (AMBIGUITIES wsjson #9). */
const ANSWER_CODES = new Set<string>([CODE.ok, CODE.error, CODE.selectUser, CODE.compareUser, CODE.queryEvent])

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** "所有字段为 string": numbers (and booleans) are read as their text; other values are absent. */
export function str(v: unknown): string | undefined {
  if (typeof v === 'string') return v
  if (typeof v === 'number' && Number.isFinite(v)) return String(v)
  if (typeof v === 'boolean') return v ? '1' : '0'
  return undefined
}

/** The tables type `content`/`data` as "string": a JSON text is read as the object or list it holds. */
function unwrap(v: unknown): unknown {
  if (typeof v !== 'string') return v
  const t = v.trim()
  if (!(t.startsWith('{') || t.startsWith('['))) return v
  try {
    return JSON.parse(t) as unknown
  } catch {
    return v
  }
}

/** The payload of a device message: the tables say `data`, the examples `content` (AMBIGUITIES wsjson #3): either, `content` first. */
export function bodyOf(msg: Json): unknown {
  const c = unwrap(msg.content)
  if (c !== undefined && c !== null && c !== '') return c
  return unwrap(msg.data)
}

// ---- device → server ----------------------------------------------------------------------------

export interface RegisterInfo {
  sn: string
  ip: string
  mac: string
  /** "type:1出口门禁 2:入口门禁 0:出入一体门禁". */
  type: string
}

export interface DeviceEvent {
  eventid: string
  /** "1:出入记录 2:设备主动新增". */
  type: string
  data: Json
  /** The event carried no `data` block (or one without userId): fetch it with queryEvent. */
  incomplete: boolean
}

export interface Answer {
  code: string
  commandId?: string
  /** The answer's payload (`content` or `data`, AMBIGUITIES wsjson #3). */
  body: unknown
  /** True for the codes that mean the command was carried out. */
  ok: boolean
  /** The device's reason, for a refusal. */
  reason: string
}

export type Frame =
  | { kind: 'register'; info: RegisterInfo; raw: Json }
  | { kind: 'heartbeat'; time?: string }
  | { kind: 'event'; event: DeviceEvent }
  | { kind: 'answer'; answer: Answer }
  /** `reply`: whether the document lets us answer it (with a 500 response). */
  | { kind: 'bad'; reason: string; reply: boolean }

/** Reads one text frame from a device. Never throws. */
export function parseFrame(text: string): Frame {
  let msg: unknown
  try {
    msg = JSON.parse(text)
  } catch {
    return { kind: 'bad', reason: 'not JSON', reply: true }
  }
  if (!isObject(msg)) return { kind: 'bad', reason: 'not a JSON object', reply: true }
  // answers shaped like our own responses ({"command":"response","content":{"code":…}}) are read too (AMBIGUITIES wsjson #3)
  const inner = isObject(msg.content) ? msg.content : undefined
  const code = str(msg.code) ?? (msg.command === 'response' ? str(inner?.code) : undefined)
  const commandId = str(msg.commandId) || undefined
  if (commandId !== undefined) {
    // 4.2 calls 207 "查询命令正常响应" while 3.2 uses it for event uploads (AMBIGUITIES wsjson #4): with a commandId it answers a command
    if (code === undefined) return { kind: 'answer', answer: { code: '', commandId, body: bodyOf(msg), ok: false, reason: 'the device answered without a code' } }
    return { kind: 'answer', answer: answerOf(msg, code, commandId) }
  }
  switch (code) {
    case CODE.register: {
      const d = unwrap(msg.data ?? msg.content)
      if (!isObject(d)) return { kind: 'bad', reason: 'register (205) without a data object', reply: true }
      const sn = (str(d.sn) ?? '').trim()
      if (!sn) return { kind: 'bad', reason: 'register (205) without sn', reply: true }
      return { kind: 'register', info: { sn, ip: str(d.ip) ?? '', mac: str(d.mac) ?? '', type: str(d.type) ?? '' }, raw: d }
    }
    case CODE.heartbeat: {
      const d = unwrap(msg.data ?? msg.content)
      return { kind: 'heartbeat', time: isObject(d) ? str(d.time) : undefined }
    }
    case CODE.event: {
      const e = parseEvent(unwrap(msg.data ?? msg.content))
      return 'error' in e ? { kind: 'bad', reason: e.error, reply: true } : { kind: 'event', event: e }
    }
    case undefined:
      return { kind: 'bad', reason: 'no code', reply: true }
    default:
      // an answer without its commandId (AMBIGUITIES wsjson #7: the document's device messages carry none): the command in flight
      if (ANSWER_CODES.has(code)) return { kind: 'answer', answer: answerOf(msg, code, undefined) }
      return { kind: 'bad', reason: `unknown code ${code}`, reply: true }
  }
}

function answerOf(msg: Json, code: string, commandId: string | undefined): Answer {
  const body = bodyOf(msg)
  // 207 as an answer is "查询命令正常响应" (AMBIGUITIES wsjson #4); only 500 is a documented error (AMBIGUITIES wsjson #9), any other code is a refusal too
  const ok = code === CODE.ok || code === CODE.selectUser || code === CODE.compareUser || code === CODE.queryEvent || code === CODE.event
  return { code, commandId, body, ok, reason: ok ? '' : reasonOf(msg, code) }
}

/** The device's words for a refusal: `data`/`content` text, or a msg/message/reason field, else the code. */
export function reasonOf(msg: Json, code: string): string {
  for (const v of [msg.data, msg.content, msg.msg, msg.message, msg.reason]) {
    const s = str(v)
    if (s && s.trim()) return s.trim()
    if (isObject(v)) {
      for (const k of ['msg', 'message', 'reason', 'error', 'data']) {
        const t = str(v[k])
        if (t && t.trim()) return t.trim()
      }
    }
  }
  return code ? `the device answered code ${code}` : 'the device answered without a code'
}

/** A 207 event body (3.2.1 推送示例). */
export function parseEvent(v: unknown): DeviceEvent | { error: string } {
  if (!isObject(v)) return { error: 'event (207) without a data object' }
  const eventid = (str(v.eventid) ?? str(v.eventId) ?? '').trim()
  if (!eventid) return { error: 'event (207) without eventid' }
  const type = str(v.type) ?? ''
  const data = unwrap(v.data)
  const ok = isObject(data)
  return { eventid, type, data: ok ? data : {}, incomplete: !ok || (type !== '2' && str(data.userId) === undefined) }
}

// ---- server → device ----------------------------------------------------------------------------

/** Our answer to one of the device's messages (3.2: `command: response`, the reply in `content`). */
export function response(code: typeof CODE.ok | typeof CODE.error, data = '', extra: Json = {}): Json {
  return { command: 'response', content: { code, ...extra, data } }
}

/** 3.2.1: the register answer carries the heartbeat interval in seconds, as a string ("interval":"20"). */
export function registerAnswer(heartbeatSeconds: number): Json {
  return response(CODE.ok, '', { interval: String(heartbeatSeconds) })
}

/** A device-control command (3.1). */
export function commandFrame(commandId: string, command: WireCommand, content: Json): Json {
  return { commandId, command, content }
}

/** The six user fields of 4.1, all strings. */
export interface UserFields {
  user: string
  userId: string
  pwd: string
  name: string
  role: string
  img: string
}

export const ROLE_CODE: Readonly<Record<'user' | 'admin', string>> = { user: '0', admin: '1' }

/**
 * addUser content. All six fields are "新增必传" (AMBIGUITIES wsjson #6): every key is sent, an empty string
 * where doorctl has no value (no photo, no password), and a device that insists on a value
 * refuses that person with its own reason. `user` (a login name) has no CSV column: the one the
 * device already has is kept, else the person id is used (unique, like a login name must be).
 */
export function addUserContent(p: { id: string; name?: string; password?: string; role?: Role }, imgBase64: string, knownUser?: string): UserFields {
  return {
    user: knownUser || p.id,
    userId: p.id,
    pwd: p.password ?? '',
    name: p.name ?? '',
    role: p.role === 'admin' ? ROLE_CODE.admin : ROLE_CODE.user,
    img: imgBase64,
  }
}

/**
 * editUser content: the document's editUser example sends `addUser` (AMBIGUITIES wsjson #2); we send the
 * command its section and table name, `editUser`, with the same six fields, minus those we
 * have no value for (an empty `img` or `pwd` would erase what the device has).
 */
export function editUserContent(add: UserFields): Json {
  const c: Json = { ...add }
  if (!add.img) delete c.img
  if (!add.pwd) delete c.pwd
  return c
}

/** editUser content that only sets the photo (face enroll), with what we know of the person so nothing is blanked. */
export function faceContent(id: string, imgBase64: string, known?: { name?: string; user?: string; role?: string }): Json {
  const c: Json = { userId: id, img: imgBase64 }
  if (known?.user) c.user = known.user
  if (known?.name) c.name = known.name
  if (known?.role) c.role = known.role
  return c
}

export function deleteUserContent(id: string, name?: string): Json {
  // the example sends userId and name; userId is the key ("唯一主键"), name only when we know it
  return name ? { userId: id, name } : { userId: id }
}

/** "不传递查询参数返回所有用户信息": no parameters lists everyone. */
export function selectAllContent(): Json {
  return {}
}

export function compareContent(imgBase64: string): Json {
  return { img: imgBase64 }
}

export function queryEventContent(eventid: string): Json {
  return { eventid }
}

// ---- answers ------------------------------------------------------------------------------------

/**
 * A refusal that means "this userId is already there" (the document defines no such answer: only
 * 500 with a text, AMBIGUITIES wsjson #9), so add-or-update can fall back to editUser.
 */
export function isExistsReason(reason: string): boolean {
  if (/不存在|not\s+(?:\w+\s+)?exist|n't\s+exist|no\s+such|not\s+found|无此|没有/i.test(reason)) return false
  return /already|exist|duplicat|repeat|已存在|存在|重复|已注册|已添加/i.test(reason)
}

/** A refusal that means "no such user" (a delete that was already done before a reconnect). */
export function isNotFoundReason(reason: string): boolean {
  return /不存在|not\s+(?:\w+\s+)?exist|n't\s+exist|no\s+such|not\s+found|无此|没有|no user/i.test(reason)
}

/** A user object as selectUser (203) or an enrolment event (207 type 2) carries it. */
export interface DeviceUser {
  userId: string
  user: string
  name: string
  role: string
  hasPassword: boolean
  hasPhoto: boolean
}

export function deviceUser(v: unknown): DeviceUser | undefined {
  if (!isObject(v)) return undefined
  const userId = (str(v.userId) ?? str(v.userid) ?? '').trim()
  if (!userId) return undefined
  return {
    userId,
    user: str(v.user) ?? '',
    name: str(v.name) ?? '',
    role: str(v.role) ?? '',
    hasPassword: (str(v.pwd) ?? '') !== '',
    hasPhoto: (str(v.img) ?? '').trim() !== '',
  }
}

/** selectUser's 203 answer: a list of users (in `content` or `data`, AMBIGUITIES wsjson #3; a wrapped list or a single user accepted). */
export function parseUserList(raw: unknown): DeviceUser[] | { error: string } {
  const body = unwrap(raw)
  let list: unknown = body
  if (isObject(body)) {
    const inner = ['users', 'list', 'data', 'content', 'user'].map((k) => unwrap(body[k])).find((x) => Array.isArray(x))
    list = inner ?? (deviceUser(body) ? [body] : [])
  }
  if (body === '' || body === undefined || body === null) list = []
  if (!Array.isArray(list)) return { error: 'selectUser answer without a list of users' }
  return list.map(deviceUser).filter((u): u is DeviceUser => u !== undefined)
}

export function roleOf(code: string): Role | '' {
  return code === ROLE_CODE.admin ? 'admin' : code === ROLE_CODE.user ? 'user' : ''
}

/** A listed user as the CLI's PersonInfo, epoch-ms dates (JSON in the queue): no card, phone, department or validity in 4.1. */
export function personInfoJson(u: DeviceUser, enrolledOnDevice?: number): Json {
  const extras: PersonInfo['extras'] = { user: u.user, password_set: u.hasPassword }
  if (enrolledOnDevice !== undefined) extras.enrolled_on_device = isoWithOffset(new Date(enrolledOnDevice))
  return { id: u.userId, name: u.name, card: '', phone: '', department: '', role: roleOf(u.role), hasPhoto: u.hasPhoto, extras }
}

/** compareUser's 204 answer: `exit` is how the document spells "exists" (AMBIGUITIES wsjson #5); `exist`/`exists` accepted too. */
export function parseCompare(body: unknown): boolean | { error: string } {
  const b = isObject(body) ? body : undefined
  const v = b ? (b.exit ?? b.exist ?? b.exists) : undefined
  const s = str(v)
  if (s === undefined) return { error: 'compareUser answer without exit (1 = the face is enrolled, 0 = not)' }
  if (s === '1' || s.toLowerCase() === 'true') return true
  if (s === '0' || s.toLowerCase() === 'false') return false
  return { error: `compareUser answer with exit "${s}" (expected 1 or 0)` }
}

/** queryEvent's 208 answer: the event itself (`eventid`, `type`, `data`). */
export function parseQueriedEvent(body: unknown): DeviceEvent | { error: string } {
  return parseEvent(body)
}

// ---- images -------------------------------------------------------------------------------------

/** Base64 text → bytes: plain base64 as the document shows it, a `data:image/…;base64,` prefix tolerated. */
export function decodeImage(text: string | undefined): Buffer | undefined {
  if (!text) return undefined
  const t = text.trim()
  const comma = t.startsWith('data:') ? t.indexOf(',') : -1
  const b = Buffer.from(comma >= 0 ? t.slice(comma + 1) : t, 'base64')
  return b.length > 0 ? b : undefined
}

/** Bytes → the plain base64 the examples show ("img":"base64....."): no `data:` prefix. */
export function encodeImage(data: Buffer): string {
  return data.toString('base64')
}

// ---- time ---------------------------------------------------------------------------------------

type Wall = [number, number, number, number, number, number]

/** "2023-12-25 15:47:30" (3.2.2), also with `T` or `/`: the device's wall clock, no zone (AMBIGUITIES wsjson #8). */
export function parseWallClock(text: string | undefined): Wall | undefined {
  const m = /^\s*(\d{4})[-/](\d{1,2})[-/](\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?\s*$/.exec(text ?? '')
  return m ? valid([+m[1], +m[2], +m[3], +m[4], +m[5], m[6] ? +m[6] : 0]) : undefined
}

/** The eventid style "20240115113644": yyyyMMddHHmmss of the device clock, possibly followed by more digits. */
export function eventIdTime(eventid: string): Wall | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})\d*$/.exec(eventid)
  return m ? valid([+m[1], +m[2], +m[3], +m[4], +m[5], +m[6]]) : undefined
}

function valid(w: Wall): Wall | undefined {
  const [y, mo, d, h, mi, s] = w
  if (y < 2000 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return undefined
  const t = new Date(Date.UTC(y, mo - 1, d))
  return t.getUTCDate() === d ? w : undefined
}

/**
 * Epoch ms of a device wall-clock time (wsjson #8: no zone): in the device's --tz zone (DST-correct),
 * else at the offset estimated from its heartbeats, else in this machine's zone.
 */
export function wallToEpoch(w: Wall, clock: DeviceClock): number {
  return deviceWallToEpoch(w, clock)
}

/**
 * The device clock's zone from a heartbeat time (AMBIGUITIES wsjson #8: it has none): the difference to our
 * clock rounded to a quarter hour, trusted only when the device's clock is within 2 minutes of
 * ours (else its clock is wrong, not its zone) and the result is a real zone (−12 h … +14 h).
 */
export function estimateOffset(time: string | undefined, nowMs: number): number | undefined {
  const w = parseWallClock(time)
  if (!w) return undefined
  const diff = (wallToEpoch(w, { offsetMinutes: 0 }) - nowMs) / 60_000
  const q = Math.round(diff / 15) * 15
  if (Math.abs(diff - q) > 2 || q < -12 * 60 || q > 14 * 60) return undefined
  return q === 0 ? 0 : q
}

// ---- records ------------------------------------------------------------------------------------

export interface RecordContext {
  device: string
  receivedAt: number
  /** The device's --tz zone, when set. */
  zone?: string
  /** The device clock's offset, when known (estimateOffset). */
  offsetMinutes?: number
  /** The register `type` of the device (0 both ways, 1 exit, 2 entry). */
  terminalType?: string
  /** Name of a user id, as far as the gateway knows the device's people. */
  nameOf?(userId: string): string | undefined
}

/**
 * A type-1 event (出入记录) as a spooled access record. The event has no time field: the time is
 * the one its eventid encodes (the example 20240115113644 is yyyyMMddHHmmss, device clock, wsjson
 * #8), else a `time` field a firmware adds, else when we received it.
 */
export function accessRecord(e: DeviceEvent, c: RecordContext): SpoolRecord {
  const d = e.data
  const userId = (str(d.userId) ?? '').trim()
  const door = str(d.door)
  // "door": 0 入门 (in), 1 出门 (out); without it, an exit-only (1) or entry-only (2) terminal says which
  const direction = door === '0' ? 'in' : door === '1' ? 'out' : c.terminalType === '1' ? 'out' : c.terminalType === '2' ? 'in' : ''
  const photo = decodeImage(str(d.img))
  const terminal = c.terminalType !== undefined && /^\d+$/.test(c.terminalType) ? Number(c.terminalType) : null
  return {
    device: c.device,
    recordId: e.eventid,
    time: eventTime(e, c),
    userId,
    name: (userId && c.nameOf?.(userId)) || '',
    type: userId && userId !== '0' ? 'employee' : 'stranger',
    result: userId && userId !== '0' ? 'granted' : '',
    direction,
    method: 'face',
    extras: { door: door !== undefined && /^\d+$/.test(door) ? Number(door) : null, terminal_type: terminal },
    ...(photo ? { photo } : {}),
  }
}

function eventTime(e: DeviceEvent, c: RecordContext): number {
  const t = e.data.time
  if (typeof t === 'number' && Number.isFinite(t) && t > 0) return t < 1e11 ? t * 1000 : t
  const text = str(t)
  if (text) {
    const wall = parseWallClock(text)
    if (wall) return plausible(wallToEpoch(wall, c), c.receivedAt)
    const iso = Date.parse(text)
    if (/[zZ]|[+-]\d{2}:?\d{2}$/.test(text) && Number.isFinite(iso)) return plausible(iso, c.receivedAt)
  }
  const fromId = eventIdTime(e.eventid)
  if (fromId) return plausible(wallToEpoch(fromId, c), c.receivedAt)
  return c.receivedAt
}

/** A device time more than a day ahead of ours is a wrong clock or not a time at all: ours is used. */
function plausible(ms: number, receivedAt: number): number {
  return Number.isFinite(ms) && ms <= receivedAt + 86_400_000 ? ms : receivedAt
}

/** Register `type` in words, for `device info`. */
export function terminalTypeName(type: string): string {
  return type === '0' ? 'entry and exit' : type === '1' ? 'exit' : type === '2' ? 'entry' : type ? `type ${type}` : ''
}

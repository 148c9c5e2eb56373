/**
 * best wire format (best.txt, "会议固件Best协议接口"): pure functions, no I/O. One codec for both
 * transports (best-w: WebSocket text frames, best-m: MQTT payloads). Every quirk of the document
 * is handled here once, with a comment naming its AMBIGUITIES.md (best) item. Section numbers are
 * the document's own (they are broken, AMBIGUITIES #2: "3.5 设备上报" etc. are quoted by heading).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto'
import { deviceOffsetAt, deviceWallToEpoch, isoWithOffset, type DeviceClock } from '../../util/time.js'
import type { SpoolRecord } from '../../types/gateway.js'
import type { PersonInfo, Role } from '../../types/driver.js'
import { OPTION_KEYS } from './rules.js'

export type Json = Record<string, unknown>

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Reads a field the document calls a string. "所有字段值都是以字符串表示" (附录 4) against tables that
 * type fields as 整型 (AMBIGUITIES #10): numbers and booleans are read as their text too.
 */
export function str(v: unknown): string {
  if (v === undefined || v === null) return ''
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  return ''
}

/** Every value we send is a string (附录 4 rule 1, AMBIGUITIES #10): numbers and booleans become text, deep. */
export function toWire(v: unknown): unknown {
  if (v === undefined || v === null) return ''
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v)
  if (Array.isArray(v)) return v.map(toWire)
  if (isObject(v)) {
    const out: Json = {}
    for (const [k, val] of Object.entries(v)) if (val !== undefined) out[k] = toWire(val)
    return out
  }
  return String(v)
}

// ---- result codes ----------------------------------------------------------------------------

/**
 * Only "00000000" is documented as success and there is no error table (AMBIGUITIES #5): any other
 * code from a device is a failure, and ours are eight digits too, grouped like HTTP statuses.
 */
export const CODE = {
  ok: '00000000',
  badRequest: '40000001',
  unsupportedType: '40000002',
  badFile: '40000003',
  unknownDevice: '40100001',
  badKey: '40100002',
  expired: '40100003',
  notLoggedIn: '40100004',
  badAuth: '40100005',
  notFound: '40400001',
  storeFailed: '50000001',
  unavailable: '50300001',
} as const

/** A device result code means success ("00000000"; a number 0 from a device that ignores the string rule too). */
export function isOk(code: unknown): boolean {
  const c = str(code).trim()
  return c !== '' && /^0+$/.test(c)
}

// ---- message envelope (附录 4.2 / 4.3) ----------------------------------------------------------

export interface BestMessage {
  funcId: string
  mid: string
  sn?: string
  imme?: string
  code?: string
  message?: string
  /** payload.params (requests, and the device's command replies). */
  params: Json
  /** payload.results (our answers; kept for symmetry in tests). */
  results?: Json
}

/** The dev.data.upload.user example ends an object with a trailing comma: read such JSON too. */
import { parseLenientJson as parseJsonText } from '../../util/lenient-json.js'
export { parseJsonText }

export type Parsed = { msg: BestMessage } | { error: string; mid?: string }

/** One frame (WebSocket text/binary frame or MQTT payload) into a message, or why not. */
export function parseMessage(data: string | Buffer): Parsed {
  const text = typeof data === 'string' ? data : data.toString('utf8')
  let v: unknown
  try {
    v = parseJsonText(text)
  } catch {
    return { error: 'not JSON' }
  }
  if (!isObject(v)) return { error: 'not a JSON object' }
  const funcId = str(v.funcId).trim()
  const mid = str(v.mid).trim()
  if (funcId === '') return { error: 'funcId missing', mid: mid || undefined }
  if (mid === '') return { error: 'mid missing', mid: undefined }
  const payload = isObject(v.payload) ? v.payload : {}
  const msg: BestMessage = { funcId, mid, params: isObject(payload.params) ? payload.params : {} }
  if (isObject(payload.results)) msg.results = payload.results
  if (v.sn !== undefined) msg.sn = str(v.sn).trim()
  if (v.imme !== undefined) msg.imme = str(v.imme)
  if (v.code !== undefined) msg.code = str(v.code)
  if (v.message !== undefined) msg.message = str(v.message)
  return { msg }
}

/** A message id: 32 hex characters ("最长为32位", unique per device: 128 random bits). */
export function newMid(): string {
  return randomBytes(16).toString('hex')
}

/**
 * Our answer to a device request (附录 4.3.1). The document never says whether the answer echoes
 * the request's mid (AMBIGUITIES #6): it does, so a device can match answer to request; `imme` is
 * echoed when the request had one (the heartbeat answer shows it).
 */
export function reply(req: Pick<BestMessage, 'mid' | 'imme'>, code: string, message: string, results?: Json): Json {
  const out: Json = { funcId: 'cmd.dev.response', code, message, mid: req.mid }
  if (req.imme !== undefined && req.imme !== '') out.imme = req.imme
  if (results !== undefined) out.payload = { results: toWire(results) }
  return out
}

/** A command to a device (附录 4.2.1): cmdId inside payload.params, every value a string. */
export function command(funcId: string, cmdId: string, params: Json = {}, opts: { imme?: boolean; mid?: string } = {}): Json {
  const out: Json = { funcId }
  if (opts.imme) out.imme = '1'
  out.mid = opts.mid ?? newMid()
  out.payload = { params: toWire({ cmdId, ...params }) }
  return out
}

/** A device's dev.cmd.response: which command, and how it went. */
export function parseCmdResponse(m: BestMessage): { cmdId: string; ok: boolean; code: string; message: string } {
  const code = str(m.code ?? m.params.code)
  return { cmdId: str(m.params.cmdId).trim(), ok: isOk(code), code, message: str(m.message ?? m.params.message) }
}

/**
 * Who sent a message: `sn` counts only on the login-phase messages (register, accredit, login).
 * Heartbeat and time-sync messages carry no sn (AMBIGUITIES #13): the connection (best-w) or the
 * topic (best-m) names the device, and so it does for everything after login.
 */
export const LOGIN_FUNCS: ReadonlySet<string> = new Set(['dev.register', 'dev.accredit', 'dev.login'])
export function claimedSn(m: BestMessage): string | undefined {
  return LOGIN_FUNCS.has(m.funcId) && m.sn ? m.sn : undefined
}

/** The document names no MQTT topics (AMBIGUITIES #3); CLI.md settles them: device → best/{sn}/up, best/{sn}/down → device, QoS 1. */
export const TOPICS = {
  up: (sn: string) => `best/${sn}/up`,
  down: (sn: string) => `best/${sn}/down`,
  /** Every device's up topic, shared among the gateways of group `doorctl` (one gateway handles each message). */
  sharedUp: '$share/doorctl/best/+/up',
} as const

/** Parses `best/{sn}/up`; undefined for any other topic. */
export function upTopicSn(topic: string): string | undefined {
  const p = topic.split('/')
  return p.length === 3 && p[0] === 'best' && p[2] === 'up' && p[1] !== '' ? p[1] : undefined
}

/**
 * 2.1 / 2.2 key and factor exchange. The cipher they negotiate is never given (AMBIGUITIES #2):
 * both are accepted and answered with random values of ours, and everything stays plaintext.
 */
export function exchangeAnswer(m: BestMessage): Json {
  const results = m.funcId === 'device.exchange.publicKey' ? { publicKey: randomBytes(32).toString('hex') } : { factor: randomBytes(16).toString('hex') }
  return reply(m, CODE.ok, 'success', results)
}

/**
 * The reply to cmd.control.reboot is undocumented (AMBIGUITIES #7): a dev.cmd.response, or the
 * device going away after taking the command, both mean it is rebooting.
 */
export function rebootCommand(cmdId: string): Json {
  return command('cmd.control.reboot', cmdId, { operator: 'doorctl' }, { imme: true })
}

/**
 * The cmdId a 3.8–3.11 upload names. dev.data.upload.user carries none in the document
 * (AMBIGUITIES #8): such uploads are matched by time (they belong to the user query in flight);
 * some firmware adds the query's cmdId, which then decides. '' when none.
 */
export function uploadCmdId(m: BestMessage): string {
  return str(m.params.cmdId).trim()
}

// ---- signatures and keys ---------------------------------------------------------------------

/** getBrokerServer sign = md5(sn + nonce + timestamp + secretKey), 32 lowercase hex (3.1). */
export function brokerSign(sn: string, nonce: string, timestamp: string, secretKey: string): string {
  return createHash('md5').update(sn + nonce + timestamp + secretKey, 'utf8').digest('hex')
}

/**
 * devKey = PBKDF2WithHmacSHA256(secret, salt = productId, 1000 iterations, 32 bytes), hex (3.2设备注册).
 * The salt is productId's text bytes here, unlike the user password's (AMBIGUITIES #4).
 */
export function devKeyOf(secret: string, productId: string): string {
  return pbkdf2Sync(Buffer.from(secret, 'utf8'), Buffer.from(productId, 'utf8'), 1000, 32, 'sha256').toString('hex')
}

/** The user password of cmd.data.update.user: the same PBKDF2, salt = passwordSalt hex-decoded (3.14, AMBIGUITIES #4). */
export function userPasswordHash(password: string, saltHex: string): string {
  return pbkdf2Sync(Buffer.from(password, 'utf8'), Buffer.from(repairOcrHex(saltHex), 'hex'), 1000, 32, 'sha256').toString('hex')
}

/** A fresh passwordSalt: 16 random bytes as 32 hex digits, the length of the document's example. */
export function newPasswordSalt(): string {
  return randomBytes(16).toString('hex')
}

/**
 * The document's password digest example reads "…46ao1bddof2…68o43…" (AMBIGUITIES #4: OCR turned
 * 0 into o). 'o'/'O' is never a hex digit, so reading it as 0 repairs such text and changes nothing else.
 */
export function repairOcrHex(hex: string): string {
  return hex.trim().replace(/[oO]/g, '0').toLowerCase()
}

/** Hex digests compared without regard to case, in constant time. */
export function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a.trim().toLowerCase())
  const y = Buffer.from(b.trim().toLowerCase())
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * authCode (dev.register) and the login secret (dev.accredit) are ours to choose. They are derived
 * from the device's verified devKey and its sn, so every gateway (a restart, or a second gateway on
 * the same broker) gives and accepts the same values without sharing state. The devKey check is
 * what authenticates the device; these are the document's ceremony on top of it.
 */
export function sessionValue(kind: 'authCode' | 'secret', devKey: string, sn: string): string {
  return createHmac('sha256', devKey.trim().toLowerCase()).update(`doorctl-best:${kind}:${sn}`).digest('hex').slice(0, 32)
}

// ---- getBrokerServer (3.1) ---------------------------------------------------------------------

export const BROKER_TYPES = ['push', 'best-w', 'best-t', 'best-m', 'best-a'] as const

export interface BrokerQuery {
  sn: string
  type: string
  nonce: string
  timestamp: string
  sign: string
}

/**
 * The query of GET /v3/device/getBrokerServer. The document's URL reads `nonce={NONCE}×tamp=…`
 * (AMBIGUITIES #1: `&timestamp` rendered as the HTML entity `&times;` + "tamp"). A device built from
 * that text may send the parameter as `×tamp` (percent-encoded or raw UTF-8, which arrives as
 * latin1 "Ã\u0097"), as `times;tamp`, or glued to the nonce: all are read as timestamp.
 */
export function parseBrokerQuery(q: URLSearchParams): BrokerQuery | { error: string } {
  const get = (k: string) => q.get(k) ?? undefined
  let nonce = get('nonce') ?? ''
  let timestamp = get('timestamp')
  for (const alias of ['\u00d7tamp', '\u00c3\u0097tamp', 'times;tamp', 'times']) timestamp ??= get(alias)
  if (timestamp === undefined) {
    const m = /^(.*?)(?:\u00d7|\u00c3\u0097|&times;?)tamp=(.*)$/.exec(nonce)
    if (m) {
      nonce = m[1]
      timestamp = m[2]
    }
  }
  const sn = (get('sn') ?? '').trim()
  const type = (get('type') ?? '').trim().toLowerCase()
  const sign = (get('sign') ?? '').trim()
  const missing = [!sn && 'sn', !type && 'type', !nonce && 'nonce', !timestamp && 'timestamp', !sign && 'sign'].filter(Boolean)
  if (missing.length > 0) return { error: `missing ${missing.join(', ')}` }
  if (nonce.length > 32) return { error: 'nonce longer than 32 characters' }
  if (!/^\d{10,16}$/.test(timestamp!.trim())) return { error: 'timestamp is not a time in milliseconds' }
  return { sn, type, nonce, timestamp: timestamp!.trim(), sign }
}

/** 3.1 (2): the answer carrying the server address. */
export function brokerAnswer(url: string): Json {
  return { code: CODE.ok, message: 'success', payload: { results: { url } } }
}

/** 3.1 (3): "其他不等于00000000的错误码" and a description. */
export function brokerError(code: string, message: string): Json {
  return { code, message }
}

// ---- times and zones ----------------------------------------------------------------------------

/** "+08:00" → 480; undefined when not an offset. */
export function parseOffset(text: unknown): number | undefined {
  const m = /^\s*([+-])(\d{1,2}):?(\d{2})\s*$/.exec(str(text))
  if (!m) return undefined
  const min = Number(m[2]) * 60 + Number(m[3])
  if (Number(m[2]) > 14 || Number(m[3]) > 59) return undefined
  return m[1] === '-' ? -min : min
}

/** 480 → "+08:00" (the report answer's `timezone` format "±HH:mm"). */
export function offsetText(minutes: number): string {
  const sign = minutes >= 0 ? '+' : '-'
  const a = Math.abs(minutes)
  return `${sign}${String(Math.trunc(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`
}

/** yyyy-MM-ddTHH:mm:ss±HH:mm, the document's ISO 8601 form, in the given offset. */
export function isoTime(epochMs: number, offsetMinutes: number): string {
  return isoWithOffset(new Date(epochMs), offsetMinutes)
}

/**
 * A device time. The document says the local part is "服务端的本地时间" in 3.14 and "设备的本地时间"
 * in 3.8 (AMBIGUITIES #11); with an explicit offset both readings give the same instant. A time
 * without an offset is read in the device's zone (the one we gave it). Undefined when unreadable.
 */
export function parseDeviceTime(text: unknown, device: DeviceClock | number): { ms: number; offset: number } | undefined {
  const clock = typeof device === 'number' ? { offsetMinutes: device } : device
  const offsetAt = (ms: number) => deviceOffsetAt(clock, ms)
  const t = str(text).trim()
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i.exec(t)
  if (!m) {
    // epoch seconds or milliseconds, for firmware that ignores the format
    if (/^\d{10}$/.test(t)) return { ms: Number(t) * 1000, offset: offsetAt(Number(t) * 1000) }
    if (/^\d{13}$/.test(t)) return { ms: Number(t), offset: offsetAt(Number(t)) }
    return undefined
  }
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6] ?? '0'].map(Number)
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return undefined
  if (m[7] === undefined) {
    // no offset: the device's --tz zone at that wall time (DST-correct), else the offset we gave it
    const ms = deviceWallToEpoch([y, mo, d, h, mi, s], clock)
    return Number.isFinite(ms) ? { ms, offset: offsetAt(ms) } : undefined
  }
  const offset = m[7].toUpperCase() === 'Z' ? 0 : parseOffset(m[7])
  if (offset === undefined) return undefined
  const ms = Date.UTC(y, mo - 1, d, h, mi, s) - offset * 60_000
  return Number.isFinite(ms) ? { ms, offset } : undefined
}

/**
 * Our answer to dev.system.sync.time. Its format is not documented (AMBIGUITIES #7): the time goes
 * as the document's ISO 8601 form (`time`) and as epoch milliseconds (`timestamp`), the zone as
 * `timezone` (the spelling of the report answer, 3.5) and `timeZone`, all strings.
 */
export function timeAnswer(req: Pick<BestMessage, 'mid' | 'imme'>, epochMs: number, offsetMinutes: number): Json {
  const tz = offsetText(offsetMinutes)
  return reply(req, CODE.ok, 'success', { time: isoTime(epochMs, offsetMinutes), timestamp: String(epochMs), timezone: tz, timeZone: tz })
}

// ---- registration, login, report -------------------------------------------------------------

export interface Credentials {
  productId: string
  devKey: string
  authCode: string
  secret: string
  protType: string
  devType: string
}

/** dev.register / dev.accredit / dev.login params (3.2, 3.3, 3.2设备登录). */
export function credentials(m: BestMessage): Credentials {
  const p = m.params
  return {
    productId: str(p.productId).trim(),
    devKey: repairOcrHex(str(p.devKey)),
    authCode: str(p.authCode).trim(),
    secret: str(p.secret).trim(),
    protType: str(p.protType).trim(),
    devType: str(p.devType).trim(),
  }
}

/** funcIds this server handles; cmd.dev.response and dev.cmd.response are always supported (3.5). */
export const SERVER_FUNC_IDS = [
  'dev.register', 'dev.accredit', 'dev.login', 'dev.report', 'dev.heartbeat', 'cmd.dev.response', 'dev.cmd.response',
  'device.exchange.publicKey', 'device.exchange.factor', 'dev.system.sync.time',
  'dev.file.upload.start', 'dev.file.upload.package', 'dev.file.upload.end',
  'dev.data.upload.user', 'dev.data.upload.userPhoto', 'dev.data.upload.bioPhoto', 'dev.data.upload.multiCard',
  'dev.data.upload.verifyLog', 'dev.data.upload.verifyPhoto',
  'cmd.control.reboot', 'cmd.system.sync.time', 'cmd.option.set',
  'cmd.data.update.user', 'cmd.data.update.bioPhoto', 'cmd.data.update.multiCard',
  'cmd.data.delete.user', 'cmd.data.clear.user', 'cmd.data.query.user',
] as const

/** dev.report params as the device sent them, every value as text (funcIds kept as a list). */
export function reportInfo(m: BestMessage): Json {
  const out: Json = {}
  for (const [k, v] of Object.entries(m.params)) {
    if (Array.isArray(v)) out[k] = v.map(str)
    else if (!isObject(v)) out[k] = str(v)
  }
  return out
}

/** 3.5 (2): the report answer. */
export function reportAnswer(req: BestMessage, info: Json, opts: { timezone: string; heartbeatSeconds: number }): Json {
  const results: Json = { timezone: opts.timezone, supportHeartbeat: '1', heartbeatInterval: String(opts.heartbeatSeconds) }
  // "是" (required) in the answer table: echo what the device says it supports
  results.multiBioDataSupport = str(info.multiBioDataSupport)
  results.multiBioPhotoSupport = str(info.multiBioPhotoSupport)
  results.funcIds = [...SERVER_FUNC_IDS]
  return reply(req, CODE.ok, 'success', results)
}

/** What `device info` shows: the report, with the names the CLI summary looks for. */
/** The settings a dev.report (3.5) carries, by the `option` keys cmd.option.set takes (rules.ts). */
export function reportedOptions(report: Json): Json {
  const out: Json = {}
  for (const k of OPTION_KEYS) if (report[k] !== undefined) out[k] = report[k]
  return out
}

export function infoData(report: Json, extra: Json = {}): Json {
  return { model: str(report.devModel), firmware: str(report.fwVer), ...report, ...extra }
}

// ---- people -------------------------------------------------------------------------------------

export type { PersonPayload } from '../../gateway/payloads.js'
import type { PersonPayload } from '../../gateway/payloads.js'

/**
 * `role` values are never defined (AMBIGUITIES #9): we send the ZKTeco convention, "0" an ordinary
 * user and "14" an administrator, and read "0" or empty as user and any other value as admin. A
 * blacklisted person is an ordinary user with disable "1" (禁止名单).
 */
export const ROLE_USER = '0'
export const ROLE_ADMIN = '14'

export function roleOf(role: unknown, disable: unknown): Role {
  if (str(disable).trim() === '1') return 'blacklist'
  const r = str(role).trim()
  return r === '' || r === ROLE_USER ? 'user' : 'admin'
}

/** A card number must be a decimal string (3.17 "卡号为10进制字符串数据"). */
export const CARD_RE = /^\d{1,20}$/

/** Why a person cannot be sent at all (checked before anything goes to the device). */
export function personProblem(p: PersonPayload): string | undefined {
  if (p.id.trim() === '') return 'id is empty'
  if (p.card !== undefined && p.card !== '' && !CARD_RE.test(p.card)) return `card "${p.card}" is not a decimal number (best cards are decimal strings)`
  if (p.validFrom !== undefined && p.validTo !== undefined && p.validFrom > p.validTo) return 'valid_from is after valid_to'
  return undefined
}

/**
 * One user of cmd.data.update.user (3.14). The password is sent as PBKDF2 with a fresh salt;
 * validity as ISO 8601 in the device's offset (so "server local" and "device local", AMBIGUITIES
 * #11, are the same wall-clock time). phone and department have no field: not sent.
 */
export function wireUser(p: PersonPayload, offsetMinutes: number, salt: () => string = newPasswordSalt): Json {
  const u: Json = {
    pin: p.id,
    role: p.role === 'admin' ? ROLE_ADMIN : ROLE_USER,
    firstName: p.name ?? '',
    funSwitch: '0',
    disable: p.role === 'blacklist' ? '1' : '0',
  }
  if (p.password !== undefined && p.password !== '') {
    const s = salt()
    u.password = userPasswordHash(p.password, s)
    u.passwordSalt = s
  }
  if (p.validFrom !== undefined) u.startTime = isoTime(p.validFrom, offsetMinutes)
  if (p.validTo !== undefined) u.endTime = isoTime(p.validTo, offsetMinutes)
  return toWire(u) as Json
}

/** One card of cmd.data.update.multiCard (3.17): a main card, not lost. */
export function wireCard(pin: string, card: string): Json {
  return { pin, card, type: '0', lossFlag: '0' }
}

/** Face photo type of cmd.data.update.bioPhoto: "9" as in the document's example (the type appendix is missing, AMBIGUITIES #12). */
export const FACE_PHOTO_TYPE = '9'

export function wireBioPhoto(pin: string, url: string): Json {
  return { pin, no: '0', index: '0', type: FACE_PHOTO_TYPE, url }
}

/** Users of dev.data.upload.user (3.8); `users` (the document's name) or a single `user`. */
export function uploadedUsers(m: BestMessage): Json[] {
  const p = m.params
  const list = Array.isArray(p.users) ? p.users : Array.isArray(p.user) ? p.user : isObject(p.user) ? [p.user] : []
  return list.filter(isObject)
}

/** A user the device uploaded, as `people list` shows it. Times as epoch ms (push-driver JSON). */
export function personInfoJson(u: Json, deviceOffsetMinutes: DeviceClock | number, cards: readonly string[], hasPhoto: boolean): Json {
  const start = parseDeviceTime(u.startTime, deviceOffsetMinutes)
  const end = parseDeviceTime(u.endTime, deviceOffsetMinutes)
  const name = [str(u.firstName).trim(), str(u.lastName).trim()].filter(Boolean).join(' ')
  const bio = Array.isArray(u.bioDatas) ? u.bioDatas.filter(isObject) : []
  const info: Omit<PersonInfo, 'validFrom' | 'validTo'> & { validFrom?: number; validTo?: number } = {
    id: str(u.pin).trim(),
    name,
    card: cards.join(';'),
    phone: '',
    department: '',
    role: roleOf(u.role, u.disable),
    hasPhoto: hasPhoto || bio.some((b) => str(b.type) === FACE_PHOTO_TYPE),
    extras: { group: str(u.group), id_num: str(u.idNum), fun_switch: str(u.funSwitch), bio_templates: bio.length, has_password: str(u.password) !== '' },
  }
  if (start) info.validFrom = start.ms
  if (end) info.validTo = end.ms
  return info as unknown as Json
}

/** Cards of dev.data.upload.multiCard (3.11). */
export function uploadedCards(m: BestMessage): { pin: string; card: string; lost: boolean }[] {
  const list = Array.isArray(m.params.multiCards) ? m.params.multiCards.filter(isObject) : []
  return list.map((c) => ({ pin: str(c.pin).trim(), card: str(c.card).trim(), lost: str(c.lossFlag) === '1' })).filter((c) => c.pin !== '' && c.card !== '')
}

/** Pins of dev.data.upload.userPhoto / bioPhoto uploads (3.9, 3.10): who has a picture. */
export function uploadedPhotoPins(m: BestMessage): string[] {
  const p = m.params
  const list = Array.isArray(p.userPhotos) ? p.userPhotos : Array.isArray(p.bioPhotos) ? p.bioPhotos : []
  return list.filter(isObject).map((x) => str(x.pin).trim()).filter(Boolean)
}

// ---- records ------------------------------------------------------------------------------------

/**
 * verifyStyle codes: the appendix "验证方式码描述" is missing (AMBIGUITIES #12). These are the
 * ZKTeco verify modes the firmware family uses; other codes give an empty method (the raw code is
 * always in the verify_style column).
 */
const VERIFY_METHODS: Readonly<Record<string, string>> = {
  '0': 'any', '1': 'fingerprint', '2': 'pin', '3': 'password', '4': 'card', '15': 'face', '25': 'palm',
}

/** category: "普通人员NORMAL(0), 访客VISITOR(4)" (3.12). */
const CATEGORIES: Readonly<Record<string, string>> = { '0': 'employee', '4': 'visitor' }

/** recodeType (sic): 0 签到 sign-in, 1 签退 sign-out, 255 default. */
const DIRECTIONS: Readonly<Record<string, string>> = { '0': 'in', '1': 'out' }

/** verifyLog entries: the document names the array `verifyLog` (singular, against rule 4 of 附录 4); `verifyLogs` is read too. */
export function verifyLogEntries(m: BestMessage): Json[] {
  const p = m.params
  const list = Array.isArray(p.verifyLog) ? p.verifyLog : Array.isArray(p.verifyLogs) ? p.verifyLogs : isObject(p.verifyLog) ? [p.verifyLog] : []
  return list.filter(isObject)
}

/**
 * One verify log as a spooled record. The record id is `logId` (the key verify photos refer to);
 * a log without one gets pin@verifyTime, stable across the device's retries. `meetCode` is required
 * on this (meeting) firmware's logs (AMBIGUITIES #12) and kept as an extra, not enforced.
 */
export function verifyLogRecord(device: string, e: Json, deviceOffsetMinutes: DeviceClock | number): SpoolRecord | { error: string } {
  const pin = str(e.pin).trim()
  const t = parseDeviceTime(e.verifyTime, deviceOffsetMinutes)
  if (!t) return { error: `verifyTime "${str(e.verifyTime)}" is not a time` }
  const logId = str(e.logId).trim()
  const style = str(e.verifyStyle).trim()
  const category = str(e.category).trim()
  const recodeType = str(e.recodeType ?? e.recordType).trim()
  return {
    device,
    recordId: logId !== '' ? logId : `${pin}@${str(e.verifyTime).trim()}`,
    time: t.ms,
    utcOffsetMinutes: t.offset,
    userId: pin,
    name: '',
    type: CATEGORIES[category] ?? (category === '' ? '' : `category ${category}`),
    // a verify log is a successful verification (签到/签退); the document has no denied logs
    result: 'granted',
    direction: DIRECTIONS[recodeType] ?? '',
    method: VERIFY_METHODS[style] ?? '',
    extras: { meet_code: str(e.meetCode), verify_style: style, sign_status: str(e.status), category, record_type: recodeType },
  }
}

export interface VerifyPhoto {
  pin: string
  logId: string
  photoTime: string
  extension: string
  /** Inline base64 content, decoded. */
  content?: Buffer
  /** A large-file id (3.7) to take the content from. */
  fileId?: string
}

/**
 * verifyPhotos of dev.data.upload.verifyPhoto (3.13). The file reference is `contentFileId` in
 * the example and `contentFileDialog` in the tables (AMBIGUITIES #11): either is read.
 */
export function verifyPhotos(m: BestMessage): VerifyPhoto[] | { error: string } {
  const p = m.params
  const list = Array.isArray(p.verifyPhotos) ? p.verifyPhotos : Array.isArray(p.verifyPhoto) ? p.verifyPhoto : isObject(p.verifyPhoto) ? [p.verifyPhoto] : []
  const out: VerifyPhoto[] = []
  for (const x of list.filter(isObject)) {
    const content = str(x.content).trim()
    const fileId = str(x.contentFileId ?? x.contentFileDialog).trim()
    if (content === '' && fileId === '') return { error: 'a verify photo has neither content nor contentFileId' }
    let bytes: Buffer | undefined
    if (content !== '') {
      const b64 = content.replace(/^data:[^,]*,/, '')
      if (!/^[A-Za-z0-9+/=\s_-]+$/.test(b64)) return { error: 'verify photo content is not base64' }
      bytes = Buffer.from(b64, 'base64')
    }
    out.push({ pin: str(x.pin).trim(), logId: str(x.logId).trim(), photoTime: str(x.photoTime).trim(), extension: str(x.extension).trim() || 'jpg', content: bytes, fileId: fileId || undefined })
  }
  return out
}

// ---- large files (3.7) --------------------------------------------------------------------------

export interface FileStart {
  fileId: string
  size: number
  checksum: string
}

/** fileId: letters and digits, at most 64 ("最高不能超过64位"). */
export function parseFileStart(m: BestMessage, maxBytes: number): FileStart | { error: string } {
  const fileId = str(m.params.fileId).trim()
  const size = Number(str(m.params.size).trim())
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(fileId)) return { error: 'fileId must be 1 to 64 letters and digits' }
  if (!Number.isInteger(size) || size < 0) return { error: 'size is not a byte count' }
  if (size > maxBytes) return { error: `file of ${size} bytes is larger than ${maxBytes}` }
  return { fileId, size, checksum: str(m.params.checksum).trim().toLowerCase() }
}

export function parseFilePackage(m: BestMessage): { fileId: string; offset: number; content: Buffer } | { error: string } {
  const fileId = str(m.params.fileId).trim()
  const offset = Number(str(m.params.offset).trim() || '0')
  const content = str(m.params.content).replace(/\s+/g, '')
  if (fileId === '') return { error: 'fileId missing' }
  if (!Number.isInteger(offset) || offset < 0) return { error: 'offset is not a byte position' }
  if (!/^[A-Za-z0-9+/=_-]*$/.test(content)) return { error: 'content is not base64' }
  return { fileId, offset, content: Buffer.from(content, 'base64') }
}

/** checksum: md5 of the whole file; checked only when the device gave one ("根据checksum是否为空"). */
export function checksumOk(data: Buffer, checksum: string): boolean {
  if (checksum === '') return true
  return sameHex(createHash('md5').update(data).digest('hex'), checksum)
}

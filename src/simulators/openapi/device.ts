/**
 * In-memory model of an openapi face-recognition terminal, written from the vendor document
 * (protocols/openapi-face.txt, sections 4–8) alone. It deliberately shares no code with the
 * openapi driver: a simulator that used the driver's codec would confirm the driver's misreadings.
 *
 * The HTTP/WebSocket plumbing is in server.ts; this file maps one request to one answer.
 */
import { createHash } from 'node:crypto'

// ---------------------------------------------------------------------------------------------
// Section 7: the Code/Message table, verbatim.
export const OPENAPI_MESSAGES: Readonly<Record<number, string>> = {
  200: 'OK',
  10001: 'Password Not Exist',
  10002: 'Password Expired',
  10003: 'Request Expired',
  10004: 'IP Invalid',
  10005: 'Signature Failed',
  20001: 'User Not Exists',
  20002: 'User Not Match',
  30001: 'Param Invalid',
  30002: 'No Face Detected In The Image',
  30003: 'Missing Param',
  30004: 'Avatar File Illegal',
  40001: 'Not Support',
  50001: 'RPC Failed',
  50002: 'Internal Server Error',
  50003: 'Multi Request Error',
  50004: 'Request Method Not Allowed',
  99999: 'Unknown Error',
  50008: 'Search List Null',
  50009: 'Database Full',
}

/** openapi 4.1: sign = md5(timestamp + "#" + password), lowercase hex. */
export function openapiSign(timestamp: string | number, password: string): string {
  return createHash('md5').update(`${timestamp}#${password}`, 'utf8').digest('hex')
}

/** openapi 4.2: "more than 5 minutes" apart fails; exactly 5 minutes still passes. */
export const MAX_CLOCK_DIFF_MS = 5 * 60 * 1000

export type AuthResult = { ok: true } | { ok: false; code: 30001 | 30003 | 10003 | 10005; desc: string }

/**
 * Order of checks (openapi 4 / AMBIGUITIES openapi #4, not stated by the document):
 * missing timestamp/sign (30003) → timestamp not an integer (30001) → more than 5 minutes from
 * the device clock (10003) → wrong sign (10005). Expiry before sign so that a client with a bad
 * clock learns about the clock, the thing it can fix, even if it also has a wrong password.
 */
export function checkAuth(query: URLSearchParams, password: string, deviceNowMs: number): AuthResult {
  const timestamp = query.get('timestamp')
  const sign = query.get('sign')
  if (timestamp === null || timestamp === '' || sign === null || sign === '') {
    const missing = [timestamp ? undefined : 'timestamp', sign ? undefined : 'sign'].filter(Boolean).join(', ')
    return { ok: false, code: 30003, desc: `missing ${missing}` }
  }
  if (!/^\d{1,16}$/.test(timestamp)) return { ok: false, code: 30001, desc: 'timestamp must be milliseconds since 1970 (UTC)' }
  if (Math.abs(Number(timestamp) - deviceNowMs) > MAX_CLOCK_DIFF_MS) {
    return { ok: false, code: 10003, desc: `timestamp is more than 5 minutes from the device clock (${new Date(deviceNowMs).toISOString()})` }
  }
  // AMBIGUITIES openapi #5: hex case is not stated; accept both.
  if (sign.toLowerCase() !== openapiSign(timestamp, password)) return { ok: false, code: 10005, desc: 'sign does not match md5(timestamp#password)' }
  return { ok: true }
}

// ---------------------------------------------------------------------------------------------
// A tiny but complete baseline JPEG (8x8 mid-grey), built by hand so no image library is needed.

/** A valid 8x8 grey baseline JPEG; with `comment` it carries a COM segment holding that text. */
export function makeTinyJpeg(comment?: string): Buffer {
  const b: number[] = [0xff, 0xd8]
  b.push(0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00) // APP0 JFIF
  if (comment !== undefined) {
    const c = Buffer.from(comment, 'latin1')
    b.push(0xff, 0xfe, (c.length + 2) >> 8, (c.length + 2) & 0xff, ...c)
  }
  b.push(0xff, 0xdb, 0x00, 0x43, 0x00, ...new Array<number>(64).fill(1)) // DQT 0: all ones
  b.push(0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00) // SOF0 8x8, 1 component
  b.push(0xff, 0xc4, 0x00, 0x14, 0x00, 1, ...new Array<number>(15).fill(0), 0x00) // DHT DC0: '0' = category 0
  b.push(0xff, 0xc4, 0x00, 0x14, 0x10, 1, ...new Array<number>(15).fill(0), 0x00) // DHT AC0: '0' = EOB
  b.push(0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00) // SOS
  b.push(0x3f) // one block: DC diff 0 ('0'), EOB ('0'), padded with ones
  b.push(0xff, 0xd9)
  return Buffer.from(b)
}

/** Base64 of a valid JPEG; `{ noFace: true }` adds the `NOFACE` marker the simulator answers 30002 to. */
export function testJpegBase64(opts: { noFace?: boolean } = {}): string {
  return makeTinyJpeg(opts.noFace ? 'NOFACE' : undefined).toString('base64')
}

const TINY_JPEG_B64 = testJpegBase64()

// ---------------------------------------------------------------------------------------------
// Field rules.

type FieldRule =
  | { kind: 'string'; max: number }
  | { kind: 'int'; min?: number; max?: number; oneOf?: readonly number[] }
  | { kind: 'double'; min?: number; max?: number }
  | { kind: 'ipv4'; allowEmpty?: boolean }

/** openapi 8.2.1 UserObject (photo is checked separately). */
const USER_FIELDS: Record<string, FieldRule> = {
  userId: { kind: 'string', max: 40 },
  userType: { kind: 'int', oneOf: [1, 2, 3, -1] },
  icNumber: { kind: 'string', max: 40 },
  jobNumber: { kind: 'string', max: 40 },
  mobile: { kind: 'string', max: 20 },
  name: { kind: 'string', max: 80 },
  remark: { kind: 'string', max: 255 },
  department: { kind: 'string', max: 80 },
  birthday: { kind: 'int' },
  entryTime: { kind: 'int' },
  mail: { kind: 'string', max: 40 },
  title: { kind: 'string', max: 40 },
  position: { kind: 'string', max: 100 },
  idNumber: { kind: 'string', max: 40 },
  gender: { kind: 'int', oneOf: [1, 2] },
  prompt: { kind: 'string', max: 100 },
  startTime: { kind: 'int' },
  endTime: { kind: 'int' },
  purpose: { kind: 'string', max: 40 },
  interviewee: { kind: 'string', max: 80 },
  comeFrom: { kind: 'string', max: 200 },
  description: { kind: 'string', max: 80 },
}
/** Marked required but "may be an empty string" (AMBIGUITIES openapi #7): stored as '' when absent. */
const USER_EMPTY_DEFAULTS = ['icNumber', 'jobNumber', 'mobile', 'remark'] as const

const BIT: FieldRule = { kind: 'int', oneOf: [0, 1] }

/** openapi 8.1.2 NetworkObject. */
const NETWORK_FIELDS: Record<string, FieldRule> = {
  dhcpEnable: BIT,
  ipAddress: { kind: 'ipv4' },
  subMask: { kind: 'ipv4' },
  DNS1: { kind: 'ipv4', allowEmpty: true },
  DNS2: { kind: 'ipv4', allowEmpty: true },
  defRout: { kind: 'ipv4', allowEmpty: true },
}
/** openapi 8.1.4 SmartFaceObject; ranges as the table gives them. */
const SMARTFACE_FIELDS: Record<string, FieldRule> = {
  faceEnable: BIT,
  faceCmpEnable: BIT,
  faceThre: { kind: 'int', min: 0, max: 10 },
  faceMinsize: { kind: 'int', min: 30, max: 300 },
  faceMaxsize: { kind: 'int', min: 300, max: 500 },
  faceInterval: { kind: 'int', min: 6, max: 20 },
  imgType: { kind: 'int', oneOf: [0, 1, 2] },
  maskDetecEnable: BIT,
  tempDetecEnable: BIT,
  tempWarnThre: { kind: 'double', min: 37.0, max: 37.5 },
  ftpPutImgEnable: BIT,
  faceFrame: BIT,
}
/** openapi 8.1.5 PerParaObject (detecTemMod has no documented range: any integer ≥ 0). */
const PERPARA_FIELDS: Record<string, FieldRule> = {
  detecTemMod: { kind: 'int', min: 0 },
  alarmType: BIT,
  voiceProswitch: BIT,
  tempNormal: BIT,
  maskNormal: BIT,
  cmpNormal: BIT,
  RecordOpen: BIT,
  unlockControl: BIT,
  unlockOuttime: { kind: 'int', min: 1, max: 30 },
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/

/** undefined when valid, else the reason. Lengths count characters (code points), not bytes. */
function checkField(name: string, rule: FieldRule, v: unknown): string | undefined {
  switch (rule.kind) {
    case 'string':
      if (typeof v !== 'string') return `${name} must be a string`
      if ([...v].length > rule.max) return `${name} is longer than ${rule.max} characters`
      return undefined
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v)) return `${name} must be an integer`
      if (rule.oneOf && !rule.oneOf.includes(v)) return `${name} must be one of ${rule.oneOf.join(', ')}`
      if (rule.min !== undefined && v < rule.min) return `${name} must be at least ${rule.min}`
      if (rule.max !== undefined && v > rule.max) return `${name} must be at most ${rule.max}`
      return undefined
    case 'double':
      if (typeof v !== 'number' || !Number.isFinite(v)) return `${name} must be a number`
      if (rule.min !== undefined && v < rule.min) return `${name} must be at least ${rule.min}`
      if (rule.max !== undefined && v > rule.max) return `${name} must be at most ${rule.max}`
      return undefined
    case 'ipv4':
      if (typeof v !== 'string') return `${name} must be a string`
      if (v === '' && rule.allowEmpty) return undefined
      if (!IPV4.test(v)) return `${name} must be an IPv4 address`
      return undefined
  }
}

type PhotoCheck = { ok: true; base64: string } | { ok: false; code: 30001 | 30002 | 30004; desc: string }

/** openapi 8.2.1 photo: base64 of a JPEG. AMBIGUITIES openapi #8: a `data:image/jpeg;base64,` prefix is accepted too. */
function checkPhoto(v: unknown): PhotoCheck {
  if (typeof v !== 'string') return { ok: false, code: 30001, desc: 'photo must be a base64 string' }
  let s = v.trim()
  const uri = /^data:image\/(jpeg|jpg|pjpeg);base64,/i.exec(s)
  if (uri) s = s.slice(uri[0].length)
  else if (/^data:/i.test(s)) return { ok: false, code: 30004, desc: 'photo data URI is not image/jpeg' }
  s = s.replace(/\s+/g, '')
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 === 1) return { ok: false, code: 30004, desc: 'photo is not base64' }
  const bytes = Buffer.from(s, 'base64')
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8 || bytes[2] !== 0xff) {
    return { ok: false, code: 30004, desc: 'photo is not a JPEG image' }
  }
  // Simulator convention: a JPEG containing the ASCII marker NOFACE has no detectable face.
  if (bytes.includes('NOFACE', 0, 'latin1')) return { ok: false, code: 30002, desc: 'no face detected in the photo' }
  return { ok: true, base64: s }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

// ---------------------------------------------------------------------------------------------
// Generated people and records (deterministic, from an index).

const LATIN_FIRST = ['Alice', 'Bob', 'Carol', 'David', 'Emma', 'Frank', 'Grace', 'Henry', 'Ivy', 'Jack', 'Karen', 'Leo']
const LATIN_LAST = ['Smith', 'Jones', 'Brown', 'Taylor', 'Wilson', 'Martin', 'Lee', 'Walker', 'Hall', 'Young']
const CN_SURNAME = ['王', '李', '张', '刘', '陈', '杨', '黄', '赵', '吴', '周']
const CN_GIVEN = ['伟', '芳', '娜', '敏', '静', '丽', '强', '磊', '军', '洋']
const DEPARTMENTS = ['R&D', 'Sales', '行政部', 'Finance', '生产部']

/** The k-th generated person (k ≥ 1): id `u{k}`, every third one with a Chinese name. */
export function generatedUser(k: number, nowSec: number): Record<string, unknown> {
  const chinese = k % 3 === 0
  const first = LATIN_FIRST[k % LATIN_FIRST.length]!
  const last = LATIN_LAST[(k * 7) % LATIN_LAST.length]!
  const name = chinese
    ? CN_SURNAME[k % 10]! + CN_GIVEN[(k * 7) % 10]! + (k % 2 === 1 ? CN_GIVEN[(k * 3) % 10]! : '')
    : `${first} ${last}`
  const userType = k % 20 === 0 ? 3 : k % 10 === 5 ? 2 : 1
  const u: Record<string, unknown> = {
    userId: `u${k}`,
    userType,
    name,
    icNumber: k % 4 === 0 ? '' : String(10_000_000 + k),
    jobNumber: `E${String(k).padStart(5, '0')}`,
    mobile: `138${String(k % 100_000_000).padStart(8, '0')}`,
    remark: '',
    department: DEPARTMENTS[k % DEPARTMENTS.length]!,
    gender: k % 2 === 1 ? 1 : 2,
  }
  if (!chinese) u.mail = `${first.toLowerCase()}.${last.toLowerCase()}${k}@example.com`
  if (userType === 2) {
    u.startTime = nowSec - 3600
    u.endTime = nowSec + 86_400
    u.purpose = 'meeting'
    u.interviewee = 'Alice Smith'
  }
  if (k % 7 === 0) u.photo = TINY_JPEG_B64
  return u
}

interface Identity {
  userId: string
  userType: number
  name: string
  icNumber: string
  jobNumber: string
  mobile: string
  remark: string
  department: string
}
const STRANGER: Identity = { userId: '', userType: -1, name: '', icNumber: '', jobNumber: '', mobile: '', remark: '', department: '' }

function identityOf(u: Record<string, unknown>): Identity {
  const s = (k: string): string => (typeof u[k] === 'string' ? (u[k] as string) : '')
  return {
    userId: s('userId'),
    userType: typeof u.userType === 'number' ? u.userType : 1,
    name: s('name'),
    icNumber: s('icNumber'),
    jobNumber: s('jobNumber'),
    mobile: s('mobile'),
    remark: s('remark'),
    department: s('department'),
  }
}

function hash32(n: number): number {
  let x = (n ^ 0x9e3779b9) >>> 0
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b)
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35)
  return (x ^ (x >>> 16)) >>> 0
}

/**
 * Seconds between the newest record of a generated batch and the one k places older: groups of
 * 8 records per 20 s with repeats inside a group, so equal signTimes occur (avg. 2.5 s apart).
 */
const GAP_PATTERN = [0, 0, 1, 4, 4, 9, 12, 16] as const
function ageOf(k: number): number {
  return 20 * Math.floor(k / 8) + GAP_PATTERN[k % 8]!
}

// ---------------------------------------------------------------------------------------------
// Record store: sorted sources, each ascending by (signTime, id).

interface RecordSource {
  readonly length: number
  time(i: number): number
  id(i: number): number
  brief(i: number): { userId: string; type: number; name: string }
  get(i: number): Record<string, unknown>
}

/** A batch of generated records, nothing stored per record: everything derives from the index. */
class GeneratedSource implements RecordSource {
  constructor(
    private readonly owner: OpenapiDevice,
    readonly firstId: number,
    readonly length: number,
    readonly newestSec: number,
  ) {}
  time(i: number): number {
    return this.newestSec - ageOf(this.length - 1 - i)
  }
  id(i: number): number {
    return this.firstId + i
  }
  brief(i: number): { userId: string; type: number; name: string } {
    const who = this.owner.identityForRecord(this.firstId + i)
    return { userId: who.userId, type: who.userType, name: who.name }
  }
  get(i: number): Record<string, unknown> {
    return this.owner.generateRecord(this.firstId + i, this.time(i))
  }
}

class ExplicitSource implements RecordSource {
  readonly items: Record<string, unknown>[] = []
  get length(): number {
    return this.items.length
  }
  time(i: number): number {
    return this.items[i]!.signTime as number
  }
  id(i: number): number {
    return this.items[i]!.id as number
  }
  brief(i: number): { userId: string; type: number; name: string } {
    const r = this.items[i]!
    return { userId: String(r.userId ?? ''), type: Number(r.type), name: String(r.name ?? '') }
  }
  get(i: number): Record<string, unknown> {
    return this.items[i]!
  }
  insert(r: Record<string, unknown>): void {
    const t = r.signTime as number
    const id = r.id as number
    let i = this.items.length
    // Usually appended at the end; walk back only for records given an older signTime.
    while (i > 0 && (this.time(i - 1) > t || (this.time(i - 1) === t && this.id(i - 1) > id))) i--
    this.items.splice(i, 0, r)
  }
}

/** First index in [lo, hi) whose time is ≥ t. */
function lowerTime(s: RecordSource, t: number, lo = 0, hi = s.length): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (s.time(mid) < t) lo = mid + 1
    else hi = mid
  }
  return lo
}
/** First index in [lo, hi) whose id is > id (ids ascend inside one signTime). */
function upperId(s: RecordSource, id: number, lo: number, hi: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (s.id(mid) <= id) lo = mid + 1
    else hi = mid
  }
  return lo
}

interface Range {
  s: RecordSource
  lo: number
  hi: number
}

/** Index in r of the first element with key (time, id) > (t, id): all from there up rank above it. */
function firstAbove(r: Range, t: number, id: number): number {
  const a = lowerTime(r.s, t + 1, r.lo, r.hi)
  const b = lowerTime(r.s, t, r.lo, a)
  return upperId(r.s, id, b, a)
}

export interface RecordFilter {
  startSec: number
  endSec: number
  type?: number
  userId?: string
  username?: string
}

// ---------------------------------------------------------------------------------------------

export interface OpenapiDeviceOptions {
  password?: string
  users?: number
  records?: number
  clockSkewSeconds?: number
  deviceId?: string
  /** The device's time zone, used only for "today" in /api/record; default: the host's. */
  utcOffsetMinutes?: number
  /** Face database capacity (openapi 7 code 50009); default 50,000. */
  maxUsers?: number
  log?: (line: string) => void
}

export interface SimHttpRequest {
  method: string
  /** Path and query, as in the request line. */
  url: string
  body: Buffer
  /** The body was larger than the server's limit (it was discarded). */
  bodyTooLarge?: boolean
  bodyLimit?: number
}

export interface SimHttpResponse {
  status: number
  json: Record<string, unknown>
  /** The request was a successful reboot: the server takes the device down after answering. */
  reboot?: boolean
}

export function answer(code: number, desc = '', extra: Record<string, unknown> = {}, status = 200): SimHttpResponse {
  return { status, json: { code, message: OPENAPI_MESSAGES[code] ?? 'Unknown Error', desc, ...extra } }
}
const ok = (extra: Record<string, unknown> = {}): SimHttpResponse => answer(200, '', extra)

class Reject extends Error {
  constructor(readonly response: SimHttpResponse) {
    super(String(response.json.desc))
  }
}
function reject(code: number, desc: string, status = 200): never {
  throw new Reject(answer(code, desc, {}, status))
}

interface Ctx {
  query: URLSearchParams
  body: Buffer
  rest: string // path remainder for /{userId} routes
}
interface Route {
  method: 'GET' | 'POST'
  handler: (ctx: Ctx) => SimHttpResponse
}

export class OpenapiDevice {
  password: string
  deviceId: string
  readonly utcOffsetMinutes: number
  readonly maxUsers: number
  readonly userStore = new Map<string, Record<string, unknown>>()
  readonly network: Record<string, unknown> = {
    dhcpEnable: 0,
    ipAddress: '192.168.1.88',
    subMask: '255.255.255.0',
    DNS1: '8.8.8.8',
    DNS2: '114.114.114.114',
    defRout: '192.168.1.1',
  }
  readonly smartface: Record<string, unknown> = {
    faceEnable: 1,
    faceCmpEnable: 1,
    faceThre: 5,
    faceMinsize: 80,
    faceMaxsize: 400,
    faceInterval: 6,
    imgType: 0,
    maskDetecEnable: 0,
    tempDetecEnable: 1,
    tempWarnThre: 37.3,
    ftpPutImgEnable: 0,
    faceFrame: 1,
  }
  readonly perpara: Record<string, unknown> = {
    detecTemMod: 0,
    alarmType: 0,
    voiceProswitch: 1,
    tempNormal: 1,
    maskNormal: 1,
    cmpNormal: 1,
    RecordOpen: 0,
    unlockControl: 1,
    unlockOuttime: 5,
  }
  /** Door openings received (8.1.7), oldest first. */
  readonly opens: { time: number; remark: string }[] = []
  rebootCount = 0
  /** Called for every record added one by one (the server pushes it to WebSocket clients). */
  onRecord?: (record: Record<string, unknown>) => void

  private skewMs: number
  private readonly log: (line: string) => void
  private readonly sources: RecordSource[] = []
  private readonly explicit = new ExplicitSource()
  private nextRecordId = 1
  private readonly identityPool: Identity[]
  private readonly routes: Record<string, Route>

  constructor(opts: OpenapiDeviceOptions = {}) {
    this.password = opts.password ?? '123456'
    this.deviceId = opts.deviceId ?? 'OPENAPI-SIM'
    this.skewMs = Math.round((opts.clockSkewSeconds ?? 0) * 1000)
    this.utcOffsetMinutes = opts.utcOffsetMinutes ?? -new Date().getTimezoneOffset()
    this.maxUsers = opts.maxUsers ?? 50_000
    this.log = opts.log ?? (() => {})
    const nowSec = Math.floor(this.now() / 1000)
    const nUsers = Math.max(0, Math.floor(opts.users ?? 0))
    for (let k = 1; k <= nUsers; k++) {
      const u = generatedUser(k, nowSec)
      this.userStore.set(u.userId as string, u)
    }
    // Generated records name the generated people (whether or not they are still enrolled).
    const pool = nUsers > 0 ? nUsers : 100
    this.identityPool = Array.from({ length: pool }, (_, i) => identityOf(generatedUser(i + 1, nowSec)))
    this.sources.push(this.explicit)
    if (opts.records) this.addRecords(opts.records)
    this.routes = {
      '/api/device/open': { method: 'POST', handler: (c) => this.open(c) },
      '/api/device/syncTime': { method: 'POST', handler: (c) => this.syncTime(c) },
      '/api/device/reboot': { method: 'POST', handler: () => this.reboot() },
      '/api/device/jsonCmd': { method: 'POST', handler: (c) => this.jsonCmd(c) },
      '/api/device/information': { method: 'POST', handler: () => this.information() },
      '/api/device/network': { method: 'POST', handler: () => ok({ data: { ...this.network } }) },
      '/api/device/networkcfg': { method: 'POST', handler: (c) => this.setConfig(c, this.network, NETWORK_FIELDS) },
      '/api/device/smartface': { method: 'POST', handler: () => ok({ data: { ...this.smartface } }) },
      '/api/device/smartfacecfg': { method: 'POST', handler: (c) => this.setConfig(c, this.smartface, SMARTFACE_FIELDS) },
      '/api/device/perpara': { method: 'POST', handler: () => ok({ data: { ...this.perpara } }) },
      '/api/device/perparacfg': { method: 'POST', handler: (c) => this.setConfig(c, this.perpara, PERPARA_FIELDS) },
      '/api/user': { method: 'POST', handler: (c) => this.addUser(c) },
      '/api/user/update/': { method: 'POST', handler: (c) => this.updateUser(c) },
      '/api/user/delete/': { method: 'GET', handler: (c) => this.deleteUser(c) },
      // AMBIGUITIES openapi #6: the table names a URL parameter `id`; accept /api/user/delete?id=… too.
      '/api/user/delete': { method: 'GET', handler: (c) => this.deleteUser(c) },
      '/api/user/list': { method: 'GET', handler: (c) => this.listUsers(c) },
      '/api/record': { method: 'GET', handler: (c) => this.listRecords(c) },
    }
  }

  /** Device clock in ms: real time + skew (set by syncTime). */
  now(): number {
    return Date.now() + this.skewMs
  }
  setClock(ms: number): void {
    this.skewMs = ms - Date.now()
  }

  checkAuth(query: URLSearchParams): AuthResult {
    return checkAuth(query, this.password, this.now())
  }

  /**
   * One HTTP request → one answer. Order: unknown path (HTTP 404, 40001) → wrong method (50004)
   * → signature checks (see checkAuth) → body over the size limit (HTTP 413, 30001) → endpoint:
   * JSON body parse (30001) → field validation. Path and method come first because they are
   * public facts about the device; the body is judged only for an authenticated caller.
   */
  handle(req: SimHttpRequest): SimHttpResponse {
    let url: URL
    try {
      url = new URL(req.url, 'http://device.invalid')
    } catch {
      return answer(30001, 'malformed request URL', {}, 400)
    }
    const path = url.pathname
    let route = this.routes[path]
    let rest = ''
    if (!route) {
      for (const prefix of ['/api/user/update/', '/api/user/delete/']) {
        if (path.startsWith(prefix) && path.length > prefix.length) {
          route = this.routes[prefix]
          rest = path.slice(prefix.length)
          break
        }
      }
    }
    if (!route) return answer(40001, `no such API: ${path}`, {}, 404)
    if (req.method.toUpperCase() !== route.method) return answer(50004, `${path} takes ${route.method}, not ${req.method}`)
    const auth = this.checkAuth(url.searchParams)
    if (!auth.ok) return answer(auth.code, auth.desc)
    if (req.bodyTooLarge) return answer(30001, `request body larger than ${req.bodyLimit ?? 'the limit'} bytes`, {}, 413)
    try {
      return route.handler({ query: url.searchParams, body: req.body, rest })
    } catch (e) {
      if (e instanceof Reject) return e.response
      this.log(`openapi simulator: internal error on ${path}: ${(e as Error).stack ?? String(e)}`)
      return answer(50002, 'internal error')
    }
  }

  // --- 8.1 device ----------------------------------------------------------------------------

  private open(c: Ctx): SimHttpResponse {
    const remark = c.query.get('remark') ?? ''
    if ([...remark].length > 255) reject(30001, 'remark is longer than 255 characters')
    this.opens.push({ time: this.now(), remark })
    this.log(`door opened${remark ? ` (remark: ${remark})` : ''}`)
    return ok()
  }

  /** 8.1.8: the signing timestamp is also the time to set (AMBIGUITIES openapi #2: it already passed the 5-minute check). */
  private syncTime(c: Ctx): SimHttpResponse {
    this.setClock(Number(c.query.get('timestamp')))
    this.log(`clock set to ${new Date(this.now()).toISOString()}`)
    return ok()
  }

  /** 8.1.9 (AMBIGUITIES openapi #1: its description says "open door"; the path says reboot). */
  private reboot(): SimHttpResponse {
    this.rebootCount++
    this.log('reboot requested')
    return { ...ok(), reboot: true }
  }

  /** 8.1.10: the command set is not documented; the simulator echoes the JSON object under `json`. */
  private jsonCmd(c: Ctx): SimHttpResponse {
    const body = parseJsonObject(c.body)
    return ok({ json: body })
  }

  /** 8.1.11; `deviceMoel` is the document's spelling (AMBIGUITIES openapi #13) and the only key sent. */
  private information(): SimHttpResponse {
    return ok({
      data: {
        deviceID: this.deviceId.slice(0, 32),
        deviceName: 'Face Terminal (simulated)',
        appVer: 'SIM-1.0.0',
        webVer: 'SIM-WEB-1.0.0',
        deviceMoel: 'OPENAPI-SIM-FACE',
      },
    })
  }

  /** 8.1.13/15/17: JSON object in the body; known keys validated together, then merged. Unknown keys are ignored. */
  private setConfig(c: Ctx, target: Record<string, unknown>, rules: Record<string, FieldRule>): SimHttpResponse {
    const body = parseJsonObject(c.body)
    const changes: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(body)) {
      const rule = rules[k]
      if (!rule) continue
      const bad = checkField(k, rule, v)
      if (bad) reject(30001, bad)
      changes[k] = v
    }
    Object.assign(target, changes)
    return ok()
  }

  // --- 8.2 users ------------------------------------------------------------------------------

  /** Validates and normalises a UserObject body; `partial` for update (nothing required). */
  private readUser(body: Record<string, unknown>, partial: boolean): Record<string, unknown> {
    const u: Record<string, unknown> = {}
    for (const [k, rule] of Object.entries(USER_FIELDS)) {
      const v = body[k]
      if (v === undefined || v === null) continue
      const bad = checkField(k, rule, v)
      if (bad) reject(30001, bad)
      u[k] = v
    }
    if (body.photo !== undefined && body.photo !== null) {
      // An empty photo means "no photo" (on update: remove it).
      if (body.photo === '') u.photo = ''
      else {
        const p = checkPhoto(body.photo)
        if (!p.ok) reject(p.code, p.desc)
        u.photo = p.base64
      }
    }
    if (!partial) {
      // AMBIGUITIES openapi #7: lenient about the "may be empty" fields, strict about identity.
      if (typeof u.userId !== 'string' || u.userId === '') reject(30003, 'userId is required')
      if (typeof u.name !== 'string' || u.name === '') reject(30003, 'name is required')
      if (u.userType === undefined) reject(30003, 'userType is required')
      for (const k of USER_EMPTY_DEFAULTS) if (u[k] === undefined) u[k] = ''
      if (u.photo === '') delete u.photo
    } else {
      if (u.userId === '') reject(30001, 'userId must not be empty')
      if (u.name === '') reject(30001, 'name must not be empty')
    }
    return u
  }

  private addUser(c: Ctx): SimHttpResponse {
    const u = this.readUser(parseJsonObject(c.body), false)
    const id = u.userId as string
    // AMBIGUITIES openapi #9: adding an existing id is undocumented; refuse (update has its own endpoint).
    if (this.userStore.has(id)) reject(30001, 'user exists')
    if (this.userStore.size >= this.maxUsers) reject(50009, `face database full (${this.maxUsers} people)`)
    this.userStore.set(id, u)
    return ok({ data: { ...u } })
  }

  private updateUser(c: Ctx): SimHttpResponse {
    const id = decodeSegment(c.rest)
    const existing = this.userStore.get(id)
    if (!existing) reject(20001, `no user ${id}`)
    const u = this.readUser(parseJsonObject(c.body), true)
    if (u.userId !== undefined && u.userId !== id) reject(30001, 'userId in the body differs from the one in the path')
    const merged: Record<string, unknown> = { ...existing, ...u, userId: id }
    if (merged.photo === '') delete merged.photo
    this.userStore.set(id, merged)
    return ok({ data: { ...merged } })
  }

  private deleteUser(c: Ctx): SimHttpResponse {
    const id = c.rest ? decodeSegment(c.rest) : (c.query.get('id') ?? c.query.get('userId') ?? '')
    if (id === '') reject(30003, 'missing user id')
    if (id === 'all') {
      const n = this.userStore.size
      this.userStore.clear()
      this.log(`deleted all ${n} users`)
      return ok()
    }
    const u = this.userStore.get(id)
    if (!u) reject(20001, `no user ${id}`)
    this.userStore.delete(id)
    return ok({ data: { ...u } })
  }

  /**
   * 8.2.5. Filters: `name` and `department` match as substrings (a search box), the others
   * exactly. Order: enrolment order. A page past the end is an empty list with code 200.
   */
  private listUsers(c: Ctx): SimHttpResponse {
    const q = c.query
    const page = intParam(q, 'page', 1, 1)
    const size = Math.min(intParam(q, 'size', 10, 1), 10)
    const type = q.get('type')
    const typeNum = type === null || type === '' ? undefined : intParam(q, 'type', 0)
    const exact = ['userId', 'jobNumber', 'mobile', 'mail', 'icNumber', 'idNumber']
      .map((k) => [k, q.get(k)] as const)
      .filter((e): e is readonly [string, string] => e[1] !== null && e[1] !== '')
    const name = q.get('name') || undefined
    const department = q.get('department') || undefined
    const hits: Record<string, unknown>[] = []
    for (const u of this.userStore.values()) {
      if (typeNum !== undefined && u.userType !== typeNum) continue
      if (exact.some(([k, v]) => u[k] !== v)) continue
      if (name !== undefined && !String(u.name ?? '').includes(name)) continue
      if (department !== undefined && !String(u.department ?? '').includes(department)) continue
      hits.push(u)
    }
    const items = hits.slice((page - 1) * size, page * size).map((u) => ({ ...u }))
    return ok({ data: pageOf(hits.length, page, size, items) })
  }

  // --- 8.3 records ----------------------------------------------------------------------------

  /** Identity a generated record names: mostly a generated person, one in 12 a stranger (type -1). */
  identityForRecord(id: number): Identity {
    const h = hash32(id)
    if (h % 12 === 0) return STRANGER
    return this.identityPool[(h >>> 4) % this.identityPool.length]!
  }

  /** The generated record with this id at this time. */
  generateRecord(id: number, signTime: number): Record<string, unknown> {
    const h = hash32(id)
    const who = this.identityForRecord(id)
    const stranger = who.userType === -1
    const r = (h >>> 8) % 20
    const inputType = stranger ? 1 : r < 14 ? 1 : r < 16 ? 2 : r < 19 ? 3 : 4
    const temperature = Math.round((36 + ((h >>> 13) % 15) / 10) * 10) / 10
    const wearMask = ((h >>> 20) & 3) !== 0
    const rec: Record<string, unknown> = {
      id,
      ...who,
      signTime,
      type: who.userType,
      inputType,
      similarity: inputType !== 1 ? 0 : stranger ? 30 + ((h >>> 24) % 30) : 75 + ((h >>> 24) % 25),
      temperature,
      temperatureState: temperature > 37.3 ? 1 : 0,
      wearMask,
      wearMaskAlarm: !wearMask,
      deviceMark: this.deviceId,
    }
    if (id % 10 === 0) rec.signAvatar = TINY_JPEG_B64
    return rec
  }

  get recordCount(): number {
    return this.sources.reduce((n, s) => n + s.length, 0)
  }

  /** One new record at the device's current time (fields of `partial` win), pushed to listeners. */
  addRecord(partial: Record<string, unknown> = {}): Record<string, unknown> {
    const id = this.nextRecordId++
    const signTime = typeof partial.signTime === 'number' && Number.isInteger(partial.signTime) ? partial.signTime : Math.floor(this.now() / 1000)
    const rec = this.generateRecord(id, signTime)
    const known = typeof partial.userId === 'string' ? this.userStore.get(partial.userId) : undefined
    if (known) Object.assign(rec, identityOf(known), { type: known.userType })
    Object.assign(rec, partial, { id, signTime })
    if (partial.userType !== undefined && partial.type === undefined) rec.type = partial.userType
    if (partial.type !== undefined && partial.userType === undefined) rec.userType = partial.type
    this.explicit.insert(rec)
    this.onRecord?.(rec)
    return rec
  }

  /** N generated records ending at the device's current time; held as one lazy batch, not pushed. */
  addRecords(n: number): void {
    n = Math.floor(n)
    if (n <= 0) return
    const src = new GeneratedSource(this, this.nextRecordId, n, Math.floor(this.now() / 1000))
    this.nextRecordId += n
    this.sources.splice(this.sources.length - 1, 0, src)
  }

  /** Device-local day containing the device's current time, as [start, end] in seconds. */
  today(): [number, number] {
    const off = this.utcOffsetMinutes * 60
    const nowSec = Math.floor(this.now() / 1000)
    const start = Math.floor((nowSec + off) / 86_400) * 86_400 - off
    return [start, start + 86_399]
  }

  /** Newest first: signTime descending, then id descending. */
  queryRecords(f: RecordFilter, page: number, size: number): { total: number; items: Record<string, unknown>[] } {
    const ranges: Range[] = []
    for (const s of this.sources) {
      if (f.startSec > f.endSec) break
      const lo = lowerTime(s, f.startSec)
      const hi = lowerTime(s, f.endSec + 1, lo)
      if (hi > lo) ranges.push({ s, lo, hi })
    }
    const offset = (page - 1) * size
    const filtered = f.type !== undefined || f.userId !== undefined || f.username !== undefined
    if (!filtered) {
      const total = ranges.reduce((n, r) => n + r.hi - r.lo, 0)
      if (offset >= total) return { total, items: [] }
      const cursors = ranges.length === 1 ? [ranges[0]!.hi - 1 - offset] : this.seek(ranges, f, offset)
      return { total, items: mergeDescending(ranges, cursors, size) }
    }
    // Other filters: one pass over the time window, newest first.
    const cursors = ranges.map((r) => r.hi - 1)
    const items: Record<string, unknown>[] = []
    let total = 0
    for (;;) {
      const k = pickNewest(ranges, cursors)
      if (k < 0) break
      const r = ranges[k]!
      const i = cursors[k]!--
      const b = r.s.brief(i)
      if (f.type !== undefined && b.type !== f.type) continue
      if (f.userId !== undefined && b.userId !== f.userId) continue
      if (f.username !== undefined && !b.name.includes(f.username)) continue
      if (total >= offset && items.length < size) items.push(r.s.get(i))
      total++
    }
    return { total, items }
  }

  /**
   * Per range, the index of the first record (descending) after skipping `offset` across all
   * ranges: find the key (time, id) of the offset-th newest by binary search, O(log² n), no scan.
   */
  private seek(ranges: Range[], f: RecordFilter, offset: number): number[] {
    const above = (t: number, id: number): number => ranges.reduce((n, r) => n + r.hi - firstAbove(r, t, id), 0)
    let lo = f.startSec
    let hi = f.endSec
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2)
      if (above(mid, Infinity) <= offset) hi = mid
      else lo = mid + 1
    }
    const t = lo
    let idLo = 0
    let idHi = this.nextRecordId
    while (idLo < idHi) {
      const mid = Math.floor((idLo + idHi) / 2)
      if (above(t, mid) <= offset) idHi = mid
      else idLo = mid + 1
    }
    // Everything strictly above (t, idLo) is skipped; (t, idLo) itself is the first on the page.
    return ranges.map((r) => firstAbove(r, t, idLo) - 1)
  }

  /**
   * 8.3.2. AMBIGUITIES openapi #11: startTime/endTime are inclusive; each missing bound defaults
   * to its end of "today" in the device's local time zone (utcOffsetMinutes). userId "0" or ""
   * (the documented default) and type 0 mean no filter; username matches as a substring.
   */
  private listRecords(c: Ctx): SimHttpResponse {
    const q = c.query
    const [dayStart, dayEnd] = this.today()
    const startSec = intParam(q, 'startTime', dayStart, 0)
    const endSec = intParam(q, 'endTime', dayEnd, 0)
    const type = intParam(q, 'type', 0)
    if (![0, 1, 2, 3, -1].includes(type)) reject(30001, 'type must be one of 0, 1, 2, 3, -1')
    const userId = q.get('userId')
    const username = q.get('username')
    const page = intParam(q, 'page', 1, 1)
    const size = Math.min(intParam(q, 'size', 20, 1), 1000)
    const { total, items } = this.queryRecords(
      {
        startSec,
        endSec,
        type: type === 0 ? undefined : type,
        userId: userId === null || userId === '' || userId === '0' ? undefined : userId,
        username: username === null || username === '' ? undefined : username,
      },
      page,
      size,
    )
    return ok({ data: pageOf(total, page, size, items) })
  }
}

/** Index (into ranges) of the range whose cursor points at the newest record, or -1. */
function pickNewest(ranges: Range[], cursors: number[]): number {
  let best = -1
  let bt = 0
  let bid = 0
  for (let k = 0; k < ranges.length; k++) {
    const r = ranges[k]!
    const i = cursors[k]!
    if (i < r.lo) continue
    const t = r.s.time(i)
    const id = r.s.id(i)
    if (best < 0 || t > bt || (t === bt && id > bid)) {
      best = k
      bt = t
      bid = id
    }
  }
  return best
}

function mergeDescending(ranges: Range[], cursors: number[], size: number): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = []
  while (out.length < size) {
    const k = pickNewest(ranges, cursors)
    if (k < 0) break
    out.push(ranges[k]!.s.get(cursors[k]!--))
  }
  return out
}

/** The list shape of 8.2.5 and 8.3.2. */
function pageOf(total: number, page: number, pageSize: number, items: unknown[]): Record<string, unknown> {
  return { total, pageNum: page, size: items.length, pageSize, totalPage: Math.ceil(total / pageSize), data: items }
}

function intParam(q: URLSearchParams, name: string, def: number, min?: number): number {
  const v = q.get(name)
  if (v === null || v === '') return def
  if (!/^-?\d{1,15}$/.test(v.trim())) reject(30001, `${name} must be an integer`)
  const n = Number(v.trim())
  if (min !== undefined && n < min) reject(30001, `${name} must be at least ${min}`)
  return n
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    reject(30001, 'malformed user id in path')
  }
}

/** A JSON object body: empty → 30003, not JSON or not an object → 30001. */
function parseJsonObject(body: Buffer): Record<string, unknown> {
  let text = body.toString('utf8')
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  if (text.trim() === '') reject(30003, 'missing JSON body')
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    reject(30001, 'body is not valid JSON')
  }
  if (!isPlainObject(v)) reject(30001, 'body must be a JSON object')
  return v
}

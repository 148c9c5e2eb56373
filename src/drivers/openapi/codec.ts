/**
 * openapi codec: pure mappings between doorctl's protocol-neutral shapes and the document's
 * objects (UserObject 8.2.1, SignObject 8.3.1, the answer envelope, the page shape).
 */
import { DeviceError, UsageError } from '../../types/errors.js'
import type { AccessRecord, Person, PersonInfo, PersonRules, Role } from '../../types/driver.js'
import type { SettingSpec, SettingsSchema, SettingsSection } from '../../types/settings.js'
import { parseSettingValue } from '../../util/setting-values.js'

/** UserObject, document 8.2.1. */
export interface UserObject {
  userId: string
  userType: number
  photo?: string
  icNumber: string
  jobNumber: string
  mobile: string
  name: string
  remark: string
  department?: string
  birthday?: number
  entryTime?: number
  mail?: string
  title?: string
  position?: string
  idNumber?: string
  gender?: number
  prompt?: string
  startTime?: number
  endTime?: number
  purpose?: string
  interviewee?: string
  comeFrom?: string
  description?: string
}

/** The UserObject field names the document lists (what doorctl sends back on an update). */
export const USER_OBJECT_FIELDS: readonly (keyof UserObject)[] = [
  'userId', 'userType', 'photo', 'icNumber', 'jobNumber', 'mobile', 'name', 'remark', 'department', 'birthday',
  'entryTime', 'mail', 'title', 'position', 'idNumber', 'gender', 'prompt', 'startTime', 'endTime', 'purpose',
  'interviewee', 'comeFrom', 'description',
]

/** SignObject, document 8.3.1: a UserObject plus the record's own fields. Devices may send numbers as strings. */
export interface SignObject {
  id: number | string
  signAvatar?: string
  signTime: number | string
  type?: number | string
  userType?: number | string
  inputType?: number | string
  similarity?: number | string
  temperature?: number | string
  temperatureState?: number | string
  wearMask?: boolean | number | string
  wearMaskAlarm?: boolean | number | string
  deviceMark?: string
  userId?: string | number
  name?: string
  [key: string]: unknown
}

/** The answer envelope every endpoint returns. */
export interface Envelope {
  code: number
  message: string
  desc: string
  data: unknown
  /** The whole parsed answer (jsonCmd answers carry a `json` field beside `data`). */
  raw: Record<string, unknown>
}

/** The page shape of /api/user/list and /api/record. */
export interface Page<T> {
  total: number
  pageNum: number
  size: number
  pageSize: number
  totalPage: number
  items: T[]
}

export const USER_TYPE = { employee: 1, visitor: 2, blacklist: 3, stranger: -1 } as const
const TYPE_NAMES: Record<number, string> = { 1: 'employee', 2: 'visitor', 3: 'blacklist', [-1]: 'stranger' }
const INPUT_TYPES: Record<number, string> = { 1: 'face', 2: 'qrcode', 3: 'card', 4: 'uuid' }

/** Limits from UserObject (8.2.1); the photo limit is the one the other documents give for the same devices. */
export const personRules: PersonRules = {
  protocol: 'openapi',
  maxLength: { id: 40, name: 80, card: 40, phone: 20, department: 80 },
  required: ['id', 'name'],
  // openapi 8.2.3/8.2.4: the id goes into the URL path, and the id `all` means "every person" to delete
  idPattern: {
    re: /^(?!all$)[^\s/\\?#%]+$/i,
    description: 'no spaces or / \\ ? # % (the id goes into the URL path), and not "all" (which deletes everyone)',
  },
  maxPhotoBytes: 400 * 1024,
}

/** A number from a number or a numeric string; NaN otherwise. */
export function toNumber(v: unknown): number {
  if (typeof v === 'number') return v
  if (typeof v === 'string' && v.trim() !== '') return Number(v)
  return NaN
}

function str(v: unknown): string {
  return v === undefined || v === null ? '' : String(v)
}

function seconds(d: Date): number {
  return Math.floor(d.getTime() / 1000)
}

/** Decode a base64 image, with or without a `data:` prefix (AMBIGUITIES openapi #8). */
export function decodeImage(b64: string): Buffer {
  const comma = b64.startsWith('data:') ? b64.indexOf(',') : -1
  return Buffer.from(comma >= 0 ? b64.slice(comma + 1) : b64, 'base64')
}

export interface EncodedPerson {
  user: UserObject
  /** Things the protocol could not carry as asked, for the outcome message. */
  notes: string[]
}

/** Person (+ JPEG bytes) → UserObject. */
export function personToUserObject(p: Person, photo?: Buffer): EncodedPerson {
  const notes: string[] = []
  const role: Role = p.role ?? 'user'
  let userType: number = USER_TYPE.employee
  if (role === 'blacklist') userType = USER_TYPE.blacklist
  // AMBIGUITIES openapi #10: no admin type in 8.2.1; an admin is sent as an employee
  else if (role === 'admin') notes.push('openapi has no admin type: sent as an ordinary person')
  const hasValidity = p.validFrom !== undefined || p.validTo !== undefined
  // AMBIGUITIES openapi #7: required fields that "may be an empty string" are sent, empty
  const user: UserObject = {
    userId: p.id,
    userType,
    icNumber: p.card ?? '',
    jobNumber: '',
    mobile: p.phone ?? '',
    name: p.name ?? '',
    remark: '',
  }
  if (p.department !== undefined) user.department = p.department
  if (hasValidity) {
    if (role === 'blacklist') {
      notes.push('validity dates dropped: openapi has them only for visitors, not for blacklisted people')
    } else {
      // AMBIGUITIES openapi #10: validity exists only as the visitor fields startTime/endTime (seconds, section 5)
      user.userType = USER_TYPE.visitor
      if (p.validFrom !== undefined) user.startTime = seconds(p.validFrom)
      if (p.validTo !== undefined) user.endTime = seconds(p.validTo)
      notes.push('sent as a visitor (openapi keeps validity dates only for visitors)')
    }
  }
  if (p.password !== undefined && p.password !== '') notes.push('password ignored: openapi has no per-person password')
  // AMBIGUITIES openapi #8: plain base64 (no data: prefix), as "Content-Type: image/jpeg" suggests
  if (photo !== undefined) user.photo = photo.toString('base64')
  return { user, notes }
}

function roleOf(userType: number): Role | '' {
  if (userType === USER_TYPE.blacklist) return 'blacklist'
  if (userType === USER_TYPE.employee || userType === USER_TYPE.visitor) return 'user'
  return ''
}

function dateFromSeconds(v: unknown): Date | undefined {
  const n = toNumber(v)
  return Number.isFinite(n) && n > 0 ? new Date(n * 1000) : undefined
}

/** UserObject (as a device reports it) → PersonInfo. */
export function userObjectToPersonInfo(u: Record<string, unknown>): PersonInfo {
  const userType = toNumber(u.userType)
  const info: PersonInfo = {
    id: str(u.userId),
    name: str(u.name),
    card: str(u.icNumber),
    phone: str(u.mobile),
    department: str(u.department),
    role: roleOf(userType),
    hasPhoto: typeof u.photo === 'string' && u.photo !== '',
  }
  const from = dateFromSeconds(u.startTime)
  const to = dateFromSeconds(u.endTime)
  if (from) info.validFrom = from
  if (to) info.validTo = to
  // 8.2.5 lists whole UserObjects, photo (底库图片 base64) included: people copy takes it from here
  if (info.hasPhoto) info.photo = decodeImage(str(u.photo))
  const extras: Record<string, string | number | null> = { user_type: TYPE_NAMES[userType] ?? str(u.userType) }
  if (u.jobNumber) extras.job_number = str(u.jobNumber)
  if (u.remark) extras.remark = str(u.remark)
  info.extras = extras
  return info
}

function optNumber(v: unknown): number | null {
  const n = toNumber(v)
  return Number.isFinite(n) ? n : null
}

function optBool(v: unknown): boolean | null {
  if (typeof v === 'boolean') return v
  if (v === 1 || v === '1' || v === 'true') return true
  if (v === 0 || v === '0' || v === 'false') return false
  return null
}

/**
 * signTime in seconds. Section 5 says seconds; a 13-digit value can only be milliseconds, so it is
 * read as such rather than as a date thousands of years ahead.
 */
export function signTimeSeconds(s: SignObject): number {
  const t = toNumber(s.signTime)
  if (!Number.isFinite(t)) return NaN
  return t > 1e11 ? Math.floor(t / 1000) : Math.floor(t)
}

/**
 * SignObject → AccessRecord.
 * result: the record only says who was recognised, not whether the door opened, so a recognised
 * employee or visitor is 'granted', a blacklist match 'denied', an unrecognised face (-1) 'stranger'.
 */
export function signToRecord(s: SignObject): AccessRecord {
  // openapi 8.3.1: the record carries both UserObject.userType and its own `type`; prefer `type`
  const typeNum = toNumber(s.type ?? s.userType)
  const inputType = toNumber(s.inputType)
  let result: string
  if (typeNum === USER_TYPE.employee || typeNum === USER_TYPE.visitor) result = 'granted'
  else if (typeNum === USER_TYPE.blacklist) result = 'denied'
  else if (typeNum === USER_TYPE.stranger) result = 'stranger'
  else result = 'unknown'
  const userId = typeNum === USER_TYPE.stranger || s.userId === undefined || s.userId === null ? '' : String(s.userId)
  const rec: AccessRecord = {
    recordId: String(s.id),
    time: new Date(signTimeSeconds(s) * 1000),
    userId,
    name: typeof s.name === 'string' ? s.name : '',
    type: TYPE_NAMES[typeNum] ?? str(s.type ?? s.userType),
    result,
    // the openapi document has no direction field
    direction: '',
    method: INPUT_TYPES[inputType] ?? str(s.inputType),
    extras: {
      similarity: optNumber(s.similarity),
      temperature: optNumber(s.temperature),
      temperature_state: optNumber(s.temperatureState),
      mask: optBool(s.wearMask),
      mask_alarm: optBool(s.wearMaskAlarm),
      device_mark: typeof s.deviceMark === 'string' ? s.deviceMark : null,
    },
  }
  if (typeof s.signAvatar === 'string' && s.signAvatar !== '') rec.photo = decodeImage(s.signAvatar)
  return rec
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Bytes of a page's record array parsed at a time: small strings, see parseAnswer. */
const SLICE_BYTES = 32 * 1024
const ITEMS_KEY = Buffer.from('"data":[')

/**
 * The value of a device answer's JSON bytes (as JSON.parse of their text; a UTF-8 BOM is
 * skipped). A page of 1000 records (~350 KB) is not made one string: V8 builds a string of more
 * than ~128 KB in its large-object space, several times costlier and kept until a full GC. So
 * the page's `data` array (8.2.5, 8.3.2) is parsed a slice of records at a time and put back into
 * the rest of the answer. A slice cut inside a string or a nested value cannot parse, and then,
 * as for anything not shaped like a page, the whole text is parsed at once.
 */
export function parseAnswer(bytes: Buffer): unknown {
  const start = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0
  const whole = (): unknown => JSON.parse(bytes.toString('utf8', start))
  if (bytes.length - start < 2 * SLICE_BYTES) return whole()
  const open = bytes.indexOf(ITEMS_KEY, start) + ITEMS_KEY.length - 1
  const close = bytes.lastIndexOf(0x5d /* ] */)
  if (open < ITEMS_KEY.length - 1 || close <= open) return whole()
  try {
    const rest = JSON.parse(bytes.toString('utf8', start, open + 1) + bytes.toString('utf8', close)) as unknown
    const page = isObject(rest) ? rest.data : undefined
    if (!isObject(page) || !Array.isArray(page.data) || page.data.length !== 0) return whole()
    const items: unknown[] = []
    for (let from = open + 1; from < close; ) {
      const cut = from + SLICE_BYTES < close ? bytes.indexOf('},{', from + SLICE_BYTES) : -1
      const to = cut === -1 || cut >= close ? close : cut + 1
      const slice = JSON.parse(`[${bytes.toString('utf8', from, to)}]`) as unknown[]
      for (const item of slice) items.push(item)
      from = to + 1
    }
    page.data = items
    return rest
  } catch {
    return whole()
  }
}

/** Parse the `{code, message, desc, data}` envelope; a numeric-string code is accepted. */
export function parseEnvelope(raw: unknown, context = 'answer'): Envelope {
  const code = isObject(raw) ? toNumber(raw.code) : NaN
  if (!isObject(raw) || !Number.isInteger(code)) {
    throw new DeviceError(`device answered something that is not an openapi answer (no numeric "code") to ${context}`, {
      suggestion: 'check that HOST:PORT is the openapi port of a face terminal (default 8899)',
    })
  }
  return { code, message: str(raw.message), desc: str(raw.desc), data: raw.data, raw }
}

/** Parse the page shape `{total, pageNum, size, pageSize, totalPage, data: [...]}`; missing parts read as empty. */
export function parsePage<T>(data: unknown): Page<T> {
  if (!isObject(data)) return { total: 0, pageNum: 0, size: 0, pageSize: 0, totalPage: 0, items: [] }
  const items = Array.isArray(data.data) ? (data.data as T[]) : []
  const n = (v: unknown, dflt: number): number => {
    const x = toNumber(v)
    return Number.isFinite(x) ? x : dflt
  }
  return {
    total: n(data.total, items.length),
    pageNum: n(data.pageNum, 0),
    size: n(data.size, items.length),
    pageSize: n(data.pageSize, 0),
    totalPage: n(data.totalPage, 0),
    items,
  }
}

/** A user as the device reports it, reduced to the documented fields (for sending back on an update). */
export function documentedUserFields(u: Record<string, unknown>): UserObject {
  const out: Record<string, unknown> = {}
  for (const k of USER_OBJECT_FIELDS) if (u[k] !== undefined && u[k] !== null) out[k] = u[k]
  // AMBIGUITIES openapi #7: required-but-may-be-empty fields are always sent
  for (const k of ['icNumber', 'jobNumber', 'mobile', 'remark', 'name'] as const) if (out[k] === undefined) out[k] = ''
  out.userId = str(u.userId)
  const t = toNumber(u.userType)
  out.userType = Number.isFinite(t) ? t : USER_TYPE.employee
  return out as unknown as UserObject
}

const SWITCH: SettingSpec = { type: 'integer', min: 0, max: 1 }
const INT: SettingSpec = { type: 'integer' }
const STRING: SettingSpec = { type: 'string' }

/** The settable objects: NetworkObject (8.1.2), SmartFaceObject (8.1.4), PerParaObject (8.1.5), types and ranges as their tables give them. */
export const CONFIG_FIELDS: Readonly<Record<'network' | 'smartface' | 'perpara', SettingsSection>> = {
  // ipAddress is the door's own address: never given to several doors by one `*` or tag row
  network: { dhcpEnable: SWITCH, ipAddress: { type: 'string', perDevice: true }, subMask: STRING, DNS1: STRING, DNS2: STRING, defRout: STRING },
  smartface: {
    faceEnable: SWITCH,
    faceCmpEnable: SWITCH,
    faceThre: { type: 'integer', min: 0, max: 10 },
    faceMinsize: { type: 'integer', min: 30, max: 300 },
    faceMaxsize: { type: 'integer', min: 300, max: 500 },
    faceInterval: { type: 'integer', min: 6, max: 20 },
    imgType: { type: 'integer', min: 0, max: 2 },
    maskDetecEnable: SWITCH,
    tempDetecEnable: SWITCH,
    tempWarnThre: { type: 'number', min: 37.0, max: 37.5 },
    ftpPutImgEnable: SWITCH,
    faceFrame: SWITCH,
  },
  perpara: {
    detecTemMod: INT,
    alarmType: SWITCH,
    voiceProswitch: SWITCH,
    tempNormal: INT,
    maskNormal: INT,
    cmpNormal: INT,
    RecordOpen: SWITCH,
    unlockControl: SWITCH,
    unlockOuttime: { type: 'integer', min: 1, max: 30 },
  },
}

export type ConfigSection = keyof typeof CONFIG_FIELDS

/** Every setting a direct-mode device reports through its getters (8.1.12, 8.1.14, 8.1.16), one write per *cfg object. */
export const settingsSchema: SettingsSchema = { sections: CONFIG_FIELDS }

function specFromValue(v: unknown): SettingSpec {
  if (typeof v === 'number') return Number.isInteger(v) ? INT : { type: 'number' }
  return STRING
}

/**
 * Merge `values` (strings from the command line, or already typed) into the device's `current`
 * object, coerced to each field's documented type. Keys the device reports beyond the document are
 * accepted too, typed by their current value. Throws UsageError before anything is sent.
 */
export function mergeConfig(
  section: ConfigSection,
  current: Record<string, unknown>,
  values: Record<string, unknown>,
): Record<string, unknown> {
  const specs: Record<string, SettingSpec> = { ...CONFIG_FIELDS[section] }
  for (const [k, v] of Object.entries(current)) if (!(k in specs)) specs[k] = specFromValue(v)
  const keys = Object.keys(specs)
  const merged: Record<string, unknown> = { ...current }
  for (const [given, raw] of Object.entries(values)) {
    const key = Object.hasOwn(specs, given) ? given : keys.find((k) => k.toLowerCase() === given.toLowerCase())
    if (key === undefined) {
      throw new UsageError(`unknown ${section} setting "${given}"`, `valid keys: ${keys.join(', ')}`)
    }
    const parsed = parseSettingValue(specs[key]!, raw)
    if ('error' in parsed) throw new UsageError(`${section} setting ${key} ${parsed.error}`)
    merged[key] = parsed.value
  }
  return merged
}

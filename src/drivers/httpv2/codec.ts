/**
 * httpv2 wire format (httpv2-face.md): pure functions, no I/O. Every quirk of the document is
 * handled here once, with a comment naming its section or its AMBIGUITIES.md (httpv2) item.
 * Sections are named by their Chinese headings (the document has no numbers).
 */
import type { GatewayRequest, SpoolRecord } from '../../types/gateway.js'
import type { OpenMode, PersonInfo, Role } from '../../types/driver.js'
import { USER_ID_RE, WORK_SETTINGS } from './rules.js'
import type { SettingSpec } from '../../types/settings.js'
import { parseSettingValue } from '../../util/setting-values.js'
import { deviceOffsetAt, deviceWallToEpoch, type DeviceClock } from '../../util/time.js'

export type Json = Record<string, unknown>

/** What the codec reads from a request: the gateway already gunzipped bodies and parts. */
export type Incoming = Pick<GatewayRequest, 'json' | 'fields' | 'files' | 'query'>

// ---- small helpers ------------------------------------------------------------------------

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** A number from a number or a numeric string; NaN otherwise. */
export function num(v: unknown): number {
  if (typeof v === 'number') return v
  if (typeof v === 'string' && v.trim() !== '') return Number(v.trim())
  return NaN
}

function str(v: unknown): string {
  return v === undefined || v === null ? '' : String(v).trim()
}

/** JSON.parse that also takes trailing commas (the keepalive example has one: AMBIGUITIES #4). */
import { parseLenientJson as parseJsonText } from '../../util/lenient-json.js'
export { parseJsonText }

function findKey<T>(obj: Record<string, T>, names: readonly string[]): string | undefined {
  for (const n of names) if (n in obj) return n
  const lower = new Map(Object.keys(obj).map((k) => [k.toLowerCase(), k]))
  for (const n of names) {
    const k = lower.get(n.toLowerCase())
    if (k !== undefined) return k
  }
  return undefined
}

/**
 * A JSON object carried by a multipart part (field, or file: busboy treats an
 * application/octet-stream part as a file, and the record example sends RecordDetail that way),
 * or by a JSON body. Part names are matched case-insensitively. 'invalid' when present but not JSON.
 */
export function jsonPart(inc: Incoming, names: readonly string[]): Json | 'invalid' | undefined {
  const f = findKey(inc.fields, names)
  const file = f === undefined ? findKey(inc.files, names) : undefined
  const text = f !== undefined ? inc.fields[f] : file !== undefined ? inc.files[file].data.toString('utf8') : undefined
  if (text !== undefined) {
    try {
      const v = parseJsonText(text)
      return isObject(v) ? v : 'invalid'
    } catch {
      return 'invalid'
    }
  }
  if (isObject(inc.json)) {
    const k = findKey(inc.json, names)
    if (k !== undefined) {
      const v = inc.json[k]
      if (isObject(v)) return v
      if (typeof v === 'string') {
        try {
          const parsed = parseJsonText(v)
          return isObject(parsed) ? parsed : 'invalid'
        } catch {
          return 'invalid'
        }
      }
      return 'invalid'
    }
  }
  return undefined
}

/** A file part by any of its names (the record example says `pic` where the table says `Photo`: AMBIGUITIES #10). */
export function filePart(inc: Incoming, names: readonly string[]): Buffer | undefined {
  const k = findKey(inc.files, names)
  const data = k === undefined ? undefined : inc.files[k].data
  return data && data.length > 0 ? data : undefined
}

/** A plain value from a JSON body, a form field or the query string (v1 paths' bodies are undocumented: AMBIGUITIES #2). */
export function plainValue(inc: Incoming, names: readonly string[]): unknown {
  if (isObject(inc.json)) {
    const k = findKey(inc.json, names)
    if (k !== undefined) return inc.json[k]
  }
  const f = findKey(inc.fields, names)
  if (f !== undefined) return inc.fields[f]
  for (const n of names) {
    for (const [k, v] of inc.query) if (k.toLowerCase() === n.toLowerCase()) return v
  }
  return undefined
}

/**
 * The device SN wherever this request carries it: `SN` (most), `DeviceSN` (UploadWorkSetting),
 * inside `ResultJson` (RegisterIdentifyTicketResult). Trimmed: the record examples' SN part is
 * " FC-8380T12345678" with a leading space (AMBIGUITIES #10).
 */
export function snOf(inc: Incoming, extra?: Json): string | undefined {
  const candidates = [plainValue(inc, ['SN']), plainValue(inc, ['DeviceSN']), extra?.SN, extra?.DeviceSN]
  for (const c of candidates) {
    const s = typeof c === 'string' || typeof c === 'number' ? String(c).trim() : ''
    if (s !== '') return s
  }
  return undefined
}

// ---- answers ------------------------------------------------------------------------------

export function okAnswer(extra: Json = {}): Json {
  return { Success: 1, ...extra }
}

/** Success 0 + Message: "!= 1 时需要在 Message 中指出错误描述" (every answer table; AMBIGUITIES #3: 0 = failed). */
export function errorAnswer(message: string): Json {
  return { Success: 0, Message: message }
}

/** Keepalive "返回错误代码": 401 = connected but the device is not activated (unknown SN). */
export function unknownDeviceAnswer(): Json {
  return { Success: 401, Message: 'Connected to server, but device is not activated' }
}

// ---- keepalive ------------------------------------------------------------------------------

export type Flag = 'UploadWorkParameter' | 'Remote' | 'SyncParameter' | 'DeletePeople' | 'AddPeople'

/**
 * The order a device works through several flags. The document gives two (AMBIGUITIES #1):
 * "syncParameter > Remote > deletePeople > addPeople" (调用流程) and
 * "UploadWorkParameter > Remote > SyncParameter > DeletePeople > AddPeople" (under the
 * keepalive answer, repeated by README.md). We take the second, and raise the flags of one
 * command at a time, so a device of either reading does our commands in queue order.
 */
export const FLAG_ORDER: readonly Flag[] = ['UploadWorkParameter', 'Remote', 'SyncParameter', 'DeletePeople', 'AddPeople']

/** Keepalive answer: always `Success: 1` for a known device, flags or not (field reports: a device given 0 with flags does nothing). */
export function keepaliveAnswer(flags: Iterable<Flag>): Json {
  const set = new Set(flags)
  const out: Json = { Success: 1 }
  for (const f of FLAG_ORDER) if (set.has(f)) out[f] = 1
  return out
}

export interface DoorStatus {
  /** RelayStatus: 0 COM–NC closed, 1 COM–NO closed */
  relay?: number
  keepOpen?: boolean
  doorOpen?: boolean
  locked?: boolean
  alarms: string[]
}

function flag01(v: unknown): boolean | undefined {
  const n = num(v)
  return n === 0 ? false : n === 1 ? true : undefined
}

/** Alarm names, comma separated; UploadWorkSetting's example writes an empty one as "\"\"". */
export function parseAlarms(v: unknown): string[] {
  return str(v).replace(/"/g, '').split(',').map((s) => s.trim()).filter(Boolean)
}

/**
 * Whether a keepalive says the device holds no more records (record collection): 设备心跳保活包
 * has it sent "当设备空闲时，距离上次跟服务器通讯超过[保活间隔]秒后", idle and silent for a whole
 * interval. 调用流程 also has it keepalive on time in the middle of long work: such a keepalive
 * follows other requests closely, so only the silence before it counts, never the keepalive alone.
 */
export function keepaliveMeansIdle(now: number, previousRequestAt: number | undefined, keepaliveMs: number | undefined): boolean {
  return previousRequestAt !== undefined && keepaliveMs !== undefined && now - previousRequestAt >= keepaliveMs
}

/** Door statuses of a keepalive body (设备心跳保活包 请求参数). */
export function parseKeepalive(body: Json): DoorStatus {
  const relay = num(body.RelayStatus)
  return {
    relay: Number.isFinite(relay) ? relay : undefined,
    keepOpen: flag01(body.KeepOpenStatus),
    doorOpen: flag01(body.DoorSensorStatus),
    locked: flag01(body.LockDoorStatus),
    alarms: parseAlarms(body.AlarmStatus),
  }
}

// ---- remote commands ----------------------------------------------------------------------

/** RemoteCommand `Opendoor`: 1 relay, 2 keep open, 3 close (end keep-open), 4 lock, 5 unlock. */
export const OPEN_CODES: Readonly<Record<OpenMode, number>> = { pulse: 1, 'keep-open': 2, close: 3, lock: 4, unlock: 5 }

export type RemoteOrder =
  | { kind: 'open'; mode: OpenMode }
  | { kind: 'restart' }
  | { kind: 'repostRecords' }
  | { kind: 'pushAllPeople' }
  | { kind: 'queryPeople'; ids: readonly string[] }
  | { kind: 'registerFace'; userId: string }
  | { kind: 'snapshot' }

/** The RemoteCommand answer body for one order. */
export function remoteAnswer(o: RemoteOrder): Json {
  switch (o.kind) {
    case 'open':
      return { Success: 1, Opendoor: OPEN_CODES[o.mode] }
    case 'restart':
      return { Success: 1, Restart: 1 }
    case 'repostRecords':
      return { Success: 1, RepostRecord: 1 }
    case 'pushAllPeople':
      return { Success: 1, PushAllPeople: 1 }
    case 'queryPeople':
      // QueryPeople is "[uint]": numbers (UserIDs are uint32 digit strings, exact as numbers)
      return { Success: 1, QueryPeople: o.ids.map(Number) }
    case 'registerFace': {
      const uid = Number(o.userId)
      // AMBIGUITIES #9: the table's object form under RegisterIdentifyTicket (RegisterType 4 = face),
      // plus the example's flat RegisterIdentifyUserID. The example's flat `"RegisterIdentifyTicket": 4`
      // cannot share the key with the object: a device of that reading gets the object.
      return { Success: 1, RegisterIdentifyTicket: { RegisterType: 4, UserID: uid }, RegisterIdentifyUserID: uid }
    }
    case 'snapshot':
      // "Snapshoot" (sic) is the document's spelling
      return { Success: 1, Snapshoot: 1 }
  }
}

// ---- work settings ----------------------------------------------------------------------------

/** Settings that are secrets (passwords): shown as set/unset only. */
export const SECRET_SETTINGS: ReadonlySet<string> = new Set(
  Object.values(WORK_SETTINGS).flatMap((keys) => Object.entries(keys).filter(([, spec]) => spec.secret).map(([k]) => k)),
)

const SECTION_OF = new Map<string, string>()
for (const [section, keys] of Object.entries(WORK_SETTINGS)) for (const k of Object.keys(keys)) SECTION_OF.set(k, section)

export interface WorkSettings {
  sn?: string
  /** Read-only facts: firmware, storage, counters, door statuses, function list. */
  device: Json
  /** Writable parameters by our section names; unknown keys land in `other`. */
  sections: Record<string, Json>
  /** TimeZone, whole hours east of UTC. */
  timeZoneHours?: number
  /** PeopleStorageInfo.Person.Current: how many people the device holds. */
  peopleCount?: number
  /** The keepalive interval it runs with (ms). */
  keepaliveMs?: number
}

/**
 * UploadWorkSetting body. Its example has `DeviceSN` twice with different values (JSON.parse
 * keeps the last); the referenced 设备工作参数.md is not part of the document, so the writable
 * keys are those of the DownloadWorkSetting example and the rest is read-only.
 */
export function parseWorkSettings(body: Json): WorkSettings {
  const device: Json = {}
  const sections: Record<string, Json> = {}
  for (const [k, v] of Object.entries(body)) {
    if (k === 'Success') continue
    const section = SECTION_OF.get(k)
    const shown = SECRET_SETTINGS.has(k) ? (str(v) === '' ? '' : '(set)') : v
    if (section) (sections[section] ??= {})[k] = shown
    else device[k] = k === 'AlarmStatus' ? parseAlarms(v) : shown
  }
  const tz = num(body.TimeZone)
  const storage = isObject(body.PeopleStorageInfo) && isObject(body.PeopleStorageInfo.Person) ? num(body.PeopleStorageInfo.Person.Current) : NaN
  const sn = str(body.DeviceSN ?? body.SN)
  // the UploadWorkSetting example has KeepaliveTime and HTTPClient_KeepaliveTime (30 both); the HTTP client's is the one this protocol runs on
  const keepalive = num(body.HTTPClient_KeepaliveTime ?? body.KeepaliveTime)
  return {
    sn: sn || undefined,
    device,
    sections,
    timeZoneHours: Number.isInteger(tz) && Math.abs(tz) <= 14 ? tz : undefined,
    peopleCount: Number.isInteger(storage) && storage >= 0 ? storage : undefined,
    keepaliveMs: Number.isFinite(keepalive) && keepalive > 0 ? keepalive * 1000 : undefined,
  }
}

/** The `info` command's data: `{ device: {...}, alarm: {...}, network: {...}, ... }` (sections at the top so `config get SECTION` finds them). */
export function workSettingsData(w: WorkSettings): Json {
  return { device: w.device, ...w.sections }
}

/**
 * Values for DownloadWorkSetting from `config set SECTION KEY=VALUE...`: keys are checked
 * against the section's documented parameters (case-insensitively, sent in the document's
 * spelling) and typed like the document's example. `json` takes any writable key.
 */
export function settingValues(section: string, values: Json): { values: Json } | { error: string } {
  const allowed: Record<string, SettingSpec> = section === 'json'
    ? Object.assign({}, ...Object.values(WORK_SETTINGS))
    : (WORK_SETTINGS[section] as Record<string, SettingSpec> | undefined) ?? {}
  if (section !== 'json' && !(section in WORK_SETTINGS)) return { error: `httpv2 devices have no settings section "${section}" (sections: ${Object.keys(WORK_SETTINGS).join(', ')})` }
  const lower = new Map(Object.keys(allowed).map((k) => [k.toLowerCase(), k]))
  const out: Json = {}
  const problems: string[] = []
  for (const [k, v] of Object.entries(values)) {
    const key = lower.get(k.toLowerCase())
    if (!key) {
      const elsewhere = [...SECTION_OF.keys()].find((x) => x.toLowerCase() === k.toLowerCase())
      problems.push(elsewhere
        ? `"${k}" is in section ${SECTION_OF.get(elsewhere)}, not ${section}`
        : `unknown setting "${k}" for section ${section} (known: ${Object.keys(allowed).join(', ')})`)
      continue
    }
    const c = parseSettingValue(allowed[key]!, v)
    if ('error' in c) problems.push(`${key} ${c.error}`)
    else out[key] = c.value
  }
  if (problems.length > 0) return { error: problems.join('; ') }
  if (Object.keys(out).length === 0) return { error: 'nothing to set' }
  return { values: out }
}

function offsetText(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+'
  const a = Math.abs(minutes)
  return `UTC${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`
}

/**
 * syncTime → SystemTime (unix seconds, UTC) and TimeZone (whole hours only: AMBIGUITIES #14).
 * An offset such as +05:30 is rounded to the nearest hour, away from zero on a tie, and the
 * note says what that means; the clock itself (and so every record time) stays exact.
 */
export function timeSettings(epochMs: number, utcOffsetMinutes: number): { values: Json; note: string } {
  const hours = Math.sign(utcOffsetMinutes) * Math.round(Math.abs(utcOffsetMinutes) / 60)
  const values = { SystemTime: Math.floor(epochMs / 1000), TimeZone: hours }
  if (hours * 60 === utcOffsetMinutes) return { values, note: `clock set, time zone ${offsetText(utcOffsetMinutes)}` }
  const off = Math.abs(hours * 60 - utcOffsetMinutes)
  return {
    values,
    note: `clock set; time zone rounded from ${offsetText(utcOffsetMinutes)} to ${offsetText(hours * 60)} (httpv2 devices take whole hours only): ` +
      `the device's local display and time-group schedules run ${off} min off, record times stay exact`,
  }
}

/** DownloadWorkSetting answer: Success, the SN the example echoes, and only the values to change. */
export function downloadSettingAnswer(sn: string, values: Json): Json {
  return { Success: 1, DeviceSN: sn, ...values }
}

// ---- people -----------------------------------------------------------------------------------

export type { PersonPayload } from '../../gateway/payloads.js'
import type { PersonPayload } from '../../gateway/payloads.js'

const ROLE_CODES: Record<Role, number> = { user: 0, admin: 1, blacklist: 2 }
const ROLE_NAMES: Record<number, Role> = { 0: 'user', 1: 'admin', 2: 'blacklist' }
/** ExpirationDate "最大表示到 2099年12月31日" */
export const MAX_EXPIRATION = Math.floor(Date.UTC(2099, 11, 31, 23, 59, 59) / 1000)
const UINT64_MAX = 18446744073709551615n

/** What PersonRules cannot express (PeopleJson table); undefined when the person can be sent. */
export function personProblem(p: PersonPayload): string | undefined {
  if (!USER_ID_RE.test(p.id)) return `id "${p.id}" is not an httpv2 UserID (digits, 1 to 4294967295)`
  if (p.card !== undefined && p.card !== '') {
    if (!/^\d{1,20}$/.test(p.card) || BigInt(p.card) > UINT64_MAX) return `card "${p.card}" must be digits up to 18446744073709551615 (CardNum is a uint64)`
  }
  if (p.password !== undefined && p.password !== '' && !/^\d{4,8}$/.test(p.password)) return 'password must be 4 to 8 digits (PeopleJson Password: 0 or 4–8 digits)'
  for (const [f, v] of [['name', p.name], ['department', p.department]] as const) {
    if (v !== undefined && Buffer.byteLength(v) > 63) return `${f} is ${Buffer.byteLength(v)} bytes; httpv2 devices take fewer than 64 bytes`
  }
  return undefined
}

/** The photo as PeopleJson carries it: a URL (we publish the file) or base64, with its MD5 and length. */
export interface PhotoRef {
  photo: string
  /** MD5 hex, upper case: the document's example is upper case, and so are SoftwareMD5/FileMD5 ("大写"); AMBIGUITIES #13. */
  md5: string
  len: number
}

/** Fields of a device's own PeopleJson that survive our update of the same person (enrollFace keeps them). */
const KEPT_FIELDS = ['Code', 'Name', 'Job', 'Department', 'IdentityCard', 'Attachment', 'Password', 'CardNum', 'QRCode', 'AccessType', 'ExpirationDate', 'OpenTimes', 'KeepOpen', 'Timegroup', 'Holidays', 'Elevators'] as const

/** validTo (ms) → ExpirationDate (unix seconds; 0 = no limit; capped at 2099-12-31). AMBIGUITIES #14: the instant is sent as is, no time of day added. */
export function expirationDate(validTo: number | undefined): number {
  if (validTo === undefined || !Number.isFinite(validTo)) return 0
  // a date before 1970 must not become 0, which means "no limit"
  return Math.min(MAX_EXPIRATION, Math.max(1, Math.floor(validTo / 1000)))
}

/**
 * PeopleJson for one person. `partial` (enrollFace): only the fields we have, over the fields the
 * device last told us (`base`), so an enrollment does not reset the person's role or expiry.
 * Otherwise (people import) AccessType and ExpirationDate are always sent: a row without them
 * means a regular user without limit. validFrom, phone, room, unit have no PeopleJson field.
 */
export function peopleJson(p: PersonPayload, photo?: PhotoRef, opts: { partial?: boolean; base?: Json } = {}): Json {
  const out: Json = { UserID: p.id }
  if (opts.base) for (const k of KEPT_FIELDS) if (opts.base[k] !== undefined) out[k] = opts.base[k]
  if (p.name !== undefined) out.Name = p.name
  if (p.department !== undefined) out.Department = p.department
  if (p.card !== undefined) out.CardNum = p.card
  if (p.password !== undefined) out.Password = p.password
  if (p.role !== undefined) out.AccessType = ROLE_CODES[p.role]
  else if (!opts.partial) out.AccessType = 0
  if (p.validTo !== undefined || !opts.partial) out.ExpirationDate = expirationDate(p.validTo)
  if (photo) {
    out.Photo = photo.photo
    out.PhotoMD5 = photo.md5
    out.PhotoLen = photo.len
  }
  return out
}

/** DownloadPeopleList answer: the count as `PeopleCount` (table) and `Count` (example), both (AMBIGUITIES #5). An empty list ends the device's loop. */
export function downloadPeopleAnswer(list: readonly Json[]): Json {
  return { Success: 1, PeopleCount: list.length, Count: list.length, PeopleList: list }
}

/** `Limit` of DownloadPeopleList / DeletePeopleList: required yet "不携带则默认50" and at most 1000 (AMBIGUITIES #8). */
export function limitOf(v: unknown): number {
  const n = Math.floor(num(v))
  return Number.isFinite(n) && n > 0 ? Math.min(n, 1000) : 50
}

/** errorCode 人员失败错误码 (DownloadPeopleListResult). Codes 7–19 are not in the table. */
export const PEOPLE_ERRORS: Readonly<Record<number, string>> = {
  1: 'the device refused the person data (a parameter is invalid)',
  2: 'the device could not download the photo from its URL',
  3: 'the photo is too large for the device (it must be under 500 KB)',
  4: 'the device could not download the face feature',
  5: 'the device could not download the fingerprint feature',
  6: 'the device could not download the palm-vein feature',
  20: 'this face is already enrolled for another person',
  21: 'this fingerprint is already enrolled for another person',
  22: 'this palm vein is already enrolled for another person',
  23: 'this card number is already used by another person',
  24: 'the device is full (no room for more people)',
  25: 'the device had an error querying its data',
  26: 'the device had an error saving the photo',
  27: 'the face feature has a wrong format',
  28: 'the fingerprint feature has a wrong format',
  29: 'the palm-vein feature has a wrong format',
  30: 'no recognisable face in the photo',
  31: 'the device had an error saving the fingerprint',
  32: 'the device had an error saving the palm vein',
}

/** A readable reason for a person the device refused. */
export function peopleErrorMessage(code: number | undefined, repeatId?: string, errMsg?: string): string {
  let text = code === undefined || !Number.isFinite(code)
    ? 'the device refused this person without an error code'
    : PEOPLE_ERRORS[code] ?? `the device refused this person with error code ${code} (not in the document's table)`
  if (repeatId && repeatId !== '0') text += ` (same as person ${repeatId})`
  if (errMsg) text += `: ${errMsg}`
  return text
}

export interface PersonFailure {
  userId: string
  code?: number
  repeatId?: string
  message: string
}

export interface DownloadResult {
  successCount?: number
  failCount?: number
  failures: PersonFailure[]
}

/**
 * DownloadPeopleListResult. The list is `FailList` (table), `failEmployeeId` (the table's caption)
 * or a second `FailCount` holding the list (example; JSON.parse keeps the last duplicate key);
 * RepeatID is a string in the table and a number in the example (AMBIGUITIES #6).
 */
export function parseDownloadResult(body: Json): DownloadResult {
  const listKey = findKey(body, ['FailList', 'failEmployeeId'])
  const countRaw = body[findKey(body, ['FailCount']) ?? 'FailCount']
  const list = listKey !== undefined && Array.isArray(body[listKey]) ? (body[listKey] as unknown[]) : Array.isArray(countRaw) ? countRaw : []
  const failures: PersonFailure[] = []
  for (const e of list) {
    if (!isObject(e)) continue
    const userId = str(e.UserID ?? e.UserId ?? e.userId)
    const code = num(e.ErrorCode ?? e.errorCode ?? e.Code)
    const repeat = str(e.RepeatID ?? e.RepeatId)
    const errMsg = str(e.ErrMsg ?? e.errMsg)
    const c = Number.isFinite(code) ? code : undefined
    failures.push({ userId, code: c, repeatId: repeat || undefined, message: peopleErrorMessage(c, repeat || undefined, errMsg || undefined) })
  }
  const success = num(body.SuccessCount)
  const fail = Array.isArray(countRaw) ? countRaw.length : num(countRaw)
  return { successCount: Number.isFinite(success) ? success : undefined, failCount: Number.isFinite(fail) ? fail : undefined, failures }
}

/**
 * DeletePeopleList answer. Ids go as numbers (the example's DeleteList is [1,2,3,4,5], AMBIGUITIES #8).
 * An empty list ends the device's loop (its stop rule names a field `deleteInfo` that exists
 * nowhere else: we read it as DeleteList).
 */
export function deletePeopleAnswer(ids: readonly string[]): Json {
  return { Success: 1, DeleteAll: 0, DeleteCount: ids.length, DeleteList: ids.map(Number) }
}

/** "DeleteAll 1: 清空所有人员信息": the document's own delete-everyone. */
export function deleteAllAnswer(): Json {
  return { Success: 1, DeleteAll: 1, DeleteCount: 0, DeleteList: [] }
}

export interface DeleteResult {
  deleteAll: boolean
  count?: number
  ids?: string[]
}

/** DeletePeopleListResult: the list is `DeleteList` (table) or `DeletList` (example typo, AMBIGUITIES #8); ids numbers or strings. */
export function parseDeleteResult(body: Json): DeleteResult {
  const k = findKey(body, ['DeleteList', 'DeletList'])
  const list = k !== undefined && Array.isArray(body[k]) ? (body[k] as unknown[]).map((v) => str(v)).filter(Boolean) : undefined
  const count = num(body.DeleteCount)
  return { deleteAll: num(body.DeleteAll) === 1, count: Number.isFinite(count) ? count : undefined, ids: list }
}

export const PUSH_TYPES: Readonly<Record<number, string>> = { 1: 'added', 2: 'updated', 3: 'deleted', 4: 'query' }

export interface PushedPerson {
  sn?: string
  pushType: number
  userId: string
  /** The device's PeopleJson for the person; absent when the person does not exist ("人员不存在时，则无此字段"). */
  detail?: Json
  photo?: Buffer
  /** Photo or face feature present. */
  hasFace: boolean
}

/** /People/PushPeople: multipart SN, PushType, UserID, Detail (JSON, maybe gzip), Photo file. */
export function parsePushPeople(inc: Incoming): PushedPerson | { error: string } {
  const detail = jsonPart(inc, ['Detail', 'UserDetail'])
  if (detail === 'invalid') return { error: 'Detail is not a JSON object' }
  const userId = str(plainValue(inc, ['UserID']) ?? detail?.UserID)
  if (!userId) return { error: 'UserID missing' }
  const photo = filePart(inc, ['Photo', 'pic'])
  const pushType = num(plainValue(inc, ['PushType']))
  return {
    sn: snOf(inc),
    pushType: Number.isFinite(pushType) ? pushType : 0,
    userId,
    detail,
    photo,
    hasFace: detail !== undefined && (photo !== undefined || str(detail.Photo) !== '' || num(detail.PhotoLen) > 0 || str(detail.FaceFeature) !== ''),
  }
}

/** PersonInfo from a device's PeopleJson (role from AccessType; ExpirationDate 0 = no limit). */
export function personInfoFromDetail(userId: string, detail: Json, hasFace: boolean): PersonInfo {
  const exp = num(detail.ExpirationDate)
  const card = str(detail.CardNum)
  const extras: Record<string, string | number | boolean | null> = {}
  for (const [k, name] of [['Job', 'job'], ['Code', 'code'], ['QRCode', 'qrcode'], ['OpenTimes', 'open_times'], ['Timegroup', 'timegroup']] as const) {
    const v = detail[k]
    if (v !== undefined && v !== null && v !== '') extras[name] = typeof v === 'number' ? v : String(v)
  }
  return {
    id: str(detail.UserID) || userId,
    name: str(detail.Name),
    card: card === '0' ? '' : card,
    phone: '',
    department: str(detail.Department),
    role: ROLE_NAMES[num(detail.AccessType)] ?? '',
    validTo: Number.isFinite(exp) && exp > 0 ? new Date(exp * 1000) : undefined,
    hasPhoto: hasFace,
    extras,
  }
}

/** PersonInfo as a command result carries it (dates in epoch ms, push-driver.ts turns them back). */
export function personInfoJson(p: PersonInfo): Json {
  return { ...p, validFrom: p.validFrom?.getTime(), validTo: p.validTo?.getTime() }
}

// ---- enrollment and snapshot -----------------------------------------------------------------------

/** RegisterIdentifyTicketResult `Result`. */
export const REGISTER_RESULTS: Readonly<Record<number, string>> = {
  1: 'enrolled',
  2: 'cancelled on the device',
  3: 'already registered for another person',
  4: 'the device has no fingerprint reader',
  5: 'the device has no palm-vein reader',
  6: 'the device is busy',
}

export interface RegisterResult {
  sn?: string
  userId: string
  result: number
  repetitionUserId?: string
  detail?: Json
  photo?: Buffer
}

/** /Device/RegisterIdentifyTicketResult: multipart ResultJson (+ Photo), or the same JSON as the body. */
export function parseRegisterResult(inc: Incoming): RegisterResult | { error: string } | undefined {
  let r = jsonPart(inc, ['ResultJson'])
  if (r === 'invalid') return { error: 'ResultJson is not a JSON object' }
  if (r === undefined && isObject(inc.json) && 'Result' in inc.json) r = inc.json
  if (r === undefined) return undefined
  const result = num(r.Result)
  return {
    sn: snOf(inc, r),
    userId: str(r.UserID),
    result: Number.isFinite(result) ? result : 0,
    repetitionUserId: str(r.RepetitionUserID) || undefined,
    detail: isObject(r.UserDetail) ? r.UserDetail : undefined,
    photo: filePart(inc, ['Photo', 'pic']),
  }
}

/** Why an enrollment failed. The example labels `Result: 2` with RepetitionUserID "重复注册" (the table says 2 = cancelled, 3 = duplicate): a RepetitionUserID always means a duplicate. */
export function registerMessage(r: RegisterResult): string {
  if (r.repetitionUserId && r.repetitionUserId !== '0') return `this face is already registered for person ${r.repetitionUserId}`
  return REGISTER_RESULTS[r.result] ?? `the device answered Result ${r.result} (not in the document's table)`
}

// ---- records ------------------------------------------------------------------------------------

interface IdentifyType {
  method: string
  result: 'granted' | 'denied' | 'pending' | ''
  type?: string
  event: string
}

const G = (method: string, event: string): IdentifyType => ({ method, result: 'granted', event })
const D = (method: string, event: string, type?: string): IdentifyType => ({ method, result: 'denied', event, type })

/** RecordType 事件类型 of UploadIdentifyRecord (1–49). */
export const IDENTIFY_TYPES: Readonly<Record<number, IdentifyType>> = {
  1: G('card', 'card'), 2: G('fingerprint', 'fingerprint'), 3: G('face', 'face'), 4: G('card+fingerprint', 'card + fingerprint'),
  5: G('face+fingerprint', 'face + fingerprint'), 6: G('card+face', 'card + face'), 7: G('card+password', 'card + password'),
  8: G('face+password', 'face + password'), 9: G('fingerprint+password', 'fingerprint + password'), 10: G('password', 'user number + password'),
  11: G('card+fingerprint+password', 'card + fingerprint + password'), 12: G('card+face+password', 'card + face + password'),
  13: G('fingerprint+face+password', 'fingerprint + face + password'), 14: G('card+fingerprint+face', 'card + fingerprint + face'),
  15: D('', 'repeated verification'), 16: D('', 'validity period expired'), 17: D('', 'outside the allowed time group'),
  18: D('', 'no access on holidays'), 19: D('', 'unregistered person', 'stranger'), 20: D('', 'probe lockout'),
  21: D('', 'no uses left'), 22: D('', 'door locked'), 23: D('card', 'card reported lost'), 24: D('card', 'blacklisted card', 'blacklist'),
  25: G('none', 'opened without verification'), 26: D('card', 'card verification disabled'), 27: D('fingerprint', 'fingerprint verification disabled'),
  28: D('', 'controller expired'), 29: G('', 'granted, validity about to expire'), 30: D('', 'abnormal body temperature'),
  31: { method: 'password', result: 'granted', type: 'visitor', event: 'visitor password' }, 32: G('qrcode', 'dynamic QR code'),
  33: { method: '', result: '', type: 'event', event: 'person added on the device menu' },
  34: { method: '', result: '', type: 'event', event: 'person changed on the device menu' },
  35: { method: '', result: '', type: 'event', event: 'person deleted on the device menu' },
  36: G('palm', 'palm vein'), 37: G('card+palm+face', 'card + palm vein + face'), 38: G('palm+password', 'palm vein + password'),
  39: G('card+palm', 'card + palm vein'), 40: G('face+palm', 'face + palm vein'), 41: G('card+palm+password', 'card + palm vein + password'),
  42: G('palm+face+password', 'palm vein + face + password'), 43: G('fingerprint+palm+face', 'fingerprint + palm vein + face'),
  44: { method: '', result: 'pending', event: 'combined verification: waiting for the next person' },
  45: D('', 'combined verification failed'), 46: G('', 'combined verification complete'), 47: G('idcard+face', 'ID card matched to face'),
  48: D('card', 'card not registered', 'stranger'), 49: D('qrcode', 'QR code not registered', 'stranger'),
}

/** UploadSystemRecord, RecordType 1: 门磁记录 events. */
export const DOOR_EVENTS: Readonly<Record<number, string>> = {
  1: 'door opened', 2: 'door closed', 3: 'door-sensor alarm armed', 4: 'door-sensor alarm disarmed', 5: 'door not closed',
  6: 'opened by exit button', 7: 'exit button pressed while the door was locked', 8: 'exit button pressed while the controller was expired',
}

/** UploadSystemRecord, RecordType 2: 系统记录 events. */
export const SYSTEM_EVENTS: Readonly<Record<number, string>> = {
  1: 'door opened by software', 2: 'door closed by software', 3: 'door kept open by software', 4: 'controller entered keep-open',
  5: 'controller closed the door', 6: 'kept open by a long press of the exit button', 7: 'kept closed by a long press of the exit button',
  8: 'locked by software', 9: 'unlocked by software', 10: 'timed lock', 11: 'timed unlock', 12: 'alarm lock', 13: 'alarm unlock',
  14: 'illegal verification alarm', 15: 'door-sensor alarm', 16: 'duress alarm', 17: 'door open too long alarm', 18: 'blacklist alarm',
  19: 'fire alarm', 20: 'tamper alarm', 21: 'illegal verification alarm cleared', 22: 'door-sensor alarm cleared', 23: 'duress alarm cleared',
  24: 'door open too long alarm cleared', 25: 'blacklist alarm cleared', 26: 'fire alarm cleared', 27: 'tamper alarm cleared', 28: 'power on',
  29: 'watchdog reset', 30: 'records formatted', 31: 'card reader wired in reverse', 32: 'card reader not connected', 33: 'unknown card reader',
  34: 'network cable unplugged', 35: 'network cable plugged in', 36: 'WIFI connected', 37: 'WIFI disconnected', 38: 'opened by Bluetooth',
  39: 'roll-call timeout', 40: 'all people cleared on the device menu', 41: 'people backed up to USB on the device menu',
  42: 'people imported from USB on the device menu', 43: 'opened remotely by an indoor unit', 44: 'all records deleted', 45: 'all people deleted',
}

/** How to read a device's text times: its --tz zone, else the TimeZone hours it reported. */
export function deviceClock(zone: string | undefined, tzHours: number | undefined): DeviceClock {
  return { zone, offsetMinutes: tzHours === undefined ? undefined : tzHours * 60 }
}

/**
 * RecordDate: "unix时间戳" (seconds; read as milliseconds when it is that large). A device that
 * sends text ("2024-06-17 17:32:51", no zone) gets it read in its --tz zone (DST-correct), else in
 * the TimeZone it reported, else UTC. The offset to render in is the zone's at that instant.
 */
export function recordTime(v: unknown, clock: DeviceClock = {}): { time: number; utcOffsetMinutes?: number } | undefined {
  const offsetAt = (ms: number) => (clock.zone ? deviceOffsetAt(clock, ms) : clock.offsetMinutes)
  const n = num(v)
  if (Number.isFinite(n) && n > 0) {
    const time = n > 1e12 ? Math.floor(n) : Math.floor(n * 1000)
    return { time, utcOffsetMinutes: offsetAt(time) }
  }
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$/.exec(str(v))
  if (!m) return undefined
  const time = deviceWallToEpoch([+m[1], +m[2], +m[3], +m[4], +m[5], +m[6]], { zone: clock.zone, offsetMinutes: clock.offsetMinutes ?? 0 })
  return { time, utcOffsetMinutes: offsetAt(time) }
}

export interface RecordUpload {
  sn?: string
  detail: Json
  photo?: Buffer
}

/**
 * UploadIdentifyRecord / RequestAuthorization multipart: the JSON part is `RecordDetail` (table)
 * or `recordJson` (example), the photo `Photo` or `pic` (field reports, AMBIGUITIES #10), the SN
 * part has a leading space. Photo sizes (50 KB / 400 KB / 500 KB in different places) are not
 * checked: whatever fits the gateway's body limit is kept.
 */
export function parseRecordUpload(inc: Incoming): RecordUpload | { error: string } {
  let detail = jsonPart(inc, ['RecordDetail', 'recordJson'])
  if (detail === 'invalid') return { error: 'RecordDetail is not a JSON object' }
  if (detail === undefined && isObject(inc.json) && 'RecordID' in inc.json) detail = inc.json
  if (detail === undefined) return { error: 'RecordDetail missing' }
  return { sn: snOf(inc), detail, photo: filePart(inc, ['Photo', 'pic']) }
}

function extraValue(v: unknown): string | null {
  const s = str(v)
  return s === '' ? null : s
}

/** RecordDetail → SpoolRecord (RecordType 1–49; IsEntry 1 in / 0 out; BodyTemp in tenths of a degree, 0 = not measured). */
export function identifyRecord(device: string, u: RecordUpload, clock?: DeviceClock): SpoolRecord | { error: string } {
  const d = u.detail
  const id = str(d.RecordID)
  if (!id) return { error: 'RecordID missing' }
  const t = recordTime(d.RecordDate ?? d.RecordTime, clock)
  if (!t) return { error: 'RecordDate missing or not a unix time' }
  const rt = num(d.RecordType)
  const info = IDENTIFY_TYPES[rt]
  const userId = str(d.UserID)
  const entry = num(d.IsEntry)
  const temp = num(d.BodyTemp)
  const card = str(d.CardNum)
  const rec: SpoolRecord = {
    device,
    recordId: id,
    time: t.time,
    utcOffsetMinutes: t.utcOffsetMinutes,
    userId: userId === '0' ? '' : userId,
    name: str(d.Name),
    type: info?.type ?? (userId && userId !== '0' ? 'employee' : ''),
    result: info?.result ?? '',
    direction: entry === 1 ? 'in' : entry === 0 ? 'out' : '',
    method: info?.method ?? '',
    extras: {
      record_type: Number.isFinite(rt) ? rt : null,
      event: info?.event ?? (Number.isFinite(rt) ? `record type ${rt}` : null),
      card: card === '' || card === '0' ? null : card,
      qrcode: extraValue(d.QRCode),
      temperature: Number.isFinite(temp) && temp > 0 ? temp / 10 : null,
      code: extraValue(d.Code),
      department: extraValue(d.Department),
      job: extraValue(d.Job),
    },
  }
  if (u.photo) rec.photo = u.photo
  return rec
}

/**
 * UploadSystemRecord: `RecordType` 1 = door-sensor table, 2 = system table; each record's own
 * RecordType is the event code in that table (the field table mislabels it "1-门磁记录;2--系统记录").
 * Record ids are numbered per table, so ours are `door-<id>` / `system-<id>`.
 */
export function systemRecords(device: string, body: Json, clock?: DeviceClock): { records: SpoolRecord[]; skipped: number } | { error: string } {
  const kind = num(body.RecordType)
  if (!Array.isArray(body.Records)) return { error: 'Records missing' }
  const door = kind === 1
  const records: SpoolRecord[] = []
  let skipped = 0
  for (const r of body.Records as unknown[]) {
    const id = isObject(r) ? str(r.RecordID) : ''
    const t = isObject(r) ? recordTime(r.RecordDate ?? r.RecordTime, clock) : undefined
    if (!isObject(r) || !id || !t) {
      skipped++
      continue
    }
    const code = num(r.RecordType)
    const event = (door ? DOOR_EVENTS : SYSTEM_EVENTS)[code] ?? `${door ? 'door' : 'system'} event ${Number.isFinite(code) ? code : '?'}`
    const method = door && code === 6 ? 'button' : !door && [1, 2, 3, 8, 9].includes(code) ? 'remote' : !door && code === 38 ? 'bluetooth' : ''
    records.push({
      device,
      recordId: `${door ? 'door' : 'system'}-${id}`,
      time: t.time,
      utcOffsetMinutes: t.utcOffsetMinutes,
      userId: '',
      name: '',
      type: door ? 'door' : 'system',
      result: '',
      direction: '',
      method,
      extras: { record_type: Number.isFinite(code) ? code : null, event, card: null, qrcode: null, temperature: null, code: null, department: null, job: null },
    })
  }
  return { records, skipped }
}

/** RequestAuthorization "Success 返回结果": 0 refuse (Message shown), 1 open and show Message, 2 open without a message. */
export function authorizationAnswer(allowed: boolean): Json {
  return allowed ? { Success: 2 } : { Success: 0, Message: 'Not authorized' }
}

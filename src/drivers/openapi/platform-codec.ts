/**
 * openapi platform mode codec (openapi-face.txt section 9, 平台定制接口说明): pure parsing and
 * building of what the device sends to, and gets back from, the platform (doorctl's gateway).
 * Every quirk of the section is handled here, once, with a comment naming it.
 *
 *   9.1 GET  /syrecord/{deviceid}?lastQueryTime=T  → the face library changes since T
 *   9.2 POST /syface/{deviceid}      a comparison result + capture  → ret, openDoor, unlockDelay
 *   9.3 POST /syattribute/{deviceid} a temperature-only event        → ret
 *   9.4 POST /syresult/{deviceid}    outcome of one library change   → ret
 *   9.5 POST /syheartbeat/{deviceid} heartbeat                       → ret
 *
 * Record ids: section 9 gives none, and a device retries an upload whose answer it lost, so the
 * id is derived from what a retry repeats exactly: `sf-` (9.2) or `sa-` (9.3) and the first 24
 * hex digits of sha256(kind, deviceid, screenTime in seconds, userId, sha256(decoded image)).
 */
import { createHash } from 'node:crypto'
import type { CommandKind, SpoolRecord } from '../../types/gateway.js'
import type { PersonInfo, Role } from '../../types/driver.js'

export type Json = Record<string, unknown>

/** What a platform-mode device can be asked to do: only its face library changes (9.1, 9.4). */
export const PLATFORM_KINDS: ReadonlySet<CommandKind> = new Set<CommandKind>(['upsertPeople', 'deletePeople', 'enrollFace', 'listPeople'])

/** 9.4: the example's `"status": " 100"` with `"msg": "操作成功"` (success) is the only success code shown; anything else is a failure. */
export const STATUS_OK = '100'

/** 9.2/9.3/9.4/9.5 answers: `ret` "0" is success, anything else a failure (the examples give ret as a string). */
export const RET = { ok: '0', badRequest: '1', unknownDevice: '2', retry: '3' } as const

/** Field lengths of the 9.1 answer table (userId 32, userName 32, userRemark 16, userType 16). */
export const PLATFORM_LIMITS = { userId: 32, userName: 32, userRemark: 16, userType: 16 } as const

/** 9.2: unlockDelay is "延时开锁20ms-5000ms". */
export const UNLOCK_DELAY_RANGE = { min: 20, max: 5000 } as const

/** Record extras of platform-mode records, in output order. */
export const PLATFORM_RECORD_EXTRAS = [
  'similarity', 'temperature', 'temperature_unit', 'mask', 'source', 'user_type', 'uuid', 'nation_code', 'action', 'open_code', 'open_msg',
  'id_card_name', 'id_card_gender', 'id_card_national', 'id_card_birthday', 'id_card_address', 'id_card_number', 'id_card_maker',
  'id_card_start', 'id_card_end',
] as const

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** AMBIGUITIES openapi #13: section 9's examples have keys with stray spaces (`"operateTime "`): every key is trimmed, at every depth. */
export function normalizeKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalizeKeys)
  if (!isObject(v)) return v
  const out: Json = {}
  for (const [k, val] of Object.entries(v)) out[k.trim()] = normalizeKeys(val)
  return out
}

/**
 * A field by any of its spellings, case-insensitively: 9.2 writes `deviceid` in its table and
 * `deviceId` in its example, 9.4 writes `userID` where 9.1/9.2 write `userId`.
 */
export function field(o: Json, ...names: string[]): unknown {
  for (const n of names) if (o[n] !== undefined) return o[n]
  const wanted = new Set(names.map((n) => n.toLowerCase()))
  for (const [k, v] of Object.entries(o)) if (wanted.has(k.toLowerCase())) return v
  return undefined
}

/** AMBIGUITIES openapi #13: values have stray spaces too (`" 100"`, `" 111222"`, `"delete "`): text values are trimmed. */
export function text(v: unknown): string {
  if (v === undefined || v === null) return ''
  if (typeof v === 'string') return v.trim()
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  return ''
}

function num(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined
  const t = text(v)
  if (t === '') return undefined
  const n = Number(t)
  return Number.isFinite(n) ? n : undefined
}

/** 9.2/9.3 `mask` is a Bool; devices are seen to send 1/0 and "true"/"false" for such fields as well. */
export function parseBool(v: unknown): boolean | null {
  if (typeof v === 'boolean') return v
  const t = text(v).toLowerCase()
  if (t === 'true' || t === '1') return true
  if (t === 'false' || t === '0') return false
  return null
}

/**
 * 9.2/9.3 `temperature` is a String: the 9.2 example is "36.5°C", the 9.3 example "36.3" (no
 * unit). The number is read out of it; the unit is °C unless it says F (°F / ℉).
 */
export function parseTemperature(v: unknown): { value: number | null; unit: 'C' | 'F' | null } {
  if (typeof v === 'number') return Number.isFinite(v) ? { value: v, unit: 'C' } : { value: null, unit: null }
  const t = text(v)
  const m = /-?\d+(?:\.\d+)?/.exec(t)
  if (!m) return { value: null, unit: null }
  return { value: Number(m[0]), unit: /F|℉/i.test(t) ? 'F' : 'C' }
}

/** Section 5 says times are seconds; screenTime's example (1487295360) is seconds. A 13-digit value can only be milliseconds. */
export function toSeconds(v: unknown): number | undefined {
  const n = num(v)
  if (n === undefined || n <= 0) return undefined
  return n > 1e11 ? Math.floor(n / 1000) : Math.floor(n)
}

/** 9.2/9.3 `img`: base64 (the document says "经base64编码后的图片数据"); a `data:` prefix is accepted as well (AMBIGUITIES openapi #8). */
export function decodeImg(v: unknown): Buffer | undefined {
  if (typeof v !== 'string') return undefined
  let s = v.trim()
  if (s.startsWith('data:')) s = s.slice(s.indexOf(',') + 1)
  s = s.replace(/\s+/g, '')
  if (s === '') return undefined
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(s)) return undefined
  const b = Buffer.from(s, 'base64')
  return b.length > 0 ? b : undefined
}

export function isJpeg(b: Buffer): boolean {
  return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff
}

// ---- answers ------------------------------------------------------------------------------------

/** 9.2–9.5 answer: `{ ret, desc }`. */
export function retAnswer(ret: string = RET.ok, desc = 'Success', extra: Json = {}): Json {
  return { ret, desc, ...extra }
}

/** 9.2 answer: whether to open, and the unlock delay (clamped to the document's 20–5000 ms). */
export function faceAnswer(open: boolean, unlockDelayMs: number, ret: string = RET.ok, desc = 'Success'): Json {
  const delay = Math.min(UNLOCK_DELAY_RANGE.max, Math.max(UNLOCK_DELAY_RANGE.min, Math.round(unlockDelayMs)))
  return { ret, desc, openDoor: open ? 1 : 0, unlockDelay: delay }
}

/** One change of the face library, as doorctl keeps it (9.1 answer table). */
export interface LibraryItem {
  operation: 'save' | 'delete'
  userId: string
  userName: string
  userType: string
  userRemark: string
  sex?: number
  /** http URL of a JPEG (9.1 注: http only, jpg only); '' when there is no photo. */
  imageUrl: string
  /** Seconds (section 5). */
  operateTime: number
}

/** 9.1 list item. AMBIGUITIES openapi #13: the table says `imageUrl`, the example `userImageUrl`: both are sent. */
export function libraryItemJson(i: LibraryItem): Json {
  const o: Json = { operation: i.operation, userType: i.userType, userId: i.userId, userName: i.userName }
  if (i.sex !== undefined) o.sex = i.sex
  o.userRemark = i.userRemark
  o.imageUrl = i.imageUrl
  o.userImageUrl = i.imageUrl
  o.operateTime = i.operateTime
  return o
}

/**
 * 9.1 answer. The table lists list items and `lastQueryTime` flat; the example wraps them in
 * `serviceResponse` (`{ "serviceResponse": { "list": [...], "lastQueryTime": T } }`): the
 * example's envelope is sent, with `ret`/`desc` beside it as every other section-9 answer has.
 */
export function syrecordAnswer(items: readonly LibraryItem[], lastQueryTime: number, ret: string = RET.ok, desc = 'Success'): Json {
  return { ret, desc, serviceResponse: { list: items.map(libraryItemJson), lastQueryTime } }
}

/** 9.1 `lastQueryTime` (0 = everything). Required by the table; a device that sends none gets everything (as 0), one that is not a number is an error. */
export function parseLastQueryTime(q: URLSearchParams): number | { error: string } {
  // AMBIGUITIES openapi #13 (stray spaces) applies to the query too: the document writes "lastQueryTime=XXX X"
  const raw = q.get('lastQueryTime') ?? q.get('lastquerytime') ?? q.get('LastQueryTime')
  if (raw === null || raw.trim() === '') return 0
  const n = Number(raw.replace(/\s+/g, ''))
  if (!Number.isFinite(n) || n < 0) return { error: `lastQueryTime "${raw}" is not a timestamp` }
  return Math.floor(n)
}

/** Reading a 9.1 answer (used by tests and tools): both envelopes, both image keys. */
export function parseSyrecordAnswer(raw: unknown): { items: LibraryItem[]; lastQueryTime?: number } {
  const o = normalizeKeys(raw)
  if (!isObject(o)) return { items: [] }
  const inner = isObject(o.serviceResponse) ? o.serviceResponse : o
  const list = Array.isArray(inner.list) ? inner.list : []
  const items: LibraryItem[] = []
  for (const it of list) {
    if (!isObject(it)) continue
    const op = text(it.operation).toLowerCase()
    items.push({
      operation: op === 'delete' ? 'delete' : 'save',
      userId: text(field(it, 'userId')),
      userName: text(it.userName),
      userType: text(it.userType),
      userRemark: text(it.userRemark),
      sex: num(it.sex),
      imageUrl: text(field(it, 'imageUrl', 'userImageUrl')),
      operateTime: num(it.operateTime) ?? 0,
    })
  }
  const lq = num(inner.lastQueryTime ?? o.lastQueryTime)
  return lq === undefined ? { items } : { items, lastQueryTime: lq }
}

// ---- requests --------------------------------------------------------------------------------------

/** 9.5 heartbeat. Example: `{ "Heartinfo": { "deviceid": " 111222", "ServerURL": "…", } }` (trailing comma: read leniently by the gateway); the table is flat. */
export function parseHeartbeat(body: unknown): { deviceId: string; serverUrl: string } {
  const o = normalizeKeys(body)
  const b = isObject(o) ? (isObject(field(o, 'Heartinfo')) ? (field(o, 'Heartinfo') as Json) : o) : {}
  return { deviceId: text(field(b, 'deviceid')), serverUrl: text(field(b, 'ServerURL')) }
}

/** 9.4: one result. The example has `resultList` as one object (not a list, despite its name); a list is accepted too, as is a flat body. */
export interface LibraryResult {
  userId: string
  status: string
  msg: string
  ok: boolean
}

export function parseResults(body: unknown): LibraryResult[] | { error: string } {
  const o = normalizeKeys(body)
  if (!isObject(o) && !Array.isArray(o)) return { error: 'body is not a JSON object' }
  let list: unknown
  if (Array.isArray(o)) list = o
  else {
    const rl = field(o, 'resultList')
    list = rl === undefined ? (field(o, 'userID') !== undefined ? [o] : undefined) : Array.isArray(rl) ? rl : [rl]
  }
  if (!Array.isArray(list)) return { error: 'resultList missing' }
  const out: LibraryResult[] = []
  for (const r of list) {
    if (!isObject(r)) return { error: 'a resultList entry is not an object' }
    const userId = text(field(r, 'userID', 'userId'))
    if (userId === '') return { error: 'a resultList entry has no userID' }
    const status = text(field(r, 'status'))
    out.push({ userId, status, msg: text(field(r, 'msg')), ok: status === STATUS_OK })
  }
  return out
}

/** The ID-card part of a 9.2 upload. */
export interface IdCard {
  name: string
  gender: string
  national: string
  birthday: string
  address: string
  number: string
  maker: string
  startDate: string
  endDate: string
}

/** A 9.2 comparison result or a 9.3 temperature event, normalised. */
export interface Capture {
  kind: 'face' | 'attribute'
  /** The deviceid the body names (the path's is the one that counts). */
  bodyDeviceId: string
  userId: string
  userName: string
  userType: string
  uuid: string
  nationCode: string
  direction: 'in' | 'out' | ''
  action: string
  temperature: number | null
  temperatureUnit: 'C' | 'F' | null
  mask: boolean | null
  /** Seconds. */
  screenTime: number
  similarity: number | null
  idCard?: IdCard
  image?: Buffer
  openCode: number | null
  openMsg: string
}

function idCardOf(b: Json): IdCard | undefined {
  // 9.2: the table lists the ID-card fields flat (name, gender, …); the example nests them in `idCardInfo`: both are read
  const nested = field(b, 'idCardInfo')
  const src = isObject(nested) ? nested : b
  const card: IdCard = {
    name: text(src.name), gender: text(src.gender), national: text(src.national), birthday: text(src.birthday), address: text(src.address),
    number: text(src.id), maker: text(src.maker), startDate: text(src.startDate), endDate: text(src.endDate),
  }
  return Object.values(card).some((v) => v !== '') ? card : undefined
}

/** 9.2 actionCode: 1 = in, 2 = out; else the `action` text ("进门" / "出门"). */
function directionOf(code: unknown, action: string): 'in' | 'out' | '' {
  const c = num(code)
  if (c === 1) return 'in'
  if (c === 2) return 'out'
  if (/进|^in$/i.test(action)) return 'in'
  if (/出|^out$/i.test(action)) return 'out'
  return ''
}

function captureOf(kind: Capture['kind'], b: Json): Capture | { error: string } {
  const screenTime = toSeconds(field(b, 'screenTime'))
  if (screenTime === undefined) return { error: 'screenTime missing or not a timestamp' }
  const rawImg = field(b, 'img')
  const image = decodeImg(rawImg)
  if (rawImg !== undefined && rawImg !== '' && image === undefined) return { error: 'img is not base64 image data' }
  const t = parseTemperature(field(b, 'temperature'))
  const action = text(field(b, 'action'))
  const c: Capture = {
    kind,
    bodyDeviceId: text(field(b, 'deviceid')),
    userId: text(field(b, 'userId')),
    userName: text(field(b, 'userName')),
    userType: text(field(b, 'userType')),
    uuid: text(field(b, 'uuid')),
    nationCode: text(field(b, 'nationCode')),
    direction: directionOf(field(b, 'actionCode'), action),
    action,
    temperature: t.value,
    temperatureUnit: t.unit,
    mask: parseBool(field(b, 'mask')),
    screenTime,
    similarity: num(field(b, 'similarity')) ?? null,
    openCode: num(field(b, 'openCode')) ?? null,
    openMsg: text(field(b, 'openMsg')),
  }
  if (image) c.image = image
  if (kind === 'face') {
    const card = idCardOf(b)
    if (card) c.idCard = card
  }
  return c
}

/** 9.2 request body (JSON; form fields are accepted as the same object). */
export function parseFaceUpload(body: unknown): Capture | { error: string } {
  const o = normalizeKeys(body)
  if (!isObject(o)) return { error: 'body is not a JSON object' }
  const c = captureOf('face', o)
  if ('error' in c) return c
  // 9.2 is "上传比对成功后结果": a successful comparison names the person
  if (c.userId === '') return { error: 'userId missing' }
  return c
}

/** 9.3 request body. The example wraps the fields in `Info`; the table lists them flat: both are read. */
export function parseAttributeUpload(body: unknown): Capture | { error: string } {
  const o = normalizeKeys(body)
  if (!isObject(o)) return { error: 'body is not a JSON object' }
  const info = field(o, 'Info')
  return captureOf('attribute', isObject(info) ? info : o)
}

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex')
}

/** The derived record id (see the header): stable across retries of the same upload. */
export function recordIdOf(deviceId: string, c: Capture): string {
  const img = sha256(c.image ?? Buffer.alloc(0))
  const h = sha256([c.kind, deviceId, String(c.screenTime), c.userId, img].join('\n')).slice(0, 24)
  return `${c.kind === 'face' ? 'sf' : 'sa'}-${h}`
}

/** 9.3 openCode: "100为开门成功，101为温度异常，102为未佩戴口罩". */
function attributeResult(code: number | null): string {
  if (code === 100) return 'granted'
  if (code === 101 || code === 102) return 'denied'
  return 'unknown'
}

/**
 * A capture as a spooled record. 9.2 (`/syface`): the comparison succeeded and the platform
 * decided the door, so `result` is that decision (granted/denied); 9.3 (`/syattribute`): no
 * comparison (failed, or comparison off), `result` from openCode.
 */
export function captureToRecord(device: string, deviceId: string, c: Capture, opened?: boolean): SpoolRecord {
  const card = c.idCard
  const extras: SpoolRecord['extras'] = {
    similarity: c.similarity,
    temperature: c.temperature,
    temperature_unit: c.temperatureUnit,
    mask: c.mask,
    source: c.kind === 'face' ? 'syface' : 'syattribute',
    user_type: c.userType || null,
    uuid: c.uuid || null,
    nation_code: c.nationCode || null,
    action: c.action || null,
    open_code: c.openCode,
    open_msg: c.openMsg || null,
    id_card_name: card?.name || null,
    id_card_gender: card?.gender || null,
    id_card_national: card?.national || null,
    id_card_birthday: card?.birthday || null,
    id_card_address: card?.address || null,
    id_card_number: card?.number || null,
    id_card_maker: card?.maker || null,
    id_card_start: card?.startDate || null,
    id_card_end: card?.endDate || null,
  }
  const r: SpoolRecord = {
    device,
    recordId: recordIdOf(deviceId, c),
    time: c.screenTime * 1000,
    userId: c.userId,
    name: c.userName,
    type: c.kind === 'face' ? c.userType || 'user' : 'unrecognized',
    result: c.kind === 'face' ? (opened ? 'granted' : 'denied') : attributeResult(c.openCode),
    direction: c.direction,
    method: c.kind === 'face' ? 'face' : 'temperature',
    extras,
  }
  if (c.image) r.photo = c.image
  return r
}

// ---- people ------------------------------------------------------------------------------------------

/**
 * 9.1 `userType` is a free label ("student", "user" in the example): doorctl sends its role
 * name (user, admin, blacklist); what a device does with a label is not documented.
 */
export function userTypeOf(role: unknown): string {
  return role === 'admin' || role === 'blacklist' ? role : 'user'
}

export function roleOf(userType: string): Role | '' {
  const t = userType.toLowerCase()
  if (t === 'admin' || t === 'blacklist' || t === 'user') return t
  return ''
}

/** A person as doorctl asks the device to store it; problems make it "not sent". */
export function personProblem(p: { id: string; name?: string }): string | undefined {
  if (p.id === '') return 'no id'
  if (p.id.length > PLATFORM_LIMITS.userId) return `id is ${p.id.length} characters; platform mode (9.1 userId) takes at most ${PLATFORM_LIMITS.userId}`
  if (!p.name) return 'no name (9.1 userName is required)'
  if ([...p.name].length > PLATFORM_LIMITS.userName) return `name is ${[...p.name].length} characters; platform mode (9.1 userName) takes at most ${PLATFORM_LIMITS.userName}`
  return undefined
}

/** A confirmed person (what the device reported stored through 9.4) as PersonInfo JSON for listPeople. */
export function rosterPersonJson(id: string, e: { name: string; userType: string; remark: string; hasPhoto: boolean; confirmedAt: number }): Json {
  const info: Omit<PersonInfo, 'validFrom' | 'validTo'> = {
    id, name: e.name, card: '', phone: '', department: e.remark, role: roleOf(e.userType), hasPhoto: e.hasPhoto,
    extras: { user_type: e.userType, confirmed_at: new Date(e.confirmedAt).toISOString() },
  }
  return info as unknown as Json
}

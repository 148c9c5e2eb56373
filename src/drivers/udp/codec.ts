/**
 * udp intercom wire format (udp-intercom.txt): pure functions, no I/O. Every quirk of the
 * document is handled here once, with a comment naming its section (the document numbers them
 * 1–9, with 5 and 7 twice) or its AMBIGUITIES.md (udp) item.
 */
import type { GatewayRequest, SpoolRecord } from '../../types/gateway.js'
import { PHONE_DESCRIPTION, PHONE_RE, SETTING_KEYS } from './rules.js'

export type Json = Record<string, unknown>

/** Larger datagrams are dropped: a heartbeat is ~150 bytes; nothing in the document comes near. */
export const MAX_DATAGRAM_BYTES = 8 * 1024

/** "code 0000成功" (sections 2–6). */
export const CODE_OK = '0000'
/** "9999验证结果失败" (section 6) is the only failure code the document names ("错误代码描述" is not in it). */
export const CODE_FAIL = '9999'

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Every field is a string in the document; numbers are taken as their text. */
export function str(v: unknown): string {
  if (typeof v === 'string') return v.trim()
  if (typeof v === 'number' && Number.isFinite(v)) return String(v)
  return ''
}

// ---- lenient JSON ------------------------------------------------------------------------------

/**
 * JSON, or the document's broken forms: `"id","1"` for `"id":"1"` (sections 7–9, AMBIGUITIES #2)
 * and doubled commas `,,` (section 5's answer example, AMBIGUITIES #3). A key is followed by `:`
 * or `,`; everything else is strict JSON. Throws on anything else.
 */
export function parseLenientJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return new Lenient(text).top()
  }
}

class Lenient {
  private i = 0
  constructor(private readonly s: string) {}

  top(): unknown {
    const v = this.value()
    this.ws()
    if (this.i < this.s.length) throw new Error(`unexpected text at ${this.i}`)
    return v
  }

  private ws(): void {
    while (this.i < this.s.length && ' \t\r\n'.includes(this.s[this.i])) this.i++
  }

  private value(): unknown {
    this.ws()
    const c = this.s[this.i]
    if (c === '{') return this.object()
    if (c === '[') return this.array()
    if (c === '"') return this.string()
    const m = /^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(this.s.slice(this.i))
    if (!m) throw new Error(`unexpected ${c === undefined ? 'end' : JSON.stringify(c)} at ${this.i}`)
    this.i += m[0].length
    return JSON.parse(m[0])
  }

  private string(): string {
    const m = /^"(?:[^"\\\n]|\\.)*"/.exec(this.s.slice(this.i))
    if (!m) throw new Error(`unterminated string at ${this.i}`)
    this.i += m[0].length
    try {
      return JSON.parse(m[0]) as string
    } catch {
      return m[0].slice(1, -1) // a raw tab or a bad escape: the text as it is
    }
  }

  private object(): Json {
    this.i++
    const out: Json = {}
    for (;;) {
      this.ws()
      if (this.s[this.i] === ',') { this.i++; continue } // `,,` (AMBIGUITIES #3)
      if (this.s[this.i] === '}') { this.i++; return out }
      if (this.s[this.i] !== '"') throw new Error(`expected a key at ${this.i}`)
      const key = this.string()
      this.ws()
      const sep = this.s[this.i]
      if (sep !== ':' && sep !== ',') throw new Error(`expected : after "${key}" at ${this.i}`)
      this.i++ // `"id","1"`: a comma where the colon belongs (AMBIGUITIES #2)
      out[key] = this.value()
      this.ws()
      const next = this.s[this.i]
      if (next === ',') { this.i++; continue }
      if (next === '}') { this.i++; return out }
      throw new Error(`expected , or } at ${this.i}`)
    }
  }

  private array(): unknown[] {
    this.i++
    const out: unknown[] = []
    for (;;) {
      this.ws()
      if (this.s[this.i] === ',') { this.i++; continue }
      if (this.s[this.i] === ']') { this.i++; return out }
      out.push(this.value())
    }
  }
}

// ---- datagrams ---------------------------------------------------------------------------------

export type Datagram = { msg: Json; cmd: string; broken: boolean } | { error: 'oversized' | 'not JSON' | 'no cmd'; detail: string }

/** One UDP datagram from a device: a JSON object with a `cmd`. */
export function parseDatagram(buf: Buffer): Datagram {
  if (buf.length > MAX_DATAGRAM_BYTES) return { error: 'oversized', detail: `${buf.length} bytes (at most ${MAX_DATAGRAM_BYTES})` }
  const text = buf.toString('utf8').replace(/^\uFEFF/, '').trim()
  let msg: unknown
  let broken = false
  try {
    msg = JSON.parse(text)
  } catch {
    try {
      msg = new Lenient(text).top()
      broken = true
    } catch (err) {
      return { error: 'not JSON', detail: `${(err as Error).message}: ${JSON.stringify(text.slice(0, 80))}` }
    }
  }
  if (!isObject(msg)) return { error: 'not JSON', detail: 'not a JSON object' }
  const cmd = str(msg.cmd)
  if (!cmd) return { error: 'no cmd', detail: 'the object has no cmd' }
  return { msg, cmd: cmd.toLowerCase(), broken }
}

export interface Heartbeat {
  communityId: string
  deviceCode: string
  softVer: string
  name: string
  deviceSn: string
}

/** Section 1: communityId and deviceCode required; softVer, name (the community's name), deviceSn optional. */
export function parseHeartbeat(msg: Json): Heartbeat | { error: string } {
  const communityId = str(msg.communityId)
  const deviceCode = str(msg.deviceCode)
  if (!communityId || !deviceCode) return { error: 'heartbeat without communityId or deviceCode' }
  // the inventory identity is `community/code`: a slash would make it ambiguous
  if (communityId.includes('/') || deviceCode.includes('/')) return { error: 'communityId or deviceCode contains "/"' }
  return { communityId, deviceCode, softVer: str(msg.softVer), name: str(msg.name), deviceSn: str(msg.deviceSn) }
}

/** The identity doorctl's inventory keys a udp device by (gateway.ts identityOf). */
export function identity(communityId: string, deviceCode: string): string {
  return `${communityId}/${deviceCode}`
}

/**
 * Section 1's answer, field for field: `{"result":"0","message":"心跳发送成功","cmd":"heartack"}`.
 * An unknown device gets result "1" (失败) (CLI.md; AMBIGUITIES #10: the document does not say).
 */
export function heartack(known: boolean): string {
  return JSON.stringify(known ? { result: '0', message: '心跳发送成功', cmd: 'heartack' } : { result: '1', message: '设备未登记 (device not registered)', cmd: 'heartack' })
}

/**
 * The `id` of a command's datagrams: stable for the command (every resend, and after a gateway
 * restart, carries the same one, so the device executes it once), fresh per command, digits
 * only. The queue id alone would repeat after DOORCTL_HOME is reset; the creation time's last
 * five digits make that unlikely to collide with ids a device still remembers.
 */
export function wireId(cmd: { id: number; createdAt: number }): string {
  return `${cmd.id}${String(cmd.createdAt % 100_000).padStart(5, '0')}`
}

export interface Addressed {
  communityId: string
  deviceCode: string
  id: string
}

/**
 * Section 7, keys in the example's order. phone is "参数必填，可以为" empty; roomNumber and unitId
 * are required by the table and sent empty when not given (a remote open names no one).
 * Sent as valid JSON (`"id":"1"`): the table is the documented form, the example's `"id","1"` a typo.
 */
export function unlockFrame(a: Addressed, who: { phone: string; roomNumber: string; unitId: string }): string {
  return JSON.stringify({ communityId: a.communityId, deviceCode: a.deviceCode, cmd: 'unlock', phone: who.phone, roomNumber: who.roomNumber, unitId: who.unitId, id: a.id })
}

/** Section 9. */
export function rebootFrame(a: Addressed): string {
  return JSON.stringify({ communityId: a.communityId, deviceCode: a.deviceCode, cmd: 'reboot', id: a.id })
}

/**
 * Section 8. Its table lists communityId twice, the device's own and "新的小区编码" (AMBIGUITIES #9):
 * one JSON key can hold one value, so when the community changes `communityId` carries the new
 * one (the only documented way to send it); deviceCode stays the current code, doorcodeNew the new.
 * Other keys pass through ("服务器还想修改，添加参数即可").
 */
export function settingFrame(a: Addressed, s: SettingValues): string {
  const o: Json = { communityId: s.communityId ?? a.communityId, deviceCode: a.deviceCode, cmd: 'setting' }
  if (s.doorcodeNew !== undefined) o.doorcodeNew = s.doorcodeNew
  Object.assign(o, s.extra)
  o.id = a.id
  return JSON.stringify(o)
}

/** Sections 7–9 `type`: "0开门成功/成功 1 参数无效 2无权限". */
export const ACK_TYPES: Readonly<Record<string, string>> = {
  '0': 'done',
  '1': 'the device found the command\'s parameters invalid (type 1, 参数无效)',
  '2': 'the device refused: no permission (type 2, 无权限)',
}

export const ACK_CMDS: Readonly<Record<string, 'unlock' | 'reboot' | 'setting'>> = { unlockack: 'unlock', rebootack: 'reboot', settingack: 'setting' }

export interface Ack {
  of: 'unlock' | 'reboot' | 'setting'
  id: string
  ok: boolean
  type: string
  message: string
}

/**
 * unlockack / rebootack / settingack. The examples omit communityId/deviceCode the tables require
 * (AMBIGUITIES #9): acks are matched by `id` alone. A missing type is taken as failure.
 */
export function parseAck(msg: Json): Ack | { error: string } | undefined {
  const of = ACK_CMDS[str(msg.cmd).toLowerCase()]
  if (!of) return undefined
  const id = str(msg.id)
  if (!id) return { error: `${str(msg.cmd)} without id` }
  const type = str(msg.type)
  const ok = type === '0'
  const what = ACK_TYPES[type] ?? (type ? `the device answered type ${type}` : 'the device answered without a type')
  const said = str(msg.message)
  return { of, id, ok, type, message: ok ? said || what : said ? `${what}: ${said}` : what }
}

// ---- commands from queue payloads ---------------------------------------------------------------

/**
 * `open`: section 7 has one unlock, a brief open: only mode pulse. The reason starts with
 * "unsupported:" so the CLI can report status unsupported rather than failed.
 */
export function openFields(payload: Json): { phone: string; roomNumber: string; unitId: string } | { error: string } {
  const mode = payload.mode === undefined ? 'pulse' : String(payload.mode)
  if (mode !== 'pulse') return { error: `unsupported: udp intercoms can only open the door briefly (cmd unlock); there is no "${mode}" mode in udp-intercom.txt` }
  return { phone: str(payload.phone), roomNumber: str(payload.roomNumber), unitId: str(payload.unitId) }
}

export interface SettingValues {
  doorcodeNew?: string
  communityId?: string
  extra: Record<string, string>
}

/**
 * `device config set device doorcodeNew=… communityId=…` (section 8; `deviceCode` is taken for
 * doorcodeNew). Section `json` passes other keys through as strings (section 8: more may be added).
 */
export function settingValues(section: string, values: Json): SettingValues | { error: string } {
  if (section !== 'device' && section !== 'json') return { error: `udp devices have no config section "${section}" (sections: device)` }
  const out: SettingValues = { extra: {} }
  for (const [k, raw] of Object.entries(values)) {
    const v = typeof raw === 'string' ? raw.trim() : typeof raw === 'number' || typeof raw === 'boolean' ? String(raw) : undefined
    if (v === undefined) return { error: `${k}: udp settings are strings` }
    const key = k === 'deviceCode' ? 'doorcodeNew' : k
    if (key === 'doorcodeNew' || key === 'communityId') {
      if (v === '' || v.includes('/')) return { error: `${k}: must be non-empty and contain no "/"` }
      out[key] = v
    } else if (section === 'json' && !['cmd', 'id'].includes(key)) {
      out.extra[key] = v
    } else {
      return { error: `udp devices have no setting "${k}" (settable: ${SETTING_KEYS.join(', ')})` }
    }
  }
  if (out.doorcodeNew === undefined && out.communityId === undefined && Object.keys(out.extra).length === 0) return { error: 'nothing to set' }
  return out
}

// ---- HTTP callbacks -----------------------------------------------------------------------------

export type Incoming = Pick<GatewayRequest, 'json' | 'fields' | 'query' | 'body' | 'headers'>

/**
 * A callback's parameters, wherever the device put them: the body encoding is never stated
 * (AMBIGUITIES #6), so a JSON object, form fields (urlencoded or multipart), an untyped
 * `a=1&b=2` body and the query string (section 6's example puts them in the URL) are all read;
 * the body wins over the query string. Values are strings.
 */
export function callbackFields(inc: Incoming): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of inc.query) out[k] = v.trim()
  const type = String(inc.headers['content-type'] ?? '').toLowerCase()
  if (inc.json === undefined && Object.keys(inc.fields).length === 0 && inc.body.length > 0 && inc.body.length < 64 * 1024 && !type.startsWith('multipart/')) {
    const text = inc.body.toString('utf8')
    if (/^[^=&\s{[]+=/.test(text)) for (const [k, v] of new URLSearchParams(text)) out[k] = v.trim()
  }
  for (const [k, v] of Object.entries(inc.fields)) out[k] = v.trim()
  if (isObject(inc.json)) for (const [k, v] of Object.entries(inc.json)) if (v !== null && typeof v !== 'object') out[k] = str(v)
  return out
}

/** The answer every callback gives: `{"data":…,"message":…,"page":null,"code":"0000"}` (sections 2–6). */
export function answer(code: string, message: string, data: unknown = null): Json {
  return { data, message, page: null, code }
}

export function okAnswer(data: unknown = null, message = '添加成功'): Json {
  return answer(CODE_OK, message, data)
}

export function failAnswer(message: string): Json {
  return answer(CODE_FAIL, message, null)
}

/** Section 2: the person the password belongs to; all three are required, empty when not known. */
export function oneLockAnswer(who: { unitId?: string; phone?: string; roomNumber?: string }): Json {
  return okAnswer({ unitId: who.unitId ?? '', phone: who.phone ?? '', roomNumber: who.roomNumber ?? '' }, '验证成功')
}

/** Section 3 `type` (开锁类型): method (the record's column), type (who opened), and the document's words. */
export const UNLOCK_TYPES: Readonly<Record<string, { method: string; type: string; event: string }>> = {
  '0': { method: 'qrcode', type: '', event: 'QR code (二维码)' },
  '1': { method: 'remote', type: 'remote', event: 'remote unlock from the mini-program (小程序远程开锁)' },
  '2': { method: 'card', type: '', event: 'access card (门禁卡)' },
  '3': { method: 'password', type: 'visitor', event: 'one-time password (一次性密码)' },
  '4': { method: 'face', type: '', event: 'face (人脸)' },
  '5': { method: 'remote', type: 'remote', event: 'opened from an indoor extension (分机开锁)' },
  '6': { method: 'remote', type: 'remote', event: 'opened by the property centre (物业中心开锁)' },
  '7': { method: 'fingerprint', type: '', event: 'fingerprint (指纹开锁)' },
  '8': { method: 'password', type: 'public', event: 'public password (公共密码开锁)' },
  '14': { method: 'phone', type: 'remote', event: 'opened by phone call (手机电话开锁)' },
}

/** Section 3 `result`: "0开锁成功/1无权限 99其他". */
export const UNLOCK_RESULTS: Readonly<Record<string, string>> = { '0': 'granted', '1': 'denied', '99': 'other' }

export interface UnlockCallback {
  communityId: string
  deviceCode: string
  type: string
  result: string
  phone: string
  roomNumber: string
  unitId: string
  file: string
}

/** Section 3: communityId, deviceCode, type and result are needed to make a record; the rest may be empty. */
export function parseUnlockCallback(f: Record<string, string>): UnlockCallback | { error: string } {
  const u: UnlockCallback = {
    communityId: f.communityId ?? '', deviceCode: f.deviceCode ?? '', type: f.type ?? '', result: f.result ?? '',
    phone: f.phone ?? '', roomNumber: f.roomNumber ?? '', unitId: f.unitId ?? '', file: f.file ?? '',
  }
  if (!u.communityId || !u.deviceCode) return { error: 'communityId or deviceCode missing' }
  if (!/^\d+$/.test(u.type)) return { error: `type ${JSON.stringify(u.type)} is not a number` }
  if (!/^\d+$/.test(u.result)) return { error: `result ${JSON.stringify(u.result)} is not a number` }
  return u
}

/**
 * The record of an unlockCallback. The document gives no record id and no time (AMBIGUITIES #7):
 * the time is when it arrived; the id is derived from the capture it refers to when there is one
 * (so a device re-sending the same callback is stored once), else from the arrival time.
 */
export function unlockRecord(device: string, u: UnlockCallback, opts: { time: number; recordId: string; userId: string; name: string; photo?: Buffer }): SpoolRecord {
  const t = UNLOCK_TYPES[String(Number(u.type))]
  const result = UNLOCK_RESULTS[String(Number(u.result))]
  const rec: SpoolRecord = {
    device,
    recordId: opts.recordId,
    time: opts.time,
    userId: opts.userId,
    name: opts.name,
    type: t ? t.type || (u.phone ? 'resident' : '') : '',
    result: result ?? `result ${u.result}`,
    // the document does not say which side of the door the station is on
    direction: '',
    method: t?.method ?? '',
    extras: {
      unlock_type: Number(u.type),
      event: t?.event ?? `unlock type ${u.type}`,
      phone: u.phone || null,
      room: u.roomNumber || null,
      unit: u.unitId || null,
    },
  }
  if (opts.photo) rec.photo = opts.photo
  return rec
}

/**
 * The path /addUpload answered, as the record's `file` carries it back: ours are
 * `/doorctl/files/<name>` (answered relative, like section 4's example `/data/page/uploadImages/…`);
 * an absolute URL or a bare name is taken too.
 */
export function uploadNameOf(file: string): string | undefined {
  let path = file.trim()
  if (!path) return undefined
  try {
    if (/^https?:\/\//i.test(path)) path = new URL(path).pathname
  } catch {
    return undefined
  }
  const name = decodeURIComponent(path.split('/').pop() ?? '')
  return /^udp-upload-[\w.-]+$/.test(name) ? name : undefined
}

/**
 * Section 4's URL form `addUpload;uploadFile=/sdcard/1600657724098.jpg;newName=1600657724098.jpg`
 * (AMBIGUITIES #8): `;key=value` parameters in the path, also accepted in the query string.
 */
export function uploadParams(path: string, query: URLSearchParams): { uploadFile?: string; newName?: string } {
  const out: { uploadFile?: string; newName?: string } = {}
  for (const key of ['uploadFile', 'newName'] as const) {
    const m = new RegExp(`;${key}=([^;]*)`, 'i').exec(path)
    const v = m ? safeDecode(m[1]) : query.get(key) ?? undefined
    if (v) out[key] = v
  }
  return out
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

/** Section 5/6 `state`: "10 新增 20 修改 30 删除 40无效图片 50 有效图片". */
export const FACE_STATES: Readonly<Record<string, string>> = { '10': 'added', '20': 'changed', '30': 'deleted', '40': 'invalid photo', '50': 'valid photo' }

/**
 * Section 5 `timestrap` (sic, AMBIGUITIES #3; `timestamp` accepted too), milliseconds. Missing or
 * not a number → 0: the whole list. The section's `state` parameter, copied from section 3, is ignored.
 */
export function parseTimestrap(f: Record<string, string>): number {
  const v = f.timestrap ?? f.timestamp ?? ''
  const n = /^\d+$/.test(v) ? Number(v) : NaN
  return Number.isSafeInteger(n) ? n : 0
}

export interface FaceItem {
  createTime: number
  phone: string
  roomNumber: string
  unitId: string
  communityId: string
  state: '10' | '20' | '30'
  /** Path the device fetches the photo from ('' for a deletion). */
  imageUrl: string
}

/** The path of a published URL: imageUrl and upload paths are relative, as the document's examples (AMBIGUITIES #5). */
export function pathOf(url: string): string {
  return new URL(url).pathname
}

/**
 * One entry of section 5's answer, keys in the example's order. imageUrl is a path relative to
 * the server the device called, as in the example (AMBIGUITIES #5). zipUrl: "无数据填空" (the
 * table: empty when there is no feature file; the example's null is not the table's form).
 */
export function faceItemJson(f: FaceItem): Json {
  return { createTime: f.createTime, phone: f.phone, roomNumber: f.roomNumber, imageUrl: f.imageUrl, state: f.state, zipUrl: '', unitId: f.unitId, communityId: f.communityId }
}

/**
 * Section 5's answer. The example is invalid JSON (AMBIGUITIES #3); this is its valid form.
 * Entries are those with createTime strictly after timestrap (AMBIGUITIES #4: createTimes are
 * unique per device, so strict loses nothing), oldest first; `id` "消息id，服务器使用" is ours.
 */
export function faceListAnswer(items: FaceItem[], messageId: string): Json {
  return { data: items.map(faceItemJson), id: messageId, message: '查询成功', page: null, code: CODE_OK }
}

export interface AuthImage {
  phone: string
  state: '40' | '50'
  /** "iffile 2表示无文件，1表示有文件返回". */
  hasFile: boolean
}

/** Section 6: phone and state (40 invalid photo / 50 valid) are required; other states are no verdict. */
export function parseAuthImage(f: Record<string, string>): AuthImage | { error: string } {
  const phone = f.phone ?? ''
  if (!phone) return { error: 'phone missing' }
  if (!PHONE_RE.test(phone)) return { error: `phone ${JSON.stringify(phone)} is not a phone number (${PHONE_DESCRIPTION})` }
  const state = f.state ?? ''
  if (state !== '40' && state !== '50') return { error: `state ${JSON.stringify(state)} is not a verdict (40 invalid photo, 50 valid photo)` }
  return { phone, state, hasFile: (f.iffile ?? '') === '1' }
}

/** The device's words for a verdict, for the person's outcome. */
export function verdictMessage(state: '40' | '50', action: string): string {
  return state === '50' ? `face ${action}: the device accepted the photo (state 50, 有效图片)` : 'the device found no usable face in the photo (state 40, 无效图片)'
}

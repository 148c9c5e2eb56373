/** What the best document defines (codes, signatures, time formats) and the helpers every part of the simulated device uses. */
import { createHash, pbkdf2Sync } from 'node:crypto'

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
export const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$/

// ---------------------------------------------------------------------------------------------
// Messages and users.

export type Json = Record<string, unknown>

export interface Pending {
  funcId: string
  resolve(reply: Json): void
  reject(err: Error): void
  timer: NodeJS.Timeout
}

export interface CmdResult {
  code: string
  message: string
  /** Runs after dev.cmd.response was sent (reboot). */
  after?: () => void
}

export const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
export const obj = (v: unknown): Json => (isObj(v) ? v : {})
/** AMBIGUITIES best #10: "all values are strings" against fields typed as integers: read numbers as their text. */
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined)
export const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e))
export const results = (reply: Json): Json => obj(obj(reply.payload).results)
/** AMBIGUITIES best #10: a server writing the code as a number 0 is read as success too. */
export const codeOf = (reply: Json): string => str(reply.code) ?? ''
export const isOk = (reply: Json): boolean => codeOf(reply) === BEST_CODES.ok || (typeof reply.code === 'number' && reply.code === 0)

/** Fields of a user as 3.8 (dev.data.upload.user) lists them; `role` (3.14) and `ruleType` kept as extensions. */
export const USER_FIELDS = ['pin', 'role', 'password', 'passwordSalt', 'group', 'idNum', 'startTime', 'endTime', 'firstName', 'lastName', 'funSwitch', 'disable', 'threatLevelGroupNum', 'ruleType'] as const
export const BIO_FIELDS = ['no', 'index', 'valid', 'duress', 'type', 'majorVer', 'minorVer', 'fmt', 'tmp'] as const

export const MAX_USERS = 30000
export const MAX_PHOTO_BYTES = 2 * 1024 * 1024
export const USERS_PER_UPLOAD = 100

export const HANDLED_COMMANDS = [
  'cmd.control.reboot', 'cmd.system.sync.time', 'cmd.option.set',
  'cmd.data.update.user', 'cmd.data.update.bioPhoto', 'cmd.data.delete.user', 'cmd.data.clear.user', 'cmd.data.query.user',
  'cmd.data.delete.userPhoto', 'cmd.data.delete.bioPhoto', 'cmd.data.update.multiCard', 'cmd.data.delete.multiCard',
  'cmd.data.clear.multiCard', 'cmd.data.clear.all', 'cmd.data.update.meeting', 'cmd.data.update.meetingMember',
  'cmd.data.delete.meeting', 'cmd.data.delete.meetingMember',
]

export const ok = (message: string): CmdResult => ({ code: BEST_CODES.ok, message })
export const bad = (message: string): CmdResult => ({ code: BEST_CODES.badParams, message })

export function strings(v: unknown): string[] | undefined {
  if (!Array.isArray(v)) return undefined
  const out: string[] = []
  for (const x of v) {
    const s = str(x)
    if (s === undefined) return undefined
    out.push(s)
  }
  return out
}

export function firstStr(o: Json, keys: string[]): string | undefined {
  for (const k of keys) {
    const s = str(o[k])
    if (s !== undefined && s !== '') return s
  }
  return undefined
}

/** Paths of values that are neither strings nor containers (AMBIGUITIES best #10). */
export function findNonStrings(v: unknown, path = '', out: string[] = []): string[] {
  if (Array.isArray(v)) v.forEach((x, i) => findNonStrings(x, `${path}[${i}]`, out))
  else if (isObj(v)) for (const [k, x] of Object.entries(v)) findNonStrings(x, path ? `${path}.${k}` : k, out)
  else if (typeof v !== 'string') out.push(path || '(root)')
  return out
}

/** Validity and password checks of one cmd.data.update.user entry; undefined when fine. */
export function checkUser(u: Json): string | undefined {
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
export function userToWire(u: Json): Json {
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
export function parseServerTime(s: string, tzMin: number): number | undefined {
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

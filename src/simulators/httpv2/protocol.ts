/** What the httpv2 document defines (paths, error codes, limits) and the helpers every part of the simulated device uses. */
import { createHash, randomBytes } from 'node:crypto'
import { gzipSync } from 'node:zlib'

// ---------------------------------------------------------------------------------------------
// Document constants.

/**
 * Paths. README "What field reports add": HTTPClient_ProtocolType 100 = v1 uses
 * /DevicePass/SelectPassInfo, /DevicePass/SelectDeleteInfo, /device/selectRestart; 200 = v2.
 * AMBIGUITIES httpv2 #2: v1 bodies are never documented, so v1 sends the v2 bodies; only these
 * three paths differ (every other endpoint exists once in the document and is shared).
 */
export const HTTPV2_PATHS = {
  v2: { download: '/People/DownloadPeopleList', delete: '/People/DeletePeopleList', remote: '/Device/RemoteCommand' },
  v1: { download: '/DevicePass/SelectPassInfo', delete: '/DevicePass/SelectDeleteInfo', remote: '/device/selectRestart' },
} as const

/** "errorCode 人员失败错误码" (DownloadPeopleListResult). */
export const PEOPLE_ERROR = {
  PARAM: 1,
  PHOTO_DOWNLOAD: 2,
  PHOTO_TOO_BIG: 3,
  FACE_FEATURE_DOWNLOAD: 4,
  FINGERPRINT_DOWNLOAD: 5,
  PALMVEIN_DOWNLOAD: 6,
  FACE_REPEAT: 20,
  FINGERPRINT_REPEAT: 21,
  PALMVEIN_REPEAT: 22,
  CARD_REPEAT: 23,
  FULL: 24,
  QUERY: 25,
  SAVE_PHOTO: 26,
  FACE_FEATURE_FORMAT: 27,
  FINGERPRINT_FORMAT: 28,
  PALMVEIN_FORMAT: 29,
  PHOTO_UNRECOGNISABLE: 30,
  SAVE_FINGERPRINT: 31,
  SAVE_PALMVEIN: 32,
} as const

/** "RegisterIdentifyTicketResult" Result values. */
export const TICKET_RESULT = { OK: 1, CANCELLED: 2, DUPLICATE: 3, NO_FINGERPRINT: 4, NO_PALMVEIN: 5, BUSY: 6 } as const

/** PeopleJson "PhotoLen: 最大支持400KB的图片" (AMBIGUITIES httpv2 #10: 400 KB for enrolment, the field table wins over the error table's 500 KB). */
export const MAX_PERSON_PHOTO_BYTES = 400 * 1024
/** UploadIdentifyRecord table: Photo "50KB". */
export const MAX_RECORD_PHOTO_BYTES = 50 * 1024
/** UploadWorkSetting example: PeopleStorageInfo.Person.Max. */
export const MAX_PEOPLE = 20000
/** DownloadPeopleList Limit the simulator asks for ("设备按自身处理容量来设置此值"). */
export const DOWNLOAD_LIMIT = 20
/** DeletePeopleList Limit: AMBIGUITIES httpv2 #8 ("required yet defaulted to 50"): always sent, with the document's default. */
export const DELETE_LIMIT = 50
/** UploadSystemRecord "Records 【】 1000". */
export const SYSTEM_RECORD_BATCH = 1000
/** PeopleJson ExpirationDate "最大表示到 2099年12月31日": 2099-12-31T23:59:59Z. */
export const MAX_EXPIRATION = 4102444799
export const UINT32_MAX = 4294967295n
/** PeopleJson CardNum "UINT62" (sic, AMBIGUITIES httpv2 #13): the stated maximum is UINT64's. */
export const CARD_MAX = 18446744073709551615n

export const FLAG_NAMES = ['UploadWorkParameter', 'Remote', 'SyncParameter', 'DeletePeople', 'AddPeople'] as const
export type Flag = (typeof FLAG_NAMES)[number]

/** Alarm names of the keepalive's AlarmStatus → system-record events (raised, cleared) of UploadSystemRecord. */
export const ALARM_EVENTS: Record<string, [number, number]> = {
  illegal: [14, 21],
  doorSensor: [15, 22],
  password: [16, 23],
  openTimeout: [17, 24],
  blacklist: [18, 25],
  fire: [19, 26],
  anti: [20, 27],
}
/** Opendoor mode → system-record event: 1 软件开门, 2→3 软件常开, 3→2 软件关门, 4→8 软件锁定, 5→9 软件解除锁定. */
export const OPENDOOR_EVENTS: Record<number, number> = { 1: 1, 2: 3, 3: 2, 4: 8, 5: 9 }

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

export function isJpeg(b: Buffer): boolean {
  return b.length >= 4 && b[0] === 0xff && b[1] === 0xd8 && b[b.length - 2] === 0xff && b[b.length - 1] === 0xd9
}

/** PhotoMD5 "HEX字符串格式": uppercase, as the document's examples (AMBIGUITIES httpv2 #13; compared case-insensitively). */
export function md5Hex(b: Buffer): string {
  return createHash('md5').update(b).digest('hex').toUpperCase()
}

export interface MultipartPart {
  name: string
  data: string | Buffer
  filename?: string
  contentType?: string
  /** gzip the part and mark it `Content-Encoding: gzip` (document: PushPeople Detail, record RecordDetail/recordJson). */
  gzip?: boolean
}

/**
 * multipart/form-data built by hand: the global FormData cannot put `Content-Encoding: gzip` on
 * one part, which the document's examples do. CRLF line ends, boundary in the document's style.
 */
export function buildMultipart(parts: MultipartPart[]): { body: Buffer; contentType: string } {
  const boundary = `--------------------------${randomBytes(12).toString('hex')}`
  const chunks: Buffer[] = []
  for (const p of parts) {
    let data = typeof p.data === 'string' ? Buffer.from(p.data, 'utf8') : p.data
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}\r\n`
    if (p.gzip) {
      data = gzipSync(data)
      head += 'Content-Encoding: gzip\r\nContent-Type: application/octet-stream\r\n'
    } else if (p.contentType) {
      head += `Content-Type: ${p.contentType}\r\n`
    }
    chunks.push(Buffer.from(head + '\r\n', 'utf8'), data, Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` }
}

export const byteLen = (s: string): number => Buffer.byteLength(s, 'utf8')
export const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
export const isUrl = (s: string): boolean => /^https?:\/\//i.test(s)
export const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v)
/** Protocol ids are "数字" strings; the document's DeleteList/QueryPeople/UserID(uint) carry numbers: send numbers where the table says uint. */
export const idNumber = (id: string): number | string => (/^\d+$/.test(id) && Number(id) <= Number.MAX_SAFE_INTEGER ? Number(id) : id)
/** AMBIGUITIES httpv2 #8: ids are numbers in DeletePeopleList and strings elsewhere — read both. */
export const idString = (v: unknown): string | undefined =>
  typeof v === 'string' && v !== '' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined
export const idCompare = (a: string, b: string): number =>
  /^\d+$/.test(a) && /^\d+$/.test(b) ? (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0) : a < b ? -1 : a > b ? 1 : 0

export class QuietError extends Error {} // server said 401/403/400/non-200: stay quiet until the next keepalive
export class NetError extends Error {} // no answer after the retries: "通讯进入休眠"
export class RebootError extends Error {} // Restart executed: the exchange ends here
export class StoppedError extends Error {}

export interface Answer {
  status: number
  json: Record<string, unknown> | undefined
  text: string
}

export interface Person {
  detail: Record<string, unknown>
  photo?: Buffer
}

export interface IdRecord {
  id: number
  detail: Record<string, unknown>
  photo?: Buffer
  uploaded: boolean
  notBefore: number
}

export interface SysRecord {
  id: number
  /** UploadSystemRecord top-level RecordType: 1 门磁记录, 2 系统记录. */
  category: 1 | 2
  event: number
  date: number
  uploaded: boolean
  notBefore: number
}

export type FailEntry = { UserID: string; ErrorCode: number; RepeatID: string; ErrMsg: string }

export const NAMES = {
  table: { detail: 'RecordDetail', photo: 'Photo', filename: 'Photo.jpg' },
  example: { detail: 'recordJson', photo: 'pic', filename: 'Postman_file.jpg' },
} as const

export const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '')

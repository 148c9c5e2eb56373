/**
 * A simulated httpv2 face-recognition terminal, written from the vendor document
 * (protocols/httpv2-face.md) plus the field reports in protocols/README.md and the httpv2 part
 * of protocols/AMBIGUITIES.md — and from nothing else. It deliberately shares no code with the
 * httpv2 driver/gateway: a simulator built on the server's codec would confirm its misreadings.
 *
 * httpv2 devices are HTTP *clients*: the device POSTs /Device/Keepalive every KeepaliveTime
 * seconds and follows the flags in the answer, calling the server's other endpoints, then
 * uploads its queued records. Everything runs over one HTTP/1.1 connection (undici `Client`,
 * one socket, one request at a time), as the document's "关于HTTP的连接保持" asks.
 *
 * Where the document is silent or contradicts itself, the decision is a one-line comment that
 * names the section or the AMBIGUITIES item.
 */
import { createHash, randomBytes } from 'node:crypto'
import { gunzipSync, gzipSync, inflateSync } from 'node:zlib'
import { Client } from 'undici'

// ---------------------------------------------------------------------------------------------
// Public API.

export interface Httpv2SimulatorOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:8090 (a path prefix is kept). */
  server: string
  sn: string
  /** Keepalive interval; default 15000; tests use ~50. */
  intervalMs?: number
  /** Send JSON request bodies gzip-compressed with Content-Encoding: gzip (field report: mongoose 6.18 devices do this); default true. */
  gzip?: boolean
  /** Which path family to call after flags; default 'v2'. */
  api?: 'v1' | 'v2'
  /** N generated identification records queued for upload at start. */
  records?: number
  /** Document "异常处理": 2 s timeout, 3 retries; default 2000. */
  requestTimeoutMs?: number
  /** Document "上传打卡记录": a record upload answered with an error is retried after 10 s; default 10000. */
  retryDelayMs?: number
  /** RecordDetail+Photo (the document's table) vs recordJson+pic (its example); default 'table'. */
  multipartNames?: 'table' | 'example'
  /** Treat the first record upload's answer as lost and re-send the same record once. */
  dropFirstAnswer?: boolean
  /** Photos whose bytes contain this ASCII marker fail to enroll with error code 30 (default 'NOFACE'). */
  rejectPhotosContaining?: string
  log?: (line: string) => void
}

export interface Httpv2Events {
  keepalives: number
  /** Opendoor modes executed, in order (1 open, 2 keep open, 3 close, 4 lock, 5 unlock). */
  opens: number[]
  reboots: number
  alarmsClosed: number
  /** One `{ SystemTime, TimeZone }` per DownloadWorkSetting that carried either, values as received. */
  timeSets: unknown[]
  snapshots: number
  workParameterUploads: number
  workSettingDownloads: number
  remoteCommands: number
  recovers: number
  recordsCleared: number
  /** /People/PushPeople requests sent. */
  peoplePushes: number
  /** /Device/RegisterIdentifyTicketResult requests sent. */
  ticketResults: number
  /** Keepalive answers that carried flags with a Success other than 1 (ignored, field report). */
  ignoredFlagAnswers: number
  /** Identification record upload requests sent (including re-sends). */
  recordUploads: number
  /** /Record/UploadSystemRecord requests sent. */
  systemRecordUploads: number
  /** Work parameters the device refused to apply (unknown, read-only, wrong type), as `Name: reason`. */
  rejectedParameters: string[]
  /** Remote commands (or parts) the simulator recognised but does not simulate. */
  unsupported: string[]
  /** Protocol problems seen in the server's answers (also logged). */
  problems: string[]
}

export interface DoorState {
  RelayStatus: number
  KeepOpenStatus: number
  DoorSensorStatus: number
  LockDoorStatus: number
  AlarmStatus: string
}

export interface Httpv2Simulator {
  readonly sn: string
  /** People stored on the device (by the id used in the protocol). */
  people(): Map<string, Record<string, unknown>>
  readonly events: Httpv2Events
  /** Queue a new identification record for upload (and upload it at the next opportunity). Returns its RecordID. */
  addRecord(partial?: Record<string, unknown>): string
  /** Records the server acknowledged (RecordIDs, first acknowledgement order, no repeats). */
  acknowledgedRecords(): string[]
  /** The work parameters the device holds now (a copy), as DownloadWorkSetting sets them. */
  parameters(): Record<string, unknown>
  /** Set what the door reports in keepalives. */
  setDoorState(s: Partial<DoorState>): void
  /** Send a keepalive now (don't wait for the interval); resolves when the whole exchange the answer triggered is done. */
  tick(): Promise<void>
  /** Ask the server for an online decision (RequestAuthorization) for this user id; resolves with the server's Success value. */
  requestAuthorization(userId: string): Promise<number>
  /** Last Success value the server gave to a keepalive (401 for unknown SN, ...). */
  readonly lastKeepaliveSuccess: number | undefined
  /** Begin the keepalive loop (first keepalive immediately). */
  start(): void
  stop(): Promise<void>
}

export function createHttpv2Simulator(opts: Httpv2SimulatorOptions): Httpv2Simulator {
  return new Httpv2Device(opts)
}

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
const MAX_EXPIRATION = 4102444799
const UINT32_MAX = 4294967295n
/** PeopleJson CardNum "UINT62" (sic, AMBIGUITIES httpv2 #13): the stated maximum is UINT64's. */
const CARD_MAX = 18446744073709551615n

const FLAG_NAMES = ['UploadWorkParameter', 'Remote', 'SyncParameter', 'DeletePeople', 'AddPeople'] as const
type Flag = (typeof FLAG_NAMES)[number]

/** Alarm names of the keepalive's AlarmStatus → system-record events (raised, cleared) of UploadSystemRecord. */
const ALARM_EVENTS: Record<string, [number, number]> = {
  illegal: [14, 21],
  doorSensor: [15, 22],
  password: [16, 23],
  openTimeout: [17, 24],
  blacklist: [18, 25],
  fire: [19, 26],
  anti: [20, 27],
}
/** Opendoor mode → system-record event: 1 软件开门, 2→3 软件常开, 3→2 软件关门, 4→8 软件锁定, 5→9 软件解除锁定. */
const OPENDOOR_EVENTS: Record<number, number> = { 1: 1, 2: 3, 3: 2, 4: 8, 5: 9 }

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

const byteLen = (s: string): number => Buffer.byteLength(s, 'utf8')
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isUrl = (s: string): boolean => /^https?:\/\//i.test(s)
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v)
/** Protocol ids are "数字" strings; the document's DeleteList/QueryPeople/UserID(uint) carry numbers: send numbers where the table says uint. */
const idNumber = (id: string): number | string => (/^\d+$/.test(id) && Number(id) <= Number.MAX_SAFE_INTEGER ? Number(id) : id)
/** AMBIGUITIES httpv2 #8: ids are numbers in DeletePeopleList and strings elsewhere — read both. */
const idString = (v: unknown): string | undefined =>
  typeof v === 'string' && v !== '' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined
const idCompare = (a: string, b: string): number =>
  /^\d+$/.test(a) && /^\d+$/.test(b) ? (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0) : a < b ? -1 : a > b ? 1 : 0

class QuietError extends Error {} // server said 401/403/400/non-200: stay quiet until the next keepalive
class NetError extends Error {} // no answer after the retries: "通讯进入休眠"
class RebootError extends Error {} // Restart executed: the exchange ends here
class StoppedError extends Error {}

interface Answer {
  status: number
  json: Record<string, unknown> | undefined
  text: string
}

interface Person {
  detail: Record<string, unknown>
  photo?: Buffer
}

interface IdRecord {
  id: number
  detail: Record<string, unknown>
  photo?: Buffer
  uploaded: boolean
  notBefore: number
}

interface SysRecord {
  id: number
  /** UploadSystemRecord top-level RecordType: 1 门磁记录, 2 系统记录. */
  category: 1 | 2
  event: number
  date: number
  uploaded: boolean
  notBefore: number
}

type FailEntry = { UserID: string; ErrorCode: number; RepeatID: string; ErrMsg: string }

// ---------------------------------------------------------------------------------------------
// Work parameters ("设备工作参数", UploadWorkSetting / DownloadWorkSetting examples).

const emptyWeek = (): Record<string, string> => ({ Week1: '', Week2: '', Week3: '', Week4: '', Week5: '', Week6: '', Week7: '' })

function defaultParameters(sn: string, server: string, intervalMs: number, gzip: boolean, api: 'v1' | 'v2'): Record<string, unknown> {
  return {
    DeviceSN: sn,
    FireAlarm: 0,
    DoorLongOpenAlarm: 0,
    DoorLongOpenTime: 0,
    DoorSensorAlarm: 0,
    DoorSensorAlarmTimegroup: emptyWeek(),
    BlacklistAlarm: 1,
    AntiDisassemblyAlarm: 1,
    IllegalVerificationAlarm: 0,
    IllegalVerificationAlarmLimit: 30,
    UseUserCloseAlarm: 1,
    PasswordAlarm: 0,
    PasswordAlarm_Password: '',
    PasswordAlarm_Mode: 1,
    AlarmClocks: [{ Num: 1, Clock: '00:00', Times: 0 }],
    UseBodyTemperature: 0,
    UseFahrenheitDisplay: 0,
    TemperatureCompensate: 0,
    TemperatureAlarmThreshold: 37.3,
    TemperatureDisplay: 1,
    CardBytes: 3,
    AccessType: 0,
    WgFormat: 26,
    WGContent: 1,
    ReleaseTime: 3,
    FreeOpen: 0,
    OpenInterval: 2,
    OpenInterval_SaveRecord: 0,
    Relay: 0,
    ShortMessage: '',
    VerificationType: 1,
    OverdueRemind: 1,
    OverdueRemind_Day: 3,
    TimingOpen: 0,
    TimingOpen_mode: 1,
    TimingOpen_timegroup: emptyWeek(),
    TimingLocked: 0,
    TimingLocked_timegroup: emptyWeek(),
    VisitorRootPassword: '',
    MultiPerson: 1,
    UseElevator: 0,
    ElevatorPorts: [],
    FaceIR: 1,
    FaceIRThreshold: 5,
    FaceDistance: 3,
    FaceThreshold: 58,
    FPComparison: 80,
    FaceMask: 0,
    FaceMaskThreshold: 65,
    Holidays: [],
    Language: 1,
    SystemTime: 0,
    UseNTP: 0,
    TimeZone: 8,
    Volume: 6,
    Voice: 1,
    ConnectPassword: '',
    UseWired: 1,
    WiredDHCP: 0,
    WiredIP: '192.168.1.103',
    WiredIPMask: '255.255.255.0',
    WiredGteway: '192.168.1.1', // sic, the document's spelling
    WiredDNS: '192.168.1.1',
    WiredMAC: macFor(sn),
    UseWIFI: 0,
    WIFIDHCP: 0,
    WIFIIP: '',
    WIFIIPMask: '',
    WIFIGteway: '',
    WIFIDNS: '',
    WIFIMAC: '',
    WIFIAPName: '',
    WIFIAPPassword: '',
    UseWebPage: 1,
    HTTPPort: 80,
    HTTPSPort: 443,
    WebPageUseSSL: 1,
    UseUDP: 0,
    UDPPort: 8101,
    UseTelnet: 0,
    TelnetPort: 23,
    UseRTSP: 0,
    RTSPPort: 554,
    RTSPUser: 'admin',
    RTSPPassword: '',
    UseTCPClient: 0,
    UseUDPClient: 0,
    ServerAddress: '',
    ServerPort: 0,
    KeepaliveTime: 30,
    UseHTTPClient: 1,
    HTTPClient_ProtocolType: api === 'v1' ? 100 : 200,
    HTTPClient_ServerAddr: server,
    HTTPClient_KeepaliveTime: Math.max(1, Math.round(intervalMs / 1000)),
    HTTPClient_UseGZIP: gzip ? 1 : 0,
    UseMQTTClient: 0,
    UseMQTTSSL: 0,
    MQTTServerAddr: '',
    MQTTPort: 0,
    MQTTLoginName: '',
    MQTTLoginPassword: '',
    MQTTPublishTopic: '',
    MQTTSubscribeTopic: '',
    MQTT_KeepaliveTime: 30,
    MQTT_UseGZIP: 0,
    UseWebsocketClient: 0,
    WebsocketClient_ProtocolType: 100,
    WebsocketClient_ServerAddr: '',
    WebsocketClient_UseGZIP: 0,
    WebsocketClient_KeepaliveTime: 30,
    UseYZW: 0,
    YZWAddr: '',
    RecordAutoCycle: 0,
    SaveUnregistered: 1,
    SaveRecordPicture: 1,
    DeviceName: '',
    Manufacturer: '',
    ManufacturerPhone: '',
    Website: '',
    ProductionDate: '2024-06-15',
    OEMText: '',
    AutoRestart: 0,
    AutoRestartTime: '02:00',
    TimeGroups: [
      { Num: 1, Week1: '00:00-23:59', Week2: '00:00-23:59', Week3: '00:00-23:59', Week4: '00:00-23:59', Week5: '00:00-23:59', Week6: '00:00-23:59', Week7: '00:00-23:59' },
    ],
    DisplayBrightness: 6,
    MenuPassword: '0000',
    ShowIR: 0,
    ShowPersonPhoto: 1,
    PlayPersonName: 1,
    RecognitionButton: 0,
    UnregisteredWarn: 0,
    ShowPersonName: 1,
    FillLight: 2,
  }
}

/** Reported in UploadWorkSetting but not settable through DownloadWorkSetting (absent from its example). */
const READ_ONLY_PARAMETERS = new Set([
  'DeviceSN', 'RunDays', 'FormatCount', 'WatchDogCount', 'BootTime', 'RelayStatus', 'KeepOpenStatus', 'DoorSensorStatus',
  'LockDoorStatus', 'AlarmStatus', 'PeopleStorageInfo', 'RecordStorageInfo', 'FirmwareVerson', 'FingerprintVerson',
  'FaceVerson', 'FunctionList',
])
/** Settable in the document but outside what the simulator can follow (it keeps the server it was started with). */
const NOT_SIMULATED_PARAMETERS = new Set(['UseHTTPClient', 'HTTPClient_ServerAddr'])

function macFor(sn: string): string {
  const h = createHash('md5').update(sn).digest()
  return [0x7e, h[0], h[1], h[2], h[3], h[4]].map((x) => (x ?? 0).toString(16).padStart(2, '0').toUpperCase()).join('-')
}

const sameType = (a: unknown, b: unknown): boolean =>
  Array.isArray(a) ? Array.isArray(b) : isObj(a) ? isObj(b) : typeof a === typeof b

// ---------------------------------------------------------------------------------------------
// The device.

const NAMES = {
  table: { detail: 'RecordDetail', photo: 'Photo', filename: 'Photo.jpg' },
  example: { detail: 'recordJson', photo: 'pic', filename: 'Postman_file.jpg' },
} as const

class Httpv2Device implements Httpv2Simulator {
  readonly sn: string
  readonly events: Httpv2Events = {
    keepalives: 0, opens: [], reboots: 0, alarmsClosed: 0, timeSets: [], snapshots: 0, workParameterUploads: 0,
    workSettingDownloads: 0, remoteCommands: 0, recovers: 0, recordsCleared: 0, peoplePushes: 0, ticketResults: 0,
    ignoredFlagAnswers: 0, recordUploads: 0, systemRecordUploads: 0, rejectedParameters: [], unsupported: [], problems: [],
  }
  lastKeepaliveSuccess: number | undefined

  private readonly origin: string
  private readonly prefix: string
  private intervalMs: number
  private gzip: boolean
  private api: 'v1' | 'v2'
  private readonly timeoutMs: number
  private readonly retries = 3 // "异常处理": 超时重试次数3次
  private readonly retryDelayMs: number
  private readonly names: (typeof NAMES)['table' | 'example']
  private dropFirstAnswer: boolean
  private readonly noFaceMarker: Buffer
  private readonly logFn: (line: string) => void

  private params: Record<string, unknown>
  private clockOffsetS = 0
  private readonly bootTime: number
  private door: DoorState = { RelayStatus: 0, KeepOpenStatus: 0, DoorSensorStatus: 0, LockDoorStatus: 0, AlarmStatus: '' }
  private relayTimer: NodeJS.Timeout | undefined
  private readonly store = new Map<string, Person>()
  private idRecords: IdRecord[] = []
  private sysRecords: SysRecord[] = []
  private nextRecordId = 1
  private nextSysRecordId = 1
  private readonly acked: string[] = []
  private readonly ackedSet = new Set<string>()

  private client: Client | undefined
  private abort = new AbortController()
  private lock: Promise<void> = Promise.resolve()
  private running = false
  private stopped = false
  private loopDone: Promise<void> | undefined
  private wake: (() => void) | undefined
  private lastKeepaliveAt = 0
  /** After a network failure or a refusal: no calls but keepalives until a keepalive gets Success 1. */
  private quiet = true
  /** "异常处理 1": the parameter upload state survives failures; sent after the first good keepalive. */
  private workSettingUploaded = false
  private rebootedAt = 0
  private kickQueued = false

  constructor(opts: Httpv2SimulatorOptions) {
    const u = new URL(opts.server)
    this.origin = u.origin
    this.prefix = u.pathname.replace(/\/+$/, '')
    this.sn = opts.sn
    this.intervalMs = opts.intervalMs ?? 15000
    this.gzip = opts.gzip ?? true
    this.api = opts.api ?? 'v2'
    this.timeoutMs = opts.requestTimeoutMs ?? 2000
    this.retryDelayMs = opts.retryDelayMs ?? 10000
    this.names = NAMES[opts.multipartNames ?? 'table']
    this.dropFirstAnswer = opts.dropFirstAnswer ?? false
    this.noFaceMarker = Buffer.from(opts.rejectPhotosContaining ?? 'NOFACE', 'latin1')
    this.logFn = opts.log ?? (() => {})
    this.params = defaultParameters(this.sn, opts.server, this.intervalMs, this.gzip, this.api)
    this.bootTime = this.nowS()
    for (let i = 0; i < (opts.records ?? 0); i++) this.queueRecord({}, this.nowS() - (opts.records ?? 0) + i)
  }

  // -- public ---------------------------------------------------------------------------------

  people(): Map<string, Record<string, unknown>> {
    const m = new Map<string, Record<string, unknown>>()
    for (const [id, p] of this.store) m.set(id, { ...p.detail })
    return m
  }

  addRecord(partial: Record<string, unknown> = {}): string {
    const r = this.queueRecord(partial, this.nowS())
    this.kick()
    return String(r.id)
  }

  acknowledgedRecords(): string[] {
    return [...this.acked]
  }

  parameters(): Record<string, unknown> {
    return structuredClone(this.params)
  }

  setDoorState(s: Partial<DoorState>): void {
    const before = { ...this.door }
    this.door = { ...this.door, ...s }
    if (s.DoorSensorStatus !== undefined && s.DoorSensorStatus !== before.DoorSensorStatus) {
      this.queueSys(1, s.DoorSensorStatus ? 1 : 2) // 门磁记录: 1 门磁-开门, 2 门磁-关门
    }
    if (s.AlarmStatus !== undefined && s.AlarmStatus !== before.AlarmStatus) this.alarmRecords(before.AlarmStatus, s.AlarmStatus)
    this.kick()
  }

  tick(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error(`${this.sn}: simulator stopped`))
    // tick() sends at once, even inside the interval a reboot skips (that skip is the loop's).
    return this.withLock(() => this.exchange())
  }

  async requestAuthorization(userId: string): Promise<number> {
    if (this.stopped) throw new Error(`${this.sn}: simulator stopped`)
    let result: number | undefined
    let failure: Error | undefined
    await this.withLock(async () => {
      const p = this.store.get(userId)?.detail ?? {}
      const photo = makeJpeg(`AUTH ${this.sn} ${userId} ${Date.now()}`)
      // "请求服务器鉴权": RecordID is a request id (example 1718616771001): device ms clock.
      const detail = {
        RecordID: Date.now(),
        RecordType: 3,
        RecordDate: this.nowS(),
        UserID: userId,
        Code: str(p.Code),
        Name: str(p.Name),
        IdentityCard: str(p.IdentityCard),
        Job: str(p.Job),
        Department: str(p.Department),
        CardNum: str(p.CardNum) || '0',
        QRCode: '',
        IsEntry: 1,
        BodyTemp: 0,
        PhotoLen: photo.length,
      }
      try {
        const ans = await this.post('/Device/RequestAuthorization', { multipart: this.recordParts(detail, photo) })
        if (ans.status !== 200 || !ans.json || typeof ans.json.Success !== 'number') {
          failure = new Error(`RequestAuthorization: HTTP ${ans.status} ${ans.text.slice(0, 200)}`)
          return
        }
        result = ans.json.Success
        // "Success 返回结果": 0 refuse, 1 open and show Message, 2 open silently.
        if (result === 1 || result === 2) this.pulseRelay()
        this.log(`RequestAuthorization ${userId} -> ${result}${ans.json.Message ? ` (${String(ans.json.Message)})` : ''}`)
      } catch (e) {
        failure = e as Error
      }
    })
    if (failure) throw failure
    return result as number
  }

  start(): void {
    if (this.running || this.stopped) return
    this.running = true
    this.loopDone = this.loop()
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.running = false
    this.abort.abort(new StoppedError('stopped'))
    this.wake?.()
    if (this.relayTimer) clearTimeout(this.relayTimer)
    await this.loopDone
    await this.lock
    await this.client?.close().catch(() => {})
    this.client = undefined
  }

  // -- loop and exchange ------------------------------------------------------------------------

  private async loop(): Promise<void> {
    while (this.running) {
      await this.withLock(() => this.exchange())
      // "设备需要保证两个心跳保活包间隔不要超过设定的轮询间隔"; a reboot skips one interval.
      for (;;) {
        if (!this.running) return
        let due = this.lastKeepaliveAt + this.intervalMs
        if (this.rebootedAt) due = Math.max(due, this.rebootedAt + 2 * this.intervalMs)
        const wait = due - Date.now()
        if (wait <= 0) break
        await this.sleep(wait)
      }
      this.rebootedAt = 0
    }
  }

  private withLock(fn: () => Promise<void>): Promise<void> {
    const run = this.lock.then(async () => {
      try {
        await fn()
      } catch (e) {
        if (e instanceof QuietError) {
          this.quiet = true
          this.log(`quiet until the next keepalive: ${e.message}`)
        } else if (e instanceof NetError) {
          this.quiet = true
          this.log(`no answer, sleeping until the next keepalive: ${e.message}`)
        } else if (e instanceof RebootError) {
          this.quiet = true
        } else if (e instanceof StoppedError || this.stopped) {
          // stopping
        } else {
          this.problem(`internal error: ${(e as Error).stack ?? String(e)}`)
        }
      }
    })
    this.lock = run
    return run
  }

  /** One keepalive and everything its answer asks for, then the record backlog. */
  private async exchange(): Promise<void> {
    const pending = await this.keepalive()
    if (!this.workSettingUploaded) {
      // "调用流程": after the first OK keepalive the device sends its work parameters; an
      // UploadWorkParameter flag in the same answer is satisfied by this upload.
      pending.delete('UploadWorkParameter')
      await this.uploadWorkSetting()
    }
    await this.session(pending)
  }

  /**
   * Flags in priority order, then records. AMBIGUITIES httpv2 #1: the keepalive section's order
   * (UploadWorkParameter > Remote > SyncParameter > DeletePeople > AddPeople) is used, not the
   * call-flow list (syncParameter > Remote > ...), because it is the one that names all five flags.
   * While the loop runs, a keepalive is interleaved whenever one is due ("但要保障在10:00:15 时再次
   * 发送一次心跳"); its flags join the pending set.
   */
  private async session(pending: Set<Flag>): Promise<void> {
    for (;;) {
      this.checkStopped()
      await this.keepaliveIfDue(pending)
      const flag = FLAG_NAMES.find((f) => pending.has(f))
      if (flag) {
        pending.delete(flag)
        await this.handleFlag(flag, pending)
        continue
      }
      const step = await this.recordStep()
      if (step === 'done') return
    }
  }

  private async handleFlag(flag: Flag, pending: Set<Flag>): Promise<void> {
    switch (flag) {
      case 'UploadWorkParameter':
        return this.uploadWorkSetting()
      case 'Remote':
        return this.remote()
      case 'SyncParameter':
        return this.syncParameters()
      case 'DeletePeople':
        return this.deletePeople(pending)
      case 'AddPeople':
        return this.addPeople(pending)
    }
  }

  private async keepaliveIfDue(pending: Set<Flag>): Promise<void> {
    if (!this.running || Date.now() - this.lastKeepaliveAt < this.intervalMs) return
    for (const f of await this.keepalive()) pending.add(f)
  }

  /** POST /Device/Keepalive. Returns the flags to follow, or throws QuietError. */
  private async keepalive(): Promise<Set<Flag>> {
    this.events.keepalives++
    this.lastKeepaliveAt = Date.now()
    // Keepalive request table. AMBIGUITIES httpv2 #4: the example's trailing comma is not copied; valid JSON is sent.
    const ans = await this.post('/Device/Keepalive', { json: { SN: this.sn, ...this.door } })
    const flags = new Set<Flag>()
    if (ans.status !== 200) {
      this.lastKeepaliveSuccess = undefined
      throw new QuietError(`keepalive: HTTP ${ans.status}`)
    }
    if (!ans.json) {
      this.lastKeepaliveSuccess = undefined
      this.problem(`keepalive answer is not a JSON object: ${ans.text.slice(0, 200)}`)
      throw new QuietError('keepalive answer unreadable')
    }
    const success = ans.json.Success
    this.lastKeepaliveSuccess = typeof success === 'number' ? success : undefined
    for (const f of FLAG_NAMES) {
      const v = ans.json[f]
      if (v === undefined || v === null || v === 0) continue
      if (typeof v !== 'number') {
        // Keepalive answer table types every flag as int; a device reads a string as 0.
        this.problem(`keepalive flag ${f} is ${JSON.stringify(v)}, not an int: ignored`)
        continue
      }
      // AddPeople/DeletePeople: ">0"; the other three: "1".
      if (f === 'AddPeople' || f === 'DeletePeople' ? v > 0 : v === 1) flags.add(f)
    }
    if (success !== 1) {
      // "返回错误代码" / "服务器拒绝连接": any Success but 1 → only keepalives until one gets 1.
      // README field report: flags with Success 0 were ignored by real devices, so they are here too.
      if (flags.size) {
        this.events.ignoredFlagAnswers++
        this.problem(`keepalive answer carries flags ${[...flags].join(',')} with Success ${JSON.stringify(success)}: ignored (a device needs Success 1)`)
      }
      throw new QuietError(`keepalive Success ${JSON.stringify(success)}${ans.json.Message ? ` (${String(ans.json.Message)})` : ''}`)
    }
    this.quiet = false
    return flags
  }

  /** Non-200 or Success 400/401/403 → QuietError; otherwise whether Success is 1. */
  private ok(ans: Answer, what: string): boolean {
    if (ans.status !== 200) throw new QuietError(`${what}: HTTP ${ans.status}`)
    const s = ans.json?.Success
    if (s === 400 || s === 401 || s === 403) throw new QuietError(`${what}: Success ${s}`)
    if (s === 1) return true
    this.problem(`${what}: Success ${JSON.stringify(s)}${ans.json?.Message ? ` (${String(ans.json.Message)})` : ''}${ans.json ? '' : `; answer: ${ans.text.slice(0, 200)}`}`)
    return false
  }

  // -- work parameters --------------------------------------------------------------------------

  private workParameters(): Record<string, unknown> {
    const counts = this.store.size
    const faces = [...this.store.values()].filter((p) => p.photo).length
    const cards = [...this.store.values()].filter((p) => str(p.detail.CardNum) !== '' && str(p.detail.CardNum) !== '0').length
    return {
      ...this.params,
      SystemTime: this.nowS(),
      RunDays: Math.floor((this.nowS() - this.bootTime) / 86400),
      FormatCount: 0,
      WatchDogCount: 0,
      BootTime: this.bootTime,
      RelayStatus: this.door.RelayStatus,
      KeepOpenStatus: this.door.KeepOpenStatus,
      DoorSensorStatus: this.door.DoorSensorStatus,
      LockDoorStatus: this.door.LockDoorStatus,
      // The UploadWorkSetting example reports no alarm as the two-character string "\"\"" — reproduced.
      AlarmStatus: this.door.AlarmStatus === '' ? '""' : this.door.AlarmStatus,
      PeopleStorageInfo: {
        Person: { Max: MAX_PEOPLE, Current: counts },
        Face: { Max: MAX_PEOPLE, Current: faces },
        Card: { Max: MAX_PEOPLE, Current: cards },
        Fingerprint: { Max: 0, Current: 0 },
        PalmVein: { Max: 0, Current: 0 },
        Pasword: { Max: MAX_PEOPLE, Current: [...this.store.values()].filter((p) => str(p.detail.Password) !== '').length }, // sic
        Admin: { Max: 5, Current: [...this.store.values()].filter((p) => p.detail.AccessType === 1).length },
      },
      RecordStorageInfo: {
        VerifyRecord: { Max: 1000000, Current: this.idRecords.length },
        DoorRecord: { Max: 10000, Current: this.sysRecords.filter((r) => r.category === 1).length },
        SystemRecord: { Max: 10000, Current: this.sysRecords.filter((r) => r.category === 2).length },
        RecordPhoto: { Max: 10000, Current: this.idRecords.filter((r) => r.photo).length },
      },
      FirmwareVerson: 'sim-1.0',
      FingerprintVerson: '-',
      FaceVerson: '6.01',
      FunctionList: {
        BodyTemperature: false, Fingerprint: false, Palmvein: false, Face: true, QRCode: true, FaceMask: false,
        SafetyHelmet: false, Lift: false, AlarmClock: true, ExcelFile: false, ZipFile: false, TimeGroup: 64, WIFI: false,
        HTTPClient_V1: true, HTTPClient_V2: true, MQTT: false, YZW: false, Websocket_V1: false, Websocket_V2: false,
      },
    }
  }

  private async uploadWorkSetting(): Promise<void> {
    this.events.workParameterUploads++
    const ans = await this.post('/Device/UploadWorkSetting', { json: this.workParameters() })
    if (this.ok(ans, 'UploadWorkSetting')) this.workSettingUploaded = true
  }

  /** SyncParameter → DownloadWorkSetting; applies every settable parameter, then re-uploads if anything changed. */
  private async syncParameters(): Promise<void> {
    this.events.workSettingDownloads++
    const ans = await this.post('/Device/DownloadWorkSetting', { json: { SN: this.sn } })
    if (!this.ok(ans, 'DownloadWorkSetting') || !ans.json) return
    const a = ans.json
    let changed = false
    if (a.SystemTime !== undefined || a.TimeZone !== undefined) {
      this.events.timeSets.push({ SystemTime: a.SystemTime, TimeZone: a.TimeZone })
    }
    for (const [k, v] of Object.entries(a)) {
      if (k === 'Success' || k === 'Message') continue
      if (k === 'DeviceSN') {
        if (v !== this.sn) this.reject(k, `is ${JSON.stringify(v)}, this device is ${this.sn}`)
        continue
      }
      if (k === 'SystemTime') {
        // "SystemTime": unix seconds (example 1718421632). Milliseconds would put the clock ~50000 years ahead.
        if (!isInt(v) || v < 0) { this.reject(k, `${JSON.stringify(v)} is not unix seconds`); continue }
        if (v > 1e11) this.problem(`SystemTime ${v} looks like milliseconds; the document uses seconds (applied anyway, as a device would)`)
        this.clockOffsetS = v - Math.floor(Date.now() / 1000)
        changed = true
        continue
      }
      if (k === 'TimeZone') {
        // AMBIGUITIES httpv2 #14: whole hours only.
        if (!isInt(v) || v < -12 || v > 14) { this.reject(k, `${JSON.stringify(v)} is not a whole-hour zone (-12..14)`); continue }
      }
      if (READ_ONLY_PARAMETERS.has(k)) { this.reject(k, 'read-only (reported by UploadWorkSetting, not settable)'); continue }
      if (NOT_SIMULATED_PARAMETERS.has(k)) {
        if (JSON.stringify(v) !== JSON.stringify(this.params[k])) this.reject(k, `${JSON.stringify(v)} not followed by the simulator (it keeps its --server)`)
        continue
      }
      if (!(k in this.params)) { this.reject(k, 'unknown parameter'); continue }
      if (!sameType(this.params[k], v)) { this.reject(k, `${JSON.stringify(v)} has the wrong type (device has ${JSON.stringify(this.params[k])})`); continue }
      if (k === 'HTTPClient_KeepaliveTime') {
        if (!isInt(v) || v < 1) { this.reject(k, `${JSON.stringify(v)} is not a positive number of seconds`); continue }
        // The HTTP client's own interval (KeepaliveTime belongs to the TCP client group beside ServerAddress/ServerPort).
        if (v !== this.params[k]) this.intervalMs = v * 1000
      }
      if (k === 'HTTPClient_ProtocolType') {
        if (v !== 100 && v !== 200) { this.reject(k, `${JSON.stringify(v)} is neither 100 (v1) nor 200 (v2)`); continue }
        this.api = v === 100 ? 'v1' : 'v2'
      }
      if (k === 'HTTPClient_UseGZIP') this.gzip = v === 1
      if (JSON.stringify(this.params[k]) !== JSON.stringify(v)) {
        this.params[k] = v
        changed = true
      }
    }
    // "上传当前设备参数": "设备属性变化时会再次上传".
    if (changed) await this.uploadWorkSetting()
  }

  private reject(name: string, reason: string): void {
    this.events.rejectedParameters.push(`${name}: ${reason}`)
    this.problem(`DownloadWorkSetting ${name} ${reason}`)
  }

  // -- remote commands --------------------------------------------------------------------------

  private async remote(): Promise<void> {
    this.events.remoteCommands++
    const ans = await this.post(HTTPV2_PATHS[this.api].remote, { json: { SN: this.sn } })
    if (!this.ok(ans, 'RemoteCommand') || !ans.json) return
    const c = ans.json
    const intField = (k: string): number => {
      const v = c[k]
      if (v === undefined || v === null) return 0
      if (typeof v !== 'number') { this.problem(`RemoteCommand ${k} is ${JSON.stringify(v)}, not an int: ignored`); return 0 }
      return v
    }
    const open = intField('Opendoor')
    if (open) this.opendoor(open)
    if (intField('Closealarm') === 1) this.closeAlarm()
    if (intField('ClearRecord') === 1) {
      this.events.recordsCleared++
      this.idRecords = []
      this.sysRecords = []
      this.queueSys(2, 44) // 删除所有记录
    }
    if (intField('RepostRecord') === 1) {
      // "将所有已上传记录重新标记为未上传并重新传输": identification and system records alike.
      for (const r of this.idRecords) { r.uploaded = false; r.notBefore = 0 }
      for (const r of this.sysRecords) { r.uploaded = false; r.notBefore = 0 }
    }
    if (intField('Recover') === 1) this.recover()
    if (c.QueryPeople !== undefined && c.QueryPeople !== null) {
      if (!Array.isArray(c.QueryPeople)) this.problem(`RemoteCommand QueryPeople is ${JSON.stringify(c.QueryPeople)}, not an array: ignored`)
      else {
        for (const raw of c.QueryPeople) {
          const id = idString(raw)
          if (id === undefined) { this.problem(`RemoteCommand QueryPeople holds ${JSON.stringify(raw)}: skipped`); continue }
          await this.pushPerson(id, 4)
        }
      }
    }
    if (intField('PushAllPeople') === 1) {
      // AMBIGUITIES httpv2 #12: no end marker exists, none is invented. One PushPeople (PushType 4) per person, by ascending
      // UserID, all inside this exchange (no keepalive is interleaved): the run is complete when the next keepalive arrives.
      const ids = [...this.store.keys()].sort(idCompare)
      for (const id of ids) await this.pushPerson(id, 4)
    }
    if (c.RegisterIdentifyTicket !== undefined && c.RegisterIdentifyTicket !== null && c.RegisterIdentifyTicket !== 0) await this.registerTicket(c)
    if (intField('Snapshoot') === 1) await this.snapshot()
    for (const k of ['PushSoftware', 'PushSystemFile', 'OpenElevatorPort', 'KeepOpenElevatorPort', 'CloseElevatorPort', 'LockElevatorPort', 'UnlockElevatorPort']) {
      if (c[k] !== undefined && c[k] !== null && c[k] !== '' && c[k] !== 0) {
        this.events.unsupported.push(k)
        this.log(`RemoteCommand ${k} not simulated: ignored`)
      }
    }
    // Restart last: everything else in the same answer is done before the device goes down.
    if (intField('Restart') === 1) this.reboot()
  }

  private opendoor(mode: number): void {
    if (mode < 1 || mode > 5 || !Number.isInteger(mode)) { this.problem(`RemoteCommand Opendoor ${mode} is not 0..5: ignored`); return }
    this.events.opens.push(mode)
    const d = this.door
    switch (mode) {
      case 1: this.pulseRelay(); break
      case 2: d.KeepOpenStatus = 1; d.RelayStatus = 1; break
      case 3: d.KeepOpenStatus = 0; d.RelayStatus = 0; break
      // Locking ends a keep-open; the relay drops.
      case 4: d.LockDoorStatus = 1; d.KeepOpenStatus = 0; d.RelayStatus = 0; break
      case 5: d.LockDoorStatus = 0; break
    }
    this.queueSys(2, OPENDOOR_EVENTS[mode] ?? 1)
  }

  /** Opendoor 1: relay on for ReleaseTime seconds (work parameter), then off unless kept open. */
  private pulseRelay(): void {
    this.door.RelayStatus = 1
    if (this.relayTimer) clearTimeout(this.relayTimer)
    const secs = isInt(this.params.ReleaseTime) ? this.params.ReleaseTime : 3
    this.relayTimer = setTimeout(() => {
      this.relayTimer = undefined
      if (!this.door.KeepOpenStatus) this.door.RelayStatus = 0
    }, secs * 1000)
    this.relayTimer.unref()
  }

  private closeAlarm(): void {
    // "关闭所有正在发生的报警，并记录".
    this.events.alarmsClosed++
    const before = this.door.AlarmStatus
    this.door.AlarmStatus = ''
    this.alarmRecords(before, '')
  }

  private recover(): void {
    // Factory reset: people, records and parameters go; the server connection is kept so the simulation goes on.
    this.events.recovers++
    this.store.clear()
    this.idRecords = []
    this.sysRecords = []
    this.params = defaultParameters(this.sn, String(this.params.HTTPClient_ServerAddr), this.intervalMs, this.gzip, this.api)
    this.workSettingUploaded = false
  }

  private reboot(): void {
    this.events.reboots++
    this.rebootedAt = Date.now()
    this.log('Restart: rebooting (the loop skips one interval)')
    this.door.RelayStatus = this.door.KeepOpenStatus ? 1 : 0
    this.workSettingUploaded = false // "设备开机时发送一次"
    this.queueSys(2, 28) // 系统加电
    throw new RebootError('restart')
  }

  /**
   * RegisterIdentifyTicket. AMBIGUITIES httpv2 #9: the table's object
   * `{RegisterType, UserID, RegisterIndex}` and the example's flat
   * `RegisterIdentifyTicket: 4, RegisterIdentifyUserID: 1` are both read.
   */
  private async registerTicket(c: Record<string, unknown>): Promise<void> {
    const t = c.RegisterIdentifyTicket
    let type: unknown
    let rawUser: unknown
    if (isObj(t)) {
      type = t.RegisterType
      rawUser = t.UserID
    } else {
      type = t
      rawUser = c.RegisterIdentifyUserID ?? c.UserID
    }
    const userId = idString(rawUser)
    if (!isInt(type) || type < 1 || type > 5) { this.problem(`RegisterIdentifyTicket type ${JSON.stringify(type)} is not 1..5: ignored`); return }
    if (userId === undefined) { this.problem(`RegisterIdentifyTicket without a UserID: ignored`); return }
    const person = this.store.get(userId)
    const result: Record<string, unknown> = { SN: this.sn, UserID: idNumber(userId) }
    let photo: Buffer | undefined
    if (!person) {
      // No Result value means "no such user"; 2 (用户取消操作) is what a device whose registration screen cannot start reports.
      result.Result = TICKET_RESULT.CANCELLED
      this.problem(`RegisterIdentifyTicket for unknown user ${userId}: Result 2`)
    } else if (type === 4) {
      photo = makeJpeg(`FACE ${this.sn} ${userId} ${Date.now()} ${randomBytes(4).toString('hex')}`)
      person.photo = photo
      person.detail.PhotoMD5 = md5Hex(photo)
      person.detail.PhotoLen = photo.length
      person.detail.Photo = ''
      result.Result = TICKET_RESULT.OK
      result.UserDetail = this.personDetail(person)
    } else if (type === 3) {
      result.Result = TICKET_RESULT.NO_FINGERPRINT // FunctionList.Fingerprint false
    } else if (type === 5) {
      result.Result = TICKET_RESULT.NO_PALMVEIN // FunctionList.Palmvein false
    } else {
      result.Result = TICKET_RESULT.CANCELLED // card/password need someone at the device: nobody comes
    }
    this.events.ticketResults++
    const parts: MultipartPart[] = [{ name: 'ResultJson', data: JSON.stringify(result) }]
    if (photo) parts.push({ name: 'Photo', data: photo, filename: 'Photo.jpg', contentType: 'image/jpeg' })
    const ans = await this.post('/Device/RegisterIdentifyTicketResult', { multipart: parts })
    this.ok(ans, 'RegisterIdentifyTicketResult')
    // "并调用推送人员API推送注册后的人员最新信息".
    if (result.Result === TICKET_RESULT.OK) await this.pushPerson(userId, 2)
  }

  private async snapshot(): Promise<void> {
    // The Remote table says "上传快照调用API /Device/RegisterIdentifyTicketResult"; the snapshot section has its own
    // endpoint and form (SN, Photo), which is what is used.
    this.events.snapshots++
    const photo = makeJpeg(`SNAPSHOT ${this.sn} ${Date.now()}`)
    const ans = await this.post('/Device/UploadSnapshoot', {
      multipart: [
        { name: 'SN', data: this.sn },
        { name: 'Photo', data: photo, filename: 'Snapshoot.jpg', contentType: 'image/jpeg' },
      ],
    })
    this.ok(ans, 'UploadSnapshoot')
  }

  /** The person as PushPeople's Detail / UserDetail shows it (PeopleJson fields; the photo travels as a file). */
  private personDetail(p: Person): Record<string, unknown> {
    const d = { ...p.detail }
    if (p.photo) {
      d.PhotoMD5 = md5Hex(p.photo)
      d.PhotoLen = p.photo.length
    }
    return d
  }

  /** /People/PushPeople: SN, PushType (1 new, 2 update, 3 delete, 4 query), UserID, Detail (absent for an unknown person), Photo. */
  private async pushPerson(id: string, pushType: 1 | 2 | 3 | 4): Promise<void> {
    this.events.peoplePushes++
    const p = this.store.get(id)
    const parts: MultipartPart[] = [
      { name: 'SN', data: this.sn },
      { name: 'PushType', data: String(pushType) },
      { name: 'UserID', data: id },
    ]
    if (p) {
      // The PushPeople example gzips Detail and marks the part Content-Encoding: gzip; plain JSON when gzip is off.
      parts.push({ name: 'Detail', data: JSON.stringify(this.personDetail(p)), gzip: this.gzip, contentType: 'application/json' })
      if (p.photo) parts.push({ name: 'Photo', data: p.photo, filename: 'Photo.jpg', contentType: 'image/jpeg' })
    }
    const ans = await this.post('/People/PushPeople', { multipart: parts })
    this.ok(ans, `PushPeople ${id}`)
  }

  // -- people -----------------------------------------------------------------------------------

  /**
   * DeletePeople: loop DeletePeopleList → delete → DeletePeopleListResult per batch (the result's
   * description is a copy of the download one, "拉取一批...后", so per batch as there).
   * Stop condition (AMBIGUITIES httpv2 #8): Success != 1, or no ids — `DeleteList`, or the
   * document's `deleteInfo`/`DeletList` spellings — and no DeleteAll. The result is sent with the
   * table's `DeleteList` spelling and numeric ids (as the example).
   */
  private async deletePeople(pending: Set<Flag>): Promise<void> {
    let previous: string | undefined
    for (let round = 0; round < 100000; round++) {
      this.checkStopped()
      if (round > 0) await this.keepaliveIfDue(pending)
      const ans = await this.post(HTTPV2_PATHS[this.api].delete, { json: { SN: this.sn, Limit: DELETE_LIMIT } })
      if (!this.ok(ans, 'DeletePeopleList') || !ans.json) return
      const a = ans.json
      if (a.DeleteAll === 1) {
        const ids = [...this.store.keys()].sort(idCompare)
        this.store.clear()
        this.queueSys(2, 45) // 删除所有人员
        const r = await this.post('/People/DeletePeopleListResult', {
          json: { SN: this.sn, DeleteCount: ids.length, DeleteAll: 1, DeleteList: ids.map(idNumber) },
        })
        this.ok(r, 'DeletePeopleListResult')
        return // everything is gone: nothing further to ask for
      }
      const raw = a.DeleteList ?? a.deleteInfo ?? a.DeletList
      if (raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0)) return
      if (!Array.isArray(raw)) { this.problem(`DeletePeopleList DeleteList is ${JSON.stringify(raw)}, not an array: stopped`); return }
      if (a.DeleteList === undefined) this.problem(`DeletePeopleList answer has no DeleteList (read ${a.deleteInfo !== undefined ? 'deleteInfo' : 'DeletList'} instead)`)
      if (raw.length > DELETE_LIMIT) this.problem(`DeletePeopleList returned ${raw.length} ids for Limit ${DELETE_LIMIT}`)
      if (isInt(a.DeleteCount) && a.DeleteCount !== raw.length) this.problem(`DeletePeopleList DeleteCount ${a.DeleteCount} but ${raw.length} ids`)
      const ids: string[] = []
      for (const v of raw) {
        const id = idString(v)
        if (id === undefined) { this.problem(`DeletePeopleList id ${JSON.stringify(v)} skipped`); continue }
        ids.push(id)
      }
      const key = JSON.stringify(ids)
      if (key === previous) {
        this.problem('DeletePeopleList returned the same batch again after its result was reported: loop stopped')
        return
      }
      previous = key
      // Deleting an id the device does not hold leaves the same end state: reported as deleted.
      for (const id of ids) this.store.delete(id)
      const r = await this.post('/People/DeletePeopleListResult', {
        json: { SN: this.sn, DeleteCount: ids.length, DeleteAll: 0, DeleteList: ids.map(idNumber) },
      })
      this.ok(r, 'DeletePeopleListResult')
    }
  }

  /**
   * AddPeople: loop DownloadPeopleList (Limit DOWNLOAD_LIMIT) until Success != 1 or an empty list
   * ("停止请求条件"); each batch is stored and answered with DownloadPeopleListResult before the
   * next request (AMBIGUITIES httpv2 #7: per batch — "从服务器拉取一批人员导入后，调用此接口").
   */
  private async addPeople(pending: Set<Flag>): Promise<void> {
    let previous: string | undefined
    for (let round = 0; round < 100000; round++) {
      this.checkStopped()
      if (round > 0) await this.keepaliveIfDue(pending)
      const ans = await this.post(HTTPV2_PATHS[this.api].download, { json: { SN: this.sn, Limit: DOWNLOAD_LIMIT } })
      if (!this.ok(ans, 'DownloadPeopleList') || !ans.json) return
      const a = ans.json
      const list = a.PeopleList
      if (list === undefined || list === null) return
      if (!Array.isArray(list)) { this.problem(`DownloadPeopleList PeopleList is ${JSON.stringify(list).slice(0, 100)}, not an array: stopped`); return }
      // AMBIGUITIES httpv2 #5: `PeopleCount` (table) or `Count` (example). When given, the device handles that many
      // entries (a mismatch is reported; extra entries are not stored and not counted).
      let count = list.length
      const declared = isInt(a.PeopleCount) ? a.PeopleCount : isInt(a.Count) ? a.Count : undefined
      if (isInt(a.PeopleCount) && isInt(a.Count) && a.PeopleCount !== a.Count) this.problem(`DownloadPeopleList PeopleCount ${a.PeopleCount} and Count ${a.Count} differ: PeopleCount used`)
      if (declared === undefined) this.problem('DownloadPeopleList answer has neither PeopleCount nor Count')
      else if (declared !== list.length) {
        this.problem(`DownloadPeopleList says ${declared} people but PeopleList has ${list.length}`)
        count = Math.max(0, Math.min(declared, list.length))
      }
      if (count === 0) return
      if (list.length > DOWNLOAD_LIMIT) this.problem(`DownloadPeopleList returned ${list.length} people for Limit ${DOWNLOAD_LIMIT}`)
      const key = JSON.stringify(list.slice(0, count).map((p) => (isObj(p) ? p.UserID : p)))
      if (key === previous) {
        this.problem('DownloadPeopleList returned the same batch again after its result was reported: loop stopped')
        return
      }
      previous = key
      let success = 0
      const fails: FailEntry[] = []
      for (const entry of list.slice(0, count)) {
        const f = await this.storePerson(entry)
        if (f) fails.push(f)
        else success++
      }
      // Request table: SuccessCount, FailCount, FailList (AMBIGUITIES httpv2 #6: the example's second `FailCount` is the
      // table's FailList). RepeatID is a string as the table types it ("" when there is no other user).
      const r = await this.post('/People/DownloadPeopleListResult', {
        json: { SN: this.sn, SuccessCount: success, FailCount: fails.length, FailList: fails },
      })
      this.ok(r, 'DownloadPeopleListResult')
    }
  }

  /** Validates and stores one PeopleJson. Returns the failure, or undefined when stored. */
  private async storePerson(entry: unknown): Promise<FailEntry | undefined> {
    const fail = (UserID: string, ErrorCode: number, ErrMsg: string, RepeatID = ''): FailEntry => {
      this.log(`person ${UserID || '?'} refused: ${ErrorCode} ${ErrMsg}`)
      return { UserID, ErrorCode, RepeatID, ErrMsg }
    }
    if (!isObj(entry)) return fail('', PEOPLE_ERROR.PARAM, 'PeopleList entry is not an object')
    const p = entry
    // UserID: string "数字 最大值 4294967295".
    const rawId = p.UserID
    if (typeof rawId !== 'string') return fail(idString(rawId) ?? '', PEOPLE_ERROR.PARAM, `UserID must be a string of digits, got ${JSON.stringify(rawId)}`)
    if (!/^\d{1,10}$/.test(rawId) || BigInt(rawId) > UINT32_MAX) return fail(rawId, PEOPLE_ERROR.PARAM, 'UserID must be digits, at most 4294967295')
    const id = rawId
    const has = (k: string): boolean => p[k] !== undefined && p[k] !== null
    // "字符<64位" … "字符是指字节": limits are UTF-8 bytes, and "<" is strict (AMBIGUITIES httpv2 #13).
    const limits: Record<string, number> = { Code: 64, Name: 64, Job: 64, Department: 64, IdentityCard: 64, Attachment: 200, QRCode: 128 }
    for (const [k, lim] of Object.entries(limits)) {
      if (!has(k)) continue
      if (typeof p[k] !== 'string') return fail(id, PEOPLE_ERROR.PARAM, `${k} must be a string`)
      if (byteLen(p[k] as string) >= lim) return fail(id, PEOPLE_ERROR.PARAM, `${k} is ${byteLen(p[k] as string)} bytes (must be < ${lim} bytes UTF-8)`)
    }
    if (has('Password')) {
      if (typeof p.Password !== 'string' || !/^(\d{4,8})?$/.test(p.Password)) return fail(id, PEOPLE_ERROR.PARAM, 'Password must be digits, length 0 or 4-8')
    }
    if (has('CardNum')) {
      if (typeof p.CardNum !== 'string' || !/^\d*$/.test(p.CardNum) || (p.CardNum !== '' && BigInt(p.CardNum) > CARD_MAX)) {
        return fail(id, PEOPLE_ERROR.PARAM, 'CardNum must be a string of digits up to 18446744073709551615')
      }
    }
    const intRules: Record<string, [number, number]> = {
      AccessType: [0, 2], ExpirationDate: [0, MAX_EXPIRATION], OpenTimes: [0, 65535], KeepOpen: [0, 1], Timegroup: [0, 64],
    }
    for (const [k, [lo, hi]] of Object.entries(intRules)) {
      if (!has(k)) continue
      const v = p[k]
      if (!isInt(v) || v < lo || v > hi) return fail(id, PEOPLE_ERROR.PARAM, `${k} must be an int ${lo}..${hi}, got ${JSON.stringify(v)}`)
    }
    if (has('Holidays') && (typeof p.Holidays !== 'string' || !/^(\*|\d+(,\d+)*)?$/.test(p.Holidays))) {
      return fail(id, PEOPLE_ERROR.PARAM, 'Holidays must be "", "*" or comma-separated numbers')
    }
    // Elevators: a comma string in the PeopleJson table, an array in the "Elevator 电梯权限" section: both read.
    if (has('Elevators')) {
      const e = p.Elevators
      const okStr = typeof e === 'string' && /^(\d+(,\d+)*)?$/.test(e)
      const okArr = Array.isArray(e) && e.every((x) => isInt(x))
      if (!okStr && !okArr) return fail(id, PEOPLE_ERROR.PARAM, 'Elevators must be comma-separated numbers')
    }
    for (const k of ['Fingerprints', 'Palmveins']) {
      if (has(k) && !Array.isArray(p[k])) return fail(id, PEOPLE_ERROR.PARAM, `${k} must be an array`)
    }
    if ((p.Fingerprints as unknown[] | undefined)?.length) return fail(id, PEOPLE_ERROR.FINGERPRINT_FORMAT, 'this device has no fingerprint reader')
    if ((p.Palmveins as unknown[] | undefined)?.length) return fail(id, PEOPLE_ERROR.PALMVEIN_FORMAT, 'this device has no palm-vein reader')
    // Card duplicates.
    if (typeof p.CardNum === 'string' && p.CardNum !== '' && p.CardNum !== '0') {
      for (const [other, q] of this.store) {
        if (other !== id && q.detail.CardNum === p.CardNum) return fail(id, PEOPLE_ERROR.CARD_REPEAT, `card ${p.CardNum} belongs to ${other}`, other)
      }
    }
    if (!this.store.has(id) && this.store.size >= MAX_PEOPLE) return fail(id, PEOPLE_ERROR.FULL, 'people storage full')
    // Face feature: URL → downloaded (failure 4); otherwise base64.
    if (has('FaceFeature') && p.FaceFeature !== '') {
      if (typeof p.FaceFeature !== 'string') return fail(id, PEOPLE_ERROR.FACE_FEATURE_FORMAT, 'FaceFeature must be a string')
      if (isUrl(p.FaceFeature)) {
        const got = await this.download(p.FaceFeature)
        if (!got) return fail(id, PEOPLE_ERROR.FACE_FEATURE_DOWNLOAD, `FaceFeature ${p.FaceFeature} could not be downloaded`)
      } else if (!/^[A-Za-z0-9+/]+={0,2}$/.test(p.FaceFeature.replace(/\s+/g, ''))) {
        return fail(id, PEOPLE_ERROR.FACE_FEATURE_FORMAT, 'FaceFeature is neither an http(s) URL nor base64')
      }
    }
    // Photo: "http或https开头表示使用url地址，否则表示使用base64".
    let photo: Buffer | undefined
    if (has('Photo') && p.Photo !== '') {
      if (typeof p.Photo !== 'string') return fail(id, PEOPLE_ERROR.PARAM, 'Photo must be a string')
      const fromUrl = isUrl(p.Photo)
      if (has('PhotoLen') && (!isInt(p.PhotoLen) || p.PhotoLen < 0)) return fail(id, PEOPLE_ERROR.PARAM, 'PhotoLen must be an int')
      if (isInt(p.PhotoLen) && p.PhotoLen > MAX_PERSON_PHOTO_BYTES) return fail(id, PEOPLE_ERROR.PHOTO_TOO_BIG, `PhotoLen ${p.PhotoLen} > 400 KB`)
      if (fromUrl) {
        photo = await this.download(p.Photo)
        if (!photo) return fail(id, PEOPLE_ERROR.PHOTO_DOWNLOAD, `photo ${p.Photo} could not be downloaded`)
      } else {
        const b64 = p.Photo.replace(/\s+/g, '')
        // A data: URI prefix is neither a URL nor base64 by the document's rule.
        if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return fail(id, PEOPLE_ERROR.PARAM, 'Photo is neither an http(s) URL nor plain base64')
        photo = Buffer.from(b64, 'base64')
      }
      // A length or MD5 mismatch means the bytes are not the photo meant: a broken download (2) or a broken parameter (1).
      const badBytes = fromUrl ? PEOPLE_ERROR.PHOTO_DOWNLOAD : PEOPLE_ERROR.PARAM
      if (photo.length > MAX_PERSON_PHOTO_BYTES) return fail(id, PEOPLE_ERROR.PHOTO_TOO_BIG, `photo is ${photo.length} bytes > 400 KB`)
      if (isInt(p.PhotoLen) && p.PhotoLen !== 0 && p.PhotoLen !== photo.length) return fail(id, badBytes, `PhotoLen ${p.PhotoLen} but the photo has ${photo.length} bytes`)
      if (has('PhotoMD5') && p.PhotoMD5 !== '') {
        if (typeof p.PhotoMD5 !== 'string' || !/^[0-9a-fA-F]{32}$/.test(p.PhotoMD5)) return fail(id, PEOPLE_ERROR.PARAM, 'PhotoMD5 must be 32 hex digits')
        // AMBIGUITIES httpv2 #13: hex case not stated — compared case-insensitively.
        if (p.PhotoMD5.toUpperCase() !== md5Hex(photo)) return fail(id, badBytes, `PhotoMD5 ${p.PhotoMD5} does not match the photo (${md5Hex(photo)})`)
      }
      if (!isJpeg(photo)) return fail(id, PEOPLE_ERROR.PHOTO_UNRECOGNISABLE, 'photo is not a JPEG')
      if (this.noFaceMarker.length && photo.includes(this.noFaceMarker)) return fail(id, PEOPLE_ERROR.PHOTO_UNRECOGNISABLE, 'no face found in the photo')
    }
    // The record is replaced as a whole: a person sent again without Photo loses the face (README field report:
    // "People with a face enrolled have been seen to lose the face when updated through DownloadPeopleList").
    const detail: Record<string, unknown> = { ...p }
    if (photo) {
      // Only a URL is kept in the detail; base64 is not echoed back.
      detail.Photo = isUrl(p.Photo as string) ? p.Photo : ''
      detail.PhotoMD5 = md5Hex(photo)
      detail.PhotoLen = photo.length
    } else {
      delete detail.Photo
      delete detail.PhotoMD5
      delete detail.PhotoLen
    }
    const existed = this.store.has(id)
    if (existed && this.store.get(id)?.photo && !photo) this.log(`person ${id} updated without a photo: face removed`)
    this.store.set(id, { detail, ...(photo ? { photo } : {}) })
    return undefined
  }

  /** GET a photo/feature URL: over the device connection when it is on the server, otherwise with fetch. */
  private async download(url: string): Promise<Buffer | undefined> {
    try {
      const u = new URL(url)
      if (u.origin === this.origin) {
        const ans = await this.request('GET', u.pathname + u.search, undefined)
        return ans.status === 200 ? ans.body : undefined
      }
      for (let attempt = 0; attempt <= this.retries; attempt++) {
        try {
          const res = await fetch(url, { signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.timeoutMs)]) })
          if (res.status !== 200) return undefined
          return Buffer.from(await res.arrayBuffer())
        } catch (e) {
          this.checkStopped()
          if (attempt === this.retries) throw e
        }
      }
      return undefined
    } catch (e) {
      this.checkStopped()
      this.log(`download ${url} failed: ${(e as Error).message}`)
      return undefined
    }
  }

  // -- records ----------------------------------------------------------------------------------

  private queueRecord(partial: Record<string, unknown>, date: number): IdRecord {
    const id = this.nextRecordId++
    const people = [...this.store.values()]
    const who = people.length ? people[(id - 1) % people.length]?.detail ?? {} : undefined
    const userId = who ? str(who.UserID) : String(((id - 1) % 10) + 1)
    const detail: Record<string, unknown> = {
      // "RecordDetail 字段说明" in table order; RecordDate: unix seconds on the device clock.
      RecordID: id,
      RecordType: 3, // 人脸验证
      RecordDate: date,
      UserID: userId,
      Code: who ? str(who.Code) : '',
      Name: who ? str(who.Name) : `User ${userId}`,
      IdentityCard: who ? str(who.IdentityCard) : '',
      Job: who ? str(who.Job) : '',
      Department: who ? str(who.Department) : '',
      CardNum: who ? str(who.CardNum) || '0' : '0',
      QRCode: '',
      IsEntry: 1,
      BodyTemp: 0,
      PhotoLen: 0,
      ...partial,
    }
    detail.RecordID = id
    const photo = partial.PhotoLen === 0 ? undefined : makeJpeg(`RECORD ${this.sn} ${id}`)
    detail.PhotoLen = photo ? photo.length : 0
    const r: IdRecord = { id, detail, uploaded: false, notBefore: 0, ...(photo ? { photo } : {}) }
    this.idRecords.push(r)
    return r
  }

  private queueSys(category: 1 | 2, event: number): void {
    this.sysRecords.push({ id: this.nextSysRecordId++, category, event, date: this.nowS(), uploaded: false, notBefore: 0 })
  }

  private alarmRecords(before: string, after: string): void {
    const split = (s: string): Set<string> => new Set(s.split(',').map((x) => x.trim()).filter(Boolean))
    const a = split(before)
    const b = split(after)
    for (const n of b) if (!a.has(n) && ALARM_EVENTS[n]) this.queueSys(2, ALARM_EVENTS[n][0])
    for (const n of a) if (!b.has(n) && ALARM_EVENTS[n]) this.queueSys(2, ALARM_EVENTS[n][1])
  }

  /**
   * The multipart body of UploadIdentifyRecord/RequestAuthorization: SN, the JSON part, the photo.
   * AMBIGUITIES httpv2 #10: the SN value carries the example's leading space (" FC-..."); the part
   * names follow `multipartNames`; the JSON part is gzip'd with `Content-Encoding: gzip` when gzip is on.
   */
  private recordParts(detail: Record<string, unknown>, photo: Buffer | undefined): MultipartPart[] {
    const parts: MultipartPart[] = [
      { name: 'SN', data: ` ${this.sn}` },
      { name: this.names.detail, data: JSON.stringify(detail), gzip: this.gzip },
    ]
    if (photo) parts.push({ name: this.names.photo, data: photo, filename: this.names.filename, contentType: 'image/jpeg' })
    return parts
  }

  /**
   * One step of the record backlog ("处理完服务器要求的操作后，检查有没有堆积的未上传记录"):
   * identification records one per request, then system records in batches.
   * "如果服务器返回错误代码，则等待10秒后重新上传记录": an error answer parks the record for
   * retryDelayMs; the backlog waits for it until the next keepalive is due (the loop then sends
   * that keepalive and goes on; a tick() ends there and leaves the record queued).
   */
  private async recordStep(): Promise<'done' | 'more'> {
    if (this.quiet) return 'done'
    const now = Date.now()
    const rec = this.idRecords.find((r) => !r.uploaded && r.notBefore <= now)
    if (rec) {
      await this.uploadRecord(rec)
      return 'more'
    }
    const sys = this.sysRecords.filter((r) => !r.uploaded && r.notBefore <= now)
    if (sys.length) {
      await this.uploadSystemRecords(sys)
      return 'more'
    }
    const waiting = [...this.idRecords, ...this.sysRecords].filter((r) => !r.uploaded).map((r) => r.notBefore)
    if (!waiting.length) return 'done'
    const due = this.lastKeepaliveAt + this.intervalMs
    const next = Math.min(...waiting)
    if (next >= due && !this.running) return 'done'
    await this.sleep(Math.max(0, Math.min(next, due) - Date.now()))
    return 'more'
  }

  private async uploadRecord(rec: IdRecord): Promise<void> {
    // AMBIGUITIES httpv2 #11: records wait 30 s for the answer (the records section), the general 2 s elsewhere —
    // scaled with requestTimeoutMs (×15) so tests keep short timeouts.
    this.events.recordUploads++
    const ans = await this.post('/Record/UploadIdentifyRecord', { multipart: this.recordParts(rec.detail, rec.photo) }, this.timeoutMs * 15)
    if (this.ok(ans, `UploadIdentifyRecord ${rec.id}`)) {
      if (this.dropFirstAnswer) {
        // Simulated lost answer: the device never saw it, so the same record goes again right away.
        this.dropFirstAnswer = false
        this.log(`UploadIdentifyRecord ${rec.id}: answer treated as lost, re-sending`)
        return
      }
      rec.uploaded = true
      const id = String(rec.id)
      if (!this.ackedSet.has(id)) {
        this.ackedSet.add(id)
        this.acked.push(id)
      }
    } else {
      rec.notBefore = Date.now() + this.retryDelayMs
    }
  }

  /**
   * UploadSystemRecord, JSON, batched per top-level RecordType (1 门磁记录, 2 系统记录). Each entry's
   * RecordType is the event code from the matching event table (the Record table's "1-门磁记录;2--系统记录"
   * repeats the top-level meaning; the event tables are what gives an entry its meaning).
   */
  private async uploadSystemRecords(candidates: SysRecord[]): Promise<void> {
    const first = candidates[0]
    if (!first) return
    const batch = candidates.filter((r) => r.category === first.category).slice(0, SYSTEM_RECORD_BATCH)
    this.events.systemRecordUploads++
    const ans = await this.post(
      '/Record/UploadSystemRecord',
      { json: { SN: this.sn, RecordType: first.category, Records: batch.map((r) => ({ RecordID: r.id, RecordType: r.event, RecordDate: r.date })) } },
      this.timeoutMs * 15,
    )
    if (this.ok(ans, 'UploadSystemRecord')) for (const r of batch) r.uploaded = true
    else for (const r of batch) r.notBefore = Date.now() + this.retryDelayMs
  }

  /** New record or door event while the loop runs and the server accepts us: upload now ("当设备中有新的打卡记录时使用此接口"). */
  private kick(): void {
    if (!this.running || this.quiet || this.kickQueued) return
    this.kickQueued = true
    void this.withLock(async () => {
      this.kickQueued = false
      if (!this.quiet) await this.session(new Set())
    })
  }

  // -- HTTP -------------------------------------------------------------------------------------

  private async post(path: string, body: { json: unknown } | { multipart: MultipartPart[] }, timeoutMs = this.timeoutMs): Promise<Answer> {
    let payload: Buffer
    const headers: Record<string, string> = { connection: 'keep-alive' }
    if ('json' in body) {
      payload = Buffer.from(JSON.stringify(body.json), 'utf8')
      headers['content-type'] = 'application/json'
      if (this.gzip) {
        // README field report: JSON request bodies gzip'd with Content-Encoding: gzip.
        payload = gzipSync(payload)
        headers['content-encoding'] = 'gzip'
      }
    } else {
      const m = buildMultipart(body.multipart)
      payload = m.body
      headers['content-type'] = m.contentType
    }
    const res = await this.request('POST', this.prefix + path, payload, headers, timeoutMs)
    let json: Record<string, unknown> | undefined
    const text = res.body.toString('utf8')
    try {
      const v: unknown = JSON.parse(text)
      if (isObj(v)) json = v
    } catch {
      json = undefined
    }
    this.log(`POST ${path} -> ${res.status} ${text.length > 300 ? text.slice(0, 300) + '…' : text}`)
    return { status: res.status, json, text }
  }

  /** One request on the device's single connection; "超时时间2秒，超时重试次数3次" for network failures only. */
  private async request(method: 'GET' | 'POST', path: string, payload: Buffer | undefined, headers: Record<string, string> = {}, timeoutMs = this.timeoutMs): Promise<{ status: number; body: Buffer }> {
    let lastError: unknown
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      this.checkStopped()
      this.client ??= new Client(this.origin, { pipelining: 1, keepAliveTimeout: 30_000, connect: { timeout: this.timeoutMs } })
      try {
        const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(timeoutMs)])
        const res = await this.client.request({ method, path, headers, body: payload, signal })
        let buf = Buffer.from(await res.body.arrayBuffer())
        const enc = String(res.headers['content-encoding'] ?? '').toLowerCase()
        if (enc === 'gzip') buf = gunzipSync(buf)
        else if (enc === 'deflate') buf = inflateSync(buf)
        return { status: res.statusCode, body: buf }
      } catch (e) {
        this.checkStopped()
        lastError = e
        this.log(`${method} ${path} attempt ${attempt + 1} failed: ${(e as Error).message}`)
      }
    }
    throw new NetError(`${method} ${path}: ${(lastError as Error)?.message ?? String(lastError)}`)
  }

  // -- misc -------------------------------------------------------------------------------------

  private nowS(): number {
    return Math.floor(Date.now() / 1000) + this.clockOffsetS
  }

  private checkStopped(): void {
    if (this.stopped) throw new StoppedError('stopped')
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopped) return resolve()
      const done = (): void => {
        clearTimeout(t)
        this.abort.signal.removeEventListener('abort', done)
        if (this.wake === done) this.wake = undefined
        resolve()
      }
      const t = setTimeout(done, ms)
      this.abort.signal.addEventListener('abort', done)
      this.wake = done
    })
  }

  private log(line: string): void {
    this.logFn(`${this.sn} ${line}`)
  }

  private problem(line: string): void {
    this.events.problems.push(line)
    this.log(`PROBLEM ${line}`)
  }
}

const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '')

import { defaultParameters } from './parameters.js'
import type { IdRecord, Person, SysRecord } from './protocol.js'

export interface Httpv2SimulatorOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:8090 (a path prefix is kept). */
  server: string
  sn: string
  /** PEM certificate(s) to trust besides the system's (`--ca F`): a gateway with a self-signed or private-CA certificate. */
  ca?: string
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

/** What the simulated device holds: its people, records, door, parameters and clock, and where its exchange loop stands. */
export class Httpv2State {
  readonly sn: string
  readonly events: Httpv2Events = {
    keepalives: 0, opens: [], reboots: 0, alarmsClosed: 0, timeSets: [], snapshots: 0, workParameterUploads: 0,
    workSettingDownloads: 0, remoteCommands: 0, recovers: 0, recordsCleared: 0, peoplePushes: 0, ticketResults: 0,
    ignoredFlagAnswers: 0, recordUploads: 0, systemRecordUploads: 0, rejectedParameters: [], unsupported: [], problems: [],
  }
  intervalMs: number
  gzip: boolean
  api: 'v1' | 'v2'
  readonly logFn: (line: string) => void
  params: Record<string, unknown>
  clockOffsetS = 0
  readonly bootTime: number
  door: DoorState = { RelayStatus: 0, KeepOpenStatus: 0, DoorSensorStatus: 0, LockDoorStatus: 0, AlarmStatus: '' }
  relayTimer: NodeJS.Timeout | undefined
  readonly store = new Map<string, Person>()
  idRecords: IdRecord[] = []
  sysRecords: SysRecord[] = []
  nextRecordId = 1
  nextSysRecordId = 1
  readonly acked: string[] = []
  readonly ackedSet = new Set<string>()
  running = false
  stopped = false
  lastKeepaliveAt = 0
  /** After a network failure or a refusal: no calls but keepalives until a keepalive gets Success 1. */
  quiet = true
  /** "异常处理 1": the parameter upload state survives failures; sent after the first good keepalive. */
  workSettingUploaded = false
  rebootedAt = 0

  constructor(opts: Httpv2SimulatorOptions) {
    this.sn = opts.sn
    this.intervalMs = opts.intervalMs ?? 15000
    this.gzip = opts.gzip ?? true
    this.api = opts.api ?? 'v2'
    this.logFn = opts.log ?? (() => {})
    this.params = defaultParameters(this.sn, opts.server, this.intervalMs, this.gzip, this.api)
    this.bootTime = this.nowS()
  }

  nowS(): number {
    return Math.floor(Date.now() / 1000) + this.clockOffsetS
  }

  log(line: string): void {
    this.logFn(`${this.sn} ${line}`)
  }

  problem(line: string): void {
    this.events.problems.push(line)
    this.log(`PROBLEM ${line}`)
  }
}

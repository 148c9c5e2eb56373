/**
 * The one interface every protocol driver implements. The command layer only ever talks to a
 * DeviceDriver; an operation a protocol has no way to do throws UnsupportedError (typed), which
 * the command layer reports as status `unsupported` for that device while the others carry on.
 */
export const PROTOCOLS = ['openapi', 'httpv2', 'wsjson', 'udp', 'best'] as const
export type Protocol = (typeof PROTOCOLS)[number]

export const OPEN_MODES = ['pulse', 'keep-open', 'close', 'lock', 'unlock'] as const
export type OpenMode = (typeof OPEN_MODES)[number]

export const ROLES = ['user', 'admin', 'blacklist'] as const
export type Role = (typeof ROLES)[number]

/** A device as the inventory stores it. Secrets (password, deviceSecret, brokerKey) never leave via output. */
export interface DeviceEntry {
  name: string
  protocol: Protocol
  tags: string[]
  /** openapi (direct mode) */
  host?: string
  port?: number
  /** openapi: port of the live-record WebSocket (document 8.3.3: 9000) */
  wsPort?: number
  password?: string
  /** openapi platform mode (document section 9) */
  deviceId?: string
  mode?: 'direct' | 'platform' | 'both'
  /** httpv2, wsjson, best */
  sn?: string
  /** udp */
  community?: string
  code?: string
  /** best */
  transport?: 'ws' | 'mqtt'
  productId?: string
  deviceSecret?: string
  brokerKey?: string
  /** IANA time zone of the device's clock (--tz); absent = this machine's zone. */
  tz?: string
  /** Source pinning (--allow-from): the gateway takes this device's requests only from these CIDR ranges. */
  allowFrom?: string[]
  addedAt?: string
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  /** Something the user must see even without --verbose (e.g. the port a listener chose). */
  notice(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
}

export const silentLogger: Logger = { debug() {}, info() {}, notice() {}, warn() {} }

/** What every operation is given: cancellation, a deadline, a logger (never stdout). */
export interface OperationContext {
  signal: AbortSignal
  /**
   * --timeout in ms. Drivers apply it to each request (or, for push-style devices, to the wait for
   * the device); an overall deadline, where the command has one, arrives through `signal`.
   */
  timeoutMs: number
  log: Logger
  /** false = --no-wait: push-style commands return `queued` once queued. */
  wait?: boolean
  /**
   * Runs `work` — waiting on something outside this process (a push-style device calling the
   * gateway) — without holding one of --concurrency's slots: the limit bounds direct requests and
   * CPU work, not idle waiting. Absent: just runs it.
   */
  idle?<T>(work: () => Promise<T>): Promise<T>
}

/** A person as the CSV columns of CLI.md describe one. */
export interface Person {
  id: string
  name?: string
  card?: string
  password?: string
  phone?: string
  department?: string
  role?: Role
  validFrom?: Date
  validTo?: Date
  /** Absolute path of a JPEG, read only when the person is sent (5,000 photos do not fit in memory at once). */
  photoPath?: string
  room?: string
  unit?: string
}

/** A person as a device reports it (people list). */
export interface PersonInfo {
  id: string
  name: string
  card: string
  phone: string
  department: string
  role: Role | ''
  validFrom?: Date
  validTo?: Date
  hasPhoto: boolean
  /**
   * The face photo (JPEG), where the protocol's people list carries it (openapi UserObject.photo).
   * Read one page at a time: a caller keeps it no longer than it needs (people copy writes it to a temp file).
   */
  photo?: Buffer
  /** Protocol extras worth showing (e.g. openapi userType 2 = visitor). */
  extras?: Record<string, string | number | boolean | null>
}

export type PersonStatus = 'ok' | 'failed' | 'skipped' | 'unsupported' | 'timeout' | 'queued'

/** The outcome for one person on one device, with the device's own reason when it gave one. */
export interface PersonOutcome {
  id: string
  name?: string
  status: PersonStatus
  /** What happened: added, updated, deleted, enrolled, ... */
  action?: string
  message: string
  deviceCode?: number | string
}

/** One access record, protocol-neutral. Extras keep what the protocol adds. */
export interface AccessRecord {
  recordId: string
  time: Date
  /** Minutes east of UTC to render `time` in; undefined = this machine's local offset. */
  utcOffsetMinutes?: number
  userId: string
  name: string
  /** employee, visitor, blacklist, stranger, ... */
  type: string
  /** granted, denied, ... */
  result: string
  /** in, out, or '' when the protocol does not say */
  direction: string
  /** face, card, qrcode, password, ... */
  method: string
  extras: Record<string, string | number | boolean | null>
  /** Capture image (JPEG bytes), when the device sent one. */
  photo?: Buffer
}

export interface PullQuery {
  /** Opaque cursor returned by a previous pull of this device (--since last). */
  after?: unknown
  since?: Date
  until?: Date
}

/** A pull in progress: iterate `records`, then `cursor()` covers everything yielded. */
export interface RecordPull {
  /** The records, a batch (a device page) at a time; a consumer handles one batch before asking for the next. */
  batches: AsyncIterable<readonly AccessRecord[]>
  /** The cursor to store once the batches handed out so far are safely written. */
  cursor(): unknown
}

export interface OpResult {
  /** Queued for a push-style device and not waited for (--no-wait). */
  queued?: boolean
  message?: string
  /** Extra fields for the per-target result (e.g. the device's reply). */
  data?: Record<string, unknown>
}

export interface FaceSource {
  photoPath?: string
  /** Ask the device to capture the face itself (httpv2 RegisterIdentifyTicket). */
  capture?: boolean
}

export interface DeviceDriver {
  readonly protocol: Protocol
  open(mode: OpenMode, ctx: OperationContext): Promise<OpResult>
  reboot(ctx: OperationContext): Promise<OpResult>
  /**
   * Sets the clock to `time`. Protocols that take a local time (with a zone) get `time` as the
   * wall time at `utcOffsetMinutes` east of UTC (given: --time's written offset or the device's
   * zone at that instant; absent: the device's zone).
   */
  syncTime(time: Date, ctx: OperationContext, utcOffsetMinutes?: number): Promise<OpResult>
  info(ctx: OperationContext): Promise<Record<string, unknown>>
  /** Sections the protocol has (openapi: network, smartface, perpara). */
  configSections(): string[]
  getConfig(section: string, ctx: OperationContext): Promise<Record<string, unknown>>
  /** Several sections in one go, where the device reports them all in one answer (push-style `info`). */
  readConfig?(sections: readonly string[], ctx: OperationContext): Promise<Record<string, Record<string, unknown>>>
  setConfig(section: string, values: Record<string, unknown>, ctx: OperationContext): Promise<OpResult>
  /** Add-or-update: an existing id is updated, not duplicated. One outcome per person, in any order. */
  upsertPeople(people: readonly Person[], ctx: OperationContext): AsyncIterable<PersonOutcome>
  deletePeople(ids: readonly string[] | 'all', ctx: OperationContext): AsyncIterable<PersonOutcome>
  listPeople(ctx: OperationContext): AsyncIterable<PersonInfo>
  enrollFace(id: string, source: FaceSource, ctx: OperationContext): Promise<PersonOutcome>
  /** Is the face in this JPEG enrolled on the device? (wsjson compareUser) */
  checkFace(photoPath: string, ctx: OperationContext): Promise<OpResult & { exists?: boolean }>
  /** A camera snapshot (JPEG). */
  snapshot(ctx: OperationContext): Promise<OpResult & { photo?: Buffer }>
  /**
   * Before a pull, push-style devices only: wait (within ctx.timeoutMs) until the device has called
   * and uploaded what it holds. Absent, or resolving at once, where records are read from the device
   * itself or a gateway that keeps running (serve) has been collecting them all along.
   * `repost`: first ask the device to upload everything it holds again, where its protocol can.
   */
  collectRecords?(ctx: OperationContext, opts?: { repost?: boolean }): Promise<void>
  pullRecords(query: PullQuery, ctx: OperationContext): RecordPull
  /** Live records until ctx.signal aborts. */
  watchRecords(ctx: OperationContext): AsyncIterable<AccessRecord>
  /** Directly reachable devices: ask who the device is (reachable, credentials accepted, model and firmware). */
  probe?(ctx: OperationContext): Promise<{ model?: string; firmware?: string }>
  close(): Promise<void>
}

/** Protocol rules the CSV validator checks before anything is sent. */
export interface PersonRules {
  protocol: Protocol
  /** Max length per Person field, as the document gives it (characters unless bytes is set). */
  maxLength: Partial<Record<'id' | 'name' | 'card' | 'phone' | 'department' | 'password' | 'room' | 'unit', number>>
  /** Fields the protocol cannot do without. */
  required: ReadonlyArray<'id' | 'name' | 'phone'>
  /** What an id must look like, and how to say so. */
  idPattern?: { re: RegExp; description: string }
  /** What other fields must look like (udp phones, httpv2 digit-only cards and passwords). */
  patterns?: Partial<Record<'phone' | 'card' | 'password' | 'room' | 'unit', { re: RegExp; description: string }>>
  /** Largest photo accepted, bytes. */
  maxPhotoBytes: number
  /** Lengths counted in UTF-8 bytes rather than characters (httpv2 names, document 13). */
  lengthInBytes?: boolean
}

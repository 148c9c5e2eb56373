// ---------------------------------------------------------------------------------------------
// Public API (options, events).

export interface UdpSimulatorOptions {
  /** Server host for heartbeats, e.g. '127.0.0.1'. */
  server: string
  /** Server UDP port (the document's 7998). */
  udpPort: number
  /** Server base URL for the HTTP callbacks, e.g. 'http://127.0.0.1:8090' (a path prefix is kept). */
  httpUrl: string
  communityId: string
  deviceCode: string
  deviceSn?: string
  /** Section 1: `name` is the community's name (小区名称). */
  name?: string
  softVer?: string
  /** Heartbeat period; default 50000 (section 1: "50秒一次"). */
  intervalMs?: number
  /** Local UDP port to send from (0/undefined = random) — the "NAT" port. */
  sourcePort?: number
  /** Local address to bind; default 127.0.0.1/::1 when the server is on loopback, else all interfaces. */
  bindAddress?: string
  /** Drop the first N command datagrams received (simulates loss; the server must resend with the same id). */
  dropIncoming?: number
  /** Send acks with the document's `"id","1"` form (AMB udp #2). */
  brokenIdForm?: boolean
  /** Face photos whose bytes contain this ASCII marker are judged invalid (40); default 'NOFACE'. */
  invalidPhotoMarker?: string
  /** Poll /updateImage after every Nth heartbeat (default 1 = every heartbeat; 0 = never on its own). */
  facePollEvery?: number
  /** Initial `timestrap` for /updateImage (default 0: everything). */
  faceCursor?: number
  /** HTTP request bodies: 'form' (default, the updateImage example is key=value) or 'json' (AMB udp #6). */
  bodyEncoding?: 'form' | 'json'
  /** Send a feature file with valid (50) verdicts (`iffile=1`); default true. */
  featureFile?: boolean
  /** Also confirm deletions (state 30) to /authImage with iffile=2; default false (the document only reports photo verdicts). */
  reportDeletes?: boolean
  /** After a /oneLock answer, report the attempt to /unlockCallback (type 3, result 0 or 1); default true. */
  reportPasswordUnlocks?: boolean
  /**
   * Behave like a device behind NAT: accept datagrams only from the server's address and UDP port
   * (where the heartbeats went); default true.
   */
  natFilter?: boolean
  /** NAT mapping lifetime: datagrams arriving later than this after the last heartbeat are lost; default: never expires. */
  natTimeoutMs?: number
  /** HTTP request timeout; default 10000. */
  requestTimeoutMs?: number
  log?: (line: string) => void
}

export interface UdpEvents {
  heartbeats: number
  heartacks: number
  lastHeartackResult?: string
  /** Unlock commands executed, as received (each id once). */
  unlocks: Record<string, unknown>[]
  reboots: number
  /** Setting commands executed, as received (each id once). */
  settings: Record<string, unknown>[]
  /** Command datagrams that arrived (including dropped ones and duplicates). */
  commandsReceived: number
  /** Command datagrams dropped because of `dropIncoming`. */
  commandsDropped: number
  /** Commands that repeated an id already executed: not executed again, the first ack re-sent. */
  duplicatesIgnored: number
  /** Datagrams ignored: malformed, from a foreign address/port, or after the NAT mapping expired. */
  datagramsIgnored: number
  faceListPolls: number
  /** /authImage requests that the server accepted (code 0000). */
  authReports: number
  /** /addUpload requests sent. */
  uploads: number
  /** /unlockCallback requests sent. */
  unlockCallbacks: number
  /** /oneLock requests sent. */
  passwordChecks: number
  /** Protocol problems seen in the server's messages (also logged). */
  problems: string[]
}

export interface AccessEventOptions {
  /** Default: the first stored face's phone, else '' ("没有号码可填空"). */
  phone?: string
  /** Section 3 type; default 4 (人脸). */
  type?: number
  /** Section 3 result; default 0 (开锁成功). */
  result?: number
  /** The capture; default a generated JPEG. */
  photo?: Buffer
  /** Send the record without a capture (no /addUpload). */
  noPhoto?: boolean
  /** Default: the stored face's roomNumber / unitId, else ''. */
  roomNumber?: string
  unitId?: string
}

/** The simulated device's identity, what it reports, and its lifecycle (background work stop() waits for). */
export class UdpState {
  readonly events: UdpEvents = {
    heartbeats: 0, heartacks: 0, unlocks: [], reboots: 0, settings: [], commandsReceived: 0, commandsDropped: 0,
    duplicatesIgnored: 0, datagramsIgnored: 0, faceListPolls: 0, authReports: 0, uploads: 0, unlockCallbacks: 0, passwordChecks: 0, problems: [],
  }
  readonly opts: UdpSimulatorOptions
  community: string
  code: string
  readonly log: (line: string) => void
  stopped = false
  abort = new AbortController()
  readonly inflight = new Set<Promise<unknown>>()
  lastHeartbeatAt = 0

  constructor(opts: UdpSimulatorOptions) {
    this.opts = opts
    this.community = opts.communityId
    this.code = opts.deviceCode
    const log = opts.log
    this.log = log ? (line) => log(`udp ${this.community}/${this.code}: ${line}`) : () => {}
  }

  problem(p: string): void {
    this.events.problems.push(p)
    this.log(`problem: ${p}`)
  }

  /** Keeps a background promise so stop() can wait for it; never rejects. */
  track(p: Promise<unknown>): void {
    const q = p.catch(() => undefined)
    this.inflight.add(q)
    void q.finally(() => this.inflight.delete(q))
  }
}

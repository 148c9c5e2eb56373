import { BEST_DEFAULT_PRODUCT_ID, type Json } from './protocol.js'

// ---------------------------------------------------------------------------------------------
// Public API.

export interface BestSimulatorOptions {
  /** http://127.0.0.1:PORT (getBrokerServer lives there; a path prefix is kept). */
  server: string
  sn: string
  /** PEM certificate(s) to trust besides the system's (`--ca F`): a gateway with a self-signed or private-CA certificate. */
  ca?: string
  /** Asks getBrokerServer with the matching `type` (best-w / best-m). */
  transport: 'ws' | 'mqtt'
  /** Default '5d9b11e1a3f448ae81f9f920e976d852' (the document's example). */
  productId: string
  /** The secret written at production; devKey = PBKDF2(it, productId). If absent, obtained via dev.accredit. */
  deviceSecret?: string
  /** getBrokerServer secretKey. */
  brokerKey: string
  /** Business heartbeat period; default: the server's heartbeatInterval (s) from the dev.report answer, else 60 s. */
  heartbeatMs?: number
  /** Wait before reconnecting after the link is lost or the device rebooted; default 5000. */
  reconnectMs?: number
  /** Bio photos containing this ASCII marker fail (non-zero code in dev.cmd.response); default 'NOFACE'. */
  invalidPhotoMarker?: string
  /** Disconnect without answering when this funcId arrives (once). */
  dropOnCommand?: string
  /** How long to wait for the server's answer to one request; default 10000. */
  requestTimeoutMs?: number
  /** dev.report maxPackageSize, KB (document default 64): larger photos go through dev.file.upload.*. */
  maxPackageKb?: number
  /** verifyLog's meetCode (required on this meeting firmware, AMBIGUITIES best #12); default '1'. */
  meetCode?: string
  log?: (line: string) => void
}

export interface BestEvents {
  reboots: number
  /** One entry per applied answer to dev.system.sync.time, values as received. */
  timeSyncs: { time: string; timeZone?: string }[]
  /** The `option` object of each cmd.option.set, as received. */
  options: Record<string, unknown>[]
  /** cmd.* funcIds received (including a dropped one), by funcId. */
  commands: Record<string, number>
  /** dev.heartbeat messages sent. */
  heartbeats: number
  /** Successful dev.login exchanges. */
  logins: number
  /** Protocol problems seen in what the server sent (bad JSON, non-string values, unknown replies…). */
  badMessages: string[]
}

/** What the simulated device holds: its users, cards, meetings, options and clock, and what it reports. */
export class BestState {
  readonly sn: string
  readonly events: BestEvents = { reboots: 0, timeSyncs: [], options: [], commands: {}, heartbeats: 0, logins: 0, badMessages: [] }
  readonly o: Required<Pick<BestSimulatorOptions, 'server' | 'transport' | 'productId' | 'brokerKey' | 'reconnectMs' | 'invalidPhotoMarker' | 'requestTimeoutMs' | 'maxPackageKb' | 'meetCode'>> & BestSimulatorOptions
  readonly store = new Map<string, Json>()
  readonly cards = new Map<string, Json[]>()
  readonly meetings = new Map<string, Json>()
  readonly meetingMembers = new Map<string, Set<string>>()
  readonly deviceOptions: Record<string, string> = {}
  logSeq = 0
  clockOffsetMs = 0
  /** 3.5: the server's `timezone` default is +08:00. */
  timeZone = '+08:00'
  busy = 0

  constructor(opts: BestSimulatorOptions) {
    this.sn = opts.sn
    this.o = {
      ...opts,
      productId: opts.productId || BEST_DEFAULT_PRODUCT_ID,
      reconnectMs: opts.reconnectMs ?? 5000,
      invalidPhotoMarker: opts.invalidPhotoMarker ?? 'NOFACE',
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      maxPackageKb: opts.maxPackageKb ?? 64,
      meetCode: opts.meetCode ?? '1',
    }
  }

  log(line: string): void {
    this.o.log?.(`best ${this.sn}: ${line}`)
  }

  bad(what: string): void {
    this.events.badMessages.push(what)
    this.log(`bad message: ${what}`)
  }

  /** The device's clock (moved by dev.system.sync.time). */
  now(): number {
    return Date.now() + this.clockOffsetMs
  }
}

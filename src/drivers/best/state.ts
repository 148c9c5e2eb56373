/**
 * What the best gateway keeps (best.txt), shared by its parts: per device (Dev: its WebSocket or
 * MQTT session, the command being delivered as steps, mids answered, uploads in progress), the
 * options, and BestCore — what gateway.ts gives every part, including the calls one part makes
 * into another (session.ts, delivery.ts, relay.ts), so no part imports another.
 */
import type { WebSocket } from 'ws'
import type { GatewayContext, QueuedCommand, SpoolRecord } from '../../types/gateway.js'
import type { DeviceEntry, PersonOutcome } from '../../types/driver.js'
import type { BrokerLink } from './broker.js'
import { LOGIN_FUNCS, type BestMessage, type Json, type Parsed, type PersonPayload } from './codec.js'
import type { DeviceClock } from '../../util/time.js'

export interface BestOptions {
  /** heartbeatInterval given to devices in the report answer, s (document default 60). */
  heartbeatSeconds?: number
  /** getBrokerServer timestamps further than this from our clock are refused (document: "比如5分钟"). */
  timestampWindowMs?: number
  /** A user listing without cmdId-tagged uploads ends this long after the last upload/answer. */
  listQuietMs?: number
  /** How long a time sync waits for the second half (dev.system.sync.time or the command's answer). */
  timeAskMs?: number
  /** A verify log is held (durably) this long for its verify photo before it is spooled without one. */
  photoWaitMs?: number
  /** Deliveries of one step lost to disconnects before the command fails. */
  maxAttempts?: number
  usersPerCommand?: number
  idsPerCommand?: number
  /** Largest file accepted through dev.file.upload.*. */
  maxFileBytes?: number
  sweepMs?: number
  /** Commands wait for the device's dev.report after its login, at most this long. */
  reportGraceMs?: number
  /** Fixed gateway id (tests); default: random, kept in DOORCTL_HOME. */
  gatewayId?: string
  /** false: no MQTT at all (best-w only). */
  mqtt?: boolean
  /** With --mqtt-url: how long the probe for shared subscriptions waits for its message. */
  sharedProbeMs?: number
}

export type Channel = {
  kind: 'ws' | 'mqtt'
  /** Login session the channel belongs to (ws: the connection; mqtt: the login). */
  session: string
  address: string
  /** host[:port] the device reaches our HTTP port by (for photo URLs). */
  host?: string
  send(msg: Json): void
}

export interface WsConn {
  id: string
  socket: WebSocket
  address: string
  /** The peer's address as its socket reports it (source pinning). */
  remoteAddress: string
  host: string
  dev?: Dev
  loggedIn: boolean
  /** Logged in and reported (or the grace period passed): commands may be sent. */
  ready: boolean
  lastSeen: number
  bad: number
}

export type StepWhat = 'user' | 'card' | 'photo' | 'delete' | 'clear' | 'query' | 'reboot' | 'sync' | 'option'

export interface Step {
  funcId: string
  what: StepWhat
  ids: string[]
  imme?: boolean
  params?: Json
}

export interface Job {
  cmd: QueuedCommand
  steps: Step[]
  next: number
  seq: number
  inflight?: { step: Step; cmdId: string; session: string }
  /** A step the device may have taken before it logged in again, whose effect is not idempotent: held back, not sent again, while the device may still act on it. */
  held?: { step: Step; cmdId: string }
  sending: boolean
  attempts: number
  people: Map<string, PersonPayload>
  outcomes: Map<string, PersonOutcome>
  order: string[]
  enrollOnly: boolean
  list?: { users: Map<string, Json>; cards: Map<string, string[]>; photos: Set<string>; open: boolean; responded: boolean; tagged: boolean; seen: boolean }
  sync?: { epochMs: number; offset: number; since: number; responded: boolean; answered?: string }
  files: string[]
  claimed: boolean
  /** Its command's claim (delivered by this gateway) is committed: its frames may go out. */
  delivered: boolean
  timer?: NodeJS.Timeout
  done: boolean
}

export interface UploadFile {
  size: number
  checksum: string
  data: Buffer
  written: number
  done: boolean
  at: number
}

export interface Dev {
  name: string
  sn: string
  entry: DeviceEntry
  ws?: WsConn
  mqtt?: { session: string; at: number; gw: string; ready: boolean }
  sessionPublishedAt: number
  readyTimer?: NodeJS.Timeout
  job?: Job
  /** mid → our answer (null: answered by nobody, e.g. dev.cmd.response), most recent last. */
  mids: Map<string, Json | null>
  files: Map<string, UploadFile>
  held: Map<string, { record: SpoolRecord; timer: NodeJS.Timeout }>
  strayPhotos: Map<string, { photo: Buffer; pin: string; timer: NodeJS.Timeout }>
}

export const EXCHANGE = new Set(['device.exchange.publicKey', 'device.exchange.factor'])
export const LOGIN = LOGIN_FUNCS
export const CLAIMS: Partial<Record<StepWhat, string[]>> = {
  sync: ['dev.system.sync.time'],
  query: ['dev.data.upload.user', 'dev.data.upload.userPhoto', 'dev.data.upload.bioPhoto', 'dev.data.upload.multiCard'],
}
export const GLOBAL = '#best'
export const MIDS_KEPT = 256
export const MIDS_PERSISTED = 128
export const MQTT_SAFE_SN = /^[^/+#\s\u0000]{1,64}$/

export const localOffset = () => -new Date().getTimezoneOffset()

export function chunk<T>(list: T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size))
  return out
}

export function bracket(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
}

/** BestOptions with every default filled in. */
export type ResolvedBestOptions = Required<Omit<BestOptions, 'gatewayId' | 'mqtt'>> & { mqtt: boolean }

/** Login and sessions (session.ts), as the other parts call them. */
export interface SessionPart {
  /** 2.1 / 2.2 key exchange answers. */
  exchange(dev: Dev | undefined, ch: Channel, m: BestMessage): void
  awaitReport(dev: Dev, kind: 'ws' | 'mqtt', ms: number): void
  sessionReady(dev: Dev, kind: 'ws' | 'mqtt'): void
  newSession(dev: Dev, session: string): void
}

/** Delivery of commands as steps (delivery.ts), as the other parts call it. */
export interface DeliveryPart {
  lost(dev: Dev, job: Job, why: string): void
  finishInfo(dev: Dev, job: Job): void
  schedulePump(dev: Dev): void
}

/** The multi-gateway MQTT relay (relay.ts), as the other parts call it. */
export interface RelayPart {
  publishSession(dev: Dev): void
  claim(dev: Dev, job: Job, funcIds: string[]): Promise<void>
  release(dev: Dev, job: Job): void
}

/** What gateway.ts shares with the parts. */
export interface BestCore {
  readonly ctx: GatewayContext
  readonly o: ResolvedBestOptions
  readonly gwId: string
  readonly devs: Map<string, Dev>
  readonly link?: BrokerLink
  readonly stopping: boolean
  /** Why the embedded broker could not start, if it could not. */
  readonly brokerProblem?: string
  readonly sessions: SessionPart
  readonly delivery: DeliveryPart
  readonly relay: RelayPart
  safe(what: string, fn: () => void): void
  devOf(entry: DeviceEntry): Dev
  /** The device's time zone, minutes east of UTC. */
  offsetOf(name: string): number
  clockOf(name: string): DeviceClock
  /** The channel commands go down now: a ready WebSocket login, else a ready MQTT session. */
  channel(dev: Dev): Channel | undefined
  /** A device message, once it is known to be this device's and this gateway's. */
  handle(dev: Dev, ch: Channel, m: BestMessage, conn?: WsConn): void
  answerOnce(dev: Dev | undefined, ch: Channel, m: BestMessage, code: string, message: string, results?: Json, persist?: boolean): void
  duplicate(dev: Dev, ch: Channel, m: BestMessage): boolean
  remember(dev: Dev, mid: string, answer: Json | null, persist?: boolean): void
  malformed(ch: Channel, p: Extract<Parsed, { error: string }>, device?: string): void
  unknown(sn: string, ch: Channel, m: BestMessage): void
}

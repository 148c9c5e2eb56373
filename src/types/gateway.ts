/**
 * The gateway is where push-style devices (httpv2, udp, wsjson, best, openapi platform mode)
 * phone home. Protocol modules plug into it; the CLI reaches it through a command queue.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { AccessRecord, DeviceEntry, Logger, PersonOutcome, Protocol } from './driver.js'

/** What a queued command asks a device to do. Payloads are JSON. */
export type CommandKind =
  | 'open'
  | 'reboot'
  | 'syncTime'
  | 'info'
  | 'setConfig'
  | 'upsertPeople'
  | 'deletePeople'
  | 'listPeople'
  | 'enrollFace'
  | 'snapshot'
  | 'repostRecords'
  | 'checkFace'

/**
 * queued → delivered (the device took it) → acknowledged | failed; or expired (--timeout); or
 * unknown: the gateway that delivered a non-idempotent command died before its answer was recorded.
 */
export type CommandState = 'queued' | 'delivered' | 'acknowledged' | 'failed' | 'expired' | 'unknown'

export interface CommandResult {
  message?: string
  /** Per-person outcomes of people commands. */
  people?: PersonOutcome[]
  data?: Record<string, unknown>
  deviceCode?: number | string
}

export interface QueuedCommand {
  id: number
  device: string
  protocol: Protocol
  kind: CommandKind
  payload: Record<string, unknown>
  state: CommandState
  result?: CommandResult
  createdAt: number
  deliveredAt?: number
  finishedAt?: number
  expiresAt: number
  /** The gateway that claimed it (multi-gateway stores). */
  gateway?: string
}

export const FINAL_STATES: ReadonlySet<CommandState> = new Set(['acknowledged', 'failed', 'expired', 'unknown'])

/** An HTTP request after the gateway read it: size-limited, gunzipped, parsed. */
export interface GatewayRequest {
  method: string
  /** Path as sent (case preserved); routing is case-insensitive. */
  path: string
  query: URLSearchParams
  headers: IncomingHttpHeaders
  remoteAddress: string
  remotePort: number
  /** The gateway's own address on this connection (for URLs when a device sends no Host header). */
  localAddress: string
  localPort: number
  /** Parsed JSON body (undefined when the body was empty or not JSON). */
  json?: unknown
  /** Why a JSON-looking body did not parse (only on routes with `rawBody`; others answer 400). */
  jsonError?: string
  /** Raw (decompressed) body. */
  body: Buffer
  /** multipart/form-data fields and files (each decompressed per its own Content-Encoding). */
  fields: Record<string, string>
  files: Record<string, { data: Buffer; filename?: string; mimeType?: string }>
  /** Path parameters from the route pattern (e.g. `{id}`). */
  params: Record<string, string>
}

export interface GatewayResponse {
  status?: number
  json?: unknown
  body?: Buffer | string
  contentType?: string
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | '*'
  /** Matched case-insensitively; `{name}` segments become params. */
  path: string
  /** Hand a body that is not valid JSON to the handler (req.jsonError) instead of answering 400: for protocols whose own answer shape the device needs. */
  rawBody?: boolean
  handle(req: GatewayRequest): Promise<GatewayResponse> | GatewayResponse
}

/** A spooled access record: an AccessRecord of a named device, with its time in ms since epoch. */
export type SpoolRecord = Omit<AccessRecord, 'time'> & { device: string; time: number }

/** The gateway's certificate chain and private key (PEM), read from --tls-cert/--tls-key. The key is a secret. */
export interface TlsMaterial {
  cert: Buffer
  key: Buffer
}

/** findDevice's answer for a device that called from an address its --allow-from does not cover. */
export const REFUSED: unique symbol = Symbol('refused: not from an --allow-from address')

/** A request, datagram or connection the gateway refused on security grounds (Gateway.onRefused; the status page counts them). */
export interface RefusedContact {
  /** The inventory device it claimed to be, when it named one. */
  device?: string
  protocol: Protocol
  address: string
  /** allow-from (source pinning), anonymous, credentials, acl (a topic outside the device's own). */
  reason: 'allow-from' | 'anonymous' | 'credentials' | 'acl'
  at: number
}

/** What the gateway offers a protocol module. */
export interface GatewayContext {
  readonly log: Logger
  readonly settings: GatewaySettings
  /** DOORCTL_HOME (secrets a protocol keeps beside the store, mode 0600). */
  readonly home: string
  /** Set when the gateway serves TLS (--tls-cert): its HTTP port is HTTPS and WSS, an embedded broker MQTTS. */
  readonly tls?: TlsMaterial
  /** Durable per-device key/value state (time zone, people seen, ...), JSON values; survives restarts. */
  state(device: string, key: string): unknown
  setState(device: string, key: string, value: unknown): void
  /**
   * The inventory entry of a device by its protocol identity, or undefined (unknown → discovered).
   * With `from` (the peer's address as its socket reports it, no port), a device pinned to other
   * addresses (--allow-from) is REFUSED: logged (rate-limited) and counted by the gateway; the
   * caller answers with its protocol's refusal and serves nothing.
   */
  findDevice(protocol: Protocol, identity: string): DeviceEntry | undefined
  findDevice(protocol: Protocol, identity: string, from: string): DeviceEntry | typeof REFUSED | undefined
  /** Every device of the inventory (as it is now). */
  devices(): readonly DeviceEntry[]
  /** Count a refusal the protocol made itself (it logged it): MQTT logins and topics, say. */
  refused(r: Omit<RefusedContact, 'at'>): void
  /** Record a heartbeat or any contact. */
  touch(device: DeviceEntry, address: string, info?: Record<string, unknown>): void
  /**
   * The device's periodic call (keepalive, heartbeat), for record collection (records pull without
   * serve): a device is drained at a heartbeat with no record uploaded since its previous one, or at one
   * the protocol knows is sent only when the device holds nothing more (`idle`).
   */
  heartbeat(device: DeviceEntry, opts?: { idle?: boolean }): void
  /** A device not in the inventory called: remember it (rate-limited log line). */
  discovered(protocol: Protocol, identity: string, address: string, info?: Record<string, unknown>): void
  /** Commands waiting for this device (queued, or delivered and not yet final), oldest first. */
  pending(device: string): QueuedCommand[]
  /** Mark a command delivered (durably). */
  delivered(id: number): void
  /** Record progress (e.g. per-person outcomes of one batch) without finishing. */
  progress(id: number, result: CommandResult): void
  /** Finish a command: acknowledged, or failed with the device's reason. */
  finish(id: number, state: 'acknowledged' | 'failed', result: CommandResult): void
  /** Store a record durably (once per device+recordId). Resolves true if new. Must complete before the device is told it was received. */
  spool(record: SpoolRecord): boolean
  /**
   * For code that answers a device outside an HTTP request (held connections, UDP, timers): runs
   * `fn` and resolves with its value once every store write it made is committed; rejects with the
   * first that failed (the store is down, or `ClaimLost`: another gateway delivers the command).
   * Acknowledge a record, or send a command's frame, only in its `then`.
   */
  durable<T>(fn: () => T): Promise<T>
  /** Decision for an online authorization request (serve --authorize). */
  authorize(device: DeviceEntry, userId: string): boolean
  /** Serve bytes at a gateway URL for devices to download (photos); returns the absolute URL the device can use. */
  publish(name: string, data: Buffer | (() => Promise<Buffer>), contentType: string, requestHost?: string): string
  /** Stop serving a published file. */
  unpublish(name: string): void
  /** Wake waiters: a command for `device` was queued (used by connection-holding protocols). */
  onQueued(listener: (device: string) => void): void
}

/** A WebSocket endpoint on the gateway's HTTP port (wsjson at /wsjson, best-w at /best). */
export interface WebSocketRoute {
  /** Matched case-insensitively, ignoring the query string. */
  path: string
  /** Largest message accepted (default: settings.maxBodyBytes). */
  maxPayload?: number
  /** Called for each accepted connection; `socket` is a `ws` WebSocket. */
  onConnection(socket: import('ws').WebSocket, req: import('node:http').IncomingMessage): void
}

/** A protocol's gateway side. */
export interface ProtocolHandler {
  readonly protocol: Protocol
  routes?(ctx: GatewayContext): Route[]
  websockets?(ctx: GatewayContext): WebSocketRoute[]
  /** Command kinds this protocol can carry out. */
  readonly kinds: ReadonlySet<CommandKind>
  /** Optional per-protocol start/stop (UDP sockets on settings.udpPort, MQTT, ...); may return ports it bound (and such facts) for the ready line. */
  start?(ctx: GatewayContext): Promise<void | Record<string, number | string | boolean>>
  stop?(): Promise<void>
  /** What the ready line must warn about once started (e.g. an MQTT broker without shared subscriptions). */
  warnings?(): string[]
  /** Listeners of its own that are down (a closed UDP socket, say), for /healthz; empty when all are up. */
  problems?(): string[]
}

export interface GatewaySettings {
  httpPort: number
  udpPort: number
  bind: string
  mqttUrl?: string
  /** Embedded broker port (1883 when unset); set, the broker starts even without best-m devices. */
  mqttPort?: number
  /** Devices are offline when silent this long (ms). */
  offlineAfterMs: number
  /** `serve --authorize`: allow | deny | path of a CSV with an id column. */
  authorize: string
  /** Largest request body, and decompressed body, in bytes. */
  maxBodyBytes: number
  /** PEM files: with both, the device port is HTTPS/WSS and the embedded MQTT broker MQTTS. */
  tlsCert?: string
  tlsKey?: string
}

export const DEFAULT_SETTINGS: GatewaySettings = {
  httpPort: 8090,
  udpPort: 7998,
  bind: '0.0.0.0',
  offlineAfterMs: 90_000,
  authorize: 'deny',
  maxBodyBytes: 2 * 1024 * 1024,
}

export interface SubmitOptions {
  timeoutMs: number
  /** false: return as soon as it is queued (--no-wait). */
  wait: boolean
  signal: AbortSignal
}

/** How a one-shot command reaches push-style devices: through `serve`, or a temporary listener. */
export interface GatewayHandle {
  readonly mode: 'serve' | 'temporary' | 'joined'
  submit(device: DeviceEntry, kind: CommandKind, payload: Record<string, unknown>, opts: SubmitOptions): Promise<QueuedCommand>
  /** The command once final (acknowledged, failed or expired), or `signal`'s reason. */
  wait(id: number, signal: AbortSignal): Promise<QueuedCommand>
  presence(): Promise<DevicePresence[]>
  discovered(): Promise<DiscoveredRow[]>
  /**
   * Record collection (a temporary listener only; serve and joined gateways have been collecting
   * all along): resolves once `device` has called and uploaded what it holds (see
   * gateway/collect.ts); rejects with TimeoutError after `timeoutMs`, or with `signal`'s reason.
   */
  collect?(device: DeviceEntry, opts: { timeoutMs: number; signal: AbortSignal }): Promise<CollectOutcome>
  close(): Promise<void>
}

/** How a device's collection went: the new records it uploaded meanwhile. */
export interface CollectOutcome {
  records: number
}

/** A device's presence as the gateway knows it (device list). */
export interface DevicePresence {
  device: string
  protocol: string
  online: boolean
  lastSeen: string | null
  address: string
  info: Record<string, unknown>
}

/** A device not in the inventory that called the gateway. */
export interface DiscoveredRow {
  protocol: string
  identity: string
  lastSeen: number
  address: string
  info: Record<string, unknown>
}

/** Where a push-style driver reads spooled records when they are kept in a shared store (by spool sequence number). */
export interface RecordSource {
  after(device: string, afterSeq: number, limit: number, range?: { since?: number; until?: number }): Promise<(Omit<SpoolRecord, 'photo'> & { seq: number; hasPhoto: boolean })[]>
  photo(seq: number): Promise<Buffer | undefined>
  /** The highest sequence number so far (records watch starts after it). */
  lastSeq(): Promise<number>
}

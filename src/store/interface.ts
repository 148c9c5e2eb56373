/**
 * One interface for everything doorctl keeps durably, with two implementations: embedded SQLite
 * in DOORCTL_HOME (the default; sqlite-store.ts) and PostgreSQL shared by several gateways and
 * command lines (postgres-store.ts). openStore() (open.ts) picks one from a URL.
 *
 * Design (issue 11): how each multi-gateway rule maps onto this interface.
 * - Claims. A command is handed to a device only after `commands.claim(device, gateway)` returned
 *   it: one transaction moves the device's oldest `queued` command to `delivered`, stamped with the
 *   claiming gateway (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: one IMMEDIATE transaction), so
 *   whichever gateway a polled device (httpv2 keepalive, openapi platform, udp callbacks) calls,
 *   exactly one of them delivers each command. `claim` replaces today's pending()[0] + delivered();
 *   `pending()` stays for looking ahead (refusing kinds a device cannot do, batching people).
 *   A gateway whose lease is gone cannot claim (fencing). Claims do not wait for the device's
 *   previous command to finish: a gateway keeps one job per device at a time, as today.
 * - Connection-held devices (wsjson, best-w) and udp heartbeats. The gateway holding a device's
 *   socket, or that heard its latest heartbeat, records it with `gateways.hold()` (upsert: the
 *   latest connection wins) and claims with `{ asHolder: true }`, which succeeds only for the
 *   current holder: the others never send. `enqueue` announces the devices it queued for
 *   (`subscribe('queued')`; PostgreSQL NOTIFY, so the holder on another machine hears it at once);
 *   every gateway keeps the set of devices with pending commands from it, seeded by
 *   `devicesWithPending()` (and again after `subscribe('reconnected')`), so a keepalive costs no
 *   query when nothing is queued for its device.
 * - Leases. Each serve `register()`s (id, host, pid, ports) with a lease it `renew()`s (e.g. every
 *   lease/3; PostgreSQL measures leases on its own clock, so machines' clocks need not agree). A
 *   renew that returns false means the lease was lost: stop claiming and register again. Every live
 *   gateway calls `reap()` now and then: gateways whose lease ran out lose their holds, so the
 *   device's next connection, anywhere, holds it and claims its queue; `unregister()` on a clean
 *   stop does the same at once.
 * - Unknown after death. Each command remembers whether its kind may be sent twice
 *   (NON_IDEMPOTENT_KINDS: open, reboot). When its claiming gateway is reaped (or unregisters)
 *   while the command is `delivered` without a recorded answer, a non-idempotent command ends
 *   `unknown` with that explanation (a door must not open twice); an idempotent one goes back to
 *   `queued` and is delivered again by whichever gateway the device reaches next.
 * - Records once. `records.add()` stores a record once per (device, record id) by a unique key,
 *   photo included (PostgreSQL: bytea in the same row; SQLite: a file written and fsynced beside
 *   gateway.db before the row), and resolves only once committed: the caller acknowledges the
 *   device after it, so an acknowledged record is never lost and a re-sent one (through any
 *   gateway) is stored once. Readers page by the spool sequence number (`records.after`), which
 *   is also the `--since last` cursor of push-style devices; sequence numbers follow commit
 *   order (PostgreSQL: taken under a transaction-scoped lock), so a cursor never passes a record
 *   that another gateway is still committing.
 * - `--since last`. The file protocol of core/cursors.ts maps onto the store: (1)
 *   `cursors.prepare()` durably records the pull's intent (this host, temp file, output, size,
 *   new cursors), (2) the pull renames temp → output on its own disk, (3) `cursors.commit()`
 *   merges the cursors and drops the intent in one transaction. Only the host that wrote the files
 *   can tell whether the rename happened, so recovery reads `cursors.pendingOn(host)`. Two pulls
 *   (possibly on two machines) of one device must not overlap: `cursors.hold()` leases the
 *   devices to one pull (renewed while it runs) and names the other holder otherwise, and
 *   `prepare` is refused to a pull that no longer holds them, before its output is renamed.
 * - Wiring (the next step, after the layer and queue changes land). Handlers call GatewayContext
 *   ~200 times synchronously; the gateway keeps what they read in memory (the identity map,
 *   refreshed on `inventory` events or a changed `stamp()`; each device's state, loaded with
 *   `state.all(device)` when it first calls and written through), and the calls that must be done
 *   before a device is answered (`records.add`, `claim`, `finish`) become awaited in the handlers.
 *   Presence, discovered devices and holds are written in batches (about once a second per
 *   gateway), never one write per keepalive. Each start of `serve` registers anew, so on the
 *   default store too a command delivered by a killed serve is settled by the rule above once
 *   its lease runs out (before the store it stayed `delivered` and could be sent again).
 * Schema versions: gateway.db's in SQLite's user_version (sqlite-schema.ts), PostgreSQL's in its
 * meta table (postgres-schema.ts); each store creates and migrates its own, all or nothing.
 */
import type { DeviceEntry, Protocol } from '../types/driver.js'
import type { CommandKind, CommandResult, QueuedCommand, SpoolRecord } from '../types/gateway.js'

/** Kinds that must not be carried out twice: after a gateway died holding one, it ends `unknown`. */
export const NON_IDEMPOTENT_KINDS: ReadonlySet<CommandKind> = new Set(['open', 'reboot'])

export interface Store {
  readonly kind: 'sqlite' | 'postgres'
  /** Where it is, safe to print (never a password): `sqlite /home/x/gateway.db`, `postgres://user@host:5432/db`. */
  readonly description: string
  readonly devices: InventoryStore
  readonly commands: CommandQueue
  readonly records: RecordSpool
  readonly presence: PresenceStore
  readonly state: DeviceStateStore
  readonly cursors: CursorStore
  readonly gateways: GatewayRegistry
  schemaVersion(): Promise<number>
  /**
   * Changes made anywhere on the store (PostgreSQL: every process on it; SQLite: through this
   * instance, the one a gateway process holds; others are seen by polling, as waitFinal does).
   * `reconnected`: notifications may have been missed, re-read what depends on them.
   * Returns the unsubscribe function.
   */
  subscribe<E extends keyof StoreEvents>(event: E, listener: StoreEvents[E]): () => void
  /**
   * Resolves once subscriptions hear every change made from now on (PostgreSQL: LISTEN is in
   * place). A gateway subscribes, awaits this, then reads devicesWithPending(): nothing falls between.
   */
  listening(): Promise<void>
  close(): Promise<void>
}

export interface StoreEvents {
  queued: (devices: string[]) => void
  final: (ids: number[]) => void
  inventory: () => void
  reconnected: () => void
}

// ---- inventory ----------------------------------------------------------------------------

export interface InventoryStore {
  all(): Promise<DeviceEntry[]>
  get(name: string): Promise<DeviceEntry | undefined>
  /** Adds or replaces devices, all in one transaction. */
  save(entries: readonly DeviceEntry[]): Promise<void>
  remove(names: readonly string[]): Promise<void>
  /** Changes whenever the inventory does; cheap, for the gateway's identity cache. */
  stamp(): Promise<string>
}

// ---- command queue ------------------------------------------------------------------------

export interface NewCommand {
  device: string
  protocol: Protocol
  kind: CommandKind
  payload: Record<string, unknown>
  expiresAt: number
}

export interface ClaimOptions {
  /** Only commands of these kinds (a protocol's lanes). */
  kinds?: ReadonlySet<CommandKind>
  /** This very command (a flow that looked ahead with pending()); still only if it is queued. */
  id?: number
  /** Only if this gateway holds the device (its socket, or its latest udp heartbeat). */
  asHolder?: boolean
}

export interface CommandQueue {
  /** Queues commands in one transaction, in order; announces their devices (`queued`). */
  enqueue(commands: readonly NewCommand[]): Promise<QueuedCommand[]>
  get(id: number): Promise<QueuedCommand | undefined>
  getMany(ids: readonly number[]): Promise<QueuedCommand[]>
  /** Queued or delivered-but-unfinished commands of a device, oldest first. */
  pending(device: string): Promise<QueuedCommand[]>
  devicesWithPending(): Promise<string[]>
  /**
   * The device's oldest queued command, now `delivered` by `gateway`, or undefined. Atomic: of
   * concurrent claims (any gateways, any machines) exactly one gets each command.
   */
  claim(device: string, gateway: string, opts?: ClaimOptions): Promise<QueuedCommand | undefined>
  /** Records progress (per-person outcomes so far) of an unfinished command. */
  progress(id: number, result: CommandResult): Promise<void>
  /** Finishes an unfinished command; false when it was already final. Announces it (`final`). */
  finish(id: number, state: 'acknowledged' | 'failed', result?: CommandResult): Promise<boolean>
  /** Expires unfinished commands past their deadline; returns their ids. */
  expire(now?: number): Promise<number[]>
  /** Resolves with the commands once every one is final, or rejects when `signal` aborts. */
  waitFinal(ids: readonly number[], signal?: AbortSignal): Promise<QueuedCommand[]>
  /** Unfinished (queued or delivered) commands, counted per device and protocol (status page, metrics). */
  openCounts(): Promise<OpenCommandCount[]>
  /** The newest commands created since `since` (ms), newest first, at most `limit`; payloads left out. */
  recent(since: number, limit: number): Promise<QueuedCommand[]>
}

export interface OpenCommandCount {
  device: string
  protocol: string
  count: number
}

// ---- record spool -------------------------------------------------------------------------

/** A spooled record as read back: its spool sequence number, and whether it has a photo. */
export interface SpooledRecord extends Omit<SpoolRecord, 'photo'> {
  seq: number
  hasPhoto: boolean
}

export interface RecordRange {
  /** Record times (ms since epoch), inclusive. */
  since?: number
  until?: number
}

export interface RecordSpool {
  /**
   * Stores records once per (device, recordId), photos included, in one transaction; resolves
   * (one flag per record: true = new) only once committed, so the device may be told then.
   */
  add(records: readonly SpoolRecord[]): Promise<boolean[]>
  /** A device's records after spool sequence `afterSeq`, in arrival order, at most `limit`. */
  after(device: string, afterSeq: number, limit: number, range?: RecordRange): Promise<SpooledRecord[]>
  /** Every device's records after `afterSeq` (records watch). */
  afterAll(afterSeq: number, limit: number): Promise<SpooledRecord[]>
  /** The highest sequence number so far (0 when empty). */
  lastSeq(): Promise<number>
  photo(seq: number): Promise<Buffer | undefined>
  /** Records received per minute since `since` and the latest record time of each of `devices` (status page). */
  activity(since: number, devices: readonly string[]): Promise<RecordActivitySummary>
}

export interface RecordActivitySummary {
  /** Minute number (ms since epoch / 60 000) → records received in it. */
  perMinute: Record<number, number>
  /** Device → the time of its latest spooled record (ms); devices without records are left out. */
  lastRecord: Record<string, number>
}

// ---- presence and discovered devices ------------------------------------------------------

export interface PresenceEntry {
  device: string
  protocol: string
  lastSeen: number
  address: string
  info: Record<string, unknown>
  /** The gateway that heard it (multi-gateway stores). */
  gateway?: string
}

export interface DiscoveredEntry {
  protocol: string
  identity: string
  lastSeen: number
  address: string
  info: Record<string, unknown>
}

export interface PresenceStore {
  /** Batched: one transaction for all rows. */
  save(rows: readonly PresenceEntry[]): Promise<void>
  all(): Promise<PresenceEntry[]>
  saveDiscovered(rows: readonly DiscoveredEntry[]): Promise<void>
  /** Most recently seen first. */
  discovered(): Promise<DiscoveredEntry[]>
}

// ---- per-device protocol state ------------------------------------------------------------

export interface StateChange {
  device: string
  key: string
  /** undefined deletes the key. */
  value: unknown
}

export interface DeviceStateStore {
  get(device: string, key: string): Promise<unknown>
  /** Every key of a device (a gateway's cache when the device connects). */
  all(device: string): Promise<Record<string, unknown>>
  set(device: string, key: string, value: unknown): Promise<void>
  /** Several changes in one transaction. */
  setMany(changes: readonly StateChange[]): Promise<void>
}

// ---- --since last cursors -----------------------------------------------------------------

export interface CursorEntry {
  protocol: string
  cursor: unknown
  updated_at: string
  exported_total: number
}

/** A pull's intent, recorded before it renames its output into place. */
export interface PendingPull {
  id: string
  /** The machine whose disk holds temp and output (only it can tell whether the rename happened). */
  host: string
  temp: string
  output: string
  size: number
  cursors: Record<string, CursorEntry>
  createdAt: number
}

/** A device another pull holds (or nobody, when a lease ran out and was not taken again). */
export interface PullHeld {
  ok: false
  device: string
  heldBy: string
}

export interface CursorStore {
  /** Committed cursors, by device. */
  read(): Promise<Record<string, CursorEntry>>
  /**
   * Step 1 of a file commit: the pending pull's id; refused (nothing written) unless `owner` still
   * holds every device of `p.cursors`, since a pull whose lease ran out may have been overtaken.
   */
  prepare(p: Omit<PendingPull, 'id' | 'createdAt'>, owner: string): Promise<{ ok: true; id: string } | PullHeld>
  /** Step 3 (the whole commit when records went to stdout): merge the cursors and drop the pending pull, atomically. */
  commit(cursors: Record<string, CursorEntry>, pendingId?: string): Promise<void>
  /** Pending pulls written on `host`, for recovery there. */
  pendingOn(host: string): Promise<PendingPull[]>
  /** Forget a pending pull whose rename never happened. */
  drop(pendingId: string): Promise<void>
  /**
   * Leases devices to one pull (`owner`, e.g. host:pid) for `ttlMs`: ok, or the owner holding any
   * of them (nothing taken then). Holding again extends the lease.
   */
  hold(devices: readonly string[], owner: string, ttlMs: number): Promise<{ ok: true } | PullHeld>
  release(devices: readonly string[], owner: string): Promise<void>
}

// ---- gateways -----------------------------------------------------------------------------

export interface GatewayInfo {
  id: string
  host: string
  pid: number
  /** What it listens on: { http: 8090, udp: 7998, … }. */
  ports: Record<string, number | string>
  startedAt: number
  /** Lease end, ms since epoch (the store's clock). */
  leaseUntil: number
  /** What it last said about itself (`report()`: a GatewayStatus), if it did yet. */
  status?: unknown
}

export interface ReapResult {
  /** Gateways whose lease had run out, now removed. */
  gateways: string[]
  /** Idempotent commands they had delivered without an answer, queued again. */
  requeued: number[]
  /** Non-idempotent commands they had delivered without an answer, now `unknown`. */
  unknown: number[]
}

export interface GatewayRegistry {
  register(g: { host: string; pid: number; ports: Record<string, number | string>; leaseMs: number }): Promise<GatewayInfo>
  /** Extends the lease; false when it had already been reaped (the gateway must stop claiming). */
  renew(id: string, leaseMs: number): Promise<boolean>
  /** A clean stop: like being reaped, at once. */
  unregister(id: string): Promise<ReapResult>
  /** Keeps what the gateway says about itself (a GatewayStatus) for `doorctl status` on any machine. */
  report(id: string, status: unknown): Promise<void>
  /** Gateways with a live lease. */
  live(): Promise<GatewayInfo[]>
  /** Removes gateways whose lease ran out, releasing their devices and commands (see ReapResult). */
  reap(): Promise<ReapResult>
  /** This gateway holds these devices now (their socket, their latest heartbeat); the latest wins. */
  hold(gateway: string, devices: readonly string[]): Promise<void>
  /** Drops this gateway's hold (socket closed); another gateway's newer hold is kept. */
  release(gateway: string, devices: readonly string[]): Promise<void>
  /** The live holder of each device that has one. */
  holders(devices: readonly string[]): Promise<Record<string, string>>
}

/** Why a command ended `unknown`, for the person who queued it. */
export function unknownAfterDeathMessage(kind: CommandKind, gateway: string): string {
  return `gateway ${gateway} stopped after handing this ${kind} to the device and before its answer was recorded; ` +
    `not sent again, since ${kind} must not happen twice: check the door`
}

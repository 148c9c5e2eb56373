import Database from 'better-sqlite3'
import { chmodSync, mkdirSync, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomicSync } from '../util/atomic-file.js'
import type { Protocol } from '../types/driver.js'
import type { CommandKind, CommandResult, CommandState, DiscoveredRow, QueuedCommand, SpoolRecord } from '../types/gateway.js'
import { NON_IDEMPOTENT_KINDS, type ClaimOptions, type NewCommand, type StateChange } from './interface.js'
import { migrateSqlite } from './sqlite-schema.js'

type Row = Record<string, unknown>

export interface StoredRecord extends Omit<SpoolRecord, 'photo'> {
  seq: number
  photoPath?: string
}

export interface PresenceRow {
  device: string
  protocol: string
  lastSeen: number
  address: string
  info: Record<string, unknown>
  gateway?: string
}

const OPEN = "('queued', 'delivered')"

/**
 * The gateway's durable state in DOORCTL_HOME/gateway.db (SQLite, WAL, synchronous=FULL):
 * the command queue, the record spool (photos as files beside it), presence and discovered
 * devices. Every state change is one transaction, on disk before it is acknowledged.
 * The synchronous core of the embedded store (src/store/sqlite-store.ts).
 */
export class GatewayStore {
  readonly db: Database.Database
  readonly photosDir: string
  readonly path: string
  private readonly statements = new Map<string, Database.Statement>()
  private group?: { committed: Promise<void>; resolve(): void; reject(err: Error): void; after: (() => void)[] }
  private grouping = false

  constructor(home: string, opts: { readonly?: boolean } = {}) {
    this.path = join(home, 'gateway.db')
    this.photosDir = join(home, 'spool-photos')
    if (opts.readonly && !existsSync(this.path)) {
      // nothing spooled yet: an empty in-memory store answers every read
      this.db = new Database(':memory:')
    } else {
      const created = !existsSync(this.path)
      this.db = new Database(this.path, { readonly: opts.readonly === true, timeout: 10_000 })
      // protocol state holds device keys; SQLite gives its -wal and -shm files the same mode
      if (created) chmodSync(this.path, 0o600)
    }
    if (!opts.readonly) {
      this.db.pragma('journal_mode = WAL')
      this.db.pragma('synchronous = FULL')
    }
    if (!opts.readonly || !existsSync(this.path)) migrateSqlite(this.db, this.path)
  }

  /** A statement prepared once per store (preparing costs more than most of these queries). */
  prepared(sql: string): Database.Statement {
    let s = this.statements.get(sql)
    if (!s) this.statements.set(sql, (s = this.db.prepare(sql)))
    return s
  }

  close(): void {
    this.commitGroup()
    this.db.close()
  }

  // ---- group commit ------------------------------------------------------------------------

  /**
   * Runs `write` in the transaction shared by every grouped write of this turn of the event loop,
   * committed (one fsync) at its end: a thousand devices answered in the same moment cost one
   * fsync, not a thousand. Only for writes whose caller waits for `committed()` before telling
   * anyone (the gateway's HTTP answers do).
   */
  grouped<T>(write: () => T): T {
    if (!this.group) this.openGroup()
    this.grouping = true
    try {
      return write()
    } finally {
      this.grouping = false
    }
  }

  /** Resolves once every write made so far is committed; rejects if that commit failed. */
  committed(): Promise<void> {
    return this.group?.committed ?? Promise.resolve()
  }

  /** Runs `fn` once the writes made so far are committed (at once when none waits). */
  afterCommit(fn: () => void): void {
    if (this.group) this.group.after.push(fn)
    else fn()
  }

  private openGroup(): void {
    this.db.exec('BEGIN IMMEDIATE')
    let resolve!: () => void
    let reject!: (err: Error) => void
    const committed = new Promise<void>((res, rej) => {
      resolve = res
      reject = rej
    })
    committed.catch(() => {}) // a group nobody waits for must not be an unhandled rejection
    this.group = { committed, resolve, reject, after: [] }
    setImmediate(() => this.commitGroup())
  }

  /** Commits the open group now (its waiters are answered; what runs after it runs). */
  commitGroup(): void {
    const g = this.group
    if (!g) return
    this.group = undefined
    try {
      this.db.exec('COMMIT')
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK')
      g.reject(err as Error)
      return
    }
    g.resolve()
    for (const fn of g.after) fn()
  }

  /** Every other write commits on its own, after the open group: on disk in the order of the calls. */
  private write<T>(fn: () => T): T {
    if (this.group && !this.grouping) this.commitGroup()
    return fn()
  }

  // ---- command queue --------------------------------------------------------------------

  enqueue(c: NewCommand): QueuedCommand {
    return this.enqueueMany([c])[0]
  }

  /** Queues commands in one transaction, in order. */
  enqueueMany(commands: readonly NewCommand[]): QueuedCommand[] {
    const now = Date.now()
    const insert = this.prepared('INSERT INTO commands (device, protocol, kind, payload, state, created_at, expires_at, idempotent) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *')
    return this.write(this.db.transaction(() => commands.map((c) =>
      toCommand(insert.get(c.device, c.protocol, c.kind, JSON.stringify(c.payload), 'queued', now, c.expiresAt, NON_IDEMPOTENT_KINDS.has(c.kind) ? 0 : 1) as Row))))
  }

  command(id: number): QueuedCommand | undefined {
    const row = this.prepared('SELECT * FROM commands WHERE id = ?').get(id) as Row | undefined
    return row ? toCommand(row) : undefined
  }

  /** The commands with these ids that exist, in id order. */
  commands(ids: readonly number[]): QueuedCommand[] {
    if (ids.length === 0) return []
    return (this.prepared('SELECT * FROM commands WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id').all(JSON.stringify(ids)) as Row[]).map(toCommand)
  }

  /** Queued or delivered-but-unfinished commands for a device, oldest first. */
  pending(device: string): QueuedCommand[] {
    return (this.prepared(`SELECT * FROM commands WHERE device = ? AND state IN ${OPEN} ORDER BY id`).all(device) as Row[]).map(toCommand)
  }

  /** Devices with pending commands (for delivery without polling every device). */
  devicesWithPending(): string[] {
    return (this.prepared(`SELECT DISTINCT device FROM commands WHERE state IN ${OPEN}`).all() as Row[]).map((r) => String(r.device))
  }

  /** The device's oldest queued command, now delivered by `gateway` (a live one), in one IMMEDIATE transaction. */
  claim(device: string, gateway: string, opts: ClaimOptions = {}): QueuedCommand | undefined {
    const take = this.prepared(`
      UPDATE commands SET state = 'delivered', gateway = @gateway, delivered_at = @now, claims = claims + 1
      WHERE id = (
        SELECT id FROM commands
        WHERE device = @device AND state = 'queued' AND expires_at > @now
          AND (@id IS NULL OR id = @id)
          AND (@kinds IS NULL OR kind IN (SELECT value FROM json_each(@kinds)))
          AND EXISTS (SELECT 1 FROM gateways WHERE id = @gateway AND lease_until > @now)
          AND (@asHolder = 0 OR EXISTS (SELECT 1 FROM holders WHERE device = @device AND gateway = @gateway))
        ORDER BY id LIMIT 1)
      RETURNING *`)
    const params = {
      device, gateway, now: Date.now(), id: opts.id ?? null, asHolder: opts.asHolder ? 1 : 0,
      kinds: opts.kinds ? JSON.stringify([...opts.kinds]) : null,
    }
    // IMMEDIATE: the write lock first, so a claim never reads a snapshot another process is replacing
    const row = this.write(() => this.db.transaction(() => take.get(params) as Row | undefined).immediate())
    return row ? toCommand(row) : undefined
  }

  delivered(id: number): void {
    this.write(() => this.prepared("UPDATE commands SET state = 'delivered', delivered_at = ? WHERE id = ? AND state = 'queued'").run(Date.now(), id))
  }

  progress(id: number, result: CommandResult): void {
    this.write(() => this.prepared(`UPDATE commands SET result = ? WHERE id = ? AND state IN ${OPEN}`).run(JSON.stringify(result), id))
  }

  finish(id: number, state: Exclude<CommandState, 'queued' | 'delivered'>, result: CommandResult | undefined): boolean {
    const info = this.write(() => this.prepared(`UPDATE commands SET state = ?, result = COALESCE(?, result), finished_at = ? WHERE id = ? AND state IN ${OPEN}`)
      .run(state, result === undefined ? null : JSON.stringify(result), Date.now(), id))
    return info.changes > 0
  }

  /** Expire what is past its deadline; returns the ids expired. */
  expire(now = Date.now()): number[] {
    const select = this.prepared(`SELECT id FROM commands WHERE state IN ${OPEN} AND expires_at <= ?`)
    const update = this.prepared(`UPDATE commands SET state = 'expired', finished_at = ? WHERE id = ? AND state IN ${OPEN}`)
    return this.write(this.db.transaction(() => {
      const ids = (select.all(now) as Row[]).map((r) => Number(r.id))
      for (const id of ids) update.run(now, id)
      return ids
    }))
  }

  // ---- record spool ----------------------------------------------------------------------

  /** Stores a record once per (device, recordId); the photo file is written and fsynced first. */
  spool(r: SpoolRecord): boolean {
    return this.spoolMany([r])[0]
  }

  /** spool() for many records: photos first, then one transaction. One flag per record: true = new. */
  spoolMany(records: readonly SpoolRecord[]): boolean[] {
    const exists = this.prepared('SELECT 1 FROM records WHERE device = ? AND record_id = ?')
    const insert = this.prepared('INSERT OR IGNORE INTO records (device, record_id, time, data, photo_path, received_at) VALUES (?, ?, ?, ?, ?, ?)')
    const fresh = records.map((r) => (exists.get(r.device, r.recordId) ? undefined : { r, photoPath: r.photo && r.photo.length > 0 ? this.writePhoto(r) : null }))
    const now = Date.now()
    const store = (f: (typeof fresh)[number]) => {
      if (!f) return false
      const { photo: _photo, ...rest } = f.r
      return insert.run(f.r.device, f.r.recordId, f.r.time, JSON.stringify(rest), f.photoPath, now).changes > 0
    }
    // one record (the usual upload) commits by itself; several in one transaction
    return this.write(() => (fresh.length === 1 ? [store(fresh[0])] : this.db.transaction(() => fresh.map(store))()))
  }

  private writePhoto(r: SpoolRecord): string {
    const dir = join(this.photosDir, safe(r.device))
    mkdirSync(dir, { recursive: true })
    const path = join(dir, `${safe(r.recordId)}.jpg`)
    // temp + fsync + rename: a reader never sees half a photo, even when two writers race
    writeFileAtomicSync(path, r.photo!, 0o644)
    return path
  }

  /** Records of a device after `afterSeq`, in arrival order, at most `limit`. */
  records(device: string, afterSeq: number, limit: number, range: { since?: number; until?: number } = {}): StoredRecord[] {
    const rows = this.prepared('SELECT * FROM records WHERE device = ? AND seq > ? AND time >= ? AND time <= ? ORDER BY seq LIMIT ?')
      .all(device, afterSeq, range.since ?? 0, range.until ?? Number.MAX_SAFE_INTEGER, limit) as Row[]
    return rows.map(toStoredRecord)
  }

  /** Every device's records after `afterSeq`, in arrival order. */
  recordsAfter(afterSeq: number, limit: number): StoredRecord[] {
    return (this.prepared('SELECT * FROM records WHERE seq > ? ORDER BY seq LIMIT ?').all(afterSeq, limit) as Row[]).map(toStoredRecord)
  }

  lastSeq(): number {
    return (this.prepared('SELECT COALESCE(MAX(seq), 0) AS s FROM records').get() as { s: number }).s
  }

  photo(path: string): Buffer | undefined {
    try {
      return readFileSync(path)
    } catch {
      return undefined
    }
  }

  photoOf(seq: number): Buffer | undefined {
    const row = this.prepared('SELECT photo_path FROM records WHERE seq = ?').get(seq) as { photo_path: string | null } | undefined
    return row?.photo_path ? this.photo(row.photo_path) : undefined
  }

  // ---- per-device protocol state -----------------------------------------------------------

  getState(device: string, key: string): unknown {
    const row = this.prepared('SELECT value FROM device_state WHERE device = ? AND key = ?').get(device, key) as Row | undefined
    return row ? JSON.parse(String(row.value)) : undefined
  }

  allState(device: string): Record<string, unknown> {
    const rows = this.prepared('SELECT key, value FROM device_state WHERE device = ?').all(device) as Row[]
    return Object.fromEntries(rows.map((r) => [String(r.key), JSON.parse(String(r.value))]))
  }

  setState(device: string, key: string, value: unknown): void {
    this.write(() => this.putState(device, key, value))
  }

  setStates(changes: readonly StateChange[]): void {
    this.write(this.db.transaction(() => { for (const c of changes) this.putState(c.device, c.key, c.value) }))
  }

  private putState(device: string, key: string, value: unknown): void {
    if (value === undefined) this.prepared('DELETE FROM device_state WHERE device = ? AND key = ?').run(device, key)
    else this.prepared('INSERT INTO device_state (device, key, value) VALUES (?, ?, ?) ON CONFLICT(device, key) DO UPDATE SET value = excluded.value').run(device, key, JSON.stringify(value))
  }

  // ---- presence ----------------------------------------------------------------------------

  savePresence(rows: readonly PresenceRow[]): void {
    const stmt = this.prepared('INSERT INTO presence (device, protocol, last_seen, address, info, gateway) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(device) DO UPDATE SET protocol = excluded.protocol, last_seen = excluded.last_seen, address = excluded.address, info = excluded.info, gateway = excluded.gateway')
    this.write(this.db.transaction(() => { for (const r of rows) stmt.run(r.device, r.protocol, r.lastSeen, r.address, JSON.stringify(r.info), r.gateway ?? null) }))
  }

  presence(): PresenceRow[] {
    return (this.prepared('SELECT * FROM presence').all() as Row[]).map((r) => {
      const p: PresenceRow = { device: String(r.device), protocol: String(r.protocol), lastSeen: Number(r.last_seen), address: String(r.address), info: JSON.parse(String(r.info)) }
      if (typeof r.gateway === 'string') p.gateway = r.gateway
      return p
    })
  }

  saveDiscovered(rows: readonly DiscoveredRow[]): void {
    const stmt = this.prepared('INSERT INTO discovered (protocol, identity, last_seen, address, info) VALUES (?, ?, ?, ?, ?) ON CONFLICT(protocol, identity) DO UPDATE SET last_seen = excluded.last_seen, address = excluded.address, info = excluded.info')
    this.write(this.db.transaction(() => { for (const r of rows) stmt.run(r.protocol, r.identity, r.lastSeen, r.address, JSON.stringify(r.info)) }))
  }

  // ---- what the status page and metrics read -----------------------------------------------

  /** Unfinished commands per device (queued or delivered). */
  openCommandCounts(): { device: string; protocol: string; count: number }[] {
    return (this.prepared(`SELECT device, protocol, COUNT(*) AS n FROM commands WHERE state IN ${OPEN} GROUP BY device, protocol`).all() as Row[])
      .map((r) => ({ device: String(r.device), protocol: String(r.protocol), count: Number(r.n) }))
  }

  /** The newest commands created since `since` (ms), newest first, at most `limit`; payloads left out. */
  recentCommands(since: number, limit: number): QueuedCommand[] {
    // newest first by id, which follows creation: reads `limit` rows at most, whatever the table's size
    const rows = this.prepared("SELECT id, device, protocol, kind, '{}' AS payload, state, result, created_at, delivered_at, finished_at, expires_at, gateway FROM commands ORDER BY id DESC LIMIT ?").all(limit) as Row[]
    return rows.map(toCommand).filter((c) => c.createdAt >= since)
  }

  /** When each record received since `since` (ms) arrived, newest first (reads back from the end of the spool only). */
  *receivedSince(since: number): Generator<{ device: string; receivedAt: number; time: number }> {
    for (const r of this.prepared('SELECT device, received_at, time FROM records ORDER BY seq DESC').iterate() as IterableIterator<Row>) {
      if (Number(r.received_at) < since) return
      yield { device: String(r.device), receivedAt: Number(r.received_at), time: Number(r.time) }
    }
  }

  /** Records received per minute since `since` and the latest record time of each of `devices` (see RecordSpool.activity). */
  recordActivity(since: number, devices: readonly string[]): { perMinute: Record<number, number>; lastRecord: Record<string, number> } {
    const perMinute: Record<number, number> = {}
    for (const r of this.receivedSince(since)) {
      const m = Math.floor(r.receivedAt / 60_000)
      perMinute[m] = (perMinute[m] ?? 0) + 1
    }
    const lastRecord: Record<string, number> = {}
    for (const d of devices) {
      const t = this.lastRecordTime(d)
      if (t !== undefined) lastRecord[d] = t
    }
    return { perMinute, lastRecord }
  }

  /** The time of the device's latest spooled record (ms), if any. */
  lastRecordTime(device: string): number | undefined {
    const row = this.prepared('SELECT time FROM records WHERE device = ? ORDER BY seq DESC LIMIT 1').get(device) as Row | undefined
    return row ? Number(row.time) : undefined
  }

  /** Why the store cannot take a write now, or undefined: takes the write lock and lets go of it. */
  writeProblem(): string | undefined {
    // an open group commit holds the lock already: the store is being written
    if (this.db.inTransaction) return undefined
    // a writer elsewhere (records pull, a command) holds the lock briefly: wait a second for it, not the usual ten
    this.db.pragma('busy_timeout = 1000')
    try {
      this.db.exec('BEGIN IMMEDIATE')
      this.db.exec('ROLLBACK')
      return undefined
    } catch (err) {
      return (err as Error).message
    } finally {
      this.db.pragma('busy_timeout = 10000')
    }
  }

  discovered(): DiscoveredRow[] {
    return (this.prepared('SELECT * FROM discovered ORDER BY last_seen DESC').all() as Row[]).map((r) => ({ protocol: String(r.protocol), identity: String(r.identity), lastSeen: Number(r.last_seen), address: String(r.address), info: JSON.parse(String(r.info)) }))
  }
}

function toCommand(row: Row): QueuedCommand {
  const c: QueuedCommand = {
    id: Number(row.id),
    device: String(row.device),
    protocol: row.protocol as Protocol,
    kind: row.kind as CommandKind,
    payload: JSON.parse(String(row.payload)),
    state: row.state as CommandState,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
  }
  if (row.result) c.result = JSON.parse(String(row.result))
  if (row.delivered_at !== null && row.delivered_at !== undefined) c.deliveredAt = Number(row.delivered_at)
  if (row.finished_at !== null && row.finished_at !== undefined) c.finishedAt = Number(row.finished_at)
  if (typeof row.gateway === 'string') c.gateway = row.gateway
  return c
}

function toStoredRecord(row: Row): StoredRecord {
  return { ...(JSON.parse(String(row.data)) as Omit<SpoolRecord, 'photo'>), seq: Number(row.seq), photoPath: row.photo_path ? String(row.photo_path) : undefined }
}

function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_')
}

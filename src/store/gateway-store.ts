import Database from 'better-sqlite3'
import { mkdirSync, writeFileSync, existsSync, readFileSync, fsyncSync, openSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import { fsyncDir } from '../util/atomic-file.js'
import type { Protocol } from '../types/driver.js'
import type { CommandKind, CommandResult, CommandState, DiscoveredRow, QueuedCommand, SpoolRecord } from '../types/gateway.js'

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
}

/**
 * The gateway's durable state in DOORCTL_HOME/gateway.db (SQLite, WAL, synchronous=FULL):
 * the command queue, the record spool (photos as files beside it), presence and discovered
 * devices. Every state change is one transaction, on disk before it is acknowledged.
 */
export class GatewayStore {
  readonly db: Database.Database
  readonly photosDir: string

  constructor(home: string, opts: { readonly?: boolean } = {}) {
    const path = join(home, 'gateway.db')
    this.photosDir = join(home, 'spool-photos')
    if (opts.readonly && !existsSync(path)) {
      // nothing spooled yet: an empty in-memory store answers every read
      this.db = new Database(':memory:')
    } else {
      this.db = new Database(path, { readonly: opts.readonly === true, timeout: 10_000 })
    }
    if (!opts.readonly) {
      this.db.pragma('journal_mode = WAL')
      this.db.pragma('synchronous = FULL')
    }
    if (!opts.readonly || !existsSync(path)) this.migrate()
  }

  private migrate(): void {
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS commands (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        device TEXT NOT NULL, protocol TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL,
        state TEXT NOT NULL, result TEXT,
        created_at INTEGER NOT NULL, delivered_at INTEGER, finished_at INTEGER, expires_at INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS commands_open ON commands(device, state);
      CREATE TABLE IF NOT EXISTS records (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        device TEXT NOT NULL, record_id TEXT NOT NULL, time INTEGER NOT NULL, data TEXT NOT NULL,
        photo_path TEXT, received_at INTEGER NOT NULL,
        UNIQUE(device, record_id)
      );
      CREATE INDEX IF NOT EXISTS records_device ON records(device, seq);
      CREATE TABLE IF NOT EXISTS presence (
        device TEXT PRIMARY KEY, protocol TEXT NOT NULL, last_seen INTEGER NOT NULL, address TEXT NOT NULL, info TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS device_state (
        device TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(device, key)
      );
      CREATE TABLE IF NOT EXISTS discovered (
        protocol TEXT NOT NULL, identity TEXT NOT NULL, last_seen INTEGER NOT NULL, address TEXT NOT NULL, info TEXT NOT NULL,
        PRIMARY KEY(protocol, identity)
      );
    `)
  }

  close(): void {
    this.db.close()
  }

  // ---- command queue --------------------------------------------------------------------

  enqueue(c: { device: string; protocol: Protocol; kind: CommandKind; payload: Record<string, unknown>; expiresAt: number }): QueuedCommand {
    const now = Date.now()
    const info = this.db
      .prepare('INSERT INTO commands (device, protocol, kind, payload, state, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(c.device, c.protocol, c.kind, JSON.stringify(c.payload), 'queued', now, c.expiresAt)
    return this.command(Number(info.lastInsertRowid))!
  }

  command(id: number): QueuedCommand | undefined {
    const row = this.db.prepare('SELECT * FROM commands WHERE id = ?').get(id) as Row | undefined
    return row ? toCommand(row) : undefined
  }

  /** Queued or delivered-but-unfinished commands for a device, oldest first. */
  pending(device: string): QueuedCommand[] {
    return (this.db.prepare("SELECT * FROM commands WHERE device = ? AND state IN ('queued', 'delivered') ORDER BY id").all(device) as Row[]).map(toCommand)
  }

  /** Devices with pending commands (for delivery without polling every device). */
  devicesWithPending(): string[] {
    return (this.db.prepare("SELECT DISTINCT device FROM commands WHERE state IN ('queued', 'delivered')").all() as Row[]).map((r) => String(r.device))
  }

  delivered(id: number): void {
    this.db.prepare("UPDATE commands SET state = 'delivered', delivered_at = ? WHERE id = ? AND state = 'queued'").run(Date.now(), id)
  }

  progress(id: number, result: CommandResult): void {
    this.db.prepare("UPDATE commands SET result = ? WHERE id = ? AND state IN ('queued', 'delivered')").run(JSON.stringify(result), id)
  }

  finish(id: number, state: Exclude<CommandState, 'queued' | 'delivered'>, result: CommandResult | undefined): boolean {
    const info = this.db
      .prepare("UPDATE commands SET state = ?, result = COALESCE(?, result), finished_at = ? WHERE id = ? AND state IN ('queued', 'delivered')")
      .run(state, result === undefined ? null : JSON.stringify(result), Date.now(), id)
    return info.changes > 0
  }

  /** Expire what is past its deadline; returns the ids expired. */
  expire(now = Date.now()): number[] {
    const rows = this.db.prepare("SELECT id FROM commands WHERE state IN ('queued', 'delivered') AND expires_at <= ?").all(now) as Row[]
    const ids = rows.map((r) => Number(r.id))
    const stmt = this.db.prepare("UPDATE commands SET state = 'expired', finished_at = ? WHERE id = ? AND state IN ('queued', 'delivered')")
    this.db.transaction(() => { for (const id of ids) stmt.run(now, id) })()
    return ids
  }

  // ---- record spool ----------------------------------------------------------------------

  /** Stores a record once per (device, recordId); the photo file is written and fsynced first. */
  spool(r: SpoolRecord): boolean {
    const exists = this.db.prepare('SELECT 1 FROM records WHERE device = ? AND record_id = ?').get(r.device, r.recordId)
    if (exists) return false
    let photoPath: string | null = null
    if (r.photo && r.photo.length > 0) {
      const dir = join(this.photosDir, safe(r.device))
      mkdirSync(dir, { recursive: true })
      photoPath = join(dir, `${safe(r.recordId)}.jpg`)
      const fd = openSync(photoPath, 'w', 0o644)
      try {
        writeFileSync(fd, r.photo)
        fsyncSync(fd)
      } finally {
        closeSync(fd)
      }
      fsyncDir(dir)
    }
    const { photo: _photo, ...rest } = r
    const info = this.db
      .prepare('INSERT OR IGNORE INTO records (device, record_id, time, data, photo_path, received_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(r.device, r.recordId, r.time, JSON.stringify(rest), photoPath, Date.now())
    return info.changes > 0
  }

  /** Records of a device after `afterSeq`, in arrival order, at most `limit`. */
  records(device: string, afterSeq: number, limit: number, range: { since?: number; until?: number } = {}): StoredRecord[] {
    const rows = this.db
      .prepare('SELECT * FROM records WHERE device = ? AND seq > ? AND time >= ? AND time <= ? ORDER BY seq LIMIT ?')
      .all(device, afterSeq, range.since ?? 0, range.until ?? Number.MAX_SAFE_INTEGER, limit) as Row[]
    return rows.map((row) => ({ ...(JSON.parse(String(row.data)) as Omit<SpoolRecord, 'photo'>), seq: Number(row.seq), photoPath: row.photo_path ? String(row.photo_path) : undefined }))
  }

  photo(path: string): Buffer | undefined {
    try {
      return readFileSync(path)
    } catch {
      return undefined
    }
  }

  // ---- per-device protocol state -----------------------------------------------------------

  getState(device: string, key: string): unknown {
    const row = this.db.prepare('SELECT value FROM device_state WHERE device = ? AND key = ?').get(device, key) as Row | undefined
    return row ? JSON.parse(String(row.value)) : undefined
  }

  setState(device: string, key: string, value: unknown): void {
    if (value === undefined) this.db.prepare('DELETE FROM device_state WHERE device = ? AND key = ?').run(device, key)
    else this.db.prepare('INSERT INTO device_state (device, key, value) VALUES (?, ?, ?) ON CONFLICT(device, key) DO UPDATE SET value = excluded.value').run(device, key, JSON.stringify(value))
  }

  // ---- presence ----------------------------------------------------------------------------

  savePresence(rows: PresenceRow[]): void {
    const stmt = this.db.prepare('INSERT INTO presence (device, protocol, last_seen, address, info) VALUES (?, ?, ?, ?, ?) ON CONFLICT(device) DO UPDATE SET protocol = excluded.protocol, last_seen = excluded.last_seen, address = excluded.address, info = excluded.info')
    this.db.transaction(() => { for (const r of rows) stmt.run(r.device, r.protocol, r.lastSeen, r.address, JSON.stringify(r.info)) })()
  }

  presence(): PresenceRow[] {
    return (this.db.prepare('SELECT * FROM presence').all() as Row[]).map((r) => ({ device: String(r.device), protocol: String(r.protocol), lastSeen: Number(r.last_seen), address: String(r.address), info: JSON.parse(String(r.info)) }))
  }

  saveDiscovered(rows: DiscoveredRow[]): void {
    const stmt = this.db.prepare('INSERT INTO discovered (protocol, identity, last_seen, address, info) VALUES (?, ?, ?, ?, ?) ON CONFLICT(protocol, identity) DO UPDATE SET last_seen = excluded.last_seen, address = excluded.address, info = excluded.info')
    this.db.transaction(() => { for (const r of rows) stmt.run(r.protocol, r.identity, r.lastSeen, r.address, JSON.stringify(r.info)) })()
  }

  discovered(): DiscoveredRow[] {
    return (this.db.prepare('SELECT * FROM discovered ORDER BY last_seen DESC').all() as Row[]).map((r) => ({ protocol: String(r.protocol), identity: String(r.identity), lastSeen: Number(r.last_seen), address: String(r.address), info: JSON.parse(String(r.info)) }))
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
  return c
}

function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_')
}

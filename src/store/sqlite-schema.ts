import type Database from 'better-sqlite3'
import { UsageError } from '../types/errors.js'

/**
 * gateway.db's schema, versioned by SQLite's `user_version`. Version 1 is the layout doorctl
 * created before versions existed (so a gateway.db of that time, at user_version 0, passes
 * through it unchanged and keeps its queue and spool); each later entry upgrades the one before.
 */
const MIGRATIONS: readonly string[] = [
  // 1: queue, spool, presence, per-device state, discovered devices
  `
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
  `,
  // 2: who claimed a command and whether it may be sent twice; gateways, their leases and the
  // devices they hold; --since last cursors (imported from record-cursors.json once, see sqlite-cursors.ts)
  `
  ALTER TABLE commands ADD COLUMN gateway TEXT;
  ALTER TABLE commands ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE commands ADD COLUMN idempotent INTEGER NOT NULL DEFAULT 1;
  UPDATE commands SET idempotent = 0 WHERE kind IN ('open', 'reboot');
  CREATE INDEX commands_expiry ON commands(expires_at) WHERE state IN ('queued', 'delivered');
  CREATE INDEX commands_claimed ON commands(gateway) WHERE state = 'delivered';
  ALTER TABLE presence ADD COLUMN gateway TEXT;
  CREATE TABLE gateways (
    id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, ports TEXT NOT NULL,
    started_at INTEGER NOT NULL, lease_until INTEGER NOT NULL
  );
  CREATE TABLE holders (device TEXT PRIMARY KEY, gateway TEXT NOT NULL, since INTEGER NOT NULL);
  CREATE INDEX holders_gateway ON holders(gateway);
  CREATE TABLE cursors (device TEXT PRIMARY KEY, entry TEXT NOT NULL);
  CREATE TABLE pending_pulls (
    id TEXT PRIMARY KEY, host TEXT NOT NULL, temp TEXT NOT NULL, output TEXT NOT NULL, size INTEGER NOT NULL,
    cursors TEXT NOT NULL, created_at INTEGER NOT NULL
  );
  CREATE TABLE pull_holds (device TEXT PRIMARY KEY, owner TEXT NOT NULL, until INTEGER NOT NULL);
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  `,
  // 3: what each gateway last said about itself (doorctl status from any machine)
  `
  ALTER TABLE gateways ADD COLUMN status TEXT;
  `,
]

export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length

export function sqliteSchemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number
}

/** Brings gateway.db up to SQLITE_SCHEMA_VERSION in one transaction (all or nothing). */
export function migrateSqlite(db: Database.Database, where: string): void {
  if (sqliteSchemaVersion(db) === SQLITE_SCHEMA_VERSION) return
  // IMMEDIATE: two processes opening one old gateway.db at once migrate it once
  db.transaction(() => {
    const from = sqliteSchemaVersion(db)
    if (from > SQLITE_SCHEMA_VERSION) {
      throw new UsageError(`${where} was written by a newer doorctl (schema ${from}; this one knows up to ${SQLITE_SCHEMA_VERSION})`, 'upgrade doorctl')
    }
    for (let v = from; v < SQLITE_SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v])
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION}`)
  }).immediate()
}

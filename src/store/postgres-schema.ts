import type pg from 'pg'
import { UsageError } from '../types/errors.js'

/**
 * The PostgreSQL schema, versioned in its own `meta` table; every table lives in one schema
 * (default `doorctl`, `?schema=NAME` in the URL) so a database can be shared. Each entry upgrades
 * the version before it; all pending ones run in one transaction while holding an advisory lock, so
 * gateways starting together migrate once and a failed migration leaves nothing half-written.
 */
const MIGRATIONS: readonly ((s: string) => string)[] = [
  // 1: everything of issue 11's store
  (s) => `
  CREATE TABLE ${s}.devices (
    name text PRIMARY KEY, protocol text NOT NULL, tags text[] NOT NULL, entry jsonb NOT NULL, updated_at bigint NOT NULL
  );
  -- apart from the entries, so a role may read the inventory without its passwords and keys
  CREATE TABLE ${s}.device_secrets (
    name text PRIMARY KEY REFERENCES ${s}.devices(name) ON DELETE CASCADE, secrets jsonb NOT NULL
  );
  CREATE TABLE ${s}.commands (
    id bigserial PRIMARY KEY,
    device text NOT NULL, protocol text NOT NULL, kind text NOT NULL, payload jsonb NOT NULL,
    state text NOT NULL, result jsonb, idempotent boolean NOT NULL, gateway text, claims integer NOT NULL DEFAULT 0,
    created_at bigint NOT NULL, delivered_at bigint, finished_at bigint, expires_at bigint NOT NULL
  );
  CREATE INDEX commands_open ON ${s}.commands (device, id) WHERE state IN ('queued', 'delivered');
  CREATE INDEX commands_expiry ON ${s}.commands (expires_at) WHERE state IN ('queued', 'delivered');
  CREATE INDEX commands_claimed ON ${s}.commands (gateway) WHERE state = 'delivered';
  CREATE TABLE ${s}.records (
    seq bigserial PRIMARY KEY,
    device text NOT NULL, record_id text NOT NULL, time bigint NOT NULL, data jsonb NOT NULL, photo bytea,
    received_at bigint NOT NULL,
    UNIQUE (device, record_id)
  );
  CREATE INDEX records_device ON ${s}.records (device, seq);
  CREATE TABLE ${s}.presence (
    device text PRIMARY KEY, protocol text NOT NULL, last_seen bigint NOT NULL, address text NOT NULL, info jsonb NOT NULL, gateway text
  );
  CREATE TABLE ${s}.discovered (
    protocol text NOT NULL, identity text NOT NULL, last_seen bigint NOT NULL, address text NOT NULL, info jsonb NOT NULL,
    PRIMARY KEY (protocol, identity)
  );
  CREATE TABLE ${s}.device_state (device text NOT NULL, key text NOT NULL, value jsonb NOT NULL, PRIMARY KEY (device, key));
  CREATE TABLE ${s}.gateways (
    id text PRIMARY KEY, host text NOT NULL, pid integer NOT NULL, ports jsonb NOT NULL, started_at bigint NOT NULL, lease_until bigint NOT NULL
  );
  CREATE TABLE ${s}.holders (device text PRIMARY KEY, gateway text NOT NULL, since bigint NOT NULL);
  CREATE INDEX holders_gateway ON ${s}.holders (gateway);
  CREATE TABLE ${s}.cursors (device text PRIMARY KEY, entry jsonb NOT NULL);
  CREATE TABLE ${s}.pending_pulls (
    id text PRIMARY KEY, host text NOT NULL, temp text NOT NULL, output text NOT NULL, size bigint NOT NULL,
    cursors jsonb NOT NULL, created_at bigint NOT NULL
  );
  CREATE TABLE ${s}.pull_holds (device text PRIMARY KEY, owner text NOT NULL, until bigint NOT NULL);
  INSERT INTO ${s}.meta (key, value) VALUES ('inventory', '0');
  `,
  // 2: what each gateway last said about itself (doorctl status from any machine); records per minute without reading the spool
  (s) => `
  ALTER TABLE ${s}.gateways ADD COLUMN status jsonb;
  CREATE INDEX records_received ON ${s}.records (received_at);
  `,
]

export const POSTGRES_SCHEMA_VERSION = MIGRATIONS.length

/** The schema's version (0: none yet). */
export async function postgresSchemaVersion(db: pg.ClientBase | pg.Pool, s: string): Promise<number> {
  const exists = await db.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [`${s}.meta`])
  if (!exists.rows[0].t) return 0
  const r = await db.query<{ value: string }>(`SELECT value FROM ${s}.meta WHERE key = 'schema_version'`)
  return r.rows.length > 0 ? Number(r.rows[0].value) : 0
}

/**
 * Creates or upgrades the schema `schema` (`s`: its quoted identifier). A schema that holds
 * tables but no doorctl meta, or a newer version, is a wrong store: UsageError, nothing written.
 */
export async function migratePostgres(pool: pg.Pool, schema: string, s: string, where: string): Promise<void> {
  if ((await postgresSchemaVersion(pool, s)) === POSTGRES_SCHEMA_VERSION) return
  const client = await pool.connect()
  const lock = [`doorctl-schema:${schema}`]
  // locked before the transaction begins, so it sees what an opener that held the lock committed
  await client.query('SELECT pg_advisory_lock(hashtext($1))', lock)
  try {
    await client.query('BEGIN')
    const from = await postgresSchemaVersion(client, s)
    if (from === 0) {
      const foreign = await client.query('SELECT 1 FROM information_schema.tables WHERE table_schema = $1 LIMIT 1', [schema])
      if (foreign.rows.length > 0) {
        throw new UsageError(`${where}: schema "${schema}" holds tables that are not doorctl's`, 'point --store at a database (or ?schema=NAME) of doorctl\'s own')
      }
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}; CREATE TABLE ${s}.meta (key text PRIMARY KEY, value text NOT NULL)`)
    }
    if (from > POSTGRES_SCHEMA_VERSION) {
      throw new UsageError(`${where} was written by a newer doorctl (schema ${from}; this one knows up to ${POSTGRES_SCHEMA_VERSION})`, 'upgrade doorctl')
    }
    for (let v = from; v < POSTGRES_SCHEMA_VERSION; v++) await client.query(MIGRATIONS[v](s))
    await client.query(`INSERT INTO ${s}.meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [String(POSTGRES_SCHEMA_VERSION)])
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', lock).catch(() => {})
    client.release()
  }
}

/**
 * Opening a store: choosing it from a URL, migrating what exists (a gateway.db and cursor files
 * of doorctl before the store, an empty database), and refusing a wrong or unreachable store
 * with a UsageError (exit 2) that names the place and never the password.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import Database from 'better-sqlite3'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { FIXTURES, freePort, tempDir, until } from '../helpers.js'
import { pgMissing, startPostgres, type TestPostgres } from '../pg.js'
import { UsageError } from '../../src/types/errors.js'
import { GatewayStore } from '../../src/store/gateway-store.js'
import { openStore } from '../../src/store/open.js'
import { PostgresStore } from '../../src/store/postgres-store.js'
import { POSTGRES_SCHEMA_VERSION } from '../../src/store/postgres-schema.js'
import { SqliteStore } from '../../src/store/sqlite-store.js'
import { SQLITE_SCHEMA_VERSION } from '../../src/store/sqlite-schema.js'

const PHOTO = readFileSync(join(FIXTURES, 'face.jpg'))

/** gateway.db exactly as doorctl created it before the store had versions. */
const LEGACY_LAYOUT = `
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
`

function legacyHome() {
  const home = tempDir()
  const db = new Database(join(home.path, 'gateway.db'))
  db.pragma('journal_mode = WAL')
  db.exec(LEGACY_LAYOUT)
  const now = Date.now()
  const insert = db.prepare('INSERT INTO commands (device, protocol, kind, payload, state, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
  insert.run('door1', 'httpv2', 'open', '{"mode":"pulse"}', 'queued', now, now + 3_600_000)
  insert.run('door1', 'httpv2', 'upsertPeople', '{"people":[]}', 'queued', now, now + 3_600_000)
  insert.run('door2', 'httpv2', 'reboot', '{}', 'acknowledged', now, now + 3_600_000)
  const photoDir = join(home.path, 'spool-photos', 'door1')
  mkdirSync(photoDir, { recursive: true })
  writeFileSync(join(photoDir, 'r1.jpg'), PHOTO)
  const data = { recordId: 'r1', time: 1_700_000_000_000, userId: 'u1', name: 'Ann', type: 'employee', result: 'granted', direction: 'in', method: 'face', extras: {}, device: 'door1' }
  db.prepare('INSERT INTO records (device, record_id, time, data, photo_path, received_at) VALUES (?, ?, ?, ?, ?, ?)')
    .run('door1', 'r1', data.time, JSON.stringify(data), join(photoDir, 'r1.jpg'), now)
  db.prepare('INSERT INTO device_state (device, key, value) VALUES (?, ?, ?)').run('door1', 'timezone', '480')
  db.close()
  return home
}

describe('embedded store: migrations', () => {
  it('a gateway.db of today\'s layout opens at the latest version and keeps its queue, spool and state', async () => {
    const home = legacyHome()
    try {
      const store = new SqliteStore(home.path)
      expect(await store.schemaVersion()).toBe(SQLITE_SCHEMA_VERSION)
      const pending = await store.commands.pending('door1')
      expect(pending.map((c) => [c.kind, c.state])).toEqual([['open', 'queued'], ['upsertPeople', 'queued']])
      expect(pending[0].payload).toEqual({ mode: 'pulse' })
      const [rec] = await store.records.after('door1', 0, 10)
      expect(rec).toMatchObject({ recordId: 'r1', userId: 'u1', hasPhoto: true })
      expect((await store.records.photo(rec.seq))?.equals(PHOTO)).toBe(true)
      expect(await store.state.get('door1', 'timezone')).toBe(480)
      // the migrated queue works as a new one: claims, and the non-idempotent rule known per old row
      const g = await store.gateways.register({ host: 'h', pid: 1, ports: {}, leaseMs: 60_000 })
      expect((await store.commands.claim('door1', g.id))?.kind).toBe('open')
      expect((await store.commands.claim('door1', g.id))?.kind).toBe('upsertPeople')
      expect(await store.gateways.unregister(g.id)).toMatchObject({ unknown: [pending[0].id], requeued: [pending[1].id] })
      await store.records.add([{ ...rec, recordId: 'r2', photo: PHOTO }])
      await store.close()
      // today's readers (push driver, device list) still read it
      const reader = new GatewayStore(home.path, { readonly: true })
      expect(reader.records('door1', 0, 10).map((r) => r.recordId)).toEqual(['r1', 'r2'])
      reader.close()
      // and opening again migrates nothing
      const again = new SqliteStore(home.path)
      expect(await again.schemaVersion()).toBe(SQLITE_SCHEMA_VERSION)
      expect((await again.commands.get(pending[0].id))?.state).toBe('unknown')
      await again.close()
    } finally {
      home.cleanup()
    }
  })

  it('cursors of record-cursors.json are imported once; a pull a kill interrupted becomes a pending pull of this host', async () => {
    const home = tempDir()
    try {
      const entry = (seq: number) => ({ protocol: 'httpv2', cursor: { seq }, updated_at: '2026-01-01T00:00:00.000Z', exported_total: seq })
      writeFileSync(join(home.path, 'record-cursors.json'), JSON.stringify({ door1: entry(5) }))
      const pending = { temp: join(home.path, '.out.csv.tmp-1-x'), output: join(home.path, 'out.csv'), size: 3, cursors: { door2: entry(9) } }
      writeFileSync(join(home.path, 'record-cursors.pending.json'), JSON.stringify(pending))
      const store = new SqliteStore(home.path)
      expect(await store.cursors.read()).toEqual({ door1: entry(5) })
      const [p] = await store.cursors.pendingOn(hostname())
      expect(p).toMatchObject({ ...pending, host: hostname() })
      await store.cursors.commit(p.cursors, p.id)
      await store.cursors.commit({ door1: entry(6) })
      await store.close()
      // the files are left as they were, and not imported a second time
      expect(JSON.parse(readFileSync(join(home.path, 'record-cursors.pending.json'), 'utf8'))).toEqual(pending)
      const again = new SqliteStore(home.path)
      expect(await again.cursors.read()).toEqual({ door1: entry(6), door2: entry(9) })
      expect(await again.cursors.pendingOn(hostname())).toEqual([])
      await again.close()
    } finally {
      home.cleanup()
    }
  })

  it('refuses a gateway.db of a newer doorctl, and a file that is not a database, naming it and changing nothing', async () => {
    const home = tempDir()
    try {
      const path = join(home.path, 'gateway.db')
      const db = new Database(path)
      db.pragma('user_version = 99')
      db.close()
      const before = statSync(path).size
      const err = await openStore({ home: home.path }).catch((e) => e)
      expect(err).toBeInstanceOf(UsageError)
      expect(err.exitCode).toBe(2)
      expect(err.message).toContain(path)
      expect(err.message).toMatch(/newer doorctl \(schema 99/)
      expect(statSync(path).size).toBe(before)
      writeFileSync(path, 'this is not a database, just text long enough to have a header '.repeat(20))
      const err2 = await openStore({ home: home.path }).catch((e) => e)
      expect(err2).toBeInstanceOf(UsageError)
      expect(err2.message).toContain(home.path)
    } finally {
      home.cleanup()
    }
  })

  it('refuses a torn record-cursors.json, naming it, and imports nothing', async () => {
    const home = tempDir()
    try {
      writeFileSync(join(home.path, 'record-cursors.json'), '{"door1": {"protocol"')
      const err = await openStore({ home: home.path }).catch((e) => e)
      expect(err).toBeInstanceOf(UsageError)
      expect(err.message).toContain(join(home.path, 'record-cursors.json'))
      writeFileSync(join(home.path, 'record-cursors.json'), '{}')
      const store = await openStore({ home: home.path })
      expect(await store.cursors.read()).toEqual({})
      await store.close()
    } finally {
      home.cleanup()
    }
  })
})

describe('choosing the store from a URL', () => {
  it('no URL: the embedded store in DOORCTL_HOME', async () => {
    const home = tempDir()
    try {
      const store = await openStore({ home: home.path, url: '  ' })
      expect(store.kind).toBe('sqlite')
      expect(store.description).toBe(`sqlite ${join(home.path, 'gateway.db')}`)
      // device keys live in its protocol state
      expect(statSync(join(home.path, 'gateway.db')).mode & 0o777).toBe(0o600)
      await store.close()
    } finally {
      home.cleanup()
    }
  })

  it('an unknown scheme or a malformed URL is a usage error that never repeats the password', async () => {
    for (const url of ['mysql://admin:hunter2@127.0.0.1/doors', 'postgres://admin:hunter2@[bad', 'admin:hunter2']) {
      const err = await openStore({ home: '/nonexistent', url }).catch((e) => e)
      expect(err).toBeInstanceOf(UsageError)
      expect(`${err.message} ${err.suggestion}`).not.toContain('hunter2')
    }
    const bad = await openStore({ home: '/nonexistent', url: 'postgres://admin:hunter2@127.0.0.1/doors?schema=Bad-Name' }).catch((e) => e)
    expect(bad).toBeInstanceOf(UsageError)
    expect(bad.message).toContain('postgres://admin@127.0.0.1/doors')
    expect(bad.message).not.toContain('hunter2')
  })

  it('an unreachable PostgreSQL: usage error naming the host and port, not the password, quickly', async () => {
    const port = await freePort()
    const err = await openStore({ home: '/nonexistent', url: `postgres://doorctl:hunter2@127.0.0.1:${port}/doorctl`, connectTimeoutMs: 2000 }).catch((e) => e)
    expect(err).toBeInstanceOf(UsageError)
    expect(err.exitCode).toBe(2)
    expect(err.message).toContain(`postgres://doorctl@127.0.0.1:${port}/doorctl`)
    expect(err.message).toMatch(/ECONNREFUSED/)
    expect(`${err.message} ${err.suggestion} ${err.stack}`).not.toContain('hunter2')
  })
})

const missing = pgMissing()
if (missing) console.warn(`store open: ${missing}, so the PostgreSQL tests here are skipped`)

describe.skipIf(missing !== undefined)('PostgreSQL store: opening, wrong stores, secrets, a server restart', () => {
  let server: TestPostgres
  beforeAll(async () => { server = await startPostgres() })
  afterAll(() => server?.destroy())

  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: server.url() })
    await c.connect()
    try {
      return await fn(c)
    } finally {
      await c.end()
    }
  }

  it('creates its schema in an empty database, and a second opener finds it ready', async () => {
    const [a, b] = await Promise.all([openStore({ home: '/x', url: server.url('fresh_one') }), openStore({ home: '/x', url: server.url('fresh_one') })])
    expect(a.kind).toBe('postgres')
    expect(await a.schemaVersion()).toBe(POSTGRES_SCHEMA_VERSION)
    expect(await b.schemaVersion()).toBe(POSTGRES_SCHEMA_VERSION)
    expect(a.description).toBe(`postgres://doorctl@127.0.0.1:${server.port}/postgres?schema=fresh_one`)
    await a.close()
    await b.close()
  })

  it('a wrong password: usage error naming the host, never the password', async () => {
    const url = server.url().replace(server.password, 'not-the-password')
    const err = await openStore({ home: '/x', url }).catch((e) => e)
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toContain(`127.0.0.1:${server.port}`)
    expect(err.message).toMatch(/password authentication failed/)
    expect(`${err.message} ${err.suggestion} ${err.stack}`).not.toContain('not-the-password')
  })

  it('a schema holding someone else\'s tables, or a newer doorctl\'s, is refused and left as it was', async () => {
    await admin(async (c) => {
      await c.query('CREATE SCHEMA theirs; CREATE TABLE theirs.devices (id int)')
    })
    const err = await openStore({ home: '/x', url: server.url('theirs') }).catch((e) => e)
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toMatch(/holds tables that are not doorctl's/)
    const tables = await admin((c) => c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'theirs'"))
    expect(tables.rows.map((r) => r.table_name)).toEqual(['devices'])

    const store = await openStore({ home: '/x', url: server.url('future') })
    await store.close()
    await admin((c) => c.query("UPDATE future.meta SET value = '99' WHERE key = 'schema_version'"))
    const newer = await openStore({ home: '/x', url: server.url('future') }).catch((e) => e)
    expect(newer).toBeInstanceOf(UsageError)
    expect(newer.message).toMatch(/newer doorctl \(schema 99/)
  })

  it('keeps device secrets in their own table, so a role can be given the inventory without them', async () => {
    const store = await openStore({ home: '/x', url: server.url('secrets') })
    await store.devices.save([{ name: 'gate', protocol: 'openapi', tags: ['a'], host: '127.0.0.1', port: 8899, password: 'pw-123' }])
    const rows = await admin((c) => c.query('SELECT d.entry::text AS entry, s.secrets::text AS secrets FROM secrets.devices d JOIN secrets.device_secrets s USING (name)'))
    expect(rows.rows[0].entry).not.toContain('pw-123')
    expect(JSON.parse(rows.rows[0].secrets)).toEqual({ password: 'pw-123' })
    await store.devices.save([{ name: 'gate', protocol: 'openapi', tags: ['a'], host: '127.0.0.1', port: 8899 }])
    expect((await admin((c) => c.query('SELECT count(*)::int AS n FROM secrets.device_secrets'))).rows[0].n).toBe(0)
    await store.close()
  })

  it('the server stops for a while: calls fail meanwhile, then the store and its notifications come back by themselves', async () => {
    const store = await PostgresStore.open({ url: server.url('restart'), pollMs: 50, connectTimeoutMs: 2000 })
    const other = await PostgresStore.open({ url: server.url('restart'), connectTimeoutMs: 2000 })
    let reconnected = 0
    const queued: string[] = []
    store.subscribe('reconnected', () => reconnected++)
    store.subscribe('queued', (d) => queued.push(...d))
    await store.listening()
    server.stop()
    try {
      await expect(store.commands.enqueue([{ device: 'd1', protocol: 'httpv2', kind: 'open', payload: {}, expiresAt: Date.now() + 60_000 }])).rejects.toThrow()
      await expect(store.records.add([{ device: 'd1', recordId: 'r1', time: 1, userId: '', name: '', type: '', result: '', direction: '', method: '', extras: {} }])).rejects.toThrow()
    } finally {
      server.start()
    }
    await until(async () => (await store.commands.pending('d1').then(() => true, () => false)), 20_000, 'the store to answer again')
    expect(await store.commands.pending('d1')).toEqual([])
    await until(() => reconnected > 0, 20_000, 'the listener to reconnect')
    await store.listening()
    await until(async () => (await other.commands.enqueue([{ device: 'd2', protocol: 'httpv2', kind: 'info', payload: {}, expiresAt: Date.now() + 60_000 }]).then(() => true, () => false)), 20_000, 'the other instance to answer again')
    await until(() => queued.includes('d2'), 10_000, 'a notification after the restart')
    await store.close()
    await other.close()
  })
})

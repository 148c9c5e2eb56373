import pg from 'pg'
import { UsageError } from '../types/errors.js'
import { SECRET_FIELDS } from './inventory.js'
import type { DeviceEntry, Logger, Protocol } from '../types/driver.js'
import type { CommandKind, CommandState, QueuedCommand } from '../types/gateway.js'
import { StoreEventHub } from './events.js'
import {
  NON_IDEMPOTENT_KINDS, unknownAfterDeathMessage,
  type CommandQueue, type CursorEntry, type CursorStore, type DeviceStateStore, type GatewayInfo, type GatewayRegistry,
  type InventoryStore, type PresenceStore, type ReapResult, type RecordSpool, type SpooledRecord, type Store, type StoreEvents,
} from './interface.js'
import { migratePostgres, postgresSchemaVersion } from './postgres-schema.js'
import { PostgresListener } from './postgres-listener.js'
import { FinalWaiters } from './waiters.js'

type Row = Record<string, any>

/** The store's clock for leases (ms): gateways on several machines need not agree on the time. */
const NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint'
const OPEN = "('queued', 'delivered')"
/** NOTIFY payloads must stay under 8000 bytes. */
const NOTIFY_CHUNK = 6000

export interface PostgresStoreOptions {
  url: string
  /** How often waitFinal checks by itself, besides notifications (ms). */
  pollMs?: number
  connectTimeoutMs?: number
  /** Connections in the pool (besides one for LISTEN when something subscribes). */
  poolSize?: number
  log?: Logger
}

/** What a postgres:// URL means to doorctl: pg's connection string, the schema, a printable form. */
export function parsePostgresUrl(url: string): { connectionString: string; schema: string; description: string } {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    // the text may hold a password: never repeat it
    throw new UsageError('the store URL is not a valid URL', 'e.g. postgres://doorctl@db.example:5432/doorctl')
  }
  const schema = u.searchParams.get('schema') ?? 'doorctl'
  u.searchParams.delete('schema')
  const description = `postgres://${u.username ? `${decodeURIComponent(u.username)}@` : ''}${u.host}${u.pathname}${schema === 'doorctl' ? '' : `?schema=${schema}`}`
  if (!/^[a-z_][a-z0-9_]{0,39}$/.test(schema)) throw new UsageError(`${description}: "${schema}" is not a schema name doorctl uses (lower-case letters, digits, _; at most 40)`)
  return { connectionString: u.toString(), schema, description }
}

/**
 * The shared store: every gateway and command line with the URL sees one inventory, queue, spool,
 * cursors and protocol state. Pooled connections; every multi-step change one transaction;
 * claims with FOR UPDATE SKIP LOCKED; records unique per (device, record id), photos as bytea;
 * changes announced with NOTIFY (see PostgresListener).
 * Client: `pg` (node-postgres) rather than `postgres` (porsager): a transaction is an explicit
 * BEGIN … COMMIT on a connection checked out of the pool, LISTEN is a plain dedicated client whose
 * reconnection we control, errors carry PostgreSQL's codes, and it is pure JavaScript with types.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres'
  readonly description: string
  readonly devices: InventoryStore
  readonly commands: CommandQueue
  readonly records: RecordSpool
  readonly presence: PresenceStore
  readonly state: DeviceStateStore
  readonly cursors: CursorStore
  readonly gateways: GatewayRegistry
  private readonly hub = new StoreEventHub()
  private readonly waiters: FinalWaiters
  private readonly listener: PostgresListener
  private readonly s: string
  private closed = false

  private constructor(private readonly pool: pg.Pool, readonly schema: string, description: string, private readonly connectionString: string, opts: PostgresStoreOptions) {
    this.description = description
    this.s = pg.escapeIdentifier(schema)
    this.listener = new PostgresListener({
      connectionString, channels: { queued: this.channel('queued'), final: this.channel('final'), inventory: this.channel('inventory') },
      hub: this.hub, log: opts.log, connectTimeoutMs: opts.connectTimeoutMs,
    })
    this.waiters = new FinalWaiters((ids) => this.fetchCommands(ids), opts.pollMs ?? 1000)
    this.hub.subscribe('final', (ids) => this.waiters.notify(ids))
    this.devices = this.inventory()
    this.commands = this.queue()
    this.records = this.spool()
    this.presence = this.presenceStore()
    this.state = this.stateStore()
    this.cursors = this.cursorStore()
    this.gateways = this.registry()
  }

  /** Connects, creates or migrates the schema; any failure is a UsageError naming the host (never the password). */
  static async open(opts: PostgresStoreOptions): Promise<PostgresStore> {
    const { connectionString, schema, description } = parsePostgresUrl(opts.url)
    const pool = new pg.Pool({
      connectionString,
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
      idleTimeoutMillis: 30_000,
      types: { getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 ? Number : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser },
    })
    // a connection broken by a restarting server must not bring the process down, idle (pool
    // 'error') or checked out (its own 'error', e.g. between two statements of a transaction)
    const lost = (err: Error) => opts.log?.warn('store connection lost', { store: description, error: err.message })
    pool.on('error', lost)
    pool.on('connect', (client) => client.on('error', lost))
    try {
      await migratePostgres(pool, schema, pg.escapeIdentifier(schema), description)
    } catch (err) {
      await pool.end().catch(() => {})
      if (err instanceof UsageError) throw err
      throw new UsageError(`cannot open the store ${description}: ${reasonOf(err)}`, 'check the host, port, user, password and database of --store (or DOORCTL_STORE), and that PostgreSQL runs there')
    }
    return new PostgresStore(pool, schema, description, connectionString, opts)
  }

  private channel(name: string): string {
    return `${this.schema}:${name}`
  }

  async schemaVersion(): Promise<number> {
    return postgresSchemaVersion(this.pool, this.s)
  }

  subscribe<E extends keyof StoreEvents>(event: E, listener: StoreEvents[E]): () => void {
    this.listener.start()
    return this.hub.subscribe(event, listener)
  }

  listening(): Promise<void> {
    this.listener.start()
    return this.listener.ready()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.waiters.rejectAll(new Error('the store was closed'))
    await this.listener.stop()
    await this.pool.end()
  }

  private async q<R extends Row = Row>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await this.pool.query<R>(sql, params)).rows
  }

  /** One transaction on one pooled connection; rolled back on error, or when `keep` says so. */
  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>, keep: (out: T) => boolean = () => true): Promise<T> {
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      const out = await fn(client)
      await client.query(keep(out) ? 'COMMIT' : 'ROLLBACK')
      return out
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }

  /** NOTIFY in chunks that fit; inside a transaction they go out when it commits. */
  private async notify(db: pg.ClientBase | pg.Pool, event: 'queued' | 'final' | 'inventory', items: readonly (string | number)[] = []): Promise<void> {
    const chunks: (string | number)[][] = [[]]
    let size = 0
    for (const it of items) {
      const len = String(it).length + 3
      if (size + len > NOTIFY_CHUNK && chunks[chunks.length - 1].length > 0) {
        chunks.push([])
        size = 0
      }
      chunks[chunks.length - 1].push(it)
      size += len
    }
    if (event !== 'inventory' && items.length === 0) return
    for (const c of chunks) await db.query('SELECT pg_notify($1, $2)', [this.channel(event), JSON.stringify(c)])
  }

  private fetchCommands(ids: readonly number[]): Promise<QueuedCommand[]> {
    return this.q(`SELECT * FROM ${this.s}.commands WHERE id = ANY($1::bigint[]) ORDER BY id`, [ids]).then((rows) => rows.map(toCommand))
  }

  // ---- inventory ------------------------------------------------------------------------

  private inventory(): InventoryStore {
    const s = this.s
    const read = async (where: string, params: unknown[]) => {
      const rows = await this.q(`SELECT d.entry, x.secrets FROM ${s}.devices d LEFT JOIN ${s}.device_secrets x ON x.name = d.name ${where}`, params)
      return rows.map((r) => ({ ...r.entry, ...(r.secrets ?? {}) }) as DeviceEntry)
    }
    return {
      all: async () => (await read('', [])).sort((a, b) => a.name.localeCompare(b.name)),
      get: async (name) => (await read('WHERE d.name = $1', [name]))[0],
      save: (entries) => this.tx(async (c) => {
        if (entries.length === 0) return
        const byName = new Map(entries.map((e) => [e.name, e]))
        const list = [...byName.values()]
        const split = list.map((e) => {
          const entry: Record<string, unknown> = { ...e }
          const secrets: Record<string, unknown> = {}
          for (const f of SECRET_FIELDS) {
            if (entry[f] !== undefined) secrets[f] = entry[f]
            delete entry[f]
          }
          return { entry, secrets }
        })
        await c.query(`
          INSERT INTO ${s}.devices (name, protocol, tags, entry, updated_at)
          SELECT n, p, ARRAY(SELECT jsonb_array_elements_text(t::jsonb)), e::jsonb, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(n, p, t, e)
          ON CONFLICT (name) DO UPDATE SET protocol = excluded.protocol, tags = excluded.tags, entry = excluded.entry, updated_at = excluded.updated_at`,
        [list.map((e) => e.name), list.map((e) => e.protocol), list.map((e) => JSON.stringify(e.tags ?? [])), split.map((x) => JSON.stringify(x.entry)), Date.now()])
        const withSecrets = list.filter((_, i) => Object.keys(split[i].secrets).length > 0)
        await c.query(`DELETE FROM ${s}.device_secrets WHERE name = ANY($1::text[])`, [list.map((e) => e.name)])
        if (withSecrets.length > 0) {
          await c.query(`INSERT INTO ${s}.device_secrets (name, secrets) SELECT * FROM unnest($1::text[], $2::jsonb[])`,
            [withSecrets.map((e) => e.name), split.filter((x) => Object.keys(x.secrets).length > 0).map((x) => JSON.stringify(x.secrets))])
        }
        await this.bumpInventory(c)
      }),
      remove: (names) => this.tx(async (c) => {
        await c.query(`DELETE FROM ${s}.devices WHERE name = ANY($1::text[])`, [names])
        await this.bumpInventory(c)
      }),
      stamp: async () => String((await this.q(`SELECT value FROM ${s}.meta WHERE key = 'inventory'`))[0]?.value ?? '0'),
    }
  }

  private async bumpInventory(c: pg.ClientBase): Promise<void> {
    await c.query(`UPDATE ${this.s}.meta SET value = (value::bigint + 1)::text WHERE key = 'inventory'`)
    await this.notify(c, 'inventory')
  }

  // ---- command queue --------------------------------------------------------------------

  private queue(): CommandQueue {
    const s = this.s
    return {
      enqueue: (commands) => {
        if (commands.length === 0) return Promise.resolve([])
        return this.tx(async (c) => {
          const rows = await c.query(`
            INSERT INTO ${s}.commands (device, protocol, kind, payload, state, idempotent, created_at, expires_at)
            SELECT d, p, k, pl::jsonb, 'queued', i, $7, e
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::bigint[]) WITH ORDINALITY AS u(d, p, k, pl, i, e, n)
            ORDER BY n
            RETURNING *`,
          [commands.map((x) => x.device), commands.map((x) => x.protocol), commands.map((x) => x.kind), commands.map((x) => JSON.stringify(x.payload)),
            commands.map((x) => !NON_IDEMPOTENT_KINDS.has(x.kind)), commands.map((x) => x.expiresAt), Date.now()])
          await this.notify(c, 'queued', [...new Set(commands.map((x) => x.device))])
          return rows.rows.map(toCommand).sort((a, b) => a.id - b.id)
        })
      },
      get: async (id) => (await this.fetchCommands([id]))[0],
      getMany: (ids) => this.fetchCommands(ids),
      pending: async (device) => (await this.q(`SELECT * FROM ${s}.commands WHERE device = $1 AND state IN ${OPEN} ORDER BY id`, [device])).map(toCommand),
      devicesWithPending: async () => (await this.q(`SELECT DISTINCT device FROM ${s}.commands WHERE state IN ${OPEN}`)).map((r) => String(r.device)),
      claim: async (device, gateway, opts = {}) => {
        const rows = await this.q(`
          UPDATE ${s}.commands SET state = 'delivered', gateway = $2, delivered_at = $3, claims = claims + 1
          WHERE id = (
            SELECT id FROM ${s}.commands
            WHERE device = $1 AND state = 'queued' AND expires_at > $3
              AND ($4::text[] IS NULL OR kind = ANY($4::text[])) AND ($5::bigint IS NULL OR id = $5)
            ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
          AND EXISTS (SELECT 1 FROM ${s}.gateways WHERE id = $2 AND lease_until > ${NOW_MS})
          AND (NOT $6 OR EXISTS (SELECT 1 FROM ${s}.holders WHERE device = $1 AND gateway = $2))
          RETURNING *`,
        [device, gateway, Date.now(), opts.kinds ? [...opts.kinds] : null, opts.id ?? null, opts.asHolder === true])
        return rows[0] ? toCommand(rows[0]) : undefined
      },
      progress: async (id, result) => {
        await this.q(`UPDATE ${s}.commands SET result = $2 WHERE id = $1 AND state IN ${OPEN}`, [id, JSON.stringify(result)])
      },
      finish: async (id, state, result) => {
        // one statement: the NOTIFY goes out with the commit
        const rows = await this.q(`
          WITH f AS (
            UPDATE ${s}.commands SET state = $2, result = COALESCE($3::jsonb, result), finished_at = $4 WHERE id = $1 AND state IN ${OPEN} RETURNING id)
          SELECT id, pg_notify($5, json_build_array(id)::text) FROM f`,
        [id, state, result === undefined ? null : JSON.stringify(result), Date.now(), this.channel('final')])
        return rows.length > 0
      },
      expire: async (now = Date.now()) => {
        const rows = await this.q(`UPDATE ${s}.commands SET state = 'expired', finished_at = $1 WHERE state IN ${OPEN} AND expires_at <= $1 RETURNING id`, [now])
        const ids = rows.map((r) => Number(r.id))
        // committed already; the announcement is a hint (waiters also poll)
        await this.notify(this.pool, 'final', ids).catch(() => {})
        return ids
      },
      waitFinal: (ids, signal) => {
        this.listener.start()
        return this.waiters.wait(ids, signal)
      },
      openCounts: async () => (await this.q(`SELECT device, protocol, COUNT(*) AS n FROM ${s}.commands WHERE state IN ${OPEN} GROUP BY device, protocol`))
        .map((r) => ({ device: String(r.device), protocol: String(r.protocol), count: Number(r.n) })),
      // newest first by id, which follows creation: reads `limit` rows at most, whatever the table's size
      recent: async (since, limit) => (await this.q(`
        SELECT id, device, protocol, kind, '{}'::jsonb AS payload, state, result, created_at, delivered_at, finished_at, expires_at, gateway
        FROM ${s}.commands ORDER BY id DESC LIMIT $1`, [limit])).map(toCommand).filter((c) => c.createdAt >= since),
    }
  }

  // ---- record spool ---------------------------------------------------------------------

  private spool(): RecordSpool {
    const s = this.s
    const select = `SELECT seq, data, photo IS NOT NULL AS has_photo FROM ${s}.records`
    const toSpooled = (r: Row): SpooledRecord => ({ ...r.data, seq: Number(r.seq), hasPhoto: r.has_photo === true })
    return {
      add: (records) => {
        if (records.length === 0) return Promise.resolve([])
        return this.tx(async (c) => {
          // sequence numbers in commit order: a reader paging by seq never passes a record still being committed
          await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`doorctl-spool:${this.schema}`])
          const stored = await c.query(`
            INSERT INTO ${s}.records (device, record_id, time, data, photo, received_at)
            SELECT d, r, t, x::jsonb, p, $6 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bytea[]) WITH ORDINALITY AS u(d, r, t, x, p, n)
            ORDER BY n
            ON CONFLICT (device, record_id) DO NOTHING
            RETURNING device, record_id`,
          [records.map((r) => r.device), records.map((r) => r.recordId), records.map((r) => r.time),
            records.map(({ photo: _photo, ...rest }) => JSON.stringify(rest)), records.map((r) => (r.photo && r.photo.length > 0 ? r.photo : null)), Date.now()])
          const fresh = new Set(stored.rows.map((r) => `${r.device}\u0000${r.record_id}`))
          // the first of duplicates within one batch is the new one
          return records.map((r) => fresh.delete(`${r.device}\u0000${r.recordId}`))
        })
      },
      after: async (device, afterSeq, limit, range = {}) =>
        (await this.q(`${select} WHERE device = $1 AND seq > $2 AND time >= $3 AND time <= $4 ORDER BY seq LIMIT $5`,
          [device, afterSeq, range.since ?? 0, range.until ?? Number.MAX_SAFE_INTEGER, limit])).map(toSpooled),
      afterAll: async (afterSeq, limit) => (await this.q(`${select} WHERE seq > $1 ORDER BY seq LIMIT $2`, [afterSeq, limit])).map(toSpooled),
      lastSeq: async () => Number((await this.q(`SELECT COALESCE(MAX(seq), 0) AS s FROM ${s}.records`))[0].s),
      photo: async (seq) => (await this.q(`SELECT photo FROM ${s}.records WHERE seq = $1`, [seq]))[0]?.photo ?? undefined,
      activity: async (since, devices) => {
        const [minutes, last] = await Promise.all([
          this.q(`SELECT received_at / 60000 AS m, COUNT(*) AS n FROM ${s}.records WHERE received_at >= $1 GROUP BY 1`, [since]),
          // one index probe per device (records_device), however large the spool
          this.q(`SELECT u.d AS device, r.time FROM unnest($1::text[]) AS u(d)
            CROSS JOIN LATERAL (SELECT time FROM ${s}.records WHERE device = u.d ORDER BY seq DESC LIMIT 1) r`, [devices]),
        ])
        return {
          perMinute: Object.fromEntries(minutes.map((r) => [Number(r.m), Number(r.n)])),
          lastRecord: Object.fromEntries(last.map((r) => [String(r.device), Number(r.time)])),
        }
      },
    }
  }

  // ---- presence and discovered devices ----------------------------------------------------

  private presenceStore(): PresenceStore {
    const s = this.s
    return {
      save: async (rows) => {
        const list = [...new Map(rows.map((r) => [r.device, r])).values()]
        if (list.length === 0) return
        await this.q(`
          INSERT INTO ${s}.presence (device, protocol, last_seen, address, info, gateway)
          SELECT d, p, l, a, i::jsonb, g FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[]) AS u(d, p, l, a, i, g)
          ON CONFLICT (device) DO UPDATE SET protocol = excluded.protocol, last_seen = excluded.last_seen, address = excluded.address, info = excluded.info, gateway = excluded.gateway`,
        [list.map((r) => r.device), list.map((r) => r.protocol), list.map((r) => r.lastSeen), list.map((r) => r.address), list.map((r) => JSON.stringify(r.info)), list.map((r) => r.gateway ?? null)])
      },
      all: async () => (await this.q(`SELECT * FROM ${s}.presence`)).map((r) => {
        const p = { device: String(r.device), protocol: String(r.protocol), lastSeen: Number(r.last_seen), address: String(r.address), info: r.info as Record<string, unknown> }
        return r.gateway ? { ...p, gateway: String(r.gateway) } : p
      }),
      saveDiscovered: async (rows) => {
        const list = [...new Map(rows.map((r) => [`${r.protocol}:${r.identity}`, r])).values()]
        if (list.length === 0) return
        await this.q(`
          INSERT INTO ${s}.discovered (protocol, identity, last_seen, address, info)
          SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::jsonb[])
          ON CONFLICT (protocol, identity) DO UPDATE SET last_seen = excluded.last_seen, address = excluded.address, info = excluded.info`,
        [list.map((r) => r.protocol), list.map((r) => r.identity), list.map((r) => r.lastSeen), list.map((r) => r.address), list.map((r) => JSON.stringify(r.info))])
      },
      discovered: async () => (await this.q(`SELECT * FROM ${s}.discovered ORDER BY last_seen DESC`)).map((r) => ({
        protocol: String(r.protocol), identity: String(r.identity), lastSeen: Number(r.last_seen), address: String(r.address), info: r.info as Record<string, unknown>,
      })),
    }
  }

  // ---- per-device protocol state ----------------------------------------------------------

  private stateStore(): DeviceStateStore {
    const s = this.s
    const apply = async (db: pg.ClientBase | pg.Pool, changes: readonly { device: string; key: string; value: unknown }[]) => {
      const last = [...new Map(changes.map((c) => [`${c.device}\u0000${c.key}`, c])).values()]
      const del = last.filter((c) => c.value === undefined)
      const put = last.filter((c) => c.value !== undefined)
      if (del.length > 0) {
        await db.query(`DELETE FROM ${s}.device_state d USING unnest($1::text[], $2::text[]) AS u(dev, k) WHERE d.device = u.dev AND d.key = u.k`,
          [del.map((c) => c.device), del.map((c) => c.key)])
      }
      if (put.length > 0) {
        await db.query(`
          INSERT INTO ${s}.device_state (device, key, value) SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])
          ON CONFLICT (device, key) DO UPDATE SET value = excluded.value`,
        [put.map((c) => c.device), put.map((c) => c.key), put.map((c) => JSON.stringify(c.value))])
      }
    }
    return {
      get: async (device, key) => (await this.q(`SELECT value FROM ${s}.device_state WHERE device = $1 AND key = $2`, [device, key]))[0]?.value,
      all: async (device) => Object.fromEntries((await this.q(`SELECT key, value FROM ${s}.device_state WHERE device = $1`, [device])).map((r) => [String(r.key), r.value])),
      set: (device, key, value) => apply(this.pool, [{ device, key, value }]),
      setMany: (changes) => this.tx((c) => apply(c, changes)),
    }
  }

  // ---- --since last cursors --------------------------------------------------------------

  private cursorStore(): CursorStore {
    const s = this.s
    return {
      read: async () => Object.fromEntries((await this.q(`SELECT device, entry FROM ${s}.cursors`)).map((r) => [String(r.device), r.entry as CursorEntry])),
      prepare: (p, owner) => this.tx(async (c) => {
        const devices = Object.keys(p.cursors)
        // locked, so the leases cannot be taken over before this pull's intent is recorded
        const held = await c.query(`SELECT device, owner, until > $2 AS live FROM ${s}.pull_holds WHERE device = ANY($1::text[]) FOR UPDATE`, [devices, Date.now()])
        const by = new Map(held.rows.map((r) => [String(r.device), r]))
        for (const device of devices) {
          const h = by.get(device)
          if (!h || h.owner !== owner || !h.live) return { ok: false as const, device, heldBy: h?.live ? String(h.owner) : 'nobody (the lease ran out)' }
        }
        const rows = await c.query(`INSERT INTO ${s}.pending_pulls (id, host, temp, output, size, cursors, created_at) VALUES (gen_random_uuid()::text, $1, $2, $3, $4, $5, $6) RETURNING id`,
          [p.host, p.temp, p.output, p.size, JSON.stringify(p.cursors), Date.now()])
        return { ok: true as const, id: String(rows.rows[0].id) }
      }),
      commit: (cursors, pendingId) => this.tx(async (c) => {
        const list = Object.entries(cursors)
        if (list.length > 0) {
          await c.query(`INSERT INTO ${s}.cursors (device, entry) SELECT * FROM unnest($1::text[], $2::jsonb[]) ON CONFLICT (device) DO UPDATE SET entry = excluded.entry`,
            [list.map(([d]) => d), list.map(([, e]) => JSON.stringify(e))])
        }
        if (pendingId) await c.query(`DELETE FROM ${s}.pending_pulls WHERE id = $1`, [pendingId])
      }),
      pendingOn: async (host) => (await this.q(`SELECT * FROM ${s}.pending_pulls WHERE host = $1 ORDER BY created_at`, [host])).map((r) => ({
        id: String(r.id), host: String(r.host), temp: String(r.temp), output: String(r.output), size: Number(r.size), cursors: r.cursors, createdAt: Number(r.created_at),
      })),
      drop: async (id) => { await this.q(`DELETE FROM ${s}.pending_pulls WHERE id = $1`, [id]) },
      hold: (devices, owner, ttlMs) => this.tx(async (c) => {
        const wanted = [...new Set(devices)]
        const now = Date.now()
        // taken: free rows, expired ones, and our own; a live lease of another owner is left alone
        const taken = await c.query(`
          INSERT INTO ${s}.pull_holds (device, owner, until) SELECT d, $2, $3 FROM unnest($1::text[]) AS u(d)
          ON CONFLICT (device) DO UPDATE SET owner = excluded.owner, until = excluded.until
          WHERE ${s}.pull_holds.owner = excluded.owner OR ${s}.pull_holds.until <= $4
          RETURNING device`, [wanted, owner, now + ttlMs, now])
        if (taken.rows.length === wanted.length) return { ok: true as const }
        const got = new Set(taken.rows.map((r) => String(r.device)))
        const device = wanted.find((d) => !got.has(d))!
        const holder = await c.query(`SELECT owner FROM ${s}.pull_holds WHERE device = $1`, [device])
        return { ok: false as const, heldBy: String(holder.rows[0]?.owner ?? 'another pull'), device }
      }, (out) => out.ok), // all or none
      release: async (devices, owner) => { await this.q(`DELETE FROM ${s}.pull_holds WHERE device = ANY($1::text[]) AND owner = $2`, [devices, owner]) },
    }
  }

  // ---- gateways -------------------------------------------------------------------------

  private registry(): GatewayRegistry {
    const s = this.s
    const toInfo = (r: Row): GatewayInfo => ({
      id: String(r.id), host: String(r.host), pid: Number(r.pid), ports: r.ports, startedAt: Number(r.started_at), leaseUntil: Number(r.lease_until),
      ...(r.status ? { status: r.status } : {}),
    })
    /** Removes `dead` gateways (already locked or chosen) and settles every delivered command whose gateway is gone. */
    const leave = async (c: pg.PoolClient, dead: string[]): Promise<ReapResult> => {
      const gone = dead.length > 0 ? (await c.query(`DELETE FROM ${s}.gateways WHERE id = ANY($1::text[]) RETURNING id`, [dead])).rows.map((r) => String(r.id)) : []
      if (gone.length > 0) await c.query(`DELETE FROM ${s}.holders WHERE gateway = ANY($1::text[])`, [gone])
      // also commands claimed by a gateway reaped meanwhile (a claim racing its reaping)
      const left = (await c.query(`
        SELECT id, kind, gateway, idempotent, device FROM ${s}.commands c
        WHERE state = 'delivered' AND gateway IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${s}.gateways g WHERE g.id = c.gateway)
        FOR UPDATE SKIP LOCKED`)).rows
      const requeue = left.filter((r) => r.idempotent)
      const unknown = left.filter((r) => !r.idempotent)
      if (requeue.length > 0) {
        await c.query(`UPDATE ${s}.commands SET state = 'queued', gateway = NULL, delivered_at = NULL WHERE id = ANY($1::bigint[])`, [requeue.map((r) => r.id)])
        await this.notify(c, 'queued', [...new Set(requeue.map((r) => String(r.device)))])
      }
      if (unknown.length > 0) {
        await c.query(`
          UPDATE ${s}.commands c SET state = 'unknown', finished_at = $3, result = COALESCE(c.result, '{}'::jsonb) || jsonb_build_object('message', u.m)
          FROM unnest($1::bigint[], $2::text[]) AS u(id, m) WHERE c.id = u.id`,
        [unknown.map((r) => r.id), unknown.map((r) => unknownAfterDeathMessage(r.kind as CommandKind, String(r.gateway))), Date.now()])
        await this.notify(c, 'final', unknown.map((r) => Number(r.id)))
      }
      return { gateways: gone, requeued: requeue.map((r) => Number(r.id)), unknown: unknown.map((r) => Number(r.id)) }
    }
    return {
      register: async (g) => toInfo((await this.q(`
        INSERT INTO ${s}.gateways (id, host, pid, ports, started_at, lease_until)
        VALUES (gen_random_uuid()::text, $1, $2, $3, ${NOW_MS}, ${NOW_MS} + $4) RETURNING *`, [g.host, g.pid, JSON.stringify(g.ports), g.leaseMs]))[0]),
      renew: async (id, leaseMs) => (await this.q(`UPDATE ${s}.gateways SET lease_until = ${NOW_MS} + $2 WHERE id = $1 RETURNING id`, [id, leaseMs])).length > 0,
      report: async (id, status) => { await this.q(`UPDATE ${s}.gateways SET status = $2 WHERE id = $1`, [id, JSON.stringify(status)]) },
      unregister: (id) => this.tx((c) => leave(c, [id])),
      live: async () => (await this.q(`SELECT * FROM ${s}.gateways WHERE lease_until > ${NOW_MS} ORDER BY started_at`)).map(toInfo),
      reap: () => this.tx(async (c) => {
        const dead = (await c.query(`SELECT id FROM ${s}.gateways WHERE lease_until <= ${NOW_MS} FOR UPDATE SKIP LOCKED`)).rows.map((r) => String(r.id))
        return leave(c, dead)
      }),
      hold: async (gateway, devices) => {
        const list = [...new Set(devices)]
        if (list.length === 0) return
        await this.q(`
          INSERT INTO ${s}.holders (device, gateway, since) SELECT d, $2, $3 FROM unnest($1::text[]) AS u(d)
          ON CONFLICT (device) DO UPDATE SET gateway = excluded.gateway, since = excluded.since WHERE ${s}.holders.gateway <> excluded.gateway`,
        [list, gateway, Date.now()])
      },
      release: async (gateway, devices) => { await this.q(`DELETE FROM ${s}.holders WHERE gateway = $1 AND device = ANY($2::text[])`, [gateway, devices]) },
      holders: async (devices) => Object.fromEntries((await this.q(`
        SELECT h.device, h.gateway FROM ${s}.holders h JOIN ${s}.gateways g ON g.id = h.gateway AND g.lease_until > ${NOW_MS}
        WHERE h.device = ANY($1::text[])`, [devices])).map((r) => [String(r.device), String(r.gateway)])),
    }
  }
}

function toCommand(row: Row): QueuedCommand {
  const c: QueuedCommand = {
    id: Number(row.id),
    device: String(row.device),
    protocol: row.protocol as Protocol,
    kind: row.kind as CommandKind,
    payload: row.payload,
    state: row.state as CommandState,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
  }
  if (row.result) c.result = row.result
  if (row.delivered_at !== null) c.deliveredAt = Number(row.delivered_at)
  if (row.finished_at !== null) c.finishedAt = Number(row.finished_at)
  if (row.gateway !== null) c.gateway = String(row.gateway)
  return c
}

/** What went wrong, in words that hold no password. */
function reasonOf(err: unknown): string {
  const e = err as { code?: string; message?: string; errors?: { message?: string }[] }
  // node's AggregateError (IPv4 and IPv6 both refused) has an empty message
  const message = e.message || e.errors?.map((x) => x.message).filter(Boolean).join('; ') || String(e.code ?? err)
  return message
}

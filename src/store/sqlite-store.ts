import { Inventory } from './inventory.js'
import { UsageError } from '../types/errors.js'
import type { DeviceEntry } from '../types/driver.js'
import { GatewayStore } from './gateway-store.js'
import type { CommandResult, QueuedCommand, SpoolRecord } from '../types/gateway.js'
import { StoreEventHub } from './events.js'
import type {
  ClaimOptions, CommandQueue, CursorStore, DeviceStateStore, GatewayRegistry, InventoryStore, NewCommand, PresenceStore,
  ReapResult, RecordSpool, SpooledRecord, Store, StoreEvents,
} from './interface.js'
import { SqliteCursors } from './sqlite-cursors.js'
import { SqliteGateways } from './sqlite-gateways.js'
import { sqliteSchemaVersion } from './sqlite-schema.js'
import { FinalWaiters } from './waiters.js'

export interface SqliteStoreOptions {
  /** How often waitFinal looks for commands finished by another process (ms). */
  pollMs?: number
}

/**
 * The embedded store, today's files in DOORCTL_HOME: inventory.json (0600, atomic writes) and
 * gateway.db (SQLite, WAL, synchronous=FULL) with photos beside it. Its work is synchronous
 * underneath (GatewayStore): each method resolves once its transaction is on disk. Events reach
 * the listeners of this process only; other processes are seen by polling (waitFinal).
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite'
  readonly description: string
  readonly core: GatewayStore
  readonly devices: InventoryStore
  readonly commands: CommandQueue
  readonly records: RecordSpool
  readonly presence: PresenceStore
  readonly state: DeviceStateStore
  readonly cursors: CursorStore
  readonly gateways: GatewayRegistry
  private readonly hub = new StoreEventHub()
  private readonly waiters: FinalWaiters

  constructor(readonly home: string, opts: SqliteStoreOptions = {}) {
    try {
      this.core = new GatewayStore(home)
    } catch (err) {
      if (err instanceof UsageError) throw err
      throw new UsageError(`cannot open the store in ${home}: ${(err as Error).message}`, 'check that gateway.db there is doorctl\'s and readable, or pass another --store')
    }
    this.description = `sqlite ${this.core.path}`
    const core = this.core
    const hub = this.hub
    const sqlCursors = new SqliteCursors(core)
    try {
      sqlCursors.importFiles(home)
    } catch (err) {
      core.close()
      throw err
    }
    const sqlGateways = new SqliteGateways(core)
    const inventory = new Inventory(home)
    this.waiters = new FinalWaiters(async (ids) => core.commands(ids), opts.pollMs ?? 250)
    const final = (ids: number[]) => {
      if (ids.length === 0) return
      hub.emit('final', ids)
      this.waiters.notify(ids)
    }

    this.devices = {
      all: async () => inventory.all(),
      get: async (name) => inventory.get(name),
      save: async (entries: readonly DeviceEntry[]) => { inventory.save([...entries]); hub.emit('inventory') },
      remove: async (names) => { inventory.remove([...names]); hub.emit('inventory') },
      stamp: async () => inventory.stamp(),
    }

    this.commands = {
      enqueue: async (commands: readonly NewCommand[]) => {
        const queued = core.enqueueMany(commands)
        if (queued.length > 0) hub.emit('queued', [...new Set(queued.map((c) => c.device))])
        return queued
      },
      get: async (id) => core.command(id),
      getMany: async (ids) => core.commands(ids),
      pending: async (device) => core.pending(device),
      devicesWithPending: async () => core.devicesWithPending(),
      claim: async (device: string, gateway: string, opts?: ClaimOptions) => core.claim(device, gateway, opts),
      progress: async (id: number, result: CommandResult) => core.progress(id, result),
      finish: async (id, state, result) => {
        const done = core.finish(id, state, result)
        if (done) final([id])
        return done
      },
      expire: async (now) => {
        const ids = core.expire(now)
        final(ids)
        return ids
      },
      waitFinal: (ids, signal) => this.waiters.wait(ids, signal),
      openCounts: async () => core.openCommandCounts(),
      recent: async (since, limit) => core.recentCommands(since, limit),
    }

    this.records = {
      add: async (records: readonly SpoolRecord[]) => core.spoolMany(records),
      after: async (device, afterSeq, limit, range) => core.records(device, afterSeq, limit, range).map(spooled),
      afterAll: async (afterSeq, limit) => core.recordsAfter(afterSeq, limit).map(spooled),
      lastSeq: async () => core.lastSeq(),
      photo: async (seq) => core.photoOf(seq),
      activity: async (since, devices) => core.recordActivity(since, devices),
    }

    this.presence = {
      save: async (rows) => core.savePresence(rows),
      all: async () => core.presence(),
      saveDiscovered: async (rows) => core.saveDiscovered(rows),
      discovered: async () => core.discovered(),
    }

    this.state = {
      get: async (device, key) => core.getState(device, key),
      all: async (device) => core.allState(device),
      set: async (device, key, value) => core.setState(device, key, value),
      setMany: async (changes) => core.setStates(changes),
    }

    this.cursors = {
      read: async () => sqlCursors.read(),
      prepare: async (p, owner) => sqlCursors.prepare(p, owner),
      commit: async (cursors, pendingId) => sqlCursors.commit(cursors, pendingId),
      pendingOn: async (host) => sqlCursors.pendingOn(host),
      drop: async (id) => sqlCursors.drop(id),
      hold: async (devices, owner, ttlMs) => sqlCursors.hold(devices, owner, ttlMs),
      release: async (devices, owner) => sqlCursors.release(devices, owner),
    }

    const left = (r: ReapResult) => {
      final(r.unknown)
      if (r.requeued.length > 0) hub.emit('queued', [...new Set(core.commands(r.requeued).map((c) => c.device))])
      return r
    }
    this.gateways = {
      register: async (g) => sqlGateways.register(g),
      renew: async (id, leaseMs) => sqlGateways.renew(id, leaseMs),
      unregister: async (id) => left(sqlGateways.unregister(id)),
      report: async (id, status) => sqlGateways.report(id, status),
      live: async () => sqlGateways.live(),
      reap: async () => left(sqlGateways.reap()),
      hold: async (gateway, devices) => sqlGateways.hold(gateway, devices),
      release: async (gateway, devices) => sqlGateways.release(gateway, devices),
      holders: async (devices) => sqlGateways.holders(devices),
    }
  }

  async schemaVersion(): Promise<number> {
    return sqliteSchemaVersion(this.core.db)
  }

  subscribe<E extends keyof StoreEvents>(event: E, listener: StoreEvents[E]): () => void {
    return this.hub.subscribe(event, listener)
  }

  async listening(): Promise<void> {}

  async close(): Promise<void> {
    this.waiters.rejectAll(new Error('the store was closed'))
    if (this.core.db.open) this.core.close()
  }
}

function spooled(r: { seq: number; photoPath?: string } & Omit<SpoolRecord, 'photo'>): SpooledRecord {
  const { photoPath, ...rest } = r
  return { ...rest, hasPhoto: photoPath !== undefined }
}


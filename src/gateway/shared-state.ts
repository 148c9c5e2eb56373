import { hostname } from 'node:os'
import type { DiscoveredEntry, PresenceEntry, Store } from '../store/interface.js'
import type { DeviceEntry, Logger, Protocol } from '../types/driver.js'
import { mapPool } from '../util/pool.js'
import { FINAL_STATES, type CommandResult, type QueuedCommand, type SpoolRecord } from '../types/gateway.js'

export interface SharedStateOptions {
  store: Store
  log: Logger
  /** Lease of this gateway in the store (ms); renewed every third of it. */
  leaseMs: number
  /** How often presence, discovered devices and holds are written (ms). */
  flushMs: number
  /** A command became final (any gateway): local waiters hear of it. */
  onFinal(ids: number[]): void
  /** Commands were queued for these devices (any process): the protocols are woken. */
  onQueued(devices: string[]): void
}

/** Protocols whose devices hold a connection, or are reached only through the gateway that heard their latest heartbeat. */
const HELD: ReadonlySet<Protocol> = new Set(['wsjson', 'best', 'udp'])

/** Why a device was answered with an error: another gateway claimed the command first. */
export class ClaimLost extends Error {}

/**
 * What one gateway on a shared store (PostgreSQL) keeps in memory so that the protocols' code can
 * stay synchronous (design note in store/interface.ts, "Wiring"): the identity map, each device's
 * protocol state, its open commands (queued, or delivered by this gateway), presence. Reads come
 * from memory; writes go to the store at once and are handed to `track`, so an HTTP answer waits
 * for them (a record is acknowledged only once committed); presence, discovered devices and holds
 * are written in batches every `flushMs`.
 */
export class SharedGatewayState {
  readonly store: Store
  private gatewayId = ''
  private readonly log: Logger
  private devices: DeviceEntry[] = []
  private readonly states = new Map<string, Map<string, unknown>>()
  private readonly open = new Map<string, QueuedCommand[]>()
  /** Claims being committed, by command id. */
  private readonly claims = new Map<number, Promise<void>>()
  private readonly presence = new Map<string, PresenceEntry>()
  private readonly dirtyPresence = new Set<string>()
  private readonly discovered = new Map<string, DiscoveredEntry>()
  private readonly dirtyDiscovered = new Set<string>()
  private readonly dirtyHolds = new Set<string>()
  private readonly unsubscribe: (() => void)[] = []
  private readonly timers: NodeJS.Timeout[] = []
  private inventoryStamp = ''
  private inventoryVersion = 0
  private stopped = false
  /** Where writes made for an HTTP answer go (set by the gateway); others are logged if they fail. */
  track: (write: Promise<unknown>) => void = (w) => void w.catch(() => {})

  constructor(private readonly opts: SharedStateOptions) {
    this.store = opts.store
    this.log = opts.log
  }

  get id(): string {
    return this.gatewayId
  }

  get inventoryRevision(): number {
    return this.inventoryVersion
  }

  /** Registers, listens, and reads what the protocols will ask for. */
  async start(ports: Record<string, number | string>): Promise<void> {
    const s = this.store
    this.unsubscribe.push(
      s.subscribe('queued', (devices) => void this.reload(devices).then(() => this.opts.onQueued(devices))),
      s.subscribe('final', (ids) => this.dropFinal(ids)),
      s.subscribe('inventory', () => void this.refreshInventory(true)),
      s.subscribe('reconnected', () => void this.reloadAll()),
    )
    await s.listening()
    await this.register(ports)
    await this.refreshInventory(true)
    await this.reloadAll()
    this.timers.push(setInterval(() => void this.renew(), Math.max(100, Math.floor(this.opts.leaseMs / 3))).unref())
    this.timers.push(setInterval(() => void this.flush(), this.opts.flushMs).unref())
    this.timers.push(setInterval(() => void this.refreshInventory(false), 2000).unref())
  }

  private async register(ports: Record<string, number | string>): Promise<void> {
    const g = await this.store.gateways.register({ host: hostname(), pid: process.pid, ports, leaseMs: this.opts.leaseMs })
    this.gatewayId = g.id
    this.log.info('gateway registered in the store', { store: this.store.description, id: g.id })
  }

  /** Renews the lease, registers again if it was lost, and reaps gateways whose lease ran out. */
  private async renew(): Promise<void> {
    if (this.stopped) return
    try {
      if (!(await this.store.gateways.renew(this.gatewayId, this.opts.leaseMs))) {
        this.log.warn('this gateway\'s lease in the store ran out: registering again', { id: this.gatewayId })
        await this.register({})
        await this.reloadAll()
      }
      const r = await this.store.gateways.reap()
      if (r.gateways.length > 0) this.log.notice('gateways whose lease ran out were removed', { gateways: r.gateways.join(','), requeued: r.requeued.length, unknown: r.unknown.length })
    } catch (err) {
      this.log.warn('cannot reach the store to renew the lease', { error: (err as Error).message })
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const t of this.timers) clearInterval(t)
    for (const u of this.unsubscribe) u()
    await this.flush().catch(() => {})
    if (this.gatewayId) await this.store.gateways.unregister(this.gatewayId).catch((err: Error) => this.log.warn('could not unregister from the store', { error: err.message }))
  }

  // ---- inventory and state ----------------------------------------------------------------

  all(): DeviceEntry[] {
    return this.devices
  }

  private async refreshInventory(force: boolean): Promise<void> {
    try {
      const stamp = await this.store.devices.stamp()
      if (!force && stamp === this.inventoryStamp) return
      const devices = await this.store.devices.all()
      const fresh = devices.filter((d) => !this.states.has(d.name))
      await mapPool(fresh, 8, async (d) => {
        this.states.set(d.name, new Map(Object.entries(await this.store.state.all(d.name))))
      })
      this.devices = devices
      this.inventoryStamp = stamp
      this.inventoryVersion++
    } catch (err) {
      this.log.warn('cannot read the inventory from the store', { error: (err as Error).message })
    }
  }

  state(device: string, key: string): unknown {
    return this.states.get(device)?.get(key)
  }

  setState(device: string, key: string, value: unknown): void {
    let m = this.states.get(device)
    if (!m) this.states.set(device, (m = new Map()))
    if (value === undefined) m.delete(key)
    else m.set(key, value)
    this.track(this.store.state.set(device, key, value))
  }

  // ---- commands -----------------------------------------------------------------------------

  devicesWithOpen(): string[] {
    return [...this.open.keys()]
  }

  /** The device's commands this gateway may work on: queued ones, and those it delivered itself. */
  pending(device: string): QueuedCommand[] {
    return (this.open.get(device) ?? []).filter((c) => c.state === 'queued' || c.gateway === this.gatewayId)
  }

  command(id: number): QueuedCommand | undefined {
    for (const list of this.open.values()) for (const c of list) if (c.id === id) return c
    return undefined
  }

  /**
   * Claims a command the protocol is handing to its device; the tracked write rejects (ClaimLost)
   * when another gateway has it. Asked again while its claim is in flight, the same claim is
   * tracked, so nobody sends the command before it is committed.
   */
  delivered(id: number): void {
    const inFlight = this.claims.get(id)
    if (inFlight) return this.track(inFlight)
    const c = this.command(id)
    if (!c || c.gateway === this.gatewayId) return
    const before = { state: c.state, gateway: c.gateway }
    c.state = 'delivered'
    c.gateway = this.gatewayId
    const claim = this.store.commands.claim(c.device, this.gatewayId, { id }).then((got) => {
      if (got) return
      void this.reload([c.device])
      throw new ClaimLost(`command ${id} for ${c.device} was taken by another gateway`)
    }, (err: unknown) => {
      // not claimed (the store is down): the next delivery claims again
      if (c.gateway === this.gatewayId) Object.assign(c, before)
      throw err
    }).finally(() => this.claims.delete(id))
    this.claims.set(id, claim)
    this.track(claim)
  }

  progress(id: number, result: CommandResult): void {
    this.track(this.store.commands.progress(id, result))
  }

  /** Finishes a command in the store; `then` runs once that is committed. */
  finish(id: number, state: 'acknowledged' | 'failed', result: CommandResult | undefined, then: () => void): void {
    this.dropFinal([id], false)
    const write = this.store.commands.finish(id, state, result).then((done) => { if (done) then() })
    this.track(write)
  }

  /** Expires commands past their deadline (any gateway may: one statement). */
  async expire(): Promise<number[]> {
    const ids = await this.store.commands.expire()
    this.dropFinal(ids)
    return ids
  }

  private dropFinal(ids: number[], announce = true): void {
    const gone = new Set(ids)
    for (const [device, list] of this.open) {
      const left = list.filter((c) => !gone.has(c.id))
      if (left.length === 0) this.open.delete(device)
      else if (left.length !== list.length) this.open.set(device, left)
    }
    if (announce && ids.length > 0) this.opts.onFinal(ids)
  }

  private async reload(devices: readonly string[]): Promise<void> {
    try {
      await mapPool(devices, 8, async (d) => {
        const list = (await this.store.commands.pending(d)).filter((c) => !FINAL_STATES.has(c.state))
        if (list.length === 0) this.open.delete(d)
        else this.open.set(d, list)
      })
    } catch (err) {
      this.log.warn('cannot read queued commands from the store', { error: (err as Error).message })
    }
  }

  private async reloadAll(): Promise<void> {
    try {
      const devices = await this.store.commands.devicesWithPending()
      for (const d of [...this.open.keys()]) if (!devices.includes(d)) this.open.delete(d)
      await this.reload(devices)
      if (devices.length > 0) this.opts.onQueued(devices)
    } catch (err) {
      this.log.warn('cannot read queued commands from the store', { error: (err as Error).message })
    }
  }

  // ---- records ------------------------------------------------------------------------------

  /**
   * Stores a record (once per device and record id); the device is answered only once it is
   * committed. Group commit: records arriving while a batch is being committed go in the next
   * batch, one transaction (one WAL flush) for all of them.
   */
  spool(r: SpoolRecord): boolean {
    this.track(new Promise((resolve, reject) => {
      this.recordBatch.push({ r, resolve, reject })
      if (!this.recordsCommitting) void this.commitRecords()
    }))
    return true
  }

  private recordBatch: { r: SpoolRecord; resolve(v: unknown): void; reject(e: unknown): void }[] = []
  private recordsCommitting = false

  private async commitRecords(): Promise<void> {
    this.recordsCommitting = true
    // let the requests of this turn of the event loop join
    await new Promise((r) => setImmediate(r))
    while (this.recordBatch.length > 0) {
      const batch = this.recordBatch.splice(0, 500)
      try {
        await this.store.records.add(batch.map((b) => b.r))
        for (const b of batch) b.resolve(true)
      } catch (err) {
        for (const b of batch) b.reject(err)
      }
    }
    this.recordsCommitting = false
  }

  // ---- presence, discovered devices, holds (batched) ----------------------------------------

  touch(device: DeviceEntry, address: string, info: Record<string, unknown> | undefined): PresenceEntry {
    const prev = this.presence.get(device.name)
    const row: PresenceEntry = { device: device.name, protocol: device.protocol, lastSeen: Date.now(), address, info: info ?? prev?.info ?? {}, gateway: this.gatewayId }
    this.presence.set(device.name, row)
    this.dirtyPresence.add(device.name)
    // the latest contact makes this gateway the one that sends to it (udp NAT, held sockets)
    if (HELD.has(device.protocol) && prev?.gateway !== this.gatewayId) this.dirtyHolds.add(device.name)
    return row
  }

  addDiscovered(row: DiscoveredEntry): boolean {
    const key = `${row.protocol}:${row.identity}`
    const known = this.discovered.has(key)
    this.discovered.set(key, row)
    this.dirtyDiscovered.add(key)
    return known
  }

  presenceRows(): PresenceEntry[] {
    return [...this.presence.values()]
  }

  async discoveredRows(): Promise<DiscoveredEntry[]> {
    await this.flush()
    return this.store.presence.discovered()
  }

  /** One batch: presence rows, discovered devices and holds changed since the last one. */
  async flush(): Promise<void> {
    const presence = [...this.dirtyPresence].map((d) => this.presence.get(d)!).filter(Boolean)
    const discovered = [...this.dirtyDiscovered].map((k) => this.discovered.get(k)!).filter(Boolean)
    const holds = [...this.dirtyHolds]
    this.dirtyPresence.clear()
    this.dirtyDiscovered.clear()
    this.dirtyHolds.clear()
    try {
      if (presence.length > 0) await this.store.presence.save(presence)
      if (discovered.length > 0) await this.store.presence.saveDiscovered(discovered)
      if (holds.length > 0) await this.store.gateways.hold(this.gatewayId, holds)
    } catch (err) {
      // kept for the next batch
      for (const p of presence) this.dirtyPresence.add(p.device)
      for (const d of discovered) this.dirtyDiscovered.add(`${d.protocol}:${d.identity}`)
      for (const h of holds) this.dirtyHolds.add(h)
      this.log.warn('cannot write presence to the store', { error: (err as Error).message })
    }
  }
}

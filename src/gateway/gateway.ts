import { AsyncLocalStorage } from 'node:async_hooks'
import { EventEmitter } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Inventory } from '../store/inventory.js'
import { UsageError } from '../types/errors.js'
import { isoWithOffset } from '../util/time.js'
import { readIdList } from '../util/id-list.js'
import type { DeviceEntry, Logger, Protocol } from '../types/driver.js'
import { Collector } from './collect.js'
import { createGatewayHttpServer, Router, type GatewayHttpServer } from './http.js'
import { loadTls } from './tls.js'
import { GatewayStore, type PresenceRow } from '../store/gateway-store.js'
import type { Store } from '../store/interface.js'
import { ClaimLost, SharedGatewayState } from './shared-state.js'
import {
  DEFAULT_SETTINGS,
  FINAL_STATES,
  type CommandKind,
  type CommandResult,
  type DevicePresence,
  type DiscoveredRow,
  type CollectOutcome,
  type GatewayContext,
  type GatewaySettings,
  type GatewayRequest,
  type GatewayResponse,
  type ProtocolHandler,
  type QueuedCommand,
  type Route,
  type SpoolRecord,
  type TlsMaterial,
  REFUSED,
  type RefusedContact,
} from '../types/gateway.js'
import { makeCidrMatcher, plainAddress } from '../util/cidr.js'

/** A device calling from a wrong address again and again is logged once a minute per address. */
const REFUSED_LOG_EVERY_MS = 60_000
/** How often a request looks whether the inventory file changed (ms); an unknown identity looks again after INVENTORY_MISS_RECHECK_MS. */
const INVENTORY_RECHECK_MS = 200
const INVENTORY_MISS_RECHECK_MS = 10

/**
 * What a protocol's code runs for, if anything waits for its writes: an HTTP request, or a
 * `ctx.durable` call (a record on a held connection, a command's frame). Its writes join the
 * store's group commit, and its answer waits for that commit (on disk before the device hears it).
 * Writes made anywhere else (timers, or after the answer) commit on their own.
 */
const writeScope = new AsyncLocalStorage<{ answered: boolean; writes?: Promise<unknown>[] }>()

/**
 * Hooks for what watches the gateway (metrics, the status page): called synchronously, so each
 * must be cheap; a keepalive pays for `requestHandled` on every call.
 */
export interface GatewayObserver {
  /** A protocol's HTTP route answered (outcome `error`: a 4xx/5xx answer, or it threw). */
  requestHandled?(protocol: Protocol, outcome: 'ok' | 'error', seconds: number): void
  /** A command became final (acknowledged, failed, expired), once on disk. */
  commandFinished?(c: QueuedCommand): void
  /** A new record was spooled, once on disk. */
  recordSpooled?(protocol: string, device: string, time: number): void
}

export interface GatewayOptions {
  home: string
  log: Logger
  settings?: Partial<GatewaySettings>
  handlers: ProtocolHandler[]
  /** A shared store (PostgreSQL): several gateways work on it; absent = gateway.db in `home`. */
  shared?: { store: Store; leaseMs: number; flushMs: number }
}

/** A command to queue for a device, and how long it may wait for the device (ms). */
export interface Submission {
  device: DeviceEntry
  kind: CommandKind
  payload: Record<string, unknown>
  timeoutMs: number
}

/** Identity of a device within its protocol, as the protocol's messages carry it. */
export function identityOf(d: DeviceEntry): string | undefined {
  switch (d.protocol) {
    case 'udp':
      return d.community !== undefined && d.code !== undefined ? `${d.community}/${d.code}` : undefined
    case 'openapi':
      return d.deviceId
    default:
      return d.sn
  }
}

/**
 * One gateway: one HTTP port for every protocol's endpoints, the durable queue and spool,
 * presence, and the rules for online decisions. Used by `doorctl serve` and by one-shot
 * commands as a temporary listener.
 */
export class Gateway {
  readonly settings: GatewaySettings
  private readonly local?: GatewayStore
  /** On a shared store: what this gateway keeps in memory of it (shared-state.ts). */
  readonly shared?: SharedGatewayState
  readonly log: Logger
  private readonly inventory: Inventory
  private readonly handlers: ProtocolHandler[]
  /** 'queued' (device name): protocol handlers wake up for new commands. */
  private readonly events = new EventEmitter()
  private readonly waiters = new Map<number, Set<(c: QueuedCommand) => void>>()
  /** While handlers hear of new commands: each device's pending commands, read once (any write forgets them). */
  private pendingMemo?: Map<string, QueuedCommand[]>
  private readonly presenceMap = new Map<string, PresenceRow>()
  /** Each device's latest gaps between calls (ms): its usual interval is their median ("silent": three of them passed). */
  private readonly gaps = new Map<string, number[]>()
  /** Their median, kept as gaps arrive: the status page asks for thousands of doors' intervals a second. */
  private readonly intervals = new Map<string, number>()
  private readonly observers: GatewayObserver[] = []
  private byName = new Map<string, DeviceEntry>()
  /** When start() finished (ms since epoch). */
  startedAt = 0
  private readonly discoveredMap = new Map<string, DiscoveredRow>()
  private readonly dirtyPresence = new Set<string>()
  private discoveredBefore?: DiscoveredRow[]
  private readonly dirtyDiscovered = new Set<string>()
  private readonly published = new Map<string, { data: Buffer | (() => Promise<Buffer>); contentType: string }>()
  private readonly pendingDevices = new Set<string>()
  private byIdentity = new Map<string, DeviceEntry>()
  private inventoryStamp = ''
  private inventoryRevisionValue = 0
  /** When the inventory's stamp was last looked at (performance.now()). */
  private inventoryCheckedAt = -Infinity
  private allowList?: Set<string>
  /** Source pinning: each pinned entry's matcher (entries are new objects when the inventory changes). */
  private readonly pinned = new WeakMap<DeviceEntry, (address: string) => boolean>()
  private readonly refusedLogged = new Map<string, { at: number; suppressed: number }>()
  /** Requests, datagrams and connections refused (source pinning, MQTT credentials and topics) since start. */
  refusedTotal = 0
  private http?: GatewayHttpServer
  private readonly home: string
  /** --tls-cert/--tls-key, read and checked when the gateway is made (before anything listens). */
  readonly tls?: TlsMaterial
  private timers: NodeJS.Timeout[] = []
  private httpPortValue = 0
  /** Ports and URLs protocol modules bound (udp, mqtt), for the ready line. */
  readonly bound: Record<string, number | string | boolean> = {}
  /** One WebSocket server per route: each protocol has its own message size limit. */
  private readonly wss = new Map<string, import('ws').WebSocketServer>()
  private stopped = false
  /** Record collection for one-shot pulls: who is drained (collect.ts). */
  private readonly collector = new Collector()
  readonly ctx: GatewayContext

  constructor(opts: GatewayOptions) {
    this.settings = { ...DEFAULT_SETTINGS, ...stripUndefined(opts.settings ?? {}) }
    this.log = opts.log
    this.handlers = opts.handlers
    this.home = opts.home
    this.tls = loadTls(this.settings.tlsCert, this.settings.tlsKey)
    this.inventory = new Inventory(opts.home)
    this.events.setMaxListeners(0)
    this.loadAuthorize()
    if (opts.shared) {
      this.shared = new SharedGatewayState({
        ...opts.shared, log: this.log,
        onFinal: (ids) => { for (const id of ids) this.finished(id) },
        onQueued: (devices) => { for (const d of devices) this.events.emit('queued', d) },
      })
    } else {
      this.local = new GatewayStore(opts.home)
      for (const p of this.local.presence()) this.presenceMap.set(p.device, p)
      for (const d of this.local.devicesWithPending()) this.pendingDevices.add(d)
    }
    this.ctx = this.makeContext()
  }

  /** The embedded store (gateway.db in DOORCTL_HOME); a gateway on a shared store has none. */
  get store(): GatewayStore {
    if (!this.local) throw new Error('this gateway works on a shared store')
    return this.local
  }

  /** Closes what was opened, for a gateway that never started. */
  close(): void {
    this.local?.close()
  }

  get httpPort(): number {
    return this.httpPortValue
  }

  /** "http 0.0.0.0:8090, udp_port 7998, …" (https with --tls-cert) for the ready line. */
  describe(): string {
    return `${this.tls ? 'https' : 'http'} ${this.settings.bind}:${this.httpPortValue}${Object.entries(this.bound).map(([k, v]) => `, ${k} ${v}`).join('')}`
  }

  /** What the protocols found worth a warning in the ready line (a broker without shared subscriptions, say). */
  warnings(): string[] {
    return this.handlers.flatMap((h) => h.warnings?.() ?? [])
  }

  /** The kinds of command a protocol's devices can carry out. */
  kinds(protocol: Protocol): ReadonlySet<CommandKind> {
    return this.handlers.find((h) => h.protocol === protocol)?.kinds ?? new Set()
  }

  async start(): Promise<void> {
    if (this.shared) {
      this.shared.track = (write) => this.track(write)
      await this.shared.start({})
    }
    const router = new Router()
    for (const h of this.handlers) for (const r of h.routes?.(this.ctx) ?? []) router.add({ ...r, handle: (req) => this.answer(h.protocol, r, req) })
    router.add({ method: 'GET', path: '/doorctl/files/{name}', handle: (req) => this.serveFile(req.params.name) })
    this.http = createGatewayHttpServer({ router, log: this.log, maxBodyBytes: this.settings.maxBodyBytes, tls: this.tls })
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(err.code === 'EADDRINUSE'
          ? new UsageError(`port ${this.settings.httpPort} on ${this.settings.bind} is in use`, 'stop what holds it (another doorctl serve?), or pick another with --http-port')
          : err)
      }
      this.http!.once('error', onError)
      this.http!.listen(this.settings.httpPort, this.settings.bind, () => {
        this.http!.off('error', onError)
        resolve()
      })
    })
    this.httpPortValue = (this.http.address() as AddressInfo).port
    this.attachWebSockets()
    for (const h of this.handlers) {
      const bound = await h.start?.(this.ctx)
      if (bound) Object.assign(this.bound, bound)
    }
    this.startedAt = Date.now()
    if (!this.shared) this.timers.push(setInterval(() => this.flushPresence(), 2000).unref())
    this.timers.push(setInterval(() => this.sweepExpired(), 1000).unref())
    this.log.info('gateway listening', { http: `${this.settings.bind}:${this.httpPortValue}` })
  }

  /** A protocol route's answer, once the writes it made are committed (one commit for every request answered in the same moment). */
  private async answer(protocol: Protocol, route: Route, req: GatewayRequest): Promise<GatewayResponse> {
    if (this.shared) return this.answerShared(route, req)
    const scope = { answered: false }
    const started = performance.now()
    let status = 500
    try {
      const res = await writeScope.run(scope, () => route.handle(req))
      status = res.status ?? 200
      return res
    } finally {
      scope.answered = true
      try {
        await this.store.committed()
      } catch (err) {
        status = 500
        throw err
      } finally {
        const seconds = (performance.now() - started) / 1000
        for (const o of this.observers) o.requestHandled?.(protocol, status < 400 ? 'ok' : 'error', seconds)
      }
    }
  }

  /** Adds a watcher of requests, commands and records (metrics, the status page). */
  observe(observer: GatewayObserver): void {
    this.observers.push(observer)
  }

  /** The inventory as the gateway sees it now (re-read when it changed). */
  devices(): DeviceEntry[] {
    this.refreshInventory()
    return [...this.byName.values()]
  }

  /** When (ms since the epoch; presence() shows whole seconds) and from where the device last called this gateway. */
  presenceRowOf(device: string): PresenceRow | undefined {
    return this.presenceMap.get(device)
  }

  /** Changes whenever the gateway re-read the inventory (devices() then lists other doors, or in another order). */
  get inventoryRevision(): number {
    this.refreshInventory()
    return this.inventoryRevisionValue
  }

  /** A device's usual interval between calls (ms), once it called twice: the median of its latest gaps. */
  intervalOf(device: string): number | undefined {
    return this.intervals.get(device)
  }

  /** What is wrong with the device listeners and the store; empty when all is well. */
  problems(opts: { store: boolean } = { store: true }): string[] {
    const problems: string[] = []
    if (!this.http?.listening) problems.push(`http listener on ${this.settings.bind}:${this.httpPortValue} is down`)
    for (const h of this.handlers) problems.push(...(h.problems?.() ?? []))
    const storeProblem = opts.store && !this.shared ? this.store.writeProblem() : undefined
    if (storeProblem) problems.push(`store ${this.store.path} is not writable: ${storeProblem}`)
    return problems
  }

  /**
   * On a shared store: the answer once every write it made is committed; if one failed (the store
   * is down, another gateway claimed the command first) the device gets an error and calls again,
   * so a record it was told was received is always stored.
   */
  private async answerShared(route: Route, req: GatewayRequest): Promise<GatewayResponse> {
    const { value: res, failed } = await this.committedWrites(() => route.handle(req))
    if (!failed) return res
    if (failed instanceof ClaimLost) this.log.debug('command claimed by another gateway', { error: failed.message })
    else this.log.warn('store write failed: device answered with an error', { path: req.path, error: failed.message })
    return { status: 503, json: { Success: 0, code: 503, Message: 'gateway store unavailable, try again' } }
  }

  /** On a shared store: runs `fn` in a write scope of its own; `failed` is the first of its writes that did not commit. */
  private async committedWrites<T>(fn: () => T | Promise<T>): Promise<{ value: T; failed?: Error }> {
    const scope = { answered: false, writes: [] as Promise<unknown>[] }
    try {
      const value = await writeScope.run(scope, fn)
      const failed = (await Promise.allSettled(scope.writes)).find((r) => r.status === 'rejected')
      return { value, failed: failed ? (failed.reason as Error) : undefined }
    } finally {
      scope.answered = true
    }
  }

  /** ctx.durable: `fn`'s value once its writes are committed (on the embedded store they are when they return, or with the open group). */
  private durable<T>(fn: () => T): Promise<T> {
    if (this.shared) {
      return this.committedWrites(fn).then(({ value, failed }) => {
        if (failed) throw failed
        return value
      })
    }
    try {
      const value = fn()
      const scope = writeScope.getStore()
      return scope && !scope.answered ? this.store.committed().then(() => value) : Promise.resolve(value)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** A write to the shared store: an HTTP answer waits for it, else a failure is logged. */
  private track(write: Promise<unknown>): void {
    const scope = writeScope.getStore()
    if (scope?.writes && !scope.answered) scope.writes.push(write)
    else write.catch((err: Error) => { if (!(err instanceof ClaimLost)) this.log.warn('store write failed', { error: err.message }) })
  }

  /** A write from a protocol: grouped when an HTTP answer waits for it, else committed at once. */
  private durably<T>(write: () => T): T {
    const scope = writeScope.getStore()
    return scope && !scope.answered ? this.store.grouped(write) : write()
  }

  /** WebSocket upgrades on the HTTP port, routed by path to the protocol that owns it. */
  private attachWebSockets(): void {
    const routes = this.handlers.flatMap((h) => h.websockets?.(this.ctx) ?? [])
    if (routes.length === 0) return
    this.http!.on('upgrade', (req, socket, head) => {
      // a device reconnecting while the gateway stops would otherwise keep http.close() waiting
      if (this.stopped) {
        socket.destroy()
        return
      }
      const path = new URL(req.url ?? '/', 'http://gateway').pathname.replace(/\/+$/, '').toLowerCase()
      const route = routes.find((r) => r.path.toLowerCase() === path)
      if (!route) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n')
        return
      }
      void import('ws').then(({ WebSocketServer }) => {
        let wss = this.wss.get(route.path)
        if (!wss) this.wss.set(route.path, (wss = new WebSocketServer({ noServer: true, maxPayload: route.maxPayload ?? this.settings.maxBodyBytes })))
        wss.handleUpgrade(req, socket, head, (ws) => {
          ws.on('error', (err) => this.log.warn('websocket error', { path, error: String(err) }))
          route.onConnection(ws, req)
        })
      })
    })
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const t of this.timers) clearInterval(t)
    for (const h of this.handlers) await h.stop?.().catch(() => {})
    for (const wss of this.wss.values()) {
      for (const c of wss.clients) c.terminate()
      wss.close()
    }
    if (this.http?.listening) {
      this.http.closeAllConnections()
      await new Promise<void>((resolve) => this.http!.close(() => resolve()))
    }
    if (this.shared) {
      await this.shared.stop()
      return
    }
    this.flushPresence()
    this.store.close()
  }

  // ---- commands --------------------------------------------------------------------------

  submit(device: DeviceEntry, kind: CommandKind, payload: Record<string, unknown>, timeoutMs: number): QueuedCommand {
    return this.submitMany([{ device, kind, payload, timeoutMs }])[0]
  }

  /** Queues commands in one transaction (a whole fleet operation at once), then wakes each device's protocol once. */
  submitMany(list: readonly Submission[]): QueuedCommand[] {
    // on a shared store commands are queued in the store itself (ops/store-handle.ts)
    if (this.shared) throw new Error('this gateway works on a shared store: queue through the store')
    const now = Date.now()
    const cmds = this.store.enqueueMany(list.map((s) => ({ device: s.device.name, protocol: s.device.protocol, kind: s.kind, payload: s.payload, expiresAt: now + s.timeoutMs })))
    const devices = new Set(cmds.map((c) => c.device))
    for (const d of devices) this.pendingDevices.add(d)
    for (const c of cmds) this.log.debug('queued', { device: c.device, kind: c.kind, id: c.id })
    // every protocol's handler asks for the device's pending commands: read once per device, not once per protocol
    this.pendingMemo = new Map()
    try {
      for (const d of devices) this.events.emit('queued', d)
    } finally {
      this.pendingMemo = undefined
    }
    return cmds
  }

  /**
   * Calls `onFinal` once, when command `id` is final (acknowledged, failed or expired; at once if
   * it is already). Returns a function that stops watching. Waiters are kept by command id, so a
   * fleet of waiting commands costs one map entry each, and nothing per event for the others.
   */
  watch(id: number, onFinal: (c: QueuedCommand) => void): () => void {
    const c = this.command(id)
    if (!c) throw new Error(`no command ${id}`)
    if (FINAL_STATES.has(c.state)) {
      onFinal(c)
      return () => {}
    }
    let set = this.waiters.get(id)
    if (!set) this.waiters.set(id, (set = new Set()))
    set.add(onFinal)
    return () => {
      set.delete(onFinal)
      if (set.size === 0 && this.waiters.get(id) === set) this.waiters.delete(id)
    }
  }

  /** Resolves with the command once it is final (acknowledged, failed or expired) or `signal` aborts. */
  waitFor(id: number, signal?: AbortSignal): Promise<QueuedCommand> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason)
      let settled = false
      const onAbort = () => {
        stop()
        reject(signal!.reason)
      }
      const stop = this.watch(id, (c) => {
        settled = true
        signal?.removeEventListener('abort', onAbort)
        resolve(c)
      })
      if (!settled) signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  command(id: number): QueuedCommand | undefined {
    return this.shared ? this.shared.command(id) : this.store.command(id)
  }

  private sweepExpired(): void {
    if (this.shared) {
      this.shared.expire().catch((err: Error) => this.log.warn('cannot expire commands in the store', { error: err.message }))
      return
    }
    for (const id of this.store.expire()) {
      this.log.info('command expired', { id })
      this.finished(id)
    }
  }

  private finished(id: number): void {
    if (this.shared) {
      const waiting = this.waiters.get(id)
      this.waiters.delete(id)
      if (waiting) void this.shared.store.commands.get(id).then((c) => { if (c) for (const w of waiting) w(c) })
      return
    }
    const c = this.store.command(id)
    if (!c) return
    for (const o of this.observers) o.commandFinished?.(c)
    if (this.store.pending(c.device).length === 0) this.pendingDevices.delete(c.device)
    const waiting = this.waiters.get(id)
    this.waiters.delete(id)
    for (const w of waiting ?? []) w(c)
  }

  /** Resolves once `device` has called and uploaded what it holds (collect.ts). */
  collect(device: DeviceEntry, opts: { timeoutMs: number; signal: AbortSignal }): Promise<CollectOutcome> {
    return this.collector.wait(device.name, opts)
  }

  // ---- presence ---------------------------------------------------------------------------

  presence(): DevicePresence[] {
    const now = Date.now()
    return [...this.presenceMap.values()].map((p) => ({
      device: p.device, protocol: p.protocol, online: now - p.lastSeen < this.settings.offlineAfterMs,
      lastSeen: isoWithOffset(new Date(p.lastSeen)), address: p.address, info: p.info,
    }))
  }

  discoveredDevices(): DiscoveredRow[] {
    if (this.shared) return [...this.discoveredMap.values()].sort((a, b) => b.lastSeen - a.lastSeen)
    this.flushPresence()
    return this.store.discovered()
  }

  /**
   * discoveredDevices() without a write: those saved before this gateway started, and those it
   * heard since (for the status page and metrics, which must not add fsyncs to devices' answers).
   */
  discoveredSoFar(): DiscoveredRow[] {
    this.discoveredBefore ??= this.shared ? [] : this.store.discovered()
    const all = new Map(this.discoveredBefore.map((d) => [`${d.protocol}:${d.identity}`, d]))
    for (const [k, d] of this.discoveredMap) all.set(k, d)
    return [...all.values()].sort((a, b) => b.lastSeen - a.lastSeen)
  }

  private flushPresence(): void {
    if (this.dirtyPresence.size > 0) {
      this.store.savePresence([...this.dirtyPresence].map((d) => this.presenceMap.get(d)!).filter(Boolean))
      this.dirtyPresence.clear()
    }
    if (this.dirtyDiscovered.size > 0) {
      this.store.saveDiscovered([...this.dirtyDiscovered].map((k) => this.discoveredMap.get(k)!).filter(Boolean))
      this.dirtyDiscovered.clear()
    }
  }

  // ---- inventory and rules ------------------------------------------------------------------

  /** Calls `listener` for every request, datagram or connection refused (already logged, rate-limited). */
  onRefused(listener: (r: RefusedContact) => void): () => void {
    this.events.on('refused', listener)
    return () => { this.events.off('refused', listener) }
  }

  /** Source pinning, the one check: whether `device` may be served for a peer at `address`. */
  private admits(device: DeviceEntry, address: string): boolean {
    if (!device.allowFrom || device.allowFrom.length === 0) return true
    let matches = this.pinned.get(device)
    if (!matches) this.pinned.set(device, (matches = makeCidrMatcher(device.allowFrom)))
    if (matches(address)) return true
    const r: RefusedContact = { device: device.name, protocol: device.protocol, address: plainAddress(address), reason: 'allow-from', at: Date.now() }
    const key = `${r.device}\u0000${r.address}`
    const last = this.refusedLogged.get(key)
    if (!last || r.at - last.at >= REFUSED_LOG_EVERY_MS) {
      this.refusedLogged.set(key, { at: r.at, suppressed: 0 })
      if (this.refusedLogged.size > 1024) this.refusedLogged.delete(this.refusedLogged.keys().next().value as string)
      this.log.warn('refused: the device called from an address its --allow-from does not cover', {
        device: r.device, protocol: r.protocol, from: r.address, allow_from: device.allowFrom.join(','), ...(last?.suppressed ? { suppressed: last.suppressed } : {}),
      })
    } else last.suppressed++
    this.countRefused(r)
    return false
  }

  private countRefused(r: RefusedContact): void {
    this.refusedTotal++
    this.events.emit('refused', r)
  }

  private findDevice(protocol: Protocol, identity: string, from?: string): DeviceEntry | typeof REFUSED | undefined {
    const entry = this.lookup(protocol, identity)
    return entry && from !== undefined && !this.admits(entry, from) ? REFUSED : entry
  }

  private lookup(protocol: Protocol, identity: string): DeviceEntry | undefined {
    this.refreshInventory()
    const key = `${protocol}:${identity}`
    const found = this.byIdentity.get(key)
    if (found) return found
    // a door added a moment ago is not made to wait for the next look at the file
    this.refreshInventory(INVENTORY_MISS_RECHECK_MS)
    return this.byIdentity.get(key)
  }

  /**
   * Re-reads the inventory when its file changed, looking at most every `maxAgeMs`: a stat per
   * request was a tenth of serve's CPU with 2,000 doors keepaliving (bench section 13).
   */
  private refreshInventory(maxAgeMs = INVENTORY_RECHECK_MS): void {
    const now = performance.now()
    if (now - this.inventoryCheckedAt < maxAgeMs) return
    this.inventoryCheckedAt = now
    const stamp = this.shared ? `shared:${this.shared.inventoryRevision}` : this.inventory.stamp()
    if (stamp === this.inventoryStamp) return
    this.inventoryStamp = stamp
    this.inventoryRevisionValue++
    this.byIdentity = new Map()
    this.byName = new Map()
    for (const d of this.shared ? this.shared.all() : this.inventory.all()) {
      this.byName.set(d.name, d)
      const id = identityOf(d)
      if (id !== undefined) this.byIdentity.set(`${d.protocol}:${id}`, d)
    }
  }

  /**
   * Learns a device's usual interval between calls. A median, so one stall (ours or the network's)
   * does not stretch it; calls soon after another (records uploaded between heartbeats) are left out.
   */
  private measureInterval(device: string, gap: number): void {
    let gaps = this.gaps.get(device)
    if (!gaps) this.gaps.set(device, (gaps = []))
    if (gaps.length > 0 && gap < gaps[gaps.length - 1] / 2) return
    gaps.push(gap)
    if (gaps.length > 9) gaps.shift()
    this.intervals.set(device, median(gaps))
  }

  private loadAuthorize(): void {
    const a = this.settings.authorize
    if (a === 'allow' || a === 'deny') return
    this.allowList = new Set(readIdList(a, '--authorize', { allowNone: true }))
  }

  private authorize(device: DeviceEntry, userId: string): boolean {
    const a = this.settings.authorize
    const allowed = a === 'allow' ? true : a === 'deny' ? false : this.allowList!.has(userId)
    this.log.info(`online authorization ${allowed ? 'allowed' : 'denied'}`, { device: device.name, user: userId, rule: a === 'allow' || a === 'deny' ? a : 'list' })
    return allowed
  }

  private async serveFile(name: string) {
    const f = this.published.get(name)
    if (!f) return { status: 404, json: { Success: 0, Message: 'no such file' } }
    const data = typeof f.data === 'function' ? await f.data() : f.data
    return { body: data, contentType: f.contentType }
  }

  private makeContext(): GatewayContext {
    if (this.shared) return this.makeSharedContext(this.shared)
    return {
      ...this.makeLocalParts(),
      state: (device, key) => this.store.getState(device, key),
      setState: (device, key, value) => this.durably(() => this.store.setState(device, key, value)),
      touch: (device, address, info) => {
        const prev = this.presenceMap.get(device.name)
        this.presenceMap.set(device.name, { device: device.name, protocol: device.protocol, lastSeen: this.noteCall(device.name, prev?.lastSeen), address, info: info ?? prev?.info ?? {} })
        this.dirtyPresence.add(device.name)
      },
      discovered: (protocol, identity, address, info) => {
        const key = `${protocol}:${identity}`
        if (!this.discoveredMap.has(key)) this.log.warn('unknown device called the gateway (see `doorctl device list --discovered`)', { protocol, identity, address })
        this.discoveredMap.set(key, { protocol, identity, lastSeen: Date.now(), address, info: info ?? {} })
        this.dirtyDiscovered.add(key)
      },
      pending: (device) => {
        if (!this.pendingDevices.has(device)) return []
        if (!this.pendingMemo) return this.store.pending(device)
        let list = this.pendingMemo.get(device)
        if (!list) this.pendingMemo.set(device, (list = this.store.pending(device)))
        return [...list]
      },
      delivered: (id) => {
        this.pendingMemo?.clear()
        this.durably(() => this.store.delivered(id))
      },
      progress: (id, result) => {
        this.pendingMemo?.clear()
        this.durably(() => this.store.progress(id, result))
      },
      finish: (id, state, result) => {
        this.pendingMemo?.clear()
        // whoever waits for the command hears of it once it is on disk
        if (this.durably(() => this.store.finish(id, state, result))) this.store.afterCommit(() => this.finished(id))
      },
      spool: (r: SpoolRecord) => {
        const fresh = this.durably(() => this.store.spool(r))
        this.collector.record(r.device, fresh)
        if (fresh && this.observers.length > 0) {
          const protocol = this.byName.get(r.device)?.protocol ?? this.presenceMap.get(r.device)?.protocol ?? 'unknown'
          this.store.afterCommit(() => { for (const o of this.observers) o.recordSpooled?.(protocol, r.device, r.time) })
        }
        return fresh
      },
    }
  }

  /** The same context on a shared store: reads from memory, writes through (shared-state.ts). */
  private makeSharedContext(sh: SharedGatewayState): GatewayContext {
    return {
      ...this.makeLocalParts(),
      state: (device, key) => sh.state(device, key),
      setState: (device, key, value) => sh.setState(device, key, value),
      touch: (device, address, info) => {
        const prev = this.presenceMap.get(device.name)
        this.noteCall(device.name, prev?.lastSeen)
        this.presenceMap.set(device.name, sh.touch(device, address, info))
      },
      discovered: (protocol, identity, address, info) => {
        const row = { protocol, identity, lastSeen: Date.now(), address, info: info ?? {} }
        this.discoveredMap.set(`${protocol}:${identity}`, row)
        if (!sh.addDiscovered(row)) this.log.warn('unknown device called the gateway (see `doorctl device list --discovered`)', { protocol, identity, address })
      },
      pending: (device) => sh.pending(device),
      delivered: (id) => sh.delivered(id),
      progress: (id, result) => sh.progress(id, result),
      finish: (id, state, result) => sh.finish(id, state, result, () => this.finished(id)),
      spool: (r: SpoolRecord) => sh.spool(r),
    }
  }

  /** A device called now: learns its interval from the previous call; returns now. */
  private noteCall(device: string, previous: number | undefined): number {
    const now = Date.now()
    if (previous !== undefined && now > previous) this.measureInterval(device, now - previous)
    return now
  }

  /** What both contexts share: nothing of it writes to the store itself. */
  private makeLocalParts(): Pick<GatewayContext, 'log' | 'settings' | 'home' | 'tls' | 'devices' | 'unpublish' | 'refused' | 'findDevice' | 'heartbeat' | 'authorize' | 'publish' | 'onQueued' | 'durable'> {
    return {
      log: this.log,
      settings: this.settings,
      home: this.home,
      tls: this.tls,
      devices: () => this.devices(),
      unpublish: (name) => { this.published.delete(name) },
      refused: (r) => this.countRefused({ ...r, address: plainAddress(r.address), at: Date.now() }),
      findDevice: ((p: Protocol, id: string, from?: string) => this.findDevice(p, id, from)) as GatewayContext['findDevice'],
      heartbeat: (device, opts) => this.collector.heartbeat(device.name, opts?.idle === true),
      authorize: (device, userId) => this.authorize(device, userId),
      publish: (name, data, contentType, requestHost) => {
        this.published.set(name, { data, contentType })
        const host = requestHost ?? `127.0.0.1:${this.httpPortValue}`
        return `${this.tls ? 'https' : 'http'}://${host}/doorctl/files/${encodeURIComponent(name)}`
      },
      onQueued: (listener) => this.events.on('queued', listener),
      durable: (fn) => this.durable(fn),
    }
  }
}

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

export type { CommandResult }

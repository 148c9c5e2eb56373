import { EventEmitter } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Inventory } from '../store/inventory.js'
import { UsageError } from '../types/errors.js'
import { readIdList } from '../util/id-list.js'
import type { DeviceEntry, Logger, Protocol } from '../types/driver.js'
import { createGatewayHttpServer, Router } from './http.js'
import { GatewayStore, type PresenceRow } from '../store/gateway-store.js'
import {
  DEFAULT_SETTINGS,
  FINAL_STATES,
  type CommandKind,
  type CommandResult,
  type DevicePresence,
  type DiscoveredRow,
  type GatewayContext,
  type GatewaySettings,
  type ProtocolHandler,
  type QueuedCommand,
  type SpoolRecord,
} from '../types/gateway.js'

export interface GatewayOptions {
  home: string
  log: Logger
  settings?: Partial<GatewaySettings>
  handlers: ProtocolHandler[]
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
  readonly store: GatewayStore
  readonly log: Logger
  private readonly inventory: Inventory
  private readonly handlers: ProtocolHandler[]
  private readonly events = new EventEmitter()
  private readonly presenceMap = new Map<string, PresenceRow>()
  private readonly discoveredMap = new Map<string, DiscoveredRow>()
  private readonly dirtyPresence = new Set<string>()
  private readonly dirtyDiscovered = new Set<string>()
  private readonly published = new Map<string, { data: Buffer | (() => Promise<Buffer>); contentType: string }>()
  private readonly pendingDevices = new Set<string>()
  private byIdentity = new Map<string, DeviceEntry>()
  private inventoryStamp = ''
  private allowList?: Set<string>
  private http?: Server
  private timers: NodeJS.Timeout[] = []
  private httpPortValue = 0
  /** Ports and URLs protocol modules bound (udp, mqtt), for the ready line. */
  readonly bound: Record<string, number | string> = {}
  /** One WebSocket server per route: each protocol has its own message size limit. */
  private readonly wss = new Map<string, import('ws').WebSocketServer>()
  private stopped = false
  readonly ctx: GatewayContext

  constructor(opts: GatewayOptions) {
    this.settings = { ...DEFAULT_SETTINGS, ...stripUndefined(opts.settings ?? {}) }
    this.log = opts.log
    this.handlers = opts.handlers
    this.inventory = new Inventory(opts.home)
    this.store = new GatewayStore(opts.home)
    this.events.setMaxListeners(0)
    this.loadAuthorize()
    for (const p of this.store.presence()) this.presenceMap.set(p.device, p)
    for (const d of this.store.devicesWithPending()) this.pendingDevices.add(d)
    this.ctx = this.makeContext()
  }

  get httpPort(): number {
    return this.httpPortValue
  }

  /** "http 0.0.0.0:8090, udp_port 7998, …" for the ready line. */
  describe(): string {
    return `http ${this.settings.bind}:${this.httpPortValue}${Object.entries(this.bound).map(([k, v]) => `, ${k} ${v}`).join('')}`
  }

  /** The kinds of command a protocol's devices can carry out. */
  kinds(protocol: Protocol): ReadonlySet<CommandKind> {
    return this.handlers.find((h) => h.protocol === protocol)?.kinds ?? new Set()
  }

  async start(): Promise<void> {
    const router = new Router()
    for (const h of this.handlers) for (const r of h.routes?.(this.ctx) ?? []) router.add(r)
    router.add({ method: 'GET', path: '/doorctl/files/{name}', handle: (req) => this.serveFile(req.params.name) })
    this.http = createGatewayHttpServer({ router, log: this.log, maxBodyBytes: this.settings.maxBodyBytes })
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
    this.timers.push(setInterval(() => this.flushPresence(), 2000).unref())
    this.timers.push(setInterval(() => this.sweepExpired(), 1000).unref())
    this.log.info('gateway listening', { http: `${this.settings.bind}:${this.httpPortValue}` })
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
    this.flushPresence()
    this.store.close()
  }

  // ---- commands --------------------------------------------------------------------------

  submit(device: DeviceEntry, kind: CommandKind, payload: Record<string, unknown>, timeoutMs: number): QueuedCommand {
    const cmd = this.store.enqueue({ device: device.name, protocol: device.protocol, kind, payload, expiresAt: Date.now() + timeoutMs })
    this.pendingDevices.add(device.name)
    this.events.emit('queued', device.name)
    this.log.debug('queued', { device: device.name, kind, id: cmd.id })
    return cmd
  }

  /** Resolves with the command once it is final (acknowledged, failed or expired) or `signal` aborts. */
  waitFor(id: number, signal?: AbortSignal): Promise<QueuedCommand> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const c = this.store.command(id)
        if (!c) return reject(new Error(`no command ${id}`))
        if (FINAL_STATES.has(c.state)) {
          cleanup()
          resolve(c)
        }
      }
      const onFinal = (finished: number) => { if (finished === id) check() }
      const onAbort = () => { cleanup(); reject(signal!.reason) }
      const cleanup = () => {
        this.events.off('final', onFinal)
        signal?.removeEventListener('abort', onAbort)
      }
      this.events.on('final', onFinal)
      signal?.addEventListener('abort', onAbort, { once: true })
      check()
    })
  }

  command(id: number): QueuedCommand | undefined {
    return this.store.command(id)
  }

  private sweepExpired(): void {
    for (const id of this.store.expire()) {
      this.log.info('command expired', { id })
      this.finished(id)
    }
  }

  private finished(id: number): void {
    const c = this.store.command(id)
    if (c && this.store.pending(c.device).length === 0) this.pendingDevices.delete(c.device)
    this.events.emit('final', id)
  }

  // ---- presence ---------------------------------------------------------------------------

  presence(): DevicePresence[] {
    const now = Date.now()
    return [...this.presenceMap.values()].map((p) => ({
      device: p.device, protocol: p.protocol, online: now - p.lastSeen < this.settings.offlineAfterMs,
      lastSeen: new Date(p.lastSeen).toISOString(), address: p.address, info: p.info,
    }))
  }

  discoveredDevices(): DiscoveredRow[] {
    this.flushPresence()
    return this.store.discovered()
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

  private findDevice(protocol: Protocol, identity: string): DeviceEntry | undefined {
    const stamp = this.inventory.stamp()
    if (stamp !== this.inventoryStamp) {
      this.inventoryStamp = stamp
      this.byIdentity = new Map()
      for (const d of this.inventory.all()) {
        const id = identityOf(d)
        if (id !== undefined) this.byIdentity.set(`${d.protocol}:${id}`, d)
      }
    }
    return this.byIdentity.get(`${protocol}:${identity}`)
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
    return {
      log: this.log,
      settings: this.settings,
      state: (device, key) => this.store.getState(device, key),
      setState: (device, key, value) => this.store.setState(device, key, value),
      unpublish: (name) => { this.published.delete(name) },
      findDevice: (p, id) => this.findDevice(p, id),
      touch: (device, address, info) => {
        const prev = this.presenceMap.get(device.name)
        this.presenceMap.set(device.name, { device: device.name, protocol: device.protocol, lastSeen: Date.now(), address, info: info ?? prev?.info ?? {} })
        this.dirtyPresence.add(device.name)
      },
      discovered: (protocol, identity, address, info) => {
        const key = `${protocol}:${identity}`
        if (!this.discoveredMap.has(key)) this.log.warn('unknown device called the gateway (see `doorctl device list --discovered`)', { protocol, identity, address })
        this.discoveredMap.set(key, { protocol, identity, lastSeen: Date.now(), address, info: info ?? {} })
        this.dirtyDiscovered.add(key)
      },
      pending: (device) => (this.pendingDevices.has(device) ? this.store.pending(device) : []),
      delivered: (id) => this.store.delivered(id),
      progress: (id, result) => this.store.progress(id, result),
      finish: (id, state, result) => {
        if (this.store.finish(id, state, result)) this.finished(id)
      },
      spool: (r: SpoolRecord) => this.store.spool(r),
      authorize: (device, userId) => this.authorize(device, userId),
      publish: (name, data, contentType, requestHost) => {
        this.published.set(name, { data, contentType })
        const host = requestHost ?? `127.0.0.1:${this.httpPortValue}`
        return `http://${host}/doorctl/files/${encodeURIComponent(name)}`
      },
      onQueued: (listener) => this.events.on('queued', listener),
    }
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

export type { CommandResult }

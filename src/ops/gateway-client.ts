import type { DeviceEntry, Logger, Protocol } from '../types/driver.js'
import { Inventory } from '../store/inventory.js'
import { ControlClient, ControlServer, type Hello, type SubmitAnswer, type SubmitItem } from '../gateway/control.js'
import { Gateway, type GatewayOptions, type Submission } from '../gateway/gateway.js'
import { AdminServer } from '../gateway/admin/server.js'
import { GatewayMonitor } from '../gateway/status.js'
import { loadHandlers } from './gateway-handlers.js'
import { FINAL_STATES, type CommandKind, type DevicePresence, type DiscoveredRow, type GatewayHandle, type GatewaySettings, type QueuedCommand, type SubmitOptions } from '../types/gateway.js'

/** How often a gateway on a shared store writes its figures there for `doorctl status` (ms). */
const SHARED_REPORT_MS = 5000

/**
 * Connects to a running gateway (serve, or another command's temporary listener, which then
 * stays up until this one is done), or starts a temporary one in this process.
 */
export async function openGateway(home: string, settings: Partial<GatewaySettings>, log: Logger): Promise<GatewayHandle> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const client = await ControlClient.connect(home)
    if (client) return remoteHandle(client)
    const started = await startGateway({ home, log, settings }, 'temporary')
    // undefined: another command started one a moment ago, so join it
    if (!started) continue
    log.notice(`temporary gateway listening on ${started.gateway.describe()}; waiting for devices to call`)
    return localHandle(started.gateway, started.control!)
  }
  throw new Error('could not start or join a gateway')
}

/**
 * Starts a gateway with its control channel; undefined if another live gateway already owns
 * this DOORCTL_HOME's control socket.
 */
export async function startGateway(
  opts: { home: string; log: Logger; settings: Partial<GatewaySettings>; admin?: { port: number; bind: string; token?: string }; shared?: GatewayOptions['shared'] },
  mode: 'serve' | 'temporary',
): Promise<{ gateway: Gateway; control?: ControlServer; admin?: AdminServer; monitor?: GatewayMonitor } | undefined> {
  // on a shared store, commands are queued in the store, not through this home's control socket
  if (opts.shared) {
    const gateway = new Gateway({ ...opts, handlers: await loadHandlers() })
    let admin: AdminServer | undefined
    try {
      await gateway.start()
      const monitor = new GatewayMonitor(gateway, mode)
      if (opts.admin) admin = await startAdmin(gateway, monitor, opts.admin, opts.log)
      monitor.startReporting(SHARED_REPORT_MS)
      return { gateway, admin, monitor }
    } catch (err) {
      await admin?.stop()
      await gateway.stop().catch(() => {})
      throw err
    }
  }
  // a temporary listener serves only the protocols the inventory has: an httpv2-only site does not
  // need UDP 7998 or an MQTT broker for a one-shot reboot
  const handlers = await loadHandlers(mode === 'temporary' ? protocolsInUse(opts.home) : undefined)
  const gateway = new Gateway({ ...opts, handlers })
  const control = new ControlServer(gateway, opts.home, opts.log, mode)
  if (!(await control.start())) {
    gateway.close()
    return undefined
  }
  let admin: AdminServer | undefined
  try {
    await gateway.start()
    if (opts.admin) admin = await startAdmin(gateway, control.monitor(), opts.admin, opts.log)
  } catch (err) {
    // a protocol that could not bind its port (UDP 7998 taken, say) must not leave the HTTP port open
    await admin?.stop()
    await control.stop()
    await gateway.stop().catch(() => {})
    throw err
  }
  return { gateway, control, admin }
}

async function startAdmin(gateway: Gateway, monitor: GatewayMonitor, opts: { port: number; bind: string; token?: string }, log: Logger): Promise<AdminServer> {
  const admin = new AdminServer(monitor, { ...opts, log, tls: gateway.tls })
  await admin.start()
  gateway.bound.admin_port = admin.port
  return admin
}

function protocolsInUse(home: string): Set<Protocol> {
  const inUse = new Set<Protocol>()
  for (const d of new Inventory(home).all()) if (d.protocol !== 'openapi' || d.deviceId) inUse.add(d.protocol)
  return inUse
}

function remoteHandle(client: ControlClient): GatewayHandle {
  let mode: 'serve' | 'joined' = 'joined'
  let batches = false
  const ready = client.call<Hello>('hello').then((h) => {
    mode = h.mode === 'serve' ? 'serve' : 'joined'
    batches = h.batch === true
  })
  // a command that never needed the answer (a pull through serve) may close the channel first: not an unhandled rejection
  ready.catch(() => {})
  const batcher = new SubmitBatcher<SubmitItem>((commands) => client.call<SubmitAnswer[]>('submit', { commands }))
  const wait = async (id: number, signal: AbortSignal): Promise<QueuedCommand> => {
    await raceSignal(ready, signal)
    if (batches) return raceSignal(client.call<QueuedCommand>('wait', { id }), signal)
    // a gateway from before batches has no wait: ask how the command is doing until it is final
    for (;;) {
      const c = await raceSignal(client.call<QueuedCommand | null>('command', { id }), signal)
      if (!c) throw new Error(`the gateway has no command ${id}`)
      if (FINAL_STATES.has(c.state)) return c
      await raceSignal(new Promise((r) => setTimeout(r, 500)), signal)
    }
  }
  return {
    get mode() { return mode },
    async submit(device, kind, payload, opts) {
      await raceSignal(ready, opts.signal)
      if (!batches) {
        // a gateway from before batches: one call per command, waited for in that call
        return raceSignal(client.call<QueuedCommand>('submit', { device: device.name, kind, payload, timeoutMs: opts.timeoutMs, wait: opts.wait }), opts.signal)
      }
      const queued = await batcher.add({ device: device.name, kind, payload, timeoutMs: opts.timeoutMs }, opts.signal)
      if (!opts.wait) return queued
      return wait(queued.id, opts.signal)
    },
    wait,
    presence: () => client.call<DevicePresence[]>('presence'),
    discovered: () => client.call<DiscoveredRow[]>('discovered'),
    async close() { client.close() },
  }
}

function localHandle(gateway: Gateway, control: ControlServer): GatewayHandle {
  const batcher = new SubmitBatcher<Submission>(async (list) => gateway.submitMany(list))
  return {
    mode: 'temporary',
    async submit(device, kind, payload, opts) {
      const queued = await batcher.add({ device, kind, payload, timeoutMs: opts.timeoutMs }, opts.signal)
      if (!opts.wait) return queued
      return gateway.waitFor(queued.id, opts.signal)
    },
    wait: (id, signal) => gateway.waitFor(id, signal),
    presence: async () => gateway.presence(),
    discovered: async () => gateway.discoveredDevices(),
    collect: (device, opts) => gateway.collect(device, opts),
    async close() {
      // commands that joined this temporary listener are served to the end first
      await control.idle()
      await control.stop()
      await gateway.stop()
    },
  }
}

/**
 * Gathers the submits of one turn of the event loop into one batch: an operation on a thousand
 * devices submits them all at once (each device's own call), and they are queued in one
 * control-channel request and one store transaction instead of a thousand.
 */
export class SubmitBatcher<T> {
  private batch: { item: T; signal: AbortSignal; resolve(c: QueuedCommand): void; reject(e: unknown): void }[] = []

  constructor(private readonly send: (items: T[]) => Promise<SubmitAnswer[]>) {}

  add(item: T, signal: AbortSignal): Promise<QueuedCommand> {
    if (signal.aborted) return Promise.reject(signal.reason)
    return new Promise((resolve, reject) => {
      if (this.batch.length === 0) setImmediate(() => void this.flush())
      this.batch.push({ item, signal, resolve, reject })
    })
  }

  private async flush(): Promise<void> {
    const all = this.batch
    this.batch = []
    // what was aborted while it waited for the batch is not sent at all
    const batch = all.filter((b) => {
      if (b.signal.aborted) b.reject(b.signal.reason)
      return !b.signal.aborted
    })
    if (batch.length === 0) return
    let answers: SubmitAnswer[]
    try {
      answers = await this.send(batch.map((b) => b.item))
    } catch (err) {
      for (const b of batch) b.reject(err)
      return
    }
    batch.forEach((b, i) => {
      const a = answers[i]
      if (a && !('error' in a)) b.resolve(a)
      else b.reject(new Error(a?.error ?? 'the gateway did not answer for this command'))
    })
  }
}

export function raceSignal<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    p.then((v) => { signal.removeEventListener('abort', onAbort); resolve(v) }, (e) => { signal.removeEventListener('abort', onAbort); reject(e) })
  })
}

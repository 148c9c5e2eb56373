import type { DeviceEntry, Logger, Protocol } from '../types/driver.js'
import { Inventory } from '../store/inventory.js'
import { ControlClient, ControlServer } from '../gateway/control.js'
import { Gateway } from '../gateway/gateway.js'
import { loadHandlers } from './gateway-handlers.js'
import type { DevicePresence, DiscoveredRow, GatewayHandle, GatewaySettings, QueuedCommand } from '../types/gateway.js'

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
    return localHandle(started.gateway, started.control)
  }
  throw new Error('could not start or join a gateway')
}

/**
 * Starts a gateway with its control channel; undefined if another live gateway already owns
 * this DOORCTL_HOME's control socket.
 */
export async function startGateway(
  opts: { home: string; log: Logger; settings: Partial<GatewaySettings> },
  mode: 'serve' | 'temporary',
): Promise<{ gateway: Gateway; control: ControlServer } | undefined> {
  // a temporary listener serves only the protocols the inventory has: an httpv2-only site does not
  // need UDP 7998 or an MQTT broker for a one-shot reboot
  const handlers = await loadHandlers(mode === 'temporary' ? protocolsInUse(opts.home) : undefined)
  const gateway = new Gateway({ ...opts, handlers })
  const control = new ControlServer(gateway, opts.home, opts.log, mode)
  if (!(await control.start())) {
    gateway.store.close()
    return undefined
  }
  try {
    await gateway.start()
  } catch (err) {
    // a protocol that could not bind its port (UDP 7998 taken, say) must not leave the HTTP port open
    await control.stop()
    await gateway.stop().catch(() => {})
    throw err
  }
  return { gateway, control }
}

function protocolsInUse(home: string): Set<Protocol> {
  const inUse = new Set<Protocol>()
  for (const d of new Inventory(home).all()) if (d.protocol !== 'openapi' || d.deviceId) inUse.add(d.protocol)
  return inUse
}

function remoteHandle(client: ControlClient): GatewayHandle {
  let mode: 'serve' | 'joined' = 'joined'
  const ready = client.call<{ mode: string }>('hello').then((h) => { mode = h.mode === 'serve' ? 'serve' : 'joined' })
  return {
    get mode() { return mode },
    async submit(device, kind, payload, opts) {
      await ready
      const call = client.call<QueuedCommand>('submit', { device: device.name, kind, payload, timeoutMs: opts.timeoutMs, wait: opts.wait })
      return raceSignal(call, opts.signal)
    },
    presence: () => client.call<DevicePresence[]>('presence'),
    discovered: () => client.call<DiscoveredRow[]>('discovered'),
    async close() { client.close() },
  }
}

function localHandle(gateway: Gateway, control: ControlServer): GatewayHandle {
  return {
    mode: 'temporary',
    async submit(device, kind, payload, opts) {
      const cmd = gateway.submit(device, kind, payload, opts.timeoutMs)
      if (!opts.wait) return cmd
      return gateway.waitFor(cmd.id, opts.signal)
    },
    presence: async () => gateway.presence(),
    discovered: async () => gateway.discoveredDevices(),
    async close() {
      // commands that joined this temporary listener are served to the end first
      await control.idle()
      await control.stop()
      await gateway.stop()
    },
  }
}

function raceSignal<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    p.then((v) => { signal.removeEventListener('abort', onAbort); resolve(v) }, (e) => { signal.removeEventListener('abort', onAbort); reject(e) })
  })
}

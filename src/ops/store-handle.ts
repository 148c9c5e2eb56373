import type { Store } from '../store/interface.js'
import type { Logger } from '../types/driver.js'
import { DoorctlError } from '../types/errors.js'
import { DEFAULT_SETTINGS, type DevicePresence, type GatewayHandle, type QueuedCommand } from '../types/gateway.js'
import type { SubmitAnswer } from '../gateway/control.js'
import { SubmitBatcher } from './gateway-client.js'
import { isoWithOffset } from '../util/time.js'

type Item = { device: string; protocol: QueuedCommand['protocol']; kind: QueuedCommand['kind']; payload: Record<string, unknown>; timeoutMs: number }

/**
 * A one-shot command on a shared store: its commands are queued in the store (one transaction
 * per batch) for the gateways running on it, and their outcome is waited for there. No listener
 * of its own: the devices call those gateways.
 */
export async function openStoreHandle(store: Store, log: Logger): Promise<GatewayHandle> {
  const live = await store.gateways.live()
  if (live.length === 0) {
    throw new DoorctlError(`no gateway is running on ${store.description}`, {
      code: 'no-gateway', exitCode: 1,
      suggestion: 'start `doorctl serve --store URL` on a machine the devices reach, then run this again',
    })
  }
  log.debug('queueing through the store', { store: store.description, gateways: live.map((g) => g.id).join(',') })
  const batcher = new SubmitBatcher<Item>(async (items): Promise<SubmitAnswer[]> => {
    const now = Date.now()
    return store.commands.enqueue(items.map((i) => ({ device: i.device, protocol: i.protocol, kind: i.kind, payload: i.payload, expiresAt: now + i.timeoutMs })))
  })
  const wait = async (id: number, signal: AbortSignal) => (await store.commands.waitFinal([id], signal))[0]
  return {
    mode: 'joined',
    async submit(device, kind, payload, opts) {
      const queued = await batcher.add({ device: device.name, protocol: device.protocol, kind, payload, timeoutMs: opts.timeoutMs }, opts.signal)
      return opts.wait ? wait(queued.id, opts.signal) : queued
    },
    wait,
    presence: () => storePresence(store),
    discovered: () => store.presence.discovered(),
    async close() {},
  }
}

/** Presence as the gateways on a shared store last saved it (about once a second each). */
export async function storePresence(store: Store, offlineAfterMs = DEFAULT_SETTINGS.offlineAfterMs): Promise<DevicePresence[]> {
  const now = Date.now()
  return (await store.presence.all()).map((p) => ({
    device: p.device, protocol: p.protocol, online: now - p.lastSeen < offlineAfterMs,
    lastSeen: isoWithOffset(new Date(p.lastSeen)), address: p.address, info: p.info,
  }))
}

/** What `device list` shows on a shared store: presence and discovered devices as the gateways saved them. */
export async function readStorePresence(store: Store) {
  const [live, presence, discovered] = await Promise.all([store.gateways.live(), storePresence(store), store.presence.discovered()])
  return { running: live.length > 0, presence, discovered }
}

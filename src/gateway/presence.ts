import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { ControlClient } from './control.js'
import { GatewayStore } from '../store/gateway-store.js'
import { DEFAULT_SETTINGS, type DevicePresence, type DiscoveredRow } from '../types/gateway.js'

/** Presence and discovered devices as the running gateway knows them, else as last saved. */
export async function readPresence(home: string): Promise<{ running: boolean; presence: DevicePresence[]; discovered: DiscoveredRow[] }> {
  const client = await ControlClient.connect(home)
  if (client) {
    try {
      const [presence, discovered] = await Promise.all([client.call<DevicePresence[]>('presence'), client.call<DiscoveredRow[]>('discovered')])
      return { running: true, presence, discovered }
    } finally {
      client.close()
    }
  }
  if (!existsSync(join(home, 'gateway.db'))) return { running: false, presence: [], discovered: [] }
  const store = new GatewayStore(home, { readonly: true })
  try {
    const now = Date.now()
    const presence = store.presence().map((p) => ({
      device: p.device, protocol: p.protocol, online: now - p.lastSeen < DEFAULT_SETTINGS.offlineAfterMs,
      lastSeen: new Date(p.lastSeen).toISOString(), address: p.address, info: p.info,
    }))
    return { running: false, presence, discovered: store.discovered() }
  } finally {
    store.close()
  }
}

/**
 * Devices that called the gateway but are not in the inventory ("discovered"), as the fields
 * `device add` needs to take them in: each protocol's identity is what the device announced.
 */
import type { DeviceBook, DeviceInput } from '../store/inventory.js'
import { PROTOCOLS, type Protocol } from '../types/driver.js'
import { identityOf } from '../gateway/gateway.js'
import { readPresence } from '../gateway/presence.js'
import type { DiscoveredRow } from '../types/gateway.js'
import { isoWithOffset } from '../util/time.js'

export interface Adoptable {
  protocol: Protocol
  identity: string
  address: string
  lastSeen: string
  /** What `device add` takes, without the name. */
  input: DeviceInput
}

/** The fields a discovered device's identity gives (the same identities the gateway matches the inventory by). */
export function adoptionInput(row: Pick<DiscoveredRow, 'protocol' | 'identity' | 'address' | 'info'>): DeviceInput | undefined {
  switch (row.protocol) {
    case 'httpv2':
    case 'wsjson':
      return { protocol: row.protocol, sn: row.identity }
    case 'best':
      // best-m devices call over MQTT, or ask getBrokerServer for type best-m (3.1)
      return { protocol: 'best', sn: row.identity, transport: row.address.startsWith('mqtt:') || row.info.type === 'best-m' ? 'mqtt' : 'ws' }
    case 'udp': {
      const cut = row.identity.indexOf('/')
      return cut > 0 ? { protocol: 'udp', community: row.identity.slice(0, cut), code: row.identity.slice(cut + 1) } : undefined
    }
    case 'openapi':
      return { protocol: 'openapi', deviceId: row.identity, mode: 'platform' }
    default:
      return undefined
  }
}

/** Discovered devices not in the inventory (yet), most recent first. */
export async function adoptableDevices(home: string, inventory: DeviceBook): Promise<{ gatewayRunning: boolean; devices: Adoptable[] }> {
  const { running, discovered } = await readPresence(home)
  const known = new Set(inventory.all().map((d) => `${d.protocol}:${identityOf(d)}`))
  const devices: Adoptable[] = []
  for (const row of discovered) {
    if (!(PROTOCOLS as readonly string[]).includes(row.protocol) || known.has(`${row.protocol}:${row.identity}`)) continue
    const input = adoptionInput(row)
    if (!input) continue
    devices.push({ protocol: row.protocol as Protocol, identity: row.identity, address: row.address, lastSeen: isoWithOffset(new Date(row.lastSeen)), input })
  }
  return { gatewayRunning: running, devices }
}

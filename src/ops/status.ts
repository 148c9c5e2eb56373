import { ControlClient } from '../gateway/control.js'
import { reportedStatus } from '../gateway/status.js'
import type { Store } from '../store/interface.js'
import type { GatewayStatus, StatusDocument } from '../types/status.js'

/** The gateways working on a shared store, as each last reported itself there (every few seconds). */
export async function readStoreStatus(store: Store): Promise<StatusDocument> {
  const now = Date.now()
  const live = await store.gateways.live()
  return { ok: live.length > 0, store: store.description, gateways: live.map((g) => reportedStatus(g, now)) }
}

/**
 * The gateways running for this DOORCTL_HOME, asked through the control socket. A list: once
 * gateways share a store, the others come from its registrations.
 */
export async function readStatus(home: string): Promise<StatusDocument> {
  const client = await ControlClient.connect(home)
  if (!client) return { ok: false, gateways: [] }
  try {
    const status = await client.call<GatewayStatus>('status')
    return { ok: true, gateways: [status] }
  } catch {
    // a gateway from before `status` answers the other calls only; it is still up
    const hello = await client.call<{ pid: number; httpPort: number; mode: 'serve' | 'temporary' }>('hello').catch(() => undefined)
    return hello ? { ok: true, gateways: [partialStatus(hello)] } : { ok: false, gateways: [] }
  } finally {
    client.close()
  }
}

function partialStatus(h: { pid: number; httpPort: number; mode: 'serve' | 'temporary' }): GatewayStatus {
  return {
    pid: h.pid, host: '', mode: h.mode, started_at: '', uptime_seconds: 0, ports: { http: h.httpPort }, bind: '',
    devices: { total: 0, online: 0, offline: 0, by_protocol: {} }, queue_depth: { total: 0, by_protocol: {} },
    records_last_hour: 0, discovered_devices: 0, silent: [], problems: ['this gateway is older than `doorctl status`: restart it for the details'],
  }
}

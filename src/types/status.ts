/**
 * What `doorctl status --json` prints and the admin listener's `GET /api/status` answers: a list
 * of gateways (one today; several once gateways share a store and register there).
 */
export interface StatusDocument {
  /** true when at least one gateway is up. */
  ok: boolean
  /** A shared store the gateways work on (never a password): their figures are the whole site's. */
  store?: string
  gateways: GatewayStatus[]
}

export interface ProtocolCounts {
  online: number
  offline: number
}

export interface SilentDevice {
  device: string
  protocol: string
  last_seen: string
  silent_seconds: number
  /** The device's usual interval between calls, as the gateway measured it. */
  interval_seconds: number
}

export interface GatewayStatus {
  /** Its id in a shared store. */
  id?: string
  /** On a shared store: doors online whose latest call reached this gateway (the other figures are the whole site's). */
  devices_here?: number
  pid: number
  host: string
  mode: 'serve' | 'temporary'
  started_at: string
  uptime_seconds: number
  /** Every port it listens on: http, admin_port, udp_port, mqtt_port … */
  ports: Record<string, number>
  bind: string
  devices: { total: number; online: number; offline: number; by_protocol: Record<string, ProtocolCounts> }
  queue_depth: { total: number; by_protocol: Record<string, number> }
  records_last_hour: number
  discovered_devices: number
  /** Devices quiet for longer than three of their usual intervals between calls. */
  silent: SilentDevice[]
  /** Listeners down or a store that cannot be written; empty when healthy. */
  problems: string[]
}

/** One door on the status page. */
export interface DeviceView {
  name: string
  protocol: string
  tags: string[]
  online: boolean
  last_seen: string | null
  address: string
  queued: number
  last_record: string | null
  silent: boolean
}

export interface CommandView {
  id: number
  device: string
  protocol: string
  kind: string
  /** ok, failed, timeout, unknown, queued, delivered */
  status: string
  created_at: string
  finished_at: string | null
  message?: string
}

/** Between views, every few seconds: what moves without being a change (ms since the epoch, in the view's device order). */
export interface StatusPulse {
  now: string
  last_seen: (number | null)[]
  last_record: (number | null)[]
  records_per_minute: number[]
}

/** Everything the status page shows, sent whole on each change. */
export interface StatusView {
  now: string
  gateway: GatewayStatus
  devices: DeviceView[]
  discovered: { protocol: string; identity: string; address: string; last_seen: string }[]
  /** Commands created in the last hour, newest first (at most 200). */
  commands: CommandView[]
  /** Records received in each of the last 60 minutes, oldest first. */
  records_per_minute: number[]
  /** Contacts the gateway refused (source pinning, broker credentials and ACLs), per device, address and reason; latest first. */
  refused: RefusedView[]
  /** On a shared store: where (never a password), and the other live gateways as they last reported. */
  store?: string
  other_gateways?: { id: string; host: string; pid: number; devices_here: number | null }[]
}

export interface RefusedView {
  /** The inventory device it claimed to be, null when it named none. */
  device: string | null
  protocol: string
  address: string
  reason: string
  count: number
  last_at: string
}

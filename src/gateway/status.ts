import { hostname } from 'node:os'
import { RecordActivity } from './activity.js'
import type { Gateway } from './gateway.js'
import type { CommandState, QueuedCommand, RefusedContact } from '../types/gateway.js'
import type { CommandView, DeviceView, GatewayStatus, RefusedView, SilentDevice, StatusView } from '../types/status.js'
import { isoWithOffset } from '../util/time.js'

/** Silent: quiet for longer than this many of the device's usual intervals between calls. */
const SILENT_INTERVALS = 3
const HOUR = 3600_000
/** Refused contacts remembered for the page (per device, address and reason). */
const REFUSED_KEPT = 100
/** changeKey's character for presenceCode(). */
const PRESENCE_CODE = ['0', '1', '2', '3']

/** A command's state in the words the CLI's results use. */
export const COMMAND_STATUS: Record<CommandState, string> = {
  queued: 'queued', delivered: 'delivered', acknowledged: 'ok', failed: 'failed', expired: 'timeout', unknown: 'unknown',
}

/** What a running gateway says about itself: `doorctl status`, /api/status and the status page. */
export class GatewayMonitor {
  readonly activity: RecordActivity
  private readonly problemSources: (() => string[])[] = []

  /** Commands finished and records spooled so far: part of changeKey(). */
  private events = 0

  constructor(readonly gateway: Gateway, private readonly mode: 'serve' | 'temporary') {
    this.activity = new RecordActivity(gateway.store, gateway.devices().map((d) => d.name))
    gateway.observe(this.activity)
    gateway.observe({ commandFinished: () => { this.events++ }, recordSpooled: () => { this.events++ } })
    gateway.onRefused((r) => this.noteRefused(r))
  }

  private readonly refused = new Map<string, RefusedView>()

  private noteRefused(r: RefusedContact): void {
    this.events++
    const key = `${r.device ?? ''}\u0000${r.address}\u0000${r.reason}`
    const seen = this.refused.get(key)
    // re-inserted: the map's order is oldest first, so the least recent is dropped when full
    this.refused.delete(key)
    this.refused.set(key, { device: r.device ?? null, protocol: r.protocol, address: r.address, reason: r.reason, count: (seen?.count ?? 0) + 1, last_at: isoWithOffset(new Date(r.at)) })
    if (this.refused.size > REFUSED_KEPT) this.refused.delete(this.refused.keys().next().value as string)
  }

  /**
   * A cheap fingerprint of what the status page shows: each door's state (online, silent,
   * offline), the open commands, commands finished and records spooled, discovered devices and
   * problems. The live stream builds a whole view only when it changes: building one for
   * thousands of doors every second showed in the devices' keepalive latency (bench section 13).
   */
  changeKey(now = Date.now()): string {
    const gw = this.gateway
    // one character per door, in the inventory's order (the revision says when that order changed)
    let states = ''
    for (const d of gw.devices()) states += PRESENCE_CODE[this.presenceCode(d.name, now)]
    let open = ''
    for (const c of gw.store.openCommandCounts()) open += `${c.device}:${c.count},`
    return `${gw.inventoryRevision}|${states}|${open}|${this.events}|${gw.discoveredSoFar().length}|${this.problems(false).join(';')}`
  }

  /** presenceOf() as a number (1 online, 2 silent), for changeKey's thousands of doors a second without an object each. */
  private presenceCode(device: string, now: number): number {
    const gw = this.gateway
    const lastCall = gw.lastCallAt(device)
    if (lastCall === undefined) return 0
    const interval = gw.intervalOf(device)
    return (now - lastCall < gw.settings.offlineAfterMs ? 1 : 0) + (interval !== undefined && now - lastCall > SILENT_INTERVALS * interval ? 2 : 0)
  }

  /** Doors online and offline per protocol, without building the devices' views (metrics). */
  deviceCounts(now = Date.now()): Record<string, { online: number; offline: number }> {
    const byProtocol: Record<string, { online: number; offline: number }> = {}
    for (const d of this.gateway.devices()) {
      const counts = (byProtocol[d.protocol] ??= { online: 0, offline: 0 })
      counts[this.presenceOf(d.name, now).online ? 'online' : 'offline']++
    }
    return byProtocol
  }

  /**
   * The one rule for a door's presence: online while its last call is within --offline-after;
   * silent once more than three of its usual intervals passed (to the millisecond: a door calling
   * every 100 ms is not silent because the shown time is whole seconds).
   */
  private presenceOf(device: string, now: number): { online: boolean; silent: boolean; lastCall?: number; interval?: number } {
    const code = this.presenceCode(device, now)
    return { online: (code & 1) !== 0, silent: (code & 2) !== 0, lastCall: this.gateway.lastCallAt(device), interval: this.gateway.intervalOf(device) }
  }

  /** Adds listeners of its own (the control socket, the admin listener) to what problems() checks. */
  addProblems(source: () => string[]): void {
    this.problemSources.push(source)
  }

  /** Listeners down and (`checkStore`) a store that takes no write; empty when healthy. */
  problems(checkStore = true): string[] {
    return [...this.gateway.problems({ store: checkStore }), ...this.problemSources.flatMap((p) => p())]
  }

  /** `checkStore`: try the store's write lock too (which may wait up to a second for another writer). */
  status(now = Date.now(), checkStore = true): GatewayStatus {
    return this.build(now, checkStore).status
  }

  view(now = Date.now()): StatusView {
    const { status, devices } = this.build(now, false)
    const commands: CommandView[] = this.gateway.store.recentCommands(now - HOUR, 200).map(commandView)
    const discovered = this.gateway.discoveredSoFar().map((d) => ({ protocol: d.protocol, identity: d.identity, address: d.address, last_seen: isoWithOffset(new Date(d.lastSeen)) }))
    const refused = [...this.refused.values()].reverse()
    return { now: isoWithOffset(new Date(now)), gateway: status, devices, discovered, commands, records_per_minute: this.activity.perMinuteLastHour(now), refused }
  }

  private build(now: number, checkStore: boolean): { status: GatewayStatus; devices: DeviceView[] } {
    const gw = this.gateway
    const presence = new Map(gw.presence().map((p) => [p.device, p]))
    const queued = new Map<string, number>()
    const queueByProtocol: Record<string, number> = {}
    let queueTotal = 0
    for (const c of gw.store.openCommandCounts()) {
      queued.set(c.device, (queued.get(c.device) ?? 0) + c.count)
      queueByProtocol[c.protocol] = (queueByProtocol[c.protocol] ?? 0) + c.count
      queueTotal += c.count
    }
    const byProtocol: Record<string, { online: number; offline: number }> = {}
    const silent: SilentDevice[] = []
    const devices: DeviceView[] = gw.devices().map((d) => {
      const p = presence.get(d.name)
      const { online, silent: isSilent, lastCall, interval } = this.presenceOf(d.name, now)
      const counts = (byProtocol[d.protocol] ??= { online: 0, offline: 0 })
      counts[online ? 'online' : 'offline']++
      if (isSilent) {
        silent.push({ device: d.name, protocol: d.protocol, last_seen: p!.lastSeen!, silent_seconds: Math.round((now - lastCall!) / 1000), interval_seconds: Math.round(interval! / 100) / 10 })
      }
      const lastRecord = this.activity.lastRecordOf(d.name)
      return {
        name: d.name, protocol: d.protocol, tags: d.tags ?? [], online, last_seen: p?.lastSeen ?? null, address: p?.address ?? '',
        queued: queued.get(d.name) ?? 0, last_record: lastRecord !== undefined ? isoWithOffset(new Date(lastRecord)) : null, silent: isSilent,
      }
    })
    const online = devices.filter((d) => d.online).length
    const status: GatewayStatus = {
      pid: process.pid,
      host: hostname(),
      mode: this.mode,
      started_at: isoWithOffset(new Date(gw.startedAt)),
      uptime_seconds: Math.round((now - gw.startedAt) / 1000),
      ports: { http: gw.httpPort, ...Object.fromEntries(Object.entries(gw.bound).filter(([, v]) => typeof v === 'number')) },
      bind: gw.settings.bind,
      devices: { total: devices.length, online, offline: devices.length - online, by_protocol: byProtocol },
      queue_depth: { total: queueTotal, by_protocol: queueByProtocol },
      records_last_hour: this.activity.lastHour(now),
      discovered_devices: gw.discoveredSoFar().length,
      silent,
      problems: this.problems(checkStore),
    }
    return { status, devices }
  }
}

function commandView(c: QueuedCommand): CommandView {
  const v: CommandView = {
    id: c.id, device: c.device, protocol: c.protocol, kind: c.kind, status: COMMAND_STATUS[c.state],
    created_at: isoWithOffset(new Date(c.createdAt)), finished_at: c.finishedAt ? isoWithOffset(new Date(c.finishedAt)) : null,
  }
  if (c.result?.message) v.message = c.result.message
  return v
}

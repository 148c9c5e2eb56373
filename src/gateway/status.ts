import { hostname } from 'node:os'
import type { Gateway } from './gateway.js'
import { EmbeddedFigures, SharedFigures, type StatusFigures } from './status-figures.js'
import type { GatewayInfo, PresenceEntry } from '../store/interface.js'
import type { CommandState, QueuedCommand, RefusedContact } from '../types/gateway.js'
import type { CommandView, DeviceView, GatewayStatus, RefusedView, SilentDevice, StatusDocument, StatusPulse, StatusView } from '../types/status.js'
import { isoWithOffset } from '../util/time.js'

/** Silent: quiet for longer than this many of the device's usual intervals between calls. */
const SILENT_INTERVALS = 3
const HOUR = 3600_000
/** Refused contacts remembered for the page (per device, address and reason). */
const REFUSED_KEPT = 100
/** changeKey's character for presenceCode(). */
const PRESENCE_CODE = ['0', '1', '2', '3']
/** Doors built into a view or a status between two looks at the devices' requests. */
const VIEW_SLICE = 250

/** Lets the devices' requests waiting in the event loop go first. */
export function yieldToRequests(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** A command's state in the words the CLI's results use. */
export const COMMAND_STATUS: Record<CommandState, string> = {
  queued: 'queued', delivered: 'delivered', acknowledged: 'ok', failed: 'failed', expired: 'timeout', unknown: 'unknown',
}

/** What a running gateway says about itself: `doorctl status`, /api/status and the status page. */
export class GatewayMonitor {
  readonly figures: StatusFigures
  private readonly problemSources: (() => string[])[] = []
  private reporter?: NodeJS.Timeout

  /** Commands finished and contacts refused so far: part of changeKey(). */
  private events = 0

  constructor(readonly gateway: Gateway, private readonly mode: 'serve' | 'temporary') {
    const shared = gateway.shared
    this.figures = shared
      ? new SharedFigures(shared.store, () => shared.id, () => gateway.devices().map((d) => d.name))
      : EmbeddedFigures.observing(gateway.store, gateway.devices().map((d) => d.name), (o) => gateway.observe(o))
    // records are not a change of the view: their times and counts go out in the stream's pulses
    gateway.observe({ commandFinished: () => { this.events++ } })
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

  /** Brings the store's figures up to date (a shared store is read at most once a second); call before status(), view() and the metrics. */
  refresh(now = Date.now()): Promise<void> {
    return this.figures.refresh(now)
  }

  /**
   * On a shared store: what this gateway says about itself is kept in the store every `everyMs`,
   * so `doorctl status` on any machine with the store's URL lists every gateway.
   */
  startReporting(everyMs: number): void {
    const shared = this.gateway.shared
    if (!shared || this.reporter) return
    const report = async () => {
      await this.refresh()
      await shared.store.gateways.report(shared.id, await this.status(Date.now(), false))
    }
    const run = () => void report().catch((err: Error) => this.gateway.log.debug('cannot report to the store', { error: err.message }))
    run()
    this.reporter = setInterval(run, everyMs).unref()
  }

  stopReporting(): void {
    if (this.reporter) clearInterval(this.reporter)
    this.reporter = undefined
  }

  /**
   * A cheap fingerprint of what the status page shows: each door's state (online, silent,
   * offline), the open commands, commands finished, contacts refused, discovered devices and
   * problems. The live stream builds a whole view only when it changes (bench section 13); the
   * doors' last calls and records, which move all the time, go out in pulses.
   */
  changeKey(now = Date.now()): string {
    const gw = this.gateway
    // one character per door, in the inventory's order (the revision says when that order changed)
    let states = ''
    for (const d of gw.devices()) states += PRESENCE_CODE[this.presenceCode(d.name, now)]
    let open = ''
    for (const c of this.figures.openCommandCounts()) open += `${c.device}:${c.count},`
    return `${gw.inventoryRevision}|${states}|${open}|${this.events}|${gw.discoveredSoFar().length}|${this.problems(false).join(';')}`
  }

  /**
   * What moves between changes, in the order of the last view's devices (the same until the
   * inventory changes, which is a change): each door's last call and latest record (ms), records
   * per minute. A few numbers a door, where a view is a few hundred bytes a door.
   */
  pulse(now = Date.now()): StatusPulse {
    const devices = this.gateway.devices()
    return {
      now: isoWithOffset(new Date(now)),
      last_seen: devices.map((d) => this.lastCallOf(d.name) ?? null),
      last_record: devices.map((d) => this.figures.lastRecordOf(d.name) ?? null),
      records_per_minute: this.figures.perMinuteLastHour(now),
    }
  }

  /** presenceOf() as a number (1 online, 2 silent), for changeKey's thousands of doors a second without an object each. */
  private presenceCode(device: string, now: number): number {
    const gw = this.gateway
    const lastCall = this.lastCallOf(device)
    if (lastCall === undefined) return 0
    const interval = gw.intervalOf(device)
    return (now - lastCall < gw.settings.offlineAfterMs ? 1 : 0) + (interval !== undefined && now - lastCall > SILENT_INTERVALS * interval ? 2 : 0)
  }

  /** Doors online and offline per protocol, without building the devices' views (metrics). */
  deviceCounts(now = Date.now()): Record<string, { online: number; offline: number }> {
    const byProtocol: Record<string, { online: number; offline: number }> = {}
    for (const d of this.gateway.devices()) {
      const counts = (byProtocol[d.protocol] ??= { online: 0, offline: 0 })
      counts[this.presenceCode(d.name, now) & 1 ? 'online' : 'offline']++
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
    return { online: (code & 1) !== 0, silent: (code & 2) !== 0, lastCall: this.lastCallOf(device), interval: this.gateway.intervalOf(device) }
  }

  /** The device's latest call to this gateway or, on a shared store, to any. */
  private lastCallOf(device: string): number | undefined {
    return this.presenceRowOf(device)?.lastSeen
  }

  /** Where and when the device called last: this gateway's own row or, if newer, what a gateway saved in the shared store. */
  private presenceRowOf(device: string): PresenceEntry | undefined {
    const here = this.gateway.presenceRowOf(device)
    const stored = this.figures.storedPresence(device)
    return !stored || (here && here.lastSeen >= stored.lastSeen) ? here : stored
  }

  /** Adds listeners of its own (the control socket, the admin listener) to what problems() checks. */
  addProblems(source: () => string[]): void {
    this.problemSources.push(source)
  }

  /** Listeners down and (`checkStore`) a store that takes no write; empty when healthy. */
  problems(checkStore = true): string[] {
    const storeProblem = this.figures.problem()
    return [...this.gateway.problems({ store: checkStore }), ...(storeProblem ? [storeProblem] : []), ...this.problemSources.flatMap((p) => p())]
  }

  /** What `doorctl status --json` prints: this gateway and, on a shared store, the others as they last reported. */
  async document(now = Date.now()): Promise<StatusDocument> {
    const shared = this.gateway.shared
    const others = this.figures.otherGateways().map((g) => reportedStatus(g, now))
    return { ok: true, ...(shared ? { store: shared.store.description } : {}), gateways: [await this.status(now), ...others] }
  }

  /** `checkStore`: try the store's write lock too (which may wait up to a second for another writer). */
  async status(now = Date.now(), checkStore = true): Promise<GatewayStatus> {
    return (await this.build(now, checkStore)).status
  }

  async view(now = Date.now()): Promise<StatusView> {
    const { status, devices } = await this.build(now, false)
    const commands: CommandView[] = this.figures.recentCommands(now - HOUR).map(commandView)
    const discovered = this.gateway.discoveredSoFar().map((d) => ({ protocol: d.protocol, identity: d.identity, address: d.address, last_seen: isoWithOffset(new Date(d.lastSeen)) }))
    const refused = [...this.refused.values()].reverse()
    const shared = this.gateway.shared
    const site = shared && {
      store: shared.store.description,
      other_gateways: this.figures.otherGateways().map((g) => ({ id: g.id, host: g.host, pid: g.pid, devices_here: (g.status as GatewayStatus | undefined)?.devices_here ?? null })),
    }
    return { now: isoWithOffset(new Date(now)), gateway: status, devices, discovered, commands, records_per_minute: this.figures.perMinuteLastHour(now), refused, ...site }
  }

  /** Yields to the devices' requests every VIEW_SLICE doors: thousands of doors are tens of milliseconds, a stall in their answers. */
  private async build(now: number, checkStore: boolean): Promise<{ status: GatewayStatus; devices: DeviceView[] }> {
    const gw = this.gateway
    const queued = new Map<string, number>()
    const queueByProtocol: Record<string, number> = {}
    let queueTotal = 0
    for (const c of this.figures.openCommandCounts()) {
      queued.set(c.device, (queued.get(c.device) ?? 0) + c.count)
      queueByProtocol[c.protocol] = (queueByProtocol[c.protocol] ?? 0) + c.count
      queueTotal += c.count
    }
    const byProtocol: Record<string, { online: number; offline: number }> = {}
    const silent: SilentDevice[] = []
    let here = 0
    const devices: DeviceView[] = []
    for (const [i, d] of gw.devices().entries()) {
      if (i > 0 && i % VIEW_SLICE === 0) await yieldToRequests()
      const p = this.presenceRowOf(d.name)
      const lastSeen = p ? isoWithOffset(new Date(p.lastSeen)) : null
      const { online, silent: isSilent, lastCall, interval } = this.presenceOf(d.name, now)
      const counts = (byProtocol[d.protocol] ??= { online: 0, offline: 0 })
      counts[online ? 'online' : 'offline']++
      if (online && p === gw.presenceRowOf(d.name)) here++
      if (isSilent) {
        silent.push({ device: d.name, protocol: d.protocol, last_seen: lastSeen!, silent_seconds: Math.round((now - lastCall!) / 1000), interval_seconds: Math.round(interval! / 100) / 10 })
      }
      const lastRecord = this.figures.lastRecordOf(d.name)
      devices.push({
        name: d.name, protocol: d.protocol, tags: d.tags ?? [], online, last_seen: lastSeen, address: p?.address ?? '',
        queued: queued.get(d.name) ?? 0, last_record: lastRecord !== undefined ? isoWithOffset(new Date(lastRecord)) : null, silent: isSilent,
      })
    }
    const online = devices.filter((d) => d.online).length
    const status: GatewayStatus = {
      ...(gw.shared ? { id: gw.shared.id, devices_here: here } : {}),
      pid: process.pid,
      host: hostname(),
      mode: this.mode,
      started_at: isoWithOffset(new Date(gw.startedAt)),
      uptime_seconds: Math.round((now - gw.startedAt) / 1000),
      ports: { http: gw.httpPort, ...Object.fromEntries(Object.entries(gw.bound).filter(([, v]) => typeof v === 'number')) },
      bind: gw.settings.bind,
      devices: { total: devices.length, online, offline: devices.length - online, by_protocol: byProtocol },
      queue_depth: { total: queueTotal, by_protocol: queueByProtocol },
      records_last_hour: this.figures.perMinuteLastHour(now).reduce((a, b) => a + b, 0),
      discovered_devices: gw.discoveredSoFar().length,
      silent,
      problems: this.problems(checkStore),
    }
    return { status, devices }
  }
}

/**
 * Another gateway on a shared store, as it last reported itself (every few seconds); one that has
 * not reported yet is shown from its registration.
 */
export function reportedStatus(g: GatewayInfo, now = Date.now()): GatewayStatus {
  const r = g.status as GatewayStatus | undefined
  if (r && typeof r === 'object' && typeof r.pid === 'number' && r.devices && r.queue_depth) {
    return { ...r, id: g.id, uptime_seconds: Math.round((now - g.startedAt) / 1000) }
  }
  return {
    id: g.id, pid: g.pid, host: g.host, mode: 'serve', started_at: isoWithOffset(new Date(g.startedAt)), uptime_seconds: Math.round((now - g.startedAt) / 1000),
    ports: Object.fromEntries(Object.entries(g.ports).filter(([, v]) => typeof v === 'number')) as Record<string, number>, bind: '',
    devices: { total: 0, online: 0, offline: 0, by_protocol: {} }, queue_depth: { total: 0, by_protocol: {} },
    records_last_hour: 0, discovered_devices: 0, silent: [], problems: ['this gateway has not reported its figures to the store yet'],
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

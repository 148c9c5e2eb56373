import { lastHourByMinute, RecordActivity } from './activity.js'
import type { GatewayStore } from '../store/gateway-store.js'
import type { GatewayInfo, OpenCommandCount, PresenceEntry, Store } from '../store/interface.js'
import type { QueuedCommand } from '../types/gateway.js'
import type { GatewayObserver } from './gateway.js'

const HOUR = 3600_000
/** The newest commands the status page lists. */
export const RECENT_COMMANDS = 200
/** A shared store is read again once its figures are older than this (ms): one page, one scrape or one report a second at most. */
const SHARED_MAX_AGE_MS = 1000

/**
 * What the status page, /metrics and `doorctl status` show that lives in the store: open commands,
 * the newest commands, records per minute, each door's latest record; on a shared store also what
 * the other gateways saved (presence, their own reports). `refresh()` first, then the reads are
 * synchronous.
 */
export interface StatusFigures {
  refresh(now: number): Promise<void>
  openCommandCounts(): OpenCommandCount[]
  recentCommands(since: number): QueuedCommand[]
  /** Records received in each of the last 60 minutes, oldest first (the current minute last). */
  perMinuteLastHour(now: number): number[]
  lastRecordOf(device: string): number | undefined
  /** The presence the gateways saved in a shared store (none for the embedded store: this gateway is the only one). */
  storedPresence(device: string): PresenceEntry | undefined
  /** The other live gateways on a shared store, with what they last reported. */
  otherGateways(): GatewayInfo[]
  /** Why the store could not be read, if the last look failed. */
  problem(): string | undefined
}

/** The embedded store: read as asked (SQLite, synchronous), records counted as the gateway spools them. */
export class EmbeddedFigures implements StatusFigures {
  constructor(private readonly store: GatewayStore, private readonly activity: RecordActivity) {}

  static observing(store: GatewayStore, devices: readonly string[], observe: (o: GatewayObserver) => void): EmbeddedFigures {
    const activity = new RecordActivity(store, devices)
    observe(activity)
    return new EmbeddedFigures(store, activity)
  }

  async refresh(): Promise<void> {}
  openCommandCounts(): OpenCommandCount[] { return this.store.openCommandCounts() }
  recentCommands(since: number): QueuedCommand[] { return this.store.recentCommands(since, RECENT_COMMANDS) }
  perMinuteLastHour(now: number): number[] { return this.activity.perMinuteLastHour(now) }
  lastRecordOf(device: string): number | undefined { return this.activity.lastRecordOf(device) }
  storedPresence(): undefined { return undefined }
  otherGateways(): GatewayInfo[] { return [] }
  problem(): undefined { return undefined }
}

/**
 * A shared store (PostgreSQL): the whole site's figures, whichever gateway took the records or
 * heard the doors, read at most once a second whoever asks, kept when a read fails (the failure
 * is a problem of /healthz then).
 */
export class SharedFigures implements StatusFigures {
  private open: OpenCommandCount[] = []
  private recent: QueuedCommand[] = []
  private perMinute: Record<number, number> = {}
  private lastRecord: Record<string, number> = {}
  private presence = new Map<string, PresenceEntry>()
  private gateways: GatewayInfo[] = []
  private failure?: string
  private readAt = -Infinity
  private reading?: Promise<void>

  constructor(private readonly store: Store, private readonly selfId: () => string, private readonly devices: () => string[]) {}

  refresh(now: number): Promise<void> {
    if (now - this.readAt < SHARED_MAX_AGE_MS) return Promise.resolve()
    this.reading ??= this.read(now).finally(() => { this.reading = undefined })
    return this.reading
  }

  private async read(now: number): Promise<void> {
    const s = this.store
    try {
      const [open, recent, activity, presence, gateways] = await Promise.all([
        s.commands.openCounts(), s.commands.recent(now - HOUR, RECENT_COMMANDS), s.records.activity(now - HOUR, this.devices()), s.presence.all(), s.gateways.live(),
      ])
      this.open = open
      this.recent = recent
      this.perMinute = activity.perMinute
      this.lastRecord = activity.lastRecord
      this.presence = new Map(presence.map((p) => [p.device, p]))
      this.gateways = gateways.filter((g) => g.id !== this.selfId())
      this.failure = undefined
    } catch (err) {
      this.failure = `cannot read the store ${s.description}: ${(err as Error).message}`
    }
    this.readAt = now
  }

  openCommandCounts(): OpenCommandCount[] { return this.open }
  recentCommands(since: number): QueuedCommand[] { return this.recent.filter((c) => c.createdAt >= since) }

  perMinuteLastHour(now: number): number[] {
    return lastHourByMinute(now, (m) => this.perMinute[m])
  }

  lastRecordOf(device: string): number | undefined { return this.lastRecord[device] }
  storedPresence(device: string): PresenceEntry | undefined { return this.presence.get(device) }
  otherGateways(): GatewayInfo[] { return this.gateways }
  problem(): string | undefined { return this.failure }
}

import type { GatewayStore } from '../store/gateway-store.js'
import type { GatewayObserver } from './gateway.js'

const MINUTE = 60_000
const MINUTES = 60

/**
 * Records per minute over the last hour and each device's latest record time, kept in memory from
 * the gateway's record hook (seeded once from the spool at start), so the status page and
 * `doorctl status` cost no query of the spool however large it grows.
 */
export class RecordActivity implements GatewayObserver {
  /** Minute number (ms / 60 000) → records received in it. */
  private readonly perMinute = new Map<number, number>()
  private readonly lastRecord = new Map<string, number>()

  constructor(store: GatewayStore, devices: readonly string[], now = Date.now()) {
    for (const r of store.receivedSince(now - MINUTES * MINUTE)) this.count(r.receivedAt)
    for (const d of devices) {
      const t = store.lastRecordTime(d)
      if (t !== undefined) this.lastRecord.set(d, t)
    }
  }

  recordSpooled(_protocol: string, device: string, time: number): void {
    this.count(Date.now())
    if (time > (this.lastRecord.get(device) ?? 0)) this.lastRecord.set(device, time)
  }

  /** Records received in each of the last 60 minutes, oldest first (the current minute last). */
  perMinuteLastHour(now = Date.now()): number[] {
    const current = Math.floor(now / MINUTE)
    for (const m of this.perMinute.keys()) if (m <= current - MINUTES) this.perMinute.delete(m)
    return lastHourByMinute(now, (m) => this.perMinute.get(m))
  }

  lastHour(now = Date.now()): number {
    return this.perMinuteLastHour(now).reduce((a, b) => a + b, 0)
  }

  lastRecordOf(device: string): number | undefined {
    return this.lastRecord.get(device)
  }

  private count(at: number): void {
    const m = Math.floor(at / MINUTE)
    this.perMinute.set(m, (this.perMinute.get(m) ?? 0) + 1)
  }
}

/** The counts of the last 60 minutes, oldest first (the current minute last); `countOf` takes a minute number (ms / 60 000). */
export function lastHourByMinute(now: number, countOf: (minute: number) => number | undefined): number[] {
  const current = Math.floor(now / MINUTE)
  return Array.from({ length: MINUTES }, (_, i) => countOf(current - MINUTES + 1 + i) ?? 0)
}

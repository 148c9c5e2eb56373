import { TimeoutError } from '../types/errors.js'
import type { CollectOutcome } from '../types/gateway.js'

/** One device being collected: what it did since the collection began. */
interface Watch {
  heartbeats: number
  /** New (not duplicate) records since the collection began; uploads of any record since its latest heartbeat. */
  records: number
  uploadsSinceHeartbeat: number
  drained: boolean
  waiters: Set<() => void>
}

/**
 * Record collection for one-shot pulls (no serve): a device is *drained* once it has called and
 * then sent nothing for one of its heartbeat intervals, i.e. at a heartbeat with no record
 * uploaded (new or re-sent) since its previous heartbeat — or at a heartbeat its protocol knows
 * the device sends only when it holds nothing more (`idle`: httpv2's keepalive after a whole idle
 * interval). Protocols report heartbeats (GatewayContext.heartbeat), the gateway reports uploads;
 * the waiting here is the same for all.
 */
export class Collector {
  private readonly watches = new Map<string, Watch>()
  private readonly users = new Map<string, number>()

  /** A heartbeat of `device` (ignored unless it is being collected). */
  heartbeat(device: string, idle: boolean): void {
    const w = this.watches.get(device)
    if (!w || w.drained) return
    if (idle || (w.heartbeats > 0 && w.uploadsSinceHeartbeat === 0)) {
      w.drained = true
      for (const wake of w.waiters) wake()
      w.waiters.clear()
      return
    }
    w.heartbeats++
    w.uploadsSinceHeartbeat = 0
  }

  /** A record `device` uploaded: new, or one the spool had (a re-send is activity too, not a new record). */
  record(device: string, fresh: boolean): void {
    const w = this.watches.get(device)
    if (!w) return
    if (fresh) w.records++
    w.uploadsSinceHeartbeat++
  }

  /**
   * Resolves once `device` is drained, counting only what it does from now on; rejects with a
   * TimeoutError after `timeoutMs` (saying whether it called at all), or with `signal`'s reason.
   */
  async wait(device: string, opts: { timeoutMs: number; signal: AbortSignal }): Promise<CollectOutcome> {
    let w = this.watches.get(device)
    if (!w) this.watches.set(device, (w = { heartbeats: 0, records: 0, uploadsSinceHeartbeat: 0, drained: false, waiters: new Set() }))
    this.users.set(device, (this.users.get(device) ?? 0) + 1)
    const watch = w
    try {
      if (!watch.drained) await this.drainedOrDeadline(device, watch, opts)
      return { records: watch.records }
    } finally {
      const n = (this.users.get(device) ?? 1) - 1
      if (n > 0) this.users.set(device, n)
      else {
        this.users.delete(device)
        this.watches.delete(device)
      }
    }
  }

  private drainedOrDeadline(device: string, w: Watch, opts: { timeoutMs: number; signal: AbortSignal }): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (opts.signal.aborted) return reject(opts.signal.reason)
      const wake = () => {
        done()
        resolve()
      }
      const onAbort = () => {
        done()
        reject(opts.signal.reason)
      }
      const onDeadline = () => {
        done()
        const seconds = opts.timeoutMs / 1000
        reject(w.heartbeats === 0 && w.records === 0
          ? new TimeoutError(`${device} did not call the gateway within ${seconds}s (is it online and pointed at this gateway?)`, 'raise --timeout to more than twice the device\'s heartbeat interval, or check `doorctl device list` for when it was last seen')
          : new TimeoutError(`${device} was still uploading records when --timeout (${seconds}s) ran out; the rest comes with the next pull`, 'raise --timeout for the backlog to fit'))
      }
      // setTimeout takes at most 2^31-1 ms (a longer one fires at once)
      const timer = opts.timeoutMs < 2 ** 31 ? setTimeout(onDeadline, opts.timeoutMs) : undefined
      const done = () => {
        clearTimeout(timer)
        opts.signal.removeEventListener('abort', onAbort)
        w.waiters.delete(wake)
      }
      w.waiters.add(wake)
      opts.signal.addEventListener('abort', onAbort, { once: true })
    })
  }
}

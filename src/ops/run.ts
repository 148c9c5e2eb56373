import { DoorctlError, TimeoutError, statusOf, type ResultStatus } from '../types/errors.js'
import { loadDriver } from '../drivers/registry.js'
import type { DeviceDriver, DeviceEntry, Logger, OperationContext } from '../types/driver.js'
import type { DriverEnv } from '../types/driver-module.js'
import type { ProgressListener } from '../types/progress.js'

/** Statuses that count as success for the exit code (queued: --no-wait asked for exactly that; unchanged: nothing needed sending). */
export const SUCCESS: ReadonlySet<ResultStatus> = new Set(['ok', 'unchanged', 'queued', 'skipped'])

/** One device's outcome, as the `results` array of the CLI contract has it. */
export interface TargetResult {
  device: string
  protocol: string
  ok: boolean
  status: ResultStatus
  message: string
  code?: string
  device_code?: number | string
  [field: string]: unknown
}

export interface RunOptions {
  concurrency: number
  timeoutMs: number
  signal: AbortSignal
  env: DriverEnv
  /** timeoutMs bounds each request, not the whole operation (long imports, big pulls). */
  perRequest?: boolean
  /** false = --no-wait */
  wait?: boolean
  /** Told when each device starts and ends (and, by the operation, of items done). */
  progress?: ProgressListener
}

/** What an operation returns for one device: a message and any extra result fields. */
export interface Outcome {
  message?: string
  status?: ResultStatus
  fields?: Record<string, unknown>
}

export { mapPool } from '../util/pool.js'

/** At most `limit` holders at once; the others wait in arrival order. */
export class Slots {
  private free: number
  private readonly queue: (() => void)[] = []

  constructor(limit: number) {
    this.free = Math.max(1, limit)
  }

  take(): Promise<void> {
    if (this.free > 0) {
      this.free--
      return Promise.resolve()
    }
    return new Promise((resolve) => this.queue.push(resolve))
  }

  give(): void {
    const next = this.queue.shift()
    if (next) next()
    else this.free++
  }
}

/**
 * One device's hold on a slot: given back while the device only waits (`idle`), taken again
 * after; once the device is done (`end`), a wait that finishes late takes nothing.
 */
class Lease {
  private held = false
  private ended = false

  constructor(private readonly slots: Slots) {}

  async take(): Promise<void> {
    await this.slots.take()
    if (this.ended) this.slots.give()
    else this.held = true
  }

  private give(): void {
    if (!this.held) return
    this.held = false
    this.slots.give()
  }

  async idle<T>(work: () => Promise<T>): Promise<T> {
    this.give()
    try {
      return await work()
    } finally {
      if (!this.ended) await this.take()
    }
  }

  end(): void {
    this.ended = true
    this.give()
  }
}

/**
 * A context for one device; `overall` makes timeoutMs a deadline for the whole operation (else a
 * per-request budget). The device's signal follows the command's through AbortSignal.any, which
 * adds no listener to the command's signal: a thousand devices at once raise no listener warning.
 */
export function contextFor(device: DeviceEntry, opts: Pick<RunOptions, 'signal' | 'timeoutMs' | 'wait'>, log: Logger, overall = true, lease?: Lease): OperationContext & { dispose(): void } {
  const deadline = new AbortController()
  const timer = overall && Number.isFinite(opts.timeoutMs)
    ? setTimeout(() => deadline.abort(new TimeoutError(`${device.name}: no answer within ${opts.timeoutMs / 1000}s`, 'raise --timeout, or check that the device is reachable')), opts.timeoutMs)
    : undefined
  return {
    signal: AbortSignal.any([opts.signal, deadline.signal]),
    timeoutMs: opts.timeoutMs,
    log,
    wait: opts.wait,
    idle: lease ? (work) => lease.idle(work) : undefined,
    dispose() {
      if (timer) clearTimeout(timer)
    },
  }
}

/**
 * Runs one operation on every target, at most `concurrency` devices worked on at once — except
 * while a device only waits on the gateway (push-style devices): every device's command is then
 * queued at once and all outcomes are awaited together. A failing, unsupported or timed-out
 * device becomes a result with that status; the other devices carry on.
 */
export async function runOnTargets(
  devices: readonly DeviceEntry[],
  opts: RunOptions,
  op: (driver: DeviceDriver, ctx: OperationContext, device: DeviceEntry) => Promise<Outcome>,
): Promise<TargetResult[]> {
  const slots = new Slots(opts.concurrency)
  return Promise.all(devices.map(async (device): Promise<TargetResult> => {
    const lease = new Lease(slots)
    await lease.take()
    const base = { device: device.name, protocol: device.protocol }
    const ctx = contextFor(device, opts, opts.env.log, !opts.perRequest, lease)
    let driver: DeviceDriver | undefined
    let ok = false
    opts.progress?.begin(device.name)
    try {
      driver = (await loadDriver(device.protocol)).createDriver(device, opts.env)
      const outcome = await raceAbort(op(driver, ctx, device), ctx.signal)
      const status = outcome.status ?? 'ok'
      ok = SUCCESS.has(status)
      return { ...base, ok, status, message: outcome.message ?? 'done', ...outcome.fields }
    } catch (err) {
      return { ...base, ...errorResult(err) }
    } finally {
      ctx.dispose()
      await driver?.close().catch(() => {})
      lease.end()
      opts.progress?.end(device.name, ok)
    }
  }))
}

export interface ErrorFields {
  ok: false
  status: ResultStatus
  message: string
  code?: string
  suggestion?: string
  device_code?: number | string
}

export function errorResult(err: unknown): ErrorFields {
  const status = statusOf(err)
  const message = err instanceof Error ? err.message : String(err)
  const r: ErrorFields = { ok: false, status, message }
  if (err instanceof DoorctlError) {
    r.code = err.code
    if (err.suggestion) r.suggestion = err.suggestion
    const deviceCode = (err as { deviceCode?: number | string }).deviceCode
    if (deviceCode !== undefined) r.device_code = deviceCode
  }
  return r
}

/** Rejects as soon as `signal` aborts (with its reason), even if the operation ignores the signal. */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v) },
      (e) => { signal.removeEventListener('abort', onAbort); reject(e) },
    )
  })
}

import { DoorctlError, TimeoutError, statusOf, type ResultStatus } from '../types/errors.js'
import { loadDriver } from '../drivers/registry.js'
import type { DeviceDriver, DeviceEntry, Logger, OperationContext } from '../types/driver.js'
import type { DriverEnv } from '../types/driver-module.js'
import type { ProgressListener } from '../types/progress.js'

/** Statuses that count as success for the exit code (queued: --no-wait asked for exactly that). */
export const SUCCESS: ReadonlySet<ResultStatus> = new Set(['ok', 'queued', 'skipped'])

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

/** Runs `items` through `worker` with at most `limit` at once, keeping input order in the output. */
export async function mapPool<T, R>(items: readonly T[], limit: number, worker: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await worker(items[i], i)
    }
  })
  await Promise.all(lanes)
  return out
}

/** A context for one device; `overall` makes timeoutMs a deadline for the whole operation (else a per-request budget). */
export function contextFor(device: DeviceEntry, opts: Pick<RunOptions, 'signal' | 'timeoutMs' | 'wait'>, log: Logger, overall = true): OperationContext & { dispose(): void } {
  const ac = new AbortController()
  const onAbort = () => ac.abort(opts.signal.reason)
  opts.signal.addEventListener('abort', onAbort, { once: true })
  const timer = overall && Number.isFinite(opts.timeoutMs)
    ? setTimeout(() => ac.abort(new TimeoutError(`${device.name}: no answer within ${opts.timeoutMs / 1000}s`, 'raise --timeout, or check that the device is reachable')), opts.timeoutMs)
    : undefined
  return {
    signal: ac.signal,
    timeoutMs: opts.timeoutMs,
    log,
    wait: opts.wait,
    dispose() {
      if (timer) clearTimeout(timer)
      opts.signal.removeEventListener('abort', onAbort)
    },
  }
}

/**
 * Runs one operation on every target with bounded concurrency. A failing, unsupported or
 * timed-out device becomes a result with that status; the other devices carry on.
 */
export async function runOnTargets(
  devices: readonly DeviceEntry[],
  opts: RunOptions,
  op: (driver: DeviceDriver, ctx: OperationContext, device: DeviceEntry) => Promise<Outcome>,
): Promise<TargetResult[]> {
  return mapPool(devices, opts.concurrency, async (device): Promise<TargetResult> => {
    const base = { device: device.name, protocol: device.protocol }
    const ctx = contextFor(device, opts, opts.env.log, !opts.perRequest)
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
      opts.progress?.end(device.name, ok)
    }
  })
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

import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { Registry } from 'prom-client'
import { UsageError } from '../../types/errors.js'
import type { Logger } from '../../types/driver.js'
import type { TlsMaterial } from '../../types/gateway.js'
import { yieldToRequests, type GatewayMonitor } from '../status.js'
import type { GatewayMessage, ListenerMessage, ListenerSetup } from './listener-worker.js'
import { createMetrics } from './metrics.js'

export interface AdminOptions {
  port: number
  bind: string
  /** Required of every request but the page itself; undefined: open (loopback only). */
  token?: string
  log: Logger
  /** How often the live stream looks for changes (ms). */
  tickMs?: number
  /** How often the doors' last calls go out between whole views (ms; PULSE_MS). */
  pulseMs?: number
  /** serve --tls-cert/--tls-key: the admin listener speaks HTTPS too (a bearer token never crosses the LAN in clear). */
  tls?: TlsMaterial
}

/** A change of what the page shows is sent at once as a whole view; otherwise a whole view this often (ages of commands, …). */
const REFRESH_MS = 60_000
/** Between views, the doors' last calls and records go out this often, a few numbers a door (a whole view of 2,000 doors is 600 KB to build). */
const PULSE_MS = 5000
/** Doors stringified at a time for the page. */
const JSON_SLICE = 250

/**
 * The admin listener of `doorctl serve`, apart from the devices' port: the status page, its live
 * stream (server-sent events), /metrics, /healthz and /api/status. Its HTTP runs in a worker
 * thread (listener-worker.ts): served in the gateway's thread, a handful of admin requests made
 * every device request slower for good (serve's CPU per keepalive +15 % after four 404s in 20 s,
 * bench section 13), V8 having optimized node's HTTP code for the devices' traffic alone. This
 * thread makes what the answers hold and the stream's frames.
 */
export class AdminServer {
  private worker?: Worker
  private readonly registry: Registry
  private streams = 0
  private ticker?: NodeJS.Timeout
  private last = { key: '', at: 0, pulse: 0 }
  private portValue = 0
  private up = false

  constructor(private readonly monitor: GatewayMonitor, private readonly opts: AdminOptions) {
    this.registry = createMetrics(monitor)
  }

  get port(): number {
    return this.portValue
  }

  /** `https` with --tls-cert, else `http`. */
  get scheme(): 'http' | 'https' {
    return this.opts.tls ? 'https' : 'http'
  }

  get listening(): boolean {
    return this.up
  }

  async start(): Promise<void> {
    const tls = this.opts.tls
    const setup: ListenerSetup = { port: this.opts.port, bind: this.opts.bind, token: this.opts.token, tls: tls && { cert: tls.cert, key: tls.key } }
    const worker = new Worker(workerFile(), { workerData: setup })
    this.worker = worker
    worker.unref()
    await new Promise<void>((resolve, reject) => {
      worker.on('message', (m: ListenerMessage) => {
        if (m.type === 'listening') {
          this.portValue = m.port
          this.up = true
          resolve()
        } else if (m.type === 'failed') {
          reject(m.code === 'EADDRINUSE' || m.code === 'EADDRNOTAVAIL'
            ? new UsageError(`admin port ${this.opts.port} on ${this.opts.bind} is ${m.code === 'EADDRINUSE' ? 'in use' : 'not an address of this machine'}`, 'pick another with --admin-port (0 = any free port) or --admin-bind')
            : new Error(`the admin listener could not start: ${m.message}`))
        } else this.onMessage(m)
      })
      worker.once('error', (err) => {
        this.up = false
        this.opts.log.warn('the admin listener stopped', { error: err.message })
        reject(err)
      })
      worker.once('exit', () => {
        this.up = false
        reject(new Error('the admin listener stopped'))
      })
    })
  }

  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker)
    this.ticker = undefined
    const worker = this.worker
    if (!worker || !this.up) {
      await worker?.terminate()
      return
    }
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
    this.post({ type: 'stop' })
    const late = setTimeout(() => void worker.terminate(), 2000)
    await exited
    clearTimeout(late)
  }

  private post(m: GatewayMessage): void {
    this.worker?.postMessage(m)
  }

  private onMessage(m: ListenerMessage): void {
    if (m.type === 'ask') {
      this.answer(m.path).then(
        (a) => this.post({ type: 'answer', id: m.id, ...a }),
        (err: Error) => {
          this.opts.log.warn('admin request failed', { path: m.path, error: err.message })
          this.post({ type: 'answer', id: m.id, status: 500, body: JSON.stringify({ ok: false, error: 'internal error' }), contentType: 'application/json' })
        },
      )
    } else if (m.type === 'streams') {
      const more = m.count > this.streams
      this.streams = m.count
      if (this.streams === 0 && this.ticker) {
        clearInterval(this.ticker)
        this.ticker = undefined
      }
      // a new page gets a whole view at once (the others get it too: one frame for all)
      if (more) {
        this.last = { key: '', at: 0, pulse: 0 }
        void this.tick()
        this.ticker ??= setInterval(() => void this.tick(), this.opts.tickMs ?? 1000).unref()
      }
    } else if (m.type === 'log') this.opts.log.warn(m.msg, m.fields)
  }

  /** What the worker's asked paths answer. */
  private async answer(path: string): Promise<{ status: number; body: string; contentType: string }> {
    const json = 'application/json'
    await this.monitor.refresh()
    switch (path) {
      case '/metrics':
        return { status: 200, body: await metricsText(this.registry), contentType: this.registry.contentType }
      case '/healthz': {
        const problems = this.monitor.problems()
        return problems.length === 0
          ? { status: 200, body: JSON.stringify({ ok: true }), contentType: json }
          : { status: 503, body: JSON.stringify({ ok: false, reason: problems.join('; '), problems }), contentType: json }
      }
      case '/api/status':
        // on a shared store, every gateway's: what `doorctl status --json` prints
        return { status: 200, body: JSON.stringify(await this.monitor.document()), contentType: json }
      case '/api/view':
        return { status: 200, body: await this.viewJson(), contentType: json }
      default:
        return { status: 404, body: JSON.stringify({ ok: false, error: 'not found' }), contentType: json }
    }
  }

  private async tick(): Promise<void> {
    if (this.streams === 0) return
    await this.monitor.refresh()
    if (this.streams === 0) return
    // what a change is: not the clock or the devices' last-seen times, which move with each heartbeat
    const now = Date.now()
    const key = this.monitor.changeKey(now)
    if (key === this.last.key && now - this.last.at < REFRESH_MS) {
      if (now - this.last.pulse < (this.opts.pulseMs ?? PULSE_MS)) return
      this.last.pulse = now
      this.send(`event: pulse\ndata: ${JSON.stringify(this.monitor.pulse(now))}\n\n`)
      return
    }
    this.last = { key, at: now, pulse: now }
    this.send(`event: view\ndata: ${await this.viewJson(now)}\n\n`)
  }

  /** The view as JSON, its doors stringified a slice at a time (600 KB for 2,000 doors: one piece would stall their requests). */
  private async viewJson(now = Date.now()): Promise<string> {
    const { devices, ...rest } = await this.monitor.view(now)
    const parts: string[] = []
    for (let i = 0; i < devices.length; i += JSON_SLICE) {
      if (i > 0) await yieldToRequests()
      parts.push(JSON.stringify(devices.slice(i, i + JSON_SLICE)).slice(1, -1))
    }
    return `${JSON.stringify(rest).slice(0, -1)},"devices":[${parts.join(',')}]}`
  }

  private send(frame: string): void {
    this.post({ type: 'frame', frame })
  }
}

/** registry.metrics(), the devices' requests let in between metrics (the process metrics read /proc and list every socket). */
async function metricsText(registry: Registry): Promise<string> {
  const parts: string[] = []
  for (const metric of registry.getMetricsAsArray()) {
    parts.push(await registry.getSingleMetricAsString(metric.name))
    await yieldToRequests()
  }
  return `${parts.join('\n\n')}\n`
}

/** listener-worker.js beside this file; under the test runner (TypeScript sources) the built one. */
function workerFile(): URL {
  const here = new URL('./listener-worker.js', import.meta.url)
  if (existsSync(fileURLToPath(here))) return here
  return new URL('../../../dist/src/gateway/admin/listener-worker.js', import.meta.url)
}

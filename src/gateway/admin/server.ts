import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import { UsageError } from '../../types/errors.js'
import type { Logger } from '../../types/driver.js'
import type { TlsMaterial } from '../../types/gateway.js'
import type { StatusDocument } from '../../types/status.js'
import { yieldToRequests, type GatewayMonitor } from '../status.js'
import { createMetrics } from './metrics.js'
import { STATUS_PAGE, STATUS_PAGE_CSP } from './page.js'
import { bearerMatches } from './token.js'

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
 * stream (server-sent events), /metrics, /healthz and /api/status.
 */
export class AdminServer {
  private server?: Server
  private readonly registry: Registry
  private readonly streams = new Set<ServerResponse>()
  private ticker?: NodeJS.Timeout
  private last = { key: '', at: 0, pulse: 0 }
  private portValue = 0

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
    return this.server?.listening ?? false
  }

  async start(): Promise<void> {
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      this.handle(req, res).catch((err) => {
        this.opts.log.warn('admin request failed', { path: req.url, error: String(err) })
        if (!res.headersSent) sendJson(res, 500, { ok: false, error: 'internal error' })
        else res.destroy()
      })
    }
    const tls = this.opts.tls
    const server: Server = tls ? createHttpsServer({ cert: tls.cert, key: tls.key }, onRequest) : createServer(onRequest)
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(err.code === 'EADDRINUSE' || err.code === 'EADDRNOTAVAIL'
          ? new UsageError(`admin port ${this.opts.port} on ${this.opts.bind} is ${err.code === 'EADDRINUSE' ? 'in use' : 'not an address of this machine'}`, 'pick another with --admin-port (0 = any free port) or --admin-bind')
          : err)
      })
      server.listen(this.opts.port, this.opts.bind, () => resolve())
    })
    this.portValue = (server.address() as AddressInfo).port
  }

  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker)
    for (const s of this.streams) s.end()
    this.streams.clear()
    if (this.server?.listening) {
      this.server.closeAllConnections()
      await new Promise<void>((resolve) => this.server!.close(() => resolve()))
    }
  }

  /** The gateway's status (on a shared store, every gateway's): what `doorctl status --json` prints. */
  async statusDocument(): Promise<StatusDocument> {
    await this.monitor.refresh()
    return this.monitor.document()
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://admin').pathname
    req.resume()
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { ok: false, error: 'method not allowed' })
    // the page holds no data: it asks for the token itself and sends it with each request
    if (path === '/') {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8', 'content-security-policy': STATUS_PAGE_CSP, 'cache-control': 'no-store',
        'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY',
      })
      res.end(STATUS_PAGE)
      return
    }
    if (this.opts.token !== undefined && !bearerMatches(req.headers.authorization, this.opts.token)) {
      res.setHeader('www-authenticate', 'Bearer realm="doorctl"')
      return sendJson(res, 401, { ok: false, error: req.headers.authorization ? 'wrong token' : 'this admin listener needs Authorization: Bearer TOKEN (--admin-token-file)' })
    }
    switch (path) {
      case '/metrics': {
        await this.monitor.refresh()
        const text = await metricsText(this.registry)
        res.writeHead(200, { 'content-type': this.registry.contentType, 'cache-control': 'no-store' })
        res.end(text)
        return
      }
      case '/healthz': {
        await this.monitor.refresh()
        const problems = this.monitor.problems()
        return sendJson(res, problems.length === 0 ? 200 : 503, problems.length === 0 ? { ok: true } : { ok: false, reason: problems.join('; '), problems })
      }
      case '/api/status':
        return sendJson(res, 200, await this.statusDocument())
      case '/api/view':
        await this.monitor.refresh()
        return sendJsonText(res, 200, await this.viewJson())
      case '/api/events':
        return this.stream(req, res)
      default:
        return sendJson(res, 404, { ok: false, error: 'not found' })
    }
  }

  /** Server-sent events: the whole view at once, then on every change (looked for each tick) or every REFRESH_MS, and pulses between. */
  private stream(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' })
    res.write(`retry: 1000\n\n`)
    this.streams.add(res)
    req.socket.setNoDelay(true)
    res.on('close', () => {
      this.streams.delete(res)
      if (this.streams.size === 0 && this.ticker) {
        clearInterval(this.ticker)
        this.ticker = undefined
      }
    })
    this.last = { key: '', at: 0, pulse: 0 }
    void this.tick()
    this.ticker ??= setInterval(() => void this.tick(), this.opts.tickMs ?? 1000).unref()
  }

  private async tick(): Promise<void> {
    if (this.streams.size === 0) return
    await this.monitor.refresh()
    if (this.streams.size === 0) return
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
    for (const s of this.streams) s.write(frame)
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

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendJsonText(res, status, JSON.stringify(body))
}

function sendJsonText(res: ServerResponse, status: number, data: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'cache-control': 'no-store' })
  res.end(data)
}

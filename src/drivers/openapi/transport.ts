/**
 * openapi transport: one keep-alive undici Pool per device, every request signed with a fresh
 * timestamp (section 4), the answer envelope checked, and network trouble turned into typed errors.
 */
import type { Pool } from 'undici'
import { DeviceError, TimeoutError } from '../../types/errors.js'
import type { OperationContext } from '../../types/driver.js'
import { parseEnvelope, type Envelope } from './codec.js'
import { openapiError } from './errors.js'
import { signedQuery } from './signing.js'

export interface TransportOptions {
  host: string
  port: number
  password: string
  /** Device name, used in suggested commands. */
  name?: string
  /** Connections kept to the device (≥ the requests a driver has in flight). */
  connections?: number
}

export type Query = Record<string, string | number | undefined>

export interface CallOptions {
  query?: Query
  /** JSON body (the *cfg, jsonCmd and user endpoints). */
  body?: unknown
  /** Timestamp (ms) to sign with instead of now: syncTime's timestamp is the time to set (8.1.8). */
  timestamp?: number
  /** Answer codes returned as envelopes instead of thrown (e.g. 50008 "Search List Null"). */
  accept?: readonly number[]
}

/** Why a request failed before an answer, in words (node and undici error codes). */
const NET_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by the device',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EHOSTDOWN: 'host is down',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  EPIPE: 'connection closed by the device',
  UND_ERR_SOCKET: 'connection closed by the device',
  UND_ERR_CLOSED: 'connection closed',
  UND_ERR_DESTROYED: 'connection closed',
}

function errCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const c = (e as { code?: unknown }).code
    if (typeof c === 'string' && (c in NET_REASONS || c.endsWith('TIMEOUT') || c === 'ETIMEDOUT')) return c
  }
  return undefined
}

export class OpenapiTransport {
  readonly address: string
  private readonly origin: string
  private readonly password: string
  private readonly name?: string
  private readonly connections: number
  private pool?: Promise<Pool>

  constructor(opts: TransportOptions) {
    const host = opts.host.includes(':') && !opts.host.startsWith('[') ? `[${opts.host}]` : opts.host
    this.address = `${host}:${opts.port}`
    this.origin = `http://${this.address}`
    this.password = opts.password
    this.name = opts.name
    this.connections = Math.max(1, opts.connections ?? 4)
  }

  private getPool(): Promise<Pool> {
    // Embedded HTTP servers: no pipelining, a few keep-alive connections. Loaded on first use: a
    // dry run only needs this module's neighbours, not undici (~18 MB).
    this.pool ??= import('undici').then((m) => new m.Pool(this.origin, { connections: this.connections, pipelining: 1, keepAliveTimeout: 10_000 }))
    return this.pool
  }

  /** Send one signed request; resolves with the envelope of a `code: 200` answer, throws typed errors otherwise. */
  async call(method: 'GET' | 'POST', path: string, ctx: OperationContext, opts: CallOptions = {}): Promise<Envelope> {
    const what = `${method} ${path}`
    if (ctx.signal.aborted) throw abortError(ctx.signal)
    let url = `${path}?${signedQuery(this.password, opts.timestamp ?? Date.now())}`
    if (opts.query) {
      for (const [k, v] of Object.entries(opts.query)) {
        // AMBIGUITIES openapi #3: "form-data" endpoints carry every parameter in the URL
        if (v !== undefined) url += `&${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`
      }
    }
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body)
    const headers: Record<string, string> = { accept: 'application/json' }
    if (body !== undefined) headers['content-type'] = 'application/json; charset=utf-8'

    // One deadline for the whole exchange (connect, headers, body); ctx.signal cancels.
    const ac = new AbortController()
    let timedOut = false
    // No deadline when the caller gives none (0 or Infinity); setTimeout would turn those into 1 ms.
    const limited = Number.isFinite(ctx.timeoutMs) && ctx.timeoutMs > 0
    const timer = limited
      ? setTimeout(() => {
          timedOut = true
          ac.abort()
        }, Math.min(ctx.timeoutMs, 2 ** 31 - 1))
      : undefined
    const onAbort = (): void => ac.abort()
    ctx.signal.addEventListener('abort', onAbort, { once: true })
    ctx.log.debug('openapi request', { device: this.address, request: what })
    let status: number
    let text: string
    try {
      const res = await (await this.getPool()).request({ method, path: url, headers, body, signal: ac.signal })
      status = res.statusCode
      text = await res.body.text()
    } catch (err) {
      if (ctx.signal.aborted) throw abortError(ctx.signal)
      const code = errCode(err)
      if (timedOut || (code !== undefined && (code.endsWith('TIMEOUT') || code === 'ETIMEDOUT'))) {
        throw new TimeoutError(
          `no answer from ${this.address} within ${formatMs(ctx.timeoutMs)} (${what})`,
          'check that the device is on and reachable from this machine, or raise --timeout',
        )
      }
      const reason = code !== undefined ? NET_REASONS[code] : undefined
      throw new DeviceError(`cannot reach ${this.address}: ${reason ?? (err as Error)?.message ?? String(err)} (${what})`, {
        code: 'unreachable',
        cause: err,
        suggestion: 'check the host and port (openapi default 8899), that the device is on, and that no firewall is in the way',
      })
    } finally {
      clearTimeout(timer)
      ctx.signal.removeEventListener('abort', onAbort)
    }

    let parsed: unknown
    let isJson = true
    try {
      parsed = JSON.parse(text)
    } catch {
      isJson = false
    }
    // AMBIGUITIES openapi #4: no HTTP status is documented for errors; an envelope inside a
    // non-200 answer is still read for its code.
    if (status !== 200) {
      const env = isJson ? tryEnvelope(parsed) : undefined
      if (env && env.code !== 200) throw this.codeError(env, `${what}, HTTP ${status}`)
      throw new DeviceError(`${this.address} answered HTTP ${status}${snippet(text)} to ${what}`, {
        suggestion:
          status === 404 || status === 405
            ? "check that this is an openapi face terminal on the given port (default 8899) and that its firmware has this endpoint"
            : 'retry; reboot the device if it persists',
      })
    }
    if (!isJson) {
      throw new DeviceError(`${this.address} answered HTTP 200 with something that is not JSON${snippet(text)} (${what})`, {
        suggestion: 'check that HOST:PORT is the openapi port of a face terminal (default 8899)',
      })
    }
    const env = parseEnvelope(parsed, what)
    if (env.code !== 200 && !opts.accept?.includes(env.code)) throw this.codeError(env, what)
    return env
  }

  private codeError(env: Envelope, what: string): Error {
    return openapiError(env.code, env.message, env.desc, what, { name: this.name, host: this.address.replace(/:\d+$/, '') })
  }

  async close(): Promise<void> {
    const pending = this.pool
    this.pool = undefined
    const pool = await pending?.catch(() => undefined)
    if (pool) await pool.close().catch(() => pool.destroy())
  }
}

function tryEnvelope(v: unknown): Envelope | undefined {
  try {
    return parseEnvelope(v)
  } catch {
    return undefined
  }
}

function snippet(text: string): string {
  const t = text.replace(/\s+/g, ' ').trim()
  if (t === '') return ''
  return `: "${t.length > 80 ? t.slice(0, 77) + '...' : t}"`
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`
}

/** The error to throw when the caller cancelled: its own reason when it gave one. */
export function abortError(signal: AbortSignal): Error {
  const r: unknown = signal.reason
  if (r instanceof Error) return r
  const e = new Error(typeof r === 'string' ? r : 'operation aborted')
  e.name = 'AbortError'
  return e
}

import { gunzipSync, gzipSync, inflateSync } from 'node:zlib'
import { Client } from 'undici'
import { buildMultipart, isObj, NetError, QuietError, StoppedError, type Answer, type MultipartPart } from './protocol.js'
import type { Httpv2SimulatorOptions, Httpv2State } from './state.js'

/**
 * The device's one HTTP/1.1 connection to the server (undici `Client`, one request at a time), as
 * the document's "关于HTTP的连接保持" asks; "异常处理": 2 s timeout, 3 retries.
 */
export class Httpv2Transport {
  private readonly origin: string
  private readonly prefix: string
  private readonly ca?: string
  readonly timeoutMs: number
  private readonly retries = 3 // "异常处理": 超时重试次数3次
  client: Client | undefined
  abort = new AbortController()
  wake: (() => void) | undefined

  constructor(private readonly state: Httpv2State, opts: Httpv2SimulatorOptions) {
    const u = new URL(opts.server)
    this.origin = u.origin
    this.prefix = u.pathname.replace(/\/+$/, '')
    this.timeoutMs = opts.requestTimeoutMs ?? 2000
    this.ca = opts.ca
  }

  async post(path: string, body: { json: unknown } | { multipart: MultipartPart[] }, timeoutMs = this.timeoutMs): Promise<Answer> {
    let payload: Buffer
    const headers: Record<string, string> = { connection: 'keep-alive' }
    if ('json' in body) {
      payload = Buffer.from(JSON.stringify(body.json), 'utf8')
      headers['content-type'] = 'application/json'
      if (this.state.gzip) {
        // README field report: JSON request bodies gzip'd with Content-Encoding: gzip.
        payload = gzipSync(payload)
        headers['content-encoding'] = 'gzip'
      }
    } else {
      const m = buildMultipart(body.multipart)
      payload = m.body
      headers['content-type'] = m.contentType
    }
    const res = await this.request('POST', this.prefix + path, payload, headers, timeoutMs)
    let json: Record<string, unknown> | undefined
    const text = res.body.toString('utf8')
    try {
      const v: unknown = JSON.parse(text)
      if (isObj(v)) json = v
    } catch {
      json = undefined
    }
    this.state.log(`POST ${path} -> ${res.status} ${text.length > 300 ? text.slice(0, 300) + '…' : text}`)
    return { status: res.status, json, text }
  }

  /** One request on the device's single connection; "超时时间2秒，超时重试次数3次" for network failures only. */
  private async request(method: 'GET' | 'POST', path: string, payload: Buffer | undefined, headers: Record<string, string> = {}, timeoutMs = this.timeoutMs): Promise<{ status: number; body: Buffer }> {
    let lastError: unknown
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      this.checkStopped()
      this.client ??= new Client(this.origin, { pipelining: 1, keepAliveTimeout: 30_000, connect: { timeout: this.timeoutMs, ...(this.ca ? { ca: this.ca } : {}) } })
      try {
        const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(timeoutMs)])
        const res = await this.client.request({ method, path, headers, body: payload, signal })
        let buf = Buffer.from(await res.body.arrayBuffer())
        const enc = String(res.headers['content-encoding'] ?? '').toLowerCase()
        if (enc === 'gzip') buf = gunzipSync(buf)
        else if (enc === 'deflate') buf = inflateSync(buf)
        return { status: res.statusCode, body: buf }
      } catch (e) {
        this.checkStopped()
        lastError = e
        this.state.log(`${method} ${path} attempt ${attempt + 1} failed: ${(e as Error).message}`)
      }
    }
    throw new NetError(`${method} ${path}: ${(lastError as Error)?.message ?? String(lastError)}`)
  }

  /** GET a photo/feature URL: over the device connection when it is on the server, otherwise with fetch. */
  async download(url: string): Promise<Buffer | undefined> {
    try {
      const u = new URL(url)
      if (u.origin === this.origin) {
        const ans = await this.request('GET', u.pathname + u.search, undefined)
        return ans.status === 200 ? ans.body : undefined
      }
      for (let attempt = 0; attempt <= this.retries; attempt++) {
        try {
          const res = await fetch(url, { signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.timeoutMs)]) })
          if (res.status !== 200) return undefined
          return Buffer.from(await res.arrayBuffer())
        } catch (e) {
          this.checkStopped()
          if (attempt === this.retries) throw e
        }
      }
      return undefined
    } catch (e) {
      this.checkStopped()
      this.state.log(`download ${url} failed: ${(e as Error).message}`)
      return undefined
    }
  }

  /** Non-200 or Success 400/401/403 → QuietError; otherwise whether Success is 1. */
  ok(ans: Answer, what: string): boolean {
    if (ans.status !== 200) throw new QuietError(`${what}: HTTP ${ans.status}`)
    const s = ans.json?.Success
    if (s === 400 || s === 401 || s === 403) throw new QuietError(`${what}: Success ${s}`)
    if (s === 1) return true
    this.state.problem(`${what}: Success ${JSON.stringify(s)}${ans.json?.Message ? ` (${String(ans.json.Message)})` : ''}${ans.json ? '' : `; answer: ${ans.text.slice(0, 200)}`}`)
    return false
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.state.stopped) return resolve()
      const done = (): void => {
        clearTimeout(t)
        this.abort.signal.removeEventListener('abort', done)
        if (this.wake === done) this.wake = undefined
        resolve()
      }
      const t = setTimeout(done, ms)
      this.abort.signal.addEventListener('abort', done)
      this.wake = done
    })
  }

  checkStopped(): void {
    if (this.state.stopped) throw new StoppedError('stopped')
  }
}

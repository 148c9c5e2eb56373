import type { Socket } from 'node:dgram'
import { CODE_OK, HttpStatusError, parseLenientJson, str } from './protocol.js'
import type { UdpState } from './state.js'

/** The device's UDP socket (heartbeats out, commands in through the NAT mapping) and its HTTP calls to the server. */
export class UdpTransport {
  readonly http: URL
  socket: Socket | undefined
  boundPort = 0
  serverAddress = ''

  constructor(private readonly state: UdpState) {
    this.http = new URL(state.opts.httpUrl)
  }

  send(text: string): Promise<void> {
    const s = this.socket
    if (!s) return Promise.reject(new Error('simulator not started'))
    return new Promise<void>((resolve, reject) => {
      s.send(Buffer.from(text, 'utf8'), this.state.opts.udpPort, this.serverAddress, (e) => (e ? reject(e) : resolve()))
    }).then(() => this.state.log(`-> ${text}`))
  }

  // ---- HTTP ----------------------------------------------------------------------------------

  /** Path under httpUrl (a prefix such as /app/equipment is kept, section 4's example). */
  private url(path: string, query?: Record<string, string>): URL {
    const u = new URL(this.http.href)
    u.pathname = u.pathname.replace(/\/+$/, '') + path
    if (query) for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v)
    return u
  }

  encodeBody(fields: Record<string, string>): { body: Buffer; contentType: string } {
    // AMB udp #6: the encoding is never stated; default form (section 5's request example is key=value), option JSON.
    if (this.state.opts.bodyEncoding === 'json') return { body: Buffer.from(JSON.stringify(fields), 'utf8'), contentType: 'application/json; charset=utf-8' }
    return { body: Buffer.from(new URLSearchParams(fields).toString(), 'utf8'), contentType: 'application/x-www-form-urlencoded; charset=UTF-8' }
  }

  async request(url: URL, method: 'GET' | 'POST', payload?: { body: Buffer; contentType: string }): Promise<{ status: number; body: Buffer }> {
    if (this.state.stopped) throw new Error('simulator stopped')
    const signal = AbortSignal.any([this.state.abort.signal, AbortSignal.timeout(this.state.opts.requestTimeoutMs ?? 10_000)])
    const res = await fetch(url, {
      method,
      signal,
      ...(payload ? { body: payload.body, headers: { 'content-type': payload.contentType } } : {}),
    })
    const body = Buffer.from(await res.arrayBuffer())
    return { status: res.status, body }
  }

  /** POST and parse the document's `{code, message, data}` answer (leniently: section 6's example is not JSON). */
  async call(path: string, payload: { body: Buffer; contentType: string }, query?: Record<string, string>): Promise<Record<string, unknown>> {
    const url = this.url(path, query)
    const res = await this.request(url, 'POST', payload)
    const text = res.body.toString('utf8')
    this.state.log(`POST ${url.pathname}${url.search} -> ${res.status} ${text.length > 300 ? `${text.slice(0, 300)}…` : text}`)
    if (res.status < 200 || res.status >= 300) throw new HttpStatusError(res.status, `${path}: HTTP ${res.status} ${text.slice(0, 200)}`)
    const parsed = parseLenientJson(text)
    if (!parsed) throw new Error(`${path}: answer is not a JSON object: ${text.slice(0, 200)}`)
    return parsed.value
  }

  post(path: string, fields: Record<string, string>, query?: Record<string, string>): Promise<Record<string, unknown>> {
    return this.call(path, this.encodeBody(fields), query)
  }

  ok(answer: Record<string, unknown>): boolean {
    return str(answer.code) === CODE_OK
  }
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { gunzipSync } from 'node:zlib'
import busboy from 'busboy'
import { parseLenientJson } from '../util/lenient-json.js'
import type { Logger } from '../types/driver.js'
import type { GatewayRequest, GatewayResponse, Route, TlsMaterial } from '../types/gateway.js'

export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message)
  }
}

interface CompiledRoute {
  route: Route
  re: RegExp
  names: string[]
}

/** Routes are matched case-insensitively: devices write `device/` and `Device/` (httpv2 document). */
export class Router {
  private readonly routes: CompiledRoute[] = []

  add(route: Route): void {
    const names: string[] = []
    const pattern = route.path
      .split('/')
      .map((seg) => {
        const m = /^\{(\w+)\}$/.exec(seg)
        if (!m) return seg.replace(/[.*+?^$()|[\]\\]/g, '\\$&')
        names.push(m[1])
        return '([^/]+)'
      })
      .join('/')
    this.routes.push({ route, re: new RegExp(`^${pattern}/?$`, 'i'), names })
  }

  match(method: string, path: string): { route: Route; params: Record<string, string> } | 'method' | undefined {
    let wrongMethod = false
    for (const r of this.routes) {
      const m = r.re.exec(path)
      if (!m) continue
      if (r.route.method !== '*' && r.route.method !== method) {
        wrongMethod = true
        continue
      }
      const params: Record<string, string> = {}
      r.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1])))
      return { route: r.route, params }
    }
    return wrongMethod ? 'method' : undefined
  }
}

function isGzip(b: Buffer): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b
}

function gunzipLimited(data: Buffer, max: number): Buffer {
  try {
    return gunzipSync(data, { maxOutputLength: max })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || /maxOutputLength|too large/i.test(String(err))) throw new HttpError(413, `decompressed body larger than ${max} bytes`)
    throw new HttpError(400, 'body is not valid gzip')
  }
}

export { parseLenientJson }

async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > max) throw new HttpError(413, `body larger than ${max} bytes`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > max) throw new HttpError(413, `body larger than ${max} bytes`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

function parseMultipart(body: Buffer, headers: IncomingMessage['headers'], max: number): Promise<Pick<GatewayRequest, 'fields' | 'files'>> {
  return new Promise((resolve, reject) => {
    const fields: GatewayRequest['fields'] = {}
    const files: GatewayRequest['files'] = {}
    let bb: busboy.Busboy
    try {
      // latin1 keeps field bytes intact: a JSON part may itself be gzip-compressed (httpv2 field reports)
      bb = busboy({ headers, defCharset: 'latin1', limits: { fileSize: max, fieldSize: max, parts: 50 } })
    } catch (err) {
      reject(new HttpError(400, `bad multipart body: ${(err as Error).message}`))
      return
    }
    bb.on('field', (name, value) => {
      const bytes = Buffer.from(value, 'latin1')
      try {
        // a part that declared charset=utf-8 was decoded as such already; only latin1 text round-trips
        if (bytes.toString('latin1') !== value) fields[name] = value
        else fields[name] = (isGzip(bytes) ? gunzipLimited(bytes, max) : bytes).toString('utf8')
      } catch (err) {
        reject(err)
      }
    })
    bb.on('file', (name, stream, info) => {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('limit', () => reject(new HttpError(413, `part ${name} larger than ${max} bytes`)))
      stream.on('close', () => {
        try {
          let data: Buffer = Buffer.concat(chunks)
          if (isGzip(data)) data = gunzipLimited(data, max)
          files[name] = { data, filename: info.filename, mimeType: info.mimeType }
        } catch (err) {
          reject(err)
        }
      })
    })
    bb.on('error', (err) => reject(new HttpError(400, `bad multipart body: ${(err as Error).message}`)))
    bb.on('close', () => resolve({ fields, files }))
    bb.end(body)
  })
}

export interface HttpServerOptions {
  router: Router
  log: Logger
  maxBodyBytes: number
  /** serve --tls-cert/--tls-key: the port speaks HTTPS (and WSS) instead. */
  tls?: TlsMaterial
}

export type GatewayHttpServer = Server | HttpsServer

/** The gateway's one HTTP port. Malformed input is answered with an error, never a crash. */
export function createGatewayHttpServer(opts: HttpServerOptions): GatewayHttpServer {
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res, opts).catch((err) => {
      opts.log.warn('http handler failed', { path: req.url, error: String(err) })
      if (!res.headersSent) send(res, { status: 500, json: { Success: 0, Message: 'internal error' } })
      else res.destroy()
    })
  }
  const server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, onRequest) : createServer(onRequest)
  if (opts.tls) {
    // a device that does not trust the certificate, or speaks plain HTTP to the TLS port
    server.on('tlsClientError', (err, socket) => opts.log.debug('tls handshake failed', { from: socket.remoteAddress, error: err.message }))
  }
  server.keepAliveTimeout = 30_000
  server.headersTimeout = 20_000
  server.requestTimeout = 60_000
  return server
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: HttpServerOptions): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://gateway')
  const method = (req.method ?? 'GET').toUpperCase()
  // udp /addUpload appends `;uploadFile=…` to the path (AMBIGUITIES udp #8): route on what precedes it
  const match = opts.router.match(method, url.pathname.split(';')[0])
  if (match === undefined || match === 'method') {
    // drain so keep-alive connections stay usable
    req.resume()
    opts.log.debug('no route', { method, path: url.pathname })
    send(res, match === 'method' ? { status: 405, json: { Success: 0, Message: 'method not allowed' } } : { status: 404, json: { Success: 0, Message: 'not found' } })
    return
  }
  let gw: GatewayRequest
  try {
    let body = await readBody(req, opts.maxBodyBytes)
    const encoding = String(req.headers['content-encoding'] ?? '').toLowerCase()
    // field reports: httpv2 devices gzip JSON bodies with Content-Encoding: gzip; decompress by header, always
    if (encoding.includes('gzip') || (isGzip(body) && !String(req.headers['content-type'] ?? '').includes('multipart'))) body = gunzipLimited(body, opts.maxBodyBytes)
    const type = String(req.headers['content-type'] ?? '').toLowerCase()
    gw = {
      method,
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      remoteAddress: req.socket.remoteAddress ?? '',
      remotePort: req.socket.remotePort ?? 0,
      localAddress: req.socket.localAddress ?? '127.0.0.1',
      localPort: req.socket.localPort ?? 0,
      body,
      fields: {},
      files: {},
      params: match.params,
    }
    if (type.startsWith('multipart/form-data')) Object.assign(gw, await parseMultipart(body, req.headers, opts.maxBodyBytes))
    else if (body.length > 0 && !type.startsWith('image/') && !type.startsWith('application/octet-stream')) {
      const text = body.toString('utf8').replace(/^\uFEFF/, '')
      if (type.includes('json') || /^\s*[[{]/.test(text)) {
        try {
          gw.json = parseLenientJson(text)
        } catch (err) {
          if (!match.route.rawBody) throw new HttpError(400, 'body is not valid JSON')
          gw.jsonError = (err as Error).message
        }
      } else if (type.includes('x-www-form-urlencoded')) {
        for (const [k, v] of new URLSearchParams(text)) gw.fields[k] = v
      }
    }
  } catch (err) {
    if (err instanceof HttpError) {
      opts.log.warn('bad request', { path: url.pathname, from: req.socket.remoteAddress, status: err.status, reason: err.message })
      req.resume()
      send(res, { status: err.status, json: { Success: 0, Message: err.message } })
      return
    }
    throw err
  }
  send(res, await match.route.handle(gw))
}

function send(res: ServerResponse, r: GatewayResponse): void {
  const body = r.json !== undefined ? Buffer.from(JSON.stringify(r.json)) : typeof r.body === 'string' ? Buffer.from(r.body) : (r.body ?? Buffer.alloc(0))
  res.writeHead(r.status ?? 200, { 'content-type': r.contentType ?? (r.json !== undefined ? 'application/json' : 'application/octet-stream'), 'content-length': body.length })
  res.end(body)
}

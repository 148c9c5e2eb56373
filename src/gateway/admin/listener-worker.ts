/**
 * The admin listener's HTTP side, in a thread of its own (server.ts says why): the status page,
 * the token check, the live streams; what the answers hold (status, view, metrics) is asked of the
 * gateway's thread, which also sends the streams' frames.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { parentPort, workerData } from 'node:worker_threads'
import { STATUS_PAGE, STATUS_PAGE_CSP } from './page.js'
import { bearerMatches } from './token.js'

/** What the gateway's thread starts the listener with. */
export interface ListenerSetup {
  port: number
  bind: string
  token?: string
  tls?: { cert: Uint8Array; key: Uint8Array }
}

/** Paths whose answer the gateway's thread makes. */
export const ASKED_PATHS: ReadonlySet<string> = new Set(['/metrics', '/healthz', '/api/status', '/api/view'])

export type ListenerMessage =
  | { type: 'listening'; port: number }
  | { type: 'failed'; code?: string; message: string }
  | { type: 'ask'; id: number; path: string }
  | { type: 'streams'; count: number }
  | { type: 'log'; msg: string; fields: Record<string, unknown> }

export type GatewayMessage =
  | { type: 'answer'; id: number; status: number; body: string; contentType: string }
  | { type: 'frame'; frame: string }
  | { type: 'stop' }

const port = parentPort!
const setup = workerData as ListenerSetup
const streams = new Set<ServerResponse>()
const waiting = new Map<number, (a: Extract<GatewayMessage, { type: 'answer' }>) => void>()
let nextId = 1
const post = (m: ListenerMessage) => port.postMessage(m)

const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
  handle(req, res).catch((err) => {
    post({ type: 'log', msg: 'admin request failed', fields: { path: req.url, error: String(err) } })
    if (!res.headersSent) send(res, 500, JSON.stringify({ ok: false, error: 'internal error' }))
    else res.destroy()
  })
}
const server: Server = setup.tls ? createHttpsServer({ cert: Buffer.from(setup.tls.cert), key: Buffer.from(setup.tls.key) }, onRequest) : createServer(onRequest)
server.once('error', (err: NodeJS.ErrnoException) => post({ type: 'failed', code: err.code, message: err.message }))
server.listen(setup.port, setup.bind, () => post({ type: 'listening', port: (server.address() as AddressInfo).port }))

port.on('message', (m: GatewayMessage) => {
  if (m.type === 'answer') {
    waiting.get(m.id)?.(m)
    waiting.delete(m.id)
  } else if (m.type === 'frame') {
    for (const s of streams) s.write(m.frame)
  } else if (m.type === 'stop') {
    for (const s of streams) s.end()
    streams.clear()
    server.closeAllConnections()
    server.close(() => port.close())
  }
})

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://admin').pathname
  req.resume()
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, JSON.stringify({ ok: false, error: 'method not allowed' }))
  // the page holds no data: it asks for the token itself and sends it with each request
  if (path === '/') {
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8', 'content-security-policy': STATUS_PAGE_CSP, 'cache-control': 'no-store',
      'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY',
    })
    res.end(STATUS_PAGE)
    return
  }
  if (setup.token !== undefined && !bearerMatches(req.headers.authorization, setup.token)) {
    res.setHeader('www-authenticate', 'Bearer realm="doorctl"')
    return send(res, 401, JSON.stringify({ ok: false, error: req.headers.authorization ? 'wrong token' : 'this admin listener needs Authorization: Bearer TOKEN (--admin-token-file)' }))
  }
  if (path === '/api/events') return stream(req, res)
  if (!ASKED_PATHS.has(path)) return send(res, 404, JSON.stringify({ ok: false, error: 'not found' }))
  const id = nextId++
  const answer = await new Promise<Extract<GatewayMessage, { type: 'answer' }>>((resolve) => {
    waiting.set(id, resolve)
    post({ type: 'ask', id, path })
  })
  send(res, answer.status, answer.body, answer.contentType)
}

/** Server-sent events: the gateway's thread sends a whole view to a new stream, then changes and pulses. */
function stream(req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' })
  res.write('retry: 1000\n\n')
  streams.add(res)
  req.socket.setNoDelay(true)
  res.on('close', () => {
    streams.delete(res)
    post({ type: 'streams', count: streams.size })
  })
  post({ type: 'streams', count: streams.size })
}

function send(res: ServerResponse, status: number, body: string, contentType = 'application/json'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' })
  res.end(body)
}

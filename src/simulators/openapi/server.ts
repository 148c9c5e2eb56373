/**
 * Network side of the simulated openapi device: the HTTP API (openapi 8.1–8.3.2, default port
 * 8899) and the record-push WebSocket (openapi 8.3.3, default port 9000, path /api/record).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer, WebSocket } from 'ws'
import { OpenapiDevice, answer, type SimHttpResponse } from './device.js'

export interface OpenapiSimulatorOptions {
  host?: string
  port?: number
  wsPort?: number
  password?: string
  users?: number
  records?: number
  latencyMs?: number
  clockSkewSeconds?: number
  deviceId?: string
  log?: (line: string) => void
  /** openapi 8.3.3: a push client with nothing received for this long is dropped. Default 33000. */
  wsIdleMs?: number
  /** After a reboot (8.1.9) the device is unreachable this long (connections reset). Default 0. */
  rebootMs?: number
  /** The device's time zone for the "today" default of /api/record. Default: the host's. */
  utcOffsetMinutes?: number
  /** Face database capacity (code 50009). Default 50,000. */
  maxUsers?: number
  /** Request body limit in bytes. Default 2 MiB. */
  maxBodyBytes?: number
}

export interface OpenapiSimulator {
  readonly httpPort: number
  readonly wsPort: number
  readonly url: string
  /** Number of HTTP requests received (all paths, including rejected ones). */
  readonly requestCount: number
  /** Every request to /api/device/… (settings, open, reboot…) with its JSON body, oldest first. */
  readonly deviceRequests: ReadonlyArray<{ method: string; path: string; body?: unknown }>
  /** Successful reboot requests. */
  readonly rebootCount: number
  /** Door openings received, oldest first (time = device ms). */
  readonly opens: ReadonlyArray<{ time: number; remark: string }>
  /** Push WebSocket clients currently connected and authenticated. */
  readonly wsClientCount: number
  /** The device model itself (config objects, records), for tests that need to look inside. */
  readonly device: OpenapiDevice
  users(): Map<string, Record<string, unknown>>
  addRecord(partial?: Record<string, unknown>): Record<string, unknown>
  addRecords(n: number): void
  now(): number
  close(): Promise<void>
}

/** Bodies past the limit are read and discarded up to this multiple, then the connection is cut. */
const DISCARD_FACTOR = 8

export async function startOpenapiSimulator(opts: OpenapiSimulatorOptions = {}): Promise<OpenapiSimulator> {
  const host = opts.host ?? '127.0.0.1'
  const log = opts.log ?? (() => {})
  const latencyMs = Math.max(0, opts.latencyMs ?? 0)
  const wsIdleMs = opts.wsIdleMs ?? 33_000
  const rebootMs = Math.max(0, opts.rebootMs ?? 0)
  const maxBody = opts.maxBodyBytes ?? 2 * 1024 * 1024
  const device = new OpenapiDevice({
    password: opts.password,
    users: opts.users,
    records: opts.records,
    clockSkewSeconds: opts.clockSkewSeconds,
    deviceId: opts.deviceId,
    utcOffsetMinutes: opts.utcOffsetMinutes,
    maxUsers: opts.maxUsers,
    log,
  })

  let requestCount = 0
  const deviceRequests: { method: string; path: string; body?: unknown }[] = []
  let downUntil = 0
  let closed = false
  const timers = new Set<NodeJS.Timeout>()
  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t)
      fn()
    }, ms)
    timers.add(t)
  }
  const isDown = (): boolean => closed || Date.now() < downUntil

  // --- HTTP API ----------------------------------------------------------------------------
  const send = (res: ServerResponse, r: SimHttpResponse): void => {
    if (res.destroyed || res.writableEnded) return
    // encoded once: a 1000-record page is ~340 KB of mostly non-ASCII text
    const body = Buffer.from(JSON.stringify(r.json))
    res.writeHead(r.status, {
      'content-type': 'application/json;charset=UTF-8',
      'content-length': body.length,
    })
    res.end(body)
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    requestCount++
    // A rebooting device does not answer: the connection is reset.
    if (isDown()) {
      req.socket.destroy()
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    let tooLarge = false
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > maxBody) {
        tooLarge = true
        chunks.length = 0
        if (size > maxBody * DISCARD_FACTOR) req.socket.destroy()
        return
      }
      chunks.push(c)
    })
    req.on('error', () => {})
    req.on('end', () => {
      let r: SimHttpResponse
      try {
        r = device.handle({ method: req.method ?? 'GET', url: req.url ?? '/', body: Buffer.concat(chunks), bodyTooLarge: tooLarge, bodyLimit: maxBody })
      } catch (e) {
        log(`openapi simulator: ${(e as Error).stack ?? String(e)}`)
        r = answer(50002, 'internal error', {}, 500)
      }
      const path = (req.url ?? '').split('?')[0] ?? ''
      log(`${req.method} ${path} -> ${r.status} ${String(r.json.code)}`)
      if (path.startsWith('/api/device/')) {
        let body: unknown
        try {
          body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined
        } catch {
          body = undefined
        }
        deviceRequests.push({ method: req.method ?? 'GET', path, body })
      }
      const finish = (): void => {
        if (isDown()) {
          req.socket.destroy()
          return
        }
        send(res, r)
        if (r.reboot) {
          // Down after the answer has gone out: existing push clients drop, new requests are reset.
          downUntil = Date.now() + rebootMs
          if (rebootMs > 0) for (const ws of clients) ws.terminate()
        }
      }
      if (latencyMs > 0) later(latencyMs, finish)
      else finish()
    })
  }

  const http = createServer(onRequest)
  http.on('clientError', (_err, socket: Duplex) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
    else socket.destroy()
  })

  // --- record push WebSocket (8.3.3) --------------------------------------------------------
  const clients = new Set<WebSocket>()
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 })
  const wsHttp = createServer((req, res) => {
    // Plain HTTP on the push port: only the WebSocket upgrade is served here.
    const text = JSON.stringify(answer(40001, 'WebSocket only: ws://HOST:PORT/api/record').json)
    res.writeHead(426, { 'content-type': 'application/json;charset=UTF-8', 'content-length': Buffer.byteLength(text) })
    res.end(text)
    req.resume()
  })
  wsHttp.on('clientError', (_err, socket: Duplex) => socket.destroy())
  wsHttp.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {})
    const url = new URL(req.url ?? '/', 'http://device.invalid')
    if (isDown()) {
      socket.destroy()
      return
    }
    if (url.pathname !== '/api/record') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => {})
      const auth = device.checkAuth(url.searchParams)
      if (!auth.ok) {
        // 8.3.3 gives one failure answer for every reason.
        log(`push client refused: ${auth.desc}`)
        ws.send(JSON.stringify({ code: 20002, message: 'Permission Denied!', desc: 'app key not exist' }))
        ws.close(1008, 'Permission Denied')
        return
      }
      clients.add(ws)
      // AMBIGUITIES openapi #12: heartbeat content is unspecified, so anything received counts.
      let idle: NodeJS.Timeout | undefined
      const touch = (): void => {
        if (idle) clearTimeout(idle)
        idle = setTimeout(() => {
          log(`push client silent for ${wsIdleMs} ms: dropped`)
          ws.terminate()
        }, wsIdleMs)
      }
      touch()
      ws.on('message', touch)
      ws.on('ping', touch)
      ws.on('pong', touch)
      ws.on('close', () => {
        if (idle) clearTimeout(idle)
        clients.delete(ws)
      })
      // The leading space in " Connected!" is the document's (AMBIGUITIES openapi #12).
      ws.send(JSON.stringify({ code: 20000, message: ' Connected!', desc: 'Connected!' }))
      log('push client connected')
    })
  })

  device.onRecord = (rec) => {
    if (clients.size === 0) return
    const text = JSON.stringify({ code: 30000, message: 'push record', desc: '', data: rec })
    for (const ws of clients) if (ws.readyState === WebSocket.OPEN) ws.send(text)
  }

  // --- listen ------------------------------------------------------------------------------
  const listen = (srv: Server, port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e)
      srv.once('error', onError)
      srv.listen(port, host, () => {
        srv.off('error', onError)
        resolve((srv.address() as AddressInfo).port)
      })
    })
  const shut = (srv: Server): Promise<void> =>
    new Promise((resolve) => {
      if (!srv.listening) return resolve()
      srv.close(() => resolve())
      srv.closeAllConnections()
    })

  let httpPort: number
  let wsPort: number
  try {
    httpPort = await listen(http, opts.port ?? 8899)
    wsPort = await listen(wsHttp, opts.wsPort ?? 9000)
  } catch (e) {
    await Promise.all([shut(http), shut(wsHttp)])
    throw e
  }
  if (opts.deviceId === undefined) device.deviceId = `OPENAPI-SIM-${httpPort}`
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host
  log(`openapi simulator listening on http://${urlHost}:${httpPort} (records ws://${urlHost}:${wsPort}/api/record)`)

  let closing: Promise<void> | undefined
  return {
    httpPort,
    wsPort,
    url: `http://${urlHost}:${httpPort}`,
    device,
    get requestCount() {
      return requestCount
    },
    deviceRequests,
    get rebootCount() {
      return device.rebootCount
    },
    get opens() {
      return device.opens
    },
    get wsClientCount() {
      return clients.size
    },
    users: () => device.userStore,
    addRecord: (partial) => device.addRecord(partial),
    addRecords: (n) => device.addRecords(n),
    now: () => device.now(),
    close() {
      closing ??= (async () => {
        closed = true
        for (const t of timers) clearTimeout(t)
        timers.clear()
        for (const ws of clients) ws.terminate()
        for (const ws of wss.clients) ws.terminate()
        wss.close()
        await Promise.all([shut(http), shut(wsHttp)])
      })()
      return closing
    },
  }
}

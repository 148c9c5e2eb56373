/**
 * openapi live records (8.3.3): ws://HOST:9000/api/record?timestamp&sign. The device greets with
 * code 20000, refuses with 20002, and pushes each record as code 30000. The client must heartbeat
 * every 10 s; 33 s with nothing on the link means the link is dead.
 */
import WebSocket from 'ws'
import { DeviceError } from '../../types/errors.js'
import type { AccessRecord, OperationContext } from '../../types/driver.js'
import { signToRecord, toNumber, type SignObject } from './codec.js'
import { isAuthCode, openapiError } from './errors.js'
import { signedQuery } from './signing.js'

export interface LiveTimings {
  /** Client heartbeat period (8.3.3: 10 s). */
  heartbeatMs: number
  /** Nothing received for this long → the link is dead (8.3.3: 33 s). */
  deadMs: number
  /** First reconnect delay; doubles up to maxBackoffMs, reset after a good connect. */
  backoffMs: number
  maxBackoffMs: number
}

export interface LiveOptions extends Partial<LiveTimings> {
  host: string
  port: number
  password: string
}

export const LIVE_DEFAULTS: LiveTimings = { heartbeatMs: 10_000, deadMs: 33_000, backoffMs: 500, maxBackoffMs: 30_000 }

function envMs(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name]
  if (v === undefined || v.trim() === '') return undefined
  const n = Number(v)
  return Number.isFinite(n) && n > 0 ? n : undefined
}

/** Timings: explicit options, else DOORCTL_OPENAPI_{HEARTBEAT,DEAD,BACKOFF}_MS, else the document's values. */
export function liveTimings(opts: Partial<LiveTimings> = {}, env: NodeJS.ProcessEnv = process.env): LiveTimings {
  const backoffMs = opts.backoffMs ?? envMs(env, 'DOORCTL_OPENAPI_BACKOFF_MS') ?? LIVE_DEFAULTS.backoffMs
  return {
    heartbeatMs: opts.heartbeatMs ?? envMs(env, 'DOORCTL_OPENAPI_HEARTBEAT_MS') ?? LIVE_DEFAULTS.heartbeatMs,
    deadMs: opts.deadMs ?? envMs(env, 'DOORCTL_OPENAPI_DEAD_MS') ?? LIVE_DEFAULTS.deadMs,
    backoffMs,
    maxBackoffMs: Math.max(opts.maxBackoffMs ?? LIVE_DEFAULTS.maxBackoffMs, backoffMs),
  }
}

function permissionDenied(address: string, detail: string): DeviceError {
  return new DeviceError(`live records: ${address} refused the connection (${detail}): the password is wrong`, {
    deviceCode: 20002,
    suggestion:
      'wrong password: run `doorctl device add NAME --protocol openapi --host HOST --password-stdin` again with the password set on the device',
  })
}

/** Live records until ctx.signal aborts (the iteration then ends normally) or the device refuses us. */
export async function* watchLive(opts: LiveOptions, ctx: OperationContext): AsyncGenerator<AccessRecord> {
  const t = liveTimings(opts)
  const host = opts.host.includes(':') && !opts.host.startsWith('[') ? `[${opts.host}]` : opts.host
  const address = `${host}:${opts.port}`
  const queue: AccessRecord[] = []
  let head = 0
  let fatal: Error | undefined
  let stopped = false
  let wake: (() => void) | undefined
  let ws: WebSocket | undefined
  let heartbeat: NodeJS.Timeout | undefined
  let dead: NodeJS.Timeout | undefined
  let retry: NodeJS.Timeout | undefined
  let backoff = t.backoffMs
  let attempts = 0

  const notify = (): void => {
    const w = wake
    wake = undefined
    w?.()
  }
  const clearTimers = (): void => {
    clearInterval(heartbeat)
    clearTimeout(dead)
    heartbeat = dead = undefined
  }
  const fail = (err: Error): void => {
    fatal ??= err
    ws?.terminate()
    notify()
  }

  const connect = (): void => {
    retry = undefined
    if (stopped) return
    attempts++
    // A fresh timestamp per connection: the signature is only good for 5 minutes (section 4.2).
    const url = `ws://${address}/api/record?${signedQuery(opts.password)}`
    const sock = new WebSocket(url, { handshakeTimeout: t.deadMs })
    ws = sock
    let good = false
    let lastError: Error | undefined
    const touch = (): void => {
      clearTimeout(dead)
      dead = setTimeout(() => {
        ctx.log.warn('live records: nothing received, reconnecting', { device: address, quietMs: t.deadMs })
        sock.terminate()
      }, t.deadMs)
    }
    const connected = (): void => {
      if (good) return
      good = true
      if (attempts > 1) ctx.log.info('live records: connected again', { device: address, attempts })
      attempts = 0
      backoff = t.backoffMs
    }
    sock.on('open', () => {
      touch()
      // AMBIGUITIES openapi #12: heartbeat content is not documented; a WebSocket ping frame is sent
      heartbeat = setInterval(() => sock.ping(), t.heartbeatMs)
    })
    sock.on('ping', touch)
    sock.on('pong', touch)
    sock.on('message', (data) => {
      touch()
      let msg: { code?: unknown; message?: unknown; desc?: unknown; data?: unknown }
      try {
        msg = JSON.parse(data.toString())
      } catch {
        ctx.log.debug('live records: ignored a message that is not JSON', { device: address })
        return
      }
      const code = toNumber(msg?.code)
      // openapi 8.3.3 / AMBIGUITIES openapi #12: the greeting's message is " Connected!" (leading space); only the code is read
      if (code === 20000) connected()
      else if (code === 30000 && msg.data && typeof msg.data === 'object') {
        connected()
        try {
          queue.push(signToRecord(msg.data as SignObject))
          notify()
        } catch (err) {
          ctx.log.warn('live records: could not read a pushed record', { device: address, error: String(err) })
        }
      } else if (code === 20002) {
        // 8.3.3: 20002 here is "Permission Denied!" (not section 7's "User Not Match")
        fail(permissionDenied(address, [msg.message, msg.desc].filter(Boolean).join(': ') || 'Permission Denied'))
      } else if (isAuthCode(code)) {
        fail(openapiError(code, String(msg.message ?? ''), String(msg.desc ?? ''), 'live records'))
      } else {
        ctx.log.debug('live records: ignored a message', { device: address, code: String(msg?.code) })
      }
    })
    sock.on('error', (err) => {
      lastError = err
      const m = /Unexpected server response: (40[13])/.exec(err.message)
      if (m) fail(permissionDenied(address, `HTTP ${m[1]}`))
    })
    sock.on('close', () => {
      clearTimers()
      if (ws === sock) ws = undefined
      if (stopped || fatal) return
      const delay = backoff
      backoff = Math.min(backoff * 2, t.maxBackoffMs)
      ctx.log.warn('live records: connection lost, reconnecting', {
        device: address,
        reason: lastError?.message ?? (good ? 'closed' : 'no greeting'),
        inMs: delay,
      })
      retry = setTimeout(connect, delay)
    })
  }

  const onAbort = (): void => notify()
  ctx.signal.addEventListener('abort', onAbort, { once: true })
  try {
    if (!ctx.signal.aborted) connect()
    for (;;) {
      if (ctx.signal.aborted) return
      if (head < queue.length) {
        const rec = queue[head]!
        queue[head++] = undefined as unknown as AccessRecord
        if (head > 1024 && head * 2 > queue.length) {
          queue.splice(0, head)
          head = 0
        }
        yield rec
        continue
      }
      if (fatal) throw fatal
      await new Promise<void>((resolve) => (wake = resolve))
    }
  } finally {
    stopped = true
    ctx.signal.removeEventListener('abort', onAbort)
    clearTimers()
    clearTimeout(retry)
    ws?.terminate()
  }
}

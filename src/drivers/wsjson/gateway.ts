/**
 * wsjson gateway side (ws-json.txt): the device opens a WebSocket to `/wsjson` on the gateway's
 * HTTP port, registers (205), heartbeats (206) and uploads events (207); we answer each of its
 * messages and send it device-control commands (3.1) over the same connection.
 *
 * Delivery rules:
 * - One command on the wire per device at a time, each with a unique `commandId` that its answer
 *   echoes. An answer without one (AMBIGUITIES wsjson #7) is the answer to the command in flight.
 * - Queued commands are worked on in queue order, one at a time; they start when the device is
 *   registered, and a command queued while it is connected goes down at once (onQueued).
 * - A connection that drops with a command in flight: the command is sent again, with the same
 *   commandId, after the device registers again, at most `maxResends` times; then it fails with
 *   "device disconnected". A command with no answer within `answerTimeoutMs` is treated the same
 *   way (the connection is closed so the device reconnects and both sides start in step).
 * - upsertPeople: addUser per person; a refusal saying the id exists → editUser. deletePeople:
 *   deleteUser per id (`all`: selectUser, then each). listPeople: selectUser (203). enrollFace:
 *   editUser with the photo. checkFace: compareUser (204).
 *   repostRecords with `eventIds`: queryEvent (208) for each.
 * - Records: type-1 events are spooled (once per eventid) and committed before the device is
 *   answered 200 (500 when the store cannot take them: the device sends them again; answers keep
 *   the order of the device's messages); an event that arrives without its details is answered
 *   200 and fetched with queryEvent (catch-up).
 *   Type-2 events (a person enrolled on the device) are logged and kept in per-device state.
 * - Malformed frames are logged and answered with a 500 response; a connection that sends
 *   `maxBadFrames` of them in a row is closed. Nothing a device sends can stop the gateway.
 *
 * This file holds the connections and the device messages; delivery.ts works through queued
 * commands, people.ts and records.ts carry out people and event work, devices.ts holds each
 * device's state and the wire to it.
 */
import type { IncomingMessage } from 'node:http'
import type { RawData, WebSocket } from 'ws'
import { REFUSED, type GatewayContext, type ProtocolHandler, type WebSocketRoute } from '../../types/gateway.js'
import { CODE, encodeImage, estimateOffset, parseFrame, registerAnswer, response, WS_PATH, type RegisterInfo } from './codec.js'
import { WsjsonDelivery } from './delivery.js'
import { Cancelled, DISCONNECTED, GiveUp, lostMessage, WsjsonDevices, type Conn, type DeviceState } from './devices.js'
import { WsjsonPeople } from './people.js'
import { WsjsonRecords } from './records.js'
import { kinds } from './rules.js'

export interface WsjsonOptions {
  /** Heartbeat interval given to devices in the register answer (s); default 30. */
  heartbeatSeconds?: number
  /** How often a command in flight when the connection dropped is sent again; default 2. */
  maxResends?: number
  /** A command not answered within this long counts as a dropped connection (ms); default 30 000. */
  answerTimeoutMs?: number
  /** Malformed frames in a row after which the connection is closed; default 10. */
  maxBadFrames?: number
  /** Largest frame accepted (bytes): selectUser answers carry every user's photo in one frame (no paging in the document); default 64 MiB. */
  maxMessageBytes?: number
  /** A connection silent this long is closed (ms); default 3 heartbeats + 10 s. */
  silenceMs?: number
}

class WsjsonGateway {
  private readonly conns = new Set<Conn>()
  private readonly maxBadFrames: number
  private readonly silenceMs: number
  private readonly devices: WsjsonDevices
  private readonly people: WsjsonPeople
  private readonly records: WsjsonRecords
  private readonly delivery: WsjsonDelivery

  constructor(private readonly ctx: GatewayContext, opts: WsjsonOptions) {
    const heartbeatSeconds = opts.heartbeatSeconds ?? envHeartbeatSeconds() ?? 30
    this.devices = new WsjsonDevices(ctx, {
      heartbeatSeconds,
      maxResends: opts.maxResends ?? 2,
      answerTimeoutMs: opts.answerTimeoutMs ?? 30_000,
      maxMessageBytes: opts.maxMessageBytes ?? 64 * 1024 * 1024,
    })
    this.maxBadFrames = opts.maxBadFrames ?? 10
    this.silenceMs = opts.silenceMs ?? heartbeatSeconds * 3000 + 10_000
    this.people = new WsjsonPeople(this.devices)
    this.records = new WsjsonRecords(this.devices)
    this.delivery = new WsjsonDelivery(this.devices, this.people, this.records)
    ctx.onQueued((device) => this.delivery.queued(device))
  }

  route(): WebSocketRoute {
    return { path: WS_PATH, maxPayload: this.devices.maxMessageBytes, onConnection: (ws, req) => this.accept(ws, req) }
  }

  stop(): void {
    this.devices.stopped = true
    for (const s of this.devices.states.values()) {
      this.devices.savePeople(s)
      for (const step of [...(s.inflight ? [s.inflight] : []), ...s.waiting.splice(0)]) {
        if (step.timer) clearTimeout(step.timer)
        step.reject(new Cancelled('gateway stopping'))
      }
      s.inflight = undefined
      if (s.job) s.job.cancelled = true
    }
    for (const c of this.conns) {
      if (c.silence) clearTimeout(c.silence)
      c.ws.terminate()
    }
  }

  // ---- connections ------------------------------------------------------------------------------

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const ip = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '')
    const conn: Conn = { ws, address: `${ip}:${req.socket.remotePort ?? 0}`, bad: 0, closed: false }
    this.conns.add(conn)
    conn.silence = setTimeout(() => this.silent(conn), this.silenceMs)
    conn.silence.unref?.()
    ws.on('message', (data: RawData) => {
      try {
        this.onFrame(conn, rawText(data))
      } catch (err) {
        this.ctx.log.warn('wsjson frame handling failed', { from: conn.address, device: conn.state?.name, error: String(err) })
      }
    })
    ws.on('close', (code: number) => {
      try {
        this.onClose(conn, code)
      } catch (err) {
        this.ctx.log.warn('wsjson close handling failed', { from: conn.address, error: String(err) })
      }
    })
    // the gateway logs socket errors; 'close' follows (with 1006 even for an oversized frame, so it is noted here)
    ws.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') conn.tooBig = true })
    this.ctx.log.debug('wsjson connection', { from: conn.address })
  }

  private silent(conn: Conn): void {
    if (conn.closed) return
    this.ctx.log.info('wsjson connection silent too long; closing it', { from: conn.address, device: conn.state?.name, ms: this.silenceMs })
    conn.ws.terminate()
  }

  private onClose(conn: Conn, code: number): void {
    conn.closed = true
    this.conns.delete(conn)
    if (conn.silence) clearTimeout(conn.silence)
    const state = conn.state
    if (!state || state.conn !== conn) return
    state.conn = undefined
    this.ctx.log.info('wsjson device disconnected', { device: state.name, from: conn.address, code })
    const step = state.inflight
    if (step && step.sentOn === conn) {
      if (step.timer) clearTimeout(step.timer)
      step.timer = undefined
      step.lost ??= DISCONNECTED
      // the device's frame (most likely this command's answer) was larger than the gateway takes: it would be again
      const tooBig = conn.tooBig === true || code === 1009
      if (tooBig) step.lost = `the device's answer was larger than the gateway accepts (${Math.floor(this.devices.maxMessageBytes / 1024)} KB per message)`
      if (tooBig || step.sends > this.devices.maxResends) {
        state.inflight = undefined
        step.reject(new GiveUp(lostMessage(step)))
      }
      // else: sent again after the device registers again
    }
  }

  private onFrame(conn: Conn, text: string): void {
    if (conn.closed) return
    conn.silence?.refresh()
    const f = parseFrame(text)
    const state = conn.state
    if (f.kind === 'bad') return this.bad(conn, f.reason, f.reply, text)
    if (f.kind === 'register') return this.register(conn, f.info)
    if (!state || state.conn !== conn) {
      // heartbeats, events and answers identify nobody (AMBIGUITIES wsjson #7: no sn in them): register first
      if (f.kind === 'answer') return this.bad(conn, 'an answer on a connection that has not registered', false, text)
      return this.bad(conn, 'not registered: send the register message (205) first', true, text)
    }
    conn.bad = 0
    this.ctx.touch(state.entry, conn.address)
    switch (f.kind) {
      case 'heartbeat':
        return this.heartbeat(state, conn, f.time)
      case 'event':
        return this.records.event(state, conn, f.event)
      case 'answer':
        return this.devices.answer(state, f.answer)
    }
  }

  private bad(conn: Conn, reason: string, reply: boolean, text: string): void {
    conn.bad++
    this.ctx.log.warn('wsjson malformed frame', { from: conn.address, device: conn.state?.name, reason, frame: text.slice(0, 120) })
    if (reply) this.devices.reply(conn, response(CODE.error, reason))
    if (conn.bad >= this.maxBadFrames) {
      this.ctx.log.warn('wsjson connection closed after repeated malformed frames', { from: conn.address, device: conn.state?.name, frames: conn.bad })
      conn.ws.close(1008, 'too many malformed frames')
    }
  }

  // ---- device messages ----------------------------------------------------------------------------

  private register(conn: Conn, info: RegisterInfo): void {
    const entry = this.ctx.findDevice('wsjson', info.sn, conn.address.replace(/:\d+$/, ''))
    if (entry === REFUSED) {
      this.devices.reply(conn, response(CODE.error, 'not allowed from this address'))
      conn.ws.close(1008, 'not allowed from this address')
      return
    }
    const details = { ip: info.ip, mac: info.mac, sn: info.sn, type: info.type }
    if (!entry) {
      // CLI.md: an unknown device's register is answered with code 500, remembered as discovered, not served
      this.ctx.discovered('wsjson', info.sn, conn.address, details)
      this.devices.reply(conn, response(CODE.error, `unknown device ${info.sn}: add it with doorctl device add NAME --protocol wsjson --sn ${info.sn}`))
      conn.ws.close(1008, 'unknown device')
      return
    }
    conn.bad = 0
    if (conn.state && conn.state.name !== entry.name && conn.state.conn === conn) conn.state.conn = undefined
    const state = this.devices.stateOf(entry)
    const old = state.conn
    state.conn = conn
    conn.state = state
    state.register = { ...info, at: Date.now(), address: conn.address }
    this.ctx.touch(entry, conn.address, details)
    this.ctx.setState(state.name, 'register', state.register)
    this.devices.reply(conn, registerAnswer(this.devices.heartbeatSeconds))
    if (old && old !== conn) {
      this.ctx.log.info('wsjson device connected again; closing its previous connection', { device: state.name })
      old.ws.terminate()
    }
    this.ctx.log.info('wsjson device registered', { device: state.name, from: conn.address, sn: info.sn })
    this.delivery.reap(state)
    const step = state.inflight
    if (step && step.sentOn !== conn) {
      if (step.sends > this.devices.maxResends) {
        state.inflight = undefined
        step.reject(new GiveUp(lostMessage(step)))
      } else {
        this.ctx.log.info('wsjson sending the command in flight again', { device: state.name, commandId: step.commandId, command: step.command })
        this.devices.transmit(state, step)
      }
    }
    this.devices.flush(state)
    this.delivery.pump(state)
  }

  private heartbeat(state: DeviceState, conn: Conn, time: string | undefined): void {
    this.ctx.heartbeat(state.entry)
    const offset = estimateOffset(time, Date.now())
    if (offset !== undefined && offset !== state.offset) {
      state.offset = offset
      this.ctx.setState(state.name, 'utcOffsetMinutes', offset)
    }
    this.devices.reply(conn, response(CODE.ok))
  }

  /** For a caller in the gateway's own process: compareUser on a connected device. */
  async compareOnDevice(device: string, photo: Buffer): Promise<boolean> {
    const state = this.devices.states.get(device)
    if (!state?.conn) throw new Error(`${device} is not connected to this gateway`)
    const r = await this.people.compare(state, encodeImage(photo))
    if ('error' in r) throw new Error(r.error)
    return r.exists
  }

  hasDevice(device: string): boolean {
    return this.devices.states.get(device)?.conn !== undefined
  }
}

/** DOORCTL_WSJSON_HEARTBEAT_S: the interval given to devices (whole seconds, as 3.2.1's "interval" is), for sites that want quicker one-shot collection. */
function envHeartbeatSeconds(): number | undefined {
  const n = Number(process.env.DOORCTL_WSJSON_HEARTBEAT_S)
  return Number.isInteger(n) && n > 0 ? n : undefined
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8')
  if (Buffer.isBuffer(data)) return data.toString('utf8')
  return Buffer.from(data).toString('utf8')
}

/** A wsjson protocol handler, with compareUser for callers in the gateway's process. */
export interface WsjsonHandler extends ProtocolHandler {
  /**
   * compareUser (3.1.5) on a device connected to this process's gateway: true if the face is in
   * its library. The CLI goes through the queue instead (kind `checkFace`, see rules.ts).
   */
  compareFace(device: string, photo: Buffer): Promise<boolean>
}

/** A wsjson protocol handler; `handler` is the default one. Options exist for tests (short intervals). */
export function createHandler(opts: WsjsonOptions = {}): WsjsonHandler {
  const instances = new Set<WsjsonGateway>()
  return {
    protocol: 'wsjson',
    kinds,
    websockets(ctx: GatewayContext): WebSocketRoute[] {
      const gw = new WsjsonGateway(ctx, opts)
      instances.add(gw)
      return [gw.route()]
    },
    async stop(): Promise<void> {
      for (const gw of instances) gw.stop()
      instances.clear()
    },
    compareFace(device: string, photo: Buffer): Promise<boolean> {
      const gw = [...instances].find((g) => g.hasDevice(device))
      if (!gw) return Promise.reject(new Error(`${device} is not connected to this gateway`))
      return gw.compareOnDevice(device, photo)
    },
  }
}

export const handler: WsjsonHandler = createHandler()

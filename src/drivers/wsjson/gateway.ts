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
 * - Records: type-1 events are spooled (once per eventid) before the device is answered 200; an
 *   event that arrives without its details is answered 200 and fetched with queryEvent (catch-up).
 *   Type-2 events (a person enrolled on the device) are logged and kept in per-device state.
 * - Malformed frames are logged and answered with a 500 response; a connection that sends
 *   `maxBadFrames` of them in a row is closed. Nothing a device sends can stop the gateway.
 */
import { readFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import type { RawData, WebSocket } from 'ws'
import { isoWithOffset } from '../../core/time.js'
import type { CommandResult, GatewayContext, ProtocolHandler, QueuedCommand, WebSocketRoute } from '../../gateway/types.js'
import type { DeviceEntry, PersonOutcome, Role } from '../types.js'
import {
  accessRecord, addUserContent, CODE, commandFrame, compareContent, deleteUserContent, deviceUser, editUserContent, encodeImage,
  estimateOffset, faceContent, isExistsReason, isNotFoundReason, isObject, parseCompare, parseFrame, parseQueriedEvent, parseUserList,
  personInfoJson, queryEventContent, registerAnswer, response, selectAllContent, terminalTypeName,
  WS_PATH, type Answer, type DeviceEvent, type Json, type RegisterInfo, type WireCommand,
} from './codec.js'
import { CHECK_FACE_KIND, FETCH_EVENTS_KIND, kinds, personRules, unsupportedWhy } from './rules.js'

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

class GiveUp extends Error {}
class Cancelled extends Error {}

interface Conn {
  ws: WebSocket
  address: string
  state?: DeviceState
  bad: number
  closed: boolean
  /** The device sent a frame larger than the gateway's maxPayload (maxBodyBytes). */
  tooBig?: boolean
  silence?: NodeJS.Timeout
}

interface Step {
  commandId: string
  command: WireCommand
  frame: string
  /** Times sent so far. */
  sends: number
  sentOn?: Conn
  timer?: NodeJS.Timeout
  /** Why the last send went unanswered. */
  lost?: string
  jobId?: number
  resolve(a: SentAnswer): void
  reject(e: Error): void
}

type SentAnswer = Answer & { sends: number }

/** A person as far as this gateway knows the device's people (no password, no photo). */
interface Known {
  name: string
  user: string
  role: string
  hasPhoto: boolean
  /** Enrolled on the device itself (207 type 2), ms. */
  enrolledAt?: number
}

interface Job {
  cmd: QueuedCommand
  cancelled: boolean
}

interface DeviceState {
  name: string
  entry: DeviceEntry
  /** The registered connection. */
  conn?: Conn
  inflight?: Step
  waiting: Step[]
  job?: Job
  register?: RegisterInfo & { at: number; address: string }
  offset?: number
  people?: Map<string, Known>
  peopleDirty: boolean
}

interface PersonPayload {
  id: string
  name?: string
  password?: string
  role?: Role
  photoPath?: string
  /** CSV fields 4.1 has no place for. */
  unsent: string[]
}

const DISCONNECTED = 'the device disconnected'

class WsjsonGateway {
  private readonly states = new Map<string, DeviceState>()
  private readonly conns = new Set<Conn>()
  private readonly heartbeatSeconds: number
  private readonly maxResends: number
  private readonly answerTimeoutMs: number
  private readonly maxBadFrames: number
  private readonly silenceMs: number
  private seq = 0
  private stopped = false

  private readonly maxMessageBytes: number

  constructor(private readonly ctx: GatewayContext, opts: WsjsonOptions) {
    this.heartbeatSeconds = opts.heartbeatSeconds ?? 30
    this.maxResends = opts.maxResends ?? 2
    this.answerTimeoutMs = opts.answerTimeoutMs ?? 30_000
    this.maxBadFrames = opts.maxBadFrames ?? 10
    this.maxMessageBytes = opts.maxMessageBytes ?? 64 * 1024 * 1024
    this.silenceMs = opts.silenceMs ?? this.heartbeatSeconds * 3000 + 10_000
    ctx.onQueued((device) => this.queued(device))
  }

  route(): WebSocketRoute {
    return { path: WS_PATH, maxPayload: this.maxMessageBytes, onConnection: (ws, req) => this.accept(ws, req) }
  }

  stop(): void {
    this.stopped = true
    for (const s of this.states.values()) {
      this.savePeople(s)
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

  private send(conn: Conn, msg: Json): void {
    if (conn.closed || conn.ws.readyState !== conn.ws.OPEN) return
    conn.ws.send(JSON.stringify(msg), (err) => {
      if (err && !conn.closed) {
        this.ctx.log.warn('wsjson send failed', { device: conn.state?.name, error: String(err) })
        conn.ws.terminate()
      }
    })
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
      if (tooBig) step.lost = `the device's answer was larger than the gateway accepts (${Math.floor(this.maxMessageBytes / 1024)} KB per message)`
      if (tooBig || step.sends > this.maxResends) {
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
        return this.event(state, conn, f.event)
      case 'answer':
        return this.answer(state, f.answer)
    }
  }

  private bad(conn: Conn, reason: string, reply: boolean, text: string): void {
    conn.bad++
    this.ctx.log.warn('wsjson malformed frame', { from: conn.address, device: conn.state?.name, reason, frame: text.slice(0, 120) })
    if (reply) this.send(conn, response(CODE.error, reason))
    if (conn.bad >= this.maxBadFrames) {
      this.ctx.log.warn('wsjson connection closed after repeated malformed frames', { from: conn.address, device: conn.state?.name, frames: conn.bad })
      conn.ws.close(1008, 'too many malformed frames')
    }
  }

  // ---- device messages ----------------------------------------------------------------------------

  private register(conn: Conn, info: RegisterInfo): void {
    const entry = this.ctx.findDevice('wsjson', info.sn)
    const details = { ip: info.ip, mac: info.mac, sn: info.sn, type: info.type }
    if (!entry) {
      // CLI.md: an unknown device's register is answered with code 500, remembered as discovered, not served
      this.ctx.discovered('wsjson', info.sn, conn.address, details)
      this.send(conn, response(CODE.error, `unknown device ${info.sn}: add it with doorctl device add NAME --protocol wsjson --sn ${info.sn}`))
      conn.ws.close(1008, 'unknown device')
      return
    }
    conn.bad = 0
    if (conn.state && conn.state.name !== entry.name && conn.state.conn === conn) conn.state.conn = undefined
    const state = this.stateOf(entry)
    const old = state.conn
    state.conn = conn
    conn.state = state
    state.register = { ...info, at: Date.now(), address: conn.address }
    this.ctx.touch(entry, conn.address, details)
    this.ctx.setState(state.name, 'register', state.register)
    this.send(conn, registerAnswer(this.heartbeatSeconds))
    if (old && old !== conn) {
      this.ctx.log.info('wsjson device connected again; closing its previous connection', { device: state.name })
      old.ws.terminate()
    }
    this.ctx.log.info('wsjson device registered', { device: state.name, from: conn.address, sn: info.sn })
    this.reap(state)
    const step = state.inflight
    if (step && step.sentOn !== conn) {
      if (step.sends > this.maxResends) {
        state.inflight = undefined
        step.reject(new GiveUp(lostMessage(step)))
      } else {
        this.ctx.log.info('wsjson sending the command in flight again', { device: state.name, commandId: step.commandId, command: step.command })
        this.transmit(state, step)
      }
    }
    this.flush(state)
    this.pump(state)
  }

  private heartbeat(state: DeviceState, conn: Conn, time: string | undefined): void {
    const offset = estimateOffset(time, Date.now())
    if (offset !== undefined && offset !== state.offset) {
      state.offset = offset
      this.ctx.setState(state.name, 'utcOffsetMinutes', offset)
    }
    this.send(conn, response(CODE.ok))
  }

  private event(state: DeviceState, conn: Conn, e: DeviceEvent): void {
    if (e.type === '2') {
      const u = deviceUser(e.data)
      if (!u) {
        this.ctx.log.warn('wsjson enrolment event without userId', { device: state.name, eventid: e.eventid })
        this.send(conn, response(CODE.error, 'enrolment event (type 2) without userId'))
        return
      }
      this.people(state).set(u.userId, { name: u.name, user: u.user, role: u.role, hasPhoto: u.hasPhoto, enrolledAt: Date.now() })
      state.peopleDirty = true
      this.savePeople(state)
      this.ctx.log.info('wsjson person enrolled on the device', { device: state.name, user: u.userId, name: u.name, face: u.hasPhoto })
      this.send(conn, response(CODE.ok))
      return
    }
    if (e.type !== '1' && e.type !== '') {
      this.ctx.log.info('wsjson event of a type the document does not define; acknowledged and not stored', { device: state.name, eventid: e.eventid, type: e.type })
      this.send(conn, response(CODE.ok))
      return
    }
    if (e.incomplete) {
      // catch-up: the details are asked for with queryEvent (3.1.6) once the device heard we have the event
      this.send(conn, response(CODE.ok))
      this.ctx.log.info('wsjson event without details; fetching it with queryEvent', { device: state.name, eventid: e.eventid })
      void this.fetchEvent(state, e.eventid).catch((err: Error) => {
        if (!(err instanceof Cancelled)) this.ctx.log.warn('wsjson could not fetch an event', { device: state.name, eventid: e.eventid, error: err.message })
      })
      return
    }
    try {
      this.spool(state, e)
    } catch (err) {
      this.ctx.log.warn('wsjson could not store an event; the device will send it again', { device: state.name, eventid: e.eventid, error: String(err) })
      this.send(conn, response(CODE.error, 'could not store the event, send it again'))
      return
    }
    this.send(conn, response(CODE.ok))
  }

  /** Durable before the device hears success; a re-sent event (same eventid) is stored once. */
  private spool(state: DeviceState, e: DeviceEvent): boolean {
    const people = this.people(state)
    const rec = accessRecord(e, {
      device: state.name, receivedAt: Date.now(), offsetMinutes: state.offset, terminalType: state.register?.type,
      nameOf: (id) => people.get(id)?.name || undefined,
    })
    const fresh = this.ctx.spool(rec)
    if (!fresh) this.ctx.log.debug('wsjson duplicate event', { device: state.name, eventid: e.eventid })
    return fresh
  }

  private async fetchEvent(state: DeviceState, eventid: string, jobId?: number): Promise<boolean> {
    const a = await this.call(state, 'queryEvent', queryEventContent(eventid), jobId)
    if (!a.ok) throw new Error(`the device refused queryEvent ${eventid}: ${a.reason}`)
    const e = parseQueriedEvent(a.body)
    if ('error' in e) throw new Error(`queryEvent ${eventid}: ${e.error}`)
    if (e.type === '2') throw new Error(`event ${eventid} is an enrolment, not an access record`)
    return this.spool(state, { ...e, eventid: e.eventid || eventid })
  }

  private answer(state: DeviceState, a: Answer): void {
    const step = state.inflight
    if (!step || (a.commandId !== undefined && a.commandId !== step.commandId)) {
      this.ctx.log.debug('wsjson answer to no command in flight (late or repeated); ignored', { device: state.name, commandId: a.commandId, code: a.code })
      return
    }
    if (a.commandId === undefined) this.ctx.log.debug('wsjson answer without commandId taken for the command in flight', { device: state.name, commandId: step.commandId })
    if (step.timer) clearTimeout(step.timer)
    state.inflight = undefined
    step.resolve({ ...a, sends: step.sends })
    this.flush(state)
  }

  // ---- the wire: one command in flight per device ---------------------------------------------

  private call(state: DeviceState, command: WireCommand, content: Json, jobId?: number): Promise<SentAnswer> {
    if (this.stopped) return Promise.reject(new Cancelled('gateway stopping'))
    const commandId = `${jobId ?? 0}-${++this.seq}`
    return new Promise<SentAnswer>((resolve, reject) => {
      state.waiting.push({ commandId, command, frame: JSON.stringify(commandFrame(commandId, command, content)), sends: 0, jobId, resolve, reject })
      this.flush(state)
    })
  }

  private flush(state: DeviceState): void {
    if (state.inflight || !state.conn) return
    const step = state.waiting.shift()
    if (!step) return
    state.inflight = step
    this.transmit(state, step)
  }

  private transmit(state: DeviceState, step: Step): void {
    const conn = state.conn
    if (!conn) return
    step.sends++
    step.sentOn = conn
    step.lost = undefined
    if (step.timer) clearTimeout(step.timer)
    step.timer = setTimeout(() => {
      step.timer = undefined
      if (state.inflight !== step || conn.closed) return
      step.lost = `no answer within ${this.answerTimeoutMs / 1000} s`
      this.ctx.log.warn('wsjson command not answered; closing the connection so the device reconnects', { device: state.name, commandId: step.commandId, command: step.command })
      conn.ws.terminate()
    }, this.answerTimeoutMs)
    step.timer.unref?.()
    if (step.jobId !== undefined && step.sends === 1 && state.job?.cmd.id === step.jobId && !state.job.cancelled) this.ctx.delivered(step.jobId)
    this.ctx.log.debug('wsjson command sent', { device: state.name, commandId: step.commandId, command: step.command, sends: step.sends })
    if (conn.closed || conn.ws.readyState !== conn.ws.OPEN) return
    conn.ws.send(step.frame, (err) => {
      if (err && !conn.closed) {
        this.ctx.log.warn('wsjson send failed', { device: state.name, error: String(err) })
        conn.ws.terminate()
      }
    })
  }

  // ---- queued commands ------------------------------------------------------------------------

  private queued(device: string): void {
    try {
      this.precheck(device)
      const state = this.states.get(device)
      if (state) this.pump(state)
    } catch (err) {
      this.ctx.log.warn('wsjson could not take a queued command', { device, error: String(err) })
    }
  }

  /** Commands no wsjson device can carry out fail when queued, not when the device next connects. */
  private precheck(device: string): void {
    for (const c of this.ctx.pending(device)) {
      if (c.protocol !== 'wsjson' || c.state !== 'queued' || handled(c)) continue
      this.ctx.finish(c.id, 'failed', { message: unsupportedWhy[c.kind] ?? `wsjson devices cannot carry out ${c.kind}` })
    }
  }

  /** A job whose command is no longer pending (expired, finished elsewhere) is dropped with its steps. */
  private reap(state: DeviceState): void {
    const job = state.job
    if (!job || job.cancelled || this.alive(state, job)) return
    this.cancel(state, job)
  }

  private cancel(state: DeviceState, job: Job): void {
    job.cancelled = true
    const mine = (s: Step) => s.jobId === job.cmd.id
    for (const s of state.waiting.filter(mine)) s.reject(new Cancelled('command no longer pending'))
    state.waiting = state.waiting.filter((s) => !mine(s))
    const step = state.inflight
    if (step && mine(step)) {
      if (step.timer) clearTimeout(step.timer)
      state.inflight = undefined
      step.reject(new Cancelled('command no longer pending'))
      this.flush(state)
    }
    if (state.job === job) state.job = undefined
  }

  private alive(state: DeviceState, job: Job): boolean {
    return !job.cancelled && this.ctx.pending(state.name).some((c) => c.id === job.cmd.id)
  }

  /** Starts the oldest pending command when the device is connected and nothing else runs. */
  private pump(state: DeviceState): void {
    if (this.stopped) return
    this.reap(state)
    if (state.job || !state.conn) return
    const cmd = this.ctx.pending(state.name).find((c) => c.protocol === 'wsjson')
    if (!cmd) return
    const job: Job = { cmd, cancelled: false }
    state.job = job
    void this.execute(state, job)
      .catch((err: Error) => {
        if (err instanceof Cancelled) return
        if (err instanceof GiveUp) this.finish(job, 'failed', { message: err.message })
        else {
          this.ctx.log.warn('wsjson command failed', { device: state.name, id: cmd.id, kind: cmd.kind, error: String(err) })
          this.finish(job, 'failed', { message: err.message })
        }
      })
      .finally(() => {
        this.savePeople(state)
        if (state.job === job) state.job = undefined
        setImmediate(() => this.pump(state))
      })
  }

  private finish(job: Job, st: 'acknowledged' | 'failed', result: CommandResult): void {
    if (job.cancelled) return
    job.cancelled = true
    this.ctx.finish(job.cmd.id, st, result)
  }

  private check(state: DeviceState, job: Job): void {
    if (!this.alive(state, job)) throw new Cancelled('command no longer pending')
  }

  private async execute(state: DeviceState, job: Job): Promise<void> {
    const p = job.cmd.payload
    this.ctx.log.debug('wsjson command started', { device: state.name, id: job.cmd.id, kind: job.cmd.kind })
    switch (job.cmd.kind as string) {
      case 'info':
        return this.finish(job, 'acknowledged', { data: this.info(state), message: 'from the device\'s register message' })
      case 'upsertPeople':
        if (!Array.isArray(p.people)) return this.finish(job, 'failed', { message: 'upsertPeople payload has no people' })
        return this.upsert(state, job, (p.people as unknown[]).filter(isObject).map(toPerson))
      case 'enrollFace':
        return this.enroll(state, job)
      case 'deletePeople':
        return this.remove(state, job)
      case 'listPeople':
        return this.list(state, job)
      case CHECK_FACE_KIND:
        return this.checkFace(state, job)
      case FETCH_EVENTS_KIND:
        return this.fetchEvents(state, job)
      default:
        return this.finish(job, 'failed', { message: unsupportedWhy[job.cmd.kind] ?? `wsjson devices cannot carry out ${job.cmd.kind}` })
    }
  }

  private info(state: DeviceState): Json {
    const r = state.register
    const data: Json = {
      sn: r?.sn ?? state.entry.sn ?? '', ip: r?.ip ?? '', mac: r?.mac ?? '', type: r?.type ?? '', terminal: terminalTypeName(r?.type ?? ''),
      heartbeat_seconds: this.heartbeatSeconds, registered_at: r ? isoWithOffset(new Date(r.at)) : null, address: r?.address ?? '',
    }
    if (state.offset !== undefined) data.utc_offset_minutes = state.offset
    return data
  }

  // ---- people -----------------------------------------------------------------------------------

  private async upsert(state: DeviceState, job: Job, people: PersonPayload[]): Promise<void> {
    const outcomes = new Map<string, PersonOutcome>()
    // outcomes recorded before a gateway restart stand
    for (const o of job.cmd.result?.people ?? []) outcomes.set(o.id, o)
    const known = this.people(state)
    const progress = this.progress(job, people.length)
    let abort: string | undefined
    for (const p of people) {
      if (outcomes.has(p.id)) continue
      const out = (status: PersonOutcome['status'], message: string, extra: Partial<PersonOutcome> = {}) => {
        outcomes.set(p.id, { id: p.id, name: p.name, status, message, ...extra })
        progress([...outcomes.values()])
      }
      if (abort) {
        out('skipped', `not sent: ${abort}`)
        continue
      }
      // 4.1 role: "0:普通用户 1:管理员": no blacklist; storing such a person as a user would let them in
      if (p.role === 'blacklist') {
        out('failed', 'wsjson devices have no blacklist (role is 0 user or 1 admin); not sent')
        continue
      }
      const img = p.photoPath ? await this.photo(p.photoPath) : { base64: '' }
      if ('error' in img) {
        out('failed', `${img.error}; not sent`)
        continue
      }
      this.check(state, job)
      const was = known.get(p.id)
      const add = addUserContent(p, img.base64, was?.user)
      try {
        let a = await this.call(state, 'addUser', { ...add }, job.cmd.id)
        let action = was ? 'updated' : 'added'
        if (!a.ok && (isExistsReason(a.reason) || (was !== undefined && !isFaceReason(a.reason)))) {
          a = await this.call(state, 'editUser', editUserContent(add), job.cmd.id)
          action = 'updated'
        }
        if (a.ok) {
          known.set(p.id, { name: add.name, user: add.user, role: add.role, hasPhoto: img.base64 !== '' || was?.hasPhoto === true, enrolledAt: was?.enrolledAt })
          state.peopleDirty = true
          out('ok', img.base64 ? 'stored with face' : 'stored', { action })
        } else {
          out('failed', a.reason, { action: 'add', deviceCode: numeric(a.code) })
        }
      } catch (err) {
        if (!(err instanceof GiveUp)) throw err
        out('failed', err.message, { action: 'add' })
        abort = err.message
      }
    }
    const ordered = people.map((p) => outcomes.get(p.id)).filter((o): o is PersonOutcome => o !== undefined)
    const ok = ordered.filter((o) => o.status === 'ok').length
    const unsent = [...new Set(people.flatMap((p) => p.unsent))]
    const note = unsent.length > 0 ? ` (${unsent.join(', ')} not stored: ws-json.txt 4.1 has no such fields)` : ''
    this.finish(job, 'acknowledged', { people: ordered, message: `${ok} of ${people.length} stored${note}` })
  }

  private async enroll(state: DeviceState, job: Job): Promise<void> {
    const p = job.cmd.payload
    const id = String(p.id ?? '')
    if (p.capture === true) return this.finish(job, 'failed', { message: 'wsjson devices cannot capture a face themselves (ws-json.txt has no such command); enroll with --photo' })
    if (!id || typeof p.photoPath !== 'string') return this.finish(job, 'failed', { message: 'enrollFace needs an id and a photo' })
    const img = await this.photo(p.photoPath)
    let outcome: PersonOutcome
    if ('error' in img) outcome = { id, status: 'failed', action: 'enroll', message: `${img.error}; not sent` }
    else {
      this.check(state, job)
      const known = this.people(state)
      const was = known.get(id)
      try {
        // editUser with the photo: the person is already on the device (3.1.3), nothing else changes
        const a = await this.call(state, 'editUser', faceContent(id, img.base64, was), job.cmd.id)
        if (a.ok) {
          if (was) known.set(id, { ...was, hasPhoto: true })
          state.peopleDirty = true
          outcome = { id, name: was?.name, status: 'ok', action: 'enrolled', message: 'face enrolled' }
        } else {
          outcome = { id, name: was?.name, status: 'failed', action: 'enroll', message: a.reason, deviceCode: numeric(a.code) }
        }
      } catch (err) {
        if (!(err instanceof GiveUp)) throw err
        outcome = { id, status: 'failed', action: 'enroll', message: err.message }
      }
    }
    this.finish(job, 'acknowledged', { people: [outcome], message: outcome.message })
  }

  private async remove(state: DeviceState, job: Job): Promise<void> {
    const raw = job.cmd.payload.ids
    const known = this.people(state)
    let ids: string[]
    if (raw === 'all') {
      // no delete-all command in 3.1: everyone selectUser lists is deleted one by one
      this.check(state, job)
      const a = await this.call(state, 'selectUser', selectAllContent(), job.cmd.id)
      if (!a.ok) return this.finish(job, 'failed', { message: `could not list the people to delete: ${a.reason}`, deviceCode: numeric(a.code) })
      const users = parseUserList(a.body)
      if ('error' in users) return this.finish(job, 'failed', { message: users.error })
      ids = users.map((u) => u.userId)
      for (const u of users) if (!known.has(u.userId)) known.set(u.userId, { name: u.name, user: u.user, role: u.role, hasPhoto: u.hasPhoto })
    } else if (Array.isArray(raw)) {
      ids = [...new Set(raw.map(String))]
    } else {
      return this.finish(job, 'failed', { message: 'deletePeople payload has no ids' })
    }
    const outcomes = new Map<string, PersonOutcome>()
    for (const o of job.cmd.result?.people ?? []) outcomes.set(o.id, o)
    const progress = this.progress(job, ids.length)
    let abort: string | undefined
    for (const id of ids) {
      if (outcomes.has(id)) continue
      const name = known.get(id)?.name || undefined
      const out = (o: Omit<PersonOutcome, 'id' | 'name'>) => {
        outcomes.set(id, { id, name, ...o })
        progress([...outcomes.values()])
      }
      if (abort) {
        out({ status: 'skipped', message: `not sent: ${abort}` })
        continue
      }
      this.check(state, job)
      try {
        const a = await this.call(state, 'deleteUser', deleteUserContent(id, name), job.cmd.id)
        if (a.ok || (a.sends > 1 && isNotFoundReason(a.reason))) {
          known.delete(id)
          state.peopleDirty = true
          out({ status: 'ok', action: 'deleted', message: a.ok ? 'deleted' : 'deleted (before the connection dropped)' })
        } else {
          out({ status: 'failed', action: 'delete', message: a.reason, deviceCode: numeric(a.code) })
        }
      } catch (err) {
        if (!(err instanceof GiveUp)) throw err
        out({ status: 'failed', action: 'delete', message: err.message })
        abort = err.message
      }
    }
    const ordered = ids.map((id) => outcomes.get(id)).filter((o): o is PersonOutcome => o !== undefined)
    const ok = ordered.filter((o) => o.status === 'ok').length
    this.finish(job, 'acknowledged', { people: ordered, message: raw === 'all' && ids.length === 0 ? 'nobody to delete' : `${ok} of ${ordered.length} deleted` })
  }

  private async list(state: DeviceState, job: Job): Promise<void> {
    this.check(state, job)
    const a = await this.call(state, 'selectUser', selectAllContent(), job.cmd.id)
    if (!a.ok) return this.finish(job, 'failed', { message: a.reason, deviceCode: numeric(a.code) })
    if (a.code !== CODE.selectUser) this.ctx.log.debug('wsjson selectUser answered with a code other than 203', { device: state.name, code: a.code })
    const users = parseUserList(a.body)
    if ('error' in users) return this.finish(job, 'failed', { message: users.error })
    // the device's answer is what it has: our knowledge of its people follows it
    const before = this.people(state)
    const now = new Map<string, Known>()
    for (const u of users) now.set(u.userId, { name: u.name, user: u.user, role: u.role, hasPhoto: u.hasPhoto, enrolledAt: before.get(u.userId)?.enrolledAt })
    state.people = now
    state.peopleDirty = true
    const people = users.map((u) => personInfoJson(u, now.get(u.userId)?.enrolledAt))
    const onDevice = users.filter((u) => now.get(u.userId)?.enrolledAt !== undefined).length
    this.finish(job, 'acknowledged', { data: { people }, message: `${people.length} people${onDevice > 0 ? ` (${onDevice} enrolled on the device itself)` : ''}` })
  }

  // ---- faces and events ---------------------------------------------------------------------------

  private async checkFace(state: DeviceState, job: Job): Promise<void> {
    const p = job.cmd.payload
    const img = typeof p.photoBase64 === 'string' ? { base64: p.photoBase64 } : typeof p.photoPath === 'string' ? await this.photo(p.photoPath) : { error: 'checkFace needs a photo' }
    if ('error' in img) return this.finish(job, 'failed', { message: img.error })
    this.check(state, job)
    const r = await this.compare(state, img.base64, job.cmd.id)
    if ('error' in r) return this.finish(job, 'failed', { message: r.error, deviceCode: r.code })
    this.finish(job, 'acknowledged', { data: { exists: r.exists }, message: r.exists ? 'the face is enrolled on the device' : 'the face is not enrolled on the device' })
  }

  /** compareUser (3.1.5): is this face in the device's face library? */
  async compare(state: DeviceState, base64: string, jobId?: number): Promise<{ exists: boolean } | { error: string; code?: number }> {
    const a = await this.call(state, 'compareUser', compareContent(base64), jobId)
    if (!a.ok) return { error: a.reason, code: numeric(a.code) }
    const exists = parseCompare(a.body)
    return typeof exists === 'boolean' ? { exists } : exists
  }

  private async fetchEvents(state: DeviceState, job: Job): Promise<void> {
    const ids = job.cmd.payload.eventIds
    if (!Array.isArray(ids) || ids.length === 0) return this.finish(job, 'failed', { message: unsupportedWhy.repostRecords! })
    let fresh = 0
    const failures: string[] = []
    for (const id of ids.map(String)) {
      this.check(state, job)
      try {
        if (await this.fetchEvent(state, id, job.cmd.id)) fresh++
      } catch (err) {
        if (err instanceof Cancelled || err instanceof GiveUp) throw err
        failures.push((err as Error).message)
      }
    }
    const message = `${ids.length - failures.length} of ${ids.length} events fetched, ${fresh} new${failures.length > 0 ? `; ${failures.join('; ')}` : ''}`
    this.finish(job, failures.length === ids.length ? 'failed' : 'acknowledged', { message, data: { fetched: ids.length - failures.length, new: fresh, failed: failures } })
  }

  /** For a caller in the gateway's own process: compareUser on a connected device. */
  async compareOnDevice(device: string, photo: Buffer): Promise<boolean> {
    const state = this.states.get(device)
    if (!state?.conn) throw new Error(`${device} is not connected to this gateway`)
    const r = await this.compare(state, encodeImage(photo))
    if ('error' in r) throw new Error(r.error)
    return r.exists
  }

  hasDevice(device: string): boolean {
    return this.states.get(device)?.conn !== undefined
  }

  // ---- state ----------------------------------------------------------------------------------------

  private stateOf(entry: DeviceEntry): DeviceState {
    let s = this.states.get(entry.name)
    if (!s) {
      const offset = this.ctx.state(entry.name, 'utcOffsetMinutes')
      s = { name: entry.name, entry, waiting: [], peopleDirty: false, offset: typeof offset === 'number' ? offset : undefined }
      this.states.set(entry.name, s)
    }
    s.entry = entry
    return s
  }

  /** The device's people as this gateway knows them (durable state key `people`). */
  private people(state: DeviceState): Map<string, Known> {
    if (!state.people) {
      const saved = this.ctx.state(state.name, 'people')
      state.people = new Map(isObject(saved) ? Object.entries(saved).filter((e): e is [string, Known] => isObject(e[1])) : [])
    }
    return state.people
  }

  private savePeople(state: DeviceState): void {
    if (!state.peopleDirty || !state.people) return
    state.peopleDirty = false
    try {
      this.ctx.setState(state.name, 'people', Object.fromEntries(state.people))
    } catch (err) {
      this.ctx.log.warn('wsjson could not save what it knows of the device\'s people', { device: state.name, error: String(err) })
    }
  }

  /** Per-person progress, written now and then (each write is a durable transaction). */
  private progress(job: Job, total: number): (outcomes: PersonOutcome[]) => void {
    let last = Date.now()
    let count = 0
    return (outcomes) => {
      count++
      if (count % 50 !== 0 && Date.now() - last < 1000) return
      last = Date.now()
      if (!job.cancelled) this.ctx.progress(job.cmd.id, { people: outcomes, message: `${outcomes.length} of ${total} answered` })
    }
  }

  private async photo(path: string): Promise<{ base64: string } | { error: string }> {
    let data: Buffer
    try {
      data = await readFile(path)
    } catch (err) {
      return { error: `cannot read the photo ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }
    }
    if (data.length > personRules.maxPhotoBytes) return { error: `the photo is ${Math.ceil(data.length / 1024)} KB; wsjson devices take at most ${personRules.maxPhotoBytes / 1024} KB` }
    return { base64: encodeImage(data) }
  }
}

function lostMessage(step: Step): string {
  return `${step.lost ?? DISCONNECTED} while handling ${step.command} (sent ${step.sends} time${step.sends === 1 ? '' : 's'})`
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8')
  if (Buffer.isBuffer(data)) return data.toString('utf8')
  return Buffer.from(data).toString('utf8')
}

function handled(c: QueuedCommand): boolean {
  return kinds.has(c.kind) || ((c.kind as string) === FETCH_EVENTS_KIND && Array.isArray(c.payload.eventIds))
}

/** A refusal about the photo itself: editing would fail the same way. */
function isFaceReason(reason: string): boolean {
  return /face|img|image|photo|人脸|图片|照片/i.test(reason)
}

function numeric(code: string): number | undefined {
  return /^\d+$/.test(code) ? Number(code) : undefined
}

function toPerson(o: Json): PersonPayload {
  const s = (v: unknown) => (v === undefined || v === null || v === '' ? undefined : String(v))
  const unsent: string[] = []
  for (const [k, label] of [['card', 'card'], ['phone', 'phone'], ['department', 'department'], ['validFrom', 'valid_from'], ['validTo', 'valid_to'], ['room', 'room'], ['unit', 'unit']] as const) {
    if (o[k] !== undefined && o[k] !== null && o[k] !== '') unsent.push(label)
  }
  return {
    id: String(o.id ?? ''),
    name: s(o.name), password: s(o.password),
    role: o.role === 'admin' || o.role === 'blacklist' || o.role === 'user' ? o.role : undefined,
    photoPath: s(o.photoPath),
    unsent,
  }
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

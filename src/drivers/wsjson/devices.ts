import type { WebSocket } from 'ws'
import type { CommandResult, GatewayContext, QueuedCommand } from '../../types/gateway.js'
import type { DeviceEntry } from '../../types/driver.js'
import { commandFrame, isObject, type Answer, type Json, type RegisterInfo, type WireCommand } from './codec.js'

/** A command that could not be carried out (the device kept dropping, or its answer is too large): fails the command. */
export class GiveUp extends Error {}
/** The command is no longer pending, or the gateway stops: nothing to report. */
export class Cancelled extends Error {}

export interface Conn {
  ws: WebSocket
  address: string
  state?: DeviceState
  bad: number
  closed: boolean
  /** The device sent a frame larger than the gateway's maxPayload (maxBodyBytes). */
  tooBig?: boolean
  silence?: NodeJS.Timeout
  /** Answers held back behind one that waits for a commit (reply): the device's messages are answered in order. */
  replies?: Promise<void>
}

export interface Step {
  commandId: string
  command: WireCommand
  frame: string
  /** Times sent so far. */
  sends: number
  sentOn?: Conn
  timer?: NodeJS.Timeout
  /** Why the last send went unanswered. */
  lost?: string
  /** Its job's command is being claimed in the store: sent once that is committed. */
  claiming?: boolean
  jobId?: number
  resolve(a: SentAnswer): void
  reject(e: Error): void
}

export type SentAnswer = Answer & { sends: number }

/** A person as far as this gateway knows the device's people (no password, no photo). */
export interface Known {
  name: string
  user: string
  role: string
  hasPhoto: boolean
  /** Enrolled on the device itself (207 type 2), ms. */
  enrolledAt?: number
}

export interface Job {
  cmd: QueuedCommand
  cancelled: boolean
  /** The command is claimed (delivered by this gateway, committed): its frames may go out. */
  claimed?: boolean
  /** The claim failed (the store is down, or another gateway has the command): tried again after a pause. */
  unclaimed?: boolean
}

export interface DeviceState {
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

export const DISCONNECTED = 'the device disconnected'

/** Tunables of the wsjson gateway (WsjsonOptions with their defaults). */
export interface WsjsonTiming {
  heartbeatSeconds: number
  maxResends: number
  answerTimeoutMs: number
  maxMessageBytes: number
}

/**
 * Each wsjson device's state, the wire to it (one command in flight per device, answered by its
 * commandId) and how a command ends: shared by delivery, people and records.
 */
export class WsjsonDevices {
  readonly states = new Map<string, DeviceState>()
  readonly heartbeatSeconds: number
  readonly maxResends: number
  readonly answerTimeoutMs: number
  readonly maxMessageBytes: number
  stopped = false
  private seq = 0

  constructor(readonly ctx: GatewayContext, timing: WsjsonTiming) {
    this.heartbeatSeconds = timing.heartbeatSeconds
    this.maxResends = timing.maxResends
    this.answerTimeoutMs = timing.answerTimeoutMs
    this.maxMessageBytes = timing.maxMessageBytes
  }

  stateOf(entry: DeviceEntry): DeviceState {
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
  people(state: DeviceState): Map<string, Known> {
    if (!state.people) {
      const saved = this.ctx.state(state.name, 'people')
      state.people = new Map(isObject(saved) ? Object.entries(saved).filter((e): e is [string, Known] => isObject(e[1])) : [])
    }
    return state.people
  }

  savePeople(state: DeviceState): void {
    if (!state.peopleDirty || !state.people) return
    state.peopleDirty = false
    try {
      this.ctx.setState(state.name, 'people', Object.fromEntries(state.people))
    } catch (err) {
      this.ctx.log.warn('wsjson could not save what it knows of the device\'s people', { device: state.name, error: String(err) })
    }
  }

  /**
   * Answers a device message. Its answers carry nothing to match them by (AMBIGUITIES wsjson #7),
   * so they go in the order of its messages: one that waits for `after` (a commit) holds back the
   * answers behind it; `failed` is the answer when `after` rejects.
   */
  reply(conn: Conn, msg: Json, after?: { committed: Promise<unknown>; failed(err: Error): Json }): void {
    if (!after && !conn.replies) return this.send(conn, msg)
    const answer = after ? after.committed.then(() => msg, (err: Error) => after.failed(err)) : msg
    const next = (conn.replies ?? Promise.resolve()).then(() => answer).then((m) => this.send(conn, m))
    conn.replies = next
    void next.catch((err: Error) => this.ctx.log.warn('wsjson answer failed', { device: conn.state?.name, error: String(err) })).finally(() => {
      if (conn.replies === next) conn.replies = undefined
    })
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

  // ---- the wire: one command in flight per device ---------------------------------------------

  call(state: DeviceState, command: WireCommand, content: Json, jobId?: number): Promise<SentAnswer> {
    if (this.stopped) return Promise.reject(new Cancelled('gateway stopping'))
    const commandId = `${jobId ?? 0}-${++this.seq}`
    return new Promise<SentAnswer>((resolve, reject) => {
      state.waiting.push({ commandId, command, frame: JSON.stringify(commandFrame(commandId, command, content)), sends: 0, jobId, resolve, reject })
      this.flush(state)
    })
  }

  flush(state: DeviceState): void {
    if (state.inflight || !state.conn) return
    const step = state.waiting.shift()
    if (!step) return
    state.inflight = step
    this.transmit(state, step)
  }

  /** Sends the step in flight; a job's first frame only once its command's claim is committed (another gateway may hold it). */
  transmit(state: DeviceState, step: Step): void {
    if (step.claiming) return
    const job = state.job
    if (step.jobId === undefined || job?.cmd.id !== step.jobId || job.cancelled || job.claimed) return this.put(state, step)
    step.claiming = true
    this.ctx.durable(() => this.ctx.delivered(job.cmd.id)).then(() => {
      step.claiming = false
      job.claimed = true
      if (state.inflight === step) this.put(state, step)
    }, (err: Error) => {
      step.claiming = false
      job.unclaimed = true
      this.ctx.log.info('wsjson command not sent: its claim in the store failed', { device: state.name, id: job.cmd.id, error: err.message })
      if (state.inflight !== step) return
      state.inflight = undefined
      step.reject(new Cancelled(`not claimed: ${err.message}`))
      this.flush(state)
    })
  }

  private put(state: DeviceState, step: Step): void {
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
    this.ctx.log.debug('wsjson command sent', { device: state.name, commandId: step.commandId, command: step.command, sends: step.sends })
    if (conn.closed || conn.ws.readyState !== conn.ws.OPEN) return
    conn.ws.send(step.frame, (err) => {
      if (err && !conn.closed) {
        this.ctx.log.warn('wsjson send failed', { device: state.name, error: String(err) })
        conn.ws.terminate()
      }
    })
  }

  answer(state: DeviceState, a: Answer): void {
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

  // ---- jobs ------------------------------------------------------------------------------------

  finish(job: Job, st: 'acknowledged' | 'failed', result: CommandResult): void {
    if (job.cancelled) return
    job.cancelled = true
    this.ctx.finish(job.cmd.id, st, result)
  }

  check(state: DeviceState, job: Job): void {
    if (!this.alive(state, job)) throw new Cancelled('command no longer pending')
  }

  alive(state: DeviceState, job: Job): boolean {
    return !job.cancelled && this.ctx.pending(state.name).some((c) => c.id === job.cmd.id)
  }
}

export function lostMessage(step: Step): string {
  return `${step.lost ?? DISCONNECTED} while handling ${step.command} (sent ${step.sends} time${step.sends === 1 ? '' : 's'})`
}

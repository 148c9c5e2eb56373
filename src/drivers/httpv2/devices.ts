import type { CommandResult, GatewayContext, QueuedCommand } from '../../types/gateway.js'
import type { DeviceEntry, PersonOutcome } from '../../types/driver.js'
import { errorAnswer, type Flag, type Json, type PersonFailure, type PersonPayload, type PushedPerson } from './codec.js'

/** The device endpoints the gateway serves (gateway.ts maps paths to them). */
export type Endpoint =
  | 'keepalive' | 'uploadSetting' | 'downloadSetting' | 'remote' | 'registerResult' | 'snapshot' | 'downloadPeople' | 'downloadResult'
  | 'deletePeople' | 'deleteResult' | 'pushPeople' | 'authorize' | 'identifyRecord' | 'systemRecord'

/** v2 paths (HTTPClient_ProtocolType 200) and the v1 ones README.md names (100); matching is case-insensitive. */
const PATHS: [string, Endpoint][] = [
  ['/Device/Keepalive', 'keepalive'],
  ['/Device/UploadWorkSetting', 'uploadSetting'],
  ['/Device/DownloadWorkSetting', 'downloadSetting'],
  ['/Device/RemoteCommand', 'remote'],
  ['/Device/RegisterIdentifyTicketResult', 'registerResult'],
  ['/Device/UploadSnapshoot', 'snapshot'],
  ['/Device/UploadSnapshot', 'snapshot'],
  ['/Device/RequestAuthorization', 'authorize'],
  ['/People/DownloadPeopleList', 'downloadPeople'],
  ['/People/DownloadPeopleListResult', 'downloadResult'],
  ['/People/DeletePeopleList', 'deletePeople'],
  ['/People/DeletePeopleListResult', 'deleteResult'],
  ['/People/PushPeople', 'pushPeople'],
  ['/Record/UploadIdentifyRecord', 'identifyRecord'],
  ['/Record/UploadSystemRecord', 'systemRecord'],
  // v1 (AMBIGUITIES #2: the keepalive table points here, bodies undocumented: read as their v2 twins)
  ['/DevicePass/SelectPassInfo', 'downloadPeople'],
  ['/DevicePass/SelectDeleteInfo', 'deletePeople'],
  ['/device/selectRestart', 'remote'],
]

export interface Batch {
  ids: string[]
  answer: Json
  resends: number
  /** The device fetched one of its photos: it surely got the answer. */
  received: boolean
}

export interface ImportJob {
  people: Map<string, PersonPayload>
  /** Ids to hand out, in order. */
  order: string[]
  next: number
  outstanding: Batch[]
  last?: Batch
  outcomes: Map<string, PersonOutcome>
  /** The device asked past a batch it never reported: it reports after its loop, no more resends. */
  reportsAfterLoop: boolean
  /** Failures a result named for a batch it did not close. */
  early: Map<string, PersonFailure>
  loopEnded: boolean
  /** enrollFace: send only what we have, over what the device told us. */
  partial: boolean
  action?: string
  /** People the device already had (as far as this gateway saw). */
  existed: Set<string>
  /** People whose face must be checked afterwards: sent with a photo, or known to have one. */
  faceCheck: Set<string>
  phase: 'import' | 'verify'
}

export interface DeleteJob {
  all: boolean
  allGiven: boolean
  allResends: number
  order: string[]
  next: number
  outstanding: Batch[]
  last?: Batch
  outcomes: Map<string, PersonOutcome>
  reportsAfterLoop: boolean
  loopEnded: boolean
}

export interface Collect {
  purpose: 'list' | 'verify'
  people: Map<string, PushedPerson>
  expected?: Set<string>
  expectedCount?: number
  handedOut: boolean
  sawKeepalive: boolean
  lastPush: number
}

/** The command a device is working on (one at a time, in queue order). */
export interface Job {
  cmd: QueuedCommand
  flags: Set<Flag>
  delivered: boolean
  done: boolean
  /** RemoteCommand answer still to hand out. */
  remote?: Json
  /** DownloadWorkSetting values still to hand out. */
  settings?: Json
  /** Finished by the device's next request of another kind than this one. */
  ackVia?: Endpoint
  ackMessage?: string
  timer?: NodeJS.Timeout
  imp?: ImportJob
  del?: DeleteJob
  collect?: Collect
}

export interface DeviceState {
  name: string
  entry: DeviceEntry
  job?: Job
  /** The previous request and what we handed over in it (a repeat gets the same). */
  last?: { endpoint: Endpoint; answer?: Json }
  tzHours?: number
  /** When this gateway last heard from it, and its keepalive interval from its work settings (record collection). */
  requestAt?: number
  keepaliveMs?: number
  /** What the device told us about its people (PushPeople / RegisterIdentifyTicketResult). */
  people: Map<string, { detail: Json; hasFace: boolean }>
  lock: Promise<unknown>
}

export type Reply = Json | { status: number; json: Json }

/** Tunables of the httpv2 gateway (Httpv2Options with their defaults). */
export interface Httpv2Timing {
  ackQuietMs: number
  pushQuietMs: number
  batchResends: number
}

/**
 * Each httpv2 device's state and the command it is working on, and how a command ends: shared
 * by the delivery of commands, the people flows and the record uploads.
 */
export class Httpv2Devices {
  private readonly states = new Map<string, DeviceState>()
  readonly ackQuietMs: number
  readonly pushQuietMs: number
  readonly batchResends: number

  constructor(readonly ctx: GatewayContext, timing: Httpv2Timing) {
    this.ackQuietMs = timing.ackQuietMs
    this.pushQuietMs = timing.pushQuietMs
    this.batchResends = timing.batchResends
  }

  stop(): void {
    for (const s of this.states.values()) if (s.job?.timer) clearTimeout(s.job.timer)
  }

  bad(endpoint: Endpoint, address: string, message: string, device?: string): { status: number; json: Json } {
    this.ctx.log.warn('httpv2 malformed request', { endpoint, from: address, device, reason: message })
    return { status: 400, json: errorAnswer(message) }
  }

  stateOf(entry: DeviceEntry): DeviceState {
    let s = this.states.get(entry.name)
    if (!s) {
      s = { name: entry.name, entry, people: new Map(), lock: Promise.resolve() }
      this.states.set(entry.name, s)
    }
    s.entry = entry
    return s
  }

  finish(state: DeviceState, job: Job, st: 'acknowledged' | 'failed', result: CommandResult): void {
    if (job.done) return
    job.done = true
    if (job.timer) clearTimeout(job.timer)
    if (state.job === job) state.job = undefined
    this.ctx.finish(job.cmd.id, st, result)
    this.ctx.log.debug('httpv2 command finished', { device: state.name, id: job.cmd.id, kind: job.cmd.kind, state: st })
  }

  delivered(job: Job): void {
    if (job.delivered) return
    job.delivered = true
    this.ctx.delivered(job.cmd.id)
  }

  arm(job: Job, ms: number, fn: () => void): void {
    if (job.timer) clearTimeout(job.timer)
    job.timer = setTimeout(() => {
      job.timer = undefined
      if (!job.done) {
        try {
          fn()
        } catch (err) {
          this.ctx.log.warn('httpv2 timer failed', { id: job.cmd.id, error: String(err) })
        }
      }
    }, Math.max(0, ms))
    job.timer.unref?.()
  }

  fail(state: DeviceState, job: Job, message: string): undefined {
    this.finish(state, job, 'failed', { message })
    return undefined
  }
}

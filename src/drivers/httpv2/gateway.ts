/**
 * httpv2 gateway side (httpv2-face.md): the device polls /Device/Keepalive and follows the
 * flags of our answer. Queued commands are turned into flags and into the answers of the
 * endpoints those flags send the device to; the device's reports finish them.
 *
 * Delivery rules (one command at a time, in queue order):
 * - A keepalive answer raises the flags of the oldest unfinished command only, so the device's
 *   own flag order (AMBIGUITIES #1, see FLAG_ORDER) can never reorder our queue. listPeople
 *   raises two (UploadWorkParameter + Remote) and works in either order.
 * - A command is marked delivered when the device takes it (RemoteCommand, DownloadWorkSetting,
 *   the first DownloadPeopleList/DeletePeopleList batch, or the keepalive answer carrying
 *   UploadWorkParameter).
 * - Lost answers: a device that asks RemoteCommand / DownloadWorkSetting again with no other
 *   request in between gets the same answer again, not the next command; a batch it asks for
 *   again before reporting it is handed out again (at most `batchResends` times).
 * - Hand-overs without a report of their own (open, reboot, repostRecords, syncTime, setConfig)
 *   are acknowledged when the device shows it has them: its next request of another kind (a
 *   keepalive included), or `ackQuietMs` (5 s) without a repeat: the device's request timeout is
 *   2 s with 3 retries (异常处理), so one that lost our answer asks again well within that.
 * - PushPeople has no end marker (AMBIGUITIES #12): a listing ends `pushQuietMs` (3 s) after the
 *   last PushPeople once the device has either sent a keepalive (the document has it work
 *   between keepalives, and keepalive in the middle of long work, hence the quiet period) or
 *   pushed as many people as its PeopleStorageInfo.Person.Current says (we ask for the work
 *   settings with the same keepalive). A verification ends when every asked id was pushed.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { CommandResult, GatewayContext, GatewayRequest, GatewayResponse, ProtocolHandler, QueuedCommand, Route } from '../../types/gateway.js'
import type { DeviceEntry, OpenMode, PersonOutcome } from '../../types/driver.js'
import {
  authorizationAnswer, deleteAllAnswer, deletePeopleAnswer, downloadPeopleAnswer, downloadSettingAnswer, errorAnswer, filePart, identifyRecord,
  isObject, jsonPart, keepaliveAnswer, limitOf, okAnswer, OPEN_CODES, parseDeleteResult, parseDownloadResult, parseKeepalive, parsePushPeople,
  parseRecordUpload, parseRegisterResult, parseWorkSettings, peopleJson, personInfoFromDetail, personInfoJson, personProblem, plainValue,
  registerMessage, remoteAnswer, settingValues, snOf, systemRecords, timeSettings, unknownDeviceAnswer, workSettingsData,
  type DoorStatus, type Flag, type Json, type PersonFailure, type PersonPayload, type PhotoRef, type PushedPerson,
} from './codec.js'
import { kinds, personRules, USER_ID_RE } from './rules.js'
import { readPersonPayload } from '../../gateway/payloads.js'

type Endpoint =
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

export interface Httpv2Options {
  /** Acknowledge a hand-over after this long without a repeat of the request (ms). */
  ackQuietMs?: number
  /** A PushPeople collection ends after this long without a push, once it may end (ms). */
  pushQuietMs?: number
  /** How often an unreported batch is handed out again to a device that asks again. */
  batchResends?: number
}

interface Batch {
  ids: string[]
  answer: Json
  resends: number
  /** The device fetched one of its photos: it surely got the answer. */
  received: boolean
}

interface ImportJob {
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

interface DeleteJob {
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

interface Collect {
  purpose: 'list' | 'verify'
  people: Map<string, PushedPerson>
  expected?: Set<string>
  expectedCount?: number
  handedOut: boolean
  sawKeepalive: boolean
  lastPush: number
}

interface Job {
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

interface DeviceState {
  name: string
  entry: DeviceEntry
  job?: Job
  /** The previous request and what we handed over in it (a repeat gets the same). */
  last?: { endpoint: Endpoint; answer?: Json }
  tzHours?: number
  /** What the device told us about its people (PushPeople / RegisterIdentifyTicketResult). */
  people: Map<string, { detail: Json; hasFace: boolean }>
  lock: Promise<unknown>
}

type Reply = Json | { status: number; json: Json }

const FIRE_AND_FORGET = new Set(['open', 'reboot', 'repostRecords', 'syncTime', 'setConfig'])

class Httpv2Gateway {
  private readonly states = new Map<string, DeviceState>()
  private readonly ackQuietMs: number
  private readonly pushQuietMs: number
  private readonly batchResends: number

  constructor(private readonly ctx: GatewayContext, opts: Httpv2Options) {
    this.ackQuietMs = opts.ackQuietMs ?? 5000
    this.pushQuietMs = opts.pushQuietMs ?? 3000
    this.batchResends = opts.batchResends ?? 3
    // commands that can never work are failed when queued, not after the device's next keepalive
    ctx.onQueued((device) => this.precheck(device))
  }

  routes(): Route[] {
    return PATHS.map(([path, endpoint]) => ({ method: '*', path, handle: (req: GatewayRequest) => this.handle(endpoint, req) }))
  }

  stop(): void {
    for (const s of this.states.values()) if (s.job?.timer) clearTimeout(s.job.timer)
  }

  // ---- request entry ------------------------------------------------------------------------

  private async handle(endpoint: Endpoint, req: GatewayRequest): Promise<GatewayResponse> {
    const address = `${req.remoteAddress}:${req.remotePort}`
    try {
      const result = jsonPart(req, ['ResultJson'])
      const sn = snOf(req, isObject(result) ? result : undefined)
      if (!sn) return this.bad(endpoint, address, 'SN missing')
      const status = endpoint === 'keepalive' && isObject(req.json) ? parseKeepalive(req.json) : undefined
      const entry = this.ctx.findDevice('httpv2', sn)
      if (!entry) {
        this.ctx.discovered('httpv2', sn, address, status ? { ...status } : undefined)
        return { json: unknownDeviceAnswer() }
      }
      this.ctx.touch(entry, address, status ? presenceInfo(status) : undefined)
      const state = this.stateOf(entry)
      // one request of a device at a time: a retry that overtakes its original sees its effects
      const run = state.lock.then(() => this.dispatch(endpoint, req, state, sn, address))
      state.lock = run.catch(() => undefined)
      const reply = await run
      return 'status' in reply && typeof reply.status === 'number' && isObject(reply.json) ? { status: reply.status, json: reply.json } : { json: reply }
    } catch (err) {
      this.ctx.log.warn('httpv2 request failed', { endpoint, from: address, error: String(err) })
      return { status: 500, json: errorAnswer('internal error') }
    }
  }

  private bad(endpoint: Endpoint, address: string, message: string, device?: string): { status: number; json: Json } {
    this.ctx.log.warn('httpv2 malformed request', { endpoint, from: address, device, reason: message })
    return { status: 400, json: errorAnswer(message) }
  }

  private stateOf(entry: DeviceEntry): DeviceState {
    let s = this.states.get(entry.name)
    if (!s) {
      s = { name: entry.name, entry, people: new Map(), lock: Promise.resolve() }
      this.states.set(entry.name, s)
    }
    s.entry = entry
    return s
  }

  private async dispatch(endpoint: Endpoint, req: GatewayRequest, state: DeviceState, sn: string, address: string): Promise<Reply> {
    // the previous request, and acknowledgement of a hand-over by any request of another kind
    const prev = state.last
    state.last = { endpoint }
    const repeat = prev?.endpoint === endpoint ? prev.answer : undefined
    const job = state.job
    if (job && job.ackVia && job.ackVia !== endpoint) this.finish(state, job, 'acknowledged', { message: job.ackMessage })
    const body = isObject(req.json) ? req.json : undefined
    switch (endpoint) {
      case 'keepalive':
        return this.keepalive(state)
      case 'remote':
        return this.remoteCommand(state, repeat)
      case 'downloadSetting':
        return this.downloadSetting(state, sn, repeat)
      case 'uploadSetting':
        return body ? this.uploadSetting(state, body) : this.bad(endpoint, address, 'body is not a JSON object', state.name)
      case 'downloadPeople':
        return this.downloadPeople(state, req, prev?.endpoint)
      case 'downloadResult':
        return body ? this.downloadResult(state, body) : this.bad(endpoint, address, 'body is not a JSON object', state.name)
      case 'deletePeople':
        return this.deletePeople(state, req, prev?.endpoint)
      case 'deleteResult':
        return body ? this.deleteResult(state, body) : this.bad(endpoint, address, 'body is not a JSON object', state.name)
      case 'pushPeople':
        return this.pushPeople(state, req, address)
      case 'registerResult':
        return this.registerResult(state, req, address)
      case 'snapshot':
        return this.snapshot(state, req)
      case 'authorize':
        return this.authorize(state, req, address)
      case 'identifyRecord':
        return this.identifyRecord(state, req, address)
      case 'systemRecord':
        return body ? this.systemRecord(state, body, address) : this.bad(endpoint, address, 'body is not a JSON object', state.name)
    }
  }

  // ---- jobs -----------------------------------------------------------------------------------

  private finish(state: DeviceState, job: Job, st: 'acknowledged' | 'failed', result: CommandResult): void {
    if (job.done) return
    job.done = true
    if (job.timer) clearTimeout(job.timer)
    if (state.job === job) state.job = undefined
    this.ctx.finish(job.cmd.id, st, result)
    this.ctx.log.debug('httpv2 command finished', { device: state.name, id: job.cmd.id, kind: job.cmd.kind, state: st })
  }

  private delivered(job: Job): void {
    if (job.delivered) return
    job.delivered = true
    this.ctx.delivered(job.cmd.id)
  }

  private arm(job: Job, ms: number, fn: () => void): void {
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

  /** The command being worked on: the oldest pending one (a finished or expired job is dropped). */
  private current(state: DeviceState): Job | undefined {
    const pending = this.ctx.pending(state.name).filter((c) => c.protocol === 'httpv2')
    if (state.job && !pending.some((c) => c.id === state.job!.cmd.id)) {
      if (state.job.timer) clearTimeout(state.job.timer)
      state.job.done = true
      state.job = undefined
    }
    for (const cmd of pending) {
      if (state.job) break
      state.job = this.start(state, cmd)
    }
    return state.job
  }

  private newJob(cmd: QueuedCommand, flags: Flag[] = []): Job {
    return { cmd, flags: new Set(flags), delivered: cmd.state === 'delivered', done: false }
  }

  /** Sets up a command; returns undefined when it finished right away. */
  private start(state: DeviceState, cmd: QueuedCommand): Job | undefined {
    const p = cmd.payload
    const job = this.newJob(cmd)
    // delivered before this gateway (re)started: a one-shot hand-over is assumed received, not repeated
    if (cmd.state === 'delivered' && FIRE_AND_FORGET.has(cmd.kind)) {
      this.finish(state, job, 'acknowledged', { message: 'delivered before the gateway restarted; assumed received' })
      return undefined
    }
    switch (cmd.kind) {
      case 'open': {
        const mode = p.mode as OpenMode
        if (!(mode in OPEN_CODES)) return this.fail(state, job, `unknown open mode "${String(p.mode)}"`)
        job.remote = remoteAnswer({ kind: 'open', mode })
        job.ackMessage = { pulse: 'door opened', 'keep-open': 'door kept open', close: 'door closed', lock: 'door locked', unlock: 'door unlocked' }[mode]
        job.flags.add('Remote')
        return job
      }
      case 'reboot':
        job.remote = remoteAnswer({ kind: 'restart' })
        job.ackMessage = 'rebooting'
        job.flags.add('Remote')
        return job
      case 'repostRecords':
        job.remote = remoteAnswer({ kind: 'repostRecords' })
        job.ackMessage = 'the device will upload all its records again'
        job.flags.add('Remote')
        return job
      case 'snapshot':
        job.remote = remoteAnswer({ kind: 'snapshot' })
        job.flags.add('Remote')
        return job
      case 'listPeople':
        job.remote = remoteAnswer({ kind: 'pushAllPeople' })
        job.collect = { purpose: 'list', people: new Map(), handedOut: false, sawKeepalive: false, lastPush: Date.now() }
        // the work settings tell how many people the device holds: the listing can end without waiting for a keepalive
        job.flags.add('UploadWorkParameter').add('Remote')
        return job
      case 'info':
        job.flags.add('UploadWorkParameter')
        return job
      case 'syncTime': {
        const epochMs = Number(p.epochMs)
        const offset = Number(p.utcOffsetMinutes ?? 0)
        if (!Number.isFinite(epochMs) || !Number.isFinite(offset)) return this.fail(state, job, 'syncTime needs epochMs and utcOffsetMinutes')
        const t = timeSettings(epochMs, offset)
        job.settings = t.values
        job.ackMessage = t.note
        job.flags.add('SyncParameter')
        return job
      }
      case 'setConfig': {
        const v = settingValues(String(p.section ?? ''), isObject(p.values) ? p.values : {})
        if ('error' in v) return this.fail(state, job, v.error)
        job.settings = v.values
        job.ackMessage = `set ${Object.keys(v.values).join(', ')}`
        job.flags.add('SyncParameter')
        return job
      }
      case 'enrollFace': {
        const id = String(p.id ?? '')
        if (!USER_ID_RE.test(id)) return this.fail(state, job, `id "${id}" is not an httpv2 UserID (${personRules.idPattern!.description})`)
        if (p.capture === true) {
          job.remote = remoteAnswer({ kind: 'registerFace', userId: id })
          job.flags.add('Remote')
          return job
        }
        if (typeof p.photoPath !== 'string') return this.fail(state, job, 'enrollFace needs a photo or capture')
        return this.startImport(state, job, [{ id, photoPath: p.photoPath }], true)
      }
      case 'upsertPeople': {
        if (!Array.isArray(p.people)) return this.fail(state, job, 'upsertPeople payload has no people')
        return this.startImport(state, job, (p.people as unknown[]).filter(isObject).map(readPersonPayload), false)
      }
      case 'deletePeople':
        return this.startDelete(state, job)
    }
  }

  private fail(state: DeviceState, job: Job, message: string): undefined {
    this.finish(state, job, 'failed', { message })
    return undefined
  }

  /** Fails queued commands that cannot work whatever the device does. */
  private precheck(device: string): void {
    try {
      for (const c of this.ctx.pending(device)) {
        if (c.protocol !== 'httpv2' || c.state !== 'queued') continue
        let problem: string | undefined
        if (c.kind === 'setConfig') {
          const v = settingValues(String(c.payload.section ?? ''), isObject(c.payload.values) ? c.payload.values : {})
          if ('error' in v) problem = v.error
        } else if (c.kind === 'open' && !((c.payload.mode as string) in OPEN_CODES)) problem = `unknown open mode "${String(c.payload.mode)}"`
        if (problem) this.ctx.finish(c.id, 'failed', { message: problem })
      }
    } catch (err) {
      this.ctx.log.warn('httpv2 precheck failed', { device, error: String(err) })
    }
  }

  // ---- keepalive --------------------------------------------------------------------------------

  private keepalive(state: DeviceState): Json {
    let job = this.current(state)
    if (job?.collect && job.collect.handedOut) {
      job.collect.sawKeepalive = true
      this.checkCollect(state, job)
    }
    if (job?.imp && job.imp.phase === 'import' && job.imp.loopEnded && job.imp.outstanding.length > 0) {
      // the loop ended and a keepalive came: batches never reported will not be (AMBIGUITIES #7)
      const imp = job.imp
      for (const b of imp.outstanding.splice(0)) {
        for (const id of b.ids) imp.outcomes.set(id, this.outcome(imp, id, 'timeout', 'the device took this person but reported no result for it'))
      }
      this.importAnswered(state, job)
    }
    if (job?.del && job.del.loopEnded) {
      const del = job.del
      if (del.all) this.finish(state, job, 'failed', { message: 'the device did not confirm deleting everyone' })
      else if (del.outstanding.length > 0) {
        for (const b of del.outstanding.splice(0)) for (const id of b.ids) del.outcomes.set(id, { id, status: 'timeout', action: 'delete', message: 'the device reported no result for this person' })
        this.deleteAnswered(state, job)
      }
    }
    job = this.current(state)
    const flags = job ? [...job.flags] : []
    if (job && job.flags.has('UploadWorkParameter') && job.cmd.kind === 'info') this.delivered(job)
    if (job?.cmd.kind === 'listPeople') job.flags.delete('UploadWorkParameter')
    return keepaliveAnswer(flags)
  }

  // ---- hand-overs -----------------------------------------------------------------------------

  private remoteCommand(state: DeviceState, repeat: Json | undefined): Json {
    if (repeat) {
      // the device lost our answer and asks again: the same command, not the next one
      state.last!.answer = repeat
      const job = state.job
      if (job && job.ackVia === 'remote') this.arm(job, this.ackQuietMs, () => this.finish(state, job, 'acknowledged', { message: job.ackMessage }))
      return repeat
    }
    const job = state.job
    if (!job || !job.remote) return okAnswer()
    const answer = job.remote
    job.remote = undefined
    job.flags.delete('Remote')
    job.flags.delete('UploadWorkParameter')
    this.delivered(job)
    state.last!.answer = answer
    if (FIRE_AND_FORGET.has(job.cmd.kind)) {
      job.ackVia = 'remote'
      this.arm(job, this.ackQuietMs, () => this.finish(state, job, 'acknowledged', { message: job.ackMessage }))
    }
    if (job.collect) {
      job.collect.handedOut = true
      job.collect.lastPush = Date.now()
      this.checkCollect(state, job)
    }
    return answer
  }

  private downloadSetting(state: DeviceState, sn: string, repeat: Json | undefined): Json {
    if (repeat) {
      state.last!.answer = repeat
      const job = state.job
      if (job && job.ackVia === 'downloadSetting') this.arm(job, this.ackQuietMs, () => this.finish(state, job, 'acknowledged', { message: job.ackMessage }))
      return repeat
    }
    const job = state.job
    if (!job || !job.settings) return okAnswer()
    // only the values to change: the device keeps what the answer does not name
    const answer = downloadSettingAnswer(sn, job.settings)
    job.settings = undefined
    job.flags.delete('SyncParameter')
    this.delivered(job)
    state.last!.answer = answer
    job.ackVia = 'downloadSetting'
    this.arm(job, this.ackQuietMs, () => this.finish(state, job, 'acknowledged', { message: job.ackMessage }))
    return answer
  }

  private uploadSetting(state: DeviceState, body: Json): Json {
    const w = parseWorkSettings(body)
    if (w.timeZoneHours !== undefined) state.tzHours = w.timeZoneHours
    let job = state.job
    if (!job) {
      // a device uploads its settings at boot and on change: that answers a queued `info` too
      const head = this.ctx.pending(state.name)[0]
      if (head?.kind === 'info') job = state.job = this.start(state, head)
    }
    if (job?.cmd.kind === 'info') {
      this.delivered(job)
      this.finish(state, job, 'acknowledged', { data: workSettingsData(w), message: 'work settings received' })
    } else if (job?.collect?.purpose === 'list' && w.peopleCount !== undefined) {
      job.collect.expectedCount = w.peopleCount
      this.checkCollect(state, job)
    }
    return okAnswer()
  }

  // ---- people import -----------------------------------------------------------------------------

  private startImport(state: DeviceState, job: Job, people: PersonPayload[], partial: boolean): Job | undefined {
    const imp: ImportJob = {
      people: new Map(), order: [], next: 0, outstanding: [], outcomes: new Map(), reportsAfterLoop: false, early: new Map(), loopEnded: false,
      partial, action: partial ? 'enrolled' : undefined, existed: new Set(), faceCheck: new Set(), phase: 'import',
    }
    job.imp = imp
    // outcomes recorded before a gateway restart stand
    for (const o of job.cmd.result?.people ?? []) imp.outcomes.set(o.id, o)
    for (const p of people) imp.people.set(p.id, p)
    for (const p of imp.people.values()) {
      const known = state.people.get(p.id)
      if (known) imp.existed.add(p.id)
      if (p.photoPath || known?.hasFace) imp.faceCheck.add(p.id)
      if (imp.outcomes.has(p.id)) continue
      const problem = personProblem(p)
      if (problem) imp.outcomes.set(p.id, { id: p.id, name: p.name, status: 'failed', message: `${problem}; not sent` })
      else imp.order.push(p.id)
    }
    if (imp.order.length === 0) {
      this.importDone(state, job)
      return job.done ? undefined : job
    }
    job.flags.add('AddPeople')
    return job
  }

  private outcome(imp: ImportJob, id: string, status: PersonOutcome['status'], message: string, deviceCode?: number): PersonOutcome {
    const p = imp.people.get(id)
    const o: PersonOutcome = { id, name: p?.name, status, action: imp.action ?? (imp.existed.has(id) ? 'updated' : 'added'), message }
    if (deviceCode !== undefined) o.deviceCode = deviceCode
    return o
  }

  private async downloadPeople(state: DeviceState, req: GatewayRequest, prev: Endpoint | undefined): Promise<Json> {
    const job = state.job
    const imp = job?.imp
    if (!job || !imp || imp.phase !== 'import') return downloadPeopleAnswer([])
    const last = imp.last
    if (prev === 'downloadPeople' && last && imp.outstanding.includes(last) && !last.received && !imp.reportsAfterLoop) {
      // asked again before reporting the batch: our answer was lost (the reading that reports per batch);
      // after `batchResends` the device is taken to report after its loop (AMBIGUITIES #7) and gets the next batch
      if (last.resends < this.batchResends) {
        last.resends++
        return last.answer
      }
      imp.reportsAfterLoop = true
    }
    const limit = limitOf(plainValue(req, ['Limit']))
    const batch: Batch = { ids: [], answer: {}, resends: 0, received: false }
    const list: Json[] = []
    while (list.length === 0 && imp.next < imp.order.length) {
      const ids = imp.order.slice(imp.next, imp.next + limit)
      imp.next += ids.length
      for (const id of ids) {
        const p = imp.people.get(id)!
        let photo: PhotoRef | undefined
        if (p.photoPath) {
          const r = await this.publishPhoto(job, p, batch, req.headers.host)
          if (typeof r === 'string') {
            imp.outcomes.set(id, this.outcome(imp, id, 'failed', `${r}; not sent`))
            imp.faceCheck.delete(id)
            continue
          }
          photo = r
        }
        const base = imp.partial ? state.people.get(id)?.detail : undefined
        list.push(peopleJson(p, photo, { partial: imp.partial, base }))
        batch.ids.push(id)
      }
    }
    if (list.length === 0) {
      // everything handed out: the empty list ends the device's loop
      imp.loopEnded = true
      job.flags.delete('AddPeople')
      this.importAnswered(state, job)
      return downloadPeopleAnswer([])
    }
    batch.answer = downloadPeopleAnswer(list)
    imp.outstanding.push(batch)
    imp.last = batch
    this.delivered(job)
    return batch.answer
  }

  /**
   * Photos go as URLs the gateway serves, not base64: a batch of up to 1000 people with
   * 400 KB photos would be a ~0.5 GB answer in base64; by URL the device fetches one photo at
   * a time and the gateway never holds more than one in memory (error code 2 shows URLs are a
   * path the devices know). The URL carries a random part so photos cannot be guessed.
   */
  private async publishPhoto(job: Job, p: PersonPayload, batch: Batch, host: string | undefined): Promise<PhotoRef | string> {
    const path = p.photoPath!
    let data: Buffer
    try {
      data = await readFile(path)
    } catch (err) {
      return `cannot read the photo ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`
    }
    if (data.length > personRules.maxPhotoBytes) return `the photo is ${Math.ceil(data.length / 1024)} KB; httpv2 devices take at most 400 KB`
    const md5 = createHash('md5').update(data).digest('hex').toUpperCase()
    const name = `httpv2-${job.cmd.id}-${p.id}-${randomBytes(6).toString('hex')}.jpg`
    const url = this.ctx.publish(name, async () => {
      batch.received = true
      return readFile(path)
    }, 'image/jpeg', host)
    return { photo: url, md5, len: data.length }
  }

  private downloadResult(state: DeviceState, body: Json): Json {
    const job = state.job
    const imp = job?.imp
    const r = parseDownloadResult(body)
    if (!job || !imp || imp.outstanding.length === 0) {
      this.ctx.log.debug('httpv2 download result with no batch outstanding', { device: state.name })
      return okAnswer()
    }
    // per batch (the document's reading) it closes the oldest batch; a device that reports once after
    // the loop (AMBIGUITIES #7) closes as many batches as its counts add up to
    const reported = (r.successCount ?? 0) + (r.failCount ?? r.failures.length)
    const closing = [imp.outstanding.shift()!]
    let covered = closing[0].ids.length
    while (imp.outstanding.length > 0 && reported >= covered + imp.outstanding[0].ids.length) {
      const b = imp.outstanding.shift()!
      closing.push(b)
      covered += b.ids.length
    }
    const closingIds = new Set(closing.flatMap((b) => b.ids))
    const failures = new Map<string, PersonFailure>()
    for (const f of r.failures) {
      if (closingIds.has(f.userId)) failures.set(f.userId, f)
      else if (imp.people.has(f.userId)) imp.early.set(f.userId, f)
      else this.ctx.log.warn('httpv2 device reported a failure for a person it was not sent', { device: state.name, user: f.userId, code: f.code })
    }
    const unnamed = Math.max(0, (r.failCount ?? r.failures.length) - r.failures.length)
    for (const id of closingIds) {
      const f = failures.get(id) ?? imp.early.get(id)
      if (f) {
        imp.outcomes.set(id, this.outcome(imp, id, 'failed', f.message, f.code))
        imp.faceCheck.delete(id)
      } else if (unnamed > 0) {
        imp.outcomes.set(id, this.outcome(imp, id, 'failed', `the device reported ${unnamed} failure(s) in this batch without saying for whom; this person may not be stored`))
        imp.faceCheck.delete(id)
      } else {
        imp.outcomes.set(id, this.outcome(imp, id, 'ok', imp.partial ? 'photo stored' : 'stored'))
        state.people.set(id, { detail: state.people.get(id)?.detail ?? { UserID: id }, hasFace: imp.people.get(id)?.photoPath !== undefined || state.people.get(id)?.hasFace === true })
      }
    }
    this.importAnswered(state, job)
    return okAnswer()
  }

  /** After a report: progress, and the end of the import once every person is answered for. */
  private importAnswered(state: DeviceState, job: Job): void {
    const imp = job.imp!
    if (job.done) return
    this.ctx.progress(job.cmd.id, { people: this.ordered(imp), message: `${imp.outcomes.size} of ${imp.people.size} answered` })
    if (imp.next >= imp.order.length && imp.outstanding.length === 0) this.importDone(state, job)
  }

  private ordered(imp: ImportJob): PersonOutcome[] {
    return [...imp.people.keys()].map((id) => imp.outcomes.get(id)).filter((o): o is PersonOutcome => o !== undefined)
  }

  /**
   * Every person answered for. Field reports: people with a face have lost it when updated
   * through DownloadPeopleList, so the stored people sent with a photo (or known to have a face)
   * are asked back with QueryPeople before the command finishes.
   */
  private importDone(state: DeviceState, job: Job): void {
    const imp = job.imp!
    imp.loopEnded = true
    job.flags.delete('AddPeople')
    const check = [...imp.faceCheck].filter((id) => imp.outcomes.get(id)?.status === 'ok')
    if (check.length === 0) {
      this.finish(state, job, 'acknowledged', { people: this.ordered(imp), message: importSummary(imp) })
      return
    }
    imp.phase = 'verify'
    job.remote = remoteAnswer({ kind: 'queryPeople', ids: check })
    job.collect = { purpose: 'verify', people: new Map(), expected: new Set(check), handedOut: false, sawKeepalive: false, lastPush: Date.now() }
    job.flags.add('Remote')
  }

  // ---- people delete ---------------------------------------------------------------------------------

  private startDelete(state: DeviceState, job: Job): Job | undefined {
    const ids = job.cmd.payload.ids
    const del: DeleteJob = { all: ids === 'all', allGiven: false, allResends: 0, order: [], next: 0, outstanding: [], outcomes: new Map(), reportsAfterLoop: false, loopEnded: false }
    job.del = del
    if (!del.all) {
      if (!Array.isArray(ids)) return this.fail(state, job, 'deletePeople payload has no ids')
      for (const o of job.cmd.result?.people ?? []) del.outcomes.set(o.id, o)
      for (const raw of ids) {
        const id = String(raw)
        if (del.outcomes.has(id) || del.order.includes(id)) continue
        // an id that is not a UINT32 cannot be on the device
        if (!USER_ID_RE.test(id)) del.outcomes.set(id, { id, status: 'failed', action: 'delete', message: `id "${id}" is not an httpv2 UserID: no such person on the device` })
        else del.order.push(id)
      }
      if (del.order.length === 0) {
        this.deleteAnswered(state, job)
        return job.done ? undefined : job
      }
    }
    job.flags.add('DeletePeople')
    return job
  }

  private deletePeople(state: DeviceState, req: GatewayRequest, prev: Endpoint | undefined): Json {
    const job = state.job
    const del = job?.del
    if (!job || !del) return deletePeopleAnswer([])
    if (del.all) {
      // "DeleteAll 1: 清空所有人员信息"; asked again without a report = our answer was lost
      if (!del.allGiven || (prev === 'deletePeople' && !del.loopEnded && del.allResends < this.batchResends)) {
        if (del.allGiven) del.allResends++
        del.allGiven = true
        this.delivered(job)
        return deleteAllAnswer()
      }
      del.loopEnded = true
      job.flags.delete('DeletePeople')
      return deletePeopleAnswer([])
    }
    const last = del.last
    if (prev === 'deletePeople' && last && del.outstanding.includes(last) && !del.reportsAfterLoop) {
      if (last.resends < this.batchResends) {
        last.resends++
        return last.answer
      }
      del.reportsAfterLoop = true
    }
    if (del.next >= del.order.length) {
      del.loopEnded = true
      job.flags.delete('DeletePeople')
      return deletePeopleAnswer([])
    }
    const ids = del.order.slice(del.next, del.next + limitOf(plainValue(req, ['Limit'])))
    del.next += ids.length
    const batch: Batch = { ids, answer: deletePeopleAnswer(ids), resends: 0, received: false }
    del.outstanding.push(batch)
    del.last = batch
    this.delivered(job)
    return batch.answer
  }

  private deleteResult(state: DeviceState, body: Json): Json {
    const job = state.job
    const del = job?.del
    const r = parseDeleteResult(body)
    if (!job || !del) return okAnswer()
    if (del.all) {
      if (!del.allGiven) return okAnswer()
      if (r.deleteAll) {
        state.people.clear()
        this.finish(state, job, 'acknowledged', { message: 'all people deleted', people: [] })
      } else {
        this.finish(state, job, 'failed', { message: 'the device did not confirm deleting everyone (its result says DeleteAll 0)' })
      }
      return okAnswer()
    }
    if (del.outstanding.length === 0) return okAnswer()
    const reported = r.ids ? r.ids.length : r.count ?? 0
    const closing = [del.outstanding.shift()!]
    let covered = closing[0].ids.length
    while (del.outstanding.length > 0 && reported >= covered + del.outstanding[0].ids.length) {
      const b = del.outstanding.shift()!
      closing.push(b)
      covered += b.ids.length
    }
    const confirmed = r.ids ? new Set(r.ids) : undefined
    const all = closing.flatMap((b) => b.ids)
    const countCovers = !confirmed && (r.count ?? 0) >= all.length
    for (const id of all) {
      if (confirmed?.has(id) || countCovers) {
        del.outcomes.set(id, { id, status: 'ok', action: 'deleted', message: 'deleted' })
        state.people.delete(id)
      } else {
        del.outcomes.set(id, {
          id, status: 'failed', action: 'delete',
          message: confirmed ? 'the device did not confirm deleting this person (not stored there, or not deleted)' : `the device deleted ${r.count ?? 0} of ${all.length} without saying which`,
        })
      }
    }
    this.deleteAnswered(state, job)
    return okAnswer()
  }

  private deleteAnswered(state: DeviceState, job: Job): void {
    const del = job.del!
    const ids = job.cmd.payload.ids as unknown[]
    const ordered = [...new Set(ids.map(String))].map((id) => del.outcomes.get(id)).filter((o): o is PersonOutcome => o !== undefined)
    if (del.next >= del.order.length && del.outstanding.length === 0) {
      const ok = ordered.filter((o) => o.status === 'ok').length
      this.finish(state, job, 'acknowledged', { people: ordered, message: `${ok} of ${ordered.length} deleted` })
    } else {
      this.ctx.progress(job.cmd.id, { people: ordered, message: `${ordered.length} of ${ids.length} answered` })
    }
  }

  // ---- PushPeople: listing and verification ---------------------------------------------------------

  private pushPeople(state: DeviceState, req: GatewayRequest, address: string): Reply {
    const p = parsePushPeople(req)
    if ('error' in p) return this.bad('pushPeople', address, p.error, state.name)
    if (p.pushType === 3 || !p.detail) state.people.delete(p.userId)
    else state.people.set(p.userId, { detail: p.detail, hasFace: p.hasFace })
    const job = state.job
    const c = job?.collect
    if (job && c) {
      if (c.purpose === 'list') {
        if (p.pushType === 3 || !p.detail) c.people.delete(p.userId)
        else c.people.set(p.userId, p)
      } else if (c.expected?.has(p.userId)) c.people.set(p.userId, p)
      c.lastPush = Date.now()
      this.checkCollect(state, job)
    }
    return okAnswer()
  }

  private checkCollect(state: DeviceState, job: Job): void {
    const c = job.collect!
    if (job.done) return
    if (c.purpose === 'verify' && c.expected && [...c.expected].every((id) => c.people.has(id))) return this.collectDone(state, job)
    const mayEnd = c.handedOut && (c.sawKeepalive || (c.expectedCount !== undefined && c.people.size >= c.expectedCount))
    if (!mayEnd) return
    const quiet = Date.now() - c.lastPush
    if (quiet >= this.pushQuietMs) this.collectDone(state, job)
    else this.arm(job, this.pushQuietMs - quiet, () => this.checkCollect(state, job))
  }

  private collectDone(state: DeviceState, job: Job): void {
    const c = job.collect!
    if (c.purpose === 'list') {
      const people = [...c.people.values()].map((p) => personInfoJson(personInfoFromDetail(p.userId, p.detail!, p.hasFace)))
      this.finish(state, job, 'acknowledged', { data: { people }, message: `${people.length} people` })
      return
    }
    const imp = job.imp!
    for (const id of c.expected ?? []) {
      const o = imp.outcomes.get(id)
      if (!o || o.status !== 'ok') continue
      const got = c.people.get(id)
      if (!got) o.message += '; face not verified (the device did not report the person back)'
      else if (!got.detail) imp.outcomes.set(id, { ...o, status: 'failed', message: 'the device reported success but does not have this person' })
      else if (!got.hasFace) {
        imp.outcomes.set(id, { ...o, status: 'failed', message: 'stored, but the device has no face for this person after the update (a known firmware fault): enroll the face again' })
      } else o.message += ', face verified'
    }
    this.finish(state, job, 'acknowledged', { people: this.ordered(imp), message: importSummary(imp) })
  }

  // ---- enrollment by capture, snapshot -----------------------------------------------------------------

  private registerResult(state: DeviceState, req: GatewayRequest, address: string): Reply {
    const r = parseRegisterResult(req)
    const job = state.job
    if (r === undefined) {
      // the RemoteCommand table sends snapshots here, while UploadSnapshoot exists too: a photo without ResultJson is a snapshot
      if (job?.cmd.kind === 'snapshot') return this.snapshot(state, req)
      return this.bad('registerResult', address, 'ResultJson missing', state.name)
    }
    if ('error' in r) return this.bad('registerResult', address, r.error, state.name)
    if (r.detail) state.people.set(r.userId, { detail: r.detail, hasFace: r.result === 1 || r.photo !== undefined })
    const id = job?.cmd.kind === 'enrollFace' ? String(job.cmd.payload.id) : undefined
    if (!job || id === undefined || job.cmd.payload.capture !== true || (r.userId !== '' && r.userId !== id)) {
      this.ctx.log.info('httpv2 enrollment result for no pending enrollment', { device: state.name, user: r.userId, result: r.result })
      return okAnswer()
    }
    const outcome: PersonOutcome = r.result === 1
      ? { id, status: 'ok', action: 'enrolled', message: r.photo ? 'face captured and enrolled on the device (photo received)' : 'face captured and enrolled on the device' }
      : { id, status: 'failed', action: 'enroll', message: registerMessage(r), deviceCode: r.result }
    const data: Json = {}
    if (r.photo) data.photoBase64 = r.photo.toString('base64')
    this.finish(state, job, 'acknowledged', { people: [outcome], message: outcome.message, data })
    return okAnswer()
  }

  private snapshot(state: DeviceState, req: GatewayRequest): Json {
    const job = state.job
    const photo = filePart(req, ['Photo', 'pic', 'Snapshoot', 'Snapshot'])
    if (job?.cmd.kind !== 'snapshot') {
      this.ctx.log.debug('httpv2 snapshot with no snapshot command', { device: state.name })
      return okAnswer()
    }
    if (!photo) this.finish(state, job, 'failed', { message: 'the device sent its snapshot without an image' })
    else this.finish(state, job, 'acknowledged', { data: { photoBase64: photo.toString('base64'), bytes: photo.length }, message: `snapshot of ${photo.length} bytes` })
    return okAnswer()
  }

  // ---- records and online decisions ---------------------------------------------------------------------

  private identifyRecord(state: DeviceState, req: GatewayRequest, address: string): Reply {
    const u = parseRecordUpload(req)
    if ('error' in u) return this.bad('identifyRecord', address, u.error, state.name)
    const rec = identifyRecord(state.name, u, state.tzHours)
    if ('error' in rec) return this.bad('identifyRecord', address, rec.error, state.name)
    try {
      // durable before the device hears success; a retried record (same SN, RecordID) is stored once and answered success
      const fresh = this.ctx.spool(rec)
      if (!fresh) this.ctx.log.debug('httpv2 duplicate record', { device: state.name, record: rec.recordId })
    } catch (err) {
      this.ctx.log.warn('httpv2 could not store a record; the device will send it again', { device: state.name, record: rec.recordId, error: String(err) })
      return errorAnswer('could not store the record, send it again')
    }
    return okAnswer()
  }

  private systemRecord(state: DeviceState, body: Json, address: string): Reply {
    const r = systemRecords(state.name, body, state.tzHours)
    if ('error' in r) return this.bad('systemRecord', address, r.error, state.name)
    if (r.skipped > 0) this.ctx.log.warn('httpv2 system records without RecordID or RecordDate skipped', { device: state.name, skipped: r.skipped })
    try {
      for (const rec of r.records) this.ctx.spool(rec)
    } catch (err) {
      this.ctx.log.warn('httpv2 could not store system records; the device will send them again', { device: state.name, error: String(err) })
      return errorAnswer('could not store the records, send them again')
    }
    return okAnswer()
  }

  private authorize(state: DeviceState, req: GatewayRequest, address: string): Reply {
    const u = parseRecordUpload(req)
    if ('error' in u) return this.bad('authorize', address, u.error, state.name)
    const userId = String(u.detail.UserID ?? '').trim()
    return authorizationAnswer(this.ctx.authorize(state.entry, userId === '0' ? '' : userId))
  }
}

function presenceInfo(s: DoorStatus): Record<string, unknown> {
  return { relay: s.relay, keepOpen: s.keepOpen, doorOpen: s.doorOpen, locked: s.locked, alarms: s.alarms }
}


function importSummary(imp: ImportJob): string {
  const all = [...imp.outcomes.values()]
  const ok = all.filter((o) => o.status === 'ok').length
  const ignoredFrom = [...imp.people.values()].some((p) => p.validFrom !== undefined)
  return `${ok} of ${imp.people.size} stored` + (ignoredFrom ? ' (valid_from ignored: httpv2 people have an expiry date only)' : '')
}

/** An httpv2 protocol handler; `handler` is the default one. Options exist for tests (shorter quiet periods). */
export function createHandler(opts: Httpv2Options = {}): ProtocolHandler {
  const instances = new Set<Httpv2Gateway>()
  return {
    protocol: 'httpv2',
    kinds,
    routes(ctx: GatewayContext): Route[] {
      const gw = new Httpv2Gateway(ctx, opts)
      instances.add(gw)
      return gw.routes()
    },
    async stop(): Promise<void> {
      for (const gw of instances) gw.stop()
      instances.clear()
    },
  }
}

export const handler: ProtocolHandler = createHandler()

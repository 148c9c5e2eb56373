/**
 * openapi platform mode, the gateway side (openapi-face.txt section 9): the device calls us.
 *
 * Endpoints (each also under one or two leading path segments, for a BaseUrl with a path such as
 * `http://host:8090/openapi`; matching is case-insensitive, a trailing slash is accepted):
 * - 9.5 `/syheartbeat/{deviceid}`: presence (and queued commands are looked at).
 * - 9.2 `/syface/{deviceid}`: a comparison result with its capture → one spooled record (photo =
 *   the capture, ID-card fields as extras); answered with `openDoor` from `serve --authorize`
 *   (allow | deny | CSV of allowed ids; `serve` defaults to deny) and `unlockDelay`.
 * - 9.3 `/syattribute/{deviceid}`: a temperature-only event → one spooled record.
 * - 9.1 `/syrecord/{deviceid}?lastQueryTime=T`: the face-library changes since T.
 * - 9.4 `/syresult/{deviceid}`: the device's outcome for one change → the person's outcome.
 *
 * Records are stored once however often the device retries (the id is derived, see
 * platform-codec.ts), on disk before the device hears `ret: "0"`. Unknown device ids get
 * `ret: "2"` (and `openDoor: 0`) and are remembered as discovered.
 *
 * The face library. People commands (upsertPeople, deletePeople, enrollFace) become `save` and
 * `delete` operations in a durable per-device journal (ctx.setState), one operation per person
 * (the latest one wins), each with its own stamp: a seconds timestamp, strictly increasing per
 * device (max(now, last + 1)). `/syrecord` answers the operations stamped after the device's
 * lastQueryTime (at most `maxItems`, oldest first) and hands back the newest stamp it covered
 * as the next lastQueryTime, so a device that lost an answer simply gets the same operations
 * again. (9.1's request table calls lastQueryTime "the last image-update time the device got":
 * a device that sends back the newest operateTime it received instead fares the same, since
 * operateTime is the operation's stamp. Stamps run ahead of the clock by at most one second
 * per operation queued within the same second.) lastQueryTime 0 ("全量更新") gets the whole library (every stored person, plus deletes
 * still awaiting a result); a lastQueryTime this gateway never handed out (ahead of its newest
 * stamp: another platform's, or state wiped) is treated as 0. Photos are served by the gateway
 * over http as `.jpg` URLs with a random part (9.1 注: http only, jpg only), read from the path
 * given at import time when the device fetches them.
 * A command is delivered when the device fetched one of its operations, and finished when every
 * person has a 9.4 result (status "100" = stored/deleted, anything else failed with the
 * device's `msg`). An operation replaced by a newer command before the device fetched it is
 * `skipped` in the older command; when a command expires (--timeout), its operations the device
 * never fetched are withdrawn. `listPeople` is answered at once from the roster: the people the
 * device confirmed storing through this gateway (durable, per device).
 */
import { randomBytes } from 'node:crypto'
import { closeSync, openSync, readSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { REFUSED, type CommandKind, type CommandResult, type GatewayContext, type GatewayRequest, type GatewayResponse, type ProtocolHandler, type QueuedCommand, type Route } from '../../types/gateway.js'
import type { DeviceEntry, PersonOutcome } from '../../types/driver.js'
import {
  captureToRecord, faceAnswer, isJpeg, isObject, parseAttributeUpload, parseFaceUpload, parseHeartbeat, parseLastQueryTime, parseResults,
  personProblem, PLATFORM_KINDS, PLATFORM_LIMITS, RET, retAnswer, rosterPersonJson, syrecordAnswer, text, userTypeOf,
  type Capture, type Json, type LibraryItem, type LibraryResult,
} from './platform-codec.js'

type Endpoint = 'record' | 'face' | 'attribute' | 'result' | 'heartbeat'

const SEGMENTS: [string, Endpoint][] = [
  ['syrecord', 'record'],
  ['syface', 'face'],
  ['syattribute', 'attribute'],
  ['syresult', 'result'],
  ['syheartbeat', 'heartbeat'],
]

const STATE_KEY = 'openapi.platform'

export interface OpenapiPlatformOptions {
  /** 9.2 unlockDelay in ms (20–5000). Default: env DOORCTL_OPENAPI_UNLOCK_DELAY_MS, else 3000. */
  unlockDelayMs?: number
  /** Most operations in one /syrecord answer (default 200); the rest come with the next poll. */
  maxItems?: number
  /** Results are written to the durable state at most this often (ms, default 200). */
  flushMs?: number
}

interface Op {
  op: 'save' | 'delete'
  userId: string
  userName: string
  userType: string
  userRemark: string
  photoPath?: string
  /** Random part of the photo URL. */
  token?: string
  stamp: number
  cmd?: number
  /** The device refused this save: not part of the library a full update sends. */
  failed?: boolean
  /** What this operation replaced, restored if it is withdrawn unfetched. */
  prev?: Op
}

interface RosterEntry {
  name: string
  userType: string
  remark: string
  hasPhoto: boolean
  confirmedAt: number
}

interface Track {
  kind: CommandKind
  order: string[]
  names: Map<string, string>
  awaiting: Map<string, 'queued' | 'served'>
  outcomes: Map<string, PersonOutcome>
  existed: Set<string>
  notes: Map<string, string[]>
  delivered: boolean
}

interface DevState {
  name: string
  lastStamp: number
  ops: Map<string, Op>
  roster: Map<string, RosterEntry>
  cmds: Map<number, Track>
}

interface StoredTrack {
  id: number
  kind: CommandKind
  order: string[]
  names: [string, string][]
  awaiting: [string, 'queued' | 'served'][]
  outcomes: PersonOutcome[]
  existed: string[]
  notes: [string, string[]][]
  delivered: boolean
}

interface StoredState {
  v: 1
  lastStamp: number
  ops: Op[]
  roster: [string, RosterEntry][]
  cmds: StoredTrack[]
}

const nowSeconds = () => Math.floor(Date.now() / 1000)

function defaultUnlockDelay(): number {
  const n = Number(process.env.DOORCTL_OPENAPI_UNLOCK_DELAY_MS)
  return Number.isFinite(n) && n > 0 ? n : 3000
}

function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64)
}

function stripPrev(op: Op | undefined): Op | undefined {
  if (!op) return undefined
  const { prev: _prev, ...rest } = op
  return rest
}

/** Checks a photo before it is offered to the device: readable, and a JPEG (9.1 注: jpg only). */
function photoProblem(path: string): string | undefined {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return `cannot read the photo ${path}: ${code === 'ENOENT' ? 'no such file' : code ?? String(err)}`
  }
  try {
    const head = Buffer.alloc(3)
    const n = readSync(fd, head, 0, 3, 0)
    if (n < 3 || !isJpeg(head)) return `the photo ${path} is not a JPEG (platform mode takes jpg only, 9.1)`
  } finally {
    closeSync(fd)
  }
  return undefined
}

class PlatformGateway {
  private readonly states = new Map<string, DevState>()
  private readonly dirty = new Set<string>()
  private readonly progressDirty = new Map<number, string>()
  private flushTimer?: NodeJS.Timeout
  private readonly unlockDelayMs: number
  private readonly maxItems: number
  private readonly flushMs: number

  constructor(private readonly ctx: GatewayContext, opts: OpenapiPlatformOptions) {
    this.unlockDelayMs = opts.unlockDelayMs ?? defaultUnlockDelay()
    this.maxItems = Math.max(1, opts.maxItems ?? 200)
    this.flushMs = opts.flushMs ?? 200
    // people commands are turned into library operations when queued; listPeople is answered at once
    ctx.onQueued((device) => {
      try {
        if (this.ctx.pending(device).some((c) => c.protocol === 'openapi' && c.state === 'queued')) this.sync(device)
      } catch (err) {
        this.ctx.log.warn('openapi platform: could not take a queued command', { device, error: String(err) })
      }
    })
  }

  routes(): Route[] {
    const routes: Route[] = []
    for (const prefix of ['', '/{base1}', '/{base1}/{base2}']) {
      for (const [seg, endpoint] of SEGMENTS) {
        routes.push({ method: '*', path: `${prefix}/${seg}/{deviceid}`, rawBody: true, handle: (req: GatewayRequest) => this.handle(endpoint, req) })
      }
    }
    return routes
  }

  stop(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    this.flush()
  }

  // ---- request entry ----------------------------------------------------------------------------

  private async handle(endpoint: Endpoint, req: GatewayRequest): Promise<GatewayResponse> {
    const address = `${req.remoteAddress}:${req.remotePort}`
    const deviceId = text(req.params.deviceid)
    try {
      if (deviceId === '') return this.bad(endpoint, address, 'deviceid missing in the path')
      const entry = this.ctx.findDevice('openapi', deviceId, req.remoteAddress)
      if (entry === REFUSED) return { json: this.refusal(endpoint, req) }
      if (!entry) {
        this.ctx.discovered('openapi', deviceId, address, { endpoint: SEGMENTS.find(([, e]) => e === endpoint)![0] })
        return { json: this.refusal(endpoint, req) }
      }
      const body = bodyOf(req)
      if (endpoint === 'heartbeat') {
        const hb = parseHeartbeat(body)
        const info: Record<string, unknown> = { mode: 'platform' }
        if (hb.serverUrl) info.serverUrl = hb.serverUrl
        this.ctx.touch(entry, address, info)
        this.ctx.heartbeat(entry)
      } else {
        this.ctx.touch(entry, address)
      }
      switch (endpoint) {
        case 'heartbeat':
          this.sync(entry.name)
          return { json: retAnswer() }
        case 'record':
          return this.syrecord(entry, req, address)
        case 'face':
          return this.syface(entry, deviceId, body, address)
        case 'attribute':
          return this.syattribute(entry, deviceId, body, address)
        case 'result':
          return this.syresult(entry, body, address)
      }
    } catch (err) {
      this.ctx.log.warn('openapi platform request failed', { endpoint, from: address, device: deviceId, error: String(err) })
      return { status: 500, json: endpoint === 'face' ? faceAnswer(false, this.unlockDelayMs, RET.retry, 'internal error') : retAnswer(RET.retry, 'internal error') }
    }
  }

  private refusal(endpoint: Endpoint, req: GatewayRequest): Json {
    const desc = 'unknown device: add it with `doorctl device add NAME --protocol openapi --device-id ID`'
    if (endpoint === 'face') return faceAnswer(false, this.unlockDelayMs, RET.unknownDevice, desc)
    if (endpoint === 'record') {
      const lq = parseLastQueryTime(req.query)
      return syrecordAnswer([], typeof lq === 'number' ? lq : 0, RET.unknownDevice, desc)
    }
    return retAnswer(RET.unknownDevice, desc)
  }

  private bad(endpoint: Endpoint, address: string, message: string, device?: string): GatewayResponse {
    this.ctx.log.warn('openapi platform malformed request', { endpoint, from: address, device, reason: message })
    return { status: 400, json: endpoint === 'face' ? faceAnswer(false, this.unlockDelayMs, RET.badRequest, message) : retAnswer(RET.badRequest, message) }
  }

  // ---- records and the door -----------------------------------------------------------------------

  private syface(entry: DeviceEntry, deviceId: string, body: unknown, address: string): GatewayResponse {
    const c = parseFaceUpload(body)
    if ('error' in c) return this.bad('face', address, c.error, entry.name)
    this.noteBodyId(entry, deviceId, c)
    const open = this.ctx.authorize(entry, c.userId)
    const stored = this.store(entry, captureToRecord(entry.name, deviceId, c, open))
    // the door does not wait for our disk: the decision stands; ret says whether to send the record again
    return { json: stored ? faceAnswer(open, this.unlockDelayMs) : faceAnswer(open, this.unlockDelayMs, RET.retry, 'could not store the record, send it again') }
  }

  private syattribute(entry: DeviceEntry, deviceId: string, body: unknown, address: string): GatewayResponse {
    const c = parseAttributeUpload(body)
    if ('error' in c) return this.bad('attribute', address, c.error, entry.name)
    this.noteBodyId(entry, deviceId, c)
    const stored = this.store(entry, captureToRecord(entry.name, deviceId, c))
    return { json: stored ? retAnswer() : retAnswer(RET.retry, 'could not store the record, send it again') }
  }

  private noteBodyId(entry: DeviceEntry, deviceId: string, c: Capture): void {
    if (c.bodyDeviceId !== '' && c.bodyDeviceId !== deviceId) {
      this.ctx.log.debug('openapi platform: the body names another deviceid than the path; the path counts', { device: entry.name, path: deviceId, body: c.bodyDeviceId })
    }
  }

  /** Durable before the device hears success; a retried upload (same derived id) is stored once and answered success. */
  private store(entry: DeviceEntry, rec: ReturnType<typeof captureToRecord>): boolean {
    try {
      if (!this.ctx.spool(rec)) this.ctx.log.debug('openapi platform duplicate record', { device: entry.name, record: rec.recordId })
      return true
    } catch (err) {
      this.ctx.log.warn('openapi platform could not store a record; the device will send it again', { device: entry.name, record: rec.recordId, error: String(err) })
      return false
    }
  }

  // ---- the face library -------------------------------------------------------------------------------

  private syrecord(entry: DeviceEntry, req: GatewayRequest, address: string): GatewayResponse {
    const lq = parseLastQueryTime(req.query)
    if (typeof lq !== 'number') return this.bad('record', address, lq.error, entry.name)
    const st = this.sync(entry.name)
    let full = lq === 0
    if (lq > st.lastStamp) {
      this.ctx.log.info('openapi platform: lastQueryTime was not handed out by this gateway; sending the whole library', { device: entry.name, lastQueryTime: lq })
      full = true
    }
    let ops = [...st.ops.values()].filter((o) =>
      full ? (o.op === 'save' && !o.failed) || (o.op === 'delete' && o.cmd !== undefined && st.cmds.has(o.cmd)) : o.stamp > lq)
    ops.sort((a, b) => a.stamp - b.stamp)
    let next = Math.max(st.lastStamp, full ? 0 : lq)
    if (ops.length > this.maxItems) {
      ops = ops.slice(0, this.maxItems)
      next = ops[ops.length - 1].stamp
    }
    const host = hostOf(req)
    const items: LibraryItem[] = []
    let changed = false
    for (const op of ops) {
      items.push({
        operation: op.op, userId: op.userId, userName: op.userName, userType: op.userType, userRemark: op.userRemark,
        imageUrl: op.op === 'save' && op.photoPath ? this.publishPhoto(entry.name, op, host) : '',
        operateTime: op.stamp,
      })
      const t = op.cmd !== undefined ? st.cmds.get(op.cmd) : undefined
      if (t) {
        if (t.awaiting.get(op.userId) === 'queued') {
          t.awaiting.set(op.userId, 'served')
          changed = true
        }
        if (!t.delivered) {
          t.delivered = true
          changed = true
          this.ctx.delivered(op.cmd!)
        }
      }
    }
    if (changed) this.markDirty(st.name)
    if (items.length > 0) this.ctx.log.debug('openapi platform library handed out', { device: entry.name, items: items.length, lastQueryTime: lq, next })
    return { json: syrecordAnswer(items, next) }
  }

  private photoName(device: string, op: Op): string {
    return `openapi-${safe(device)}-${safe(op.userId)}-${op.token}.jpg`
  }

  private publishPhoto(device: string, op: Op, host: string | undefined): string {
    if (!op.token) {
      op.token = randomBytes(8).toString('hex')
      this.markDirty(device)
    }
    const path = op.photoPath!
    return this.ctx.publish(this.photoName(device, op), () => readFile(path), 'image/jpeg', host)
  }

  private syresult(entry: DeviceEntry, body: unknown, address: string): GatewayResponse {
    const results = parseResults(body)
    if ('error' in results) return this.bad('result', address, results.error, entry.name)
    const st = this.sync(entry.name)
    for (const r of results) this.resolve(st, r)
    return { json: retAnswer() }
  }

  /** One 9.4 result: the outcome of the oldest command waiting for this person (fetched first), and the roster. */
  private resolve(st: DevState, r: LibraryResult): void {
    const u = r.userId
    let cmdId: number | undefined
    for (const want of ['served', 'queued'] as const) {
      for (const [id, t] of [...st.cmds.entries()].sort((a, b) => a[0] - b[0])) {
        if (t.awaiting.get(u) === want) {
          cmdId = id
          break
        }
      }
      if (cmdId !== undefined) break
    }
    const op = st.ops.get(u)
    if (cmdId === undefined && !op) {
      this.ctx.log.info('openapi platform: a result for a person this gateway did not send', { device: st.name, user: u, status: r.status, msg: r.msg })
      return
    }
    // the result describes the current operation unless it belongs to an older command whose operation was replaced
    const current = op && (cmdId === undefined || op.cmd === cmdId) ? op : undefined
    if (current) {
      if (current.op === 'save' && current.token) this.ctx.unpublish(this.photoName(st.name, current))
      if (r.ok && current.op === 'save') {
        current.failed = undefined
        const before = st.roster.get(u)
        st.roster.set(u, { name: current.userName, userType: current.userType, remark: current.userRemark, hasPhoto: current.photoPath !== undefined || before?.hasPhoto === true, confirmedAt: Date.now() })
      } else if (r.ok) {
        st.roster.delete(u)
        st.ops.delete(u)
      } else if (current.op === 'save') {
        current.failed = true
      } else {
        st.ops.delete(u)
      }
    }
    this.markDirty(st.name)
    if (cmdId === undefined) return
    const t = st.cmds.get(cmdId)!
    t.awaiting.delete(u)
    t.outcomes.set(u, this.outcome(t, u, r))
    this.progressDirty.set(cmdId, st.name)
    this.maybeFinish(st, cmdId)
  }

  private outcome(t: Track, u: string, r: LibraryResult): PersonOutcome {
    const del = t.kind === 'deletePeople'
    const action = t.kind === 'enrollFace' ? 'enrolled' : del ? (r.ok ? 'deleted' : 'delete') : t.existed.has(u) ? 'updated' : 'added'
    const o: PersonOutcome = { id: u, status: r.ok ? 'ok' : 'failed', action, message: '' }
    const name = t.names.get(u)
    if (name) o.name = name
    if (r.ok) {
      const notes = t.notes.get(u) ?? []
      o.message = [del ? 'deleted' : t.kind === 'enrollFace' ? 'face stored' : 'stored', ...notes].join('; ') + (r.msg ? ` (device: ${r.msg})` : '')
    } else {
      o.message = `${r.msg || 'the device refused it'} (status ${r.status || '?'})`
      o.deviceCode = r.status
    }
    return o
  }

  // ---- commands → library operations ----------------------------------------------------------------

  private load(name: string): DevState {
    let st = this.states.get(name)
    if (st) return st
    const raw = this.ctx.state(name, STATE_KEY) as StoredState | undefined
    st = { name, lastStamp: nowSeconds(), ops: new Map(), roster: new Map(), cmds: new Map() }
    if (raw && raw.v === 1) {
      st.lastStamp = Number(raw.lastStamp) || st.lastStamp
      for (const op of raw.ops ?? []) st.ops.set(op.userId, op)
      for (const [id, e] of raw.roster ?? []) st.roster.set(id, e)
      for (const t of raw.cmds ?? []) {
        st.cmds.set(t.id, {
          kind: t.kind, order: t.order, names: new Map(t.names), awaiting: new Map(t.awaiting), outcomes: new Map(t.outcomes.map((o) => [o.id, o])),
          existed: new Set(t.existed), notes: new Map(t.notes), delivered: t.delivered,
        })
      }
    }
    this.states.set(name, st)
    return st
  }

  private serialize(st: DevState): StoredState {
    return {
      v: 1,
      lastStamp: st.lastStamp,
      ops: [...st.ops.values()],
      roster: [...st.roster.entries()],
      cmds: [...st.cmds.entries()].map(([id, t]) => ({
        id, kind: t.kind, order: t.order, names: [...t.names], awaiting: [...t.awaiting], outcomes: [...t.outcomes.values()], existed: [...t.existed],
        notes: [...t.notes], delivered: t.delivered,
      })),
    }
  }

  private markDirty(name: string): void {
    this.dirty.add(name)
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined
        this.flush()
      }, this.flushMs)
      this.flushTimer.unref?.()
    }
  }

  private writeNow(name: string): void {
    this.dirty.delete(name)
    const st = this.states.get(name)
    if (st) this.ctx.setState(name, STATE_KEY, this.serialize(st))
  }

  private flush(): void {
    try {
      for (const name of [...this.dirty]) this.writeNow(name)
      for (const [id, name] of [...this.progressDirty]) {
        this.progressDirty.delete(id)
        const t = this.states.get(name)?.cmds.get(id)
        if (t) this.ctx.progress(id, { people: this.ordered(t), message: `${t.outcomes.size} of ${t.order.length} answered` })
      }
    } catch (err) {
      this.ctx.log.warn('openapi platform: could not save its state', { error: String(err) })
    }
  }

  /** Journals commands queued for the device, withdraws what expired, answers listPeople. */
  private sync(name: string): DevState {
    const st = this.load(name)
    const pending = this.ctx.pending(name).filter((c) => c.protocol === 'openapi')
    const live = new Set(pending.map((c) => c.id))
    let changed = false
    for (const [id, t] of [...st.cmds]) {
      if (live.has(id)) continue
      // finished elsewhere or expired (--timeout): what the device never fetched is withdrawn
      for (const [u, s] of t.awaiting) {
        const op = st.ops.get(u)
        if (s !== 'queued' || op?.cmd !== id) continue
        if (op.prev) st.ops.set(u, op.prev)
        else st.ops.delete(u)
      }
      st.cmds.delete(id)
      changed = true
    }
    for (const cmd of pending) {
      if (st.cmds.has(cmd.id)) continue
      this.journal(st, cmd)
      changed = true
    }
    if (changed) this.writeNow(name)
    return st
  }

  private stamp(st: DevState): number {
    st.lastStamp = Math.max(nowSeconds(), st.lastStamp + 1)
    return st.lastStamp
  }

  private fail(cmd: QueuedCommand, message: string): void {
    this.ctx.finish(cmd.id, 'failed', { message })
  }

  private journal(st: DevState, cmd: QueuedCommand): void {
    const p = cmd.payload
    switch (cmd.kind) {
      case 'listPeople': {
        const people = [...st.roster.entries()].map(([id, e]) => rosterPersonJson(id, e))
        this.ctx.finish(cmd.id, 'acknowledged', {
          data: { people },
          message: `${people.length} people (those the device confirmed storing through this gateway; section 9 has no way to ask the device)`,
        })
        return
      }
      case 'upsertPeople': {
        if (!Array.isArray(p.people)) return this.fail(cmd, 'upsertPeople payload has no people')
        const people = (p.people as unknown[]).filter(isObject).map((o) => ({
          id: text(o.id), name: typeof o.name === 'string' ? o.name.trim() : '', role: o.role, department: typeof o.department === 'string' ? o.department : '',
          photoPath: typeof o.photoPath === 'string' ? o.photoPath : undefined,
          ignored: (['card', 'phone', 'password', 'validFrom', 'validTo', 'room', 'unit'] as const).filter((k) => o[k] !== undefined && o[k] !== null && o[k] !== ''),
        }))
        const t = this.newTrack(cmd.kind, people.map((x) => x.id))
        for (const x of people) {
          t.names.set(x.id, x.name)
          if (st.roster.has(x.id)) t.existed.add(x.id)
          const problem = personProblem(x) ?? (x.photoPath ? photoProblem(x.photoPath) : undefined)
          if (problem) {
            t.outcomes.set(x.id, { id: x.id, name: x.name, status: 'failed', action: t.existed.has(x.id) ? 'updated' : 'added', message: `${problem}; not sent` })
            continue
          }
          const notes: string[] = []
          if (x.ignored.length > 0) notes.push(`${x.ignored.map((k) => ({ validFrom: 'valid_from', validTo: 'valid_to' } as Record<string, string>)[k] ?? k).join(', ')} not sent (section 9.1 has no such fields)`)
          let remark = x.department
          if ([...remark].length > PLATFORM_LIMITS.userRemark) {
            remark = [...remark].slice(0, PLATFORM_LIMITS.userRemark).join('')
            notes.push(`department shortened to ${PLATFORM_LIMITS.userRemark} characters (9.1 userRemark)`)
          }
          const prior = st.ops.get(x.id)
          let photoPath = x.photoPath
          if (!photoPath && (prior?.photoPath ?? prior?.prev?.photoPath)) {
            // 9.1 imageUrl is required: a person updated without a photo keeps the last photo sent
            photoPath = prior?.photoPath ?? prior?.prev?.photoPath
          } else if (!photoPath) notes.push('no photo (9.1 imageUrl sent empty)')
          if (notes.length > 0) t.notes.set(x.id, notes)
          this.addOp(st, cmd.id, t, { op: 'save', userId: x.id, userName: x.name, userType: userTypeOf(x.role), userRemark: remark, photoPath, stamp: 0 })
        }
        return this.startTrack(st, cmd, t)
      }
      case 'enrollFace': {
        const id = text(p.id)
        if (p.capture === true) return this.fail(cmd, 'platform mode cannot ask the device to capture a face (section 9 has no such request); give --photo')
        if (typeof p.photoPath !== 'string') return this.fail(cmd, 'enrollFace needs a photo')
        const known = st.roster.get(id)
        const prior = st.ops.get(id)
        const name = known?.name ?? (prior?.op === 'save' ? prior.userName : undefined) ?? id
        const t = this.newTrack(cmd.kind, [id])
        t.names.set(id, name)
        if (known) t.existed.add(id)
        const problem = personProblem({ id, name }) ?? photoProblem(p.photoPath)
        if (problem) {
          t.outcomes.set(id, { id, name, status: 'failed', action: 'enrolled', message: `${problem}; not sent` })
        } else {
          if (!known && prior?.op !== 'save') t.notes.set(id, ['the person was not known to this gateway: stored with the id as the name'])
          this.addOp(st, cmd.id, t, {
            op: 'save', userId: id, userName: name, userType: known?.userType ?? (prior?.op === 'save' ? prior.userType : 'user'),
            userRemark: known?.remark ?? (prior?.op === 'save' ? prior.userRemark : ''), photoPath: p.photoPath, stamp: 0,
          })
        }
        return this.startTrack(st, cmd, t)
      }
      case 'deletePeople': {
        let ids: string[]
        if (p.ids === 'all') {
          // section 9 has no "delete everyone": every person this gateway knows the device has (or was sent) is deleted
          ids = [...new Set([...st.roster.keys(), ...[...st.ops.values()].filter((o) => o.op === 'save').map((o) => o.userId)])]
          if (ids.length === 0) {
            this.ctx.finish(cmd.id, 'acknowledged', { people: [], message: 'no one to delete: platform mode knows only the people stored through this gateway, and there are none' })
            return
          }
        } else if (Array.isArray(p.ids)) {
          ids = [...new Set((p.ids as unknown[]).map(text))]
        } else {
          return this.fail(cmd, 'deletePeople payload has no ids')
        }
        const t = this.newTrack(cmd.kind, ids)
        for (const id of ids) {
          const known = st.roster.get(id)
          const prior = st.ops.get(id)
          // 9.1 userName is required on every item, deletes included
          const name = known?.name ?? prior?.userName ?? id
          t.names.set(id, name)
          if (id === '' || id.length > PLATFORM_LIMITS.userId) {
            t.outcomes.set(id, { id, name, status: 'failed', action: 'delete', message: `id "${id}" cannot be on a platform-mode device (9.1 userId: 1 to 32 characters); not sent` })
            continue
          }
          this.addOp(st, cmd.id, t, { op: 'delete', userId: id, userName: name, userType: known?.userType ?? prior?.userType ?? 'user', userRemark: '', stamp: 0 })
        }
        return this.startTrack(st, cmd, t)
      }
      default:
        return this.fail(cmd, `openapi platform mode (section 9) has no way to carry out ${cmd.kind}`)
    }
  }

  private newTrack(kind: CommandKind, order: string[]): Track {
    return { kind, order, names: new Map(), awaiting: new Map(), outcomes: new Map(), existed: new Set(), notes: new Map(), delivered: false }
  }

  /** The person's operation becomes this one; one the device never fetched is superseded (skipped in its command). */
  private addOp(st: DevState, cmdId: number, t: Track, op: Op): void {
    const u = op.userId
    const cur = st.ops.get(u)
    let prev = cur
    if (cur?.cmd !== undefined) {
      const older = st.cmds.get(cur.cmd)
      if (older && older.awaiting.get(u) === 'queued') {
        older.awaiting.delete(u)
        older.outcomes.set(u, { id: u, name: older.names.get(u), status: 'skipped', message: `superseded by command ${cmdId} before the device fetched it` })
        prev = cur.prev
        this.progressDirty.set(cur.cmd, st.name)
        this.maybeFinish(st, cur.cmd)
      }
    }
    op.stamp = this.stamp(st)
    op.cmd = cmdId
    if (op.op === 'save' && op.photoPath) op.token = randomBytes(8).toString('hex')
    op.prev = stripPrev(prev)
    st.ops.set(u, op)
    t.awaiting.set(u, 'queued')
  }

  private startTrack(st: DevState, cmd: QueuedCommand, t: Track): void {
    st.cmds.set(cmd.id, t)
    this.maybeFinish(st, cmd.id)
  }

  private ordered(t: Track): PersonOutcome[] {
    return t.order.map((id) => t.outcomes.get(id)).filter((o): o is PersonOutcome => o !== undefined)
  }

  private maybeFinish(st: DevState, id: number): void {
    const t = st.cmds.get(id)
    if (!t || t.awaiting.size > 0) return
    st.cmds.delete(id)
    this.progressDirty.delete(id)
    const people = this.ordered(t)
    const ok = people.filter((o) => o.status === 'ok').length
    let result: CommandResult
    if (t.kind === 'enrollFace') result = { people, message: people[0]?.message ?? 'done' }
    else result = { people, message: `${ok} of ${people.length} ${t.kind === 'deletePeople' ? 'deleted' : 'stored'}` }
    this.ctx.finish(id, 'acknowledged', result)
    this.markDirty(st.name)
    this.ctx.log.debug('openapi platform command finished', { device: st.name, id, kind: t.kind, ok, of: people.length })
  }
}

/** The body as an object: JSON, or form fields (an `img` file part becomes base64, as 9.2 sends it). */
function bodyOf(req: GatewayRequest): unknown {
  if (req.json !== undefined) return req.json
  if (req.jsonError !== undefined) return repairJson(req.body.toString('utf8'))
  const fields: Json = { ...req.fields }
  for (const [k, f] of Object.entries(req.files)) fields[k] = f.data.toString('base64')
  return Object.keys(fields).length > 0 ? fields : undefined
}

/** Section 9.2's own example lacks the comma before "img" after the idCardInfo object: accept that, nothing looser. */
function repairJson(text: string): unknown {
  try {
    return JSON.parse(text.replace(/}(\s*)"/g, '},$1"'))
  } catch {
    return undefined
  }
}

/** The host the device called us on: photo URLs must reach the gateway from the device. */
function hostOf(req: GatewayRequest): string | undefined {
  const h = req.headers.host
  if (typeof h === 'string' && h.trim() !== '') return h.trim()
  const a = req.localAddress.replace(/^::ffff:/, '')
  return a.includes(':') ? `[${a}]:${req.localPort}` : `${a}:${req.localPort}`
}

/** An openapi platform-mode protocol handler; `handler` is the default one. Options exist for tests. */
export function createHandler(opts: OpenapiPlatformOptions = {}): ProtocolHandler {
  const instances = new Set<PlatformGateway>()
  return {
    protocol: 'openapi',
    kinds: PLATFORM_KINDS,
    routes(ctx: GatewayContext): Route[] {
      const gw = new PlatformGateway(ctx, opts)
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

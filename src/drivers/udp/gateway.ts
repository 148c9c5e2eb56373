/**
 * udp intercom gateway side (udp-intercom.txt). Devices heartbeat on UDP (settings.udpPort) every
 * 50 s and call HTTP callbacks on the gateway's HTTP port.
 *
 * - Commands (open → unlock, reboot, setConfig → setting) go to the source address of the latest
 *   heartbeat, one at a time per device in queue order, each with its own `id` (codec wireId) and
 *   matched to its ack by that id. Without an ack a datagram is sent again every `resendMs`, at
 *   most `resends` more times, with the same id (the device executes an id once); then the
 *   command waits for the next heartbeat (a NAT'd device is reachable right after one) and the
 *   round starts again, until the command's --timeout.
 * - `info` is answered at once from the last heartbeat's fields (section 1).
 * - Faces (upsertPeople, enrollFace, deletePeople) are entries of the device's face list, served
 *   at /updateImage (section 5) with createTime unique and increasing per device; a person's
 *   outcome is the device's verdict at /authImage (section 6: 40 invalid, 50 valid). Deletions
 *   have no verdict: they count as done when the device fetched the list holding them.
 *   The list is durable (ctx.setState, 64 buckets by phone, so one verdict rewrites 1/64 of it);
 *   outcomes so far are in the command (ctx.progress), so a restart loses neither.
 * - Records: /addUpload stores the capture (durably, before answering its path); /unlockCallback
 *   spools the record with that capture attached, before answering.
 * - /oneLock: the password is looked up among the people imported to that device (stored as a
 *   salted hash); the user id given to `serve --authorize` is that person's doorctl id, or ''
 *   when no imported person has the password (so `allow` lets it through, a list refuses it).
 */
import { createHash, randomBytes } from 'node:crypto'
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { closeSync, openSync, readSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { isIPv6 } from 'node:net'
import { UsageError } from '../../core/errors.js'
import type { CommandResult, GatewayContext, GatewayRequest, GatewayResponse, ProtocolHandler, QueuedCommand, Route } from '../../gateway/types.js'
import type { DeviceEntry, PersonOutcome } from '../types.js'
import {
  callbackFields, failAnswer, faceListAnswer, heartack, identity, isObject, okAnswer, oneLockAnswer, openFields, parseAck, parseAuthImage,
  parseDatagram, parseHeartbeat, parseTimestrap, parseUnlockCallback, rebootFrame, settingFrame, settingValues, str, unlockFrame, unlockRecord,
  uploadNameOf, uploadParams, verdictMessage, wireId, type Ack, type FaceItem, type Heartbeat, type Json, type SettingValues,
} from './codec.js'
import { kinds, PHONE_DESCRIPTION, PHONE_RE, personRules } from './rules.js'

export interface UdpOptions {
  /** Resend an unacknowledged command datagram after this long (ms). Default 1000. */
  resendMs?: number
  /** Resends per round (after the first send). Default 5. */
  resends?: number
  /** A command queued while the device was heard from within this long is sent at once (ms); else at its next heartbeat. Default 60 000. */
  freshMs?: number
  /** Captures (/addUpload) never claimed by a record are dropped after this long (ms). Default 1 h. */
  uploadTtlMs?: number
}

/** Paths of sections 2–6; section 4's example has them under /app/equipment, so both are served. */
const PREFIXES = ['', '/app/equipment']
/** Section 4's `;uploadFile=/sdcard/…` path syntax (AMBIGUITIES #8): the router splits on `/`, so depths 1–8 are routed. */
const UPLOAD_PATH_DEPTH = 8
const BUCKETS = 64
/** Pseudo-device under which captures wait for their record (/addUpload names no device). */
const UPLOADS = 'udp:uploads'
/** Tombstones (state 30) are kept this long for devices that poll late. */
const TOMBSTONE_MS = 30 * 24 * 3600_000
const UDP_LANE = new Set(['open', 'reboot', 'setConfig'])
const FACE_LANE = new Set(['upsertPeople', 'deletePeople', 'enrollFace'])

interface FaceRec {
  state: '10' | '20' | '30'
  createTime: number
  photoPath?: string
  /** Published file name the device downloads. */
  file?: string
  verdict?: '40' | '50'
  verdictAt?: number
  /** The device has fetched this entry (or an earlier one of this phone it may hold). */
  handedOut?: boolean
  /** Commands waiting for this entry: its verdict (10/20) or its hand-out (30). */
  cmds: number[]
}

interface PersonRec {
  phone: string
  /** doorctl person id; undefined once deleted. */
  id?: string
  deletedId?: string
  name?: string
  room: string
  unit: string
  /** sha256 of the password (section 2 checks passwords on the server; never stored in clear). */
  pw?: string
  face?: FaceRec
}

interface FaceMeta {
  lastCreateTime: number
  /** Face commands whose entries are in the list already. */
  applied: number[]
}

/** One device's face list and the people behind it (doorctl ids, names, rooms, password hashes). */
class FaceBook {
  readonly byPhone = new Map<string, PersonRec>()
  readonly byId = new Map<string, string>()
  readonly byPw = new Map<string, string>()
  meta: FaceMeta = { lastCreateTime: 0, applied: [] }
  private readonly dirty = new Set<number>()
  private metaDirty = false

  constructor(private readonly ctx: GatewayContext, private readonly device: string) {
    const m = ctx.state(device, 'faceMeta')
    if (isObject(m)) this.meta = { lastCreateTime: Number(m.lastCreateTime) || 0, applied: Array.isArray(m.applied) ? m.applied.map(Number) : [] }
    const now = Date.now()
    for (let b = 0; b < BUCKETS; b++) {
      const v = ctx.state(device, `faces/${b}`)
      if (!isObject(v)) continue
      for (const rec of Object.values(v) as PersonRec[]) {
        if (rec.face?.state === '30' && rec.face.cmds.length === 0 && now - rec.face.createTime > TOMBSTONE_MS && !rec.id) {
          this.dirty.add(b)
          continue
        }
        this.index(rec)
      }
    }
  }

  private index(rec: PersonRec): void {
    this.byPhone.set(rec.phone, rec)
    if (rec.id !== undefined) this.byId.set(rec.id, rec.phone)
    if (rec.pw) this.byPw.set(rec.pw, rec.phone)
  }

  put(rec: PersonRec, before?: { id?: string; pw?: string }): void {
    if (before?.id !== undefined && before.id !== rec.id && this.byId.get(before.id) === rec.phone) this.byId.delete(before.id)
    if (before?.pw && before.pw !== rec.pw && this.byPw.get(before.pw) === rec.phone) this.byPw.delete(before.pw)
    this.index(rec)
    this.dirty.add(bucketOf(rec.phone))
  }

  touched(phone: string): void {
    this.dirty.add(bucketOf(phone))
  }

  person(id: string): PersonRec | undefined {
    const phone = this.byId.get(id)
    return phone === undefined ? undefined : this.byPhone.get(phone)
  }

  nextTime(): number {
    this.meta.lastCreateTime = Math.max(Date.now(), this.meta.lastCreateTime + 1)
    this.metaDirty = true
    return this.meta.lastCreateTime
  }

  setApplied(ids: number[]): void {
    if (ids.length === this.meta.applied.length && ids.every((id, i) => this.meta.applied[i] === id)) return
    this.meta.applied = ids
    this.metaDirty = true
  }

  flush(): void {
    for (const b of this.dirty) {
      const out: Record<string, PersonRec> = {}
      for (const rec of this.byPhone.values()) if (bucketOf(rec.phone) === b) out[rec.phone] = rec
      this.ctx.setState(this.device, `faces/${b}`, Object.keys(out).length > 0 ? out : undefined)
    }
    this.dirty.clear()
    if (this.metaDirty) this.ctx.setState(this.device, 'faceMeta', this.meta)
    this.metaDirty = false
  }
}

function bucketOf(phone: string): number {
  let h = 2166136261
  for (let i = 0; i < phone.length; i++) h = Math.imul(h ^ phone.charCodeAt(i), 16777619)
  return (h >>> 0) % BUCKETS
}

interface FaceJob {
  cmd: QueuedCommand
  /** People in payload order. */
  people: { id: string; name?: string }[]
  outcomes: Map<string, PersonOutcome>
  /** phone → person id, waiting for a verdict (import, enroll) or for the hand-out (delete). */
  waiting: Map<string, string>
  actions: Map<string, string>
  delivered: boolean
}

interface Round {
  cmd: QueuedCommand
  wire: string
  frame: string
  sends: number
  timer?: NodeJS.Timeout
}

interface Dev {
  name: string
  entry?: DeviceEntry
  /** Source of the latest heartbeat: where commands go. */
  address?: { host: string; port: number }
  heardAt: number
  hb?: Heartbeat
  round?: Round
  /** The round of this command ran out without an ack: wait for a heartbeat newer than `at`. */
  gaveUp?: { cmd: number; at: number }
  book?: FaceBook
  jobs: Map<number, FaceJob>
}

interface Outstanding {
  dev: Dev
  cmd: QueuedCommand
  setting?: SettingValues
}

class UdpGateway {
  private socket?: Socket
  private readonly devs = new Map<string, Dev>()
  /** Identities a device took with an acknowledged setting, until the inventory says so itself. */
  private readonly aliases = new Map<string, DeviceEntry>()
  private readonly outstanding = new Map<string, Outstanding>()
  private readonly warned = new Map<string, { at: number; suppressed: number }>()
  private readonly resendMs: number
  private readonly resends: number
  private readonly freshMs: number
  private readonly uploadTtlMs: number
  private messageSeq = 0

  constructor(private readonly ctx: GatewayContext, opts: UdpOptions) {
    this.resendMs = opts.resendMs ?? 1000
    this.resends = opts.resends ?? 5
    this.freshMs = opts.freshMs ?? 60_000
    this.uploadTtlMs = opts.uploadTtlMs ?? 3600_000
    ctx.onQueued((device) => this.queued(device))
  }

  // ---- lifecycle --------------------------------------------------------------------------------

  async start(): Promise<Record<string, number>> {
    const { udpPort, bind } = this.ctx.settings
    // a site's intercoms come back at once after a power cut: a larger receive buffer absorbs the burst
    const socket = createSocket({ type: isIPv6(bind) ? 'udp6' : 'udp4', recvBufferSize: 4 * 1024 * 1024 })
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(err.code === 'EADDRINUSE'
          ? new UsageError(`udp port ${udpPort} on ${bind} is in use`, 'stop what holds it (another doorctl serve?), or pick another with --udp-port')
          : err)
      }
      socket.once('error', onError)
      socket.bind(udpPort, bind, () => {
        socket.off('error', onError)
        resolve()
      })
    })
    socket.on('error', (err) => this.ctx.log.warn('udp socket error', { error: String(err) }))
    socket.on('message', (buf, rinfo) => this.datagram(buf, rinfo))
    this.socket = socket
    const port = socket.address().port
    this.ctx.log.info('udp listening', { udp: `${bind}:${port}` })
    return { udp_port: port }
  }

  async stop(): Promise<void> {
    for (const d of this.devs.values()) if (d.round?.timer) clearInterval(d.round.timer)
    const s = this.socket
    this.socket = undefined
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()))
  }

  routes(): Route[] {
    const routes: Route[] = []
    const add = (path: string, fn: (req: GatewayRequest) => GatewayResponse | Promise<GatewayResponse>) =>
      routes.push({ method: '*', path, handle: (req) => this.guard(path, req, fn) })
    for (const p of PREFIXES) {
      add(`${p}/oneLock`, (r) => this.oneLock(r))
      add(`${p}/unlockCallback`, (r) => this.unlockCallback(r))
      add(`${p}/updateImage`, (r) => this.updateImage(r))
      add(`${p}/authImage`, (r) => this.authImage(r))
      add(`${p}/addUpload`, (r) => this.addUpload(r))
      for (let depth = 1; depth <= UPLOAD_PATH_DEPTH; depth++) {
        add(`${p}/addUpload;uploadFile=` + Array.from({ length: depth }, (_, i) => `/{p${i}}`).join(''), (r) => this.addUpload(r))
      }
    }
    return routes
  }

  private async guard(path: string, req: GatewayRequest, fn: (req: GatewayRequest) => GatewayResponse | Promise<GatewayResponse>): Promise<GatewayResponse> {
    try {
      return await fn(req)
    } catch (err) {
      this.ctx.log.warn('udp callback failed', { path, from: `${req.remoteAddress}:${req.remotePort}`, error: String(err) })
      return { status: 500, json: failAnswer('internal error, send again') }
    }
  }

  /** A warning at most every 5 s per kind, so a flood of garbage cannot flood the log. */
  private warnLimited(key: string, msg: string, fields: Record<string, unknown>): void {
    const now = Date.now()
    const w = this.warned.get(key)
    if (w && now - w.at < 5000) {
      w.suppressed++
      return
    }
    this.warned.set(key, { at: now, suppressed: 0 })
    this.ctx.log.warn(msg, w && w.suppressed > 0 ? { ...fields, suppressed: w.suppressed } : fields)
  }

  // ---- devices ----------------------------------------------------------------------------------

  private lookup(id: string): DeviceEntry | undefined {
    const entry = this.ctx.findDevice('udp', id)
    if (entry) {
      this.aliases.delete(id)
      return entry
    }
    return this.aliases.get(id)
  }

  private devOf(name: string, entry?: DeviceEntry): Dev {
    let d = this.devs.get(name)
    if (!d) {
      d = { name, heardAt: 0, jobs: new Map() }
      this.devs.set(name, d)
    }
    if (entry) d.entry = entry
    return d
  }

  private bookOf(dev: Dev): FaceBook {
    if (!dev.book) {
      dev.book = new FaceBook(this.ctx, dev.name)
      // published files live in memory: publish the list's photos again after a restart
      for (const rec of dev.book.byPhone.values()) if (rec.face && rec.face.state !== '30' && rec.face.file && rec.face.photoPath) this.publishPhoto(rec.face.file, rec.face.photoPath)
      dev.book.flush()
    }
    return dev.book
  }

  /** The identity the device calls itself by (heartbeat), else the inventory's. */
  private addressed(dev: Dev, wire: string): { communityId: string; deviceCode: string; id: string } {
    return { communityId: dev.hb?.communityId ?? dev.entry?.community ?? '', deviceCode: dev.hb?.deviceCode ?? dev.entry?.code ?? '', id: wire }
  }

  private send(dev: Dev, text: string): void {
    if (!this.socket || !dev.address) return
    this.socket.send(text, dev.address.port, dev.address.host, (err) => {
      if (err) this.ctx.log.warn('udp send failed', { device: dev.name, to: `${dev.address?.host}:${dev.address?.port}`, error: String(err) })
    })
  }

  // ---- datagrams ----------------------------------------------------------------------------------

  private datagram(buf: Buffer, rinfo: RemoteInfo): void {
    const from = `${rinfo.address}:${rinfo.port}`
    try {
      const d = parseDatagram(buf)
      if ('error' in d) {
        this.warnLimited(`drop:${d.error}`, `udp datagram dropped: ${d.error}`, { from, detail: d.detail })
        return
      }
      if (d.cmd === 'heart') return this.heartbeat(d.msg, rinfo)
      const ack = parseAck(d.msg)
      if (ack === undefined) {
        this.warnLimited('drop:cmd', 'udp datagram dropped: unknown cmd', { from, cmd: d.cmd })
        return
      }
      if ('error' in ack) {
        this.warnLimited('drop:ack', `udp datagram dropped: ${ack.error}`, { from })
        return
      }
      this.ack(ack, from)
    } catch (err) {
      this.ctx.log.warn('udp datagram failed', { from, error: String(err) })
    }
  }

  private heartbeat(msg: Json, rinfo: RemoteInfo): void {
    const from = `${rinfo.address}:${rinfo.port}`
    const hb = parseHeartbeat(msg)
    if ('error' in hb) {
      this.warnLimited('drop:heart', `udp heartbeat dropped: ${hb.error}`, { from })
      return
    }
    const id = identity(hb.communityId, hb.deviceCode)
    const info = { communityId: hb.communityId, deviceCode: hb.deviceCode, softVer: hb.softVer, name: hb.name, deviceSn: hb.deviceSn }
    const entry = this.lookup(id)
    const reply = (known: boolean) => this.socket?.send(heartack(known), rinfo.port, rinfo.address)
    if (!entry) {
      this.ctx.discovered('udp', id, from, info)
      reply(false)
      return
    }
    const dev = this.devOf(entry.name, entry)
    dev.address = { host: rinfo.address, port: rinfo.port }
    dev.heardAt = Date.now()
    const prev = dev.hb ?? (this.ctx.state(dev.name, 'heartbeat') as Heartbeat | undefined)
    dev.hb = hb
    this.ctx.touch(entry, from, info)
    // durable for `info` after a restart; written only when something changed
    if (!prev || (Object.keys(info) as (keyof Heartbeat)[]).some((k) => prev[k] !== hb[k])) this.ctx.setState(dev.name, 'heartbeat', { ...hb, at: dev.heardAt })
    reply(true)
    this.service(dev)
  }

  private ack(ack: Ack, from: string): void {
    const o = this.outstanding.get(ack.id)
    if (!o) {
      this.ctx.log.debug('udp ack for no outstanding command (a duplicate, or from before a restart)', { from, id: ack.id, cmd: ack.of })
      return
    }
    const { dev, cmd } = o
    this.outstanding.delete(ack.id)
    if (dev.round?.wire === ack.id) {
      if (dev.round.timer) clearInterval(dev.round.timer)
      dev.round = undefined
    }
    dev.gaveUp = undefined
    dev.heardAt = Math.max(dev.heardAt, Date.now())
    const expected = cmd.kind === 'open' ? 'unlock' : cmd.kind === 'reboot' ? 'reboot' : 'setting'
    if (ack.of !== expected) this.ctx.log.warn('udp ack of another kind than its command; taken by its id', { device: dev.name, id: ack.id, ack: ack.of, command: cmd.kind })
    if (!ack.ok) {
      this.ctx.finish(cmd.id, 'failed', { message: ack.message, deviceCode: ack.type })
    } else if (cmd.kind === 'setConfig') {
      const s = o.setting!
      const newCommunity = s.communityId ?? this.addressed(dev, '').communityId
      const newCode = s.doorcodeNew ?? this.addressed(dev, '').deviceCode
      const changed = s.communityId !== undefined || s.doorcodeNew !== undefined
      if (changed && dev.entry) {
        // the inventory cannot be edited from here: until the CLI updates it, the new identity stays this device
        this.aliases.set(identity(newCommunity, newCode), dev.entry)
      }
      if (changed && dev.hb) {
        // the device confirmed its new identity: commands and `info` use it before a heartbeat says so
        dev.hb = { ...dev.hb, communityId: newCommunity, deviceCode: newCode }
        this.ctx.setState(dev.name, 'heartbeat', { ...dev.hb, at: dev.heardAt })
      }
      const set = [s.communityId !== undefined ? `communityId ${newCommunity}` : '', s.doorcodeNew !== undefined ? `deviceCode ${newCode}` : '', ...Object.keys(s.extra)].filter(Boolean)
      const result: CommandResult = { message: `set ${set.join(', ')}` }
      if (changed) result.data = { newCommunity, newCode }
      this.ctx.finish(cmd.id, 'acknowledged', result)
    } else {
      this.ctx.finish(cmd.id, 'acknowledged', { message: cmd.kind === 'open' ? 'door opened' : 'rebooting' })
    }
    this.ctx.log.debug('udp command acknowledged', { device: dev.name, id: cmd.id, ok: ack.ok, from })
    this.service(dev)
  }

  // ---- command service ------------------------------------------------------------------------------

  /** A command was queued: face commands go into the list now; a UDP command is sent now if the device was heard recently. */
  private queued(device: string): void {
    try {
      const pending = this.ctx.pending(device)
      if (!pending.some((c) => c.protocol === 'udp')) return
      this.service(this.devOf(device))
    } catch (err) {
      this.ctx.log.warn('udp queue handling failed', { device, error: String(err) })
    }
  }

  private service(dev: Dev): void {
    const pending = this.ctx.pending(dev.name).filter((c) => c.protocol === 'udp')
    const ids = new Set(pending.map((c) => c.id))
    for (const id of dev.jobs.keys()) if (!ids.has(id)) dev.jobs.delete(id)
    for (const [wire, o] of this.outstanding) if (o.dev === dev && !ids.has(o.cmd.id)) this.outstanding.delete(wire)
    if (dev.round && !ids.has(dev.round.cmd.id)) {
      if (dev.round.timer) clearInterval(dev.round.timer)
      dev.round = undefined
    }
    let faceWork = false
    for (const cmd of pending) {
      if (cmd.kind === 'info') this.info(dev, cmd)
      else if (FACE_LANE.has(cmd.kind)) faceWork = true
      else if (cmd.kind === 'open' || cmd.kind === 'setConfig') {
        const problem = this.frameOf(dev, cmd)
        if ('error' in problem) this.ctx.finish(cmd.id, 'failed', { message: problem.error })
      }
    }
    if (faceWork || dev.book) this.faceService(dev, pending)
    this.nextRound(dev)
  }

  private info(dev: Dev, cmd: QueuedCommand): void {
    const hb = dev.hb ? { ...dev.hb, at: dev.heardAt } : (this.ctx.state(dev.name, 'heartbeat') as (Heartbeat & { at: number }) | undefined)
    if (!hb) return // never heard from: answered at its first heartbeat
    const at = new Date(hb.at).toISOString()
    const data = {
      communityId: hb.communityId, deviceCode: hb.deviceCode, softVer: hb.softVer, name: hb.name, deviceSn: hb.deviceSn,
      address: dev.address ? `${dev.address.host}:${dev.address.port}` : '', last_heartbeat: at,
      device: { communityId: hb.communityId, deviceCode: hb.deviceCode },
    }
    this.ctx.finish(cmd.id, 'acknowledged', { data, message: `from the heartbeat of ${at}` })
  }

  private frameOf(dev: Dev, cmd: QueuedCommand): { frame: string; setting?: SettingValues } | { error: string } {
    const a = this.addressed(dev, wireId(cmd))
    switch (cmd.kind) {
      case 'open': {
        const who = openFields(cmd.payload)
        return 'error' in who ? who : { frame: unlockFrame(a, who) }
      }
      case 'reboot':
        return { frame: rebootFrame(a) }
      case 'setConfig': {
        const s = settingValues(String(cmd.payload.section ?? ''), isObject(cmd.payload.values) ? cmd.payload.values : {})
        return 'error' in s ? s : { frame: settingFrame(a, s), setting: s }
      }
      default:
        return { error: `udp devices cannot ${cmd.kind}` }
    }
  }

  /** Starts sending the oldest UDP command, if the device can be reached now. */
  private nextRound(dev: Dev): void {
    if (dev.round || !dev.address || !this.socket) return
    if (Date.now() - dev.heardAt > this.freshMs) return
    const pending = this.ctx.pending(dev.name).filter((c) => c.protocol === 'udp' && UDP_LANE.has(c.kind))
    for (const cmd of pending) {
      // a round that ran out waits for a newer heartbeat (not for any HTTP call)
      if (dev.gaveUp?.cmd === cmd.id && dev.heardAt <= dev.gaveUp.at) return
      const f = this.frameOf(dev, cmd)
      if ('error' in f) {
        this.ctx.finish(cmd.id, 'failed', { message: f.error })
        continue
      }
      const round: Round = { cmd, wire: wireId(cmd), frame: f.frame, sends: 0 }
      dev.round = round
      this.outstanding.set(round.wire, { dev, cmd, setting: f.setting })
      this.sendRound(dev, round)
      round.timer = setInterval(() => this.resend(dev, round), this.resendMs)
      round.timer.unref?.()
      return
    }
  }

  private sendRound(dev: Dev, round: Round): void {
    this.send(dev, round.frame)
    round.sends++
    if (round.sends === 1) {
      this.ctx.delivered(round.cmd.id)
      this.ctx.log.debug('udp command sent', { device: dev.name, id: round.cmd.id, kind: round.cmd.kind, wire: round.wire })
    }
  }

  private resend(dev: Dev, round: Round): void {
    try {
      if (dev.round !== round) {
        if (round.timer) clearInterval(round.timer)
        return
      }
      const still = this.ctx.pending(dev.name).some((c) => c.id === round.cmd.id)
      if (!still || round.sends > this.resends) {
        if (round.timer) clearInterval(round.timer)
        dev.round = undefined
        if (still) {
          dev.gaveUp = { cmd: round.cmd.id, at: dev.heardAt }
          this.ctx.log.info('udp command not acknowledged; sent again after the next heartbeat', { device: dev.name, id: round.cmd.id, sends: round.sends })
        } else this.nextRound(dev)
        return
      }
      this.ctx.log.debug('udp command resent (no ack yet)', { device: dev.name, id: round.cmd.id, send: round.sends + 1 })
      this.sendRound(dev, round)
    } catch (err) {
      this.ctx.log.warn('udp resend failed', { device: dev.name, error: String(err) })
    }
  }

  // ---- faces --------------------------------------------------------------------------------------

  /** Applies face commands not yet in the list, rebuilds jobs after a restart, drops what is no longer pending. */
  private faceService(dev: Dev, pending: QueuedCommand[]): void {
    const book = this.bookOf(dev)
    const faceCmds = pending.filter((c) => FACE_LANE.has(c.kind))
    const live = new Set(faceCmds.map((c) => c.id))
    // entries no longer waited for by a live command
    for (const rec of book.byPhone.values()) {
      if (rec.face && rec.face.cmds.some((id) => !live.has(id))) {
        rec.face.cmds = rec.face.cmds.filter((id) => live.has(id))
        book.touched(rec.phone)
      }
    }
    const applied = new Set(book.meta.applied)
    for (const cmd of faceCmds) {
      if (dev.jobs.has(cmd.id)) continue
      if (applied.has(cmd.id)) this.rebuildJob(dev, book, cmd)
      else {
        this.applyJob(dev, book, cmd)
        applied.add(cmd.id)
      }
    }
    book.setApplied([...applied].filter((id) => live.has(id)))
    book.flush()
  }

  private applyJob(dev: Dev, book: FaceBook, cmd: QueuedCommand): void {
    const job: FaceJob = { cmd, people: [], outcomes: new Map(), waiting: new Map(), actions: new Map(), delivered: cmd.state === 'delivered' }
    dev.jobs.set(cmd.id, job)
    const p = cmd.payload
    if (cmd.kind === 'upsertPeople') {
      const people = (Array.isArray(p.people) ? p.people : []).filter(isObject)
      this.applyUpsert(dev, book, job, people)
    } else if (cmd.kind === 'enrollFace') {
      if (p.capture === true) return this.failJob(dev, job, 'unsupported: udp intercoms cannot capture a face on request; give a photo (--photo)')
      const id = String(p.id ?? '')
      const rec = book.person(id)
      if (!rec) return this.failJob(dev, job, `no person with id ${id} was imported to ${dev.name} through doorctl: import them with a phone first (udp faces are keyed by phone)`)
      if (typeof p.photoPath !== 'string') return this.failJob(dev, job, 'enrollFace needs a photo')
      this.applyUpsert(dev, book, job, [{ id, name: rec.name, phone: rec.phone, room: rec.room, unit: rec.unit, photoPath: p.photoPath, keepPassword: true }], 'enrolled')
    } else {
      this.applyDelete(dev, book, job, p.ids === 'all' ? 'all' : Array.isArray(p.ids) ? p.ids.map(String) : [])
    }
    this.jobAnswered(dev, job)
  }

  private failJob(dev: Dev, job: FaceJob, message: string): void {
    dev.jobs.delete(job.cmd.id)
    this.ctx.finish(job.cmd.id, 'failed', { message })
  }

  private applyUpsert(dev: Dev, book: FaceBook, job: FaceJob, people: Json[], enrollAction?: string): void {
    const phones = new Map<string, string>()
    for (const p of people) {
      const id = str(p.id)
      const name = str(p.name) || undefined
      job.people.push({ id, name })
      const fail = (message: string) => job.outcomes.set(id, { id, name, status: 'failed', message: `${message}; not sent` })
      const phone = str(p.phone)
      if (!id) continue
      if (!phone) { fail('no phone: udp devices key people by phone (AMBIGUITIES udp #7)'); continue }
      if (!PHONE_RE.test(phone)) { fail(`phone "${phone}" is not a phone number (${PHONE_DESCRIPTION})`); continue }
      const other = phones.get(phone)
      if (other !== undefined) { fail(`phone ${phone} is also given to id ${other} in this import: udp devices key faces by phone`); continue }
      phones.set(phone, id)
      const photoPath = typeof p.photoPath === 'string' && p.photoPath ? p.photoPath : undefined
      if (photoPath) {
        const problem = photoProblem(photoPath)
        if (problem) { fail(problem); continue }
      }
      // the person had another phone on this device: that face goes
      const oldPhone = book.byId.get(id)
      if (oldPhone !== undefined && oldPhone !== phone) {
        const old = book.byPhone.get(oldPhone)!
        const before = { id: old.id, pw: old.pw }
        this.tombstone(dev, book, old)
        old.deletedId = old.id
        old.id = undefined
        old.pw = undefined
        book.put(old, before)
      }
      const rec: PersonRec = book.byPhone.get(phone) ?? { phone, room: '', unit: '' }
      const before = { id: rec.id, pw: rec.pw }
      const replaced = rec.id !== undefined && rec.id !== id ? rec.id : undefined
      rec.id = id
      rec.deletedId = undefined
      rec.name = name
      rec.room = str(p.room)
      rec.unit = str(p.unit)
      if (p.keepPassword !== true) rec.pw = str(p.password) ? passwordHash(str(p.password)) : undefined
      const alive = rec.face !== undefined && rec.face.state !== '30' && rec.face.verdict !== '40'
      // 20 (修改) only for a face the device may hold: one it fetched, or a change it kept the old face through
      const held = rec.face !== undefined && rec.face.state !== '30' && (rec.face.handedOut === true || rec.face.state === '20' || rec.face.verdict === '50')
      const note = replaced ? ` (replaces id ${replaced}, who had this phone)` : ''
      if (photoPath || (alive && rec.face!.photoPath)) {
        const path = photoPath ?? rec.face!.photoPath!
        if (rec.face?.file && photoPath) this.ctx.unpublish(rec.face.file)
        const createTime = book.nextTime()
        const file = photoPath || !rec.face?.file ? `udp-${safeName(job.cmd.device)}-${phone}-${createTime}-${randomBytes(4).toString('hex')}.jpg` : rec.face.file
        // earlier imports still waiting on this phone take the verdict on the newer entry; a pending deletion is overridden
        const carried = rec.face && rec.face.state !== '30' ? rec.face.cmds : []
        if (rec.face?.state === '30') this.settle(dev, rec, 'ok', 'not handed out: a later import of the same phone replaced the deletion')
        rec.face = { state: held ? '20' : '10', createTime, photoPath: path, file, cmds: [...carried.filter((c) => c !== job.cmd.id), job.cmd.id] }
        this.publishPhoto(file, path)
        job.waiting.set(phone, id)
        job.actions.set(id, (enrollAction ?? (held ? 'updated' : 'added')) + note)
      } else {
        job.outcomes.set(id, { id, name, status: 'ok', action: 'stored', message: `kept by the gateway for /oneLock and records only: no photo, and udp intercoms hold faces, not people${note}` })
      }
      book.put(rec, before)
    }
  }

  private applyDelete(dev: Dev, book: FaceBook, job: FaceJob, ids: string[] | 'all'): void {
    const list = ids === 'all' ? [...book.byId.keys()] : [...new Set(ids)]
    for (const id of list) {
      const rec = book.person(id)
      job.people.push({ id, name: rec?.name })
      if (!rec) {
        job.outcomes.set(id, { id, status: 'failed', action: 'delete', message: `id ${id} was not imported to this device through doorctl: udp devices key faces by phone, so there is nothing to delete by this id` })
        continue
      }
      const before = { id: rec.id, pw: rec.pw }
      const hadFace = rec.face !== undefined && rec.face.state !== '30'
      rec.deletedId = rec.id
      rec.id = undefined
      rec.pw = undefined
      if (hadFace) {
        this.tombstone(dev, book, rec)
        rec.face!.cmds = [job.cmd.id]
        job.waiting.set(rec.phone, id)
      } else {
        job.outcomes.set(id, { id, name: rec.name, status: 'ok', action: 'deleted', message: 'deleted (the device held no face for this person)' })
      }
      book.put(rec, before)
    }
  }

  private tombstone(dev: Dev, book: FaceBook, rec: PersonRec): void {
    if (!rec.face || rec.face.state === '30') return
    if (rec.face.file) this.ctx.unpublish(rec.face.file)
    this.settle(dev, rec, 'failed', 'deleted by a later command before the device gave its verdict')
    rec.face = { state: '30', createTime: book.nextTime(), cmds: [] }
    book.touched(rec.phone)
  }

  /** Earlier commands waiting on an entry that is being replaced get their outcome now, not at their timeout. */
  private settle(dev: Dev, rec: PersonRec, status: 'ok' | 'failed', message: string): void {
    for (const id of rec.face?.cmds ?? []) {
      const job = dev.jobs.get(id)
      const pid = job?.waiting.get(rec.phone)
      if (!job || pid === undefined) continue
      job.waiting.delete(rec.phone)
      job.outcomes.set(pid, { id: pid, name: rec.name, status, action: job.cmd.kind === 'deletePeople' ? 'deleted' : undefined, message })
      this.jobAnswered(dev, job)
    }
    if (rec.face) rec.face.cmds = []
  }

  /** After a restart: the entries are in the list already; outcomes so far are in the command. */
  private rebuildJob(dev: Dev, book: FaceBook, cmd: QueuedCommand): void {
    const job: FaceJob = { cmd, people: [], outcomes: new Map(), waiting: new Map(), actions: new Map(), delivered: cmd.state === 'delivered' }
    dev.jobs.set(cmd.id, job)
    for (const o of cmd.result?.people ?? []) job.outcomes.set(o.id, o)
    const p = cmd.payload
    if (cmd.kind === 'upsertPeople') for (const x of (Array.isArray(p.people) ? p.people : []).filter(isObject)) job.people.push({ id: str(x.id), name: str(x.name) || undefined })
    else if (cmd.kind === 'enrollFace') job.people.push({ id: String(p.id ?? '') })
    else if (Array.isArray(p.ids)) for (const id of p.ids) job.people.push({ id: String(id) })
    for (const rec of book.byPhone.values()) {
      if (!rec.face?.cmds.includes(cmd.id)) continue
      const id = rec.id ?? rec.deletedId ?? ''
      if (job.outcomes.has(id)) continue
      job.waiting.set(rec.phone, id)
      job.actions.set(id, cmd.kind === 'deletePeople' ? 'deleted' : cmd.kind === 'enrollFace' ? 'enrolled' : rec.face.state === '20' ? 'updated' : 'added')
      if (cmd.kind === 'deletePeople' && !job.people.some((x) => x.id === id)) job.people.push({ id, name: rec.name })
    }
    for (const x of job.people) {
      if (job.outcomes.has(x.id) || [...job.waiting.values()].includes(x.id)) continue
      // answered before the restart, but its progress was not written
      const rec = cmd.kind === 'deletePeople' ? undefined : book.person(x.id)
      if (cmd.kind === 'deletePeople') job.outcomes.set(x.id, { id: x.id, status: 'ok', action: 'deleted', message: 'deleted' })
      else if (rec?.face?.verdict && (rec.face.verdictAt ?? 0) >= cmd.createdAt) {
        job.outcomes.set(x.id, { id: x.id, name: rec.name, status: rec.face.verdict === '50' ? 'ok' : 'failed', message: verdictMessage(rec.face.verdict, 'stored'), deviceCode: Number(rec.face.verdict) })
      } else job.outcomes.set(x.id, { id: x.id, status: 'failed', message: 'the gateway lost track of this person across a restart; import again' })
    }
    this.jobAnswered(dev, job)
  }

  private jobAnswered(dev: Dev, job: FaceJob): void {
    if (!dev.jobs.has(job.cmd.id)) return
    const people = job.people.map((x) => job.outcomes.get(x.id)).filter((o): o is PersonOutcome => o !== undefined)
    if (job.waiting.size > 0) {
      this.ctx.progress(job.cmd.id, { people, message: `${people.length} of ${job.people.length} answered` })
      return
    }
    dev.jobs.delete(job.cmd.id)
    const ok = people.filter((o) => o.status === 'ok').length
    const verb = job.cmd.kind === 'deletePeople' ? 'deleted' : job.cmd.kind === 'enrollFace' ? 'enrolled' : 'stored'
    this.ctx.finish(job.cmd.id, 'acknowledged', { people, message: `${ok} of ${people.length} ${verb}` })
  }

  private publishPhoto(file: string, path: string): void {
    this.ctx.publish(file, () => readFile(path), 'image/jpeg')
  }

  /** The devices an HTTP callback is about: by communityId + deviceCode, else by the address it heartbeats from. */
  private resolve(f: Record<string, string>, req: GatewayRequest): { devs: Dev[]; unknown?: string } {
    const c = f.communityId ?? ''
    const d = f.deviceCode ?? ''
    if (c && d) {
      const id = identity(c, d)
      const entry = this.lookup(id)
      if (!entry) {
        this.ctx.discovered('udp', id, `${req.remoteAddress}:${req.remotePort}`, { communityId: c, deviceCode: d })
        return { devs: [], unknown: id }
      }
      return { devs: [this.devOf(entry.name, entry)] }
    }
    // section 5: "communityId, deviceCode … 可无参数" — the device is told by where it heartbeats from
    const host = plainIp(req.remoteAddress)
    const devs = [...this.devs.values()].filter((x) => x.address && plainIp(x.address.host) === host && (!c || (x.hb?.communityId ?? x.entry?.community) === c))
    return { devs }
  }

  private refuse(req: GatewayRequest, path: string, message: string, status = 400): GatewayResponse {
    this.warnLimited(`http:${path}:${status}`, `udp ${path} refused`, { from: `${req.remoteAddress}:${req.remotePort}`, reason: message })
    return { status, json: failAnswer(message) }
  }

  private unknownDevice(id: string): GatewayResponse {
    return { json: failAnswer(`设备未登记 (device ${id} is not registered)`) }
  }

  /** Section 5: the device's face list since `timestrap`. */
  private updateImage(req: GatewayRequest): GatewayResponse {
    const f = callbackFields(req)
    const since = parseTimestrap(f)
    const { devs, unknown } = this.resolve(f, req)
    if (unknown) return this.unknownDevice(unknown)
    if (devs.length === 0) return this.refuse(req, '/updateImage', 'which device? send communityId and deviceCode, or heartbeat first')
    const items: FaceItem[] = []
    const now = Date.now()
    for (const dev of devs) {
      this.touchHttp(dev, req)
      this.service(dev)
      const book = this.bookOf(dev)
      const community = dev.hb?.communityId ?? dev.entry?.community ?? ''
      const answered: FaceJob[] = []
      for (const rec of book.byPhone.values()) {
        const face = rec.face
        if (!face) continue
        if (face.state !== '30' && face.verdict === '40') continue // the device refused it: nothing to do again
        // strictly after (AMBIGUITIES #4), plus entries still waited for (a device whose cursor moved past them gets them again)
        if (!(face.createTime > since || face.cmds.length > 0)) continue
        items.push({
          createTime: face.createTime, phone: rec.phone, roomNumber: rec.room, unitId: rec.unit, communityId: community, state: face.state,
          imageUrl: face.state === '30' || !face.file ? '' : pathOf(this.ctx.publish(face.file, () => readFile(face.photoPath!), 'image/jpeg')),
        })
        for (const id of face.cmds) {
          const job = dev.jobs.get(id)
          if (!job) continue
          if (!job.delivered) {
            job.delivered = true
            this.ctx.delivered(id)
          }
          if (face.state === '30') {
            const pid = job.waiting.get(rec.phone)
            if (pid !== undefined) {
              job.waiting.delete(rec.phone)
              job.outcomes.set(pid, { id: pid, name: rec.name, status: 'ok', action: 'deleted', message: 'deleted: handed to the device in its face list (the protocol has no delete confirmation)' })
              if (!answered.includes(job)) answered.push(job)
            }
          }
        }
        if (!face.handedOut || (face.state === '30' && face.cmds.length > 0)) {
          face.handedOut = true
          if (face.state === '30') face.cmds = []
          book.touched(rec.phone)
        }
      }
      for (const job of answered) this.jobAnswered(dev, job)
      book.flush()
    }
    items.sort((a, b) => a.createTime - b.createTime)
    this.ctx.log.debug('udp face list', { devices: devs.map((d) => d.name), since, items: items.length, at: now })
    return { json: faceListAnswer(items, `${Date.now()}${++this.messageSeq}`) }
  }

  /** Section 6: the device's verdict on one face (40 invalid, 50 valid), with its feature file if iffile=1. */
  private authImage(req: GatewayRequest): GatewayResponse {
    const f = callbackFields(req)
    const v = parseAuthImage(f)
    if ('error' in v) return this.refuse(req, '/authImage', v.error)
    const { devs, unknown } = this.resolve(f, req)
    if (unknown) return this.unknownDevice(unknown)
    if (devs.length === 0) return this.refuse(req, '/authImage', 'which device? send communityId and deviceCode, or heartbeat first')
    const feature = v.hasFile ? (req.files.file ?? Object.values(req.files)[0])?.data : undefined
    let matched = false
    for (const dev of devs) {
      this.touchHttp(dev, req)
      const book = this.bookOf(dev)
      const rec = book.byPhone.get(v.phone)
      const face = rec?.face
      if (!rec || !face || face.state === '30') continue
      matched = true
      face.verdict = v.state
      face.verdictAt = Date.now()
      const cmds = face.cmds
      face.cmds = []
      // the feature file ("人脸特征码") is kept per device and phone; nothing in doorctl reads it yet
      if (feature && feature.length <= 256 * 1024) this.ctx.setState(dev.name, `feature/${v.phone}`, feature.toString('base64'))
      for (const id of cmds) {
        const job = dev.jobs.get(id)
        const pid = job?.waiting.get(v.phone)
        if (!job || pid === undefined) continue
        job.waiting.delete(v.phone)
        const action = job.actions.get(pid) ?? 'stored'
        job.outcomes.set(pid, {
          id: pid, name: rec.name, status: v.state === '50' ? 'ok' : 'failed', action: action.split(' ')[0],
          message: verdictMessage(v.state, action), deviceCode: Number(v.state),
        })
        // progress before the list is written: after a crash between the two, the outcome stands
        this.jobAnswered(dev, job)
      }
      book.touched(rec.phone)
      book.flush()
    }
    if (!matched) this.ctx.log.info('udp verdict for a face not in the list (ignored)', { phone: v.phone, state: v.state, devices: devs.map((d) => d.name) })
    return { json: okAnswer({}, '接收成功') }
  }

  /** Section 2: is this (one-time) password good at this door? */
  private oneLock(req: GatewayRequest): GatewayResponse {
    const f = callbackFields(req)
    const c = f.communityId ?? ''
    const d = f.deviceCode ?? ''
    if (!c || !d) return this.refuse(req, '/oneLock', 'communityId and deviceCode are required')
    const password = f.onePassword ?? ''
    if (!password) return this.refuse(req, '/oneLock', 'onePassword is required')
    const id = identity(c, d)
    const entry = this.lookup(id)
    if (!entry) {
      this.ctx.discovered('udp', id, `${req.remoteAddress}:${req.remotePort}`, { communityId: c, deviceCode: d })
      return this.unknownDevice(id)
    }
    const dev = this.devOf(entry.name, entry)
    this.touchHttp(dev, req)
    const book = this.bookOf(dev)
    const phone = book.byPw.get(passwordHash(password))
    const rec = phone === undefined ? undefined : book.byPhone.get(phone)
    const person = rec?.id !== undefined ? rec : undefined
    if (!this.ctx.authorize(entry, person?.id ?? '')) return { json: failAnswer('密码错误 (password refused)') }
    return { json: oneLockAnswer({ unitId: person?.unit, phone: person?.phone, roomNumber: person?.room }) }
  }

  /** Section 4: a capture, stored durably before its path is answered; the record that names the path gets it. */
  private addUpload(req: GatewayRequest): GatewayResponse {
    const file = req.files.uploadFile ?? req.files.file ?? Object.values(req.files)[0]
    const type = String(req.headers['content-type'] ?? '').toLowerCase()
    const data = file?.data ?? (type.startsWith('image/') || type.startsWith('application/octet-stream') ? req.body : undefined)
    if (!data || data.length === 0) return this.refuse(req, '/addUpload', 'no file in the upload (multipart/form-data with a file part)')
    const params = uploadParams(req.path, req.query)
    const name = `udp-upload-${Date.now()}-${randomBytes(6).toString('hex')}.jpg`
    const at = Date.now()
    this.ctx.setState(UPLOADS, name, { at, data: data.toString('base64'), uploadFile: params.uploadFile ?? req.fields.uploadFile ?? '', newName: params.newName ?? req.fields.newName ?? '' })
    const index = (this.ctx.state(UPLOADS, 'index') as { name: string; at: number }[] | undefined) ?? []
    const keep = index.filter((u) => at - u.at < this.uploadTtlMs)
    for (const u of index) {
      if (keep.includes(u)) continue
      this.ctx.setState(UPLOADS, u.name, undefined)
      this.ctx.unpublish(u.name)
    }
    keep.push({ name, at })
    this.ctx.setState(UPLOADS, 'index', keep)
    const url = this.ctx.publish(name, async () => this.upload(name) ?? Buffer.alloc(0), 'image/jpeg')
    return { json: okAnswer(pathOf(url), '上传成功') }
  }

  private upload(name: string): Buffer | undefined {
    const u = this.ctx.state(UPLOADS, name)
    return isObject(u) && typeof u.data === 'string' ? Buffer.from(u.data, 'base64') : undefined
  }

  private dropUpload(name: string): void {
    this.ctx.setState(UPLOADS, name, undefined)
    this.ctx.unpublish(name)
    const index = (this.ctx.state(UPLOADS, 'index') as { name: string; at: number }[] | undefined) ?? []
    this.ctx.setState(UPLOADS, 'index', index.filter((u) => u.name !== name))
  }

  /** Section 3: an access record, on disk (with its capture) before the device hears 0000. */
  private unlockCallback(req: GatewayRequest): GatewayResponse {
    const u = parseUnlockCallback(callbackFields(req))
    if ('error' in u) return this.refuse(req, '/unlockCallback', u.error)
    const id = identity(u.communityId, u.deviceCode)
    const entry = this.lookup(id)
    if (!entry) {
      this.ctx.discovered('udp', id, `${req.remoteAddress}:${req.remotePort}`, { communityId: u.communityId, deviceCode: u.deviceCode })
      return this.unknownDevice(id)
    }
    const dev = this.devOf(entry.name, entry)
    this.touchHttp(dev, req)
    const now = Date.now()
    const upload = uploadNameOf(u.file)
    const photo = upload ? this.upload(upload) : undefined
    if (u.file && !photo) this.ctx.log.info('udp record refers to a capture the gateway does not hold (stored without photo)', { device: dev.name, file: u.file })
    const person = u.phone ? this.bookOf(dev).byPhone.get(u.phone) : undefined
    const rec = unlockRecord(dev.name, u, {
      time: now,
      // a re-sent callback names the same capture: stored once (AMBIGUITIES #7: no record id)
      recordId: upload ? upload.replace(/^udp-upload-/, '').replace(/\.jpg$/, '') : `${now}-${randomBytes(4).toString('hex')}`,
      userId: person?.id ?? u.phone,
      name: person?.id !== undefined ? person.name ?? '' : '',
      photo,
    })
    try {
      const fresh = this.ctx.spool(rec)
      if (!fresh) this.ctx.log.debug('udp duplicate record', { device: dev.name, record: rec.recordId })
    } catch (err) {
      this.ctx.log.warn('udp could not store a record; the device should send it again', { device: dev.name, error: String(err) })
      return { status: 500, json: failAnswer('could not store the record, send it again') }
    }
    if (upload && photo) this.dropUpload(upload)
    return { json: okAnswer() }
  }

  /** HTTP calls count as contact; the presence address stays the UDP one commands go to. */
  private touchHttp(dev: Dev, req: GatewayRequest): void {
    if (!dev.entry) return
    this.ctx.touch(dev.entry, dev.address ? `${dev.address.host}:${dev.address.port}` : `${req.remoteAddress}:${req.remotePort}`)
  }
}

function passwordHash(pw: string): string {
  return createHash('sha256').update(`doorctl-udp-onelock\0${pw}`).digest('hex')
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_-]/g, '_')
}

function plainIp(a: string): string {
  return a.startsWith('::ffff:') ? a.slice(7) : a
}

/** The path of a published URL: imageUrl and upload paths are relative, as the document's examples (AMBIGUITIES #5). */
function pathOf(url: string): string {
  return new URL(url).pathname
}

/** Why a photo cannot be offered, read when the command is applied (the CSV check ran in the CLI, maybe long ago). */
function photoProblem(path: string): string | undefined {
  try {
    const st = statSync(path)
    if (!st.isFile()) return `the photo ${path} is not a file`
    if (st.size > personRules.maxPhotoBytes) return `the photo is ${Math.ceil(st.size / 1024)} KB; udp devices take at most ${personRules.maxPhotoBytes / 1024} KB`
    const head = Buffer.alloc(3)
    const fd = openSync(path, 'r')
    try {
      readSync(fd, head, 0, 3, 0)
    } finally {
      closeSync(fd)
    }
    if (head[0] !== 0xff || head[1] !== 0xd8 || head[2] !== 0xff) return `the photo ${path} is not a JPEG`
    return undefined
  } catch (err) {
    return `cannot read the photo ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`
  }
}

/** A udp protocol handler; `handler` is the default one. Options exist for tests (short resend intervals). */
export function createHandler(opts: UdpOptions = {}): ProtocolHandler {
  const instances = new WeakMap<GatewayContext, UdpGateway>()
  const all = new Set<UdpGateway>()
  const of = (ctx: GatewayContext) => {
    let gw = instances.get(ctx)
    if (!gw) {
      gw = new UdpGateway(ctx, opts)
      instances.set(ctx, gw)
      all.add(gw)
    }
    return gw
  }
  return {
    protocol: 'udp',
    kinds,
    routes: (ctx) => of(ctx).routes(),
    start: (ctx) => of(ctx).start(),
    async stop(): Promise<void> {
      for (const gw of all) await gw.stop()
      all.clear()
    },
  }
}

export const handler: ProtocolHandler = createHandler()

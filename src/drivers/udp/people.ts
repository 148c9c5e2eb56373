import { createHash, randomBytes } from 'node:crypto'
import { closeSync, openSync, readSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { REFUSED, type GatewayContext, type GatewayRequest, type GatewayResponse, type QueuedCommand } from '../../types/gateway.js'
import type { PersonOutcome } from '../../types/driver.js'
import {
  callbackFields, failAnswer, faceListAnswer, identity, isObject, okAnswer, oneLockAnswer, parseAuthImage, parseTimestrap, pathOf, str,
  verdictMessage, type FaceItem, type Json,
} from './codec.js'
import type { Dev, UdpDevices } from './devices.js'
import { FaceBook, type FaceJob, type PersonRec } from './face-book.js'
import { PHONE_DESCRIPTION, PHONE_RE, personRules } from './rules.js'

export const FACE_LANE = new Set(['upsertPeople', 'deletePeople', 'enrollFace'])

/**
 * People and faces (sections 2, 5, 6): face commands become entries of the device's face list,
 * its verdicts finish them; /oneLock checks passwords of the people imported to a device.
 */
export class UdpPeople {
  private readonly ctx: GatewayContext
  private messageSeq = 0

  /** `service` works through a device's pending commands (a face list fetch is a good moment). */
  constructor(private readonly devices: UdpDevices, private readonly service: (dev: Dev) => void) {
    this.ctx = devices.ctx
  }

  bookOf(dev: Dev): FaceBook {
    if (!dev.book) {
      dev.book = new FaceBook(this.ctx, dev.name)
      // published files live in memory: publish the list's photos again after a restart
      for (const rec of dev.book.byPhone.values()) if (rec.face && rec.face.state !== '30' && rec.face.file && rec.face.photoPath) this.publishPhoto(rec.face.file, rec.face.photoPath)
      dev.book.flush()
    }
    return dev.book
  }

  /** Applies face commands not yet in the list, rebuilds jobs after a restart, drops what is no longer pending. */
  faceService(dev: Dev, pending: QueuedCommand[]): void {
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

  /** Section 5: the device's face list since `timestrap`. */
  updateImage(req: GatewayRequest): GatewayResponse {
    const f = callbackFields(req)
    const since = parseTimestrap(f)
    const { devs, unknown } = this.devices.resolve(f, req)
    if (unknown) return this.devices.unknownDevice(unknown)
    if (devs.length === 0) return this.devices.refuse(req, '/updateImage', 'which device? send communityId and deviceCode, or heartbeat first')
    const items: FaceItem[] = []
    const now = Date.now()
    for (const dev of devs) {
      this.devices.touchHttp(dev, req)
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
  authImage(req: GatewayRequest): GatewayResponse {
    const f = callbackFields(req)
    const v = parseAuthImage(f)
    if ('error' in v) return this.devices.refuse(req, '/authImage', v.error)
    const { devs, unknown } = this.devices.resolve(f, req)
    if (unknown) return this.devices.unknownDevice(unknown)
    if (devs.length === 0) return this.devices.refuse(req, '/authImage', 'which device? send communityId and deviceCode, or heartbeat first')
    const feature = v.hasFile ? (req.files.file ?? Object.values(req.files)[0])?.data : undefined
    let matched = false
    for (const dev of devs) {
      this.devices.touchHttp(dev, req)
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
  oneLock(req: GatewayRequest): GatewayResponse {
    const f = callbackFields(req)
    const c = f.communityId ?? ''
    const d = f.deviceCode ?? ''
    if (!c || !d) return this.devices.refuse(req, '/oneLock', 'communityId and deviceCode are required')
    const password = f.onePassword ?? ''
    if (!password) return this.devices.refuse(req, '/oneLock', 'onePassword is required')
    const id = identity(c, d)
    const entry = this.devices.lookup(id, req.remoteAddress)
    if (entry === REFUSED) return this.devices.refused()
    if (!entry) {
      this.ctx.discovered('udp', id, `${req.remoteAddress}:${req.remotePort}`, { communityId: c, deviceCode: d })
      return this.devices.unknownDevice(id)
    }
    const dev = this.devices.devOf(entry.name, entry)
    this.devices.touchHttp(dev, req)
    const book = this.bookOf(dev)
    const phone = book.byPw.get(passwordHash(password))
    const rec = phone === undefined ? undefined : book.byPhone.get(phone)
    const person = rec?.id !== undefined ? rec : undefined
    if (!this.ctx.authorize(entry, person?.id ?? '')) return { json: failAnswer('密码错误 (password refused)') }
    return { json: oneLockAnswer({ unitId: person?.unit, phone: person?.phone, roomNumber: person?.room }) }
  }
}

function passwordHash(pw: string): string {
  return createHash('sha256').update(`doorctl-udp-onelock\0${pw}`).digest('hex')
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_-]/g, '_')
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

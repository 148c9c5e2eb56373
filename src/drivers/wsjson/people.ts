import { readFile } from 'node:fs/promises'
import type { GatewayContext } from '../../types/gateway.js'
import type { PersonOutcome, Role } from '../../types/driver.js'
import {
  addUserContent, CODE, compareContent, deleteUserContent, editUserContent, encodeImage, faceContent, isExistsReason, isNotFoundReason, parseCompare,
  parseUserList, personInfoJson, selectAllContent, type Json,
} from './codec.js'
import { GiveUp, type DeviceState, type Job, type Known, type WsjsonDevices } from './devices.js'
import { personRules } from './rules.js'

export interface PersonPayload {
  id: string
  name?: string
  password?: string
  role?: Role
  photoPath?: string
  /** CSV fields 4.1 has no place for. */
  unsent: string[]
}

/** People and faces: addUser/editUser per person, deleteUser, selectUser (203), editUser with a photo, compareUser (204). */
export class WsjsonPeople {
  private readonly ctx: GatewayContext

  constructor(private readonly devices: WsjsonDevices) {
    this.ctx = devices.ctx
  }

  async upsert(state: DeviceState, job: Job, people: PersonPayload[]): Promise<void> {
    const outcomes = new Map<string, PersonOutcome>()
    // outcomes recorded before a gateway restart stand
    for (const o of job.cmd.result?.people ?? []) outcomes.set(o.id, o)
    const known = this.devices.people(state)
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
      this.devices.check(state, job)
      const was = known.get(p.id)
      const add = addUserContent(p, img.base64, was?.user)
      try {
        let a = await this.devices.call(state, 'addUser', { ...add }, job.cmd.id)
        let action = was ? 'updated' : 'added'
        if (!a.ok && (isExistsReason(a.reason) || (was !== undefined && !isFaceReason(a.reason)))) {
          a = await this.devices.call(state, 'editUser', editUserContent(add), job.cmd.id)
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
    this.devices.finish(job, 'acknowledged', { people: ordered, message: `${ok} of ${people.length} stored${note}` })
  }

  async enroll(state: DeviceState, job: Job): Promise<void> {
    const p = job.cmd.payload
    const id = String(p.id ?? '')
    if (p.capture === true) return this.devices.finish(job, 'failed', { message: 'wsjson devices cannot capture a face themselves (ws-json.txt has no such command); enroll with --photo' })
    if (!id || typeof p.photoPath !== 'string') return this.devices.finish(job, 'failed', { message: 'enrollFace needs an id and a photo' })
    const img = await this.photo(p.photoPath)
    let outcome: PersonOutcome
    if ('error' in img) outcome = { id, status: 'failed', action: 'enroll', message: `${img.error}; not sent` }
    else {
      this.devices.check(state, job)
      const known = this.devices.people(state)
      const was = known.get(id)
      try {
        // editUser with the photo: the person is already on the device (3.1.3), nothing else changes
        const a = await this.devices.call(state, 'editUser', faceContent(id, img.base64, was), job.cmd.id)
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
    this.devices.finish(job, 'acknowledged', { people: [outcome], message: outcome.message })
  }

  async remove(state: DeviceState, job: Job): Promise<void> {
    const raw = job.cmd.payload.ids
    const known = this.devices.people(state)
    let ids: string[]
    if (raw === 'all') {
      // no delete-all command in 3.1: everyone selectUser lists is deleted one by one
      this.devices.check(state, job)
      const a = await this.devices.call(state, 'selectUser', selectAllContent(), job.cmd.id)
      if (!a.ok) return this.devices.finish(job, 'failed', { message: `could not list the people to delete: ${a.reason}`, deviceCode: numeric(a.code) })
      const users = parseUserList(a.body)
      if ('error' in users) return this.devices.finish(job, 'failed', { message: users.error })
      ids = users.map((u) => u.userId)
      for (const u of users) if (!known.has(u.userId)) known.set(u.userId, { name: u.name, user: u.user, role: u.role, hasPhoto: u.hasPhoto })
    } else if (Array.isArray(raw)) {
      ids = [...new Set(raw.map(String))]
    } else {
      return this.devices.finish(job, 'failed', { message: 'deletePeople payload has no ids' })
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
      this.devices.check(state, job)
      try {
        const a = await this.devices.call(state, 'deleteUser', deleteUserContent(id, name), job.cmd.id)
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
    this.devices.finish(job, 'acknowledged', { people: ordered, message: raw === 'all' && ids.length === 0 ? 'nobody to delete' : `${ok} of ${ordered.length} deleted` })
  }

  async list(state: DeviceState, job: Job): Promise<void> {
    this.devices.check(state, job)
    const a = await this.devices.call(state, 'selectUser', selectAllContent(), job.cmd.id)
    if (!a.ok) return this.devices.finish(job, 'failed', { message: a.reason, deviceCode: numeric(a.code) })
    if (a.code !== CODE.selectUser) this.ctx.log.debug('wsjson selectUser answered with a code other than 203', { device: state.name, code: a.code })
    const users = parseUserList(a.body)
    if ('error' in users) return this.devices.finish(job, 'failed', { message: users.error })
    // the device's answer is what it has: our knowledge of its people follows it
    const before = this.devices.people(state)
    const now = new Map<string, Known>()
    for (const u of users) now.set(u.userId, { name: u.name, user: u.user, role: u.role, hasPhoto: u.hasPhoto, enrolledAt: before.get(u.userId)?.enrolledAt })
    state.people = now
    state.peopleDirty = true
    const people = users.map((u) => personInfoJson(u, now.get(u.userId)?.enrolledAt))
    const onDevice = users.filter((u) => now.get(u.userId)?.enrolledAt !== undefined).length
    this.devices.finish(job, 'acknowledged', { data: { people }, message: `${people.length} people${onDevice > 0 ? ` (${onDevice} enrolled on the device itself)` : ''}` })
  }

  async checkFace(state: DeviceState, job: Job): Promise<void> {
    const p = job.cmd.payload
    const img = typeof p.photoBase64 === 'string' ? { base64: p.photoBase64 } : typeof p.photoPath === 'string' ? await this.photo(p.photoPath) : { error: 'checkFace needs a photo' }
    if ('error' in img) return this.devices.finish(job, 'failed', { message: img.error })
    this.devices.check(state, job)
    const r = await this.compare(state, img.base64, job.cmd.id)
    if ('error' in r) return this.devices.finish(job, 'failed', { message: r.error, deviceCode: r.code })
    this.devices.finish(job, 'acknowledged', { data: { exists: r.exists }, message: r.exists ? 'the face is enrolled on the device' : 'the face is not enrolled on the device' })
  }

  /** compareUser (3.1.5): is this face in the device's face library? */
  async compare(state: DeviceState, base64: string, jobId?: number): Promise<{ exists: boolean } | { error: string; code?: number }> {
    const a = await this.devices.call(state, 'compareUser', compareContent(base64), jobId)
    if (!a.ok) return { error: a.reason, code: numeric(a.code) }
    const exists = parseCompare(a.body)
    return typeof exists === 'boolean' ? { exists } : exists
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

/** A refusal about the photo itself: editing would fail the same way. */
function isFaceReason(reason: string): boolean {
  return /face|img|image|photo|人脸|图片|照片/i.test(reason)
}

function numeric(code: string): number | undefined {
  return /^\d+$/.test(code) ? Number(code) : undefined
}

export function toPerson(o: Json): PersonPayload {
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

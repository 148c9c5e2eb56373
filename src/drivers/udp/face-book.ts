import type { GatewayContext, QueuedCommand } from '../../types/gateway.js'
import type { PersonOutcome } from '../../types/driver.js'
import { isObject } from './codec.js'

const BUCKETS = 64
/** Tombstones (state 30) are kept this long for devices that poll late. */
const TOMBSTONE_MS = 30 * 24 * 3600_000

export interface FaceRec {
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

export interface PersonRec {
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
export class FaceBook {
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

/** A face command in progress: its people, their outcomes so far, and the entries it waits on. */
export interface FaceJob {
  cmd: QueuedCommand
  /** People in payload order. */
  people: { id: string; name?: string }[]
  outcomes: Map<string, PersonOutcome>
  /** phone → person id, waiting for a verdict (import, enroll) or for the hand-out (delete). */
  waiting: Map<string, string>
  actions: Map<string, string>
  delivered: boolean
}

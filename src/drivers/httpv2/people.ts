import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { GatewayContext, GatewayRequest } from '../../types/gateway.js'
import type { PersonOutcome } from '../../types/driver.js'
import {
  deleteAllAnswer, deletePeopleAnswer, downloadPeopleAnswer, limitOf, okAnswer, parseDeleteResult, parseDownloadResult, parsePushPeople,
  peopleJson, personInfoFromDetail, personInfoJson, personProblem, plainValue, remoteAnswer,
  type Json, type PersonFailure, type PersonPayload, type PhotoRef,
} from './codec.js'
import type { Batch, DeleteJob, DeviceState, Endpoint, Httpv2Devices, ImportJob, Job, Reply } from './devices.js'
import { personRules, USER_ID_RE } from './rules.js'

/**
 * People flows: imports in DownloadPeopleList batches and their results, then a QueryPeople
 * check of the faces; deletions in DeletePeopleList batches; listings and checks from PushPeople.
 */
export class Httpv2People {
  private readonly ctx: GatewayContext

  constructor(private readonly devices: Httpv2Devices) {
    this.ctx = devices.ctx
  }

  // ---- people import -----------------------------------------------------------------------------

  startImport(state: DeviceState, job: Job, people: PersonPayload[], partial: boolean): Job | undefined {
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

  outcome(imp: ImportJob, id: string, status: PersonOutcome['status'], message: string, deviceCode?: number): PersonOutcome {
    const p = imp.people.get(id)
    const o: PersonOutcome = { id, name: p?.name, status, action: imp.action ?? (imp.existed.has(id) ? 'updated' : 'added'), message }
    if (deviceCode !== undefined) o.deviceCode = deviceCode
    return o
  }

  async downloadPeople(state: DeviceState, req: GatewayRequest, prev: Endpoint | undefined): Promise<Json> {
    const job = state.job
    const imp = job?.imp
    if (!job || !imp || imp.phase !== 'import') return downloadPeopleAnswer([])
    const last = imp.last
    if (prev === 'downloadPeople' && last && imp.outstanding.includes(last) && !last.received && !imp.reportsAfterLoop) {
      // asked again before reporting the batch: our answer was lost (the reading that reports per batch);
      // after `batchResends` the device is taken to report after its loop (AMBIGUITIES #7) and gets the next batch
      if (last.resends < this.devices.batchResends) {
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
    this.devices.delivered(job)
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

  downloadResult(state: DeviceState, body: Json): Json {
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
  importAnswered(state: DeviceState, job: Job): void {
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
      this.devices.finish(state, job, 'acknowledged', { people: this.ordered(imp), message: importSummary(imp) })
      return
    }
    imp.phase = 'verify'
    job.remote = remoteAnswer({ kind: 'queryPeople', ids: check })
    job.collect = { purpose: 'verify', people: new Map(), expected: new Set(check), handedOut: false, sawKeepalive: false, lastPush: Date.now() }
    job.flags.add('Remote')
  }

  // ---- people delete ---------------------------------------------------------------------------------

  startDelete(state: DeviceState, job: Job): Job | undefined {
    const ids = job.cmd.payload.ids
    const del: DeleteJob = { all: ids === 'all', allGiven: false, allResends: 0, order: [], next: 0, outstanding: [], outcomes: new Map(), reportsAfterLoop: false, loopEnded: false }
    job.del = del
    if (!del.all) {
      if (!Array.isArray(ids)) return this.devices.fail(state, job, 'deletePeople payload has no ids')
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

  deletePeople(state: DeviceState, req: GatewayRequest, prev: Endpoint | undefined): Json {
    const job = state.job
    const del = job?.del
    if (!job || !del) return deletePeopleAnswer([])
    if (del.all) {
      // "DeleteAll 1: 清空所有人员信息"; asked again without a report = our answer was lost
      if (!del.allGiven || (prev === 'deletePeople' && !del.loopEnded && del.allResends < this.devices.batchResends)) {
        if (del.allGiven) del.allResends++
        del.allGiven = true
        this.devices.delivered(job)
        return deleteAllAnswer()
      }
      del.loopEnded = true
      job.flags.delete('DeletePeople')
      return deletePeopleAnswer([])
    }
    const last = del.last
    if (prev === 'deletePeople' && last && del.outstanding.includes(last) && !del.reportsAfterLoop) {
      if (last.resends < this.devices.batchResends) {
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
    this.devices.delivered(job)
    return batch.answer
  }

  deleteResult(state: DeviceState, body: Json): Json {
    const job = state.job
    const del = job?.del
    const r = parseDeleteResult(body)
    if (!job || !del) return okAnswer()
    if (del.all) {
      if (!del.allGiven) return okAnswer()
      if (r.deleteAll) {
        state.people.clear()
        this.devices.finish(state, job, 'acknowledged', { message: 'all people deleted', people: [] })
      } else {
        this.devices.finish(state, job, 'failed', { message: 'the device did not confirm deleting everyone (its result says DeleteAll 0)' })
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

  deleteAnswered(state: DeviceState, job: Job): void {
    const del = job.del!
    const ids = job.cmd.payload.ids as unknown[]
    const ordered = [...new Set(ids.map(String))].map((id) => del.outcomes.get(id)).filter((o): o is PersonOutcome => o !== undefined)
    if (del.next >= del.order.length && del.outstanding.length === 0) {
      const ok = ordered.filter((o) => o.status === 'ok').length
      this.devices.finish(state, job, 'acknowledged', { people: ordered, message: `${ok} of ${ordered.length} deleted` })
    } else {
      this.ctx.progress(job.cmd.id, { people: ordered, message: `${ordered.length} of ${ids.length} answered` })
    }
  }

  // ---- PushPeople: listing and verification ---------------------------------------------------------

  pushPeople(state: DeviceState, req: GatewayRequest, address: string): Reply {
    const p = parsePushPeople(req)
    if ('error' in p) return this.devices.bad('pushPeople', address, p.error, state.name)
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

  checkCollect(state: DeviceState, job: Job): void {
    const c = job.collect!
    if (job.done) return
    if (c.purpose === 'verify' && c.expected && [...c.expected].every((id) => c.people.has(id))) return this.collectDone(state, job)
    const mayEnd = c.handedOut && (c.sawKeepalive || (c.expectedCount !== undefined && c.people.size >= c.expectedCount))
    if (!mayEnd) return
    const quiet = Date.now() - c.lastPush
    if (quiet >= this.devices.pushQuietMs) this.collectDone(state, job)
    else this.devices.arm(job, this.devices.pushQuietMs - quiet, () => this.checkCollect(state, job))
  }

  private collectDone(state: DeviceState, job: Job): void {
    const c = job.collect!
    if (c.purpose === 'list') {
      const people = [...c.people.values()].map((p) => personInfoJson(personInfoFromDetail(p.userId, p.detail!, p.hasFace)))
      this.devices.finish(state, job, 'acknowledged', { data: { people }, message: `${people.length} people` })
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
    this.devices.finish(state, job, 'acknowledged', { people: this.ordered(imp), message: importSummary(imp) })
  }
}

function importSummary(imp: ImportJob): string {
  const all = [...imp.outcomes.values()]
  const ok = all.filter((o) => o.status === 'ok').length
  const ignoredFrom = [...imp.people.values()].some((p) => p.validFrom !== undefined)
  return `${ok} of ${imp.people.size} stored` + (ignoredFrom ? ' (valid_from ignored: httpv2 people have an expiry date only)' : '')
}

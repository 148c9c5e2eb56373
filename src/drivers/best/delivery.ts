/**
 * best command delivery (best.txt 3.14–3.30, both transports):
 * - One command of a device at a time, in queue order. A command may take several device
 *   commands ("steps": users in batches, then cards, then one bioPhoto per face); each step's
 *   cmdId is `{gatewayId}-{command id}-{n}` and its dev.cmd.response finishes that step.
 * - A device that drops its connection (best-w) or logs in again (best-m, or best-w on a new
 *   connection) before answering the step in flight gets that step again when it is back, at
 *   most `maxAttempts` times in all; then the command fails. Not a step whose effect is not
 *   idempotent, which the device may have taken anyway (see lost): a reboot is done when the
 *   device goes away after taking it, and a time sync is sent again only to a device that does
 *   not ask for the time. Nothing waits longer than the command's --timeout (expired by the
 *   gateway; the job here is dropped at the next sweep).
 * Time syncs (the device asks dev.system.sync.time after our command) and user listings (the
 * device uploads the users after our query) are finished here too.
 */
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { readPersonPayload } from '../../gateway/payloads.js'
import { isoWithOffset } from '../../util/time.js'
import type { CommandResult, GatewayContext, QueuedCommand } from '../../types/gateway.js'
import type { PersonOutcome } from '../../types/driver.js'
import {
  CODE, command, infoData, isObject, isoTime, offsetText, parseCmdResponse, personInfoJson, personProblem, rebootCommand, reportedOptions, str, timeAnswer, uploadCmdId, uploadedCards,
  uploadedPhotoPins, uploadedUsers, wireBioPhoto, wireCard, wireUser, type BestMessage, type Json, type PersonPayload,
} from './codec.js'
import { kinds, OPTION_KEYS } from './rules.js'
import { chunk, CLAIMS, type BestCore, type Channel, type DeliveryPart, type Dev, type Job, type ResolvedBestOptions, type Step } from './state.js'

export class Delivery implements DeliveryPart {
  constructor(private readonly core: BestCore) {}

  private get ctx(): GatewayContext {
    return this.core.ctx
  }

  private get o(): ResolvedBestOptions {
    return this.core.o
  }

  /** A job whose command finished elsewhere is dropped; a device with work and a channel gets it. */
  sweep(dev: Dev): void {
    if (dev.job && !dev.job.done && !this.stillPending(dev, dev.job)) this.drop(dev, dev.job)
    if (!dev.job && this.core.channel(dev) && this.ctx.pending(dev.name).length > 0) this.pump(dev)
    else if (dev.job && !dev.job.inflight && !dev.job.sending && this.core.channel(dev)) void this.sendNext(dev, dev.job)
  }

  /**
   * The step in flight was not answered before the device went away or logged in again. That does
   * not mean it did not arrive: over best-m the device's subscription does not depend on its
   * login, and a device takes a command that comes while it logs in. A step whose effect is not
   * idempotent is therefore not sent blindly again: a reboot is taken as done, and a time sync is
   * held back while the device may still ask for the time (it asks at once when it takes the
   * command, 3.30); only a device that does not ask within timeAskMs gets it again.
   */
  lost(dev: Dev, job: Job, why: string): void {
    const sent = job.inflight!
    job.inflight = undefined
    const step = sent.step
    if (step.what === 'reboot') return this.finish(dev, job, 'acknowledged', { message: 'rebooting (the device went away after taking the command)' })
    if (step.what === 'sync' && job.sync!.answered) return this.finish(dev, job, 'acknowledged', { message: `time set to ${job.sync!.answered}` })
    job.attempts++
    if (job.attempts >= this.o.maxAttempts) {
      return this.finish(dev, job, 'failed', { message: `${why}, ${job.attempts} times; giving up`, people: this.outcomesFor(job, `not confirmed: ${why}`) })
    }
    if (step.what === 'sync') {
      job.held = { step, cmdId: sent.cmdId }
      this.ctx.log.info('best time sync in flight when the device went away; sent again only if the device does not ask for the time', { device: dev.name, id: job.cmd.id, reason: why })
      this.arm(job, this.o.timeAskMs, () => {
        job.held = undefined
        void this.sendNext(dev, job)
      })
      return
    }
    this.ctx.log.info('best command in flight was lost; it is sent again when the device is back', { device: dev.name, id: job.cmd.id, attempt: job.attempts, reason: why })
  }

  syncTimeAsked(dev: Dev, ch: Channel, m: BestMessage): void {
    const job = dev.job
    const s = job && !job.done ? job.sync : undefined
    const epochMs = s ? s.epochMs + (Date.now() - s.since) : Date.now()
    const offset = s ? s.offset : this.core.offsetOf(dev.name)
    const r = timeAnswer(m, epochMs, offset)
    ch.send(r)
    this.core.remember(dev, m.mid, r)
    if (job && s) {
      s.answered = isoTime(epochMs, offset)
      this.ctx.setState(dev.name, 'timezone', s.offset)
      this.ctx.delivered(job.cmd.id)
      this.syncProgress(dev, job)
    }
  }

  private syncProgress(dev: Dev, job: Job): void {
    const s = job.sync!
    if (s.responded && s.answered) return this.finish(dev, job, 'acknowledged', { message: `time set to ${s.answered}` })
    // one half came: the other gets timeAskMs
    this.arm(job, this.o.timeAskMs, () => {
      if (s.answered) this.finish(dev, job, 'acknowledged', { message: `time set to ${s.answered} (the device did not confirm the command)` })
      else this.finish(dev, job, 'acknowledged', { message: 'the device accepted the command but did not ask for the time' })
    })
  }

  finishInfo(dev: Dev, job: Job): void {
    const data = this.infoFromState(dev.name)
    if (data) this.finish(dev, job, 'acknowledged', { data, message: 'as last reported by the device' })
  }

  private infoFromState(name: string): Json | undefined {
    const r = this.ctx.state(name, 'report') as { info?: Json; at?: number } | undefined
    if (!r || !isObject(r.info)) return undefined
    const options = this.ctx.state(name, 'options')
    // settings: as reported, or as confirmed since (3.28's meeting-room keys are never reported)
    const option = { ...reportedOptions(r.info), ...(isObject(options) ? options : {}) }
    return infoData(r.info, { reported_at: isoWithOffset(new Date(r.at ?? 0)), timezone: offsetText(this.core.offsetOf(name)), option })
  }

  /** 3.8–3.11 uploads: collected while a user listing is open (matched as uploadCmdId says). */
  dataUpload(dev: Dev, m: BestMessage, answer: (code: string, message: string) => void): void {
    const job = dev.job
    const list = job && !job.done ? job.list : undefined
    const cmdId = uploadCmdId(m)
    const ours = list !== undefined && list.open && (cmdId === '' || cmdId === job!.inflight?.cmdId || cmdId.startsWith(`${this.core.gwId}-${job!.cmd.id}-`))
    if (list && ours) {
      if (m.funcId === 'dev.data.upload.user') for (const u of uploadedUsers(m)) list.users.set(str(u.pin).trim(), u)
      else if (m.funcId === 'dev.data.upload.multiCard') {
        for (const c of uploadedCards(m)) if (!c.lost) list.cards.set(c.pin, [...(list.cards.get(c.pin) ?? []), c.card])
      } else for (const pin of uploadedPhotoPins(m)) list.photos.add(pin)
      list.seen = true
      if (cmdId !== '') list.tagged = true
      answer(CODE.ok, 'success')
      this.listProgress(dev, job!)
      return
    }
    this.ctx.log.debug('best data upload with no listing waiting', { device: dev.name, funcId: m.funcId })
    answer(CODE.ok, 'success')
  }

  onQueued(device: string): void {
    this.core.safe('queue', () => {
      for (const c of this.ctx.pending(device)) {
        if (c.protocol !== 'best' || c.state !== 'queued') continue
        const problem = this.precheck(c)
        if (problem) this.ctx.finish(c.id, 'failed', { message: problem })
        else if (c.kind === 'info') {
          // answered from the device's last dev.report; a device that never reported is waited for
          const data = this.infoFromState(c.device)
          if (data) this.ctx.finish(c.id, 'acknowledged', { data, message: 'as last reported by the device' })
        }
      }
      const dev = this.core.devs.get(device)
      if (dev) this.schedulePump(dev)
    })
  }

  /** Why a command can never work, whatever the device does. */
  private precheck(c: QueuedCommand): string | undefined {
    const p = c.payload
    switch (c.kind) {
      case 'setConfig': {
        const section = String(p.section ?? '')
        if (section !== 'option' && section !== 'json') return `best devices have no config section "${section}" (option, or json)`
        if (!isObject(p.values) || Object.keys(p.values).length === 0) return 'nothing to set'
        return undefined
      }
      case 'enrollFace':
        if (p.capture === true) return 'best devices cannot capture a face on request (best.txt has no such command): enroll with --photo'
        if (typeof p.photoPath !== 'string') return 'enrollFace needs a photo'
        return undefined
      case 'upsertPeople':
        return Array.isArray(p.people) ? undefined : 'upsertPeople payload has no people'
      case 'deletePeople':
        return p.ids === 'all' || Array.isArray(p.ids) ? undefined : 'deletePeople payload has no ids'
      case 'syncTime':
        return Number.isFinite(Number(p.epochMs)) ? undefined : 'syncTime needs epochMs'
      default:
        return kinds.has(c.kind) ? undefined : `best devices cannot ${c.kind}`
    }
  }

  schedulePump(dev: Dev): void {
    setImmediate(() => this.core.safe('pump', () => this.pump(dev)))
  }

  stillPending(dev: Dev, job: Job): boolean {
    return this.ctx.pending(dev.name).some((c) => c.id === job.cmd.id)
  }

  pump(dev: Dev): void {
    if (this.core.stopping) return
    let job = dev.job
    if (job && (job.done || !this.stillPending(dev, job))) {
      this.drop(dev, job)
      job = undefined
    }
    if (!job) {
      for (const c of this.ctx.pending(dev.name)) {
        if (c.protocol !== 'best') continue
        job = this.build(dev, c)
        if (job) break
      }
      dev.job = job
    }
    if (job) void this.sendNext(dev, job)
  }

  /** A job whose command finished elsewhere (expired): forget it. */
  drop(dev: Dev, job: Job): void {
    job.done = true
    if (job.timer) clearTimeout(job.timer)
    for (const f of job.files) this.ctx.unpublish(f)
    this.core.relay.release(dev, job)
    if (dev.job === job) dev.job = undefined
  }

  private newJob(cmd: QueuedCommand): Job {
    return { cmd, steps: [], next: 0, seq: 0, sending: false, attempts: 0, people: new Map(), outcomes: new Map(), order: [], enrollOnly: false, files: [], claimed: false, delivered: false, done: false }
  }

  /** Sets a command up as steps; undefined when it finished right away. */
  private build(dev: Dev, cmd: QueuedCommand): Job | undefined {
    const job = this.newJob(cmd)
    const p = cmd.payload
    const problem = this.precheck(cmd)
    if (problem) return void this.finish(dev, job, 'failed', { message: problem })
    switch (cmd.kind) {
      case 'reboot':
        if (cmd.state === 'delivered') return void this.finish(dev, job, 'acknowledged', { message: 'delivered before the gateway restarted; assumed received' })
        job.steps.push({ funcId: 'cmd.control.reboot', what: 'reboot', ids: [], imme: true, params: { operator: 'doorctl' } })
        return job
      case 'syncTime': {
        const offset = Number(p.utcOffsetMinutes)
        job.sync = { epochMs: Number(p.epochMs), offset: Number.isFinite(offset) ? offset : this.core.offsetOf(dev.name), since: cmd.createdAt, responded: false }
        job.steps.push({ funcId: 'cmd.system.sync.time', what: 'sync', ids: [], imme: true })
        return job
      }
      case 'info': {
        const data = this.infoFromState(dev.name)
        if (data) return void this.finish(dev, job, 'acknowledged', { data, message: 'as last reported by the device' })
        return job // waits for the device's dev.report
      }
      case 'setConfig': {
        const values = p.values as Json
        const option: Json = {}
        for (const [k, v] of Object.entries(values)) option[k] = typeof v === 'string' ? v : JSON.stringify(v)
        const unknown = Object.keys(option).filter((k) => !OPTION_KEYS.includes(k))
        if (unknown.length > 0) this.ctx.log.info('best option keys the document does not list are passed through', { device: dev.name, keys: unknown })
        job.steps.push({ funcId: 'cmd.option.set', what: 'option', ids: [], params: { option } })
        return job
      }
      case 'upsertPeople':
        return this.buildImport(dev, job, (p.people as unknown[]).filter(isObject).map(readPersonPayload), false)
      case 'enrollFace':
        return this.buildImport(dev, job, [{ id: String(p.id ?? ''), photoPath: String(p.photoPath) }], true)
      case 'deletePeople': {
        if (p.ids === 'all') {
          job.steps.push({ funcId: 'cmd.data.clear.user', what: 'clear', ids: [] })
          return job
        }
        const ids = [...new Set((p.ids as unknown[]).map(String))]
        job.order = ids
        if (ids.length === 0) return void this.finish(dev, job, 'acknowledged', { people: [], message: 'nobody to delete' })
        for (const batch of chunk(ids, this.o.idsPerCommand)) job.steps.push({ funcId: 'cmd.data.delete.user', what: 'delete', ids: batch })
        return job
      }
      case 'listPeople':
        job.list = { users: new Map(), cards: new Map(), photos: new Set(), open: false, responded: false, tagged: false, seen: false }
        // "pin 为空时默认查询所有人员"
        job.steps.push({ funcId: 'cmd.data.query.user', what: 'query', ids: [], params: { pin: '' } })
        return job
      default:
        return void this.finish(dev, job, 'failed', { message: `best devices cannot ${cmd.kind}` })
    }
  }

  private buildImport(dev: Dev, job: Job, people: PersonPayload[], enrollOnly: boolean): Job | undefined {
    job.enrollOnly = enrollOnly
    const valid: PersonPayload[] = []
    for (const p of people) {
      if (job.people.has(p.id)) continue
      job.people.set(p.id, p)
      job.order.push(p.id)
      const problem = personProblem(p)
      if (problem) job.outcomes.set(p.id, { id: p.id, name: p.name, status: 'failed', action: 'store', message: `not sent: ${problem}` })
      else valid.push(p)
    }
    if (!enrollOnly) {
      for (const batch of chunk(valid, this.o.usersPerCommand)) job.steps.push({ funcId: 'cmd.data.update.user', what: 'user', ids: batch.map((p) => p.id) })
      const withCards = valid.filter((p) => p.card !== undefined && p.card !== '')
      for (const batch of chunk(withCards, this.o.idsPerCommand)) job.steps.push({ funcId: 'cmd.data.update.multiCard', what: 'card', ids: batch.map((p) => p.id) })
    }
    for (const p of valid) if (p.photoPath) job.steps.push({ funcId: 'cmd.data.update.bioPhoto', what: 'photo', ids: [p.id] })
    if (job.steps.length === 0) return void this.finish(dev, job, 'acknowledged', { people: this.ordered(job), message: this.importSummary(job) })
    return job
  }

  /** Step ids still worth sending: cards and photos only for people stored. */
  private liveIds(job: Job, step: Step): string[] {
    if (step.what !== 'card' && step.what !== 'photo') return step.ids
    return step.ids.filter((id) => job.outcomes.get(id)?.status !== 'failed')
  }

  /** The params of a step, built when it is sent (passwords hashed, photos published). */
  private async stepParams(dev: Dev, job: Job, step: Step, ch: Channel): Promise<Json> {
    const ids = this.liveIds(job, step)
    switch (step.what) {
      case 'user': {
        const offset = this.core.offsetOf(dev.name)
        return { users: ids.map((id) => wireUser(job.people.get(id)!, offset)) }
      }
      case 'card':
        return { multiCards: ids.map((id) => wireCard(id, job.people.get(id)!.card!)) }
      case 'photo': {
        const person = job.people.get(ids[0])!
        const data = await readFile(person.photoPath!)
        const name = `best-${job.cmd.id}-${randomBytes(6).toString('hex')}.jpg`
        job.files.push(name)
        const url = this.ctx.publish(name, data, 'image/jpeg', ch.host)
        return { bioPhotos: [wireBioPhoto(person.id, url)] }
      }
      case 'delete':
        return { pins: ids }
      default:
        return step.params ?? {}
    }
  }

  async sendNext(dev: Dev, job: Job): Promise<void> {
    if (job.done || job.inflight || job.held || job.sending || this.core.stopping) return
    const ch = this.core.channel(dev)
    if (!ch) return
    while (job.next < job.steps.length && this.liveIds(job, job.steps[job.next]).length === 0 && job.steps[job.next].ids.length > 0) job.next++
    if (job.next >= job.steps.length) return this.stepsDone(dev, job)
    const step = job.steps[job.next]
    job.sending = true
    try {
      const claim = CLAIMS[step.what]
      if (ch.kind === 'mqtt' && claim && !job.claimed) await this.core.relay.claim(dev, job, claim)
      let params: Json
      try {
        params = await this.stepParams(dev, job, step, ch)
      } catch (err) {
        // e.g. a photo file that went away since the CSV was checked: that person fails, the rest goes on
        for (const id of this.liveIds(job, step)) this.fail(job, id, step, `not sent: ${(err as Error).message}`)
        job.next++
        job.sending = false
        return this.sendNext(dev, job)
      }
      if (!job.delivered) {
        // its first frame goes out once this gateway's claim of the command is committed (on a shared store another gateway may have it)
        await this.ctx.durable(() => this.ctx.delivered(job.cmd.id))
        job.delivered = true
      }
      const now = this.core.channel(dev)
      if (job.done || dev.job !== job || !now || now.session !== ch.session) return
      const cmdId = `${this.core.gwId}-${job.cmd.id}-${++job.seq}`
      job.inflight = { step, cmdId, session: now.session }
      if (job.list && step.what === 'query') job.list.open = true
      now.send(step.what === 'reboot' ? rebootCommand(cmdId) : command(step.funcId, cmdId, params, { imme: step.imme }))
      this.ctx.log.debug('best command sent', { device: dev.name, id: job.cmd.id, funcId: step.funcId, cmdId, via: now.kind })
    } catch (err) {
      this.ctx.log.warn('best could not send a command; retrying on the next contact', { device: dev.name, id: job.cmd.id, error: String(err) })
    } finally {
      job.sending = false
    }
  }

  cmdResponse(dev: Dev, m: BestMessage): void {
    const r = parseCmdResponse(m)
    const job = dev.job
    // the answer to the step in flight, or to one held back after a new login (the device did take it)
    const sent = job?.inflight?.cmdId === r.cmdId ? job.inflight : job?.held?.cmdId === r.cmdId ? job.held : undefined
    if (!job || job.done || !sent) {
      this.ctx.log.debug('best answer to no command in flight', { device: dev.name, cmdId: r.cmdId, code: r.code })
      return
    }
    const step = sent.step
    job.inflight = undefined
    job.held = undefined
    job.next++
    const why = r.message !== '' ? r.message : `code ${r.code}`
    const failed = (message: string) => this.finish(dev, job, 'failed', { message, deviceCode: r.code })
    switch (step.what) {
      case 'reboot':
        return r.ok ? this.finish(dev, job, 'acknowledged', { message: 'rebooting' }) : failed(why)
      case 'option': {
        if (!r.ok) return failed(why)
        const option = (step.params?.option ?? {}) as Json
        const known = this.ctx.state(dev.name, 'options')
        this.ctx.setState(dev.name, 'options', { ...(isObject(known) ? known : {}), ...option })
        return this.finish(dev, job, 'acknowledged', { message: `set ${Object.keys(option).join(', ')}`, data: { option } })
      }
      case 'clear':
        if (!r.ok) return failed(why)
        this.ctx.setState(dev.name, 'faces', undefined)
        return this.finish(dev, job, 'acknowledged', { people: [], message: 'all people deleted' })
      case 'sync':
        if (!r.ok) return failed(why)
        job.sync!.responded = true
        return this.syncProgress(dev, job)
      case 'query':
        if (!r.ok) return failed(why)
        job.list!.responded = true
        return this.listProgress(dev, job)
      case 'user':
      case 'delete': {
        const ids = this.liveIds(job, step)
        if (r.ok) {
          for (const id of ids) {
            const p = job.people.get(id)
            job.outcomes.set(id, step.what === 'user'
              ? { id, name: p?.name, status: 'ok', action: 'stored', message: 'stored' }
              : { id, status: 'ok', action: 'deleted', message: 'deleted' })
          }
          if (step.what === 'delete') this.forgetFaces(dev, ids)
        } else if (ids.length > 1) {
          // the answer covers the batch: ask again one by one for each person's own reason
          job.steps.splice(job.next, 0, ...ids.map((id) => ({ ...step, ids: [id] })))
        } else for (const id of ids) this.fail(job, id, step, why, r.code)
        break
      }
      case 'card':
        if (!r.ok) for (const id of this.liveIds(job, step)) this.fail(job, id, step, `stored, but the device refused the card: ${why}`, r.code)
        break
      case 'photo': {
        const id = step.ids[0]
        if (r.ok) {
          const o = job.outcomes.get(id)
          job.outcomes.set(id, job.enrollOnly || !o
            ? { id, status: 'ok', action: 'enrolled', message: 'face enrolled' }
            : { ...o, message: `${o.message}, face enrolled` })
          const faces = new Set((this.ctx.state(dev.name, 'faces') as string[] | undefined) ?? [])
          faces.add(id)
          this.ctx.setState(dev.name, 'faces', [...faces])
        } else this.fail(job, id, step, job.enrollOnly ? why : `stored, but the device refused the face photo: ${why}`, r.code)
        break
      }
    }
    if (job.order.length > 0) this.ctx.progress(job.cmd.id, { people: this.ordered(job), message: `${job.outcomes.size} of ${job.order.length} answered` })
    void this.sendNext(dev, job)
  }

  private fail(job: Job, id: string, step: Step, message: string, deviceCode?: string): void {
    const p = job.people.get(id)
    const action = step.what === 'delete' ? 'delete' : step.what === 'photo' ? 'enroll' : 'store'
    job.outcomes.set(id, { id, name: p?.name, status: 'failed', action, message, ...(deviceCode !== undefined ? { deviceCode } : {}) })
  }

  private forgetFaces(dev: Dev, ids: string[]): void {
    const faces = (this.ctx.state(dev.name, 'faces') as string[] | undefined) ?? []
    const left = faces.filter((f) => !ids.includes(f))
    if (left.length !== faces.length) this.ctx.setState(dev.name, 'faces', left.length > 0 ? left : undefined)
  }

  /** Every step answered: people commands finish with one outcome per person. */
  private stepsDone(dev: Dev, job: Job): void {
    if (job.order.length > 0 || job.cmd.kind === 'upsertPeople' || job.cmd.kind === 'enrollFace' || job.cmd.kind === 'deletePeople') {
      const message = job.cmd.kind === 'deletePeople'
        ? `${[...job.outcomes.values()].filter((o) => o.status === 'ok').length} of ${job.order.length} deleted`
        : this.importSummary(job)
      this.finish(dev, job, 'acknowledged', { people: this.ordered(job), message })
    }
  }

  private ordered(job: Job): PersonOutcome[] {
    return job.order.map((id) => job.outcomes.get(id)).filter((o): o is PersonOutcome => o !== undefined)
  }

  /** Outcomes of a command that ends early: the people not answered for get `why`. */
  private outcomesFor(job: Job, why: string): PersonOutcome[] | undefined {
    if (job.order.length === 0) return undefined
    return job.order.map((id) => job.outcomes.get(id) ?? { id, name: job.people.get(id)?.name, status: 'timeout', message: why })
  }

  private importSummary(job: Job): string {
    const ok = [...job.outcomes.values()].filter((o) => o.status === 'ok').length
    if (job.enrollOnly) return ok === 1 ? 'face enrolled' : 'face not enrolled'
    const dropped = [...job.people.values()].some((p) => (p.phone ?? '') !== '' || (p.department ?? '') !== '')
    return `${ok} of ${job.people.size} stored` + (dropped ? ' (phone and department are not sent: best users have no such fields)' : '')
  }

  private listProgress(dev: Dev, job: Job): void {
    const list = job.list!
    if (job.done) return
    // a device that tags its uploads with our cmdId sends them all before its answer: done now
    if (list.responded && list.tagged) return this.finishList(dev, job)
    if (!list.responded && !list.seen) return
    // after the answer, uploads that follow it get a short quiet period; a device that uploads
    // but never answers gets a long one (its pages may come slowly), then what it sent is the list
    this.arm(job, list.responded ? this.o.listQuietMs : this.o.listQuietMs * 10, () => this.finishList(dev, job))
  }

  private finishList(dev: Dev, job: Job): void {
    const list = job.list!
    const clock = this.core.clockOf(dev.name)
    const faces = new Set((this.ctx.state(dev.name, 'faces') as string[] | undefined) ?? [])
    const people = [...list.users.entries()]
      .filter(([pin]) => pin !== '')
      .map(([pin, u]) => personInfoJson(u, clock, list.cards.get(pin) ?? [], list.photos.has(pin) || faces.has(pin)))
    this.finish(dev, job, 'acknowledged', { data: { people }, message: `${people.length} people` })
  }

  private arm(job: Job, ms: number, fn: () => void): void {
    if (job.timer) clearTimeout(job.timer)
    job.timer = setTimeout(() => {
      job.timer = undefined
      if (!job.done) this.core.safe('timer', fn)
    }, Math.max(0, ms))
    job.timer.unref()
  }

  private finish(dev: Dev, job: Job, state: 'acknowledged' | 'failed', result: CommandResult): void {
    if (job.done) return
    this.drop(dev, job)
    this.ctx.finish(job.cmd.id, state, result)
    this.ctx.log.debug('best command finished', { device: dev.name, id: job.cmd.id, kind: job.cmd.kind, state })
    this.schedulePump(dev)
  }

}

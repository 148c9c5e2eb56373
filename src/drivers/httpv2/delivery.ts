import type { GatewayContext, GatewayRequest, QueuedCommand } from '../../types/gateway.js'
import type { OpenMode, PersonOutcome } from '../../types/driver.js'
import { readPersonPayload } from '../../gateway/payloads.js'
import {
  downloadSettingAnswer, filePart, isObject, keepaliveAnswer, okAnswer, OPEN_CODES, parseRegisterResult, parseWorkSettings, registerMessage,
  remoteAnswer, settingValues, timeSettings, workSettingsData, type Flag, type Json,
} from './codec.js'
import type { DeviceState, Httpv2Devices, Job, Reply } from './devices.js'
import type { Httpv2People } from './people.js'
import { personRules, USER_ID_RE } from './rules.js'

const FIRE_AND_FORGET = new Set(['open', 'reboot', 'repostRecords', 'syncTime', 'setConfig'])

/**
 * Queued commands become keepalive flags and the answers of the endpoints those flags send the
 * device to (delivery rules: gateway.ts); hand-overs without a report of their own are
 * acknowledged by what the device does next.
 */
export class Httpv2Delivery {
  private readonly ctx: GatewayContext

  constructor(private readonly devices: Httpv2Devices, private readonly people: Httpv2People) {
    this.ctx = devices.ctx
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
      this.devices.finish(state, job, 'acknowledged', { message: 'delivered before the gateway restarted; assumed received' })
      return undefined
    }
    switch (cmd.kind) {
      case 'open': {
        const mode = p.mode as OpenMode
        if (!(mode in OPEN_CODES)) return this.devices.fail(state, job, `unknown open mode "${String(p.mode)}"`)
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
        if (!Number.isFinite(epochMs) || !Number.isFinite(offset)) return this.devices.fail(state, job, 'syncTime needs epochMs and utcOffsetMinutes')
        const t = timeSettings(epochMs, offset)
        job.settings = t.values
        job.ackMessage = t.note
        job.flags.add('SyncParameter')
        return job
      }
      case 'setConfig': {
        const v = settingValues(String(p.section ?? ''), isObject(p.values) ? p.values : {})
        if ('error' in v) return this.devices.fail(state, job, v.error)
        job.settings = v.values
        job.ackMessage = `set ${Object.keys(v.values).join(', ')}`
        job.flags.add('SyncParameter')
        return job
      }
      case 'enrollFace': {
        const id = String(p.id ?? '')
        if (!USER_ID_RE.test(id)) return this.devices.fail(state, job, `id "${id}" is not an httpv2 UserID (${personRules.idPattern!.description})`)
        if (p.capture === true) {
          job.remote = remoteAnswer({ kind: 'registerFace', userId: id })
          job.flags.add('Remote')
          return job
        }
        if (typeof p.photoPath !== 'string') return this.devices.fail(state, job, 'enrollFace needs a photo or capture')
        return this.people.startImport(state, job, [{ id, photoPath: p.photoPath }], true)
      }
      case 'upsertPeople': {
        if (!Array.isArray(p.people)) return this.devices.fail(state, job, 'upsertPeople payload has no people')
        return this.people.startImport(state, job, (p.people as unknown[]).filter(isObject).map(readPersonPayload), false)
      }
      case 'deletePeople':
        return this.people.startDelete(state, job)
    }
  }

  /** Fails queued commands that cannot work whatever the device does. */
  precheck(device: string): void {
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

  keepalive(state: DeviceState): Json {
    let job = this.current(state)
    if (job?.collect && job.collect.handedOut) {
      job.collect.sawKeepalive = true
      this.people.checkCollect(state, job)
    }
    if (job?.imp && job.imp.phase === 'import' && job.imp.loopEnded && job.imp.outstanding.length > 0) {
      // the loop ended and a keepalive came: batches never reported will not be (AMBIGUITIES #7)
      const imp = job.imp
      for (const b of imp.outstanding.splice(0)) {
        for (const id of b.ids) imp.outcomes.set(id, this.people.outcome(imp, id, 'timeout', 'the device took this person but reported no result for it'))
      }
      this.people.importAnswered(state, job)
    }
    if (job?.del && job.del.loopEnded) {
      const del = job.del
      if (del.all) this.devices.finish(state, job, 'failed', { message: 'the device did not confirm deleting everyone' })
      else if (del.outstanding.length > 0) {
        for (const b of del.outstanding.splice(0)) for (const id of b.ids) del.outcomes.set(id, { id, status: 'timeout', action: 'delete', message: 'the device reported no result for this person' })
        this.people.deleteAnswered(state, job)
      }
    }
    job = this.current(state)
    const flags = job ? [...job.flags] : []
    if (job && job.flags.has('UploadWorkParameter') && job.cmd.kind === 'info') this.devices.delivered(job)
    if (job?.cmd.kind === 'listPeople') job.flags.delete('UploadWorkParameter')
    return keepaliveAnswer(flags)
  }

  // ---- hand-overs -----------------------------------------------------------------------------

  remoteCommand(state: DeviceState, repeat: Json | undefined): Json {
    if (repeat) {
      // the device lost our answer and asks again: the same command, not the next one
      state.last!.answer = repeat
      const job = state.job
      if (job && job.ackVia === 'remote') this.devices.arm(job, this.devices.ackQuietMs, () => this.devices.finish(state, job, 'acknowledged', { message: job.ackMessage }))
      return repeat
    }
    const job = state.job
    if (!job || !job.remote) return okAnswer()
    const answer = job.remote
    job.remote = undefined
    job.flags.delete('Remote')
    job.flags.delete('UploadWorkParameter')
    this.devices.delivered(job)
    state.last!.answer = answer
    if (FIRE_AND_FORGET.has(job.cmd.kind)) {
      job.ackVia = 'remote'
      this.devices.arm(job, this.devices.ackQuietMs, () => this.devices.finish(state, job, 'acknowledged', { message: job.ackMessage }))
    }
    if (job.collect) {
      job.collect.handedOut = true
      job.collect.lastPush = Date.now()
      this.people.checkCollect(state, job)
    }
    return answer
  }

  downloadSetting(state: DeviceState, sn: string, repeat: Json | undefined): Json {
    if (repeat) {
      state.last!.answer = repeat
      const job = state.job
      if (job && job.ackVia === 'downloadSetting') this.devices.arm(job, this.devices.ackQuietMs, () => this.devices.finish(state, job, 'acknowledged', { message: job.ackMessage }))
      return repeat
    }
    const job = state.job
    if (!job || !job.settings) return okAnswer()
    // only the values to change: the device keeps what the answer does not name
    const answer = downloadSettingAnswer(sn, job.settings)
    job.settings = undefined
    job.flags.delete('SyncParameter')
    this.devices.delivered(job)
    state.last!.answer = answer
    job.ackVia = 'downloadSetting'
    this.devices.arm(job, this.devices.ackQuietMs, () => this.devices.finish(state, job, 'acknowledged', { message: job.ackMessage }))
    return answer
  }

  uploadSetting(state: DeviceState, body: Json): Json {
    const w = parseWorkSettings(body)
    if (w.timeZoneHours !== undefined) state.tzHours = w.timeZoneHours
    if (w.keepaliveMs !== undefined) state.keepaliveMs = w.keepaliveMs
    let job = state.job
    if (!job) {
      // a device uploads its settings at boot and on change: that answers a queued `info` too
      const head = this.ctx.pending(state.name)[0]
      if (head?.kind === 'info') job = state.job = this.start(state, head)
    }
    if (job?.cmd.kind === 'info') {
      this.devices.delivered(job)
      this.devices.finish(state, job, 'acknowledged', { data: workSettingsData(w), message: 'work settings received' })
    } else if (job?.collect?.purpose === 'list' && w.peopleCount !== undefined) {
      job.collect.expectedCount = w.peopleCount
      this.people.checkCollect(state, job)
    }
    return okAnswer()
  }

  // ---- enrollment by capture, snapshot -----------------------------------------------------------------

  registerResult(state: DeviceState, req: GatewayRequest, address: string): Reply {
    const r = parseRegisterResult(req)
    const job = state.job
    if (r === undefined) {
      // the RemoteCommand table sends snapshots here, while UploadSnapshoot exists too: a photo without ResultJson is a snapshot
      if (job?.cmd.kind === 'snapshot') return this.snapshot(state, req)
      return this.devices.bad('registerResult', address, 'ResultJson missing', state.name)
    }
    if ('error' in r) return this.devices.bad('registerResult', address, r.error, state.name)
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
    this.devices.finish(state, job, 'acknowledged', { people: [outcome], message: outcome.message, data })
    return okAnswer()
  }

  snapshot(state: DeviceState, req: GatewayRequest): Json {
    const job = state.job
    const photo = filePart(req, ['Photo', 'pic', 'Snapshoot', 'Snapshot'])
    if (job?.cmd.kind !== 'snapshot') {
      this.ctx.log.debug('httpv2 snapshot with no snapshot command', { device: state.name })
      return okAnswer()
    }
    if (!photo) this.devices.finish(state, job, 'failed', { message: 'the device sent its snapshot without an image' })
    else this.devices.finish(state, job, 'acknowledged', { data: { photoBase64: photo.toString('base64'), bytes: photo.length }, message: `snapshot of ${photo.length} bytes` })
    return okAnswer()
  }
}

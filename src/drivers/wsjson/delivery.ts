import type { GatewayContext, QueuedCommand } from '../../types/gateway.js'
import { isoWithOffset } from '../../util/time.js'
import { isObject, terminalTypeName, type Json } from './codec.js'
import { Cancelled, GiveUp, type DeviceState, type Job, type Step, type WsjsonDevices } from './devices.js'
import { toPerson, type WsjsonPeople } from './people.js'
import type { WsjsonRecords } from './records.js'
import { CHECK_FACE_KIND, FETCH_EVENTS_KIND, kinds, unsupportedWhy } from './rules.js'

/** How long a command whose claim failed waits before it is claimed again (ms). */
const CLAIM_RETRY_MS = 1000

/** Queued commands, one at a time per device in queue order, started once it is registered. */
export class WsjsonDelivery {
  private readonly ctx: GatewayContext

  constructor(private readonly devices: WsjsonDevices, private readonly people: WsjsonPeople, private readonly records: WsjsonRecords) {
    this.ctx = devices.ctx
  }

  queued(device: string): void {
    try {
      this.precheck(device)
      const state = this.devices.states.get(device)
      if (state) this.pump(state)
    } catch (err) {
      this.ctx.log.warn('wsjson could not take a queued command', { device, error: String(err) })
    }
  }

  /** Commands no wsjson device can carry out fail when queued, not when the device next connects. */
  private precheck(device: string): void {
    for (const c of this.ctx.pending(device)) {
      if (c.protocol !== 'wsjson' || c.state !== 'queued' || handled(c)) continue
      this.ctx.finish(c.id, 'failed', { message: unsupportedWhy[c.kind] ?? `wsjson devices cannot carry out ${c.kind}` })
    }
  }

  /** A job whose command is no longer pending (expired, finished elsewhere) is dropped with its steps. */
  reap(state: DeviceState): void {
    const job = state.job
    if (!job || job.cancelled || this.devices.alive(state, job)) return
    this.cancel(state, job)
  }

  private cancel(state: DeviceState, job: Job): void {
    job.cancelled = true
    const mine = (s: Step) => s.jobId === job.cmd.id
    for (const s of state.waiting.filter(mine)) s.reject(new Cancelled('command no longer pending'))
    state.waiting = state.waiting.filter((s) => !mine(s))
    const step = state.inflight
    if (step && mine(step)) {
      if (step.timer) clearTimeout(step.timer)
      state.inflight = undefined
      step.reject(new Cancelled('command no longer pending'))
      this.devices.flush(state)
    }
    if (state.job === job) state.job = undefined
  }

  /** Starts the oldest pending command when the device is connected and nothing else runs. */
  pump(state: DeviceState): void {
    if (this.devices.stopped) return
    this.reap(state)
    if (state.job || !state.conn) return
    const cmd = this.ctx.pending(state.name).find((c) => c.protocol === 'wsjson')
    if (!cmd) return
    const job: Job = { cmd, cancelled: false }
    state.job = job
    void this.execute(state, job)
      .catch((err: Error) => {
        if (err instanceof Cancelled) return
        if (err instanceof GiveUp) this.devices.finish(job, 'failed', { message: err.message })
        else {
          this.ctx.log.warn('wsjson command failed', { device: state.name, id: cmd.id, kind: cmd.kind, error: String(err) })
          this.devices.finish(job, 'failed', { message: err.message })
        }
      })
      .finally(() => {
        this.devices.savePeople(state)
        if (state.job === job) state.job = undefined
        // a claim that failed (the store is down) is tried again after a pause, not in a loop
        if (job.unclaimed) setTimeout(() => this.pump(state), CLAIM_RETRY_MS).unref()
        else setImmediate(() => this.pump(state))
      })
  }

  private async execute(state: DeviceState, job: Job): Promise<void> {
    const p = job.cmd.payload
    this.ctx.log.debug('wsjson command started', { device: state.name, id: job.cmd.id, kind: job.cmd.kind })
    switch (job.cmd.kind as string) {
      case 'info':
        return this.devices.finish(job, 'acknowledged', { data: this.info(state), message: 'from the device\'s register message' })
      case 'upsertPeople':
        if (!Array.isArray(p.people)) return this.devices.finish(job, 'failed', { message: 'upsertPeople payload has no people' })
        return this.people.upsert(state, job, (p.people as unknown[]).filter(isObject).map(toPerson))
      case 'enrollFace':
        return this.people.enroll(state, job)
      case 'deletePeople':
        return this.people.remove(state, job)
      case 'listPeople':
        return this.people.list(state, job)
      case CHECK_FACE_KIND:
        return this.people.checkFace(state, job)
      case FETCH_EVENTS_KIND:
        return this.records.fetchEvents(state, job)
      default:
        return this.devices.finish(job, 'failed', { message: unsupportedWhy[job.cmd.kind] ?? `wsjson devices cannot carry out ${job.cmd.kind}` })
    }
  }

  private info(state: DeviceState): Json {
    const r = state.register
    const data: Json = {
      sn: r?.sn ?? state.entry.sn ?? '', ip: r?.ip ?? '', mac: r?.mac ?? '', type: r?.type ?? '', terminal: terminalTypeName(r?.type ?? ''),
      heartbeat_seconds: this.devices.heartbeatSeconds, registered_at: r ? isoWithOffset(new Date(r.at)) : null, address: r?.address ?? '',
    }
    if (state.offset !== undefined) data.utc_offset_minutes = state.offset
    return data
  }
}

function handled(c: QueuedCommand): boolean {
  return kinds.has(c.kind) || ((c.kind as string) === FETCH_EVENTS_KIND && Array.isArray(c.payload.eventIds))
}

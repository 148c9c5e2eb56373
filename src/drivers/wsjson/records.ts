import type { GatewayContext } from '../../types/gateway.js'
import { accessRecord, CODE, deviceUser, parseQueriedEvent, queryEventContent, response, type DeviceEvent, type Json } from './codec.js'
import { Cancelled, GiveUp, type Conn, type DeviceState, type Job, type WsjsonDevices } from './devices.js'
import { unsupportedWhy } from './rules.js'

/** Events (207): records spooled before the device is answered, details fetched with queryEvent (208); enrolments noted. */
export class WsjsonRecords {
  private readonly ctx: GatewayContext

  constructor(private readonly devices: WsjsonDevices) {
    this.ctx = devices.ctx
  }

  event(state: DeviceState, conn: Conn, e: DeviceEvent): void {
    if (e.type === '2') {
      const u = deviceUser(e.data)
      if (!u) {
        this.ctx.log.warn('wsjson enrolment event without userId', { device: state.name, eventid: e.eventid })
        this.devices.reply(conn, response(CODE.error, 'enrolment event (type 2) without userId'))
        return
      }
      this.devices.people(state).set(u.userId, { name: u.name, user: u.user, role: u.role, hasPhoto: u.hasPhoto, enrolledAt: Date.now() })
      state.peopleDirty = true
      this.ctx.log.info('wsjson person enrolled on the device', { device: state.name, user: u.userId, name: u.name, face: u.hasPhoto })
      this.devices.reply(conn, response(CODE.ok), { committed: this.ctx.durable(() => this.devices.savePeople(state)), failed: (err) => this.notStored(state, e, err) })
      return
    }
    if (e.type !== '1' && e.type !== '') {
      this.ctx.log.info('wsjson event of a type the document does not define; acknowledged and not stored', { device: state.name, eventid: e.eventid, type: e.type })
      this.devices.reply(conn, response(CODE.ok))
      return
    }
    if (e.incomplete) {
      // catch-up: the details are asked for with queryEvent (3.1.6) once the device heard we have the event
      this.devices.reply(conn, response(CODE.ok))
      this.ctx.log.info('wsjson event without details; fetching it with queryEvent', { device: state.name, eventid: e.eventid })
      void this.fetchEvent(state, e.eventid).catch((err: Error) => {
        if (!(err instanceof Cancelled)) this.ctx.log.warn('wsjson could not fetch an event', { device: state.name, eventid: e.eventid, error: err.message })
      })
      return
    }
    // answered once committed (with its photo); else with an error, and the device sends it again
    this.devices.reply(conn, response(CODE.ok), { committed: this.ctx.durable(() => this.spool(state, e)), failed: (err) => this.notStored(state, e, err) })
  }

  private notStored(state: DeviceState, e: DeviceEvent, err: Error): Json {
    this.ctx.log.warn('wsjson could not store an event; the device will send it again', { device: state.name, eventid: e.eventid, error: String(err) })
    return response(CODE.error, 'could not store the event, send it again')
  }

  /** Durable before the device hears success; a re-sent event (same eventid) is stored once. */
  private spool(state: DeviceState, e: DeviceEvent): boolean {
    const people = this.devices.people(state)
    const rec = accessRecord(e, {
      device: state.name, receivedAt: Date.now(), zone: state.entry.tz, offsetMinutes: state.offset, terminalType: state.register?.type,
      nameOf: (id) => people.get(id)?.name || undefined,
    })
    const fresh = this.ctx.spool(rec)
    if (!fresh) this.ctx.log.debug('wsjson duplicate event', { device: state.name, eventid: e.eventid })
    return fresh
  }

  async fetchEvent(state: DeviceState, eventid: string, jobId?: number): Promise<boolean> {
    const a = await this.devices.call(state, 'queryEvent', queryEventContent(eventid), jobId)
    if (!a.ok) throw new Error(`the device refused queryEvent ${eventid}: ${a.reason}`)
    const e = parseQueriedEvent(a.body)
    if ('error' in e) throw new Error(`queryEvent ${eventid}: ${e.error}`)
    if (e.type === '2') throw new Error(`event ${eventid} is an enrolment, not an access record`)
    return this.ctx.durable(() => this.spool(state, { ...e, eventid: e.eventid || eventid }))
  }

  async fetchEvents(state: DeviceState, job: Job): Promise<void> {
    const ids = job.cmd.payload.eventIds
    if (!Array.isArray(ids) || ids.length === 0) return this.devices.finish(job, 'failed', { message: unsupportedWhy.repostRecords! })
    let fresh = 0
    const failures: string[] = []
    for (const id of ids.map(String)) {
      this.devices.check(state, job)
      try {
        if (await this.fetchEvent(state, id, job.cmd.id)) fresh++
      } catch (err) {
        if (err instanceof Cancelled || err instanceof GiveUp) throw err
        failures.push((err as Error).message)
      }
    }
    const message = `${ids.length - failures.length} of ${ids.length} events fetched, ${fresh} new${failures.length > 0 ? `; ${failures.join('; ')}` : ''}`
    this.devices.finish(job, failures.length === ids.length ? 'failed' : 'acknowledged', { message, data: { fetched: ids.length - failures.length, new: fresh, failed: failures } })
  }
}

import type { GatewayContext, GatewayRequest } from '../../types/gateway.js'
import { authorizationAnswer, deviceClock, errorAnswer, identifyRecord, okAnswer, parseRecordUpload, systemRecords, type Json } from './codec.js'
import type { DeviceState, Httpv2Devices, Reply } from './devices.js'

/** Records and online decisions: uploads spooled (durably) before the device hears success; RequestAuthorization by serve --authorize. */
export class Httpv2Records {
  private readonly ctx: GatewayContext

  constructor(private readonly devices: Httpv2Devices) {
    this.ctx = devices.ctx
  }

  identifyRecord(state: DeviceState, req: GatewayRequest, address: string): Reply {
    const u = parseRecordUpload(req)
    if ('error' in u) return this.devices.bad('identifyRecord', address, u.error, state.name)
    const rec = identifyRecord(state.name, u, deviceClock(state.entry.tz, state.tzHours))
    if ('error' in rec) return this.devices.bad('identifyRecord', address, rec.error, state.name)
    try {
      // durable before the device hears success; a retried record (same SN, RecordID) is stored once and answered success
      const fresh = this.ctx.spool(rec)
      if (!fresh) this.ctx.log.debug('httpv2 duplicate record', { device: state.name, record: rec.recordId })
    } catch (err) {
      this.ctx.log.warn('httpv2 could not store a record; the device will send it again', { device: state.name, record: rec.recordId, error: String(err) })
      return errorAnswer('could not store the record, send it again')
    }
    return okAnswer()
  }

  systemRecord(state: DeviceState, body: Json, address: string): Reply {
    const r = systemRecords(state.name, body, deviceClock(state.entry.tz, state.tzHours))
    if ('error' in r) return this.devices.bad('systemRecord', address, r.error, state.name)
    if (r.skipped > 0) this.ctx.log.warn('httpv2 system records without RecordID or RecordDate skipped', { device: state.name, skipped: r.skipped })
    try {
      for (const rec of r.records) this.ctx.spool(rec)
    } catch (err) {
      this.ctx.log.warn('httpv2 could not store system records; the device will send them again', { device: state.name, error: String(err) })
      return errorAnswer('could not store the records, send them again')
    }
    return okAnswer()
  }

  authorize(state: DeviceState, req: GatewayRequest, address: string): Reply {
    const u = parseRecordUpload(req)
    if ('error' in u) return this.devices.bad('authorize', address, u.error, state.name)
    const userId = String(u.detail.UserID ?? '').trim()
    return authorizationAnswer(this.ctx.authorize(state.entry, userId === '0' ? '' : userId))
  }
}

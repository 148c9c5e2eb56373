import { randomBytes } from 'node:crypto'
import { REFUSED, type GatewayContext, type GatewayRequest, type GatewayResponse } from '../../types/gateway.js'
import { callbackFields, failAnswer, identity, isObject, okAnswer, parseUnlockCallback, pathOf, unlockRecord, uploadNameOf, uploadParams } from './codec.js'
import type { UdpDevices } from './devices.js'
import type { UdpPeople } from './people.js'

/** Pseudo-device under which captures wait for their record (/addUpload names no device). */
const UPLOADS = 'udp:uploads'

/** Records (sections 3, 4): captures held until their record names them, records spooled before the device hears 0000. */
export class UdpRecords {
  private readonly ctx: GatewayContext

  constructor(private readonly devices: UdpDevices, private readonly people: UdpPeople, private readonly uploadTtlMs: number) {
    this.ctx = devices.ctx
  }

  /** Section 4: a capture, stored durably before its path is answered; the record that names the path gets it. */
  addUpload(req: GatewayRequest): GatewayResponse {
    const file = req.files.uploadFile ?? req.files.file ?? Object.values(req.files)[0]
    const type = String(req.headers['content-type'] ?? '').toLowerCase()
    const data = file?.data ?? (type.startsWith('image/') || type.startsWith('application/octet-stream') ? req.body : undefined)
    if (!data || data.length === 0) return this.devices.refuse(req, '/addUpload', 'no file in the upload (multipart/form-data with a file part)')
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
  unlockCallback(req: GatewayRequest): GatewayResponse {
    const u = parseUnlockCallback(callbackFields(req))
    if ('error' in u) return this.devices.refuse(req, '/unlockCallback', u.error)
    const id = identity(u.communityId, u.deviceCode)
    const entry = this.devices.lookup(id, req.remoteAddress)
    if (entry === REFUSED) return this.devices.refused()
    if (!entry) {
      this.ctx.discovered('udp', id, `${req.remoteAddress}:${req.remotePort}`, { communityId: u.communityId, deviceCode: u.deviceCode })
      return this.devices.unknownDevice(id)
    }
    const dev = this.devices.devOf(entry.name, entry)
    this.devices.touchHttp(dev, req)
    const now = Date.now()
    const upload = uploadNameOf(u.file)
    const photo = upload ? this.upload(upload) : undefined
    if (u.file && !photo) this.ctx.log.info('udp record refers to a capture the gateway does not hold (stored without photo)', { device: dev.name, file: u.file })
    const person = u.phone ? this.people.bookOf(dev).byPhone.get(u.phone) : undefined
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
}

/**
 * best uploads (best.txt 3.12 verify logs, 3.13 verify photos, 3.7 large files): verify logs go to the spool (held, durably, a moment for the
 * verify photo that follows them), verify photos attach to their log, and large files come in
 * pieces through dev.file.upload.start/package/end (offsets and checksum checked).
 */
import type { GatewayContext, SpoolRecord } from '../../types/gateway.js'
import { checksumOk, CODE, parseFilePackage, parseFileStart, reply, str, verifyLogEntries, verifyLogRecord, verifyPhotos, type BestMessage, type Json } from './codec.js'
import { GLOBAL, type BestCore, type Channel, type Dev, type ResolvedBestOptions } from './state.js'

export class Uploads {
  constructor(private readonly core: BestCore) {}

  private get ctx(): GatewayContext {
    return this.core.ctx
  }

  private get o(): ResolvedBestOptions {
    return this.core.o
  }

  /** Uploads nobody finished within ten minutes are dropped. */
  sweep(dev: Dev, now: number): void {
    for (const [id, f] of dev.files) if (now - f.at > 10 * 60_000) dev.files.delete(id)
  }

  /** The gateway stops: photos waiting for their log are dropped, held verify logs are stored now, without the photo that did not come. */
  stop(dev: Dev): void {
    for (const s of dev.strayPhotos.values()) clearTimeout(s.timer)
    for (const id of [...dev.held.keys()]) this.flushHeld(dev, id)
  }

  fileUpload(dev: Dev, m: BestMessage, answer: (code: string, message: string) => void): void {
    const now = Date.now()
    if (m.funcId === 'dev.file.upload.start') {
      const s = parseFileStart(m, this.o.maxFileBytes)
      if ('error' in s) return answer(CODE.badFile, s.error)
      dev.files.set(s.fileId, { size: s.size, checksum: s.checksum, data: Buffer.alloc(s.size), written: 0, done: false, at: now })
      while (dev.files.size > 16) dev.files.delete(dev.files.keys().next().value as string)
      this.extendHolds(dev)
      return answer(CODE.ok, 'success')
    }
    if (m.funcId === 'dev.file.upload.package') {
      const p = parseFilePackage(m)
      if ('error' in p) return answer(CODE.badFile, p.error)
      const f = dev.files.get(p.fileId)
      if (!f || f.done) return answer(CODE.notFound, `no upload ${p.fileId} in progress (dev.file.upload.start first)`)
      // offset = "上次已传输文件偏移位置": the bytes already sent; a package may repeat, never skip
      if (p.offset > f.written) return answer(CODE.badFile, `offset ${p.offset} skips bytes: ${f.written} received so far`)
      if (p.offset + p.content.length > f.size) return answer(CODE.badFile, `package ends past the announced size ${f.size}`)
      p.content.copy(f.data, p.offset)
      f.written = Math.max(f.written, p.offset + p.content.length)
      f.at = now
      this.extendHolds(dev)
      return answer(CODE.ok, 'success')
    }
    const fileId = str(m.params.fileId).trim()
    const f = dev.files.get(fileId)
    if (!f) return answer(CODE.notFound, `no upload ${fileId}`)
    if (f.written !== f.size) {
      dev.files.delete(fileId)
      return answer(CODE.badFile, `incomplete: ${f.written} of ${f.size} bytes`)
    }
    if (!checksumOk(f.data, f.checksum)) {
      dev.files.delete(fileId)
      return answer(CODE.badFile, 'checksum does not match the content')
    }
    f.done = true
    f.at = now
    this.extendHolds(dev)
    answer(CODE.ok, 'success')
  }

  verifyLog(dev: Dev, ch: Channel, m: BestMessage, answer: (code: string, message: string) => void): void {
    const entries = verifyLogEntries(m)
    if (entries.length === 0) return answer(CODE.badRequest, 'no verifyLog entries')
    const records: SpoolRecord[] = []
    const problems: string[] = []
    for (const e of entries) {
      const r = verifyLogRecord(dev.name, e, this.core.clockOf(dev.name))
      if ('error' in r) problems.push(r.error)
      else records.push(r)
    }
    if (problems.length > 0) this.ctx.log.warn('best verify logs skipped', { device: dev.name, from: ch.address, problems })
    if (records.length === 0) return answer(CODE.badRequest, problems.join('; '))
    // committed (spooled, or held in the gateway's state for its photo) before the device hears success
    this.ctx.durable(() => {
      // a device sends a log's photo right after the log: logs held from an earlier message get no
      // photo any more, and go to the spool first, so the spool keeps the order they came in
      const fresh = new Set(records.map((r) => r.recordId))
      for (const id of [...dev.held.keys()]) if (!fresh.has(id)) this.flushHeld(dev, id)
      for (const r of records) this.acceptRecord(dev, r)
    }).then(() => answer(CODE.ok, problems.length > 0 ? `${records.length} stored, ${problems.length} unreadable` : 'success'), (err: Error) => {
      this.ctx.log.warn('best could not store verify logs; the device will send them again', { device: dev.name, error: String(err) })
      ch.send(reply(m, CODE.storeFailed, 'could not store the records: send them again'))
    })
  }

  /** A device that takes photos sends a verify log's photo right after it: the log waits for it, durably. */
  private expectsPhotos(dev: Dev): boolean {
    const r = this.ctx.state(dev.name, 'report') as { info?: Json } | undefined
    const info = r?.info ?? {}
    if (str(info.capturePic) === '0' || str(info.capturePic) === '1' || str(info.cameraOn) === '0') return false
    return true
  }

  private acceptRecord(dev: Dev, record: SpoolRecord): void {
    const stray = dev.strayPhotos.get(record.recordId)
    if (stray) {
      clearTimeout(stray.timer)
      dev.strayPhotos.delete(record.recordId)
      this.ctx.spool({ ...record, photo: stray.photo })
      return
    }
    // a log sent again while held: its hold is written again (the first write may not have committed)
    if (!dev.held.has(record.recordId) && !this.expectsPhotos(dev)) return void this.ctx.spool(record)
    if (!dev.held.has(record.recordId)) dev.held.set(record.recordId, { record, timer: this.photoWait(dev, record.recordId) })
    this.persistHeld(dev)
  }

  /** The wait for a held log's photo: then the log goes to the spool without one. */
  private photoWait(dev: Dev, id: string): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.spoolHeld(dev, id).catch((err: Error) => this.ctx.log.warn('best could not store a held verify log; tried again later', { device: dev.name, log: id, error: err.message }))
    }, this.o.photoWaitMs)
    timer.unref()
    return timer
  }

  /** A held log (with its photo, if it came) to the spool; if that does not commit it is held again, and tried again after the next wait. */
  private spoolHeld(dev: Dev, id: string, photo?: Buffer): Promise<void> {
    const h = dev.held.get(id)
    return this.ctx.durable(() => this.flushHeld(dev, id, photo)).catch((err: Error) => {
      if (h && !dev.held.has(id)) dev.held.set(id, { record: h.record, timer: this.photoWait(dev, id) })
      throw err
    })
  }

  private extendHolds(dev: Dev): void {
    for (const [id, h] of dev.held) {
      clearTimeout(h.timer)
      h.timer = this.photoWait(dev, id)
    }
  }

  private persistHeld(dev: Dev): void {
    const records = [...dev.held.values()].map((h) => h.record)
    this.ctx.setState(dev.name, 'held', records.length > 0 ? records : undefined)
    const index = new Set((this.ctx.state(GLOBAL, 'heldDevices') as string[] | undefined) ?? [])
    const had = index.has(dev.name)
    if (records.length > 0) index.add(dev.name)
    else index.delete(dev.name)
    if (had !== index.has(dev.name)) this.ctx.setState(GLOBAL, 'heldDevices', [...index])
  }

  flushHeld(dev: Dev, id: string, photo?: Buffer): void {
    const h = dev.held.get(id)
    if (!h) return
    clearTimeout(h.timer)
    this.ctx.spool(photo ? { ...h.record, photo } : h.record)
    dev.held.delete(id)
    this.persistHeld(dev)
  }

  /** Verify logs held when the gateway stopped (or died) go to the spool, without the photo they waited for. */
  flushHeldFromLastRun(): void {
    const names = (this.ctx.state(GLOBAL, 'heldDevices') as string[] | undefined) ?? []
    for (const name of names) {
      const records = (this.ctx.state(name, 'held') as SpoolRecord[] | undefined) ?? []
      for (const r of records) this.ctx.spool(r)
      this.ctx.setState(name, 'held', undefined)
    }
    if (names.length > 0) this.ctx.setState(GLOBAL, 'heldDevices', undefined)
  }

  verifyPhoto(dev: Dev, m: BestMessage, answer: (code: string, message: string) => void): void {
    const photos = verifyPhotos(m)
    if ('error' in photos) return answer(CODE.badRequest, photos.error)
    const stored: Promise<void>[] = []
    for (const ph of photos) {
      let data = ph.content
      if (!data && ph.fileId) {
        const f = dev.files.get(ph.fileId)
        if (!f || !f.done) {
          // what was stored before it stays stored (or held again); the device is told to send again
          void Promise.allSettled(stored)
          return answer(CODE.notFound, `no complete upload ${ph.fileId}: upload the file again`)
        }
        data = f.data
      }
      if (!data || data.length === 0) continue
      let id = ph.logId
      if (id === '') {
        // no logId: the latest held log of the same pin
        for (const [k, h] of dev.held) if (h.record.userId === ph.pin) id = k
        if (id === '') this.ctx.log.info('best verify photo names no log and no log of its pin waits: not kept', { device: dev.name, pin: ph.pin })
      }
      if (id !== '' && dev.held.has(id)) stored.push(this.spoolHeld(dev, id, data))
      else if (id !== '') {
        // the log has not come yet (or was stored already): keep the photo a while for it
        const old = dev.strayPhotos.get(id)
        if (old) clearTimeout(old.timer)
        const timer = setTimeout(() => {
          dev.strayPhotos.delete(id)
          this.ctx.log.info('best verify photo without a waiting verify log: not kept', { device: dev.name, log: id, pin: ph.pin })
        }, this.o.photoWaitMs)
        timer.unref()
        dev.strayPhotos.set(id, { photo: data, pin: ph.pin, timer })
      }
      if (ph.fileId) dev.files.delete(ph.fileId)
    }
    // the photo's log is committed with it before the device hears success
    Promise.all(stored).then(() => answer(CODE.ok, 'success'), (err: Error) => {
      this.ctx.log.warn('best could not store a verify photo; the device will send it again', { device: dev.name, error: err.message })
      answer(CODE.storeFailed, 'could not store the photo: send it again')
    })
  }

}

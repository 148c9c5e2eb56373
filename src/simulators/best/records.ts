import { createHash, randomBytes } from 'node:crypto'
import { codeOf, formatBestTime, isOk, str, type Json } from './protocol.js'
import type { BestConnection } from './connection.js'
import type { BestState } from './state.js'

/** Access records: dev.data.upload.verifyLog / verifyPhoto, large photos through dev.file.upload.* (3.7, 3.12). */
export class BestRecords {
  constructor(private readonly state: BestState, private readonly conn: BestConnection) {}

  async verifyLog(opts: { pin?: string; photo?: Buffer; time?: Date; meetCode?: string; verifyStyle?: string; logId?: string } = {}): Promise<Record<string, unknown>> {
    if (!this.conn._loggedIn || !this.conn.link) throw new Error(`best ${this.state.sn}: not logged in`)
    const when = opts.time ? opts.time.getTime() : this.state.now()
    // AMBIGUITIES best #11: times are "server local" in one section, "device local" in another: the device writes its own zone's local time with the offset.
    const verifyTime = formatBestTime(when, this.state.timeZone)
    const logId = opts.logId ?? String(++this.state.logSeq)
    const pin = opts.pin ?? '1'
    const meetCode = opts.meetCode ?? this.state.o.meetCode // AMBIGUITIES best #12: meeting firmware, meetCode required on logs
    const log: Json = {
      pin,
      meetCode,
      verifyTime,
      verifyStyle: opts.verifyStyle ?? '1', // AMBIGUITIES best #12: the verify-style appendix is missing; the document's example value
      status: '255', // 3.12: 255 = neither sign-in nor sign-out window
      category: '0', // 3.12: 0 normal user (4 visitor); AMBIGUITIES best #9 leaves stored roles undefined, so not derived from them
      logId,
      recodeType: '255', // 3.12 (sic, "recode"): 255 default
    }
    // 3.12: the array is named `verifyLog` (singular, against rule 4 of 4): sent as the document writes it.
    const reply = await this.conn.request({ funcId: 'dev.data.upload.verifyLog', payload: { params: { verifyLog: [log] } } })
    if (!isOk(reply)) throw new Error(`dev.data.upload.verifyLog answered ${codeOf(reply)} ${str(reply.message) ?? ''}`.trim())

    if (opts.photo) {
      const content = opts.photo.toString('base64')
      const entry: Json = { pin, meetCode, photoTime: verifyTime, extension: 'jpg', logId, content: '' }
      if (content.length + 1024 <= this.state.o.maxPackageKb * 1024) entry.content = content
      else {
        const fileId = await this.uploadFile(opts.photo)
        // AMBIGUITIES best #11: the example says contentFileId, the table contentFileDialog: both are sent, same value.
        entry.contentFileId = fileId
        entry.contentFileDialog = fileId
      }
      const pr = await this.conn.request({ funcId: 'dev.data.upload.verifyPhoto', payload: { params: { verifyPhotos: [entry] } } })
      if (!isOk(pr)) throw new Error(`dev.data.upload.verifyPhoto answered ${codeOf(pr)} ${str(pr.message) ?? ''}`.trim())
    }
    return log
  }

  /** 3.7: dev.file.upload.start / package… / end; returns the fileId. */
  private async uploadFile(data: Buffer): Promise<string> {
    const fileId = randomBytes(16).toString('hex') // 3.7: letters and digits, a 32-character uuid suggested
    const checksum = createHash('md5').update(data).digest('hex') // 3.7: md5 of the whole file (lowercase hex)
    const expect = async (funcId: string, params: Json): Promise<void> => {
      const r = await this.conn.request({ funcId, payload: { params } })
      if (!isOk(r)) throw new Error(`${funcId} answered ${codeOf(r)} ${str(r.message) ?? ''}`.trim())
    }
    await expect('dev.file.upload.start', { fileId, size: String(data.length), checksum })
    // Each package must fit maxPackageSize once base64-encoded (4/3) with the envelope: 3 bytes → 4 characters.
    const chunk = Math.max(3, Math.floor(((this.state.o.maxPackageKb * 1024 - 1024) * 3) / 4 / 3) * 3)
    for (let offset = 0; offset < data.length; offset += chunk) {
      // 3.7: offset = bytes of the file already sent (binary offset, not base64 characters).
      await expect('dev.file.upload.package', { fileId, offset: String(offset), content: data.subarray(offset, offset + chunk).toString('base64') })
    }
    await expect('dev.file.upload.end', { fileId })
    return fileId
  }
}

import { ALARM_EVENTS, makeJpeg, NAMES, str, SYSTEM_RECORD_BATCH, type IdRecord, type MultipartPart, type SysRecord } from './protocol.js'
import type { Httpv2SimulatorOptions, Httpv2State } from './state.js'
import type { Httpv2Transport } from './transport.js'

/** Records: identification and system records queued on the device and uploaded after the server's work (上传打卡记录). */
export class Httpv2Records {
  private readonly names: (typeof NAMES)['table' | 'example']
  private readonly retryDelayMs: number
  private dropFirstAnswer: boolean

  constructor(private readonly state: Httpv2State, private readonly transport: Httpv2Transport, opts: Httpv2SimulatorOptions) {
    this.names = NAMES[opts.multipartNames ?? 'table']
    this.retryDelayMs = opts.retryDelayMs ?? 10000
    this.dropFirstAnswer = opts.dropFirstAnswer ?? false
  }

  queueRecord(partial: Record<string, unknown>, date: number): IdRecord {
    const id = this.state.nextRecordId++
    const people = [...this.state.store.values()]
    const who = people.length ? people[(id - 1) % people.length]?.detail ?? {} : undefined
    const userId = who ? str(who.UserID) : String(((id - 1) % 10) + 1)
    const detail: Record<string, unknown> = {
      // "RecordDetail 字段说明" in table order; RecordDate: unix seconds on the device clock.
      RecordID: id,
      RecordType: 3, // 人脸验证
      RecordDate: date,
      UserID: userId,
      Code: who ? str(who.Code) : '',
      Name: who ? str(who.Name) : `User ${userId}`,
      IdentityCard: who ? str(who.IdentityCard) : '',
      Job: who ? str(who.Job) : '',
      Department: who ? str(who.Department) : '',
      CardNum: who ? str(who.CardNum) || '0' : '0',
      QRCode: '',
      IsEntry: 1,
      BodyTemp: 0,
      PhotoLen: 0,
      ...partial,
    }
    detail.RecordID = id
    const photo = partial.PhotoLen === 0 ? undefined : makeJpeg(`RECORD ${this.state.sn} ${id}`)
    detail.PhotoLen = photo ? photo.length : 0
    const r: IdRecord = { id, detail, uploaded: false, notBefore: 0, ...(photo ? { photo } : {}) }
    this.state.idRecords.push(r)
    return r
  }

  queueSys(category: 1 | 2, event: number): void {
    this.state.sysRecords.push({ id: this.state.nextSysRecordId++, category, event, date: this.state.nowS(), uploaded: false, notBefore: 0 })
  }

  alarmRecords(before: string, after: string): void {
    const split = (s: string): Set<string> => new Set(s.split(',').map((x) => x.trim()).filter(Boolean))
    const a = split(before)
    const b = split(after)
    for (const n of b) if (!a.has(n) && ALARM_EVENTS[n]) this.queueSys(2, ALARM_EVENTS[n][0])
    for (const n of a) if (!b.has(n) && ALARM_EVENTS[n]) this.queueSys(2, ALARM_EVENTS[n][1])
  }

  /**
   * The multipart body of UploadIdentifyRecord/RequestAuthorization: SN, the JSON part, the photo.
   * AMBIGUITIES httpv2 #10: the SN value carries the example's leading space (" FC-..."); the part
   * names follow `multipartNames`; the JSON part is gzip'd with `Content-Encoding: gzip` when gzip is on.
   */
  recordParts(detail: Record<string, unknown>, photo: Buffer | undefined): MultipartPart[] {
    const parts: MultipartPart[] = [
      { name: 'SN', data: ` ${this.state.sn}` },
      { name: this.names.detail, data: JSON.stringify(detail), gzip: this.state.gzip },
    ]
    if (photo) parts.push({ name: this.names.photo, data: photo, filename: this.names.filename, contentType: 'image/jpeg' })
    return parts
  }

  /**
   * One step of the record backlog ("处理完服务器要求的操作后，检查有没有堆积的未上传记录"):
   * identification records one per request, then system records in batches.
   * "如果服务器返回错误代码，则等待10秒后重新上传记录": an error answer parks the record for
   * retryDelayMs; the backlog waits for it until the next keepalive is due (the loop then sends
   * that keepalive and goes on; a tick() ends there and leaves the record queued).
   */
  async recordStep(): Promise<'done' | 'more'> {
    if (this.state.quiet) return 'done'
    const now = Date.now()
    const rec = this.state.idRecords.find((r) => !r.uploaded && r.notBefore <= now)
    if (rec) {
      await this.uploadRecord(rec)
      return 'more'
    }
    const sys = this.state.sysRecords.filter((r) => !r.uploaded && r.notBefore <= now)
    if (sys.length) {
      await this.uploadSystemRecords(sys)
      return 'more'
    }
    const waiting = [...this.state.idRecords, ...this.state.sysRecords].filter((r) => !r.uploaded).map((r) => r.notBefore)
    if (!waiting.length) return 'done'
    const due = this.state.lastKeepaliveAt + this.state.intervalMs
    const next = Math.min(...waiting)
    if (next >= due && !this.state.running) return 'done'
    await this.transport.sleep(Math.max(0, Math.min(next, due) - Date.now()))
    return 'more'
  }

  private async uploadRecord(rec: IdRecord): Promise<void> {
    // AMBIGUITIES httpv2 #11: records wait 30 s for the answer (the records section), the general 2 s elsewhere —
    // scaled with requestTimeoutMs (×15) so tests keep short timeouts.
    this.state.events.recordUploads++
    const ans = await this.transport.post('/Record/UploadIdentifyRecord', { multipart: this.recordParts(rec.detail, rec.photo) }, this.transport.timeoutMs * 15)
    if (this.transport.ok(ans, `UploadIdentifyRecord ${rec.id}`)) {
      if (this.dropFirstAnswer) {
        // Simulated lost answer: the device never saw it, so the same record goes again right away.
        this.dropFirstAnswer = false
        this.state.log(`UploadIdentifyRecord ${rec.id}: answer treated as lost, re-sending`)
        return
      }
      rec.uploaded = true
      const id = String(rec.id)
      if (!this.state.ackedSet.has(id)) {
        this.state.ackedSet.add(id)
        this.state.acked.push(id)
      }
    } else {
      rec.notBefore = Date.now() + this.retryDelayMs
    }
  }

  /**
   * UploadSystemRecord, JSON, batched per top-level RecordType (1 门磁记录, 2 系统记录). Each entry's
   * RecordType is the event code from the matching event table (the Record table's "1-门磁记录;2--系统记录"
   * repeats the top-level meaning; the event tables are what gives an entry its meaning).
   */
  private async uploadSystemRecords(candidates: SysRecord[]): Promise<void> {
    const first = candidates[0]
    if (!first) return
    const batch = candidates.filter((r) => r.category === first.category).slice(0, SYSTEM_RECORD_BATCH)
    this.state.events.systemRecordUploads++
    const ans = await this.transport.post(
      '/Record/UploadSystemRecord',
      { json: { SN: this.state.sn, RecordType: first.category, Records: batch.map((r) => ({ RecordID: r.id, RecordType: r.event, RecordDate: r.date })) } },
      this.transport.timeoutMs * 15,
    )
    if (this.transport.ok(ans, 'UploadSystemRecord')) for (const r of batch) r.uploaded = true
    else for (const r of batch) r.notBefore = Date.now() + this.retryDelayMs
  }
}

import { buildMultipart, errMsg, isObj, makeJpeg, str, UDP_PATHS, UNLOCK_TYPE } from './protocol.js'
import type { UdpFaces } from './people.js'
import type { AccessEventOptions, UdpState } from './state.js'
import type { UdpTransport } from './transport.js'

/** Records and door events over HTTP: /oneLock (2), /unlockCallback (3) with its capture from /addUpload (4). */
export class UdpRecords {
  private lastUploadName = 0

  constructor(private readonly state: UdpState, private readonly transport: UdpTransport, private readonly faceList: UdpFaces) {}

  // ---- /oneLock ------------------------------------------------------------------------------

  async passwordCheck(password: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const fields: Record<string, string> = { communityId: this.state.community, deviceCode: this.state.code, onePassword: password }
    for (const [k, v] of Object.entries(extra)) fields[k] = typeof v === 'string' ? v : JSON.stringify(v)
    this.state.events.passwordChecks++
    // AMB udp #8: section 2 writes https://…/oneLock while the rest is http: every path is taken from httpUrl.
    const answer = await this.transport.post(UDP_PATHS.oneLock, fields)
    const granted = this.transport.ok(answer)
    if (this.state.opts.reportPasswordUnlocks !== false) {
      // Section 3: the device reports every unlock attempt (type 3 一次性密码; result 0 opened / 1 无权限).
      const data = isObj(answer.data) ? answer.data : {}
      await this.unlockCallback({
        type: String(UNLOCK_TYPE.oneTimePassword),
        result: granted ? '0' : '1',
        phone: str(data.phone) ?? '',
        roomNumber: str(data.roomNumber) ?? '',
        unitId: str(data.unitId) ?? '',
      }).catch((e: unknown) => this.state.log(`unlockCallback after /oneLock failed: ${errMsg(e)}`))
    }
    return answer
  }

  // ---- /addUpload + /unlockCallback ----------------------------------------------------------

  async accessEvent(o: AccessEventOptions = {}): Promise<Record<string, unknown>> {
    const phone = o.phone ?? this.faceList.faceStore.keys().next().value ?? ''
    const face = phone ? this.faceList.faceStore.get(phone) : undefined
    let file: string | undefined
    if (!o.noPhoto) {
      const photo = o.photo ?? makeJpeg(`capture ${this.state.community}/${this.state.code} ${new Date().toISOString()}`)
      try {
        file = await this.upload(photo)
      } catch (e) {
        // Section 3: file is optional ("如果有照片的话"): a failed upload still gets its record.
        this.state.log(`capture upload failed, record sent without file: ${errMsg(e)}`)
      }
    }
    const fields: Record<string, string> = {
      type: String(o.type ?? UNLOCK_TYPE.face),
      result: String(o.result ?? 0),
      phone,
      roomNumber: o.roomNumber ?? str(face?.roomNumber) ?? '',
      unitId: o.unitId ?? str(face?.unitId) ?? '',
    }
    if (file !== undefined) fields.file = file
    return this.unlockCallback(fields)
  }

  /** Section 3: every field is a string; `file` is the path /addUpload answered. Returns the fields sent. */
  private async unlockCallback(f: Record<string, string>): Promise<Record<string, unknown>> {
    const fields: Record<string, string> = { communityId: this.state.community, deviceCode: this.state.code, ...f }
    this.state.events.unlockCallbacks++
    const answer = await this.transport.post(UDP_PATHS.unlockCallback, fields)
    if (!this.transport.ok(answer)) this.state.problem(`/unlockCallback answered code ${String(answer.code)}: ${str(answer.message) ?? ''}`)
    return fields
  }

  /**
   * Section 4: multipart upload; the example `addUpload;uploadFile=/sdcard/1600657724098.jpg;newName=1600657724098.jpg`
   * is read as the file part `uploadFile` plus a field `newName` (AMB udp #8: the `;…` URL syntax is not sent),
   * file name = capture time in ms. communityId/deviceCode are added as fields (undocumented, harmless).
   */
  private async upload(photo: Buffer): Promise<string> {
    let ms = Date.now()
    if (ms <= this.lastUploadName) ms = this.lastUploadName + 1
    this.lastUploadName = ms
    const newName = `${ms}.jpg`
    const mp = buildMultipart([
      { name: 'communityId', data: this.state.community },
      { name: 'deviceCode', data: this.state.code },
      { name: 'newName', data: newName },
      { name: 'uploadFile', data: photo, filename: newName, contentType: 'image/jpeg' },
    ])
    this.state.events.uploads++
    const answer = await this.transport.call(UDP_PATHS.addUpload, mp)
    const path = str(answer.data)
    if (!this.transport.ok(answer) || !path) throw new Error(`/addUpload answered code ${String(answer.code)}, data ${JSON.stringify(answer.data)}`)
    return path
  }
}

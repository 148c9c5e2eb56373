import { randomBytes } from 'node:crypto'
import {
  byteLen, CARD_MAX, DELETE_LIMIT, DOWNLOAD_LIMIT, HTTPV2_PATHS, idCompare, idNumber, idString, isInt, isJpeg, isObj, isUrl, makeJpeg,
  MAX_EXPIRATION, MAX_PEOPLE, MAX_PERSON_PHOTO_BYTES, md5Hex, PEOPLE_ERROR, TICKET_RESULT, UINT32_MAX,
  type FailEntry, type Flag, type MultipartPart, type Person,
} from './protocol.js'
import type { Httpv2Records } from './records.js'
import type { Httpv2SimulatorOptions, Httpv2State } from './state.js'
import type { Httpv2Transport } from './transport.js'

/** People: AddPeople and DeletePeople loops, PushPeople, and registration at the device (RegisterIdentifyTicket). */
export class Httpv2Roster {
  private readonly noFaceMarker: Buffer

  /** `keepaliveIfDue` sends a keepalive when one is due while a long loop runs; its flags join `pending`. */
  constructor(
    private readonly state: Httpv2State,
    private readonly transport: Httpv2Transport,
    private readonly records: Httpv2Records,
    private readonly keepaliveIfDue: (pending: Set<Flag>) => Promise<void>,
    opts: Httpv2SimulatorOptions,
  ) {
    this.noFaceMarker = Buffer.from(opts.rejectPhotosContaining ?? 'NOFACE', 'latin1')
  }

  /** The person as PushPeople's Detail / UserDetail shows it (PeopleJson fields; the photo travels as a file). */
  private personDetail(p: Person): Record<string, unknown> {
    const d = { ...p.detail }
    if (p.photo) {
      d.PhotoMD5 = md5Hex(p.photo)
      d.PhotoLen = p.photo.length
    }
    return d
  }

  /** /People/PushPeople: SN, PushType (1 new, 2 update, 3 delete, 4 query), UserID, Detail (absent for an unknown person), Photo. */
  async pushPerson(id: string, pushType: 1 | 2 | 3 | 4): Promise<void> {
    this.state.events.peoplePushes++
    const p = this.state.store.get(id)
    const parts: MultipartPart[] = [
      { name: 'SN', data: this.state.sn },
      { name: 'PushType', data: String(pushType) },
      { name: 'UserID', data: id },
    ]
    if (p) {
      // The PushPeople example gzips Detail and marks the part Content-Encoding: gzip; plain JSON when gzip is off.
      parts.push({ name: 'Detail', data: JSON.stringify(this.personDetail(p)), gzip: this.state.gzip, contentType: 'application/json' })
      if (p.photo) parts.push({ name: 'Photo', data: p.photo, filename: 'Photo.jpg', contentType: 'image/jpeg' })
    }
    const ans = await this.transport.post('/People/PushPeople', { multipart: parts })
    this.transport.ok(ans, `PushPeople ${id}`)
  }

  /**
   * RegisterIdentifyTicket. AMBIGUITIES httpv2 #9: the table's object
   * `{RegisterType, UserID, RegisterIndex}` and the example's flat
   * `RegisterIdentifyTicket: 4, RegisterIdentifyUserID: 1` are both read.
   */
  async registerTicket(c: Record<string, unknown>): Promise<void> {
    const t = c.RegisterIdentifyTicket
    let type: unknown
    let rawUser: unknown
    if (isObj(t)) {
      type = t.RegisterType
      rawUser = t.UserID
    } else {
      type = t
      rawUser = c.RegisterIdentifyUserID ?? c.UserID
    }
    const userId = idString(rawUser)
    if (!isInt(type) || type < 1 || type > 5) { this.state.problem(`RegisterIdentifyTicket type ${JSON.stringify(type)} is not 1..5: ignored`); return }
    if (userId === undefined) { this.state.problem(`RegisterIdentifyTicket without a UserID: ignored`); return }
    const person = this.state.store.get(userId)
    const result: Record<string, unknown> = { SN: this.state.sn, UserID: idNumber(userId) }
    let photo: Buffer | undefined
    if (!person) {
      // No Result value means "no such user"; 2 (用户取消操作) is what a device whose registration screen cannot start reports.
      result.Result = TICKET_RESULT.CANCELLED
      this.state.problem(`RegisterIdentifyTicket for unknown user ${userId}: Result 2`)
    } else if (type === 4) {
      photo = makeJpeg(`FACE ${this.state.sn} ${userId} ${Date.now()} ${randomBytes(4).toString('hex')}`)
      person.photo = photo
      person.detail.PhotoMD5 = md5Hex(photo)
      person.detail.PhotoLen = photo.length
      person.detail.Photo = ''
      result.Result = TICKET_RESULT.OK
      result.UserDetail = this.personDetail(person)
    } else if (type === 3) {
      result.Result = TICKET_RESULT.NO_FINGERPRINT // FunctionList.Fingerprint false
    } else if (type === 5) {
      result.Result = TICKET_RESULT.NO_PALMVEIN // FunctionList.Palmvein false
    } else {
      result.Result = TICKET_RESULT.CANCELLED // card/password need someone at the device: nobody comes
    }
    this.state.events.ticketResults++
    const parts: MultipartPart[] = [{ name: 'ResultJson', data: JSON.stringify(result) }]
    if (photo) parts.push({ name: 'Photo', data: photo, filename: 'Photo.jpg', contentType: 'image/jpeg' })
    const ans = await this.transport.post('/Device/RegisterIdentifyTicketResult', { multipart: parts })
    this.transport.ok(ans, 'RegisterIdentifyTicketResult')
    // "并调用推送人员API推送注册后的人员最新信息".
    if (result.Result === TICKET_RESULT.OK) await this.pushPerson(userId, 2)
  }

  // -- people -----------------------------------------------------------------------------------

  /**
   * DeletePeople: loop DeletePeopleList → delete → DeletePeopleListResult per batch (the result's
   * description is a copy of the download one, "拉取一批...后", so per batch as there).
   * Stop condition (AMBIGUITIES httpv2 #8): Success != 1, or no ids — `DeleteList`, or the
   * document's `deleteInfo`/`DeletList` spellings — and no DeleteAll. The result is sent with the
   * table's `DeleteList` spelling and numeric ids (as the example).
   */
  async deletePeople(pending: Set<Flag>): Promise<void> {
    let previous: string | undefined
    for (let round = 0; round < 100000; round++) {
      this.transport.checkStopped()
      if (round > 0) await this.keepaliveIfDue(pending)
      const ans = await this.transport.post(HTTPV2_PATHS[this.state.api].delete, { json: { SN: this.state.sn, Limit: DELETE_LIMIT } })
      if (!this.transport.ok(ans, 'DeletePeopleList') || !ans.json) return
      const a = ans.json
      if (a.DeleteAll === 1) {
        const ids = [...this.state.store.keys()].sort(idCompare)
        this.state.store.clear()
        this.records.queueSys(2, 45) // 删除所有人员
        const r = await this.transport.post('/People/DeletePeopleListResult', {
          json: { SN: this.state.sn, DeleteCount: ids.length, DeleteAll: 1, DeleteList: ids.map(idNumber) },
        })
        this.transport.ok(r, 'DeletePeopleListResult')
        return // everything is gone: nothing further to ask for
      }
      const raw = a.DeleteList ?? a.deleteInfo ?? a.DeletList
      if (raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0)) return
      if (!Array.isArray(raw)) { this.state.problem(`DeletePeopleList DeleteList is ${JSON.stringify(raw)}, not an array: stopped`); return }
      if (a.DeleteList === undefined) this.state.problem(`DeletePeopleList answer has no DeleteList (read ${a.deleteInfo !== undefined ? 'deleteInfo' : 'DeletList'} instead)`)
      if (raw.length > DELETE_LIMIT) this.state.problem(`DeletePeopleList returned ${raw.length} ids for Limit ${DELETE_LIMIT}`)
      if (isInt(a.DeleteCount) && a.DeleteCount !== raw.length) this.state.problem(`DeletePeopleList DeleteCount ${a.DeleteCount} but ${raw.length} ids`)
      const ids: string[] = []
      for (const v of raw) {
        const id = idString(v)
        if (id === undefined) { this.state.problem(`DeletePeopleList id ${JSON.stringify(v)} skipped`); continue }
        ids.push(id)
      }
      const key = JSON.stringify(ids)
      if (key === previous) {
        this.state.problem('DeletePeopleList returned the same batch again after its result was reported: loop stopped')
        return
      }
      previous = key
      // Deleting an id the device does not hold leaves the same end state: reported as deleted.
      for (const id of ids) this.state.store.delete(id)
      const r = await this.transport.post('/People/DeletePeopleListResult', {
        json: { SN: this.state.sn, DeleteCount: ids.length, DeleteAll: 0, DeleteList: ids.map(idNumber) },
      })
      this.transport.ok(r, 'DeletePeopleListResult')
    }
  }

  /**
   * AddPeople: loop DownloadPeopleList (Limit DOWNLOAD_LIMIT) until Success != 1 or an empty list
   * ("停止请求条件"); each batch is stored and answered with DownloadPeopleListResult before the
   * next request (AMBIGUITIES httpv2 #7: per batch — "从服务器拉取一批人员导入后，调用此接口").
   */
  async addPeople(pending: Set<Flag>): Promise<void> {
    let previous: string | undefined
    for (let round = 0; round < 100000; round++) {
      this.transport.checkStopped()
      if (round > 0) await this.keepaliveIfDue(pending)
      const ans = await this.transport.post(HTTPV2_PATHS[this.state.api].download, { json: { SN: this.state.sn, Limit: DOWNLOAD_LIMIT } })
      if (!this.transport.ok(ans, 'DownloadPeopleList') || !ans.json) return
      const a = ans.json
      const list = a.PeopleList
      if (list === undefined || list === null) return
      if (!Array.isArray(list)) { this.state.problem(`DownloadPeopleList PeopleList is ${JSON.stringify(list).slice(0, 100)}, not an array: stopped`); return }
      // AMBIGUITIES httpv2 #5: `PeopleCount` (table) or `Count` (example). When given, the device handles that many
      // entries (a mismatch is reported; extra entries are not stored and not counted).
      let count = list.length
      const declared = isInt(a.PeopleCount) ? a.PeopleCount : isInt(a.Count) ? a.Count : undefined
      if (isInt(a.PeopleCount) && isInt(a.Count) && a.PeopleCount !== a.Count) this.state.problem(`DownloadPeopleList PeopleCount ${a.PeopleCount} and Count ${a.Count} differ: PeopleCount used`)
      if (declared === undefined) this.state.problem('DownloadPeopleList answer has neither PeopleCount nor Count')
      else if (declared !== list.length) {
        this.state.problem(`DownloadPeopleList says ${declared} people but PeopleList has ${list.length}`)
        count = Math.max(0, Math.min(declared, list.length))
      }
      if (count === 0) return
      if (list.length > DOWNLOAD_LIMIT) this.state.problem(`DownloadPeopleList returned ${list.length} people for Limit ${DOWNLOAD_LIMIT}`)
      const key = JSON.stringify(list.slice(0, count).map((p) => (isObj(p) ? p.UserID : p)))
      if (key === previous) {
        this.state.problem('DownloadPeopleList returned the same batch again after its result was reported: loop stopped')
        return
      }
      previous = key
      let success = 0
      const fails: FailEntry[] = []
      for (const entry of list.slice(0, count)) {
        const f = await this.storePerson(entry)
        if (f) fails.push(f)
        else success++
      }
      // Request table: SuccessCount, FailCount, FailList (AMBIGUITIES httpv2 #6: the example's second `FailCount` is the
      // table's FailList). RepeatID is a string as the table types it ("" when there is no other user).
      const r = await this.transport.post('/People/DownloadPeopleListResult', {
        json: { SN: this.state.sn, SuccessCount: success, FailCount: fails.length, FailList: fails },
      })
      this.transport.ok(r, 'DownloadPeopleListResult')
    }
  }

  /** Validates and stores one PeopleJson. Returns the failure, or undefined when stored. */
  private async storePerson(entry: unknown): Promise<FailEntry | undefined> {
    const fail = (UserID: string, ErrorCode: number, ErrMsg: string, RepeatID = ''): FailEntry => {
      this.state.log(`person ${UserID || '?'} refused: ${ErrorCode} ${ErrMsg}`)
      return { UserID, ErrorCode, RepeatID, ErrMsg }
    }
    if (!isObj(entry)) return fail('', PEOPLE_ERROR.PARAM, 'PeopleList entry is not an object')
    const p = entry
    // UserID: string "数字 最大值 4294967295".
    const rawId = p.UserID
    if (typeof rawId !== 'string') return fail(idString(rawId) ?? '', PEOPLE_ERROR.PARAM, `UserID must be a string of digits, got ${JSON.stringify(rawId)}`)
    if (!/^\d{1,10}$/.test(rawId) || BigInt(rawId) > UINT32_MAX) return fail(rawId, PEOPLE_ERROR.PARAM, 'UserID must be digits, at most 4294967295')
    const id = rawId
    const has = (k: string): boolean => p[k] !== undefined && p[k] !== null
    // "字符<64位" … "字符是指字节": limits are UTF-8 bytes, and "<" is strict (AMBIGUITIES httpv2 #13).
    const limits: Record<string, number> = { Code: 64, Name: 64, Job: 64, Department: 64, IdentityCard: 64, Attachment: 200, QRCode: 128 }
    for (const [k, lim] of Object.entries(limits)) {
      if (!has(k)) continue
      if (typeof p[k] !== 'string') return fail(id, PEOPLE_ERROR.PARAM, `${k} must be a string`)
      if (byteLen(p[k] as string) >= lim) return fail(id, PEOPLE_ERROR.PARAM, `${k} is ${byteLen(p[k] as string)} bytes (must be < ${lim} bytes UTF-8)`)
    }
    if (has('Password')) {
      if (typeof p.Password !== 'string' || !/^(\d{4,8})?$/.test(p.Password)) return fail(id, PEOPLE_ERROR.PARAM, 'Password must be digits, length 0 or 4-8')
    }
    if (has('CardNum')) {
      if (typeof p.CardNum !== 'string' || !/^\d*$/.test(p.CardNum) || (p.CardNum !== '' && BigInt(p.CardNum) > CARD_MAX)) {
        return fail(id, PEOPLE_ERROR.PARAM, 'CardNum must be a string of digits up to 18446744073709551615')
      }
    }
    const intRules: Record<string, [number, number]> = {
      AccessType: [0, 2], ExpirationDate: [0, MAX_EXPIRATION], OpenTimes: [0, 65535], KeepOpen: [0, 1], Timegroup: [0, 64],
    }
    for (const [k, [lo, hi]] of Object.entries(intRules)) {
      if (!has(k)) continue
      const v = p[k]
      if (!isInt(v) || v < lo || v > hi) return fail(id, PEOPLE_ERROR.PARAM, `${k} must be an int ${lo}..${hi}, got ${JSON.stringify(v)}`)
    }
    if (has('Holidays') && (typeof p.Holidays !== 'string' || !/^(\*|\d+(,\d+)*)?$/.test(p.Holidays))) {
      return fail(id, PEOPLE_ERROR.PARAM, 'Holidays must be "", "*" or comma-separated numbers')
    }
    // Elevators: a comma string in the PeopleJson table, an array in the "Elevator 电梯权限" section: both read.
    if (has('Elevators')) {
      const e = p.Elevators
      const okStr = typeof e === 'string' && /^(\d+(,\d+)*)?$/.test(e)
      const okArr = Array.isArray(e) && e.every((x) => isInt(x))
      if (!okStr && !okArr) return fail(id, PEOPLE_ERROR.PARAM, 'Elevators must be comma-separated numbers')
    }
    for (const k of ['Fingerprints', 'Palmveins']) {
      if (has(k) && !Array.isArray(p[k])) return fail(id, PEOPLE_ERROR.PARAM, `${k} must be an array`)
    }
    if ((p.Fingerprints as unknown[] | undefined)?.length) return fail(id, PEOPLE_ERROR.FINGERPRINT_FORMAT, 'this device has no fingerprint reader')
    if ((p.Palmveins as unknown[] | undefined)?.length) return fail(id, PEOPLE_ERROR.PALMVEIN_FORMAT, 'this device has no palm-vein reader')
    // Card duplicates.
    if (typeof p.CardNum === 'string' && p.CardNum !== '' && p.CardNum !== '0') {
      for (const [other, q] of this.state.store) {
        if (other !== id && q.detail.CardNum === p.CardNum) return fail(id, PEOPLE_ERROR.CARD_REPEAT, `card ${p.CardNum} belongs to ${other}`, other)
      }
    }
    if (!this.state.store.has(id) && this.state.store.size >= MAX_PEOPLE) return fail(id, PEOPLE_ERROR.FULL, 'people storage full')
    // Face feature: URL → downloaded (failure 4); otherwise base64.
    if (has('FaceFeature') && p.FaceFeature !== '') {
      if (typeof p.FaceFeature !== 'string') return fail(id, PEOPLE_ERROR.FACE_FEATURE_FORMAT, 'FaceFeature must be a string')
      if (isUrl(p.FaceFeature)) {
        const got = await this.transport.download(p.FaceFeature)
        if (!got) return fail(id, PEOPLE_ERROR.FACE_FEATURE_DOWNLOAD, `FaceFeature ${p.FaceFeature} could not be downloaded`)
      } else if (!/^[A-Za-z0-9+/]+={0,2}$/.test(p.FaceFeature.replace(/\s+/g, ''))) {
        return fail(id, PEOPLE_ERROR.FACE_FEATURE_FORMAT, 'FaceFeature is neither an http(s) URL nor base64')
      }
    }
    // Photo: "http或https开头表示使用url地址，否则表示使用base64".
    let photo: Buffer | undefined
    if (has('Photo') && p.Photo !== '') {
      if (typeof p.Photo !== 'string') return fail(id, PEOPLE_ERROR.PARAM, 'Photo must be a string')
      const fromUrl = isUrl(p.Photo)
      if (has('PhotoLen') && (!isInt(p.PhotoLen) || p.PhotoLen < 0)) return fail(id, PEOPLE_ERROR.PARAM, 'PhotoLen must be an int')
      if (isInt(p.PhotoLen) && p.PhotoLen > MAX_PERSON_PHOTO_BYTES) return fail(id, PEOPLE_ERROR.PHOTO_TOO_BIG, `PhotoLen ${p.PhotoLen} > 400 KB`)
      if (fromUrl) {
        photo = await this.transport.download(p.Photo)
        if (!photo) return fail(id, PEOPLE_ERROR.PHOTO_DOWNLOAD, `photo ${p.Photo} could not be downloaded`)
      } else {
        const b64 = p.Photo.replace(/\s+/g, '')
        // A data: URI prefix is neither a URL nor base64 by the document's rule.
        if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return fail(id, PEOPLE_ERROR.PARAM, 'Photo is neither an http(s) URL nor plain base64')
        photo = Buffer.from(b64, 'base64')
      }
      // A length or MD5 mismatch means the bytes are not the photo meant: a broken download (2) or a broken parameter (1).
      const badBytes = fromUrl ? PEOPLE_ERROR.PHOTO_DOWNLOAD : PEOPLE_ERROR.PARAM
      if (photo.length > MAX_PERSON_PHOTO_BYTES) return fail(id, PEOPLE_ERROR.PHOTO_TOO_BIG, `photo is ${photo.length} bytes > 400 KB`)
      if (isInt(p.PhotoLen) && p.PhotoLen !== 0 && p.PhotoLen !== photo.length) return fail(id, badBytes, `PhotoLen ${p.PhotoLen} but the photo has ${photo.length} bytes`)
      if (has('PhotoMD5') && p.PhotoMD5 !== '') {
        if (typeof p.PhotoMD5 !== 'string' || !/^[0-9a-fA-F]{32}$/.test(p.PhotoMD5)) return fail(id, PEOPLE_ERROR.PARAM, 'PhotoMD5 must be 32 hex digits')
        // AMBIGUITIES httpv2 #13: hex case not stated — compared case-insensitively.
        if (p.PhotoMD5.toUpperCase() !== md5Hex(photo)) return fail(id, badBytes, `PhotoMD5 ${p.PhotoMD5} does not match the photo (${md5Hex(photo)})`)
      }
      if (!isJpeg(photo)) return fail(id, PEOPLE_ERROR.PHOTO_UNRECOGNISABLE, 'photo is not a JPEG')
      if (this.noFaceMarker.length && photo.includes(this.noFaceMarker)) return fail(id, PEOPLE_ERROR.PHOTO_UNRECOGNISABLE, 'no face found in the photo')
    }
    // The record is replaced as a whole: a person sent again without Photo loses the face (README field report:
    // "People with a face enrolled have been seen to lose the face when updated through DownloadPeopleList").
    const detail: Record<string, unknown> = { ...p }
    if (photo) {
      // Only a URL is kept in the detail; base64 is not echoed back.
      detail.Photo = isUrl(p.Photo as string) ? p.Photo : ''
      detail.PhotoMD5 = md5Hex(photo)
      detail.PhotoLen = photo.length
    } else {
      delete detail.Photo
      delete detail.PhotoMD5
      delete detail.PhotoLen
    }
    const existed = this.state.store.has(id)
    if (existed && this.state.store.get(id)?.photo && !photo) this.state.log(`person ${id} updated without a photo: face removed`)
    this.state.store.set(id, { detail, ...(photo ? { photo } : {}) })
    return undefined
  }
}

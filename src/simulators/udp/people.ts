import { createHash } from 'node:crypto'
import { buildMultipart, FACE_STATE, HttpStatusError, isJpeg, isObj, errMsg, str, UDP_PATHS } from './protocol.js'
import type { UdpState } from './state.js'
import type { UdpTransport } from './transport.js'

interface PendingReport { phone: string; state: string; feature?: Buffer; attempts?: number }

/** A verdict the server refused (9999) or could not take is re-sent at the next polls, this many times in all. */
const MAX_REPORT_ATTEMPTS = 3

/** Faces (sections 5, 6): the face list polled with /updateImage, photos fetched, verdicts reported with /authImage. */
export class UdpFaces {
  private readonly marker: Buffer
  readonly faceStore = new Map<string, Record<string, unknown>>()
  /** phone → signature of the last face-list item handled for it (re-delivered items are skipped). */
  private readonly handled = new Map<string, string>()
  private pendingReports: PendingReport[] = []
  cursor: number
  private syncChain: Promise<void> = Promise.resolve()
  autoSyncRunning = false

  constructor(private readonly state: UdpState, private readonly transport: UdpTransport) {
    this.marker = Buffer.from(state.opts.invalidPhotoMarker ?? 'NOFACE', 'latin1')
    this.cursor = state.opts.faceCursor ?? 0
  }

  syncFaces(): Promise<void> {
    const run = this.syncChain.then(() => this.doSync())
    this.syncChain = run.catch(() => undefined)
    this.state.track(run)
    return run
  }

  private async doSync(): Promise<void> {
    if (this.state.stopped) return
    await this.flushReports()
    // Section 5: timestrap (sic, AMB udp #3) in ms; its `state` parameter is copied from unlockCallback and not sent.
    const fields = { timestrap: String(this.cursor), communityId: this.state.community, deviceCode: this.state.code }
    this.state.events.faceListPolls++
    const answer = await this.transport.post(UDP_PATHS.updateImage, fields)
    if (!this.transport.ok(answer)) {
      this.state.problem(`/updateImage answered code ${String(answer.code)}: ${str(answer.message) ?? ''}`)
      return
    }
    if (answer.data !== null && answer.data !== undefined && !Array.isArray(answer.data)) {
      this.state.problem(`/updateImage data is not a list: ${JSON.stringify(answer.data).slice(0, 200)}`)
      return
    }
    const items = ((answer.data as unknown[] | null | undefined) ?? []).filter(isObj)
    // AMB udp #4: no lastQueryTime is returned: the next timestrap is the largest createTime seen. Whether the server
    // compares strictly or inclusively, re-delivered items are recognised (same createTime/state/imageUrl) and skipped.
    let maxTime = this.cursor
    let retryFrom: number | undefined
    // AMB udp #7: faces are keyed by phone; two items for one phone in an answer → the later one wins.
    const latest = new Map<string, Record<string, unknown>>()
    for (const item of items) {
      const t = Number(item.createTime)
      if (Number.isFinite(t) && t > maxTime) maxTime = t
      const phone = str(item.phone)
      if (!phone) {
        this.state.problem(`/updateImage item without phone: ${JSON.stringify(item).slice(0, 200)}`)
        continue
      }
      latest.set(phone, item)
    }
    for (const [phone, item] of latest) {
      const ok = await this.applyFaceItem(phone, item)
      if (!ok) {
        const t = Number(item.createTime)
        if (Number.isFinite(t)) retryFrom = Math.min(retryFrom ?? t, t)
      }
    }
    // An item whose photo could not be fetched (network) is asked for again next time.
    const next = retryFrom !== undefined ? Math.min(maxTime, retryFrom - 1) : maxTime
    if (next > this.cursor) this.cursor = next
    await this.flushReports()
  }

  /** Returns false when the item must be asked for again (transient failure). */
  private async applyFaceItem(phone: string, item: Record<string, unknown>): Promise<boolean> {
    const state = str(item.state) ?? ''
    const imageUrl = str(item.imageUrl) ?? ''
    const signature = `${str(item.createTime) ?? ''}|${state}|${imageUrl}`
    if (this.handled.get(phone) === signature) return true
    const ci = str(item.communityId)
    if (ci && ci !== this.state.community) this.state.log(`face ${phone}: item for community ${ci}, this device is ${this.state.community} (stored anyway)`)
    if (state === FACE_STATE.deleted) {
      const had = this.faceStore.delete(phone)
      this.state.log(`face ${phone} deleted${had ? '' : ' (was not stored)'}`)
      this.handled.set(phone, signature)
      if (this.state.opts.reportDeletes) this.pendingReports.push({ phone, state: FACE_STATE.deleted })
      return true
    }
    if (state !== FACE_STATE.added && state !== FACE_STATE.modified) {
      // 40/50 are the server's record of earlier verdicts; nothing to do on the device.
      if (state !== FACE_STATE.invalid && state !== FACE_STATE.valid) this.state.problem(`face ${phone}: unknown state ${JSON.stringify(item.state)}`)
      this.handled.set(phone, signature)
      return true
    }
    let photo: Buffer | undefined
    try {
      photo = await this.download(imageUrl)
    } catch (e) {
      if (e instanceof HttpStatusError) {
        this.state.log(`face ${phone}: image ${imageUrl} not downloadable (HTTP ${e.status}): invalid`)
      } else {
        this.state.log(`face ${phone}: image download failed (${errMsg(e)}), will ask again`)
        return false
      }
    }
    const valid = photo !== undefined && isJpeg(photo) && !photo.includes(this.marker)
    this.handled.set(phone, signature)
    if (valid) {
      this.faceStore.set(phone, {
        phone,
        roomNumber: str(item.roomNumber) ?? '',
        unitId: str(item.unitId) ?? '',
        communityId: str(item.communityId) ?? this.state.community,
        createTime: item.createTime,
        imageUrl,
        state: FACE_STATE.valid,
        photoBytes: photo!.length,
        photoSha256: createHash('sha256').update(photo!).digest('hex'),
      })
      this.state.log(`face ${phone} enrolled (${photo!.length} bytes)`)
      this.pendingReports.push({ phone, state: FACE_STATE.valid, ...(this.state.opts.featureFile !== false ? { feature: featureOf(photo!) } : {}) })
    } else {
      // An invalid photo for a modified face leaves the earlier face in place.
      this.state.log(`face ${phone} rejected: ${photo === undefined ? 'no image' : !isJpeg(photo) ? 'not a JPEG' : 'no face detected'}`)
      this.pendingReports.push({ phone, state: FACE_STATE.invalid })
    }
    return true
  }

  /**
   * AMB udp #5: imageUrl may be absolute or a path. A path is taken relative to httpUrl (prefix kept); when
   * httpUrl has a path prefix and that gives 404, the server's origin is tried (section 5's example path
   * /data/page/uploadImages/… looks origin-rooted).
   */
  private async download(imageUrl: string): Promise<Buffer> {
    if (!imageUrl) throw new HttpStatusError(404, 'empty imageUrl')
    const candidates: URL[] = []
    if (/^https?:\/\//i.test(imageUrl)) candidates.push(new URL(imageUrl))
    else {
      const rel = imageUrl.startsWith('/') ? imageUrl : `/${imageUrl}`
      const prefixed = new URL(this.transport.http.href)
      prefixed.pathname = prefixed.pathname.replace(/\/+$/, '') + rel.split('?')[0]
      prefixed.search = rel.includes('?') ? rel.slice(rel.indexOf('?')) : ''
      candidates.push(prefixed)
      const rooted = new URL(rel, this.transport.http.origin)
      if (rooted.href !== prefixed.href) candidates.push(rooted)
    }
    let last: HttpStatusError | undefined
    for (const u of candidates) {
      const res = await this.transport.request(u, 'GET')
      this.state.log(`GET ${u.href} -> ${res.status} (${res.body.length} bytes)`)
      if (res.status >= 200 && res.status < 300) return res.body
      last = new HttpStatusError(res.status, `GET ${u.href}: HTTP ${res.status}`)
      if (res.status !== 404) break
    }
    throw last!
  }

  private async flushReports(): Promise<void> {
    const queue = this.pendingReports
    this.pendingReports = []
    for (const r of queue) {
      if (this.state.stopped) {
        this.pendingReports.push(r)
        continue
      }
      try {
        if (await this.authImage(r)) continue
      } catch (e) {
        this.state.log(`/authImage for ${r.phone} failed: ${errMsg(e)}`)
      }
      // Kept for the next poll (the face list will not repeat it once timestrap moved on), a few times at most.
      r.attempts = (r.attempts ?? 0) + 1
      if (r.attempts < MAX_REPORT_ATTEMPTS) this.pendingReports.push(r)
      else this.state.problem(`/authImage for ${r.phone} (state ${r.state}) given up after ${r.attempts} attempts`)
    }
  }

  /**
   * Section 6: parameters in the query string as its example (`/authImage?state=50&phone=…&iffile=1`) and again
   * in the body; the feature file is the multipart part `file`. iffile 1 = file sent, 2 = none.
   * communityId/deviceCode are added: the table names no device, yet the server must know which one judged (AMB udp #7).
   */
  private async authImage(r: PendingReport): Promise<boolean> {
    const fields: Record<string, string> = { phone: r.phone, state: r.state, iffile: r.feature ? '1' : '2', communityId: this.state.community, deviceCode: this.state.code }
    const payload = r.feature
      ? buildMultipart([
          ...Object.entries(fields).map(([name, data]) => ({ name, data })),
          { name: 'file', data: r.feature, filename: `${r.phone}.feature`, contentType: 'application/octet-stream' },
        ])
      : this.transport.encodeBody(fields)
    const answer = await this.transport.call(UDP_PATHS.authImage, payload, fields)
    // Section 6: 0000 received, 9999 failed.
    if (!this.transport.ok(answer)) {
      this.state.problem(`/authImage for ${r.phone} answered code ${String(answer.code)}: ${str(answer.message) ?? ''}`)
      return false
    }
    this.state.events.authReports++
    return true
  }
}

/** A stand-in "人脸特征码" file: 512 bytes derived from the photo (deterministic). */
function featureOf(photo: Buffer): Buffer {
  const out = Buffer.alloc(512)
  Buffer.from('FEAT', 'latin1').copy(out, 0)
  let h = createHash('sha256').update(photo).digest()
  for (let o = 4; o < out.length; o += h.length) {
    h.copy(out, o)
    h = createHash('sha256').update(h).digest()
  }
  return out
}

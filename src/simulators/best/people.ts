import { createHash } from 'node:crypto'
import { bad, BEST_CODES, checkUser, codeOf, errMsg, isJpeg, isObj, isOk, MAX_PHOTO_BYTES, MAX_USERS, obj, ok, str, strings, userToWire, USERS_PER_UPLOAD, type CmdResult, type Json } from './protocol.js'
import type { BestConnection } from './connection.js'
import type { BestState } from './state.js'

/** Users, their photos and cards: the cmd.data.* commands on people (3.14–3.25). */
export class BestPeople {
  constructor(private readonly state: BestState, private readonly conn: BestConnection) {}

  /** 3.14 cmd.data.update.user: store what arrives (password/passwordSalt untouched), merging with an existing user. */
  updateUsers(p: Json): CmdResult {
    if (!Array.isArray(p.users)) return bad('users must be an array')
    const failures: string[] = []
    let stored = 0
    for (const [i, raw] of p.users.entries()) {
      if (!isObj(raw)) {
        failures.push(`users[${i}]: not an object`)
        continue
      }
      const pin = str(raw.pin)
      if (!pin) {
        failures.push(`users[${i}]: pin is required`)
        continue
      }
      const problem = checkUser(raw)
      if (problem) {
        failures.push(`${pin}: ${problem}`)
        continue
      }
      if (!this.state.store.has(pin) && this.state.store.size >= MAX_USERS) {
        failures.push(`${pin}: device full (${MAX_USERS} users)`)
        continue
      }
      // AMBIGUITIES best #9: role values are never defined: kept as received.
      const prev = this.state.store.get(pin) ?? {}
      this.state.store.set(pin, { ...prev, ...raw, pin })
      stored++
    }
    if (failures.length) return { code: BEST_CODES.badParams, message: `${stored} stored, ${failures.length} refused: ${failures.join('; ')}` }
    return ok(`${stored} user(s) stored`)
  }

  /** 3.18 cmd.data.update.bioPhoto: download each photo from its url. */
  async updateBioPhotos(p: Json): Promise<CmdResult> {
    if (!Array.isArray(p.bioPhotos)) return bad('bioPhotos must be an array')
    const failures: string[] = []
    let code: string = BEST_CODES.ok
    const fail = (c: string, what: string): void => {
      failures.push(what)
      if (code === BEST_CODES.ok) code = c
    }
    let stored = 0
    for (const [i, raw] of p.bioPhotos.entries()) {
      const e = obj(raw)
      const pin = str(e.pin)
      const url = str(e.url)
      if (!pin || !url) {
        fail(BEST_CODES.badParams, `bioPhotos[${i}]: pin and url are required`)
        continue
      }
      const user = this.state.store.get(pin)
      if (!user) {
        fail(BEST_CODES.notFound, `${pin}: no such user`)
        continue
      }
      let bytes: Buffer
      try {
        bytes = await this.download(url)
      } catch (err) {
        fail(BEST_CODES.downloadFailed, `${pin}: download failed: ${errMsg(err)}`)
        continue
      }
      if (!isJpeg(bytes)) {
        fail(BEST_CODES.invalidPhoto, `${pin}: not a JPEG`)
        continue
      }
      if (this.state.o.invalidPhotoMarker && bytes.includes(Buffer.from(this.state.o.invalidPhotoMarker, 'ascii'))) {
        fail(BEST_CODES.invalidPhoto, `${pin}: no face detected in the photo`)
        continue
      }
      const type = str(e.type) ?? '9'
      const no = str(e.no) ?? '0' // 3.18: no/index default 0
      const index = str(e.index) ?? '0'
      const meta = { type, no, index, url, size: String(bytes.length), md5: createHash('md5').update(bytes).digest('hex') }
      const others = (Array.isArray(user.bioPhotos) ? (user.bioPhotos as Json[]) : []).filter((b) => !(b.type === type && b.no === no && b.index === index))
      user.bioPhotos = [...others, meta]
      stored++
    }
    if (failures.length) return { code, message: `${stored} stored, ${failures.length} refused: ${failures.join('; ')}` }
    return ok(`${stored} photo(s) stored`)
  }

  private async download(url: string): Promise<Buffer> {
    const target = new URL(url, this.state.o.server) // a relative url is taken relative to the server the device talks to
    const res = await fetch(target, { signal: AbortSignal.timeout(this.state.o.requestTimeoutMs) })
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    const len = Number(res.headers.get('content-length') ?? '0')
    if (len > MAX_PHOTO_BYTES) throw new Error(`photo larger than ${MAX_PHOTO_BYTES} bytes`)
    const buf = Buffer.from(await res.arrayBuffer())
    if (buf.length > MAX_PHOTO_BYTES) throw new Error(`photo larger than ${MAX_PHOTO_BYTES} bytes`)
    return buf
  }

  deleteUsers(p: Json): CmdResult {
    const pins = strings(p.pins)
    if (!pins) return bad('pins must be an array of pins')
    const missing: string[] = []
    for (const pin of pins) {
      if (!this.state.store.delete(pin)) missing.push(pin)
      this.state.cards.delete(pin)
    }
    // Deleting a user the device does not have leaves the device as asked: success, with a note.
    return ok(`${pins.length - missing.length} user(s) deleted${missing.length ? `, not present: ${missing.join(',')}` : ''}`)
  }

  deletePhotos(funcId: string, p: Json): CmdResult {
    if (funcId === 'cmd.data.delete.userPhoto') {
      const pins = strings(p.pins)
      if (!pins) return bad('pins must be an array of pins')
      for (const pin of pins) delete this.state.store.get(pin)?.userPhoto
      return ok('user photos deleted')
    }
    const list = Array.isArray(p.bioPhotos) ? p.bioPhotos : undefined
    if (!list) return bad('bioPhotos must be an array')
    for (const raw of list) {
      const e = obj(raw)
      const pin = str(e.pin) // 3.20: no pin = every user, no type = every type
      const type = str(e.type)
      const no = str(e.no)
      for (const [id, u] of this.state.store) {
        if (pin && id !== pin) continue
        if (!Array.isArray(u.bioPhotos)) continue
        u.bioPhotos = (u.bioPhotos as Json[]).filter((b) => !((!type || b.type === type) && (!no || b.no === no)))
      }
    }
    return ok('bio photos deleted')
  }

  updateCards(p: Json): CmdResult {
    if (!Array.isArray(p.multiCards)) return bad('multiCards must be an array')
    for (const raw of p.multiCards) {
      const c = obj(raw)
      const pin = str(c.pin)
      if (!pin || !str(c.card)) return bad('pin and card are required')
      const list = (this.state.cards.get(pin) ?? []).filter((x) => x.card !== c.card)
      this.state.cards.set(pin, [...list, c])
    }
    return ok(`${p.multiCards.length} card(s) stored`)
  }

  /**
   * 3.25 cmd.data.query.user, answered with 3.8 dev.data.upload.user. The users are uploaded
   * first, then dev.cmd.response, so that a server sees the data before the command completes.
   */
  async queryUsers(p: Json, cmdId: string): Promise<CmdResult> {
    const pin = str(p.pin)
    const all = !pin // 3.25: an empty pin asks for every user
    const list = all ? [...this.state.store.values()] : this.state.store.has(pin) ? [this.state.store.get(pin)!] : []
    const wire = list.map(userToWire)
    const batches: Json[][] = []
    for (let i = 0; i < wire.length; i += USERS_PER_UPLOAD) batches.push(wire.slice(i, i + USERS_PER_UPLOAD))
    if (batches.length === 0) batches.push([]) // an empty list is uploaded too, so the server's answer is never missing
    for (const users of batches) {
      // AMBIGUITIES best #8: dev.data.upload.user carries no cmdId in the document; it is added (4.2.2 allows cmdId on command replies) to spare the server matching by time/pin.
      const reply = await this.conn.request({ funcId: 'dev.data.upload.user', payload: { params: { cmdId, users } } })
      if (!isOk(reply)) return { code: BEST_CODES.failed, message: `dev.data.upload.user answered ${codeOf(reply)} ${str(reply.message) ?? ''}`.trim() }
    }
    if (!all && list.length === 0) return { code: BEST_CODES.notFound, message: `no user ${pin}` }
    return ok(`${list.length} user(s) uploaded`)
  }
}

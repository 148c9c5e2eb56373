/**
 * The httpv2 handler mounted in a real Gateway, driven by plain fetch requests playing the
 * device as httpv2-face.md describes it (keepalive → flags → the endpoints they point to).
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Inventory } from '../../src/store/inventory.js'
import { createHandler, type Httpv2Options } from '../../src/drivers/httpv2/gateway.js'
import type { DeviceEntry, Logger, PersonOutcome } from '../../src/types/driver.js'
import { Gateway } from '../../src/gateway/gateway.js'
import type { CommandKind, QueuedCommand } from '../../src/types/gateway.js'

type Json = Record<string, any>
const SN = 'FC-8200H12345678'
const FACE_PATH = join(import.meta.dirname, '..', 'fixtures', 'face.jpg')
const FACE = readFileSync(FACE_PATH)

interface Part {
  name: string
  data: Buffer | string
  filename?: string
  type?: string
  gzip?: boolean
}

/** multipart/form-data built by hand: per-part Content-Encoding is something FormData cannot do. */
function multipart(parts: Part[]): { body: Buffer; type: string } {
  const boundary = '--------------------------506873351428002157394455'
  const chunks: Buffer[] = []
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}\r\n`
    if (p.gzip) head += 'Content-Encoding: gzip\r\n'
    if (p.type) head += `Content-Type: ${p.type}\r\n`
    const data = typeof p.data === 'string' ? Buffer.from(p.data) : p.data
    chunks.push(Buffer.from(head + '\r\n'), p.gzip ? gzipSync(data) : data, Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(chunks), type: `multipart/form-data; boundary=${boundary}` }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

class Harness {
  home = mkdtempSync(join(tmpdir(), 'doorctl-httpv2-'))
  warnings: string[] = []
  gw!: Gateway
  device: DeviceEntry = { name: 'door-1', protocol: 'httpv2', sn: SN, tags: [] }
  base = ''

  async start(opts: Httpv2Options = {}, settings: Json = {}) {
    new Inventory(this.home).save([this.device])
    const log: Logger = { debug() {}, info() {}, notice() {}, warn: (m, f) => this.warnings.push(`${m} ${JSON.stringify(f ?? {})}`) }
    this.gw = new Gateway({
      home: this.home, log,
      settings: { httpPort: 0, bind: '127.0.0.1', maxBodyBytes: 256 * 1024, ...settings },
      handlers: [createHandler({ ackQuietMs: 60_000, pushQuietMs: 150, ...opts })],
    })
    await this.gw.start()
    this.base = `http://127.0.0.1:${this.gw.httpPort}`
  }

  async stop() {
    await this.gw.stop()
    rmSync(this.home, { recursive: true, force: true })
  }

  async raw(path: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<{ status: number; json: Json }> {
    const res = await fetch(this.base + path, { method: 'POST', body, headers })
    const text = await res.text()
    return { status: res.status, json: text ? JSON.parse(text) : {} }
  }

  async post(path: string, body: Json, opts: { gzip?: boolean } = {}): Promise<Json> {
    const text = JSON.stringify(body)
    const r = opts.gzip
      ? await this.raw(path, gzipSync(text), { 'content-type': 'application/json', 'content-encoding': 'gzip' })
      : await this.raw(path, text, { 'content-type': 'application/json' })
    expect(r.status, `${path} → ${JSON.stringify(r.json)}`).toBe(200)
    return r.json
  }

  async form(path: string, parts: Part[]): Promise<{ status: number; json: Json }> {
    const m = multipart(parts)
    return this.raw(path, m.body, { 'content-type': m.type })
  }

  keepalive(extra: Json = {}) {
    return this.post('/Device/Keepalive', { SN, RelayStatus: 0, KeepOpenStatus: 0, DoorSensorStatus: 0, LockDoorStatus: 0, AlarmStatus: '', ...extra })
  }

  submit(kind: CommandKind, payload: Json = {}): QueuedCommand {
    return this.gw.submit(this.device, kind, payload, 60_000)
  }

  cmd(id: number): QueuedCommand {
    return this.gw.command(id)!
  }

  async final(id: number): Promise<QueuedCommand> {
    return this.gw.waitFor(id, AbortSignal.timeout(5000))
  }
}

let h: Harness
beforeEach(() => {
  h = new Harness()
})
afterEach(async () => {
  await h.stop()
})

describe('presence and identity', () => {
  it('unknown SN → Success 401 and remembered as discovered; a known one is touched with its door status', async () => {
    await h.start()
    const r = await h.post('/Device/Keepalive', { SN: 'FC-0000X99999999', RelayStatus: 0 })
    expect(r.Success).toBe(401)
    expect(h.gw.discoveredDevices().map((d) => [d.protocol, d.identity])).toEqual([['httpv2', 'FC-0000X99999999']])
    // the unknown device gets 401 on every endpoint
    expect((await h.post('/People/DownloadPeopleList', { SN: 'FC-0000X99999999', Limit: 10 })).Success).toBe(401)

    // the document's own keepalive example, trailing comma and all
    const ex = await h.raw('/Device/Keepalive', `{\n    "SN":"${SN}", \n    "RelayStatus":\t0,\n    "KeepOpenStatus":\t0,\n    "DoorSensorStatus":\t1,\n    "LockDoorStatus":\t0,\n    "AlarmStatus":\t"fire",\n}`, { 'content-type': 'application/json' })
    expect(ex).toEqual({ status: 200, json: { Success: 1 } })
    const p = h.gw.presence().find((x) => x.device === 'door-1')!
    expect(p.online).toBe(true)
    expect(p.address).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(p.info).toMatchObject({ doorOpen: true, locked: false, alarms: ['fire'] })
  })

  it('accepts gzip bodies by header; bad JSON, bad gzip, oversized and missing SN get the error answer, and the gateway goes on', async () => {
    await h.start()
    expect(await h.keepalive()).toEqual({ Success: 1 })
    expect(await h.post('/Device/Keepalive', { SN }, { gzip: true })).toEqual({ Success: 1 })
    const badJson = await h.raw('/Device/Keepalive', '{"SN": "x", ', { 'content-type': 'application/json' })
    expect(badJson.status).toBe(400)
    expect(badJson.json).toMatchObject({ Success: 0, Message: expect.any(String) })
    const badGzip = await h.raw('/Device/Keepalive', Buffer.from([0x1f, 0x8b, 1, 2, 3]), { 'content-type': 'application/json', 'content-encoding': 'gzip' })
    expect(badGzip.status).toBe(400)
    expect(badGzip.json.Success).toBe(0)
    const big = await h.raw('/Device/Keepalive', JSON.stringify({ SN, pad: 'x'.repeat(300 * 1024) }), { 'content-type': 'application/json' })
    expect(big.status).toBe(413)
    expect(big.json.Success).toBe(0)
    const noSn = await h.raw('/Device/Keepalive', '{"RelayStatus":0}', { 'content-type': 'application/json' })
    expect(noSn).toEqual({ status: 400, json: { Success: 0, Message: 'SN missing' } })
    const badRecord = await h.form('/Record/UploadIdentifyRecord', [{ name: 'SN', data: SN }, { name: 'RecordDetail', data: '{not json' }])
    expect(badRecord.json).toEqual({ Success: 0, Message: 'RecordDetail is not a JSON object' })
    expect(h.warnings.some((w) => w.includes('httpv2 malformed request') && w.includes('RecordDetail'))).toBe(true)
    expect(h.warnings.some((w) => w.includes('SN missing'))).toBe(true)
    expect(await h.keepalive()).toEqual({ Success: 1 })
  })
})

describe('remote commands', () => {
  it('open: flags with Success 1 → RemoteCommand gives Opendoor → the next keepalive acknowledges it', async () => {
    await h.start()
    const c = h.submit('open', { mode: 'keep-open' })
    expect(await h.keepalive()).toEqual({ Success: 1, Remote: 1 })
    expect(h.cmd(c.id).state).toBe('queued')
    expect(await h.post('/Device/RemoteCommand', { SN })).toEqual({ Success: 1, Opendoor: 2 })
    expect(h.cmd(c.id).state).toBe('delivered')
    expect(await h.keepalive()).toEqual({ Success: 1 })
    const done = await h.final(c.id)
    expect(done.state).toBe('acknowledged')
    expect(done.result?.message).toBe('door kept open')
  })

  it('a lost answer: RemoteCommand twice in a row gets the same command, not the next one', async () => {
    await h.start()
    const open = h.submit('open', { mode: 'pulse' })
    const reboot = h.submit('reboot')
    expect(await h.keepalive()).toEqual({ Success: 1, Remote: 1 })
    expect(await h.post('/Device/RemoteCommand', { SN })).toEqual({ Success: 1, Opendoor: 1 })
    expect(await h.post('/Device/RemoteCommand', { SN })).toEqual({ Success: 1, Opendoor: 1 })
    expect(await h.post('/device/selectRestart', { SN })).toEqual({ Success: 1, Opendoor: 1 }) // the v1 path is the same endpoint
    expect(h.cmd(open.id).state).toBe('delivered')
    expect(h.cmd(reboot.id).state).toBe('queued')
    // the next keepalive acknowledges the open and raises the reboot
    expect(await h.keepalive()).toEqual({ Success: 1, Remote: 1 })
    expect(h.cmd(open.id).state).toBe('acknowledged')
    expect(await h.post('/Device/RemoteCommand', { SN })).toEqual({ Success: 1, Restart: 1 })
    // any other request acknowledges too
    await h.form('/Record/UploadIdentifyRecord', [{ name: 'SN', data: SN }, { name: 'RecordDetail', data: '{"RecordID":1,"RecordType":3,"RecordDate":1718616771,"UserID":"1"}' }])
    expect((await h.final(reboot.id)).state).toBe('acknowledged')
    // nothing left: RemoteCommand now hands nothing over
    expect(await h.keepalive()).toEqual({ Success: 1 })
    expect(await h.post('/Device/RemoteCommand', { SN })).toEqual({ Success: 1 })
  })

  it('a hand-over is acknowledged after a quiet period without a repeat', async () => {
    await h.start({ ackQuietMs: 100 })
    const c = h.submit('repostRecords')
    await h.keepalive()
    expect(await h.post('/Device/RemoteCommand', { SN })).toEqual({ Success: 1, RepostRecord: 1 })
    const done = await h.final(c.id)
    expect(done.state).toBe('acknowledged')
    expect(done.result?.message).toMatch(/upload all its records again/)
  })

  it('one command at a time in queue order, whatever the device flag priority', async () => {
    await h.start()
    const del = h.submit('deletePeople', { ids: ['7'] })
    const open = h.submit('open', { mode: 'pulse' })
    const info = h.submit('info')
    // DeletePeople ranks below Remote and UploadWorkParameter for the device: raised alone, so it goes first
    expect(await h.keepalive()).toEqual({ Success: 1, DeletePeople: 1 })
    expect(await h.post('/People/DeletePeopleList', { SN })).toEqual({ Success: 1, DeleteAll: 0, DeleteCount: 1, DeleteList: [7] })
    expect(await h.post('/People/DeletePeopleListResult', { SN, DeleteCount: 1, DeleteAll: 0, DeleteList: [7] })).toEqual({ Success: 1 })
    expect(await h.post('/People/DeletePeopleList', { SN })).toMatchObject({ Success: 1, DeleteList: [] })
    expect(h.cmd(del.id).state).toBe('acknowledged')
    expect(await h.keepalive()).toEqual({ Success: 1, Remote: 1 })
    expect(await h.post('/Device/RemoteCommand', { SN })).toEqual({ Success: 1, Opendoor: 1 })
    expect(await h.keepalive()).toEqual({ Success: 1, UploadWorkParameter: 1 })
    expect(h.cmd(open.id).state).toBe('acknowledged')
    expect(h.cmd(info.id).state).toBe('delivered')
    expect(await h.post('/Device/UploadWorkSetting', {
      DeviceSN: SN, Volume: 6, TimeZone: 8, FaceThreshold: 58, FirmwareVerson: '8.46', RTSPPassword: 'secret',
      PeopleStorageInfo: { Person: { Max: 20000, Current: 1 } },
    })).toEqual({ Success: 1 })
    const done = await h.final(info.id)
    expect(done.state).toBe('acknowledged')
    expect(done.result?.data).toMatchObject({ device: { FirmwareVerson: '8.46' }, system: { Volume: 6, TimeZone: 8 }, face: { FaceThreshold: 58 }, services: { RTSPPassword: '(set)' } })
  })

  it('syncTime and setConfig through DownloadWorkSetting; a +05:30 zone is rounded and said; bad keys fail at once', async () => {
    await h.start({ ackQuietMs: 100 })
    const bad = h.submit('setConfig', { section: 'system', values: { Loudness: '3' } })
    const badDone = h.cmd(bad.id)
    expect(badDone.state).toBe('failed')
    expect(badDone.result?.message).toMatch(/unknown setting "Loudness" for section system/)

    const t = h.submit('syncTime', { epochMs: Date.UTC(2024, 5, 15, 3, 20, 32), utcOffsetMinutes: 330 })
    const s = h.submit('setConfig', { section: 'system', values: { volume: '3' } })
    expect(await h.keepalive()).toEqual({ Success: 1, SyncParameter: 1 })
    expect(await h.post('/Device/DownloadWorkSetting', { SN })).toEqual({ Success: 1, DeviceSN: SN, SystemTime: 1718421632, TimeZone: 6 })
    expect(await h.post('/Device/DownloadWorkSetting', { SN })).toEqual({ Success: 1, DeviceSN: SN, SystemTime: 1718421632, TimeZone: 6 })
    const td = await h.final(t.id)
    expect(td.state).toBe('acknowledged')
    expect(td.result?.message).toMatch(/rounded from UTC\+05:30 to UTC\+06:00/)
    expect(await h.keepalive()).toEqual({ Success: 1, SyncParameter: 1 })
    expect(await h.post('/Device/DownloadWorkSetting', { SN })).toEqual({ Success: 1, DeviceSN: SN, Volume: 3 })
    expect(await h.keepalive()).toEqual({ Success: 1 })
    expect((await h.final(s.id)).result?.message).toBe('set Volume')
  })

  it('snapshot, and enrollment by capture (table object + flat fields)', async () => {
    await h.start()
    const snap = h.submit('snapshot')
    expect(await h.keepalive()).toEqual({ Success: 1, Remote: 1 })
    expect(await h.post('/Device/RemoteCommand', { SN })).toEqual({ Success: 1, Snapshoot: 1 })
    const up = await h.form('/Device/UploadSnapshoot', [{ name: 'SN', data: SN }, { name: 'Photo', data: FACE, filename: 'snap.jpg', type: 'image/jpeg' }])
    expect(up.json).toEqual({ Success: 1 })
    const sd = await h.final(snap.id)
    expect(sd.state).toBe('acknowledged')
    expect(Buffer.from(sd.result!.data!.photoBase64 as string, 'base64').equals(FACE)).toBe(true)

    const enroll = h.submit('enrollFace', { id: '1', capture: true })
    expect(await h.keepalive()).toEqual({ Success: 1, Remote: 1 })
    expect(await h.post('/Device/RemoteCommand', { SN })).toEqual({ Success: 1, RegisterIdentifyTicket: { RegisterType: 4, UserID: 1 }, RegisterIdentifyUserID: 1 })
    await h.keepalive() // the person takes a while: keepalives do not finish an enrollment
    expect(h.cmd(enroll.id).state).toBe('delivered')
    const res = await h.form('/Device/RegisterIdentifyTicketResult', [
      { name: 'ResultJson', data: JSON.stringify({ SN, UserID: 1, Result: 1, UserDetail: { UserID: '1', Name: 'Ann' } }), gzip: true },
      { name: 'Photo', data: FACE, filename: 'Photo.jpg', type: 'image/jpeg' },
    ])
    expect(res.json).toEqual({ Success: 1 })
    const ed = await h.final(enroll.id)
    expect(ed.state).toBe('acknowledged')
    expect(ed.result?.people).toEqual([{ id: '1', status: 'ok', action: 'enrolled', message: 'face captured and enrolled on the device (photo received)' }])

    const dup = h.submit('enrollFace', { id: '2', capture: true })
    await h.keepalive()
    await h.post('/Device/RemoteCommand', { SN })
    await h.form('/Device/RegisterIdentifyTicketResult', [{ name: 'ResultJson', data: JSON.stringify({ SN, UserID: 2, Result: 3, RepetitionUserID: 1 }) }])
    const dd = await h.final(dup.id)
    expect(dd.result?.people?.[0]).toMatchObject({ id: '2', status: 'failed', deviceCode: 3, message: 'this face is already registered for person 1' })
  })
})

describe('people', () => {
  it('imports 25 people in batches of 10 with one refusal, photos by URL, then verifies the faces', async () => {
    await h.start()
    const people = Array.from({ length: 25 }, (_, i) => ({ id: String(i + 1), name: `P${i + 1}`, card: String(1000 + i) }))
    Object.assign(people[0], { photoPath: FACE_PATH, role: 'admin', validTo: Date.UTC(2030, 0, 1) })
    Object.assign(people[1], { photoPath: FACE_PATH })
    Object.assign(people[24], { password: 'abc' }) // not 4–8 digits: refused before sending
    const c = h.submit('upsertPeople', { people })
    expect(await h.keepalive()).toEqual({ Success: 1, AddPeople: 1 })

    const b1 = await h.post('/People/DownloadPeopleList', { SN, Limit: 10 })
    expect(b1).toMatchObject({ Success: 1, PeopleCount: 10, Count: 10 })
    expect(b1.PeopleList.map((p: Json) => p.UserID)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10'])
    const p1 = b1.PeopleList[0]
    expect(p1).toMatchObject({ UserID: '1', Name: 'P1', CardNum: '1000', AccessType: 1, ExpirationDate: Date.UTC(2030, 0, 1) / 1000, PhotoLen: FACE.length })
    expect(p1.PhotoMD5).toBe(createHash('md5').update(FACE).digest('hex').toUpperCase())
    expect(p1.Photo).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${h.gw.httpPort}/doorctl/files/`))
    expect(b1.PeopleList[2]).toEqual({ UserID: '3', Name: 'P3', CardNum: '1002', AccessType: 0, ExpirationDate: 0 })
    // the device downloads the photo from the URL
    const photo = Buffer.from(await (await fetch(p1.Photo)).arrayBuffer())
    expect(photo.equals(FACE)).toBe(true)
    expect(h.cmd(c.id).state).toBe('delivered')
    expect(await h.post('/People/DownloadPeopleListResult', { SN, SuccessCount: 10, FailCount: 0, FailList: [] })).toEqual({ Success: 1 })

    const b2 = await h.post('/People/DownloadPeopleList', { SN, Limit: 10 })
    expect(b2.PeopleList.map((p: Json) => p.UserID)).toEqual(['11', '12', '13', '14', '15', '16', '17', '18', '19', '20'])
    // the example's shape: FailCount twice, RepeatID a number
    const dupFail = `{"SN":"${SN}","SuccessCount":9,"FailCount":1,"FailCount":[{"UserID":"13","ErrorCode":23,"RepeatID":4,"ErrMsg":""}]}`
    expect((await h.raw('/People/DownloadPeopleListResult', dupFail, { 'content-type': 'application/json' })).json).toEqual({ Success: 1 })
    expect(h.cmd(c.id).result?.message).toBe('21 of 25 answered') // 20 reported + the refused one

    const b3 = await h.post('/DevicePass/SelectPassInfo', { SN, Limit: 10 }) // v1 path, same loop
    expect(b3.PeopleList.map((p: Json) => p.UserID)).toEqual(['21', '22', '23', '24'])
    await h.post('/People/DownloadPeopleListResult', { SN, SuccessCount: 4, FailCount: 0 })
    expect(await h.post('/People/DownloadPeopleList', { SN, Limit: 10 })).toEqual({ Success: 1, PeopleCount: 0, Count: 0, PeopleList: [] })

    // everyone answered; faces of 1 and 2 are checked with QueryPeople before the command finishes
    expect(h.cmd(c.id).state).toBe('delivered')
    expect(await h.keepalive()).toEqual({ Success: 1, Remote: 1 })
    expect(await h.post('/Device/RemoteCommand', { SN })).toEqual({ Success: 1, QueryPeople: [1, 2] })
    const push = (id: string, withPhoto: boolean) => h.form('/People/PushPeople', [
      { name: 'SN', data: SN }, { name: 'PushType', data: '4' }, { name: 'UserID', data: id },
      { name: 'Detail', data: JSON.stringify({ UserID: id, Name: `P${id}`, Photo: '', PhotoLen: withPhoto ? FACE.length : 0 }), gzip: true },
      ...(withPhoto ? [{ name: 'Photo', data: FACE, filename: 'Photo.jpg', type: 'image/jpeg' }] : []),
    ])
    expect((await push('1', true)).json).toEqual({ Success: 1 })
    expect((await push('2', false)).json).toEqual({ Success: 1 })
    const done = await h.final(c.id)
    expect(done.state).toBe('acknowledged')
    const out = done.result!.people as PersonOutcome[]
    expect(out).toHaveLength(25)
    expect(out.map((o) => o.id)).toEqual(people.map((p) => p.id))
    expect(out.filter((o) => o.status === 'ok')).toHaveLength(22)
    expect(out[0]).toEqual({ id: '1', name: 'P1', status: 'ok', action: 'added', message: 'stored, face verified' })
    expect(out[1]).toMatchObject({ id: '2', status: 'failed', message: expect.stringMatching(/no face for this person after the update/) })
    expect(out[12]).toEqual({ id: '13', name: 'P13', status: 'failed', action: 'added', message: 'this card number is already used by another person (same as person 4)', deviceCode: 23 })
    expect(out[24]).toMatchObject({ id: '25', status: 'failed', message: expect.stringMatching(/^password must be 4 to 8 digits.*; not sent$/) })
    expect(done.result?.message).toBe('22 of 25 stored')
  })

  it('a batch asked for again before its report is handed out again; one report after the loop closes every batch', async () => {
    await h.start()
    const c = h.submit('upsertPeople', { people: [{ id: '1' }, { id: '2' }, { id: '3' }] })
    await h.keepalive()
    const first = await h.post('/People/DownloadPeopleList', { SN, Limit: 2 })
    expect(await h.post('/People/DownloadPeopleList', { SN, Limit: 2 })).toEqual(first) // lost answer
    // resends are bounded: then the device is taken to report after its loop (AMBIGUITIES #7)
    for (let i = 0; i < 2; i++) await h.post('/People/DownloadPeopleList', { SN, Limit: 2 })
    const second = await h.post('/People/DownloadPeopleList', { SN, Limit: 2 })
    expect(second.PeopleList.map((p: Json) => p.UserID)).toEqual(['3'])
    // known now to report after its loop: no more resends
    expect((await h.post('/People/DownloadPeopleList', { SN, Limit: 2 })).PeopleList).toEqual([])
    expect(h.cmd(c.id).state).toBe('delivered')
    await h.post('/People/DownloadPeopleListResult', { SN, SuccessCount: 2, FailCount: 1, FailList: [{ UserID: 3, ErrorCode: 24, RepeatID: '' }] })
    const done = await h.final(c.id)
    expect(done.result?.people?.map((o) => [o.id, o.status, o.deviceCode])).toEqual([['1', 'ok', undefined], ['2', 'ok', undefined], ['3', 'failed', 24]])
  })

  it('a device that never reports: the keepalive after its loop gives those people a timeout', async () => {
    await h.start()
    const c = h.submit('upsertPeople', { people: [{ id: '1' }, { id: '2' }] })
    await h.keepalive()
    await h.post('/People/DownloadPeopleList', { SN, Limit: 10 })
    await h.post('/People/DownloadPeopleListResult', { SN, SuccessCount: 2, FailCount: 0 })
    expect((await h.final(c.id)).result?.people?.map((o) => o.status)).toEqual(['ok', 'ok'])
    const c2 = h.submit('upsertPeople', { people: [{ id: '1', name: 'again' }] })
    await h.keepalive()
    await h.post('/People/DownloadPeopleList', { SN, Limit: 10 })
    await h.post('/People/DeletePeopleList', { SN }) // any other request between: not a repeat
    await h.post('/People/DownloadPeopleList', { SN, Limit: 10 })
    await h.keepalive()
    const d2 = await h.final(c2.id)
    expect(d2.result?.people).toEqual([{ id: '1', name: 'again', status: 'timeout', action: 'updated', message: 'the device took this person but reported no result for it' }])
  })

  it('enrollFace with a photo keeps what the device told us about the person', async () => {
    await h.start()
    // the device pushed person 5 earlier (a change on its menu)
    await h.form('/People/PushPeople', [{ name: 'SN', data: SN }, { name: 'PushType', data: '2' }, { name: 'UserID', data: '5' }, { name: 'Detail', data: JSON.stringify({ UserID: '5', Name: 'Eve', AccessType: 1, CardNum: '55' }) }])
    const c = h.submit('enrollFace', { id: '5', photoPath: FACE_PATH, capture: false })
    expect(await h.keepalive()).toEqual({ Success: 1, AddPeople: 1 })
    const b = await h.post('/People/DownloadPeopleList', { SN, Limit: 10 })
    expect(b.PeopleList[0]).toMatchObject({ UserID: '5', Name: 'Eve', AccessType: 1, CardNum: '55', PhotoLen: FACE.length })
    expect(b.PeopleList[0].ExpirationDate).toBeUndefined()
    await h.post('/People/DownloadPeopleListResult', { SN, SuccessCount: 1, FailCount: 0 })
    await h.post('/People/DownloadPeopleList', { SN, Limit: 10 })
    expect(await h.keepalive()).toEqual({ Success: 1, Remote: 1 })
    expect(await h.post('/Device/RemoteCommand', { SN })).toEqual({ Success: 1, QueryPeople: [5] })
    await h.form('/People/PushPeople', [
      { name: 'SN', data: SN }, { name: 'PushType', data: '4' }, { name: 'UserID', data: '5' },
      { name: 'Detail', data: JSON.stringify({ UserID: '5', Name: 'Eve' }) }, { name: 'Photo', data: FACE, filename: 'p.jpg', type: 'image/jpeg' },
    ])
    const done = await h.final(c.id)
    expect(done.result?.people).toEqual([{ id: '5', status: 'ok', action: 'enrolled', message: 'photo stored, face verified' }])
  })

  it('deletes by id (numbers out, the DeletList typo in) and everyone with DeleteAll', async () => {
    await h.start()
    const c = h.submit('deletePeople', { ids: ['1', '2', '3', 'abc'] })
    expect(await h.keepalive()).toEqual({ Success: 1, DeletePeople: 1 })
    expect(await h.post('/DevicePass/SelectDeleteInfo', { SN })).toEqual({ Success: 1, DeleteAll: 0, DeleteCount: 3, DeleteList: [1, 2, 3] })
    await h.post('/People/DeletePeopleListResult', { SN, DeleteCount: 2, DeleteAll: 0, DeletList: [1, 2] })
    const done = await h.final(c.id)
    expect(done.state).toBe('acknowledged')
    expect(done.result?.people?.map((o) => [o.id, o.status])).toEqual([['1', 'ok'], ['2', 'ok'], ['3', 'failed'], ['abc', 'failed']])
    expect(done.result?.message).toBe('2 of 4 deleted')
    expect(await h.post('/People/DeletePeopleList', { SN })).toMatchObject({ DeleteList: [] })

    const all = h.submit('deletePeople', { ids: 'all' })
    expect(await h.keepalive()).toEqual({ Success: 1, DeletePeople: 1 })
    expect(await h.post('/People/DeletePeopleList', { SN, Limit: 100 })).toEqual({ Success: 1, DeleteAll: 1, DeleteCount: 0, DeleteList: [] })
    await h.post('/People/DeletePeopleListResult', { SN, DeleteCount: 25, DeleteAll: 1, DeleteList: [] })
    const ad = await h.final(all.id)
    expect(ad).toMatchObject({ state: 'acknowledged', result: { message: 'all people deleted', people: [] } })
  })

  it('PushAllPeople → list, ended by the device\'s people count', async () => {
    await h.start()
    const c = h.submit('listPeople')
    expect(await h.keepalive()).toEqual({ Success: 1, UploadWorkParameter: 1, Remote: 1 })
    await h.post('/Device/UploadWorkSetting', { DeviceSN: SN, TimeZone: 8, PeopleStorageInfo: { Person: { Max: 20000, Current: 2 } } })
    expect(await h.post('/Device/RemoteCommand', { SN })).toEqual({ Success: 1, PushAllPeople: 1 })
    for (const [id, name, photo] of [['1', 'Ann', true], ['2', 'Bob', false]] as const) {
      const r = await h.form('/People/PushPeople', [
        { name: 'SN', data: SN }, { name: 'PushType', data: '4' }, { name: 'UserID', data: id },
        { name: 'Detail', data: JSON.stringify({ UserID: id, Name: name, Department: 'R&D', CardNum: '0', AccessType: id === '1' ? 1 : 0, ExpirationDate: id === '2' ? 1893456000 : 0 }), gzip: true, type: 'application/octet-stream' },
        ...(photo ? [{ name: 'Photo', data: FACE, filename: 'Photo.jpg', type: 'image/jpeg' }] : []),
      ])
      expect(r.json).toEqual({ Success: 1 })
    }
    const done = await h.final(c.id)
    expect(done.state).toBe('acknowledged')
    expect(done.result?.data?.people).toEqual([
      { id: '1', name: 'Ann', card: '', phone: '', department: 'R&D', role: 'admin', hasPhoto: true, extras: {} },
      { id: '2', name: 'Bob', card: '', phone: '', department: 'R&D', role: 'user', validTo: 1893456000000, hasPhoto: false, extras: {} },
    ])
  })

  it('PushAllPeople without a count: ends once a keepalive came and the pushes went quiet', async () => {
    await h.start()
    const c = h.submit('listPeople')
    await h.keepalive()
    await h.post('/Device/RemoteCommand', { SN })
    await h.form('/People/PushPeople', [{ name: 'SN', data: SN }, { name: 'PushType', data: '4' }, { name: 'UserID', data: '9' }, { name: 'Detail', data: '{"UserID":"9","Name":"Zed"}' }])
    await sleep(250)
    expect(h.cmd(c.id).state).toBe('delivered') // no end marker: a quiet device alone is not the end
    expect(await h.keepalive()).toEqual({ Success: 1 })
    const done = await h.final(c.id)
    expect((done.result?.data?.people as Json[]).map((p) => p.id)).toEqual(['9'])
  })
})

describe('records and authorization', () => {
  it('stores a record once when the device retries it, with its photo; both part naming styles', async () => {
    await h.start()
    await h.post('/Device/UploadWorkSetting', { DeviceSN: SN, TimeZone: 8 })
    const upload = () => h.form('/Record/UploadIdentifyRecord', [
      { name: 'SN', data: ` ${SN}` },
      { name: 'recordJson', data: '{ "RecordID":120,"RecordType":3,"RecordDate":1718616771, "UserID":"1","Name":"1","IdentityCard":"","Job":"","Department":"","CardNum":"0","QRCode":"","IsEntry":1,"BodyTemp":0,"PhotoLen":40363}', gzip: true, type: 'application/octet-stream' },
      { name: 'pic', data: FACE, filename: 'Postman_file.jpg', type: 'image/jpeg' },
    ])
    expect((await upload()).json).toEqual({ Success: 1 })
    expect((await upload()).json).toEqual({ Success: 1 })
    const other = await h.form('/Record/UploadIdentifyRecord', [
      { name: 'SN', data: SN },
      { name: 'RecordDetail', data: '{"RecordID":121,"RecordType":19,"RecordDate":1718616800,"UserID":"0","IsEntry":0}' },
      { name: 'Photo', data: FACE, filename: 'x.jpg', type: 'image/jpeg' },
    ])
    expect(other.json).toEqual({ Success: 1 })
    const recs = h.gw.store.records('door-1', 0, 10)
    expect(recs).toHaveLength(2)
    expect(recs[0]).toMatchObject({ recordId: '120', time: 1718616771000, utcOffsetMinutes: 480, userId: '1', type: 'employee', result: 'granted', method: 'face', direction: 'in' })
    expect(h.gw.store.photo(recs[0].photoPath!)?.equals(FACE)).toBe(true)
    expect(recs[1]).toMatchObject({ recordId: '121', type: 'stranger', result: 'denied', direction: 'out', userId: '' })

    expect(await h.post('/Record/UploadSystemRecord', { SN, RecordType: 1, Records: [{ RecordID: 1, RecordType: 1, RecordDate: 1718616771 }, { RecordID: 2, RecordType: 2, RecordDate: 1718616772 }] })).toEqual({ Success: 1 })
    expect(await h.post('/Record/UploadSystemRecord', { SN, RecordType: 1, Records: [{ RecordID: 1, RecordType: 1, RecordDate: 1718616771 }] })).toEqual({ Success: 1 })
    const all = h.gw.store.records('door-1', 0, 10)
    expect(all.map((r) => [r.recordId, r.type, r.extras.event])).toEqual([
      ['120', 'employee', 'face'], ['121', 'stranger', 'unregistered person'], ['door-1', 'door', 'door opened'], ['door-2', 'door', 'door closed'],
    ])
  })

  it('RequestAuthorization: 2 for an allowed user, 0 with a message otherwise', async () => {
    const csv = join(h.home, 'allow.csv')
    writeFileSync(csv, 'id\n1\n')
    await h.start({}, { authorize: csv })
    const ask = (uid: string) => h.form('/Device/RequestAuthorization', [
      { name: 'SN', data: ` ${SN}` },
      { name: 'RecordDetail', data: JSON.stringify({ RecordID: 1718616771001, RecordType: 3, RecordDate: 1718616771, UserID: uid }), gzip: true, type: 'application/octet-stream' },
    ])
    expect((await ask('1')).json).toEqual({ Success: 2 })
    expect((await ask('5')).json).toEqual({ Success: 0, Message: 'Not authorized' })
    expect(h.gw.store.records('door-1', 0, 10)).toHaveLength(0)
  })
})

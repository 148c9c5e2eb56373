/**
 * The wsjson handler mounted in a real Gateway, driven by a plain `ws` client playing the device
 * as ws-json.txt describes it (register 205, heartbeat 206, events 207, answers to commands).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Inventory } from '../../src/store/inventory.js'
import { createHandler, type WsjsonHandler, type WsjsonOptions } from '../../src/drivers/wsjson/gateway.js'
import type { DeviceEntry, Logger } from '../../src/types/driver.js'
import { Gateway } from '../../src/gateway/gateway.js'
import type { CommandKind, QueuedCommand } from '../../src/types/gateway.js'

type Json = Record<string, any>
const SN = 'WS-0001'
const FACE_PATH = join(import.meta.dirname, '..', 'fixtures', 'face.jpg')
const FACE = readFileSync(FACE_PATH)
const FACE_B64 = FACE.toString('base64')

async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** A device: a ws client with an inbox of what the gateway sent. */
class Dev {
  inbox: Json[] = []
  raw: string[] = []
  closed = false
  closeCode?: number
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      const t = d.toString()
      this.raw.push(t)
      this.inbox.push(JSON.parse(t))
    })
    ws.on('close', (code) => { this.closed = true; this.closeCode = code })
  }

  static connect(url: string): Promise<Dev> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url)
      const d = new Dev(ws)
      ws.once('open', () => resolve(d))
      ws.once('error', reject)
    })
  }

  send(msg: Json | string): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg))
  }

  async next(pred: (m: Json) => boolean = () => true, what = 'a message', ms = 5000): Promise<Json> {
    let found: Json | undefined
    await until(() => {
      const i = this.inbox.findIndex(pred)
      if (i >= 0) found = this.inbox.splice(i, 1)[0]
      return found !== undefined
    }, ms, what)
    return found!
  }

  response(): Promise<Json> {
    return this.next((m) => m.command === 'response', 'a response')
  }

  command(name?: string): Promise<Json> {
    return this.next((m) => m.commandId !== undefined && (name === undefined || m.command === name), `command ${name ?? ''}`)
  }

  async register(sn = SN, type = '0'): Promise<Json> {
    this.send({ code: '205', data: { ip: '127.0.0.102', mac: '31231E2EW12W12', sn, type } })
    return this.response()
  }

  answer(cmd: Json, code = '200', body: unknown = '', field: 'data' | 'content' = 'data'): void {
    this.send({ code, [field]: body, commandId: cmd.commandId })
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve()
    return new Promise((r) => { this.ws.once('close', () => r()); this.ws.terminate() })
  }
}

class Harness {
  home = mkdtempSync(join(tmpdir(), 'doorctl-wsjson-'))
  warnings: string[] = []
  gw!: Gateway
  handler!: WsjsonHandler
  devices: DeviceEntry[] = [{ name: 'door-1', protocol: 'wsjson', sn: SN, tags: [] }, { name: 'door-2', protocol: 'wsjson', sn: 'WS-0002', tags: [] }]
  url = ''
  devs: Dev[] = []

  async start(opts: WsjsonOptions = {}, settings: Json = {}) {
    new Inventory(this.home).save(this.devices)
    const log: Logger = { debug() {}, info() {}, notice() {}, warn: (m, f) => this.warnings.push(`${m} ${JSON.stringify(f ?? {})}`) }
    this.handler = createHandler({ heartbeatSeconds: 7, ...opts })
    this.gw = new Gateway({ home: this.home, log, settings: { httpPort: 0, bind: '127.0.0.1', ...settings }, handlers: [this.handler] })
    await this.gw.start()
    this.url = `ws://127.0.0.1:${this.gw.httpPort}/wsjson`
  }

  async device(): Promise<Dev> {
    const d = await Dev.connect(this.url)
    this.devs.push(d)
    return d
  }

  async registered(sn = SN): Promise<Dev> {
    const d = await this.device()
    const r = await d.register(sn)
    expect(r.content.code).toBe('200')
    return d
  }

  async stop() {
    await Promise.all(this.devs.map((d) => d.close()))
    await this.gw.stop()
    rmSync(this.home, { recursive: true, force: true })
  }

  submit(kind: CommandKind | string, payload: Json = {}, device = 'door-1', timeoutMs = 60_000): QueuedCommand {
    return this.gw.submit(this.devices.find((d) => d.name === device)!, kind as CommandKind, payload, timeoutMs)
  }

  final(id: number, ms = 5000): Promise<QueuedCommand> {
    return this.gw.waitFor(id, AbortSignal.timeout(ms))
  }

  records(device = 'door-1') {
    return this.gw.store.records(device, 0, 1000)
  }
}

let h: Harness
beforeEach(() => {
  h = new Harness()
})
afterEach(async () => {
  await h.stop()
})

describe('register, heartbeat, presence', () => {
  it('a known device is answered 200 with the configured interval; presence has ip/mac/sn/type', async () => {
    await h.start({ heartbeatSeconds: 12 })
    const d = await h.device()
    const r = await d.register(SN, '2')
    expect(r).toEqual({ command: 'response', content: { code: '200', interval: '12', data: '' } })
    const p = h.gw.presence().find((x) => x.device === 'door-1')!
    expect(p).toMatchObject({ online: true, protocol: 'wsjson', info: { ip: '127.0.0.102', mac: '31231E2EW12W12', sn: SN, type: '2' } })
    d.send({ code: '206', data: { time: '2023-12-25 15:47:30' } })
    expect(await d.response()).toEqual({ command: 'response', content: { code: '200', data: '' } })
    const info = await h.final(h.submit('info').id)
    expect(info.state).toBe('acknowledged')
    expect(info.result?.data).toMatchObject({ sn: SN, ip: '127.0.0.102', mac: '31231E2EW12W12', type: '2', terminal: 'entry', heartbeat_seconds: 12 })
  })

  it('an unknown sn is answered 500, remembered as discovered, and the connection closed', async () => {
    await h.start()
    const d = await h.device()
    const r = await d.register('WS-STRANGER')
    expect(r.content.code).toBe('500')
    expect(r.content.data).toContain('WS-STRANGER')
    await until(() => d.closed, 5000, 'close')
    expect(h.gw.discoveredDevices().map((x) => x.identity)).toContain('WS-STRANGER')
  })

  it('heartbeats and events before register are answered 500, the connection kept', async () => {
    await h.start()
    const d = await h.device()
    d.send({ code: '206', data: { time: '2026-01-01 00:00:00' } })
    expect((await d.response()).content.code).toBe('500')
    expect(d.closed).toBe(false)
    expect((await d.register()).content.code).toBe('200')
  })
})

describe('people commands', () => {
  it('upsertPeople queued while connected goes down at once: addUser per person with all six fields; a refusal carries the device reason', async () => {
    await h.start()
    const d = await h.registered()
    const noface = join(h.home, 'noface.jpg')
    writeFileSync(noface, Buffer.concat([FACE, Buffer.from('NOFACE')]))
    const cmd = h.submit('upsertPeople', { people: [
      { id: '101', name: '张伟', role: 'admin', photoPath: FACE_PATH, card: '5001' },
      { id: '102', name: 'Maria', photoPath: noface },
      { id: '103', name: 'Lee', role: 'blacklist' },
    ] })
    const a1 = await d.command('addUser')
    expect(a1.content).toEqual({ user: '101', userId: '101', pwd: '', name: '张伟', role: '1', img: FACE_B64 })
    expect(typeof a1.commandId).toBe('string')
    expect(h.gw.command(cmd.id)!.state).toBe('delivered')
    d.answer(a1)
    const a2 = await d.command('addUser')
    expect(a2.commandId).not.toBe(a1.commandId)
    d.answer(a2, '500', 'no face')
    const done = await h.final(cmd.id)
    expect(done.state).toBe('acknowledged')
    expect(done.result?.people).toEqual([
      { id: '101', name: '张伟', status: 'ok', action: 'added', message: 'stored with face' },
      { id: '102', name: 'Maria', status: 'failed', action: 'add', message: 'no face', deviceCode: 500 },
      { id: '103', name: 'Lee', status: 'failed', message: expect.stringContaining('blacklist') },
    ])
    expect(done.result?.message).toContain('card not stored')
    expect(d.inbox.filter((m) => m.command === 'addUser')).toHaveLength(0)
  })

  it('an "exists" refusal to addUser is followed by editUser (#2: the section\'s command name)', async () => {
    await h.start()
    const d = await h.registered()
    const cmd = h.submit('upsertPeople', { people: [{ id: '7', name: 'Seven', password: '1234' }] })
    d.answer(await d.command('addUser'), '500', '用户已存在')
    const edit = await d.command('editUser')
    expect(edit.content).toEqual({ user: '7', userId: '7', pwd: '1234', name: 'Seven', role: '0' })
    d.answer(edit)
    const done = await h.final(cmd.id)
    expect(done.result?.people).toEqual([{ id: '7', name: 'Seven', status: 'ok', action: 'updated', message: 'stored' }])
  })

  it('commands queued while the device is offline go down when it registers', async () => {
    await h.start()
    const cmd = h.submit('deletePeople', { ids: ['1', '2'] })
    const d = await h.registered()
    const del1 = await d.command('deleteUser')
    expect(del1.content).toEqual({ userId: '1' })
    d.answer(del1)
    d.answer(await d.command('deleteUser'), '500', 'no user 2')
    const done = await h.final(cmd.id)
    expect(done.result?.people).toEqual([
      { id: '1', status: 'ok', action: 'deleted', message: 'deleted' },
      { id: '2', status: 'failed', action: 'delete', message: 'no user 2', deviceCode: 500 },
    ])
  })

  it('listPeople: selectUser with no parameters, 203 in content or data (#3), answer without commandId (#7)', async () => {
    await h.start()
    const d = await h.registered()
    const cmd = h.submit('listPeople')
    const sel = await d.command('selectUser')
    expect(sel.content).toEqual({})
    d.send({ code: '203', content: [
      { user: 'lisi', userId: '12384865', pwd: '1234', name: '李四', role: '0', img: 'abcd' },
      { user: 'a', userId: '2', pwd: '', name: 'Admin', role: '1', img: '' },
    ] })
    const done = await h.final(cmd.id)
    expect(done.state).toBe('acknowledged')
    expect(done.result?.data?.people).toEqual([
      { id: '12384865', name: '李四', card: '', phone: '', department: '', role: 'user', hasPhoto: true, extras: { user: 'lisi', password_set: true } },
      { id: '2', name: 'Admin', card: '', phone: '', department: '', role: 'admin', hasPhoto: false, extras: { user: 'a', password_set: false } },
    ])
    // what the device listed names later deletes
    const del = h.submit('deletePeople', { ids: ['12384865'] })
    const du = await d.command('deleteUser')
    expect(du.content).toEqual({ userId: '12384865', name: '李四' })
    d.answer(du, '200', '', 'content')
    expect((await h.final(del.id)).state).toBe('acknowledged')
  })

  it('deletePeople all: selectUser, then deleteUser for each', async () => {
    await h.start()
    const d = await h.registered()
    const cmd = h.submit('deletePeople', { ids: 'all' })
    d.answer(await d.command('selectUser'), '203', [{ userId: 'a', name: 'A' }, { userId: 'b', name: 'B' }], 'data')
    d.answer(await d.command('deleteUser'))
    d.answer(await d.command('deleteUser'))
    const done = await h.final(cmd.id)
    expect(done.result?.people?.map((p) => [p.id, p.status])).toEqual([['a', 'ok'], ['b', 'ok']])
  })

  it('enrollFace: editUser with the photo; a device refusal is the person\'s failure', async () => {
    await h.start()
    const d = await h.registered()
    const ok = h.submit('enrollFace', { id: '101', photoPath: FACE_PATH, capture: false })
    const e = await d.command('editUser')
    expect(e.content).toEqual({ userId: '101', img: FACE_B64 })
    d.answer(e)
    expect((await h.final(ok.id)).result?.people).toEqual([{ id: '101', status: 'ok', action: 'enrolled', message: 'face enrolled' }])
    const bad = h.submit('enrollFace', { id: '999', photoPath: FACE_PATH })
    d.answer(await d.command('editUser'), '500', 'no user 999')
    expect((await h.final(bad.id)).result?.people?.[0]).toMatchObject({ id: '999', status: 'failed', message: 'no user 999' })
    const cap = h.submit('enrollFace', { id: '1', capture: true })
    expect((await h.final(cap.id)).state).toBe('failed')
  })

  it('checkFace (compareUser, #5 exit) through the queue and through the handler method', async () => {
    await h.start()
    const d = await h.registered()
    const cmd = h.submit('checkFace', { photoPath: FACE_PATH })
    const c = await d.command('compareUser')
    expect(c.content).toEqual({ img: FACE_B64 })
    d.send({ code: '204', content: { exit: '1' }, commandId: c.commandId })
    const done = await h.final(cmd.id)
    expect(done.result).toMatchObject({ data: { exists: true }, message: 'the face is enrolled on the device' })
    const direct = h.handler.compareFace('door-1', FACE)
    d.send({ code: '204', content: { exit: '0' }, commandId: (await d.command('compareUser')).commandId })
    expect(await direct).toBe(false)
    await expect(h.handler.compareFace('door-2', FACE)).rejects.toThrow(/not connected/)
  })

  it('open, reboot, syncTime are refused at once (not in kinds)', async () => {
    await h.start()
    for (const kind of ['open', 'reboot', 'syncTime'] as const) {
      const c = await h.final(h.submit(kind, { mode: 'pulse' }).id)
      expect(c.state).toBe('failed')
      expect(c.result?.message).toMatch(/wsjson devices cannot/)
    }
    expect(h.handler.kinds.has('open')).toBe(false)
  })
})

describe('disconnects and lost answers', () => {
  it('a device that disconnects mid-command gets it again on reconnect, same commandId', async () => {
    await h.start()
    const d1 = await h.registered()
    const cmd = h.submit('upsertPeople', { people: [{ id: '1', name: 'One' }, { id: '2', name: 'Two' }] })
    d1.answer(await d1.command('addUser'))
    const lost = await d1.command('addUser')
    await d1.close()
    const d2 = await h.registered()
    const again = await d2.command('addUser')
    expect(again.commandId).toBe(lost.commandId)
    expect(again.content.userId).toBe('2')
    d2.answer(again)
    const done = await h.final(cmd.id)
    expect(done.result?.people?.map((p) => p.status)).toEqual(['ok', 'ok'])
  })

  it('a command the device drops on every time fails with "device disconnected" after the bounded resends; the rest is skipped', async () => {
    await h.start({ maxResends: 1 })
    const cmd = h.submit('upsertPeople', { people: [{ id: '1', name: 'One' }, { id: '2', name: 'Two' }] })
    for (let i = 0; i < 2; i++) {
      const d = await h.registered()
      await d.command('addUser')
      await d.close()
    }
    const done = await h.final(cmd.id)
    expect(done.state).toBe('acknowledged')
    expect(done.result?.people).toEqual([
      { id: '1', name: 'One', status: 'failed', action: 'add', message: expect.stringContaining('disconnected') },
      { id: '2', name: 'Two', status: 'skipped', message: expect.stringContaining('not sent') },
    ])
    const list = h.submit('listPeople')
    for (let i = 0; i < 2; i++) {
      const d = await h.registered()
      await d.command('selectUser')
      await d.close()
    }
    const failed = await h.final(list.id)
    expect(failed.state).toBe('failed')
    expect(failed.result?.message).toMatch(/the device disconnected while handling selectUser \(sent 2 times\)/)
  })

  it('a deleteUser re-sent after a drop and answered "no such user" was done before the drop', async () => {
    await h.start()
    const d1 = await h.registered()
    const cmd = h.submit('deletePeople', { ids: ['5'] })
    await d1.command('deleteUser')
    await d1.close()
    const d2 = await h.registered()
    d2.answer(await d2.command('deleteUser'), '500', '用户不存在')
    expect((await h.final(cmd.id)).result?.people?.[0]).toMatchObject({ status: 'ok', message: 'deleted (before the connection dropped)' })
  })

  it('no answer within answerTimeoutMs: the connection is closed and the command re-sent on reconnect', async () => {
    await h.start({ answerTimeoutMs: 150 })
    const d1 = await h.registered()
    const cmd = h.submit('listPeople')
    const first = await d1.command('selectUser')
    await until(() => d1.closed, 3000, 'the gateway to close the silent connection')
    const d2 = await h.registered()
    const again = await d2.command('selectUser')
    expect(again.commandId).toBe(first.commandId)
    d2.answer(again, '203', [])
    expect((await h.final(cmd.id)).result?.data?.people).toEqual([])
  })

  it('a command that expired while in flight is dropped; the next one goes', async () => {
    await h.start()
    const d = await h.registered()
    const old = h.gw.submit(h.devices[0], 'listPeople', {}, 100)
    const sel = await d.command('selectUser')
    await h.final(old.id, 3000)
    expect(h.gw.command(old.id)!.state).toBe('expired')
    const next = h.submit('deletePeople', { ids: ['9'] })
    d.answer(sel, '203', [])
    d.answer(await d.command('deleteUser'))
    expect((await h.final(next.id)).state).toBe('acknowledged')
  })

  it('an answer larger than the gateway accepts fails the command at once (no resends of what would be too big again)', async () => {
    await h.start({ maxMessageBytes: 64 * 1024 })
    const d = await h.registered()
    const cmd = h.submit('listPeople')
    const sel = await d.command('selectUser')
    d.answer(sel, '203', [{ userId: '1', name: 'Big', img: 'A'.repeat(100 * 1024) }], 'content')
    const done = await h.final(cmd.id)
    expect(done.state).toBe('failed')
    expect(done.result?.message).toBe("the device's answer was larger than the gateway accepts (64 KB per message) while handling selectUser (sent 1 time)")
  })

  it('a second connection with the same sn replaces the first', async () => {
    await h.start()
    const d1 = await h.registered()
    const d2 = await h.registered()
    await until(() => d1.closed, 3000, 'old connection closed')
    const cmd = h.submit('listPeople')
    d2.answer(await d2.command('selectUser'), '203', [])
    expect((await h.final(cmd.id)).state).toBe('acknowledged')
  })
})

describe('events', () => {
  it('type 1: spooled once per eventid with its photo and direction, then answered 200', async () => {
    await h.start()
    const d = await h.registered()
    const ev = { code: '207', data: { eventid: '20240115113644', type: '1', data: { userId: '77986', img: FACE_B64, door: '1' } } }
    d.send(ev)
    expect((await d.response()).content.code).toBe('200')
    d.send(ev)
    expect((await d.response()).content.code).toBe('200')
    const recs = h.records()
    expect(recs).toHaveLength(1)
    expect(recs[0]).toMatchObject({ recordId: '20240115113644', userId: '77986', direction: 'out', method: 'face', type: 'employee', extras: { door: 1, terminal_type: 0 } })
    expect(h.gw.store.photo(recs[0].photoPath!)).toEqual(FACE)
  })

  it('the device zone learnt from heartbeats places event times (#8)', async () => {
    await h.start()
    const d = await h.registered()
    const now = new Date()
    const wall = new Date(now.getTime() + 9 * 3600_000) // a device at UTC+09:00
    const p = (n: number) => String(n).padStart(2, '0')
    const fmt = (t: Date, sep: [string, string, string]) =>
      `${t.getUTCFullYear()}${sep[0]}${p(t.getUTCMonth() + 1)}${sep[0]}${p(t.getUTCDate())}${sep[1]}${p(t.getUTCHours())}${sep[2]}${p(t.getUTCMinutes())}${sep[2]}${p(t.getUTCSeconds())}`
    d.send({ code: '206', data: { time: fmt(wall, ['-', ' ', ':']) } })
    await d.response()
    d.send({ code: '207', data: { eventid: fmt(wall, ['', '', '']), type: '1', data: { userId: '1', door: '0' } } })
    await d.response()
    expect(Math.abs(h.records()[0].time - now.getTime())).toBeLessThan(2000)
    expect((await h.final(h.submit('info').id)).result?.data?.utc_offset_minutes).toBe(540)
  })

  it('type 2 (enrolled on the device) is kept and shown by people list', async () => {
    await h.start()
    const d = await h.registered()
    d.send({ code: '207', data: { eventid: '1', type: '2', data: { user: 'lisi', userId: '12384865', pwd: '1234', name: '李四', role: '0', img: 'abcd' } } })
    expect((await d.response()).content.code).toBe('200')
    expect(h.records()).toHaveLength(0)
    expect(h.gw.store.getState('door-1', 'people')).toMatchObject({ '12384865': { name: '李四', user: 'lisi', hasPhoto: true } })
    const cmd = h.submit('listPeople')
    d.answer(await d.command('selectUser'), '203', [{ user: 'lisi', userId: '12384865', pwd: '1234', name: '李四', role: '0', img: 'abcd' }], 'content')
    const done = await h.final(cmd.id)
    expect(done.result?.message).toBe('1 people (1 enrolled on the device itself)')
    expect((done.result?.data?.people as Json[])[0].extras.enrolled_on_device).toMatch(/^\d{4}-/)
    // an access event by that person carries the name the device gave
    d.send({ code: '207', data: { eventid: '2', type: '1', data: { userId: '12384865', door: '0' } } })
    await d.response()
    expect(h.records()[0].name).toBe('李四')
  })

  it('an event without details is answered 200 and fetched with queryEvent (208)', async () => {
    await h.start()
    const d = await h.registered()
    d.send({ code: '207', data: { eventid: '20240115113644', type: '1' } })
    expect((await d.response()).content.code).toBe('200')
    const q = await d.command('queryEvent')
    expect(q.content).toEqual({ eventid: '20240115113644' })
    d.send({ code: '208', content: { eventid: '20240115113644', type: '1', data: { userId: '77986', img: FACE_B64, door: '0' } }, commandId: q.commandId })
    await until(() => h.records().length === 1, 3000, 'the fetched event')
    expect(h.records()[0]).toMatchObject({ userId: '77986', direction: 'in' })
  })

  it('repostRecords with eventIds fetches each event by id', async () => {
    await h.start()
    const d = await h.registered()
    const cmd = h.submit('repostRecords', { eventIds: ['e1', 'e2'] })
    const q1 = await d.command('queryEvent')
    d.send({ code: '208', content: { eventid: 'e1', type: '1', data: { userId: '1', door: '0' } }, commandId: q1.commandId })
    d.answer(await d.command('queryEvent'), '500', 'no event e2')
    const done = await h.final(cmd.id)
    expect(done.state).toBe('acknowledged')
    expect(done.result?.data).toMatchObject({ fetched: 1, new: 1 })
    expect(done.result?.message).toContain('no event e2')
    const none = await h.final(h.submit('repostRecords', {}).id)
    expect(none.state).toBe('failed')
  })
})

describe('malformed frames', () => {
  it('not JSON, unknown code, missing fields: logged, answered 500, connection kept; the gateway serves on', async () => {
    await h.start()
    const d = await h.registered()
    for (const bad of ['not json', '[]', '{"code":"999"}', '{"code":"207","data":{"type":"1"}}', '{"code":"205","data":{}}', '{"data":1}']) {
      d.send(bad)
      const r = await d.response()
      expect(r.content.code, bad).toBe('500')
    }
    expect(d.closed).toBe(false)
    expect(h.warnings.filter((w) => w.startsWith('wsjson malformed frame')).length).toBe(6)
    d.send({ code: '206', data: { time: '2026-01-01 00:00:00' } })
    expect((await d.response()).content.code).toBe('200')
    // an answer to nothing is ignored
    d.send({ code: '200', data: '', commandId: 'nope' })
    const cmd = h.submit('listPeople')
    d.answer(await d.command('selectUser'), '203', [])
    expect((await h.final(cmd.id)).state).toBe('acknowledged')
  })

  it('repeated garbage closes that connection only', async () => {
    await h.start({ maxBadFrames: 3 })
    const good = await h.registered('WS-0002')
    const d = await h.device()
    for (let i = 0; i < 3; i++) d.send('garbage')
    await until(() => d.closed, 3000, 'close after garbage')
    expect(d.closeCode).toBe(1008)
    const cmd = h.submit('listPeople', {}, 'door-2')
    good.answer(await good.command('selectUser'), '203', [])
    expect((await h.final(cmd.id)).state).toBe('acknowledged')
  })
})

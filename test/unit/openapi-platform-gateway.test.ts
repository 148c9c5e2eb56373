/**
 * The openapi platform-mode handler (section 9) mounted in a real Gateway, driven by plain fetch
 * requests playing the device: heartbeat, uploads, the face library by lastQueryTime, results.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Inventory } from '../../src/store/inventory.js'
import { createHandler, type OpenapiPlatformOptions } from '../../src/drivers/openapi/gateway.js'
import type { DeviceEntry, Logger, PersonOutcome } from '../../src/types/driver.js'
import { Gateway } from '../../src/gateway/gateway.js'
import type { CommandKind, GatewaySettings, QueuedCommand } from '../../src/types/gateway.js'

type Json = Record<string, any>
const ID = '0000001'
const FACE = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'face.jpg'))
const NOFACE = Buffer.concat([FACE.subarray(0, 2), Buffer.from([0xff, 0xfe, 0x00, 0x08]), Buffer.from('NOFACE'), FACE.subarray(2)])

async function until(cond: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

function faceBody(over: Json = {}): Json {
  return {
    userId: '101', userName: '张伟', userType: 'user', deviceId: ID, uuid: 'SY001', nationCode: 'XXX社区', actionCode: 1, action: '进门',
    temperature: '36.5°C', mask: true, screenTime: 1_700_000_000, similarity: 88,
    idCardInfo: { name: '张伟', gender: '男', id: '11010119900101xxxx' },
    img: FACE.toString('base64'),
    ...over,
  }
}

class Harness {
  home = mkdtempSync(join(tmpdir(), 'doorctl-oa-platform-'))
  warnings: string[] = []
  gw!: Gateway
  device: DeviceEntry = { name: 'door-p', protocol: 'openapi', deviceId: ID, mode: 'platform', tags: [] }
  base = ''

  async start(opts: OpenapiPlatformOptions = {}, settings: Partial<GatewaySettings> = {}) {
    new Inventory(this.home).save([this.device])
    const log: Logger = { debug() {}, info() {}, notice() {}, warn: (m, f) => this.warnings.push(`${m} ${JSON.stringify(f ?? {})}`) }
    this.gw = new Gateway({
      home: this.home, log,
      settings: { httpPort: 0, bind: '127.0.0.1', maxBodyBytes: 512 * 1024, ...settings },
      handlers: [createHandler({ flushMs: 5, unlockDelayMs: 1500, ...opts })],
    })
    await this.gw.start()
    this.base = `http://127.0.0.1:${this.gw.httpPort}`
  }

  async restart(opts: OpenapiPlatformOptions = {}) {
    await this.gw.stop()
    await this.start(opts)
  }

  async stop() {
    await this.gw.stop()
    rmSync(this.home, { recursive: true, force: true })
  }

  async post(path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<{ status: number; json: Json }> {
    const res = await fetch(this.base + path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers })
    return { status: res.status, json: (await res.json()) as Json }
  }

  async poll(lastQueryTime: number, id = ID): Promise<{ status: number; json: Json; list: Json[]; next: number }> {
    const res = await fetch(`${this.base}/syrecord/${id}?lastQueryTime=${lastQueryTime}`)
    const json = (await res.json()) as Json
    return { status: res.status, json, list: json.serviceResponse?.list ?? [], next: json.serviceResponse?.lastQueryTime }
  }

  result(userId: string, status = '100', msg = '操作成功') {
    return this.post(`/syresult/${ID}`, { resultList: { userID: ` ${userId}`, status: ` ${status}`, msg: ` ${msg}` } })
  }

  submit(kind: CommandKind, payload: Json, timeoutMs = 30_000): QueuedCommand {
    return this.gw.submit(this.device, kind, payload, timeoutMs)
  }

  command(id: number): QueuedCommand {
    return this.gw.command(id)!
  }

  records() {
    return this.gw.store.records(this.device.name, 0, 1000)
  }

  photo(name: string, data: Buffer): string {
    const p = join(this.home, name)
    writeFileSync(p, data)
    return p
  }
}

describe('openapi platform gateway (section 9)', () => {
  let h: Harness
  beforeEach(() => { h = new Harness() })
  afterEach(async () => h.stop())

  describe('presence and unknown devices', () => {
    beforeEach(async () => h.start())

    it('9.5 heartbeat → ret 0 and presence; also under a BaseUrl path and with a trailing slash', async () => {
      const r = await h.post(`/syheartbeat/${ID}`, '{ "Heartinfo" :{ "deviceid" : " 0000001" , "ServerURL" : " www.qwertasd.com" , } }')
      expect(r).toEqual({ status: 200, json: { ret: '0', desc: 'Success' } })
      const p = h.gw.presence().find((x) => x.device === 'door-p')!
      expect(p).toMatchObject({ protocol: 'openapi', online: true, info: { serverUrl: 'www.qwertasd.com' } })
      expect((await h.post(`/openapi/syheartbeat/${ID}/`, {})).json.ret).toBe('0')
      expect((await h.post(`/a/b/SYHEARTBEAT/${ID}`, {})).json.ret).toBe('0')
    })

    it('an unknown deviceid is refused on every endpoint (ret 2, openDoor 0) and remembered as discovered; nothing is spooled', async () => {
      expect((await h.post('/syheartbeat/999', {})).json.ret).toBe('2')
      const face = await h.post('/syface/999', faceBody())
      expect(face.json).toMatchObject({ ret: '2', openDoor: 0 })
      const lib = await h.poll(0, '999')
      expect(lib.json.ret).toBe('2')
      expect(lib.list).toEqual([])
      expect(h.gw.discoveredDevices().map((d) => d.identity)).toContain('999')
      expect(h.gw.store.records('door-p', 0, 10)).toHaveLength(0)
    })
  })

  describe('records and the door', () => {
    it('9.2: one record with its photo and extras; a retry is stored once and answered the same; deny by default', async () => {
      await h.start()
      const a = await h.post(`/syface/${ID}`, faceBody())
      expect(a).toEqual({ status: 200, json: { ret: '0', desc: 'Success', openDoor: 0, unlockDelay: 1500 } })
      const b = await h.post(`/syface/${ID}`, faceBody())
      expect(b.json).toEqual(a.json)
      const recs = h.records()
      expect(recs).toHaveLength(1)
      expect(recs[0]).toMatchObject({ userId: '101', name: '张伟', result: 'denied', direction: 'in', method: 'face', time: 1_700_000_000_000 })
      expect(recs[0].recordId).toMatch(/^sf-/)
      expect(recs[0].extras).toMatchObject({ temperature: 36.5, mask: true, similarity: 88, id_card_number: '11010119900101xxxx' })
      expect(h.gw.store.photo(recs[0].photoPath!)).toEqual(FACE)
      // another capture of the same person a second later is another record
      await h.post(`/syface/${ID}`, faceBody({ screenTime: 1_700_000_001 }))
      expect(h.records()).toHaveLength(2)
    })

    it('openDoor follows serve --authorize: allow', async () => {
      await h.start({}, { authorize: 'allow' })
      expect((await h.post(`/syface/${ID}`, faceBody())).json).toMatchObject({ ret: '0', openDoor: 1 })
      expect(h.records()[0].result).toBe('granted')
    })

    it('openDoor follows serve --authorize: a CSV of allowed ids', async () => {
      const csv = join(h.home, 'allowed.csv')
      writeFileSync(csv, 'name,id\nZhang,101\n')
      await h.start({}, { authorize: csv })
      expect((await h.post(`/syface/${ID}`, faceBody())).json.openDoor).toBe(1)
      expect((await h.post(`/syface/${ID}`, faceBody({ userId: '102', screenTime: 1_700_000_002 }))).json.openDoor).toBe(0)
    })

    it('9.3: a temperature event (wrapped in Info) is a record; retried, stored once', async () => {
      await h.start()
      const body = { Info: { deviceid: ID, temperature: '37.9', mask: false, openCode: 101, openMsg: '温度异常', screenTime: 1_700_000_100, img: FACE.toString('base64') } }
      expect((await h.post(`/syattribute/${ID}`, body)).json).toEqual({ ret: '0', desc: 'Success' })
      expect((await h.post(`/syattribute/${ID}`, body)).json.ret).toBe('0')
      const recs = h.records()
      expect(recs).toHaveLength(1)
      expect(recs[0]).toMatchObject({ userId: '', result: 'denied', method: 'temperature' })
      expect(recs[0].extras).toMatchObject({ temperature: 37.9, mask: false, open_code: 101, open_msg: '温度异常' })
    })

    it('bad bodies get error answers (ret ≠ 0, openDoor 0) and the gateway stays up', async () => {
      await h.start({}, { authorize: 'allow' })
      const bad = [
        await h.post(`/syface/${ID}`, '{"userId": '),
        await h.post(`/syface/${ID}`, faceBody({ screenTime: 'soon' })),
        await h.post(`/syface/${ID}`, faceBody({ userId: '' })),
        await h.post(`/syface/${ID}`, faceBody({ img: '最大为700K的经base64编码后的图片数据' })),
        await h.post(`/syface/${ID}`, 'plain text', { 'content-type': 'text/plain' }),
        await h.post(`/syattribute/${ID}`, [1, 2]),
        await h.post(`/syresult/${ID}`, { nothing: true }),
        await h.post(`/syresult/${ID}`, { resultList: { status: '100' } }),
      ]
      for (const r of bad) {
        expect(r.status).toBeGreaterThanOrEqual(400)
        expect(r.json.ret ?? r.json.Success).not.toBe('0')
        if (r.json.openDoor !== undefined) expect(r.json.openDoor).toBe(0)
      }
      // section 9.2's own example omits the comma before "img": such a body is still a comparison result
      const example = JSON.stringify(faceBody()).replace(/}\s*,\s*"img"/, '} "img"')
      expect(example).toContain('} "img"')
      expect((await h.post(`/syface/${ID}`, example)).json).toMatchObject({ ret: '0', openDoor: 1 })
      expect(h.records()).toHaveLength(1)
      const q = await fetch(`${h.base}/syrecord/${ID}?lastQueryTime=yesterday`)
      expect(q.status).toBe(400)
      expect((await h.post(`/syface/${ID}`, faceBody({ screenTime: 1487295399 }))).json).toMatchObject({ ret: '0', openDoor: 1 })
    })
  })

  describe('the face library', () => {
    beforeEach(async () => h.start())

    it('people import: /syrecord hands out saves with jpg URLs; /syresult finishes it per person; listPeople from the roster', async () => {
      const cmd = h.submit('upsertPeople', {
        people: [
          { id: '101', name: '张伟', role: 'user', department: 'R&D', photoPath: h.photo('101.jpg', FACE) },
          { id: '102', name: 'Maria', role: 'admin', card: '5002', photoPath: h.photo('102.jpg', FACE) },
          { id: '103', name: 'Lee', role: 'blacklist', photoPath: h.photo('103.jpg', NOFACE) },
        ],
      })
      expect(h.command(cmd.id).state).toBe('queued')
      const first = await h.poll(0)
      expect(first.json.ret).toBe('0')
      expect(first.list.map((i) => [i.operation, i.userId, i.userName, i.userType])).toEqual([
        ['save', '101', '张伟', 'user'], ['save', '102', 'Maria', 'admin'], ['save', '103', 'Lee', 'blacklist'],
      ])
      expect(first.list[0].userRemark).toBe('R&D')
      for (const i of first.list) {
        expect(i.imageUrl).toBe(i.userImageUrl)
        expect(i.imageUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/doorctl\/files\/.+\.jpg$/)
      }
      expect(h.command(cmd.id).state).toBe('delivered')
      const img = await fetch(first.list[0].imageUrl)
      expect(img.headers.get('content-type')).toBe('image/jpeg')
      expect(Buffer.from(await img.arrayBuffer())).toEqual(FACE)

      // incremental: nothing new since the answer's lastQueryTime; a lost answer (same lastQueryTime again) → the same again
      expect((await h.poll(first.next)).list).toEqual([])
      expect((await h.poll(0)).list).toHaveLength(3)

      await h.result('101')
      await h.result('102')
      expect(h.command(cmd.id).state).toBe('delivered')
      await h.result('103', '101', '未检测到人脸')
      const done = await h.gw.waitFor(cmd.id)
      expect(done.state).toBe('acknowledged')
      const people = done.result!.people as PersonOutcome[]
      expect(people.map((p) => [p.id, p.status, p.action])).toEqual([['101', 'ok', 'added'], ['102', 'ok', 'added'], ['103', 'failed', 'added']])
      expect(people[1].message).toMatch(/card not sent/)
      expect(people[2]).toMatchObject({ message: '未检测到人脸 (status 101)', deviceCode: '101' })
      expect(done.result!.message).toBe('2 of 3 stored')

      const list = h.submit('listPeople', {})
      const listed = h.command(list.id)
      expect(listed.state).toBe('acknowledged')
      expect((listed.result!.data!.people as Json[]).map((p) => [p.id, p.name, p.role, p.hasPhoto])).toEqual([['101', '张伟', 'user', true], ['102', 'Maria', 'admin', true]])

      // a full update is the library the device stored: the refused face is not in it
      expect((await h.poll(0)).list.map((i) => i.userId)).toEqual(['101', '102'])
    })

    it('delete and re-import: delete items, the roster follows the results, updated vs added', async () => {
      const imp = h.submit('upsertPeople', { people: [{ id: '1', name: 'A', photoPath: h.photo('1.jpg', FACE) }, { id: '2', name: 'B', photoPath: h.photo('2.jpg', FACE) }] })
      const lib = await h.poll(0)
      await h.result('1')
      await h.result('2')
      expect((await h.gw.waitFor(imp.id)).state).toBe('acknowledged')

      const del = h.submit('deletePeople', { ids: ['2', '9'] })
      const d = await h.poll(lib.next)
      expect(d.list.map((i) => [i.operation, i.userId, i.userName])).toEqual([['delete', '2', 'B'], ['delete', '9', '9']])
      await h.result('2')
      await h.result('9', '103', '用户不存在')
      const out = (await h.gw.waitFor(del.id)).result!
      expect(out.people!.map((p) => [p.id, p.status, p.action])).toEqual([['2', 'ok', 'deleted'], ['9', 'failed', 'delete']])
      expect(out.message).toBe('1 of 2 deleted')

      // an update without a photo keeps the last photo sent (9.1 imageUrl is required)
      const upd = h.submit('upsertPeople', { people: [{ id: '1', name: 'A2' }] })
      const u = await h.poll(d.next)
      expect(u.list).toHaveLength(1)
      expect(u.list[0]).toMatchObject({ operation: 'save', userId: '1', userName: 'A2' })
      expect(u.list[0].imageUrl).toMatch(/\.jpg$/)
      await h.result('1')
      expect((await h.gw.waitFor(upd.id)).result!.people![0]).toMatchObject({ id: '1', status: 'ok', action: 'updated' })

      const list = h.submit('listPeople', {})
      expect((h.command(list.id).result!.data!.people as Json[]).map((p) => [p.id, p.name])).toEqual([['1', 'A2']])

      // delete everyone: everyone this gateway knows the device has
      const all = h.submit('deletePeople', { ids: 'all' })
      const a = await h.poll(u.next)
      expect(a.list.map((i) => [i.operation, i.userId])).toEqual([['delete', '1']])
      await h.result('1')
      expect((await h.gw.waitFor(all.id)).result!.people!.map((p) => p.status)).toEqual(['ok'])
      const none = h.submit('deletePeople', { ids: 'all' })
      expect(h.command(none.id)).toMatchObject({ state: 'acknowledged', result: { people: [] } })
    })

    it('face enroll: a photo for a known person keeps the name; --capture and unreadable photos fail without reaching the device', async () => {
      const imp = h.submit('upsertPeople', { people: [{ id: '5', name: 'Eve' }] })
      const first = await h.poll(0)
      expect(first.list[0]).toMatchObject({ userId: '5', imageUrl: '', userImageUrl: '' })
      await h.result('5')
      expect((await h.gw.waitFor(imp.id)).result!.people![0].message).toMatch(/no photo/)

      const cap = h.submit('enrollFace', { id: '5', capture: true })
      expect(h.command(cap.id)).toMatchObject({ state: 'failed', result: { message: expect.stringMatching(/capture/) } })
      const missing = h.submit('enrollFace', { id: '5', photoPath: join(h.home, 'nope.jpg') })
      expect(h.command(missing.id).result!.people![0]).toMatchObject({ status: 'failed', message: expect.stringMatching(/no such file; not sent/) })
      const notJpeg = h.submit('enrollFace', { id: '5', photoPath: h.photo('x.png', Buffer.from('\x89PNG\r\n')) })
      expect(h.command(notJpeg.id).result!.people![0].message).toMatch(/not a JPEG/)

      const enroll = h.submit('enrollFace', { id: '5', photoPath: h.photo('5.jpg', FACE) })
      const e = await h.poll(first.next)
      expect(e.list).toHaveLength(1)
      expect(e.list[0]).toMatchObject({ operation: 'save', userId: '5', userName: 'Eve' })
      await h.result('5')
      expect((await h.gw.waitFor(enroll.id)).result!.people![0]).toMatchObject({ id: '5', status: 'ok', action: 'enrolled' })
      const list = h.submit('listPeople', {})
      expect((h.command(list.id).result!.data!.people as Json[])[0]).toMatchObject({ id: '5', hasPhoto: true })
    })

    it('people the document cannot carry fail at once (not sent): too-long id, no name', async () => {
      const cmd = h.submit('upsertPeople', { people: [{ id: 'x'.repeat(33), name: 'Long' }, { id: '7', name: '' }] })
      const c = h.command(cmd.id)
      expect(c.state).toBe('acknowledged')
      expect(c.result!.people!.map((p) => p.status)).toEqual(['failed', 'failed'])
      expect((await h.poll(0)).list).toEqual([])
    })

    it('an operation replaced before the device fetched it is skipped in the older command', async () => {
      const a = h.submit('upsertPeople', { people: [{ id: '1', name: 'A', photoPath: h.photo('1.jpg', FACE) }] })
      const b = h.submit('deletePeople', { ids: ['1'] })
      expect(h.command(a.id)).toMatchObject({ state: 'acknowledged', result: { people: [{ id: '1', status: 'skipped' }] } })
      const lib = await h.poll(0)
      expect(lib.list.map((i) => [i.operation, i.userId])).toEqual([['delete', '1']])
      await h.result('1', '103', '用户不存在')
      expect((await h.gw.waitFor(b.id)).result!.people![0]).toMatchObject({ status: 'failed', message: '用户不存在 (status 103)' })
    })

    it('two fetched operations for one person: results go to the commands in order', async () => {
      const a = h.submit('upsertPeople', { people: [{ id: '1', name: 'A', photoPath: h.photo('1.jpg', FACE) }] })
      const first = await h.poll(0)
      const b = h.submit('deletePeople', { ids: ['1'] })
      const second = await h.poll(first.next)
      expect(second.list.map((i) => i.operation)).toEqual(['delete'])
      await h.result('1')
      expect((await h.gw.waitFor(a.id)).result!.people![0]).toMatchObject({ status: 'ok', action: 'added' })
      await h.result('1')
      expect((await h.gw.waitFor(b.id)).result!.people![0]).toMatchObject({ status: 'ok', action: 'deleted' })
      const list = h.submit('listPeople', {})
      expect(h.command(list.id).result!.data!.people).toEqual([])
    })

    it('an expired command\'s operations the device never fetched are withdrawn', async () => {
      const cmd = h.submit('upsertPeople', { people: [{ id: '1', name: 'A', photoPath: h.photo('1.jpg', FACE) }] })
      expect(h.gw.store.expire(Date.now() + 3_600_000)).toContain(cmd.id)
      expect((await h.poll(0)).list).toEqual([])
    })

    it('answers are paged (maxItems) by stamp; a lastQueryTime this gateway never handed out gets everything', async () => {
      await h.restart({ maxItems: 2 })
      const cmd = h.submit('upsertPeople', { people: ['1', '2', '3'].map((id) => ({ id, name: `P${id}`, photoPath: h.photo(`${id}.jpg`, FACE) })) })
      const p1 = await h.poll(0)
      expect(p1.list.map((i) => i.userId)).toEqual(['1', '2'])
      const p2 = await h.poll(p1.next)
      expect(p2.list.map((i) => i.userId)).toEqual(['3'])
      expect((await h.poll(p2.next)).list).toEqual([])
      expect(p2.next).toBeGreaterThan(p1.next)
      const ahead = await h.poll(p2.next + 1_000_000)
      expect(ahead.list.map((i) => i.userId)).toEqual(['1', '2'])
      for (const id of ['1', '2', '3']) await h.result(id)
      expect((await h.gw.waitFor(cmd.id)).state).toBe('acknowledged')
    })

    it('the journal and the roster survive a gateway restart', async () => {
      const cmd = h.submit('upsertPeople', { people: [{ id: '1', name: 'A', photoPath: h.photo('1.jpg', FACE) }, { id: '2', name: 'B', photoPath: h.photo('2.jpg', FACE) }] })
      const lib = await h.poll(0)
      await h.result('1')
      await until(() => (h.command(cmd.id).result?.people?.length ?? 0) === 1, 2000, 'progress saved')
      await h.restart()
      // the device carries on where it was: same lastQueryTime, its result for 2 finishes the command
      expect((await h.poll(lib.next)).list).toEqual([])
      await h.result('2')
      const done = await h.gw.waitFor(cmd.id)
      expect(done.result!.people!.map((p) => [p.id, p.status])).toEqual([['1', 'ok'], ['2', 'ok']])
      const later = h.submit('upsertPeople', { people: [{ id: '3', name: 'C', photoPath: h.photo('3.jpg', FACE) }] })
      expect((await h.poll(lib.next)).list.map((i) => i.userId)).toEqual(['3'])
      await h.result('3')
      await h.gw.waitFor(later.id)
      await h.restart()
      const list = h.submit('listPeople', {})
      expect((h.command(list.id).result!.data!.people as Json[]).map((p) => p.id)).toEqual(['1', '2', '3'])
      // photos are published again for a full update after the restart
      const full = await h.poll(0)
      const img = await fetch(full.list[0].imageUrl)
      expect(img.status).toBe(200)
    })
  })
})

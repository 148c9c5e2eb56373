/**
 * The wsjson codec against ws-json.txt's own examples, and every AMBIGUITIES (wsjson) decision.
 */
import { describe, expect, it } from 'vitest'
import {
  accessRecord, addUserContent, bodyOf, commandFrame, decodeImage, deleteUserContent, editUserContent, estimateOffset, eventIdTime, faceContent,
  isExistsReason, isNotFoundReason, parseCompare, parseFrame, parseUserList, personInfoJson, reasonOf, registerAnswer, response, wallToEpoch,
  type DeviceEvent,
} from '../../src/drivers/wsjson/codec.js'
import { personRules, kinds, recordExtras } from '../../src/drivers/wsjson/rules.js'
import { isoWithOffset } from '../../src/util/time.js'

const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9])

describe('device frames (3.2)', () => {
  it('register (3.2.1 example)', () => {
    const f = parseFrame('{"code":"205","data":{"ip":"192.168.0.102","mac":"31231E2EW12W12","sn":"486468465489","type":"0"}}')
    expect(f).toMatchObject({ kind: 'register', info: { sn: '486468465489', ip: '192.168.0.102', mac: '31231E2EW12W12', type: '0' } })
  })

  it('register without sn, or without data, is malformed and answerable', () => {
    expect(parseFrame('{"code":"205","data":{"ip":"1.2.3.4"}}')).toMatchObject({ kind: 'bad', reply: true, reason: expect.stringContaining('sn') })
    expect(parseFrame('{"code":"205"}')).toMatchObject({ kind: 'bad', reply: true })
  })

  it('numbers where strings are documented are read as text', () => {
    expect(parseFrame('{"code":205,"data":{"sn":12345,"type":1}}')).toMatchObject({ kind: 'register', info: { sn: '12345', type: '1' } })
  })

  it('heartbeat (3.2.2 example)', () => {
    expect(parseFrame('{"code":"206","data":{"time":"2023-12-25 15:47:30"}}')).toEqual({ kind: 'heartbeat', time: '2023-12-25 15:47:30' })
  })

  it('event type 1 and type 2 (3.2.1 examples)', () => {
    const a = parseFrame('{"code":"207","data":{"eventid":"20240115113644","type":"1","data":{"userId":"77986","img":"AAAA","door":"0"}}}')
    expect(a).toMatchObject({ kind: 'event', event: { eventid: '20240115113644', type: '1', data: { userId: '77986', door: '0' }, incomplete: false } })
    const b = parseFrame(JSON.stringify({ code: '207', data: { eventid: '1', type: '2', data: { user: 'lisi', userId: '12384865', pwd: '1234', name: '李四', role: '0', img: 'x' } } }))
    expect(b).toMatchObject({ kind: 'event', event: { type: '2', data: { name: '李四' }, incomplete: false } })
  })

  it('an event without its details is incomplete (fetched with queryEvent); without eventid it is malformed', () => {
    expect(parseFrame('{"code":"207","data":{"eventid":"9","type":"1"}}')).toMatchObject({ kind: 'event', event: { incomplete: true } })
    expect(parseFrame('{"code":"207","data":{"type":"1","data":{"userId":"1"}}}')).toMatchObject({ kind: 'bad', reason: expect.stringContaining('eventid') })
  })

  it('the event data may be a JSON text (the tables type it "string")', () => {
    const f = parseFrame(JSON.stringify({ code: '207', data: JSON.stringify({ eventid: '5', type: '1', data: { userId: '7', door: '1' } }) }))
    expect(f).toMatchObject({ kind: 'event', event: { eventid: '5', data: { userId: '7' } } })
  })

  it('not JSON, not an object, no code, unknown code: malformed, answered 500', () => {
    for (const t of ['garbage', '[1,2]', '"x"', '{"data":{}}', '{"code":"999"}']) {
      expect(parseFrame(t)).toMatchObject({ kind: 'bad', reply: true })
    }
  })
})

describe('answers to our commands (3.1)', () => {
  it('200 with commandId (3.1.1 example)', () => {
    expect(parseFrame('{"code":"200","data":"","commandId":"20240115144330"}')).toEqual({
      kind: 'answer', answer: { code: '200', commandId: '20240115144330', body: '', ok: true, reason: '' },
    })
  })

  it('500 carries the device reason', () => {
    expect(parseFrame('{"code":"500","data":"no face","commandId":"7-1"}')).toMatchObject({ kind: 'answer', answer: { ok: false, reason: 'no face' } })
    expect(parseFrame('{"code":"500","commandId":"7-1"}')).toMatchObject({ answer: { ok: false, reason: 'the device answered code 500' } })
    expect(reasonOf({ data: { msg: '人脸检测失败' } }, '500')).toBe('人脸检测失败')
  })

  it('#3: the payload is read from content (examples) or data (tables)', () => {
    const viaContent = parseFrame('{"code":"203","content":[{"userId":"1"}],"commandId":"a"}')
    const viaData = parseFrame('{"code":"203","data":[{"userId":"1"}],"commandId":"a"}')
    expect(viaContent).toMatchObject({ answer: { body: [{ userId: '1' }], ok: true } })
    expect(viaData).toMatchObject({ answer: { body: [{ userId: '1' }], ok: true } })
    expect(bodyOf({ content: '', data: [1] })).toEqual([1])
  })

  it('#4: 207 with a commandId answers a command ("查询命令正常响应")', () => {
    expect(parseFrame('{"code":"207","content":{"eventid":"1"},"commandId":"q"}')).toMatchObject({ kind: 'answer', answer: { code: '207', ok: true } })
  })

  it('#7: an answer code without commandId is an answer (to the command in flight)', () => {
    expect(parseFrame('{"code":"200","data":""}')).toMatchObject({ kind: 'answer', answer: { code: '200', commandId: undefined } })
  })

  it('an answer in our own response shape is read too', () => {
    expect(parseFrame('{"command":"response","content":{"code":"200","data":""},"commandId":"x"}')).toMatchObject({ kind: 'answer', answer: { ok: true, commandId: 'x' } })
  })

  it('other codes are refusals (#9: only 500 is documented)', () => {
    expect(parseFrame('{"code":"401","data":"denied","commandId":"x"}')).toMatchObject({ answer: { ok: false, reason: 'denied' } })
  })

  it('"exists" and "not found" refusals', () => {
    for (const t of ['用户已存在', 'user already exists', 'userId exist', 'duplicate userId', '工号重复']) expect(isExistsReason(t), t).toBe(true)
    for (const t of ['用户不存在', 'user does not exist', 'no user 5', 'not found', 'no face']) expect(isExistsReason(t), t).toBe(false)
    for (const t of ['用户不存在', 'no user 12', 'User not exist']) expect(isNotFoundReason(t), t).toBe(true)
  })

  it('selectUser lists: array, JSON text, wrapped, single user, empty', () => {
    const u = { user: 'lisi', userId: '12384865', pwd: '1234', name: '李四', role: '0', img: 'abc' }
    expect(parseUserList([u])).toEqual([{ userId: '12384865', user: 'lisi', name: '李四', role: '0', hasPassword: true, hasPhoto: true }])
    expect(parseUserList(JSON.stringify([u]))).toHaveLength(1)
    expect(parseUserList({ users: [u, u] })).toHaveLength(2)
    expect(parseUserList(u)).toHaveLength(1)
    expect(parseUserList('')).toEqual([])
    expect(parseUserList([{ name: 'no id' }])).toEqual([])
    expect(parseUserList('nonsense')).toMatchObject({ error: expect.any(String) })
  })

  it('listed users become PersonInfo: role 0 user, 1 admin, photo presence, no password shown', () => {
    const p = personInfoJson({ userId: '1', user: 'u1', name: 'A', role: '1', hasPassword: true, hasPhoto: false }, Date.UTC(2026, 0, 2))
    expect(p).toEqual({
      id: '1', name: 'A', card: '', phone: '', department: '', role: 'admin', hasPhoto: false,
      extras: { user: 'u1', password_set: true, enrolled_on_device: isoWithOffset(new Date(Date.UTC(2026, 0, 2))) },
    })
    expect((p.extras as Record<string, string>).enrolled_on_device).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/)
  })

  it('#5: compareUser answers exit (exists): 1 yes, 0 no; exist/exists accepted', () => {
    expect(parseCompare({ exit: '1' })).toBe(true)
    expect(parseCompare({ exit: '0' })).toBe(false)
    expect(parseCompare({ exist: 1 })).toBe(true)
    expect(parseCompare({ exists: 'false' })).toBe(false)
    expect(parseCompare({})).toMatchObject({ error: expect.any(String) })
    expect(parseCompare({ exit: 'maybe' })).toMatchObject({ error: expect.any(String) })
  })
})

describe('server frames', () => {
  it('responses: command "response", the reply in content; the register answer carries the interval as a string', () => {
    expect(response('200')).toEqual({ command: 'response', content: { code: '200', data: '' } })
    expect(registerAnswer(20)).toEqual({ command: 'response', content: { code: '200', interval: '20', data: '' } })
    expect(response('500', 'unknown device')).toEqual({ command: 'response', content: { code: '500', data: 'unknown device' } })
  })

  it('commands carry commandId, command and content (3.1)', () => {
    expect(commandFrame('1-1', 'deleteUser', deleteUserContent('12384865', '李四'))).toEqual({ commandId: '1-1', command: 'deleteUser', content: { userId: '12384865', name: '李四' } })
    expect(deleteUserContent('5')).toEqual({ userId: '5' })
  })

  it('#6: addUser sends all six fields, empty where doorctl has no value', () => {
    expect(addUserContent({ id: '1001', name: '张伟', role: 'admin' }, '')).toEqual({ user: '1001', userId: '1001', pwd: '', name: '张伟', role: '1', img: '' })
    expect(addUserContent({ id: '1', password: '1234' }, 'QUJD', 'lisi')).toEqual({ user: 'lisi', userId: '1', pwd: '1234', name: '', role: '0', img: 'QUJD' })
  })

  it('#2: editUser leaves out an empty photo and password (they would erase the device\'s)', () => {
    expect(editUserContent(addUserContent({ id: '1', name: 'A' }, ''))).toEqual({ user: '1', userId: '1', name: 'A', role: '0' })
    expect(faceContent('1', 'QUJD', { name: 'A', user: 'a', role: '0' })).toEqual({ userId: '1', img: 'QUJD', user: 'a', name: 'A', role: '0' })
    expect(faceContent('1', 'QUJD')).toEqual({ userId: '1', img: 'QUJD' })
  })

  it('images: plain base64, data: URIs tolerated', () => {
    expect(decodeImage(JPEG.toString('base64'))).toEqual(JPEG)
    expect(decodeImage(`data:image/jpeg;base64,${JPEG.toString('base64')}`)).toEqual(JPEG)
    expect(decodeImage('')).toBeUndefined()
  })
})

describe('time (#8) and records', () => {
  const now = Date.UTC(2026, 10, 24, 8, 0, 0)

  it('the device zone from a heartbeat: quarter hours, only when its clock is right', () => {
    expect(estimateOffset('2026-11-24 16:00:05', now)).toBe(480)
    expect(estimateOffset('2026-11-24 08:00:00', now)).toBe(0)
    expect(estimateOffset('2026-11-24 13:30:40', now)).toBe(330)
    expect(estimateOffset('2026-11-24 16:07:30', now)).toBeUndefined()
    expect(estimateOffset('nonsense', now)).toBeUndefined()
    expect(estimateOffset(undefined, now)).toBeUndefined()
  })

  it('eventid as yyyyMMddHHmmss (with a sequence suffix too)', () => {
    expect(eventIdTime('20240115113644')).toEqual([2024, 1, 15, 11, 36, 44])
    expect(eventIdTime('20240115113644007')).toEqual([2024, 1, 15, 11, 36, 44])
    expect(eventIdTime('20241315113644')).toBeUndefined()
    expect(eventIdTime('42')).toBeUndefined()
    expect(wallToEpoch([2024, 1, 15, 11, 36, 44], { offsetMinutes: 480 })).toBe(Date.UTC(2024, 0, 15, 3, 36, 44))
  })

  const ev = (data: Record<string, unknown>, eventid = '20261124160000'): DeviceEvent => ({ eventid, type: '1', data, incomplete: false })

  it('a type-1 event as an access record: direction from door, photo, time from its eventid', () => {
    const r = accessRecord(ev({ userId: '77986', img: JPEG.toString('base64'), door: '0' }), { device: 'd', receivedAt: now, offsetMinutes: 480, terminalType: '0', nameOf: () => '李四' })
    expect(r).toEqual({
      device: 'd', recordId: '20261124160000', time: Date.UTC(2026, 10, 24, 8, 0, 0), userId: '77986', name: '李四', type: 'employee', result: 'granted',
      direction: 'in', method: 'face', extras: { door: 0, terminal_type: 0 }, photo: JPEG,
    })
    expect(accessRecord(ev({ userId: '1', door: '1' }), { device: 'd', receivedAt: now }).direction).toBe('out')
  })

  it("the eventid's wall time is read in the device's --tz zone (DST-correct), before an estimated offset", () => {
    const nyJuly = accessRecord(ev({ userId: '1' }, '20260701090000'), { device: 'd', receivedAt: now, zone: 'America/New_York', offsetMinutes: 480 })
    expect(nyJuly.time).toBe(Date.UTC(2026, 6, 1, 13))
    const nyJanuary = accessRecord(ev({ userId: '1' }, '20260105090000'), { device: 'd', receivedAt: now, zone: 'America/New_York' })
    expect(nyJanuary.time).toBe(Date.UTC(2026, 0, 5, 14))
    expect(accessRecord(ev({ userId: '1', time: '2026-07-01 09:00:00' }, 'x'), { device: 'd', receivedAt: now, zone: 'Asia/Tokyo' }).time).toBe(Date.UTC(2026, 6, 1, 0))
  })

  it('without door, an exit-only or entry-only terminal gives the direction', () => {
    expect(accessRecord(ev({ userId: '1' }), { device: 'd', receivedAt: now, terminalType: '1' }).direction).toBe('out')
    expect(accessRecord(ev({ userId: '1' }), { device: 'd', receivedAt: now, terminalType: '2' }).direction).toBe('in')
    expect(accessRecord(ev({ userId: '1' }), { device: 'd', receivedAt: now, terminalType: '0' }).direction).toBe('')
  })

  it('no user: a stranger; an eventid that is no time, or a time in the future: received time', () => {
    const r = accessRecord(ev({ userId: '' }, 'abc'), { device: 'd', receivedAt: now })
    expect(r).toMatchObject({ type: 'stranger', result: '', time: now })
    expect(r.photo).toBeUndefined()
    expect(accessRecord(ev({ userId: '1' }, '20991124160000'), { device: 'd', receivedAt: now }).time).toBe(now)
    expect(accessRecord(ev({ userId: '1', time: '2026-11-24 15:00:00' }, 'x'), { device: 'd', receivedAt: now, offsetMinutes: 480 }).time).toBe(Date.UTC(2026, 10, 24, 7))
  })
})

describe('rules', () => {
  it('kinds: what ws-json.txt can do; open/reboot/syncTime are not there', () => {
    expect([...kinds].sort()).toEqual(['checkFace', 'deletePeople', 'enrollFace', 'info', 'listPeople', 'upsertPeople'])
    expect(personRules).toMatchObject({ protocol: 'wsjson', required: ['id', 'name'], maxPhotoBytes: 400 * 1024 })
    expect(recordExtras).toEqual(['door', 'terminal_type'])
  })
})

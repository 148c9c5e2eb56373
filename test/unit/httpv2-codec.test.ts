/**
 * httpv2 codec on frames taken from httpv2-face.md's own examples (quoted where the document's
 * text is valid JSON; where it is not, the smallest repair is noted next to the frame).
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import {
  authorizationAnswer, deleteAllAnswer, deletePeopleAnswer, downloadPeopleAnswer, downloadSettingAnswer, errorAnswer, expirationDate,
  deviceClock, identifyRecord, keepaliveAnswer, limitOf, MAX_EXPIRATION, parseDeleteResult, parseDownloadResult, parseJsonText, parseKeepalive,
  parsePushPeople, parseRecordUpload, parseRegisterResult, parseWorkSettings, PEOPLE_ERRORS, peopleErrorMessage, peopleJson,
  personInfoFromDetail, personProblem, registerMessage, remoteAnswer, settingValues, snOf, systemRecords, timeSettings, unknownDeviceAnswer,
  workSettingsData, type Incoming, type Json,
} from '../../src/drivers/httpv2/codec.js'
import { configSections, kinds, personRules, recordExtras } from '../../src/drivers/httpv2/rules.js'
import * as driverModule from '../../src/drivers/httpv2/index.js'

const FACE = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'face.jpg'))

function incoming(parts: Partial<Incoming> = {}): Incoming {
  return { json: undefined, fields: {}, files: {}, query: new URLSearchParams(), ...parts }
}

// 设备心跳保活包 请求参数示例, verbatim (trailing comma included: AMBIGUITIES #4)
const KEEPALIVE_EXAMPLE = `{
    "SN":"FC-8200H12345678", 
    "RelayStatus":	0,
    "KeepOpenStatus":	0,
    "DoorSensorStatus":	0,
    "LockDoorStatus":	0,
    "AlarmStatus":	"",
}`

// 上传打卡记录 RecordDetail 参数示例, verbatim
const RECORD_DETAIL_EXAMPLE = `{
    "RecordID":	120,
    "RecordType":	3,
    "RecordDate":	1718616771,
    "UserID":	"1",
    "Name":	"1",
    "IdentityCard":	"",
    "Job":	"",
    "Department":	"",
    "CardNum":	"0",
    "QRCode":	"",
    "IsEntry":	1,
    "BodyTemp":	0,
    "PhotoLen":	40363
}`

describe('keepalive', () => {
  it('reads the example with its trailing comma', () => {
    const body = parseJsonText(KEEPALIVE_EXAMPLE) as Json
    expect(body.SN).toBe('FC-8200H12345678')
    expect(parseKeepalive(body)).toEqual({ relay: 0, keepOpen: false, doorOpen: false, locked: false, alarms: [] })
    expect(parseKeepalive({ AlarmStatus: 'fire,blacklist', DoorSensorStatus: 1, LockDoorStatus: 1 }).alarms).toEqual(['fire', 'blacklist'])
  })

  it('answers Success 1 with flags in the table order, 401 for unknown devices', () => {
    expect(keepaliveAnswer([])).toEqual({ Success: 1 })
    const a = keepaliveAnswer(['AddPeople', 'Remote', 'UploadWorkParameter'])
    expect(a).toEqual({ Success: 1, UploadWorkParameter: 1, Remote: 1, AddPeople: 1 })
    expect(Object.keys(a)).toEqual(['Success', 'UploadWorkParameter', 'Remote', 'AddPeople'])
    expect(unknownDeviceAnswer().Success).toBe(401)
    expect(errorAnswer('bad')).toEqual({ Success: 0, Message: 'bad' })
  })
})

describe('remote commands', () => {
  it('builds Opendoor 1..5 and the other orders', () => {
    expect(remoteAnswer({ kind: 'open', mode: 'pulse' })).toEqual({ Success: 1, Opendoor: 1 })
    expect(remoteAnswer({ kind: 'open', mode: 'keep-open' }).Opendoor).toBe(2)
    expect(remoteAnswer({ kind: 'open', mode: 'close' }).Opendoor).toBe(3)
    expect(remoteAnswer({ kind: 'open', mode: 'lock' }).Opendoor).toBe(4)
    expect(remoteAnswer({ kind: 'open', mode: 'unlock' }).Opendoor).toBe(5)
    expect(remoteAnswer({ kind: 'restart' })).toEqual({ Success: 1, Restart: 1 })
    expect(remoteAnswer({ kind: 'repostRecords' })).toEqual({ Success: 1, RepostRecord: 1 })
    expect(remoteAnswer({ kind: 'pushAllPeople' })).toEqual({ Success: 1, PushAllPeople: 1 })
    expect(remoteAnswer({ kind: 'snapshot' })).toEqual({ Success: 1, Snapshoot: 1 })
    // 查询指定人员 example: numbers
    expect(remoteAnswer({ kind: 'queryPeople', ids: ['1', '2', '3'] })).toEqual({ Success: 1, QueryPeople: [1, 2, 3] })
  })

  it('sends RegisterIdentifyTicket as the table object plus the example flat user id (AMBIGUITIES #9)', () => {
    expect(remoteAnswer({ kind: 'registerFace', userId: '1' })).toEqual({
      Success: 1, RegisterIdentifyTicket: { RegisterType: 4, UserID: 1 }, RegisterIdentifyUserID: 1,
    })
  })
})

describe('work settings', () => {
  const upload = {
    DeviceSN: 'FC-8200H12345675', FireAlarm: 0, Volume: 6, TimeZone: 8, SystemTime: 1718421632, WiredIP: '192.168.1.103', RTSPPassword: '12345678',
    MenuPassword: '', RunDays: 0, AlarmStatus: '""', FirmwareVerson: '8.46',
    PeopleStorageInfo: { Person: { Max: 20000, Current: 1 }, Face: { Max: 20000, Current: 1 } },
  }
  it('groups the upload into device facts and writable sections, secrets hidden', () => {
    const w = parseWorkSettings(upload)
    expect(w.sn).toBe('FC-8200H12345675')
    expect(w.timeZoneHours).toBe(8)
    expect(w.peopleCount).toBe(1)
    const data = workSettingsData(w)
    expect(data.device).toMatchObject({ DeviceSN: 'FC-8200H12345675', FirmwareVerson: '8.46', RunDays: 0, AlarmStatus: [] })
    expect(data.system).toEqual({ Volume: 6, TimeZone: 8, SystemTime: 1718421632, MenuPassword: '' })
    expect(data.alarm).toEqual({ FireAlarm: 0 })
    expect(data.services).toEqual({ RTSPPassword: '(set)' })
    expect(data.network).toEqual({ WiredIP: '192.168.1.103' })
  })

  it('the duplicated DeviceSN of the example: the last one counts', () => {
    const body = parseJsonText('{"DeviceSN": "FC-8200H12345675", "Volume": 6, "DeviceSN": "FC-8190H24052799"}') as Json
    expect(parseWorkSettings(body).sn).toBe('FC-8190H24052799')
  })

  it('validates and types config values per section; unknown keys fail clearly', () => {
    expect(settingValues('system', { volume: '5', AutoRestartTime: '03:00' })).toEqual({ values: { Volume: 5, AutoRestartTime: '03:00' } })
    expect(settingValues('face', { FaceThreshold: '60' })).toEqual({ values: { FaceThreshold: 60 } })
    expect(settingValues('access', { TimeGroups: '[{"Num":1,"Week1":"08:00-18:00"}]' })).toEqual({ values: { TimeGroups: [{ Num: 1, Week1: '08:00-18:00' }] } })
    const unknown = settingValues('system', { Loudness: '5' })
    expect('error' in unknown && unknown.error).toMatch(/unknown setting "Loudness" for section system/)
    const wrongSection = settingValues('system', { FaceThreshold: '5' })
    expect('error' in wrongSection && wrongSection.error).toMatch(/"FaceThreshold" is in section face/)
    expect('error' in settingValues('system', { Volume: 'loud' })).toBe(true)
    expect('error' in settingValues('nosuch', { Volume: 1 })).toBe(true)
    expect('error' in settingValues('system', { TimeZone: '5.5' })).toBe(true)
    expect(settingValues('json', { Volume: 3, FaceMask: 1 })).toEqual({ values: { Volume: 3, FaceMask: 1 } })
    expect(downloadSettingAnswer('SN1', { Volume: 3 })).toEqual({ Success: 1, DeviceSN: 'SN1', Volume: 3 })
  })

  it('syncTime: whole hours pass, half hours are rounded and said (AMBIGUITIES #14)', () => {
    const ms = Date.UTC(2024, 5, 15, 3, 20, 32)
    expect(timeSettings(ms, 480).values).toEqual({ SystemTime: 1718421632, TimeZone: 8 })
    const india = timeSettings(ms, 330)
    expect(india.values.TimeZone).toBe(6)
    expect(india.note).toMatch(/rounded from UTC\+05:30 to UTC\+06:00.*30 min/)
    expect(timeSettings(ms, -210).values.TimeZone).toBe(-4)
    expect(timeSettings(ms, 0).values.TimeZone).toBe(0)
  })

  it('config sections of the module cover every writable key once', () => {
    expect(configSections).toEqual(['alarm', 'temperature', 'access', 'elevator', 'face', 'system', 'network', 'services', 'server', 'records', 'display', 'identity'])
    expect(kinds.size).toBe(11)
  })
})

describe('people', () => {
  it('PeopleJson from a person, photo by URL with upper-case MD5 and length', () => {
    const md5 = createHash('md5').update(FACE).digest('hex').toUpperCase()
    const j = peopleJson(
      { id: '3', name: '888888', department: '销售部', card: '6666', password: '2222', role: 'admin', validTo: Date.UTC(2030, 0, 1) },
      { photo: 'http://gw/doorctl/files/x.jpg', md5, len: FACE.length },
    )
    expect(j).toEqual({
      UserID: '3', Name: '888888', Department: '销售部', CardNum: '6666', Password: '2222', AccessType: 1,
      ExpirationDate: Date.UTC(2030, 0, 1) / 1000, Photo: 'http://gw/doorctl/files/x.jpg', PhotoMD5: md5, PhotoLen: FACE.length,
    })
    expect(md5).toMatch(/^[0-9A-F]{32}$/)
    // people import: role and expiry always explicit
    expect(peopleJson({ id: '4' })).toEqual({ UserID: '4', AccessType: 0, ExpirationDate: 0 })
    expect(peopleJson({ id: '5', role: 'blacklist' }).AccessType).toBe(2)
    // enrollment: only what we have, over what the device told us
    expect(peopleJson({ id: '6' }, undefined, { partial: true, base: { UserID: '6', Name: 'Ann', AccessType: 1, ExpirationDate: 5, Photo: 'old', Fingerprints: [] } }))
      .toEqual({ UserID: '6', Name: 'Ann', AccessType: 1, ExpirationDate: 5 })
  })

  it('ExpirationDate: seconds, 0 = none, capped at 2099-12-31, never 0 for a past date', () => {
    expect(expirationDate(undefined)).toBe(0)
    expect(expirationDate(1718616771000)).toBe(1718616771)
    expect(expirationDate(Date.UTC(2200, 0, 1))).toBe(MAX_EXPIRATION)
    expect(expirationDate(-5000)).toBe(1)
  })

  it('sends both PeopleCount and Count (AMBIGUITIES #5) and reads Limit (default 50, max 1000)', () => {
    expect(downloadPeopleAnswer([{ UserID: '1' }])).toEqual({ Success: 1, PeopleCount: 1, Count: 1, PeopleList: [{ UserID: '1' }] })
    expect(downloadPeopleAnswer([])).toEqual({ Success: 1, PeopleCount: 0, Count: 0, PeopleList: [] })
    expect(limitOf(100)).toBe(100)
    expect(limitOf('20')).toBe(20)
    expect(limitOf(undefined)).toBe(50)
    expect(limitOf(5000)).toBe(1000)
  })

  it('refuses what PersonRules cannot say: digits in card and password, password length', () => {
    expect(personProblem({ id: '1', card: '6666', password: '2222' })).toBeUndefined()
    expect(personProblem({ id: '1', card: '18446744073709551615' })).toBeUndefined()
    expect(personProblem({ id: '1', card: '18446744073709551616' })).toMatch(/uint64/)
    expect(personProblem({ id: '1', card: 'A1' })).toMatch(/digits/)
    expect(personProblem({ id: '1', password: '123' })).toMatch(/4 to 8/)
    expect(personProblem({ id: '1', password: '12a4' })).toMatch(/4 to 8/)
    expect(personProblem({ id: '1', name: '张'.repeat(22) })).toMatch(/66 bytes/)
    expect(personProblem({ id: '1', name: '张'.repeat(21) })).toBeUndefined()
    expect(personProblem({ id: '4294967296' })).toMatch(/UserID/)
  })

  it('the duplicated FailCount example (RepeatID a number) and the table shape', () => {
    // DownloadPeopleListResult 请求参数示例: FailCount twice, the second holding the list. The example's
    // entries are not JSON (unquoted xxx, curly quotes, missing brace): repaired to the nearest JSON.
    const text = `{
    "SN":"FC-8200H12345678",
    "SuccessCount":16,
    "FailCount":1,
    "FailCount":[
    	{
    		"UserID":"17",
    		"ErrorCode":20,
			"RepeatID":123,
             "ErrMsg" : ""
    	}
    ]
}`
    const r = parseDownloadResult(parseJsonText(text) as Json)
    expect(r.successCount).toBe(16)
    expect(r.failCount).toBe(1)
    expect(r.failures).toEqual([{ userId: '17', code: 20, repeatId: '123', message: 'this face is already enrolled for another person (same as person 123)' }])

    const table = parseDownloadResult({ SN: 'x', SuccessCount: 1, FailCount: 1, FailList: [{ UserID: 5, ErrorCode: '23', RepeatID: '9', ErrMsg: 'dup card' }] })
    expect(table.failures[0]).toMatchObject({ userId: '5', code: 23, repeatId: '9' })
    expect(table.failures[0].message).toBe('this card number is already used by another person (same as person 9): dup card')
    expect(parseDownloadResult({ SuccessCount: 3, FailCount: 0 })).toEqual({ successCount: 3, failCount: 0, failures: [] })
  })

  it('maps every error code 1–32 to a readable reason', () => {
    for (let code = 1; code <= 32; code++) {
      const m = peopleErrorMessage(code)
      expect(m.length).toBeGreaterThan(10)
      if (PEOPLE_ERRORS[code]) expect(m).toBe(PEOPLE_ERRORS[code])
      else expect(m).toBe(`the device refused this person with error code ${code} (not in the document's table)`)
    }
    expect(Object.keys(PEOPLE_ERRORS).map(Number)).toEqual([1, 2, 3, 4, 5, 6, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32])
    expect(peopleErrorMessage(30)).toBe('no recognisable face in the photo')
    expect(peopleErrorMessage(undefined)).toMatch(/without an error code/)
  })

  it('delete: numbers out, DeleteList or the DeletList typo in (AMBIGUITIES #8)', () => {
    expect(deletePeopleAnswer(['1', '2', '3'])).toEqual({ Success: 1, DeleteAll: 0, DeleteCount: 3, DeleteList: [1, 2, 3] })
    expect(deleteAllAnswer()).toMatchObject({ Success: 1, DeleteAll: 1 })
    // DeletePeopleListResult 请求参数示例, verbatim
    const example = parseJsonText('{\n    "SN":"FC-8200H12345678", \n    "DeleteCount":5,\n    "DeleteAll":0, \n    "DeletList":[1,2,3,4,5]\n}') as Json
    expect(parseDeleteResult(example)).toEqual({ deleteAll: false, count: 5, ids: ['1', '2', '3', '4', '5'] })
    expect(parseDeleteResult({ DeleteAll: 1, DeleteCount: 0 })).toEqual({ deleteAll: true, count: 0, ids: undefined })
    expect(parseDeleteResult({ DeleteList: ['7'] }).ids).toEqual(['7'])
  })

  it('PushPeople with a gzip Detail part (already gunzipped by the gateway) and a Photo', () => {
    // 推送人员信息 example Detail, with the fingerprint keys quoted (the document writes Num: 1)
    const detail = {
      UserID: '3', Name: '888888', Job: '开发', Department: '销售部', IdentityCard: '', Attachment: '', Photo: 'http://abc.com/photo/1.jpg',
      PhotoMD5: '613D870CA99EDF074BEE4387BAB09070', PhotoLen: 55020, Password: '2222', CardNum: '6666', AccessType: 0, ExpirationDate: 0,
      OpenTimes: 65535, KeepOpen: 1, Timegroup: 6, Holidays: '1,3,9,10,11,17,21,25,27,30', Elevators: '1,2,3,4,5',
    }
    const p = parsePushPeople(incoming({ fields: { SN: 'FC-8200H12345678', PushType: '1', Detail: JSON.stringify(detail) }, files: { Photo: { data: FACE, filename: 'Photo.jpg' } } }))
    if ('error' in p) throw new Error(p.error)
    expect(p).toMatchObject({ sn: 'FC-8200H12345678', pushType: 1, userId: '3', hasFace: true })
    expect(p.photo?.equals(FACE)).toBe(true)
    const info = personInfoFromDetail(p.userId, p.detail!, p.hasFace)
    expect(info).toEqual({
      id: '3', name: '888888', card: '6666', phone: '', department: '销售部', role: 'user', validTo: undefined, hasPhoto: true,
      extras: { job: '开发', open_times: 65535, timegroup: 6 },
    })
    expect(personInfoFromDetail('9', { UserID: '9', AccessType: 2, ExpirationDate: 1718616771, CardNum: '0' }, false))
      .toMatchObject({ role: 'blacklist', card: '', validTo: new Date(1718616771000), hasPhoto: false })
    // a queried person that does not exist: no Detail
    const missing = parsePushPeople(incoming({ fields: { SN: 'x', PushType: '4', UserID: '77' } }))
    expect(missing).toMatchObject({ userId: '77', detail: undefined, hasFace: false })
    expect(parsePushPeople(incoming({ fields: { SN: 'x', Detail: '{oops' } }))).toEqual({ error: 'Detail is not a JSON object' })
  })
})

describe('enrollment results', () => {
  it('reads ResultJson; a RepetitionUserID means a duplicate whatever Result says', () => {
    const ok = parseRegisterResult(incoming({ fields: { ResultJson: '{"SN":"FC-8200H12345678","UserID":1,"Result":1,"UserDetail":{"UserID":"1","Name":"A"}}' }, files: { Photo: { data: FACE } } }))
    if (!ok || 'error' in ok) throw new Error('no result')
    expect(ok).toMatchObject({ sn: 'FC-8200H12345678', userId: '1', result: 1 })
    expect(ok.photo?.length).toBe(FACE.length)
    expect(snOf(incoming({ fields: { ResultJson: '{"SN":"S1"}' } }), { SN: 'S1' })).toBe('S1')
    // 重复注册返回 example: Result 2 with RepetitionUserID
    const dup = parseRegisterResult(incoming({ json: { SN: 'FC-8200H12345678', UserID: 1, Result: 2, RepetitionUserID: 2 } }))
    if (!dup || 'error' in dup) throw new Error('no result')
    expect(registerMessage(dup)).toBe('this face is already registered for person 2')
    expect(registerMessage({ userId: '1', result: 6 })).toBe('the device is busy')
    expect(registerMessage({ userId: '1', result: 2 })).toBe('cancelled on the device')
  })
})

describe('records', () => {
  it('both multipart naming styles; SN with a leading space; RecordDetail as a field or an octet-stream file', () => {
    const styles: Incoming[] = [
      incoming({ fields: { SN: ' FC-8380T12345678', recordJson: RECORD_DETAIL_EXAMPLE }, files: { pic: { data: FACE, filename: 'Postman_file.jpg' } } }),
      incoming({ fields: { SN: ' FC-8380T12345678', RecordDetail: RECORD_DETAIL_EXAMPLE }, files: { Photo: { data: FACE } } }),
      incoming({ fields: { SN: ' FC-8380T12345678' }, files: { RecordDetail: { data: Buffer.from(RECORD_DETAIL_EXAMPLE), mimeType: 'application/octet-stream' }, Photo: { data: FACE } } }),
    ]
    for (const inc of styles) {
      expect(snOf(inc)).toBe('FC-8380T12345678')
      const u = parseRecordUpload(inc)
      if ('error' in u) throw new Error(u.error)
      const r = identifyRecord('door-1', u, deviceClock(undefined, 8))
      if ('error' in r) throw new Error(r.error)
      expect(r).toMatchObject({
        device: 'door-1', recordId: '120', time: 1718616771000, utcOffsetMinutes: 480, userId: '1', name: '1',
        type: 'employee', result: 'granted', direction: 'in', method: 'face',
        extras: { record_type: 3, event: 'face', card: null, qrcode: null, temperature: null, code: null, department: null, job: null },
      })
      expect(Object.keys(r.extras)).toEqual([...recordExtras])
      expect(r.photo?.equals(FACE)).toBe(true)
    }
  })

  it('RecordType table → result, type, method; temperature in tenths; time zone unknown', () => {
    const rec = (d: Json) => {
      const r = identifyRecord('d', { detail: { RecordID: 1, RecordDate: 1718616771, ...d } })
      if ('error' in r) throw new Error(r.error)
      return r
    }
    expect(rec({ RecordType: 19, UserID: '0' })).toMatchObject({ type: 'stranger', result: 'denied', userId: '' })
    expect(rec({ RecordType: 24, CardNum: '123' })).toMatchObject({ type: 'blacklist', result: 'denied', method: 'card', extras: { card: '123' } })
    expect(rec({ RecordType: 6, UserID: '5', IsEntry: 0, BodyTemp: 365 })).toMatchObject({ method: 'card+face', direction: 'out', extras: { temperature: 36.5 } })
    expect(rec({ RecordType: 31 })).toMatchObject({ type: 'visitor', method: 'password', result: 'granted' })
    expect(rec({ RecordType: 30, UserID: '5' })).toMatchObject({ result: 'denied', extras: { event: 'abnormal body temperature' } })
    expect(rec({ RecordType: 99, UserID: '5' })).toMatchObject({ result: '', extras: { event: 'record type 99' } })
    expect(rec({ RecordType: 3 }).utcOffsetMinutes).toBeUndefined()
    for (let t = 1; t <= 49; t++) expect(rec({ RecordType: t }).extras.event).not.toMatch(/^record type/)
    expect('error' in identifyRecord('d', { detail: { RecordType: 3, RecordDate: 1 } })).toBe(true)
    expect(parseRecordUpload(incoming({ fields: { SN: 'x', RecordDetail: 'not json' } }))).toEqual({ error: 'RecordDetail is not a JSON object' })
  })

  it('system records: the example, door and system tables, ids per table', () => {
    // 上传系统记录 参数示例, verbatim
    const body = parseJsonText(`{
     "SN":	"FC-8380T12345678",
     "RecordType":	1,
     "Records":	 [
         {
             "RecordID":	1,
             "RecordType":	1,
             "RecordDate":	1718616771
         },
         {
             "RecordID":	2,
             "RecordType":	1,
             "RecordDate":	1718616772
         }
     ]
 }`) as Json
    const r = systemRecords('door-1', body, deviceClock(undefined, 8))
    if ('error' in r) throw new Error(r.error)
    expect(r.records.map((x) => [x.recordId, x.type, x.time, x.extras.event])).toEqual([
      ['door-1', 'door', 1718616771000, 'door opened'],
      ['door-2', 'door', 1718616772000, 'door opened'],
    ])
    const sys = systemRecords('d', { RecordType: 2, Records: [{ RecordID: 7, RecordType: 1, RecordDate: 1718616771 }, { RecordType: 28 }] })
    if ('error' in sys) throw new Error(sys.error)
    expect(sys.records[0]).toMatchObject({ recordId: 'system-7', type: 'system', method: 'remote', extras: { event: 'door opened by software', record_type: 1 } })
    expect(sys.skipped).toBe(1)
  })

  it('text RecordDate read in the device zone (--tz) before its reported TimeZone, offset at the instant', () => {
    const at = (RecordDate: unknown, zone?: string, tzHours?: number) => {
      const r = identifyRecord('d', { detail: { RecordID: 1, RecordType: 3, RecordDate } }, deviceClock(zone, tzHours))
      if ('error' in r) throw new Error(r.error)
      return [new Date(r.time).toISOString(), r.utcOffsetMinutes]
    }
    expect(at('2026-07-01 09:00:00', 'Asia/Tokyo', 8)).toEqual(['2026-07-01T00:00:00.000Z', 540])
    expect(at('2026-07-01 09:00:00', undefined, 8)).toEqual(['2026-07-01T01:00:00.000Z', 480])
    expect(at('2026-07-01 09:00:00')).toEqual(['2026-07-01T09:00:00.000Z', undefined])
    expect(at('2026-03-08 01:30:00', 'America/New_York')).toEqual(['2026-03-08T06:30:00.000Z', -300])
    expect(at('2026-03-08 03:30:00', 'America/New_York')).toEqual(['2026-03-08T07:30:00.000Z', -240])
    // unix seconds carry their instant; the zone only gives the offset
    expect(at(Date.parse('2026-11-01T06:30:00Z') / 1000, 'America/New_York')).toEqual(['2026-11-01T06:30:00.000Z', -300])
  })

  it('authorization answers: 2 = open without message, 0 = refuse with a message', () => {
    expect(authorizationAnswer(true)).toEqual({ Success: 2 })
    expect(authorizationAnswer(false)).toEqual({ Success: 0, Message: 'Not authorized' })
  })
})

describe('rules and module', () => {
  it('UserID pattern: 1..4294967295, digits, no leading zero', () => {
    const re = personRules.idPattern!.re
    for (const ok of ['1', '9', '10', '999999999', '1000000000', '3999999999', '4294967295', '4294967289', '4294967199', '4294959999']) expect(re.test(ok), ok).toBe(true)
    for (const bad of ['0', '01', '4294967296', '4294967300', '4295000000', '5000000000', '12345678901', 'a1', '', '-1', '1.5']) expect(re.test(bad), bad).toBe(false)
    expect(personRules).toMatchObject({ protocol: 'httpv2', lengthInBytes: true, maxPhotoBytes: 400 * 1024, required: ['id'] })
    expect(personRules.maxLength).toMatchObject({ name: 63, department: 63, card: 20, password: 8 })
  })

  it('the driver module exports what the CLI loads, without the gateway', () => {
    expect(driverModule.personRules).toBe(personRules)
    expect(driverModule.recordExtras).toBe(recordExtras)
    const d = driverModule.createDriver({ name: 'x', protocol: 'httpv2', sn: 'S', tags: [] }, { home: '/tmp', log: { debug() {}, info() {}, notice() {}, warn() {} } })
    expect(d.protocol).toBe('httpv2')
    expect(d.configSections()).toContain('system')
    const src = readFileSync(join(import.meta.dirname, '..', '..', 'src', 'drivers', 'httpv2', 'index.ts'), 'utf8')
    expect(src).not.toMatch(/from '\.\/gateway\.js'/)
  })
})

it('gzip example bytes round-trip as the gateway hands them over', () => {
  // the gateway gunzips parts; the codec sees text
  const gz = gzipSync(Buffer.from(RECORD_DETAIL_EXAMPLE))
  expect(gz[0]).toBe(0x1f)
  expect((parseJsonText(RECORD_DETAIL_EXAMPLE) as Json).RecordID).toBe(120)
})

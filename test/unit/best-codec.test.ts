/**
 * best codec: the test vectors of protocols/README.md (all of them, the OCR-damaged password
 * example included) and every document quirk the codec reads (AMBIGUITIES.md, best).
 */
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  brokerSign, checksumOk, claimedSn, CODE, command, devKeyOf, exchangeAnswer, isOk, rebootCommand, TOPICS, uploadCmdId, upTopicSn, isoTime, newMid, offsetText, parseBrokerQuery, parseCmdResponse, parseDeviceTime,
  parseFilePackage, parseFileStart, parseMessage, parseOffset, personInfoJson, personProblem, repairOcrHex, reply, reportAnswer, roleOf,
  sameHex, sessionValue, str, timeAnswer, toWire, uploadedUsers, userPasswordHash, verifyLogEntries, verifyLogRecord, verifyPhotos,
  wireUser, type BestMessage,
} from '../../src/drivers/best/codec.js'

const msg = (o: Record<string, unknown>): BestMessage => {
  const p = parseMessage(JSON.stringify(o))
  if ('error' in p) throw new Error(p.error)
  return p.msg
}

describe('README test vectors', () => {
  it('getBrokerServer sign: md5(sn + nonce + timestamp + secretKey)', () => {
    expect(brokerSign('abcd', '123456', '1646102871000', 'aabbcc')).toBe('bdd58420c142a11569ff3eb8a9ec535c')
  })

  it('devKey: PBKDF2-HMAC-SHA256, salt = productId text bytes, 1000 iterations, 32 bytes', () => {
    expect(devKeyOf('123456', '5d9b11e1a3f448ae81f9f920e976d852')).toBe('7f666475e1cea7d10964055343367701c2fb3a96f82e8b0adc25147992c8bb65')
  })

  it('user password: the same PBKDF2 with the salt hex-decoded', () => {
    expect(userPasswordHash('123456', '5d9b11e1a3f448ae81f9f920e976d852')).toBe('486bbe9335aca3878178a51542e4e919d1146a01bdd0f2ad5a68043e2289abf7')
  })

  it('the document\'s OCR-damaged copy of the password digest (o for 0) repairs to the computed one (#4)', () => {
    const damaged = '486bbe9335aca3878178a51542e4e919d1146ao1bddof2ad5a68o43e2289abf7'
    expect(damaged).not.toBe(userPasswordHash('123456', '5d9b11e1a3f448ae81f9f920e976d852'))
    expect(repairOcrHex(damaged)).toBe(userPasswordHash('123456', '5d9b11e1a3f448ae81f9f920e976d852'))
    expect(sameHex(repairOcrHex(damaged), '486BBE9335ACA3878178A51542E4E919D1146A01BDD0F2AD5A68043E2289ABF7')).toBe(true)
  })

  it('the two salts really differ: productId as text vs as hex (#4)', () => {
    expect(devKeyOf('123456', '5d9b11e1a3f448ae81f9f920e976d852')).not.toBe(userPasswordHash('123456', '5d9b11e1a3f448ae81f9f920e976d852'))
  })
})

describe('getBrokerServer query (3.1)', () => {
  const base = 'sn=abcd&type=best-w&nonce=123456&sign=bdd58420c142a11569ff3eb8a9ec535c'
  it('reads the documented parameters', () => {
    expect(parseBrokerQuery(new URLSearchParams(`${base}&timestamp=1646102871000`))).toEqual({ sn: 'abcd', type: 'best-w', nonce: '123456', timestamp: '1646102871000', sign: 'bdd58420c142a11569ff3eb8a9ec535c' })
  })

  it('reads the damaged "×tamp" spellings of the document\'s URL (#1)', () => {
    const forms = [
      'sn=abcd&type=best-w&nonce=123456%C3%97tamp=1646102871000&sign=x', // glued to the nonce, percent-encoded
      'sn=abcd&type=best-w&nonce=123456&%C3%97tamp=1646102871000&sign=x', // its own parameter
      'sn=abcd&type=best-w&nonce=123456&times;tamp=1646102871000&sign=x', // the entity written out
      'sn=abcd&type=best-w&nonce=123456%C3%83%C2%97tamp=1646102871000&sign=x', // raw UTF-8 read as latin1
    ]
    for (const f of forms) {
      const q = parseBrokerQuery(new URL(`http://h/v3/device/getBrokerServer?${f}`).searchParams)
      expect(q, f).toMatchObject({ nonce: '123456', timestamp: '1646102871000' })
    }
  })

  it('refuses missing parameters and a nonce over 32 characters', () => {
    expect(parseBrokerQuery(new URLSearchParams('sn=abcd&type=best-w'))).toEqual({ error: 'missing nonce, timestamp, sign' })
    expect(parseBrokerQuery(new URLSearchParams(`sn=a&type=best-m&nonce=${'1'.repeat(33)}&timestamp=1646102871000&sign=x`))).toEqual({ error: 'nonce longer than 32 characters' })
    expect(parseBrokerQuery(new URLSearchParams('sn=a&type=best-m&nonce=1&timestamp=soon&sign=x'))).toHaveProperty('error')
  })
})

describe('envelope (附录 4)', () => {
  it('parses a device message, values read as text (#10), trailing commas tolerated', () => {
    const p = parseMessage('{"funcId":"dev.heartbeat","mid":12,"imme":1,"payload":{"params":{"isFree":1,}},}')
    expect(p).toEqual({ msg: { funcId: 'dev.heartbeat', mid: '12', imme: '1', params: { isFree: 1 } } })
    expect(str(1)).toBe('1')
    expect(str(true)).toBe('true')
  })

  it('says what is wrong with a malformed frame', () => {
    expect(parseMessage('not json')).toEqual({ error: 'not JSON' })
    expect(parseMessage('[1]')).toEqual({ error: 'not a JSON object' })
    expect(parseMessage('{"mid":"1"}')).toEqual({ error: 'funcId missing', mid: '1' })
    expect(parseMessage('{"funcId":"dev.heartbeat"}')).toEqual({ error: 'mid missing', mid: undefined })
  })

  it('answers echo the request mid and imme (#6); every value we send is a string (#10)', () => {
    const r = reply({ mid: 'abc', imme: '1' }, CODE.ok, 'success', { n: 5, ok: true, list: [1, 'a'], o: { x: null } })
    expect(r).toEqual({ funcId: 'cmd.dev.response', code: '00000000', message: 'success', mid: 'abc', imme: '1', payload: { results: { n: '5', ok: 'true', list: ['1', 'a'], o: { x: '' } } } })
    expect(toWire({ a: [{ b: 2 }] })).toEqual({ a: [{ b: '2' }] })
  })

  it('commands carry cmdId in payload.params and a fresh 32-character mid', () => {
    const c = command('cmd.control.reboot', 'gw-1-1', { operator: 'doorctl', n: 3 }, { imme: true })
    expect(c).toMatchObject({ funcId: 'cmd.control.reboot', imme: '1', payload: { params: { cmdId: 'gw-1-1', operator: 'doorctl', n: '3' } } })
    expect(String(c.mid)).toMatch(/^[0-9a-f]{32}$/)
    const mids = new Set(Array.from({ length: 1000 }, () => newMid()))
    expect(mids.size).toBe(1000)
  })

  it('only 00000000 is success (#5)', () => {
    expect(isOk('00000000')).toBe(true)
    expect(isOk(0)).toBe(true)
    expect(isOk('00000004')).toBe(false)
    expect(isOk('')).toBe(false)
    expect(parseCmdResponse(msg({ funcId: 'dev.cmd.response', mid: '1', code: '00000004', message: 'no face', payload: { params: { cmdId: 'a-1-1' } } })))
      .toEqual({ cmdId: 'a-1-1', ok: false, code: '00000004', message: 'no face' })
  })
})

describe('identity, topics, exchange, reboot', () => {
  it('sn counts on login-phase messages only; heartbeats carry none (#13)', () => {
    expect(claimedSn(msg({ funcId: 'dev.login', sn: 'S1', mid: '1' }))).toBe('S1')
    expect(claimedSn(msg({ funcId: 'dev.heartbeat', sn: 'S1', mid: '1' }))).toBeUndefined()
    expect(claimedSn(msg({ funcId: 'dev.register', mid: '1' }))).toBeUndefined()
  })

  it('best-m topics from CLI.md (#3)', () => {
    expect(TOPICS.up('S1')).toBe('best/S1/up')
    expect(TOPICS.down('S1')).toBe('best/S1/down')
    expect(TOPICS.sharedUp).toBe('$share/doorctl/best/+/up')
    expect(upTopicSn('best/S1/up')).toBe('S1')
    expect(upTopicSn('best/S1/down')).toBeUndefined()
    expect(upTopicSn('best//up')).toBeUndefined()
  })

  it('key and factor exchange are answered with values of ours; no cipher follows (#2)', () => {
    const k = exchangeAnswer(msg({ funcId: 'device.exchange.publicKey', mid: 'k1', payload: { params: { publicKey: 'x' } } }))
    expect(k).toMatchObject({ funcId: 'cmd.dev.response', code: '00000000', mid: 'k1', payload: { results: { publicKey: expect.stringMatching(/^[0-9a-f]{64}$/) } } })
    const f = exchangeAnswer(msg({ funcId: 'device.exchange.factor', mid: 'f1', payload: { params: { factor: 'y' } } }))
    expect((f.payload as any).results.factor).toMatch(/^[0-9a-f]{32}$/)
  })

  it('reboot is the document\'s example command (#7 leaves its reply open)', () => {
    expect(rebootCommand('c1')).toMatchObject({ funcId: 'cmd.control.reboot', imme: '1', payload: { params: { cmdId: 'c1', operator: 'doorctl' } } })
  })

  it('uploads name a cmdId only when the firmware adds one (#8)', () => {
    expect(uploadCmdId(msg({ funcId: 'dev.data.upload.user', mid: '1', payload: { params: { users: [] } } }))).toBe('')
    expect(uploadCmdId(msg({ funcId: 'dev.data.upload.user', mid: '1', payload: { params: { cmdId: 'a-1-1', users: [] } } }))).toBe('a-1-1')
  })
})

describe('sessions and report', () => {
  it('authCode and secret are the same for the same device key on any gateway, different per device', () => {
    const k = devKeyOf('s3cret', 'p1')
    expect(sessionValue('authCode', k, 'SN1')).toBe(sessionValue('authCode', k.toUpperCase(), 'SN1'))
    expect(sessionValue('authCode', k, 'SN1')).not.toBe(sessionValue('authCode', k, 'SN2'))
    expect(sessionValue('authCode', k, 'SN1')).not.toBe(sessionValue('secret', k, 'SN1'))
  })

  it('the report answer gives the zone, heartbeat and our funcIds, all strings', () => {
    const m = msg({ funcId: 'dev.report', sn: 'S', mid: 'm1', payload: { params: { multiBioDataSupport: '0:1', multiBioPhotoSupport: '0:0:1' } } })
    const r = reportAnswer(m, { multiBioDataSupport: '0:1', multiBioPhotoSupport: '0:0:1' }, { timezone: '+02:00', heartbeatSeconds: 30 })
    expect(r).toMatchObject({ mid: 'm1', code: '00000000', payload: { results: { timezone: '+02:00', supportHeartbeat: '1', heartbeatInterval: '30', multiBioDataSupport: '0:1' } } })
    expect((r.payload as any).results.funcIds).toContain('dev.data.upload.verifyLog')
  })

  it('the time answer carries the time in the document\'s ISO form and the zone under both spellings (#7)', () => {
    const r = timeAnswer({ mid: 'x' }, Date.UTC(2026, 10, 24, 0, 0, 0), 480)
    expect((r.payload as any).results).toEqual({ time: '2026-11-24T08:00:00+08:00', timestamp: String(Date.UTC(2026, 10, 24)), timezone: '+08:00', timeZone: '+08:00' })
  })
})

describe('times (#11)', () => {
  it('offsets', () => {
    expect(parseOffset('+08:00')).toBe(480)
    expect(parseOffset('-0330')).toBe(-210)
    expect(parseOffset('8')).toBeUndefined()
    expect(offsetText(-210)).toBe('-03:30')
    expect(isoTime(Date.UTC(2020, 0, 1, 16), 480)).toBe('2020-01-02T00:00:00+08:00')
  })

  it('device times: with an offset, without one (the device zone), Z, epoch', () => {
    expect(parseDeviceTime('2024-06-26T00:00:00+08:00', 0)).toEqual({ ms: Date.UTC(2024, 5, 25, 16), offset: 480 })
    expect(parseDeviceTime('2024-06-26T00:00:00', 120)).toEqual({ ms: Date.UTC(2024, 5, 25, 22), offset: 120 })
    expect(parseDeviceTime('2024-06-26 00:00:00Z', 120)).toEqual({ ms: Date.UTC(2024, 5, 26), offset: 0 })
    expect(parseDeviceTime('1719360000', 60)).toEqual({ ms: 1719360000000, offset: 60 })
    expect(parseDeviceTime('yesterday', 0)).toBeUndefined()
    // the device's --tz zone reads a time without an offset, and gives the offset of that instant
    expect(parseDeviceTime('2026-07-01T09:00:00', { zone: 'America/New_York', offsetMinutes: 480 })).toEqual({ ms: Date.UTC(2026, 6, 1, 13), offset: -240 })
    expect(parseDeviceTime('2026-01-05 09:00:00', { zone: 'America/New_York' })).toEqual({ ms: Date.UTC(2026, 0, 5, 14), offset: -300 })
    expect(parseDeviceTime('2026-07-01T09:00:00+08:00', { zone: 'America/New_York' })).toEqual({ ms: Date.UTC(2026, 6, 1, 1), offset: 480 })
    expect(parseDeviceTime('2024-13-01T00:00:00+08:00', 0)).toBeUndefined()
  })
})

describe('people', () => {
  it('a user for cmd.data.update.user: PBKDF2 password with a hex salt, validity with the device offset, strings only', () => {
    const u = wireUser({ id: '1001', name: '张伟', password: '123456', role: 'admin', validFrom: Date.UTC(2026, 0, 1), validTo: Date.UTC(2026, 11, 31, 15, 59, 59) }, 480, () => '5d9b11e1a3f448ae81f9f920e976d852')
    expect(u).toEqual({
      pin: '1001', role: '14', firstName: '张伟', funSwitch: '0', disable: '0',
      password: '486bbe9335aca3878178a51542e4e919d1146a01bdd0f2ad5a68043e2289abf7', passwordSalt: '5d9b11e1a3f448ae81f9f920e976d852',
      startTime: '2026-01-01T08:00:00+08:00', endTime: '2026-12-31T23:59:59+08:00',
    })
    const b = wireUser({ id: '7', role: 'blacklist' }, 0)
    expect(b).toEqual({ pin: '7', role: '0', firstName: '', funSwitch: '0', disable: '1' })
    const salted = wireUser({ id: '8', password: 'pw' }, 0)
    expect(String(salted.passwordSalt)).toMatch(/^[0-9a-f]{32}$/)
    expect(salted.password).toBe(userPasswordHash('pw', String(salted.passwordSalt)))
  })

  it('roles are undefined in the document (#9): 0 user, other admin, disable 1 blacklist', () => {
    expect(roleOf('0', '0')).toBe('user')
    expect(roleOf('', undefined)).toBe('user')
    expect(roleOf('1', '0')).toBe('admin')
    expect(roleOf('14', '1')).toBe('blacklist')
  })

  it('cards are decimal strings (3.17); validity must be ordered', () => {
    expect(personProblem({ id: '1', card: '12345' })).toBeUndefined()
    expect(personProblem({ id: '1', card: 'AB12' })).toMatch(/decimal/)
    expect(personProblem({ id: '1', validFrom: 2, validTo: 1 })).toMatch(/after/)
  })

  it('users uploaded by the device become people list rows', () => {
    // the dev.data.upload.user example, trailing comma included
    const text = `{"funcId":"dev.data.upload.user","mid":"m","payload":{"params":{"users":[{"pin":"2956","password":"fb","passwordSalt":"c0","group":"g","idNum":"i",
      "startTime":"2020-01-01T00:00:00+08:00","endTime":"2020-12-31T23:59:59+08:00","firstName":"huiwu","lastName":"lin","funSwitch":"0","disable":"0",}]}}}`
    const p = parseMessage(text)
    if ('error' in p) throw new Error(p.error)
    const users = uploadedUsers(p.msg)
    expect(users).toHaveLength(1)
    const info = personInfoJson(users[0], 0, ['123'], false)
    expect(info).toMatchObject({ id: '2956', name: 'huiwu lin', card: '123', role: 'user', hasPhoto: false, validFrom: Date.UTC(2019, 11, 31, 16), validTo: Date.UTC(2020, 11, 31, 15, 59, 59) })
  })
})

describe('records', () => {
  const log = { pin: '1', meetCode: '123', verifyTime: '2024-06-26T00:00:00+08:00', verifyStyle: '15', status: '0', category: '4', logId: '77', recodeType: '1' }

  it('a verify log (3.12) becomes a record; the array is `verifyLog` (singular) or `verifyLogs`', () => {
    const m = msg({ funcId: 'dev.data.upload.verifyLog', mid: '1', payload: { params: { verifyLog: [log] } } })
    expect(verifyLogEntries(m)).toHaveLength(1)
    expect(verifyLogEntries(msg({ funcId: 'x', mid: '1', payload: { params: { verifyLogs: [log, log] } } }))).toHaveLength(2)
    expect(verifyLogRecord('door', log, 0)).toEqual({
      device: 'door', recordId: '77', time: Date.UTC(2024, 5, 25, 16), utcOffsetMinutes: 480, userId: '1', name: '', type: 'visitor', result: 'granted',
      direction: 'out', method: 'face', extras: { meet_code: '123', verify_style: '15', sign_status: '0', category: '4', record_type: '1' },
    })
  })

  it('a log without logId gets a stable id; an unreadable time is an error', () => {
    const r = verifyLogRecord('door', { ...log, logId: '' }, 0)
    expect(r).toMatchObject({ recordId: '1@2024-06-26T00:00:00+08:00' })
    expect(verifyLogRecord('door', { ...log, verifyTime: 'now' }, 0)).toEqual({ error: 'verifyTime "now" is not a time' })
  })

  it('verify photos: inline base64, or a file id as contentFileId or contentFileDialog (#11)', () => {
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xd9])
    const m = msg({ funcId: 'dev.data.upload.verifyPhoto', mid: '1', payload: { params: { verifyPhotos: [
      { pin: '1', logId: '1', content: jpeg.toString('base64') },
      { pin: '2', logId: '2', contentFileId: 'f1' },
      { pin: '3', logId: '3', contentFileDialog: 'f2' },
    ] } } })
    const photos = verifyPhotos(m)
    expect(photos).toEqual([
      { pin: '1', logId: '1', photoTime: '', extension: 'jpg', content: jpeg, fileId: undefined },
      { pin: '2', logId: '2', photoTime: '', extension: 'jpg', content: undefined, fileId: 'f1' },
      { pin: '3', logId: '3', photoTime: '', extension: 'jpg', content: undefined, fileId: 'f2' },
    ])
    expect(verifyPhotos(msg({ funcId: 'x', mid: '1', payload: { params: { verifyPhotos: [{ pin: '1' }] } } }))).toHaveProperty('error')
  })

  it('large files (3.7): start, package, checksum', () => {
    const data = Buffer.from('hello world')
    expect(parseFileStart(msg({ funcId: 'dev.file.upload.start', mid: '1', payload: { params: { fileId: 'e78dc2cef23d495ab4f890fe3362bee9', size: '11', checksum: '' } } }), 100))
      .toEqual({ fileId: 'e78dc2cef23d495ab4f890fe3362bee9', size: 11, checksum: '' })
    expect(parseFileStart(msg({ funcId: 'x', mid: '1', payload: { params: { fileId: 'a/b', size: '1' } } }), 100)).toHaveProperty('error')
    expect(parseFileStart(msg({ funcId: 'x', mid: '1', payload: { params: { fileId: 'a', size: '1000' } } }), 100)).toHaveProperty('error')
    expect(parseFilePackage(msg({ funcId: 'x', mid: '1', payload: { params: { fileId: 'a', offset: '5', content: data.toString('base64') } } }))).toEqual({ fileId: 'a', offset: 5, content: data })
    const md5 = createHash('md5').update(data).digest('hex')
    expect(checksumOk(data, md5)).toBe(true)
    expect(checksumOk(data, md5.toUpperCase())).toBe(true)
    expect(checksumOk(data, '')).toBe(true)
    expect(checksumOk(data, 'ff'.repeat(16))).toBe(false)
  })
})

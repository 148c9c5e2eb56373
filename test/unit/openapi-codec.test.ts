import { describe, expect, it } from 'vitest'
import { DeviceError, UsageError } from '../../src/types/errors.js'
import {
  decodeImage,
  documentedUserFields,
  mergeConfig,
  parseEnvelope,
  parsePage,
  personRules,
  personToUserObject,
  signTimeSeconds,
  signToRecord,
  userObjectToPersonInfo,
  type SignObject,
} from '../../src/drivers/openapi/codec.js'

const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9])

describe('Person → UserObject (8.2.1)', () => {
  it('maps the fields and sends required-but-empty ones as ""', () => {
    const { user, notes } = personToUserObject({ id: 'E1', name: '张三', card: '123', phone: '555', department: 'R&D' })
    expect(user).toEqual({
      userId: 'E1',
      userType: 1,
      icNumber: '123',
      jobNumber: '',
      mobile: '555',
      name: '张三',
      remark: '',
      department: 'R&D',
    })
    expect(notes).toEqual([])
    const bare = personToUserObject({ id: 'E2', name: 'x' }).user
    expect(bare).toMatchObject({ icNumber: '', jobNumber: '', mobile: '', remark: '' })
    expect('department' in bare).toBe(false)
    expect('photo' in bare).toBe(false)
  })

  it('roles: user → 1, blacklist → 3, admin → 1 with a note', () => {
    expect(personToUserObject({ id: 'a', name: 'a', role: 'user' }).user.userType).toBe(1)
    expect(personToUserObject({ id: 'a', name: 'a', role: 'blacklist' }).user.userType).toBe(3)
    const admin = personToUserObject({ id: 'a', name: 'a', role: 'admin' })
    expect(admin.user.userType).toBe(1)
    expect(admin.notes.join()).toMatch(/no admin type/)
  })

  it('validity dates → visitor (2) with startTime/endTime in seconds', () => {
    const { user, notes } = personToUserObject({
      id: 'v',
      name: 'v',
      validFrom: new Date('2024-01-01T00:00:00Z'),
      validTo: new Date('2024-01-02T12:00:00.999Z'),
    })
    expect(user.userType).toBe(2)
    expect(user.startTime).toBe(1704067200)
    expect(user.endTime).toBe(1704196800)
    expect(notes.join()).toMatch(/visitor/)
  })

  it('blacklist keeps type 3 and drops validity with a note', () => {
    const { user, notes } = personToUserObject({ id: 'b', name: 'b', role: 'blacklist', validTo: new Date() })
    expect(user.userType).toBe(3)
    expect(user.endTime).toBeUndefined()
    expect(notes.join()).toMatch(/dropped/)
  })

  it('photo → plain base64 of the JPEG bytes (no data: prefix)', () => {
    const { user } = personToUserObject({ id: 'p', name: 'p' }, JPEG)
    expect(user.photo).toBe(JPEG.toString('base64'))
    expect(user.photo!.startsWith('data:')).toBe(false)
  })

  it('a password is noted as ignored', () => {
    expect(personToUserObject({ id: 'p', name: 'p', password: '1234' }).notes.join()).toMatch(/password ignored/)
  })
})

describe('UserObject → PersonInfo', () => {
  it('maps fields, role and photo presence', () => {
    const info = userObjectToPersonInfo({
      userId: 'E1',
      userType: 1,
      name: 'n',
      icNumber: 'c',
      mobile: 'm',
      department: 'd',
      photo: 'abc',
      jobNumber: 'J7',
    })
    expect(info).toMatchObject({ id: 'E1', name: 'n', card: 'c', phone: 'm', department: 'd', role: 'user', hasPhoto: true })
    expect(info.extras).toMatchObject({ user_type: 'employee', job_number: 'J7' })
  })

  it('visitor dates, blacklist, stranger, string numbers, empty photo', () => {
    const v = userObjectToPersonInfo({ userId: 'v', userType: '2', startTime: 1704067200, endTime: '1704196800', photo: '' })
    expect(v.role).toBe('user')
    expect(v.extras?.user_type).toBe('visitor')
    expect(v.validFrom?.toISOString()).toBe('2024-01-01T00:00:00.000Z')
    expect(v.validTo?.toISOString()).toBe('2024-01-02T12:00:00.000Z')
    expect(v.hasPhoto).toBe(false)
    expect(userObjectToPersonInfo({ userId: 'b', userType: 3 }).role).toBe('blacklist')
    expect(userObjectToPersonInfo({ userId: 's', userType: -1 }).role).toBe('')
    expect(userObjectToPersonInfo({ userId: 7 as unknown as string }).id).toBe('7')
  })

  it('documentedUserFields keeps the documented fields and fills the required ones', () => {
    const u = documentedUserFields({ userId: 'x', userType: 2, name: 'n', createTime: 5, photo: 'old', startTime: 9 })
    expect(u).toEqual({ userId: 'x', userType: 2, name: 'n', photo: 'old', startTime: 9, icNumber: '', jobNumber: '', mobile: '', remark: '' })
  })
})

describe('SignObject → AccessRecord (8.3.1)', () => {
  const base: SignObject = {
    id: 42,
    userId: 'E1',
    name: '张三',
    userType: 1,
    type: 1,
    inputType: 1,
    signTime: 1704067200,
    similarity: 93,
    temperature: 36.5,
    temperatureState: 0,
    wearMask: true,
    wearMaskAlarm: false,
    deviceMark: 'gate-1',
  }

  it('maps an employee face record', () => {
    const r = signToRecord(base)
    expect(r).toEqual({
      recordId: '42',
      time: new Date('2024-01-01T00:00:00Z'),
      userId: 'E1',
      name: '张三',
      type: 'employee',
      result: 'granted',
      direction: '',
      method: 'face',
      extras: { similarity: 93, temperature: 36.5, temperature_state: 0, mask: true, mask_alarm: false, device_mark: 'gate-1' },
    })
  })

  it('types, results and methods', () => {
    const cases: [number, string, string][] = [
      [1, 'employee', 'granted'],
      [2, 'visitor', 'granted'],
      [3, 'blacklist', 'denied'],
      [-1, 'stranger', 'stranger'],
    ]
    for (const [type, name, result] of cases) {
      const r = signToRecord({ ...base, type, userType: type })
      expect([r.type, r.result]).toEqual([name, result])
    }
    expect(signToRecord({ ...base, type: -1, userId: '0' }).userId).toBe('')
    const methods = ['face', 'qrcode', 'card', 'uuid']
    methods.forEach((m, i) => expect(signToRecord({ ...base, inputType: i + 1 }).method).toBe(m))
    expect(signToRecord({ ...base, inputType: 9 }).method).toBe('9')
  })

  it('falls back to userType when type is missing, and tolerates numeric strings', () => {
    const r = signToRecord({ id: '7', signTime: '1704067200', userType: '2', inputType: '3', similarity: '80' })
    expect(r.type).toBe('visitor')
    expect(r.method).toBe('card')
    expect(r.time.toISOString()).toBe('2024-01-01T00:00:00.000Z')
    expect(r.extras).toMatchObject({ similarity: 80, temperature: null, mask: null, device_mark: null })
  })

  it('decodes signAvatar into photo bytes (with or without a data: prefix)', () => {
    const b64 = JPEG.toString('base64')
    expect(signToRecord({ ...base, signAvatar: b64 }).photo).toEqual(JPEG)
    expect(signToRecord({ ...base, signAvatar: `data:image/jpeg;base64,${b64}` }).photo).toEqual(JPEG)
    expect(signToRecord(base).photo).toBeUndefined()
    expect(decodeImage(b64)).toEqual(JPEG)
  })

  it('reads a 13-digit signTime as milliseconds', () => {
    expect(signTimeSeconds({ id: 1, signTime: 1704067200123 })).toBe(1704067200)
    expect(signTimeSeconds({ id: 1, signTime: 'x' })).toBeNaN()
  })
})

describe('answer envelope and pages', () => {
  it('parses {code, message, desc, data}, numeric-string codes too', () => {
    expect(parseEnvelope({ code: 200, message: 'OK', desc: '', data: { a: 1 } })).toMatchObject({
      code: 200,
      message: 'OK',
      desc: '',
      data: { a: 1 },
    })
    expect(parseEnvelope({ code: '10005', message: 'Signature Failed' }).code).toBe(10005)
    const withJson = parseEnvelope({ code: 200, json: { x: 1 } })
    expect(withJson.raw.json).toEqual({ x: 1 })
  })

  it('rejects what is not an envelope', () => {
    expect(() => parseEnvelope('hello')).toThrow(DeviceError)
    expect(() => parseEnvelope({ message: 'OK' })).toThrow(/no numeric "code"/)
    expect(() => parseEnvelope({ code: 'OK' })).toThrow(DeviceError)
    expect(() => parseEnvelope([1])).toThrow(DeviceError)
  })

  it('parses the page shape, tolerating strings and missing parts', () => {
    expect(parsePage({ total: '14', pageNum: 1, size: 3, pageSize: 3, totalPage: 5, data: [1, 2, 3] })).toEqual({
      total: 14,
      pageNum: 1,
      size: 3,
      pageSize: 3,
      totalPage: 5,
      items: [1, 2, 3],
    })
    expect(parsePage(undefined)).toMatchObject({ total: 0, items: [] })
    expect(parsePage({ data: [1] })).toMatchObject({ total: 1, items: [1] })
  })
})

describe('personRules (8.2.1)', () => {
  it('has the document limits', () => {
    expect(personRules).toMatchObject({
      protocol: 'openapi',
      maxLength: { id: 40, name: 80, card: 40, phone: 20, department: 80 },
      required: ['id', 'name'],
      maxPhotoBytes: 400 * 1024,
    })
  })

  it('id pattern refuses path characters and the delete-everyone id', () => {
    const re = personRules.idPattern!.re
    for (const ok of ['E1', '00042', '张三-1', 'a.b_c', 'alls']) expect(re.test(ok)).toBe(true)
    for (const bad of ['all', 'ALL', 'a/b', 'a b', 'a?b', 'a#b', 'a%2F', '']) expect(re.test(bad)).toBe(false)
  })
})

describe('config values (8.1.2, 8.1.4, 8.1.5)', () => {
  const current = { faceEnable: 1, faceThre: 5, tempWarnThre: 37.3, faceInterval: 10, vendorExtra: 'x' }

  it('coerces strings to the documented types and keeps the other fields', () => {
    const merged = mergeConfig('smartface', current, { faceThre: '7', tempWarnThre: '37.5', vendorExtra: 'y' })
    expect(merged).toEqual({ faceEnable: 1, faceThre: 7, tempWarnThre: 37.5, faceInterval: 10, vendorExtra: 'y' })
    expect(mergeConfig('network', { DNS1: '1.1.1.1' }, { dns1: '9.9.9.9', dhcpEnable: 0 })).toEqual({
      DNS1: '9.9.9.9',
      dhcpEnable: 0,
    })
  })

  it('unknown key → UsageError listing the valid keys', () => {
    try {
      mergeConfig('perpara', {}, { nope: '1' })
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError)
      expect((err as UsageError).message).toContain('"nope"')
      expect((err as UsageError).suggestion).toContain('unlockOuttime')
    }
  })

  it('bad numbers and out-of-range values → UsageError', () => {
    expect(() => mergeConfig('smartface', current, { faceThre: 'high' })).toThrow(/must be an integer/)
    expect(() => mergeConfig('smartface', current, { faceThre: '5.5' })).toThrow(UsageError)
    expect(() => mergeConfig('smartface', current, { tempWarnThre: 'abc' })).toThrow(/must be a number/)
    expect(() => mergeConfig('smartface', current, { faceThre: '11' })).toThrow(/between 0 and 10/)
    expect(() => mergeConfig('perpara', {}, { unlockOuttime: '0' })).toThrow(/between 1 and 30/)
  })
})

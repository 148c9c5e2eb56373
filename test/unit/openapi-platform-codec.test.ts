/**
 * openapi platform-mode codec (openapi-face.txt section 9): the examples of the document, with
 * their stray spaces and their two spellings, read as a device would send them.
 */
import { describe, expect, it } from 'vitest'
import {
  captureToRecord, decodeImg, faceAnswer, field, libraryItemJson, normalizeKeys, parseAttributeUpload, parseBool, parseFaceUpload, parseHeartbeat,
  parseLastQueryTime, parseResults, parseSyrecordAnswer, parseTemperature, personProblem, PLATFORM_KINDS, PLATFORM_RECORD_EXTRAS, recordIdOf,
  retAnswer, roleOf, rosterPersonJson, syrecordAnswer, text, toSeconds, userTypeOf, type Capture,
} from '../../src/drivers/openapi/platform-codec.js'
import * as driverModule from '../../src/drivers/openapi/index.js'

const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9])

/** The 9.2 example, made valid JSON (the document's has "img" without a comma before it and a placeholder value). */
const FACE_EXAMPLE = {
  userId: '111222', userName: '李二壮', userType: 'student', deviceId: '0000001', uuid: 'SY001', nationCode: 'XXX社区', actionCode: 1, action: '进门',
  temperature: '36.5°C', mask: true, screenTime: 1487295360, similarity: 80,
  idCardInfo: {
    name: '张三', gender: '男', national: '汉族', birthday: '19961122', address: '湖南省永州市xxx县xxx村xxx号', id: '43112319961122xxxx', maker: 'xxx县公安局',
    startDate: '2012.11.22', endDate: '2022.11.22',
  },
  img: JPEG.toString('base64'),
}

describe('section 9 quirks', () => {
  it('keys with stray spaces are trimmed at every depth (AMBIGUITIES #13)', () => {
    expect(normalizeKeys({ 'operateTime ': 1, ' a': { ' b ': [{ 'c ': 2 }] } })).toEqual({ operateTime: 1, a: { b: [{ c: 2 }] } })
  })

  it('values with stray spaces are trimmed; fields are found under either spelling', () => {
    expect(text(' 100')).toBe('100')
    expect(text(' save')).toBe('save')
    expect(text(7)).toBe('7')
    expect(text(undefined)).toBe('')
    expect(field({ deviceId: 'x' }, 'deviceid')).toBe('x')
    expect(field({ userID: 'y' }, 'userId')).toBe('y')
  })

  it('temperature: "36.5°C", "36.3", numbers, °F', () => {
    expect(parseTemperature('36.5°C')).toEqual({ value: 36.5, unit: 'C' })
    expect(parseTemperature('36.3')).toEqual({ value: 36.3, unit: 'C' })
    expect(parseTemperature('36.8℃')).toEqual({ value: 36.8, unit: 'C' })
    expect(parseTemperature(' 97.9 °F')).toEqual({ value: 97.9, unit: 'F' })
    expect(parseTemperature(36)).toEqual({ value: 36, unit: 'C' })
    expect(parseTemperature('')).toEqual({ value: null, unit: null })
  })

  it('mask Bool in its usual disguises; screenTime seconds or milliseconds', () => {
    expect([true, false, 'true', '0', 1, 'x', undefined].map(parseBool)).toEqual([true, false, true, false, true, null, null])
    expect(toSeconds(1487295360)).toBe(1487295360)
    expect(toSeconds('1487295360123')).toBe(1487295360)
    expect(toSeconds(' 1487295360 ')).toBe(1487295360)
    expect(toSeconds('soon')).toBeUndefined()
    expect(toSeconds(0)).toBeUndefined()
  })

  it('img: plain base64 or a data: URI; garbage is refused', () => {
    expect(decodeImg(JPEG.toString('base64'))).toEqual(JPEG)
    expect(decodeImg(`data:image/jpeg;base64,${JPEG.toString('base64')}`)).toEqual(JPEG)
    expect(decodeImg('最大为700K的经base64编码后的图片数据')).toBeUndefined()
    expect(decodeImg('')).toBeUndefined()
  })

  it('lastQueryTime: 0, a number, the document\'s "XXX X" spacing; none = 0; junk is an error', () => {
    expect(parseLastQueryTime(new URLSearchParams('lastQueryTime=0'))).toBe(0)
    expect(parseLastQueryTime(new URLSearchParams('lastQueryTime=1487313392'))).toBe(1487313392)
    expect(parseLastQueryTime(new URLSearchParams('lastQueryTime=148731 3392'))).toBe(1487313392)
    expect(parseLastQueryTime(new URLSearchParams(''))).toBe(0)
    expect(parseLastQueryTime(new URLSearchParams('lastQueryTime=yesterday'))).toHaveProperty('error')
  })
})

describe('9.1 face library answer', () => {
  it('is the example envelope, with both imageUrl and userImageUrl (AMBIGUITIES #13), ret and desc beside it', () => {
    const a = syrecordAnswer([{ operation: 'save', userId: '1112222', userName: '刘金', userType: 'student', userRemark: '学生', sex: 1, imageUrl: 'http://h/x.jpg', operateTime: 1487315041 }], 1487313392)
    expect(a).toEqual({
      ret: '0', desc: 'Success',
      serviceResponse: {
        list: [{ operation: 'save', userType: 'student', userId: '1112222', userName: '刘金', sex: 1, userRemark: '学生', imageUrl: 'http://h/x.jpg', userImageUrl: 'http://h/x.jpg', operateTime: 1487315041 }],
        lastQueryTime: 1487313392,
      },
    })
    expect(libraryItemJson({ operation: 'delete', userId: '1', userName: 'a', userType: 'user', userRemark: '', imageUrl: '', operateTime: 5 })).not.toHaveProperty('sex')
  })

  it('the document\'s own example reads back (stray spaces in keys and values, userImageUrl only)', () => {
    const example = {
      serviceResponse: {
        list: [
          { operation: 'save', userType: 'student', userId: '1112222', userName: '刘金', sex: 1, userRemark: '学生', userImageUrl: 'http://eee.com/dedc.jpg', 'operateTime ': 1487315041 },
          { operation: 'delete ', userType: 'user', userId: '1112222', userName: '李广', sex: 2, userRemark: '用户 , 多金', userImageUrl: 'http://eee.com/dedc.jpg', 'operateTime ': 1487315041 },
          { operation: ' save', userType: 'user', userId: '1112222', userName: '李广', sex: 2, userRemark: 'XXXXX', userImageUrl: 'http://eee.com/dedc.jpg', 'operateTime ': 1487315041 },
        ],
        lastQueryTime: 1487313392,
      },
    }
    const r = parseSyrecordAnswer(example)
    expect(r.lastQueryTime).toBe(1487313392)
    expect(r.items.map((i) => i.operation)).toEqual(['save', 'delete', 'save'])
    expect(r.items[0]).toMatchObject({ imageUrl: 'http://eee.com/dedc.jpg', operateTime: 1487315041, sex: 1 })
  })
})

describe('9.2 / 9.3 uploads', () => {
  it('the 9.2 example → a record: photo, direction, temperature, mask, ID card as extras', () => {
    const c = parseFaceUpload(FACE_EXAMPLE) as Capture
    expect(c).not.toHaveProperty('error')
    const r = captureToRecord('door-1', '0000001', c, true)
    expect(r).toMatchObject({
      device: 'door-1', time: 1487295360_000, userId: '111222', name: '李二壮', type: 'student', result: 'granted', direction: 'in', method: 'face',
    })
    expect(r.photo).toEqual(JPEG)
    expect(r.extras).toMatchObject({
      similarity: 80, temperature: 36.5, temperature_unit: 'C', mask: true, source: 'syface', uuid: 'SY001', nation_code: 'XXX社区', action: '进门',
      id_card_name: '张三', id_card_number: '43112319961122xxxx', id_card_maker: 'xxx县公安局', id_card_start: '2012.11.22', id_card_end: '2022.11.22',
    })
    expect(Object.keys(r.extras)).toEqual([...PLATFORM_RECORD_EXTRAS])
    expect(captureToRecord('door-1', '0000001', c, false).result).toBe('denied')
  })

  it('the table\'s flat ID-card fields are read too; actionCode 2 = out; keys with spaces', () => {
    const { idCardInfo: _card, ...flat } = FACE_EXAMPLE
    const c = parseFaceUpload({ ...flat, 'actionCode ': 2, ' name': '王五', id: '1101' }) as Capture
    expect(c.direction).toBe('out')
    expect(c.idCard).toMatchObject({ name: '王五', number: '1101' })
  })

  it('a retried upload gets the same record id; another capture, time, user or device gets another', () => {
    const c = parseFaceUpload(FACE_EXAMPLE) as Capture
    const again = parseFaceUpload(JSON.parse(JSON.stringify({ ...FACE_EXAMPLE, img: `data:image/jpeg;base64,${JPEG.toString('base64')}` }))) as Capture
    const id = recordIdOf('0000001', c)
    expect(id).toMatch(/^sf-[0-9a-f]{24}$/)
    expect(recordIdOf('0000001', again)).toBe(id)
    expect(recordIdOf('0000001', { ...c, screenTime: c.screenTime + 1 })).not.toBe(id)
    expect(recordIdOf('0000001', { ...c, userId: '9' })).not.toBe(id)
    expect(recordIdOf('0000002', c)).not.toBe(id)
    expect(recordIdOf('0000001', { ...c, image: Buffer.from([0xff, 0xd8, 0xff, 0]) })).not.toBe(id)
    expect(recordIdOf('0000001', { ...c, kind: 'attribute' })).toMatch(/^sa-/)
  })

  it('bad 9.2 bodies are errors: not an object, no screenTime, no userId, img not base64', () => {
    expect(parseFaceUpload('x')).toHaveProperty('error')
    expect(parseFaceUpload([FACE_EXAMPLE])).toHaveProperty('error')
    expect(parseFaceUpload({ ...FACE_EXAMPLE, screenTime: undefined })).toHaveProperty('error')
    expect(parseFaceUpload({ ...FACE_EXAMPLE, userId: ' ' })).toHaveProperty('error')
    expect(parseFaceUpload({ ...FACE_EXAMPLE, img: '最大为700K的经base64编码后的图片数据' })).toHaveProperty('error')
  })

  it('9.3: the example wrapped in "Info", and the table flat; openCode decides the result', () => {
    const info = { deviceid: '0000001', uuid: 'SY001', temperature: '36.3', mask: true, nationCode: 'XXX社区', openCode: 100, openMsg: '开门成功', screenTime: 1487295360, img: JPEG.toString('base64') }
    const wrapped = parseAttributeUpload({ Info: info }) as Capture
    const flat = parseAttributeUpload(info) as Capture
    expect(wrapped).toEqual(flat)
    const r = captureToRecord('door-1', '0000001', wrapped)
    expect(r).toMatchObject({ userId: '', result: 'granted', method: 'temperature', type: 'unrecognized' })
    expect(r.extras).toMatchObject({ temperature: 36.3, open_code: 100, open_msg: '开门成功', source: 'syattribute' })
    expect(captureToRecord('door-1', '0000001', { ...wrapped, openCode: 101 }).result).toBe('denied')
    expect(captureToRecord('door-1', '0000001', { ...wrapped, openCode: null }).result).toBe('unknown')
    expect(parseAttributeUpload({ Info: { temperature: '36' } })).toHaveProperty('error')
  })
})

describe('9.2 / 9.4 / 9.5 answers and requests', () => {
  it('9.2 answer: ret, desc, openDoor 0/1, unlockDelay clamped to 20–5000 ms', () => {
    expect(faceAnswer(true, 3000)).toEqual({ ret: '0', desc: 'Success', openDoor: 1, unlockDelay: 3000 })
    expect(faceAnswer(false, 1)).toMatchObject({ openDoor: 0, unlockDelay: 20 })
    expect(faceAnswer(true, 99_999).unlockDelay).toBe(5000)
    expect(retAnswer()).toEqual({ ret: '0', desc: 'Success' })
  })

  it('9.4: the example (one object under resultList, spaces), a list, a flat body; "100" is success', () => {
    expect(parseResults({ resultList: { userID: ' 111222', status: ' 100', msg: ' 操作成功' } })).toEqual([{ userId: '111222', status: '100', msg: '操作成功', ok: true }])
    expect(parseResults({ resultList: [{ userID: '1', status: '101', msg: 'no face' }, { userId: '2', status: 100, msg: '' }] })).toEqual([
      { userId: '1', status: '101', msg: 'no face', ok: false },
      { userId: '2', status: '100', msg: '', ok: true },
    ])
    expect(parseResults({ ' userID ': '3', 'status ': '0' })).toEqual([{ userId: '3', status: '0', msg: '', ok: false }])
    expect(parseResults({ nothing: 1 })).toHaveProperty('error')
    expect(parseResults({ resultList: { status: '100' } })).toHaveProperty('error')
    expect(parseResults('x')).toHaveProperty('error')
  })

  it('9.5: wrapped in Heartinfo or flat', () => {
    expect(parseHeartbeat({ Heartinfo: { deviceid: ' 111222', ServerURL: ' www.qwertasd.com' } })).toEqual({ deviceId: '111222', serverUrl: 'www.qwertasd.com' })
    expect(parseHeartbeat({ deviceid: '7' })).toEqual({ deviceId: '7', serverUrl: '' })
    expect(parseHeartbeat(undefined)).toEqual({ deviceId: '', serverUrl: '' })
  })
})

describe('people', () => {
  it('roles ↔ userType labels; 9.1 limits', () => {
    expect([userTypeOf('user'), userTypeOf('admin'), userTypeOf('blacklist'), userTypeOf(undefined)]).toEqual(['user', 'admin', 'blacklist', 'user'])
    expect([roleOf('Admin'), roleOf('student')]).toEqual(['admin', ''])
    expect(personProblem({ id: '1', name: 'a' })).toBeUndefined()
    expect(personProblem({ id: 'x'.repeat(33), name: 'a' })).toMatch(/32/)
    expect(personProblem({ id: '1', name: '' })).toMatch(/userName/)
    expect(personProblem({ id: '1', name: '张'.repeat(33) })).toMatch(/32/)
    expect(rosterPersonJson('7', { name: 'A', userType: 'blacklist', remark: 'R&D', hasPhoto: true, confirmedAt: 0 })).toMatchObject({ id: '7', name: 'A', role: 'blacklist', department: 'R&D', hasPhoto: true })
  })

  it('the driver module: platform devices get the people kinds; records columns include the platform extras', () => {
    expect([...PLATFORM_KINDS].sort()).toEqual(['deletePeople', 'enrollFace', 'listPeople', 'upsertPeople'])
    expect(driverModule.recordExtras.slice(0, 6)).toEqual(['similarity', 'temperature', 'temperature_state', 'mask', 'mask_alarm', 'device_mark'])
    for (const c of PLATFORM_RECORD_EXTRAS) expect(driverModule.recordExtras).toContain(c)
    expect(driverModule.modeOf({ name: 'a', protocol: 'openapi', tags: [], deviceId: '1' })).toBe('platform')
    expect(driverModule.modeOf({ name: 'a', protocol: 'openapi', tags: [], host: 'h', deviceId: '1', mode: 'both' })).toBe('both')
    expect(driverModule.createDriver({ name: 'a', protocol: 'openapi', tags: [], host: 'h', deviceId: '1', mode: 'both' }, { home: '/nonexistent', log: { debug() {}, info() {}, notice() {}, warn() {} } })).toBeInstanceOf(driverModule.OpenapiDriver)
    const platform = driverModule.createDriver({ name: 'a', protocol: 'openapi', tags: [], deviceId: '1', mode: 'platform' }, { home: '/nonexistent', log: { debug() {}, info() {}, notice() {}, warn() {} } })
    expect(platform).not.toBeInstanceOf(driverModule.OpenapiDriver)
    expect(platform.configSections()).toEqual([])
  })

  it('a platform device refuses what section 9 cannot do, naming the way out', async () => {
    const platform = driverModule.createDriver({ name: 'a', protocol: 'openapi', tags: [], deviceId: '1', mode: 'platform' }, { home: '/nonexistent', log: { debug() {}, info() {}, notice() {}, warn() {} } })
    const ctx = { signal: new AbortController().signal, timeoutMs: 1000, log: { debug() {}, info() {}, notice() {}, warn() {} } }
    await expect(platform.open('pulse', ctx)).rejects.toMatchObject({ name: 'UnsupportedError', message: expect.stringMatching(/--mode both/) })
    await expect(platform.reboot(ctx)).rejects.toMatchObject({ name: 'UnsupportedError' })
  })
})

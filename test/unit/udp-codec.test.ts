/**
 * udp codec against the frames of udp-intercom.txt, copied from the document as they are
 * (including `"id","1"` and the other damage), and every code table.
 */
import { describe, expect, it } from 'vitest'
import {
  ACK_TYPES, callbackFields, CODE_FAIL, CODE_OK, FACE_STATES, faceItemJson, faceListAnswer, failAnswer, heartack, identity, MAX_DATAGRAM_BYTES,
  okAnswer, oneLockAnswer, openFields, parseAck, parseAuthImage, parseDatagram, parseHeartbeat, parseLenientJson, parseTimestrap,
  parseUnlockCallback, rebootFrame, settingFrame, settingValues, UNLOCK_RESULTS, UNLOCK_TYPES, unlockFrame, unlockRecord, uploadNameOf,
  uploadParams, verdictMessage, wireId, type Incoming,
} from '../../src/drivers/udp/codec.js'
import { kinds, personRules, PHONE_RE, recordExtras } from '../../src/drivers/udp/rules.js'

/** Section 1, 7, 8, 9 examples, verbatim (line breaks included). */
const DOC = {
  heart: `{"communityId":"123456","deviceCode":"200111","cmd":"heart",
  "softVer":"1.02.03.04","name":"阳光花园","deviceSn":"asjkdfiouasdjk123"}  `,
  heartack: `{   "result": "0",   "message": "心跳发送成功" ,"cmd":"heartack"}`,
  unlock: `{"communityId":"123456","deviceCode":"200111","cmd":"unlock",
  "phone":"13888889999","roomNumber":"0304","unitId":"0011","id","1"}`,
  unlockack: `{"type": "0","message": "发送成功","deviceCode":"200111" ,"cmd":"unlockack","phone":"13888889999","roomNumber":"0304","id","1"}`,
  setting: `{"communityId":"123456","deviceCode":"200111","cmd":"setting","doorcodeNew","200111","id","1"}`,
  settingack: `{"type": "0","message": "发送成功","cmd":"settingack","id","1"}`,
  reboot: `{"communityId":"123456","deviceCode":"200111","cmd":"reboot","id","1"}`,
  rebootack: `{"type": "0","message": "发送成功","cmd":"rebootack","id","1"}`,
  oneLockAnswer: `{"data":{"unitId":"0021","phone":"13533335555","roomNumber":"0101"},"message":"添加成功","page":null,"code":"0000"}`,
  callbackAnswer: `{"data":null,"message":"添加成功","page":null,"code":"0000"}`,
  // section 5's answer, with only the missing opening quote of `message"` restored; `,,` stays
  updateImageAnswer: `{"data":[{"createTime":1601029003000,"phone":"13694276489","roomNumber":"0102","imageUrl":"\\/data\\/page\\/uploadImages\\/16010290032879ca5997b22874631bd9b58ec26f9a8da.JPG",
"state":"10","zipUrl":null,"unitId":"001","communityId":"123500"},{"createTime":1601029003000,"phone":"13694276489","roomNumber":"0101","imageUrl":"\\/data\\/page\\/uploadImages\\/16010290032879ca5997b22874631bd9b58ec26f9a8da.JPG","state":"10",
"zipUrl":null,,"unitId":"001","communityId":"123488"}],"id":"消息id","message":"添加成功","page":null,"code":"0000"}`,
}

const dg = (s: string) => parseDatagram(Buffer.from(s))

function incoming(o: Partial<Incoming> & { type?: string }): Incoming {
  return { json: o.json, fields: o.fields ?? {}, query: o.query ?? new URLSearchParams(), body: o.body ?? Buffer.alloc(0), headers: o.type ? { 'content-type': o.type } : {} }
}

describe('lenient JSON (AMBIGUITIES udp #2, #3)', () => {
  it('reads `"id","1"` as "id":"1", doubled commas, and leaves valid JSON alone', () => {
    expect(parseLenientJson(DOC.reboot)).toEqual({ communityId: '123456', deviceCode: '200111', cmd: 'reboot', id: '1' })
    expect(parseLenientJson(DOC.setting)).toEqual({ communityId: '123456', deviceCode: '200111', cmd: 'setting', doorcodeNew: '200111', id: '1' })
    const list = parseLenientJson(DOC.updateImageAnswer) as { data: Record<string, unknown>[] }
    expect(list.data).toHaveLength(2)
    expect(list.data[1]).toMatchObject({ zipUrl: null, unitId: '001', communityId: '123488' })
    expect(parseLenientJson('{"a":"b","c":"d"}')).toEqual({ a: 'b', c: 'd' })
    expect(parseLenientJson('{"a",{"b",[1,,2]}}')).toEqual({ a: { b: [1, 2] } })
  })

  it('still refuses what is not an object of that shape', () => {
    for (const bad of ['{"a" "b"}', '{a:1}', '{"a":"b"', '{"a":"b"} x', 'hello']) expect(() => parseLenientJson(bad), bad).toThrow()
  })
})

describe('datagrams', () => {
  it('section 1: the heartbeat, and the heartack exactly as the document shows it', () => {
    const d = dg(DOC.heart)
    expect(d).toMatchObject({ cmd: 'heart', broken: false })
    const hb = parseHeartbeat((d as { msg: Record<string, unknown> }).msg)
    expect(hb).toEqual({ communityId: '123456', deviceCode: '200111', softVer: '1.02.03.04', name: '阳光花园', deviceSn: 'asjkdfiouasdjk123' })
    expect(JSON.parse(heartack(true))).toEqual(parseLenientJson(DOC.heartack))
    expect(heartack(true)).toBe('{"result":"0","message":"心跳发送成功","cmd":"heartack"}')
    // CLI.md: an unknown device gets result "1" (AMBIGUITIES #10)
    expect(JSON.parse(heartack(false))).toMatchObject({ result: '1', cmd: 'heartack' })
    expect(identity('123456', '200111')).toBe('123456/200111')
  })

  it('heartbeats need communityId and deviceCode; the others are optional', () => {
    expect(parseHeartbeat({ cmd: 'heart', communityId: '1' })).toHaveProperty('error')
    expect(parseHeartbeat({ cmd: 'heart', communityId: 'a/b', deviceCode: '2' })).toHaveProperty('error')
    expect(parseHeartbeat({ cmd: 'heart', communityId: 12, deviceCode: 7 })).toEqual({ communityId: '12', deviceCode: '7', softVer: '', name: '', deviceSn: '' })
  })

  it('sections 7–9: the broken `"id","1"` acks are accepted; every ack type decodes', () => {
    for (const [text, of] of [[DOC.unlockack, 'unlock'], [DOC.settingack, 'setting'], [DOC.rebootack, 'reboot']] as const) {
      const d = dg(text)
      expect(d).toMatchObject({ broken: true, cmd: `${of}ack` })
      expect(parseAck((d as { msg: Record<string, unknown> }).msg)).toEqual({ of, id: '1', ok: true, type: '0', message: '发送成功' })
    }
    expect(parseAck({ cmd: 'unlockack', id: '7', type: '1' })).toMatchObject({ ok: false, type: '1', message: expect.stringContaining('参数无效') })
    expect(parseAck({ cmd: 'rebootack', id: '7', type: '2', message: 'nope' })).toMatchObject({ ok: false, message: expect.stringMatching(/无权限.*nope/) })
    expect(parseAck({ cmd: 'settingack', id: '7', type: '5' })).toMatchObject({ ok: false, message: 'the device answered type 5' })
    expect(parseAck({ cmd: 'settingack', id: '7' })).toMatchObject({ ok: false, message: 'the device answered without a type' })
    expect(parseAck({ cmd: 'unlockack', type: '0' })).toHaveProperty('error')
    expect(parseAck({ cmd: 'heart' })).toBeUndefined()
    expect(Object.keys(ACK_TYPES)).toEqual(['0', '1', '2'])
  })

  it('garbage, an object without cmd, and anything over 8 KB are errors, not exceptions', () => {
    expect(dg('not json at all')).toMatchObject({ error: 'not JSON' })
    expect(dg('[1,2]')).toMatchObject({ error: 'not JSON' })
    expect(dg('{"a":1}')).toMatchObject({ error: 'no cmd' })
    expect(parseDatagram(Buffer.from([0xff, 0xfe, 0x00, 0x01]))).toMatchObject({ error: 'not JSON' })
    const big = `{"cmd":"heart","x":"${'a'.repeat(MAX_DATAGRAM_BYTES)}"}`
    expect(dg(big)).toMatchObject({ error: 'oversized' })
    expect(dg('\uFEFF{"cmd":"HEART","communityId":"1","deviceCode":"2"}')).toMatchObject({ cmd: 'heart' })
  })

  it('commands are built in the examples\' key order, as valid JSON, equal to the examples read leniently', () => {
    const a = { communityId: '123456', deviceCode: '200111', id: '1' }
    const unlock = unlockFrame(a, { phone: '13888889999', roomNumber: '0304', unitId: '0011' })
    expect(JSON.parse(unlock)).toEqual(parseLenientJson(DOC.unlock))
    expect(Object.keys(JSON.parse(unlock))).toEqual(Object.keys(parseLenientJson(DOC.unlock) as object))
    expect(JSON.parse(rebootFrame(a))).toEqual(parseLenientJson(DOC.reboot))
    expect(JSON.parse(settingFrame(a, { doorcodeNew: '200111', extra: {} }))).toEqual(parseLenientJson(DOC.setting))
    // AMBIGUITIES #9: communityId listed twice; a new community travels in communityId
    expect(JSON.parse(settingFrame(a, { communityId: '999', extra: { volume: '3' } }))).toEqual({ communityId: '999', deviceCode: '200111', cmd: 'setting', volume: '3', id: '1' })
  })

  it('wire ids are digits, stable per command, different between commands', () => {
    const c = { id: 12, createdAt: 1_700_000_123_456 }
    expect(wireId(c)).toBe('1223456')
    expect(wireId(c)).toBe(wireId({ ...c }))
    expect(wireId({ id: 1, createdAt: 1_700_000_003_456 })).toBe('103456')
    expect(wireId({ id: 10, createdAt: 1_700_000_003_456 })).not.toBe(wireId({ id: 1, createdAt: 1_700_000_003_456 }))
  })
})

describe('command payloads', () => {
  it('open: pulse only; other modes are "unsupported:"', () => {
    expect(openFields({ mode: 'pulse' })).toEqual({ phone: '', roomNumber: '', unitId: '' })
    expect(openFields({ phone: '138', roomNumber: '0304', unitId: '0011' })).toEqual({ phone: '138', roomNumber: '0304', unitId: '0011' })
    for (const mode of ['keep-open', 'close', 'lock', 'unlock']) expect((openFields({ mode }) as { error: string }).error).toMatch(/^unsupported: /)
  })

  it('setting values: device section keys, deviceCode alias, json passes extras, everything else refused', () => {
    expect(settingValues('device', { doorcodeNew: '200112' })).toEqual({ doorcodeNew: '200112', extra: {} })
    expect(settingValues('device', { deviceCode: '5', communityId: 9 })).toEqual({ doorcodeNew: '5', communityId: '9', extra: {} })
    expect(settingValues('json', { volume: 3 })).toEqual({ extra: { volume: '3' } })
    expect(settingValues('device', { volume: '3' })).toHaveProperty('error')
    expect(settingValues('device', { doorcodeNew: '' })).toHaveProperty('error')
    expect(settingValues('device', { doorcodeNew: 'a/b' })).toHaveProperty('error')
    expect(settingValues('json', { id: '1' })).toHaveProperty('error')
    expect(settingValues('network', { a: '1' })).toHaveProperty('error')
    expect(settingValues('device', {})).toHaveProperty('error')
  })
})

describe('HTTP callbacks', () => {
  it('AMBIGUITIES #6: fields from JSON, forms, untyped bodies and the query string; the body wins', () => {
    expect(callbackFields(incoming({ json: { communityId: 1, deviceCode: '2', skip: { a: 1 } } }))).toEqual({ communityId: '1', deviceCode: '2' })
    expect(callbackFields(incoming({ fields: { phone: ' 138 ' }, query: new URLSearchParams('phone=1&state=50') }))).toEqual({ phone: '138', state: '50' })
    expect(callbackFields(incoming({ body: Buffer.from('timestrap=1595582052000&communityId=123485&deviceCode=') }))).toEqual({ timestrap: '1595582052000', communityId: '123485', deviceCode: '' })
    expect(callbackFields(incoming({ body: Buffer.from('garbage'), type: 'text/plain' }))).toEqual({})
  })

  it('answers have the examples\' shape', () => {
    expect(okAnswer()).toEqual(JSON.parse(DOC.callbackAnswer))
    expect(Object.keys(oneLockAnswer({}))).toEqual(Object.keys(JSON.parse(DOC.oneLockAnswer)))
    expect(oneLockAnswer({ unitId: '0021', phone: '13533335555', roomNumber: '0101' }).data).toEqual(JSON.parse(DOC.oneLockAnswer).data)
    expect(failAnswer('x')).toEqual({ data: null, message: 'x', page: null, code: CODE_FAIL })
    expect(CODE_OK).toBe('0000')
  })

  it('section 5: the face list in the example\'s keys (valid JSON), timestrap (sic) parsed', () => {
    const example = parseLenientJson(DOC.updateImageAnswer) as { data: Record<string, unknown>[] }
    const item = { createTime: 1601029003000, phone: '13694276489', roomNumber: '0102', imageUrl: '/doorctl/files/x.jpg', state: '10' as const, unitId: '001', communityId: '123500' }
    expect(Object.keys(faceItemJson(item))).toEqual(Object.keys(example.data[0]))
    const ans = faceListAnswer([item], '42')
    expect(Object.keys(ans).sort()).toEqual(['code', 'data', 'id', 'message', 'page'])
    expect(ans).toMatchObject({ code: '0000', id: '42', data: [{ zipUrl: '', imageUrl: '/doorctl/files/x.jpg' }] })
    expect(parseTimestrap({ timestrap: '1595582052000', communityId: '123485', deviceCode: '' })).toBe(1595582052000)
    expect(parseTimestrap({ timestamp: '5' })).toBe(5)
    expect(parseTimestrap({ timestrap: 'soon' })).toBe(0)
    expect(parseTimestrap({})).toBe(0)
  })

  it('section 6: verdicts 40/50 with iffile; other states are not verdicts', () => {
    const q = Object.fromEntries(new URLSearchParams('state=50&phone=354756412341&iffile=1'))
    expect(parseAuthImage(q)).toEqual({ phone: '354756412341', state: '50', hasFile: true })
    expect(parseAuthImage({ phone: '13800000000', state: '40', iffile: '2' })).toEqual({ phone: '13800000000', state: '40', hasFile: false })
    expect(parseAuthImage({ phone: '13800000000', state: '10' })).toHaveProperty('error')
    expect(parseAuthImage({ state: '50' })).toHaveProperty('error')
    expect(parseAuthImage({ phone: '../x', state: '50' })).toHaveProperty('error')
    expect(verdictMessage('50', 'added')).toMatch(/^face added: .*50/)
    expect(verdictMessage('40', 'added')).toMatch(/40.*无效图片/)
    expect(FACE_STATES).toEqual({ '10': 'added', '20': 'changed', '30': 'deleted', '40': 'invalid photo', '50': 'valid photo' })
  })

  it('section 4: `;uploadFile=` path parameters (AMBIGUITIES #8) and the paths we answer', () => {
    expect(uploadParams('/app/equipment/addUpload;uploadFile=/sdcard/1600657724098.jpg;newName=1600657724098.jpg', new URLSearchParams()))
      .toEqual({ uploadFile: '/sdcard/1600657724098.jpg', newName: '1600657724098.jpg' })
    expect(uploadParams('/addUpload', new URLSearchParams('uploadFile=a.jpg'))).toEqual({ uploadFile: 'a.jpg' })
    expect(uploadNameOf('/doorctl/files/udp-upload-1-ab.jpg')).toBe('udp-upload-1-ab.jpg')
    expect(uploadNameOf('http://127.0.0.9:8090/doorctl/files/udp-upload-1-ab.jpg')).toBe('udp-upload-1-ab.jpg')
    expect(uploadNameOf('/data/page/uploadImages/1600657724098.jpg')).toBeUndefined()
    expect(uploadNameOf('')).toBeUndefined()
  })

  it('section 3: every unlock type and result code decodes into the record', () => {
    expect(Object.keys(UNLOCK_TYPES).map(Number).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 14])
    const methods: Record<string, string> = { 0: 'qrcode', 1: 'remote', 2: 'card', 3: 'password', 4: 'face', 5: 'remote', 6: 'remote', 7: 'fingerprint', 8: 'password', 14: 'phone' }
    const base = { communityId: '1', deviceCode: '2', result: '0', phone: '13800000000', roomNumber: '0101', unitId: '0021', file: '' }
    for (const [code, method] of Object.entries(methods)) {
      const r = unlockRecord('gate', { ...base, type: code }, { time: 1, recordId: 'r', userId: 'u', name: 'n' })
      expect(r.method, code).toBe(method)
      expect(r.extras.unlock_type).toBe(Number(code))
      expect(String(r.extras.event)).toMatch(/[\u4e00-\u9fff]/)
    }
    expect(UNLOCK_RESULTS).toEqual({ '0': 'granted', '1': 'denied', '99': 'other' })
    const rec = (type: string, result: string, phone = '') => unlockRecord('gate', { ...base, type, result, phone }, { time: 5, recordId: 'r1', userId: '', name: '' })
    expect(rec('4', '0', '13800000000')).toMatchObject({ type: 'resident', result: 'granted', method: 'face', direction: '', time: 5 })
    expect(rec('4', '1')).toMatchObject({ type: '', result: 'denied' })
    expect(rec('3', '99')).toMatchObject({ type: 'visitor', result: 'other' })
    expect(rec('8', '0')).toMatchObject({ type: 'public' })
    expect(rec('6', '0')).toMatchObject({ type: 'remote' })
    expect(rec('42', '7')).toMatchObject({ method: '', result: 'result 7', extras: { event: 'unlock type 42' } })
    expect(Object.keys(rec('4', '0').extras)).toEqual([...recordExtras])
  })

  it('section 3: required fields of an unlock callback', () => {
    expect(parseUnlockCallback({ communityId: '1', deviceCode: '2', type: '4', result: '0' })).toMatchObject({ phone: '', file: '' })
    expect(parseUnlockCallback({ communityId: '1', type: '4', result: '0' })).toHaveProperty('error')
    expect(parseUnlockCallback({ communityId: '1', deviceCode: '2', type: 'face', result: '0' })).toHaveProperty('error')
    expect(parseUnlockCallback({ communityId: '1', deviceCode: '2', type: '4' })).toHaveProperty('error')
  })
})

describe('rules', () => {
  it('phone required and checked; kinds are what the document offers', () => {
    expect(personRules.required).toEqual(['phone'])
    expect(PHONE_RE.test('13533335555')).toBe(true)
    expect(PHONE_RE.test('354756412341')).toBe(true)
    expect(PHONE_RE.test('+8613533335555')).toBe(true)
    expect(PHONE_RE.test('135-3333')).toBe(false)
    expect([...kinds].sort()).toEqual(['deletePeople', 'enrollFace', 'info', 'open', 'reboot', 'setConfig', 'upsertPeople'])
  })
})

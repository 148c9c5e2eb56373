/**
 * The udp handler mounted in a real Gateway, driven by a dgram socket and fetch playing the
 * intercom as udp-intercom.txt describes it (heartbeat → commands to its source port → acks;
 * HTTP callbacks). Resend intervals are shortened through createHandler's options.
 */
import { createSocket, type Socket } from 'node:dgram'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Inventory } from '../../src/store/inventory.js'
import { createHandler, type UdpOptions } from '../../src/drivers/udp/gateway.js'
import type { DeviceEntry, Logger } from '../../src/types/driver.js'
import { Gateway } from '../../src/gateway/gateway.js'
import type { CommandKind, QueuedCommand } from '../../src/types/gateway.js'

type Json = Record<string, any>
const FACE_PATH = join(import.meta.dirname, '..', 'fixtures', 'face.jpg')
const FACE = readFileSync(FACE_PATH)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

/** The intercom's UDP side: heartbeats from one source port, every datagram it receives kept. */
class FakeIntercom {
  socket!: Socket
  got: Json[] = []
  raw: string[] = []
  port = 0
  constructor(public community: string, public code: string, private server: () => number, private bindAddress = '127.0.0.1') {}

  async open(): Promise<void> {
    this.socket = createSocket('udp4')
    this.socket.on('message', (b) => {
      this.raw.push(b.toString())
      try {
        this.got.push(JSON.parse(b.toString()))
      } catch {
        this.got.push({ unparsable: b.toString() })
      }
    })
    await new Promise<void>((r) => this.socket.bind(0, this.bindAddress, () => r()))
    this.port = this.socket.address().port
  }

  send(text: string | Buffer): Promise<void> {
    return new Promise((r, j) => this.socket.send(text, this.server(), '127.0.0.1', (e) => (e ? j(e) : r())))
  }

  async heartbeat(extra: Json = {}): Promise<Json> {
    const before = this.got.filter((m) => m.cmd === 'heartack').length
    await this.send(JSON.stringify({ communityId: this.community, deviceCode: this.code, cmd: 'heart', softVer: '1.02.03.04', name: '阳光花园', deviceSn: 'SN1', ...extra }))
    await until(() => this.got.filter((m) => m.cmd === 'heartack').length > before, 2000, 'heartack')
    return this.got.filter((m) => m.cmd === 'heartack').at(-1)!
  }

  commands(cmd?: string): Json[] {
    return this.got.filter((m) => m.cmd !== 'heartack' && (cmd === undefined || m.cmd === cmd))
  }

  async next(cmd: string, count = 1): Promise<Json> {
    await until(() => this.commands(cmd).length >= count, 3000, `${cmd} #${count}`)
    return this.commands(cmd)[count - 1]
  }

  close(): Promise<void> {
    return new Promise((r) => this.socket.close(() => r()))
  }
}

class Harness {
  home = mkdtempSync(join(tmpdir(), 'doorctl-udp-'))
  warnings: string[] = []
  gw!: Gateway
  device: DeviceEntry = { name: 'gate-1', protocol: 'udp', community: '123456', code: '200111', tags: [] }
  base = ''
  dev = new FakeIntercom('123456', '200111', () => Number(this.gw.bound.udp_port))

  async start(opts: UdpOptions = {}, settings: Json = {}) {
    new Inventory(this.home).save([this.device])
    const log: Logger = { debug() {}, info() {}, notice() {}, warn: (m, f) => this.warnings.push(`${m} ${JSON.stringify(f ?? {})}`) }
    this.gw = new Gateway({
      home: this.home, log,
      settings: { httpPort: 0, udpPort: 0, bind: '127.0.0.1', maxBodyBytes: 256 * 1024, ...settings },
      handlers: [createHandler({ resendMs: 40, resends: 3, ...opts })],
    })
    await this.gw.start()
    this.base = `http://127.0.0.1:${this.gw.httpPort}`
    if (!this.dev.socket) await this.dev.open()
  }

  async restart(opts: UdpOptions = {}) {
    await this.gw.stop()
    await this.start(opts)
  }

  async stop() {
    await this.gw.stop()
    await this.dev.close()
    rmSync(this.home, { recursive: true, force: true })
  }

  async http(path: string, body?: BodyInit, headers: Record<string, string> = {}): Promise<{ status: number; json: Json }> {
    const res = await fetch(this.base + path, { method: 'POST', body, headers })
    const text = await res.text()
    return { status: res.status, json: text ? JSON.parse(text) : {} }
  }

  form(path: string, fields: Record<string, string>) {
    return this.http(path, new URLSearchParams(fields).toString(), { 'content-type': 'application/x-www-form-urlencoded' })
  }

  submit(kind: CommandKind, payload: Json = {}): QueuedCommand {
    return this.gw.submit(this.device, kind, payload, 60_000)
  }

  cmd(id: number): QueuedCommand {
    return this.gw.command(id)!
  }

  final(id: number): Promise<QueuedCommand> {
    return this.gw.waitFor(id, AbortSignal.timeout(5000))
  }

  ack(of: string, m: Json, extra: Json = {}) {
    return this.dev.send(JSON.stringify({ type: '0', message: '发送成功', cmd: `${of}ack`, id: m.id, ...extra }))
  }

  faceList(timestrap = 0, extra: Record<string, string> = {}) {
    return this.form('/updateImage', { timestrap: String(timestrap), communityId: '123456', deviceCode: '200111', ...extra })
  }
}

let h: Harness
beforeEach(() => {
  h = new Harness()
})
afterEach(async () => {
  await h.stop()
})

describe('heartbeats and presence', () => {
  it('binds the UDP port it reports; unknown devices get result "1" and are discovered; known ones "0" and presence', async () => {
    await h.start()
    expect(h.gw.bound.udp_port).toBeGreaterThan(0)
    const stranger = new FakeIntercom('999', '1', () => Number(h.gw.bound.udp_port))
    await stranger.open()
    expect(await stranger.heartbeat()).toEqual({ result: '1', message: expect.any(String), cmd: 'heartack' })
    await stranger.close()
    expect(h.gw.discoveredDevices().map((d) => [d.protocol, d.identity])).toEqual([['udp', '999/1']])

    expect(await h.dev.heartbeat()).toEqual({ result: '0', message: '心跳发送成功', cmd: 'heartack' })
    const p = h.gw.presence().find((x) => x.device === 'gate-1')!
    expect(p).toMatchObject({ online: true, address: `127.0.0.1:${h.dev.port}`, info: { softVer: '1.02.03.04', name: '阳光花园', deviceSn: 'SN1' } })
  })

  it('a device pinned with --allow-from: a heartbeat naming it from another address is refused (result "1"), logged once, counted, not discovered', async () => {
    h.device = { ...h.device, allowFrom: ['127.0.0.1/32'] }
    await h.start()
    const refused: string[] = []
    h.gw.onRefused((r) => refused.push(`${r.device} ${r.protocol} ${r.address}`))
    // all of 127.0.0.0/8 is loopback on Linux: 127.0.0.2 stands for an impostor on another host
    const spoof = new FakeIntercom('123456', '200111', () => Number(h.gw.bound.udp_port), '127.0.0.2')
    await spoof.open()
    try {
      expect((await spoof.heartbeat()).result).toBe('1')
      expect((await spoof.heartbeat()).result).toBe('1')
      expect(h.gw.presence().find((x) => x.device === 'gate-1')).toBeUndefined()
      // its HTTP callbacks (from the same address) are refused too: nothing spooled
      const { Agent, fetch: fetchFrom } = await import('undici')
      const agent = new Agent({ localAddress: '127.0.0.2' })
      const cb = { communityId: '123456', deviceCode: '200111', type: '4', result: '0', phone: '13533335555', roomNumber: '0101', unitId: '0021' }
      const res = await fetchFrom(`${h.base}/unlockCallback`, { method: 'POST', body: new URLSearchParams(cb).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' }, dispatcher: agent })
      await agent.close()
      expect(((await res.json()) as Json).code).not.toBe('0000')
      expect(h.gw.store.records('gate-1', 0, 10)).toEqual([])
    } finally {
      await spoof.close()
    }
    expect(refused.filter((r) => r === 'gate-1 udp 127.0.0.2').length).toBeGreaterThanOrEqual(2)
    expect(h.warnings.filter((w) => w.includes('--allow-from'))).toHaveLength(1)
    expect(h.gw.discoveredDevices()).toEqual([])
    expect(await h.dev.heartbeat()).toMatchObject({ result: '0' })
    expect(h.gw.presence().find((x) => x.device === 'gate-1')).toMatchObject({ online: true })
  })

  it('garbage, oversized, cmd-less and broken datagrams are dropped with a log line; the gateway goes on', async () => {
    await h.start()
    await h.dev.send('not json')
    await h.dev.send(Buffer.alloc(9000, 0x7b))
    await h.dev.send('{"hello":"world"}')
    await h.dev.send('{"cmd":"heart","communityId":"123456"}')
    await h.dev.send('{"cmd":"whatever"}')
    await h.dev.send(Buffer.from([0xff, 0x00, 0xfe]))
    await until(() => h.warnings.length >= 4, 2000, 'warnings')
    expect(h.warnings.join('\n')).toMatch(/not JSON/)
    expect(h.warnings.join('\n')).toMatch(/oversized/)
    expect(h.warnings.join('\n')).toMatch(/no cmd/)
    expect(h.warnings.join('\n')).toMatch(/without communityId or deviceCode/)
    // the document's own broken `"id","1"` form is a heartbeat like any other
    await h.dev.send('{"communityId","123456","deviceCode","200111","cmd","heart"}')
    await until(() => h.dev.got.some((m) => m.cmd === 'heartack'), 2000, 'heartack to the broken form')
    expect(h.dev.got.find((m) => m.cmd === 'heartack')).toMatchObject({ result: '0' })
    expect(await h.dev.heartbeat()).toMatchObject({ result: '0' })
  })
})

describe('commands over UDP', () => {
  it('queued before any heartbeat: sent to the heartbeat\'s source port after its heartack; the ack finishes it', async () => {
    await h.start()
    const c = h.submit('reboot')
    await sleep(100)
    expect(h.dev.commands()).toEqual([])
    expect(h.cmd(c.id).state).toBe('queued')
    await h.dev.heartbeat()
    const m = await h.dev.next('reboot')
    expect(h.dev.raw.findIndex((r) => r.includes('heartack'))).toBeLessThan(h.dev.raw.findIndex((r) => r.includes('"reboot"')))
    expect(m).toEqual({ communityId: '123456', deviceCode: '200111', cmd: 'reboot', id: expect.stringMatching(/^\d+$/) })
    expect(h.cmd(c.id).state).toBe('delivered')
    await h.ack('reboot', m)
    const done = await h.final(c.id)
    expect(done).toMatchObject({ state: 'acknowledged', result: { message: 'rebooting' } })
  })

  it('a device heard recently gets a command at once, one at a time in queue order, each with a fresh id', async () => {
    await h.start()
    await h.dev.heartbeat()
    const open = h.submit('open', { mode: 'pulse' })
    const reboot = h.submit('reboot')
    const u = await h.dev.next('unlock')
    expect(u).toEqual({ communityId: '123456', deviceCode: '200111', cmd: 'unlock', phone: '', roomNumber: '', unitId: '', id: expect.any(String) })
    await sleep(20)
    expect(h.dev.commands('reboot')).toEqual([])
    // the document's broken form, without communityId/deviceCode (AMBIGUITIES #9)
    await h.dev.send(`{"type": "0","message": "发送成功","cmd":"unlockack","id","${u.id}"}`)
    expect((await h.final(open.id)).result?.message).toBe('door opened')
    const r = await h.dev.next('reboot')
    expect(r.id).not.toBe(u.id)
    await h.ack('reboot', r)
    expect((await h.final(reboot.id)).state).toBe('acknowledged')
  })

  it('no ack: resent with the same id a bounded number of times, then again after the next heartbeat; executed once', async () => {
    await h.start({ resendMs: 30, resends: 3 })
    await h.dev.heartbeat()
    const c = h.submit('reboot')
    await h.dev.next('reboot', 4)
    await sleep(150)
    const sent = h.dev.commands('reboot')
    expect(sent).toHaveLength(4) // 1 + 3 resends, then it waits
    expect(new Set(sent.map((m) => m.id)).size).toBe(1)
    expect(h.cmd(c.id).state).toBe('delivered')
    await h.dev.heartbeat()
    await h.dev.next('reboot', 5)
    expect(h.dev.commands('reboot')[4].id).toBe(sent[0].id)
    await h.ack('reboot', sent[0])
    expect((await h.final(c.id)).state).toBe('acknowledged')
    const n = h.dev.commands('reboot').length
    await sleep(100)
    expect(h.dev.commands('reboot')).toHaveLength(n) // no more resends after the ack
    // a late duplicate ack is ignored
    await h.ack('reboot', sent[0])
    expect(await h.dev.heartbeat()).toMatchObject({ result: '0' })
  })

  it('a refusal (type 2) fails the command with the device\'s reason', async () => {
    await h.start()
    await h.dev.heartbeat()
    const c = h.submit('open', { mode: 'pulse', phone: '13888889999', roomNumber: '0304', unitId: '0011' })
    const m = await h.dev.next('unlock')
    expect(m).toMatchObject({ phone: '13888889999', roomNumber: '0304', unitId: '0011' })
    await h.ack('unlock', m, { type: '2' })
    const done = await h.final(c.id)
    expect(done.state).toBe('failed')
    expect(done.result).toMatchObject({ message: expect.stringContaining('无权限'), deviceCode: '2' })
  })

  it('open modes other than pulse fail as "unsupported:" without sending anything', async () => {
    await h.start()
    await h.dev.heartbeat()
    const c = h.submit('open', { mode: 'keep-open' })
    const done = await h.final(c.id)
    expect(done.state).toBe('failed')
    expect(done.result?.message).toMatch(/^unsupported: /)
    await sleep(50)
    expect(h.dev.commands()).toEqual([])
  })

  it('setting: doorcodeNew goes out; the ack reports the new identity, which is then served as the same device', async () => {
    await h.start()
    await h.dev.heartbeat()
    const bad = h.submit('setConfig', { section: 'device', values: { volume: '3' } })
    expect((await h.final(bad.id)).result?.message).toMatch(/no setting "volume"/)
    const c = h.submit('setConfig', { section: 'device', values: { doorcodeNew: '200112' } })
    const m = await h.dev.next('setting')
    expect(m).toEqual({ communityId: '123456', deviceCode: '200111', cmd: 'setting', doorcodeNew: '200112', id: expect.any(String) })
    await h.ack('setting', m)
    const done = await h.final(c.id)
    expect(done.result).toMatchObject({ data: { newCommunity: '123456', newCode: '200112' } })
    h.dev.code = '200112'
    expect(await h.dev.heartbeat()).toMatchObject({ result: '0' })
    expect(h.gw.discoveredDevices()).toEqual([])
    // commands now carry the identity the device calls itself by
    h.submit('reboot')
    expect(await h.dev.next('reboot')).toMatchObject({ deviceCode: '200112' })
  })

  it('info is answered from the last heartbeat, at once', async () => {
    await h.start()
    await h.dev.heartbeat({ softVer: '2.0' })
    const c = h.submit('info')
    const done = await h.final(c.id)
    expect(done.result?.data).toMatchObject({ communityId: '123456', deviceCode: '200111', softVer: '2.0', deviceSn: 'SN1', device: { deviceCode: '200111' } })
  })
})

describe('HTTP callbacks', () => {
  it('a capture and its record: spooled with the photo before the answer, once even if re-sent', async () => {
    await h.start()
    const fd = new FormData()
    fd.set('newName', '1600657724098.jpg')
    fd.set('uploadFile', new Blob([FACE], { type: 'image/jpeg' }), '1600657724098.jpg')
    const up = await h.http('/addUpload', fd)
    expect(up).toMatchObject({ status: 200, json: { code: '0000', data: expect.stringMatching(/^\/doorctl\/files\/udp-upload-/) } })
    const cb = { communityId: '123456', deviceCode: '200111', type: '4', result: '0', phone: '13533335555', roomNumber: '0101', unitId: '0021', file: up.json.data }
    expect((await h.form('/unlockCallback', cb)).json).toEqual({ data: null, message: '添加成功', page: null, code: '0000' })
    expect((await h.http('/unlockCallback', JSON.stringify(cb), { 'content-type': 'application/json' })).json.code).toBe('0000')
    const recs = h.gw.store.records('gate-1', 0, 10)
    expect(recs).toHaveLength(1)
    expect(recs[0]).toMatchObject({ type: 'resident', result: 'granted', method: 'face', userId: '13533335555', extras: { unlock_type: 4, phone: '13533335555', room: '0101', unit: '0021' } })
    expect(h.gw.store.photo(recs[0].photoPath!)).toEqual(FACE)
    // without a capture: a record of its own each time
    await h.form('/unlockCallback', { ...cb, file: '', type: '1' })
    expect(h.gw.store.records('gate-1', 0, 10).map((r) => r.method)).toEqual(['face', 'remote'])
  })

  it('section 4\'s `;uploadFile=` URL syntax and the /app/equipment prefix are routed', async () => {
    await h.start()
    const fd = new FormData()
    fd.set('file', new Blob([FACE], { type: 'image/jpeg' }), 'x.jpg')
    const up = await h.http('/app/equipment/addUpload;uploadFile=/sdcard/1600657724098.jpg;newName=1600657724098.jpg', fd)
    expect(up.json.code).toBe('0000')
    const photo = await fetch(h.base + up.json.data)
    expect(Buffer.from(await photo.arrayBuffer())).toEqual(FACE)
  })

  it('bad bodies and unknown devices get an error answer; the gateway stays up', async () => {
    await h.start()
    expect((await h.http('/unlockCallback', '{"communityId": ', { 'content-type': 'application/json' })).status).toBe(400)
    expect(await h.form('/unlockCallback', { communityId: '123456' })).toMatchObject({ status: 400, json: { code: '9999' } })
    expect(await h.form('/unlockCallback', { communityId: '1', deviceCode: '2', type: '4', result: '0' })).toMatchObject({ status: 200, json: { code: '9999' } })
    expect(h.gw.discoveredDevices().map((d) => d.identity)).toEqual(['1/2'])
    expect((await h.http('/addUpload', 'x', { 'content-type': 'multipart/form-data; boundary=zz' })).status).toBe(400)
    expect(await h.http('/addUpload')).toMatchObject({ status: 400, json: { code: '9999' } })
    expect(await h.form('/authImage', { phone: '13533335555', state: '77' })).toMatchObject({ status: 400 })
    expect(await h.form('/oneLock', { onePassword: '1' })).toMatchObject({ status: 400 })
    expect(await h.form('/updateImage', { timestrap: '0' })).toMatchObject({ status: 400, json: { code: '9999' } })
    expect((await h.http('/updateImage', Buffer.alloc(300 * 1024, 0x61), { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(413)
    expect(h.warnings.some((w) => w.includes('udp /unlockCallback refused'))).toBe(true)
    expect(await h.dev.heartbeat()).toMatchObject({ result: '0' })
    expect((await h.faceList()).json.code).toBe('0000')
  })

  it('/oneLock: a password of an imported person, checked by serve --authorize with that person\'s id', async () => {
    const allowed = join(h.home, 'allowed.csv')
    writeFileSync(allowed, 'id\n101\n')
    await h.start({}, { authorize: allowed })
    const imp = h.submit('upsertPeople', { people: [
      { id: '101', name: 'Wei', phone: '13533335555', room: '0101', unit: '0021', password: '4711' },
      { id: '102', name: 'Ana', phone: '13533336666', password: '4712' },
    ] })
    expect((await h.final(imp.id)).result?.people?.map((p) => p.action)).toEqual(['stored', 'stored'])
    const ask = (pw: string) => h.form('/oneLock', { communityId: '123456', deviceCode: '200111', onePassword: pw })
    expect((await ask('4711')).json).toEqual({ data: { unitId: '0021', phone: '13533335555', roomNumber: '0101' }, message: expect.any(String), page: null, code: '0000' })
    expect((await ask('4712')).json.code).toBe('9999') // 102 is not on the list
    expect((await ask('0000')).json.code).toBe('9999')
    expect((await h.form('/oneLock', { communityId: '1', deviceCode: '9', onePassword: '4711' })).json.code).toBe('9999')
  })
})

describe('faces', () => {
  it('import: list with relative imageUrls, verdicts per person at /authImage, people without phone refused', async () => {
    await h.start()
    const noface = join(h.home, 'noface.jpg')
    writeFileSync(noface, Buffer.concat([FACE, Buffer.from('NOFACE')]))
    const c = h.submit('upsertPeople', { people: [
      { id: '1', name: 'A', phone: '13500000001', room: '0101', unit: '0021', photoPath: FACE_PATH },
      { id: '2', name: 'B', phone: '13500000002', photoPath: noface },
      { id: '3', name: 'C' },
      { id: '4', name: 'D', phone: '12-34' },
      { id: '5', name: 'E', phone: '13500000005' },
      { id: '6', name: 'F', phone: '13500000006', photoPath: join(h.home, 'missing.jpg') },
    ] })
    const list = await h.faceList()
    expect(list.json.code).toBe('0000')
    expect(list.json.data).toEqual([
      { createTime: expect.any(Number), phone: '13500000001', roomNumber: '0101', imageUrl: expect.stringMatching(/^\/doorctl\/files\//), state: '10', zipUrl: '', unitId: '0021', communityId: '123456' },
      expect.objectContaining({ phone: '13500000002', state: '10', roomNumber: '', unitId: '' }),
    ])
    expect(list.json.data[1].createTime).toBeGreaterThan(list.json.data[0].createTime)
    expect(h.cmd(c.id).state).toBe('delivered')
    const img = await fetch(h.base + list.json.data[0].imageUrl)
    expect(Buffer.from(await img.arrayBuffer())).toEqual(FACE)
    // strictly after timestrap, but entries still waiting for a verdict come again
    expect((await h.faceList(list.json.data[1].createTime)).json.data).toHaveLength(2)

    const fd = new FormData()
    for (const [k, v] of Object.entries({ phone: '13500000001', state: '50', iffile: '1' })) fd.set(k, v)
    fd.set('file', new Blob([Buffer.from('FEATURE')]), 'f.bin')
    // section 6's example names no device: without a heartbeat from this address, which one is unknown
    expect(await h.http('/authImage?state=50&phone=13500000001&iffile=1', fd)).toMatchObject({ status: 400, json: { code: '9999' } })
    expect(h.cmd(c.id).state).toBe('delivered')
    // after a heartbeat, the device is the one heartbeating from this address
    await h.dev.heartbeat()
    expect((await h.http('/authImage?state=50&phone=13500000001&iffile=1', fd)).json.code).toBe('0000')
    expect((await h.form('/authImage', { phone: '13500000002', state: '40', iffile: '2', communityId: '123456', deviceCode: '200111' })).json.code).toBe('0000')
    const done = await h.final(c.id)
    expect(done.state).toBe('acknowledged')
    const by = Object.fromEntries(done.result!.people!.map((p) => [p.id, p]))
    expect(by['1']).toMatchObject({ status: 'ok', action: 'added', message: expect.stringContaining('50') })
    expect(by['2']).toMatchObject({ status: 'failed', deviceCode: 40, message: expect.stringContaining('40') })
    expect(by['3']).toMatchObject({ status: 'failed', message: expect.stringContaining('no phone') })
    expect(by['4']).toMatchObject({ status: 'failed', message: expect.stringContaining('not a phone number') })
    expect(by['5']).toMatchObject({ status: 'ok', action: 'stored' })
    expect(by['6']).toMatchObject({ status: 'failed', message: expect.stringContaining('ENOENT') })
    // nothing new since the last entry; the invalid face is not offered again
    expect((await h.faceList(list.json.data[1].createTime)).json.data).toEqual([])
    expect((await h.faceList(0)).json.data.map((x: Json) => x.phone)).toEqual(['13500000001'])

    // a record names the imported person by id
    await h.form('/unlockCallback', { communityId: '123456', deviceCode: '200111', type: '4', result: '0', phone: '13500000001', roomNumber: '', unitId: '' })
    expect(h.gw.store.records('gate-1', 0, 10)[0]).toMatchObject({ userId: '1', name: 'A' })

    // re-import with a new photo → state 20; delete → state 30, done when handed out
    const again = h.submit('enrollFace', { id: '1', photoPath: FACE_PATH })
    const l2 = (await h.faceList(list.json.data[1].createTime)).json.data
    expect(l2).toEqual([expect.objectContaining({ phone: '13500000001', state: '20' })])
    await h.form('/authImage', { phone: '13500000001', state: '50', iffile: '2', communityId: '123456', deviceCode: '200111' })
    expect((await h.final(again.id)).result?.people).toEqual([expect.objectContaining({ id: '1', status: 'ok', action: 'enrolled' })])
    const del = h.submit('deletePeople', { ids: ['1', '5', '77'] })
    const l3 = (await h.faceList(l2[0].createTime)).json.data
    expect(l3).toEqual([expect.objectContaining({ phone: '13500000001', state: '30', imageUrl: '' })])
    const deleted = await h.final(del.id)
    expect(deleted.result?.people?.map((p) => [p.id, p.status])).toEqual([['1', 'ok'], ['5', 'ok'], ['77', 'failed']])
    expect((await fetch(h.base + list.json.data[0].imageUrl)).status).toBe(404)
  })

  it('an entry replaced before its verdict settles the earlier command instead of leaving it to time out', async () => {
    await h.start()
    const verdict = (phone: string, state: string) => h.form('/authImage', { phone, state, iffile: '2', communityId: '123456', deviceCode: '200111' })
    const first = h.submit('upsertPeople', { people: [{ id: '1', phone: '13500000001', photoPath: FACE_PATH }] })
    const second = h.submit('upsertPeople', { people: [{ id: '1', phone: '13500000001', photoPath: FACE_PATH }] })
    expect((await h.faceList()).json.data).toEqual([expect.objectContaining({ phone: '13500000001', state: '10' })])
    await verdict('13500000001', '50')
    expect((await h.final(first.id)).result?.people?.[0]).toMatchObject({ status: 'ok' })
    expect((await h.final(second.id)).result?.people?.[0]).toMatchObject({ status: 'ok' })

    const again = h.submit('enrollFace', { id: '1', photoPath: FACE_PATH })
    const del = h.submit('deletePeople', { ids: ['1'] })
    expect((await h.final(again.id)).result?.people?.[0]).toMatchObject({ status: 'failed', message: expect.stringContaining('deleted by a later command') })
    expect((await h.faceList()).json.data).toEqual([expect.objectContaining({ state: '30' })])
    expect((await h.final(del.id)).result?.people?.[0]).toMatchObject({ status: 'ok', action: 'deleted' })
  })

  it('enrollFace needs a person imported with a phone; capture is unsupported', async () => {
    await h.start()
    const c = h.submit('enrollFace', { id: '9', photoPath: FACE_PATH })
    expect((await h.final(c.id)).result?.message).toMatch(/no person with id 9/)
    const cap = h.submit('enrollFace', { id: '9', capture: true })
    expect((await h.final(cap.id)).result?.message).toMatch(/^unsupported: /)
  })

  it('a face import survives a gateway restart: the list and the outcomes so far are durable', async () => {
    await h.start()
    const c = h.submit('upsertPeople', { people: [
      { id: '1', name: 'A', phone: '13500000001', photoPath: FACE_PATH },
      { id: '2', name: 'B', phone: '13500000002', photoPath: FACE_PATH },
    ] })
    const list = (await h.faceList()).json.data
    expect(list).toHaveLength(2)
    await h.form('/authImage', { phone: '13500000001', state: '50', iffile: '2', communityId: '123456', deviceCode: '200111' })
    await until(() => (h.cmd(c.id).result?.people?.length ?? 0) === 1, 2000, 'progress')
    await h.restart()
    const after = (await h.faceList(list[0].createTime)).json.data
    expect(after.map((x: Json) => x.phone)).toEqual(['13500000002'])
    const img = await fetch(h.base + after[0].imageUrl)
    expect(img.status).toBe(200)
    await h.form('/authImage', { phone: '13500000002', state: '50', iffile: '2', communityId: '123456', deviceCode: '200111' })
    const done = await h.final(c.id)
    expect(done.result?.people?.map((p) => [p.id, p.status])).toEqual([['1', 'ok'], ['2', 'ok']])
  })
})

import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import busboy from 'busboy'
import { afterEach, describe, expect, it } from 'vitest'
import { createUdpSimulator, makeJpeg, parseLenientJson, type UdpSimulator, type UdpSimulatorOptions } from '../../src/simulators/udp/index.js'

// ---------------------------------------------------------------------------------------------
// A fake server: the minimum server side of protocols/udp-intercom.txt, written in the test so
// that it checks the simulator against the document rather than against the simulator's code.

interface Datagram { raw: string; msg: any; rinfo: RemoteInfo }
interface Call {
  path: string
  fullPath: string
  query: Record<string, string>
  contentType: string
  fields: Record<string, string>
  files: { name: string; filename: string; mimeType: string; data: Buffer }[]
}

/** The test's own reading of the document's `"id","1"` form (sections 7–9). */
function parseDatagram(raw: string): any {
  try {
    return JSON.parse(raw)
  } catch {
    return JSON.parse(raw.replace(/"id"\s*,\s*("[^"]*"|\d+)/, '"id":$1'))
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

function parseMultipart(req: IncomingMessage): Promise<Pick<Call, 'fields' | 'files'>> {
  return new Promise((resolve, reject) => {
    const fields: Record<string, string> = {}
    const files: Call['files'] = []
    const bb = busboy({ headers: req.headers })
    bb.on('field', (name, value) => (fields[name] = value))
    bb.on('file', (name, stream, info) => {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => files.push({ name, filename: info.filename ?? '', mimeType: info.mimeType, data: Buffer.concat(chunks) }))
    })
    bb.on('close', () => resolve({ fields, files }))
    bb.on('error', reject)
    req.pipe(bb)
  })
}

class FakeServer {
  udp!: Socket
  udpPort = 0
  http!: Server
  url = ''
  heartbeats: Datagram[] = []
  acks: Datagram[] = []
  calls: Call[] = []
  heartackResult = '0'
  /** The source address of the last heartbeat: the only way back to the device. */
  device: RemoteInfo | undefined
  /** Section 5 list items (createTime, phone, roomNumber, imageUrl, state, zipUrl, unitId, communityId). */
  faceList: Record<string, unknown>[] = []
  photos = new Map<string, Buffer>()
  /** Callback paths live under this prefix (section 4's example: /app/equipment/addUpload); photos are at the origin. */
  prefix = ''
  uploads = new Map<string, Buffer>()
  oneLockAnswer: Record<string, unknown> = { data: { unitId: '0021', phone: '13533335555', roomNumber: '0101' }, message: '添加成功', page: null, code: '0000' }

  async start(): Promise<void> {
    this.udp = createSocket('udp4')
    this.udp.on('message', (buf, rinfo) => {
      const raw = buf.toString('utf8')
      const msg = parseDatagram(raw)
      if (msg.cmd === 'heart') {
        this.heartbeats.push({ raw, msg, rinfo })
        this.device = rinfo
        // Section 1 answer.
        this.udp.send(JSON.stringify({ result: this.heartackResult, message: this.heartackResult === '0' ? '心跳发送成功' : '设备未登记', cmd: 'heartack' }), rinfo.port, rinfo.address)
      } else {
        this.acks.push({ raw, msg, rinfo })
      }
    })
    await new Promise<void>((r) => this.udp.bind(0, '127.0.0.1', () => r()))
    this.udpPort = this.udp.address().port

    this.http = createServer((req, res) => {
      void this.handle(req).then(
        (answer) => {
          if (Buffer.isBuffer(answer)) {
            res.writeHead(200, { 'content-type': 'image/jpeg' }).end(answer)
          } else if (answer === undefined) {
            res.writeHead(404).end('not found')
          } else {
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer))
          }
        },
        (e: Error) => res.writeHead(500).end(e.message),
      )
    })
    await new Promise<void>((r) => this.http.listen(0, '127.0.0.1', () => r()))
    this.url = `http://127.0.0.1:${(this.http.address() as AddressInfo).port}`
  }

  private async handle(req: IncomingMessage): Promise<Record<string, unknown> | Buffer | undefined> {
    const u = new URL(req.url ?? '/', 'http://x')
    if (req.method === 'GET') return this.photos.get(u.pathname)
    const contentType = String(req.headers['content-type'] ?? '')
    let fields: Record<string, string> = {}
    let files: Call['files'] = []
    if (contentType.startsWith('multipart/form-data')) ({ fields, files } = await parseMultipart(req))
    else {
      const body = (await readBody(req)).toString('utf8')
      if (contentType.startsWith('application/json')) fields = JSON.parse(body)
      else fields = Object.fromEntries(new URLSearchParams(body))
    }
    if (!u.pathname.startsWith(this.prefix)) return undefined
    const call: Call = { path: u.pathname.slice(this.prefix.length), fullPath: u.pathname, query: Object.fromEntries(u.searchParams), contentType, fields, files }
    this.calls.push(call)
    switch (call.path) {
      case '/oneLock':
        return this.oneLockAnswer
      case '/unlockCallback':
        return { data: null, message: '添加成功', page: null, code: '0000' }
      case '/addUpload': {
        const f = files.find((x) => x.name === 'uploadFile')
        if (!f) return { code: '9999', message: 'no uploadFile', page: null, data: null }
        const path = `/data/page/uploadImages/${f.filename}`
        this.uploads.set(path, f.data)
        return { code: '0000', message: '', page: null, data: path }
      }
      case '/updateImage': {
        // "时间戳之后的数据": this fake compares inclusively (>=), the harder case for the device.
        const since = Number(fields.timestrap)
        const data = this.faceList.filter((i) => Number(i.createTime) >= since)
        return { data, id: 'm1', message: '添加成功', page: null, code: '0000' }
      }
      case '/authImage':
        return { code: '0000', message: '', data: {} }
      default:
        return undefined
    }
  }

  /** Sends a command to the source address/port of the last heartbeat (sections 7–9). */
  send(cmd: Record<string, unknown> | string, from: Socket = this.udp): void {
    if (!this.device) throw new Error('no heartbeat yet: the device is unreachable')
    from.send(typeof cmd === 'string' ? cmd : JSON.stringify(cmd), this.device.port, this.device.address)
  }

  callsTo(path: string): Call[] {
    return this.calls.filter((c) => c.path === path)
  }

  private closed = false
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await new Promise<void>((r) => this.udp.close(() => r()))
    this.http.closeAllConnections()
    await new Promise<void>((r) => this.http.close(() => r()))
  }
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

let server: FakeServer
const sims: UdpSimulator[] = []
const logs: string[] = []

async function setup(o: Partial<UdpSimulatorOptions> = {}): Promise<UdpSimulator> {
  server = new FakeServer()
  await server.start()
  const sim = createUdpSimulator({
    server: '127.0.0.1',
    udpPort: server.udpPort,
    httpUrl: server.url,
    communityId: '123456',
    deviceCode: '200111',
    intervalMs: 60_000, // tests drive heartbeats themselves unless they pass a short interval
    facePollEvery: 0,
    log: (l) => logs.push(l),
    ...o,
  })
  sims.push(sim)
  await sim.start()
  await until(() => server.heartbeats.length >= 1 && sim.events.heartacks >= 1, 'first heartbeat and its heartack')
  return sim
}

afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.stop()))
  await server?.close()
  logs.length = 0
})

describe('udp simulator: heartbeat (section 1)', () => {
  it('sends the documented heartbeat at start, from its source port, and counts heartacks', async () => {
    const sim = await setup({ deviceSn: 'asjkdfiouasdjk123', name: '阳光花园', softVer: '1.02.03.04' })
    const hb = server.heartbeats[0]!
    expect(hb.msg).toEqual({ communityId: '123456', deviceCode: '200111', cmd: 'heart', softVer: '1.02.03.04', name: '阳光花园', deviceSn: 'asjkdfiouasdjk123' })
    expect(() => JSON.parse(hb.raw)).not.toThrow()
    expect(hb.rinfo.port).toBe(sim.sourcePort)
    expect(sim.sourcePort).toBeGreaterThan(0)
    expect(sim.events.heartbeats).toBe(1)
    expect(sim.events.lastHeartackResult).toBe('0')
  })

  it('records an error heartack (result 1) and keeps heartbeating', async () => {
    const sim = await setup()
    server.heartackResult = '1'
    await sim.heartbeat()
    await until(() => sim.events.heartacks === 2, 'second heartack')
    expect(sim.events.lastHeartackResult).toBe('1')
    server.heartackResult = '0'
    await sim.heartbeat()
    await until(() => sim.events.heartacks === 3, 'third heartack')
    expect(sim.events.lastHeartackResult).toBe('0')
    expect(server.heartbeats).toHaveLength(3)
  })

  it('heartbeats every intervalMs from the same source port', async () => {
    const sim = await setup({ intervalMs: 20 })
    await until(() => server.heartbeats.length >= 4, 'four heartbeats')
    expect(new Set(server.heartbeats.map((h) => h.rinfo.port))).toEqual(new Set([sim.sourcePort]))
  })

  it('binds the requested source port', async () => {
    const probe = createSocket('udp4')
    await new Promise<void>((r) => probe.bind(0, '127.0.0.1', () => r()))
    const port = probe.address().port
    await new Promise<void>((r) => probe.close(() => r()))
    const sim = await setup({ sourcePort: port })
    expect(sim.sourcePort).toBe(port)
    expect(server.heartbeats[0]!.rinfo.port).toBe(port)
  })
})

describe('udp simulator: commands (sections 7–9)', () => {
  const unlock = (id: string, extra: Record<string, unknown> = {}) => ({ communityId: '123456', deviceCode: '200111', cmd: 'unlock', phone: '13888889999', roomNumber: '0304', unitId: '0011', id, ...extra })

  it('answers an unlock sent to its source port with unlockack and the same id', async () => {
    const sim = await setup()
    server.send(unlock('41'))
    await until(() => server.acks.length === 1, 'unlockack')
    const ack = server.acks[0]!
    expect(ack.rinfo.port).toBe(sim.sourcePort)
    expect(() => JSON.parse(ack.raw)).not.toThrow()
    expect(ack.msg).toMatchObject({ cmd: 'unlockack', id: '41', type: '0', communityId: '123456', deviceCode: '200111', phone: '13888889999', roomNumber: '0304' })
    expect(sim.events.unlocks).toHaveLength(1)
    expect(sim.events.unlocks[0]).toMatchObject({ phone: '13888889999', roomNumber: '0304', unitId: '0011', id: '41' })
    expect(sim.events.commandsReceived).toBe(1)
  })

  it('executes a resent command (same id) once and acks both', async () => {
    const sim = await setup()
    server.send(unlock('7'))
    await until(() => server.acks.length === 1, 'first ack')
    server.send(unlock('7'))
    await until(() => server.acks.length === 2, 'second ack')
    server.send(unlock('8'))
    await until(() => server.acks.length === 3, 'third ack')
    expect(server.acks.map((a) => a.msg.id)).toEqual(['7', '7', '8'])
    expect(server.acks[1]!.raw).toBe(server.acks[0]!.raw)
    expect(sim.events.unlocks.map((u) => u.id)).toEqual(['7', '8'])
    expect(sim.events.duplicatesIgnored).toBe(1)
    expect(sim.events.commandsReceived).toBe(3)
  })

  it('dropIncoming: the first N commands are lost, the resend with the same id is executed once', async () => {
    const sim = await setup({ dropIncoming: 2 })
    server.send(unlock('99'))
    server.send(unlock('99'))
    server.send(unlock('99'))
    await until(() => server.acks.length === 1, 'ack of the third send')
    await sim.heartbeat() // a datagram round trip after the sends: nothing else was coming
    await until(() => sim.events.heartacks === 2, 'heartack')
    expect(server.acks).toHaveLength(1)
    expect(server.acks[0]!.msg).toMatchObject({ cmd: 'unlockack', id: '99' })
    expect(sim.events.commandsDropped).toBe(2)
    expect(sim.events.commandsReceived).toBe(3)
    expect(sim.events.unlocks).toHaveLength(1)
  })

  it('brokenIdForm: acks carry the document\'s "id","1" form', async () => {
    const sim = await setup({ brokenIdForm: true })
    server.send({ communityId: '123456', deviceCode: '200111', cmd: 'reboot', id: '1' })
    await until(() => server.acks.length === 1, 'rebootack')
    const raw = server.acks[0]!.raw
    expect(raw).toContain('"id","1"')
    expect(() => JSON.parse(raw)).toThrow()
    expect(server.acks[0]!.msg).toMatchObject({ cmd: 'rebootack', type: '0', id: '1' })
    expect(sim.events.reboots).toBe(1)
    // a rebooted device heartbeats at once
    await until(() => server.heartbeats.length === 2, 'heartbeat after reboot')
  })

  it('understands commands in the document\'s broken form, and acks in JSON by default', async () => {
    const sim = await setup()
    server.send('{"communityId":"123456","deviceCode":"200111","cmd":"unlock",\n  "phone":"13888889999","roomNumber":"0304","unitId":"0011","id","1"}')
    await until(() => server.acks.length === 1, 'unlockack')
    expect(JSON.parse(server.acks[0]!.raw)).toMatchObject({ cmd: 'unlockack', id: '1', type: '0' })
    expect(sim.events.unlocks).toHaveLength(1)
  })

  it('setting changes deviceCode and communityId; the next heartbeat carries them', async () => {
    const sim = await setup()
    server.send('{"communityId":"123456","deviceCode":"200111","cmd":"setting","doorcodeNew","300222","id","s1"}')
    await until(() => server.acks.length === 1, 'settingack')
    expect(server.acks[0]!.msg).toMatchObject({ cmd: 'settingack', type: '0', id: 's1' })
    expect(sim.deviceCode).toBe('300222')
    expect(sim.communityId).toBe('123456')
    // Section 8 lists communityId twice: the device's own, then the new one.
    server.send('{"communityId":"123456","deviceCode":"300222","cmd":"setting","communityId":"654321","id":"s2"}')
    await until(() => server.acks.length === 2, 'second settingack')
    expect(server.acks[1]!.msg).toMatchObject({ cmd: 'settingack', type: '0', id: 's2' })
    expect(sim.communityId).toBe('654321')
    expect(sim.events.settings).toHaveLength(2)
    await sim.heartbeat()
    await until(() => server.heartbeats.length === 2, 'heartbeat')
    expect(server.heartbeats[1]!.msg).toMatchObject({ communityId: '654321', deviceCode: '300222' })
    // an unlock still addressed to the old code is refused (type 1) and not executed
    server.send(unlock('u1'))
    await until(() => server.acks.length === 3, 'unlockack')
    expect(server.acks[2]!.msg).toMatchObject({ cmd: 'unlockack', type: '1', id: 'u1' })
    expect(sim.events.unlocks).toHaveLength(0)
  })

  it('ignores commands from another port than the one it heartbeats to (NAT), and malformed input', async () => {
    const sim = await setup()
    const other = createSocket('udp4')
    await new Promise<void>((r) => other.bind(0, '127.0.0.1', () => r()))
    try {
      server.send(unlock('x1'), other)
      server.send('not json at all')
      server.send(unlock('x2'))
      await until(() => server.acks.length === 1, 'ack of x2')
      expect(server.acks[0]!.msg.id).toBe('x2')
      expect(sim.events.datagramsIgnored).toBe(2)
      expect(sim.events.unlocks.map((u) => u.id)).toEqual(['x2'])
    } finally {
      await new Promise<void>((r) => other.close(() => r()))
    }
  })

  it('refuses an unlock without id or with a malformed room number (type 1)', async () => {
    const sim = await setup()
    const { id: _id, ...noId } = unlock('z')
    server.send(noId)
    server.send(unlock('r1', { roomNumber: '12' }))
    server.send(unlock('r2', { roomNumber: '00120304' })) // 8 digits, as the ack's table has it
    await until(() => server.acks.length === 3, 'three acks')
    expect(server.acks.map((a) => a.msg.type)).toEqual(['1', '1', '0'])
    expect(sim.events.unlocks.map((u) => u.id)).toEqual(['r2'])
  })
})

describe('udp simulator: faces (sections 5, 6)', () => {
  function addFaces(): void {
    const photos: [string, Buffer][] = [
      ['13600000001', makeJpeg('alice')],
      ['13600000002', makeJpeg('NOFACE bob')],
      ['13600000003', makeJpeg('carol')],
    ]
    photos.forEach(([phone, photo], i) => {
      const path = `/data/page/uploadImages/${phone}.JPG`
      server.photos.set(path, photo)
      server.faceList.push({ createTime: 1601029003000 + i, phone, roomNumber: `010${i + 1}`, imageUrl: path, state: '10', zipUrl: null, unitId: '0001', communityId: '123456' })
    })
  }

  it('syncFaces: downloads 3 faces, judges one NOFACE invalid (40), reports every verdict to /authImage', async () => {
    const sim = await setup()
    addFaces()
    await sim.syncFaces()
    const poll = server.callsTo('/updateImage')[0]!
    expect(poll.fields).toMatchObject({ timestrap: '0', communityId: '123456', deviceCode: '200111' })
    expect(poll.contentType).toMatch(/^application\/x-www-form-urlencoded/)
    const reports = server.callsTo('/authImage')
    expect(reports).toHaveLength(3)
    const byPhone = Object.fromEntries(reports.map((r) => [r.query.phone, r]))
    expect(byPhone['13600000001']!.query).toMatchObject({ state: '50', iffile: '1' })
    expect(byPhone['13600000001']!.files.map((f) => f.name)).toEqual(['file'])
    expect(byPhone['13600000001']!.files[0]!.data.length).toBeGreaterThan(0)
    expect(byPhone['13600000003']!.query).toMatchObject({ state: '50', iffile: '1' })
    expect(byPhone['13600000002']!.query).toMatchObject({ state: '40', iffile: '2' })
    expect(byPhone['13600000002']!.fields).toMatchObject({ phone: '13600000002', state: '40', iffile: '2', communityId: '123456', deviceCode: '200111' })
    expect(byPhone['13600000002']!.files).toHaveLength(0)
    expect([...sim.faces().keys()].sort()).toEqual(['13600000001', '13600000003'])
    expect(sim.faces().get('13600000003')).toMatchObject({ roomNumber: '0103', unitId: '0001' })
    expect(sim.events).toMatchObject({ faceListPolls: 1, authReports: 3 })
    expect(sim.faceCursor).toBe(1601029003002)

    // The next poll sends the largest createTime; this fake server answers inclusively, the device
    // must recognise the re-delivered item and report nothing twice.
    await sim.syncFaces()
    expect(server.callsTo('/updateImage')[1]!.fields.timestrap).toBe('1601029003002')
    expect(server.callsTo('/authImage')).toHaveLength(3)

    // A deletion (state 30) removes the face; it is not reported by default.
    server.faceList.push({ createTime: 1601029004000, phone: '13600000001', roomNumber: '0101', imageUrl: '', state: '30', zipUrl: null, unitId: '0001', communityId: '123456' })
    await sim.syncFaces()
    expect([...sim.faces().keys()]).toEqual(['13600000003'])
    expect(server.callsTo('/authImage')).toHaveLength(3)
  })

  it('polls /updateImage on its own after heartbeats (facePollEvery), JSON bodies when asked', async () => {
    const sim = await setup({ intervalMs: 20, facePollEvery: 2, bodyEncoding: 'json' })
    addFaces()
    await until(() => sim.events.authReports === 3, 'three verdicts without manual calls')
    expect(server.callsTo('/updateImage')[0]!.contentType).toMatch(/^application\/json/)
    expect(sim.faces().size).toBe(2)
    expect(sim.events.heartbeats).toBeGreaterThanOrEqual(2)
  })

  it('keeps an httpUrl path prefix for the callbacks; a relative imageUrl not found under it is fetched from the origin', async () => {
    server = new FakeServer()
    await server.start()
    server.prefix = '/app/equipment'
    addFaces()
    const sim = createUdpSimulator({ server: '127.0.0.1', udpPort: server.udpPort, httpUrl: `${server.url}/app/equipment/`, communityId: '123456', deviceCode: '200111', intervalMs: 60_000, facePollEvery: 0 })
    sims.push(sim)
    await sim.start()
    await sim.syncFaces()
    expect(server.callsTo('/updateImage')[0]!.fullPath).toBe('/app/equipment/updateImage')
    expect(server.callsTo('/authImage').map((c) => c.query.state).sort()).toEqual(['40', '50', '50'])
    expect(sim.faces().size).toBe(2)
  })

  it('an image that cannot be downloaded (404) is judged invalid (40)', async () => {
    const sim = await setup()
    server.faceList.push({ createTime: 5, phone: '13600000009', roomNumber: '0101', imageUrl: '/data/page/uploadImages/missing.JPG', state: '10', zipUrl: null, unitId: '0001', communityId: '123456' })
    await sim.syncFaces()
    expect(server.callsTo('/authImage').map((c) => c.query)).toEqual([{ phone: '13600000009', state: '40', iffile: '2', communityId: '123456', deviceCode: '200111' }])
    expect(sim.faces().size).toBe(0)
  })
})

describe('udp simulator: access events and passwords (sections 2–4)', () => {
  it('accessEvent uploads the capture (/addUpload multipart) then reports /unlockCallback with the stored path', async () => {
    const sim = await setup()
    const photo = makeJpeg('capture')
    const sent = await sim.accessEvent({ phone: '13533335555', type: 4, result: 0, photo, roomNumber: '0101', unitId: '0021' })
    expect(server.calls.map((c) => c.path)).toEqual(['/addUpload', '/unlockCallback'])
    const up = server.calls[0]!
    const file = up.files.find((f) => f.name === 'uploadFile')!
    expect(file.data.equals(photo)).toBe(true)
    expect(file.filename).toMatch(/^\d{13}\.jpg$/)
    expect(up.fields.newName).toBe(file.filename)
    const path = `/data/page/uploadImages/${file.filename}`
    const cb = server.calls[1]!
    expect(cb.fields).toEqual({ communityId: '123456', deviceCode: '200111', type: '4', result: '0', phone: '13533335555', roomNumber: '0101', unitId: '0021', file: path })
    expect(sent).toEqual(cb.fields)
    expect(sim.events).toMatchObject({ uploads: 1, unlockCallbacks: 1 })
  })

  it('accessEvent without a photo sends no upload and no file', async () => {
    const sim = await setup()
    const sent = await sim.accessEvent({ phone: '', type: 2, result: 1, noPhoto: true })
    expect(server.calls.map((c) => c.path)).toEqual(['/unlockCallback'])
    expect(sent).toMatchObject({ type: '2', result: '1', phone: '' })
    expect(sent).not.toHaveProperty('file')
  })

  it('passwordCheck asks /oneLock and resolves with the verdict; the attempt is reported to /unlockCallback (type 3)', async () => {
    const sim = await setup()
    const verdict = await sim.passwordCheck('135790')
    expect(verdict).toEqual(server.oneLockAnswer)
    expect(server.callsTo('/oneLock')[0]!.fields).toEqual({ communityId: '123456', deviceCode: '200111', onePassword: '135790' })
    expect(server.callsTo('/unlockCallback')[0]!.fields).toEqual({ communityId: '123456', deviceCode: '200111', type: '3', result: '0', phone: '13533335555', roomNumber: '0101', unitId: '0021' })

    server.oneLockAnswer = { data: null, message: '密码错误', page: null, code: '9999' }
    const refused = await sim.passwordCheck('000000')
    expect(refused.code).toBe('9999')
    expect(server.callsTo('/unlockCallback')[1]!.fields).toMatchObject({ type: '3', result: '1', phone: '' })
    expect(sim.events.passwordChecks).toBe(2)
  })
})

describe('parseLenientJson: the document\'s own examples', () => {
  it('reads the updateImage answer example (section 5), invalid JSON as printed', () => {
    const text = `{"data":[{"createTime":1601029003000,"phone":"13694276489","roomNumber":"0102","imageUrl":"\\/data\\/page\\/uploadImages\\/16010290032879ca5997b22874631bd9b58ec26f9a8da.JPG",
"state":"10","zipUrl":null,"unitId":"001","communityId":"123500"},{"createTime":1601029003000,"phone":"13694276489","roomNumber":"0101","imageUrl":"\\/data\\/page\\/uploadImages\\/16010290032879ca5997b22874631bd9b58ec26f9a8da.JPG","state":"10",
"zipUrl":null,,"unitId":"001","communityId":"123488"}],"id":"消息id",message":"添加成功","page":null,"code":"0000"}`
    const m = parseLenientJson(text)!.value
    expect(m.code).toBe('0000')
    expect(m.message).toBe('添加成功')
    const data = m.data as any[]
    expect(data).toHaveLength(2)
    expect(data[1]).toMatchObject({ roomNumber: '0101', unitId: '001', communityId: '123488', zipUrl: null })
    expect(data[0].imageUrl).toBe('/data/page/uploadImages/16010290032879ca5997b22874631bd9b58ec26f9a8da.JPG')
  })

  it('reads the authImage answer (section 6: curly quotes, bare keys, comments) and the "id","1" form', () => {
    const auth = parseLenientJson('{\ncode:\u201d0000\u201d,   //0000验证结果成功接收成功  9999验证结果失败\nmessage:\u201d\u201d    //提示语\ndata:{}       \n}')!.value
    expect(auth).toEqual({ code: '0000', message: '', data: {} })
    const setting = parseLenientJson('{"communityId":"123456","deviceCode":"200111","cmd":"setting","doorcodeNew","200111","id","1"}')!
    expect(setting.value).toEqual({ communityId: '123456', deviceCode: '200111', cmd: 'setting', doorcodeNew: '200111', id: '1' })
    expect(parseLenientJson('nonsense')).toBeUndefined()
    expect(parseLenientJson('{"a":')).toBeUndefined()
  })
})

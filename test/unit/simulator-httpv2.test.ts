import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { createHttpv2Simulator, makeJpeg, type Httpv2Simulator, type Httpv2SimulatorOptions } from '../../src/simulators/httpv2/index.js'

// ---------------------------------------------------------------------------------------------
// A fake httpv2 server: the minimum server side of protocols/httpv2-face.md, written in the test
// so that it checks the simulator against the document rather than against the simulator's code.

interface Part {
  name: string
  filename?: string
  headers: Record<string, string>
  data: Buffer
}
interface Call {
  path: string
  headers: IncomingMessage['headers']
  json?: any
  parts?: Part[]
}

function parseMultipart(body: Buffer, contentType: string): Part[] {
  const m = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType)
  if (!m) throw new Error(`no boundary in ${contentType}`)
  const boundary = Buffer.from(`--${m[1] ?? m[2]}`)
  const parts: Part[] = []
  let pos = body.indexOf(boundary)
  while (pos >= 0) {
    const start = pos + boundary.length
    if (body.subarray(start, start + 2).toString() === '--') break
    const next = body.indexOf(boundary, start)
    if (next < 0) break
    const chunk = body.subarray(start + 2, next - 2)
    const sep = chunk.indexOf('\r\n\r\n')
    const headers: Record<string, string> = {}
    for (const line of chunk.subarray(0, sep).toString('utf8').split('\r\n')) {
      const i = line.indexOf(':')
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
    }
    let data: Buffer = chunk.subarray(sep + 4)
    // README: "multipart Detail/RecordDetail parts may carry Content-Encoding: gzip".
    if ((headers['content-encoding'] ?? '').toLowerCase() === 'gzip') data = gunzipSync(data)
    const cd = headers['content-disposition'] ?? ''
    const name = /name="([^"]*)"/.exec(cd)?.[1] ?? ''
    const filename = /filename="([^"]*)"/.exec(cd)?.[1]
    parts.push({ name, headers, data, ...(filename !== undefined ? { filename } : {}) })
    pos = next
  }
  return parts
}
const partText = (c: Call, name: string): string | undefined => c.parts?.find((p) => p.name === name)?.data.toString('utf8')
const partJson = (c: Call, name: string): any => JSON.parse(partText(c, name) ?? 'null')
const part = (c: Call, name: string): Part | undefined => c.parts?.find((p) => p.name === name)

interface DeviceState {
  addQueue: any[]
  deleteQueue: (number | string)[]
  deleteAll: boolean
  remote: Record<string, unknown>[]
  sync: Record<string, unknown> | undefined
  uploadWorkParameter: boolean
  records: Map<string, any>
  systemRecords: any[]
}

class FakeServer {
  server!: Server
  url = ''
  calls: Call[] = []
  known = new Set<string>()
  devices = new Map<string, DeviceState>()
  photos = new Map<string, Buffer>()
  /** Overrides the keepalive answer (e.g. Success 0 with flags). */
  keepaliveAnswer: ((sn: string) => Record<string, unknown> | undefined) | undefined
  /** Overrides the record upload answer (return undefined for the normal one). */
  recordAnswer: ((detail: any, n: number) => Record<string, unknown> | undefined) | undefined
  authAnswer: Record<string, unknown> = { Success: 1 }
  /** Style of the DeletePeopleList answer: the table's DeleteList or the document's typos. */
  deleteListName: 'DeleteList' | 'deleteInfo' | 'DeletList' = 'DeleteList'
  /** Artificial answer delay per lower-case path, in ms. */
  delays = new Map<string, number>()
  /** Time each call arrived (ms), parallel to `calls`. */
  times: number[] = []

  async listen(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res))
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }
  close(): Promise<void> {
    this.server.closeAllConnections()
    return new Promise((r) => this.server.close(() => r()))
  }
  register(sn: string): DeviceState {
    this.known.add(sn)
    const d: DeviceState = { addQueue: [], deleteQueue: [], deleteAll: false, remote: [], sync: undefined, uploadWorkParameter: false, records: new Map(), systemRecords: [] }
    this.devices.set(sn, d)
    return d
  }
  paths(): string[] {
    return this.calls.map((c) => c.path)
  }
  on(path: string): Call[] {
    return this.calls.filter((c) => c.path.toLowerCase() === path.toLowerCase())
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    let body = Buffer.concat(chunks)
    const url = new URL(req.url ?? '/', 'http://x')
    const send = (status: number, v: unknown, type = 'application/json'): void => {
      res.writeHead(status, { 'content-type': type })
      res.end(typeof v === 'string' || Buffer.isBuffer(v) ? v : JSON.stringify(v))
    }
    if (req.method === 'GET') {
      const photo = this.photos.get(url.pathname)
      return photo ? send(200, photo, 'image/jpeg') : send(404, 'not found', 'text/plain')
    }
    // README: decompress by header, always.
    if ((req.headers['content-encoding'] ?? '').toLowerCase() === 'gzip') body = gunzipSync(body)
    const call: Call = { path: url.pathname, headers: req.headers }
    const ct = req.headers['content-type'] ?? ''
    if (ct.startsWith('multipart/form-data')) call.parts = parseMultipart(body, ct)
    else call.json = JSON.parse(body.toString('utf8'))
    this.calls.push(call)
    this.times.push(Date.now())
    const delay = this.delays.get(url.pathname.toLowerCase())
    if (delay) await new Promise((r) => setTimeout(r, delay))
    // SN from the JSON body, or the multipart SN part (the record example's leading space trimmed), or the ResultJson.
    const sn = String(call.json?.SN ?? call.json?.DeviceSN ?? partText(call, 'SN') ?? (call.parts ? partJson(call, 'ResultJson')?.SN : '') ?? '').trim()
    const d = this.devices.get(sn)
    if (!this.known.has(sn) || !d) return send(200, { Success: 401, Message: 'device not activated' })
    const p = url.pathname.toLowerCase()
    switch (p) {
      case '/device/keepalive': {
        const o = this.keepaliveAnswer?.(sn)
        if (o) return send(200, o)
        const a: Record<string, unknown> = { Success: 1 }
        if (d.uploadWorkParameter) a.UploadWorkParameter = 1
        if (d.remote.length) a.Remote = 1
        if (d.sync) a.SyncParameter = 1
        if (d.deleteQueue.length || d.deleteAll) a.DeletePeople = 1
        if (d.addQueue.length) a.AddPeople = 1
        return send(200, a)
      }
      case '/device/uploadworksetting':
        d.uploadWorkParameter = false
        return send(200, { Success: 1 })
      case '/device/downloadworksetting': {
        const s = d.sync
        d.sync = undefined
        return send(200, { Success: 1, ...s })
      }
      case '/device/remotecommand':
      case '/device/selectrestart':
        return send(200, { Success: 1, ...(d.remote.shift() ?? {}) })
      case '/people/downloadpeoplelist':
      case '/devicepass/selectpassinfo': {
        const list = d.addQueue.splice(0, Number(call.json.Limit) || 50)
        return send(200, { Success: 1, PeopleCount: list.length, Count: list.length, PeopleList: list })
      }
      case '/people/deletepeoplelist':
      case '/devicepass/selectdeleteinfo': {
        if (d.deleteAll) {
          d.deleteAll = false
          return send(200, { Success: 1, DeleteAll: 1, DeleteCount: 0 })
        }
        const list = d.deleteQueue.splice(0, Number(call.json.Limit) || 50)
        return send(200, { Success: 1, DeleteAll: 0, DeleteCount: list.length, [this.deleteListName]: list })
      }
      case '/record/uploadidentifyrecord': {
        const detail = JSON.parse(partText(call, 'RecordDetail') ?? partText(call, 'recordJson') ?? 'null')
        const n = this.on('/Record/UploadIdentifyRecord').length
        const o = this.recordAnswer?.(detail, n)
        if (o) return send(200, o)
        // README: duplicates of (SN, RecordID) arrive; store once, answer success.
        if (!d.records.has(String(detail.RecordID))) d.records.set(String(detail.RecordID), detail)
        return send(200, { Success: 1 })
      }
      case '/record/uploadsystemrecord':
        d.systemRecords.push(call.json)
        return send(200, { Success: 1 })
      case '/device/requestauthorization':
        return send(200, this.authAnswer)
      default:
        return send(200, { Success: 1 })
    }
  }
}

// ---------------------------------------------------------------------------------------------

const servers: FakeServer[] = []
const sims: Httpv2Simulator[] = []
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.stop()))
  await Promise.all(servers.splice(0).map((s) => s.close()))
})
async function fakeServer(): Promise<FakeServer> {
  const s = new FakeServer()
  await s.listen()
  servers.push(s)
  return s
}
function device(srv: FakeServer, o: Partial<Httpv2SimulatorOptions> = {}): Httpv2Simulator {
  const s = createHttpv2Simulator({ server: srv.url, sn: 'FC-8200H00000001', intervalMs: 50, requestTimeoutMs: 500, retryDelayMs: 5, ...o })
  sims.push(s)
  return s
}
const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex')
const person = (id: number, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  UserID: String(id),
  Name: `Person ${id}`,
  Department: 'R&D',
  AccessType: 0,
  ExpirationDate: 0,
  OpenTimes: 65535,
  Timegroup: 1,
  ...extra,
})

describe('httpv2 simulator: keepalive', () => {
  it('sends a gzip JSON keepalive with the door state, then its work parameters', async () => {
    const srv = await fakeServer()
    srv.register('FC-8200H00000001')
    const sim = device(srv)
    await sim.tick()
    expect(srv.paths()).toEqual(['/Device/Keepalive', '/Device/UploadWorkSetting'])
    const ka = srv.calls[0]!
    expect(ka.headers['content-encoding']).toBe('gzip')
    expect(ka.headers['content-type']).toBe('application/json')
    expect(ka.json).toEqual({ SN: 'FC-8200H00000001', RelayStatus: 0, KeepOpenStatus: 0, DoorSensorStatus: 0, LockDoorStatus: 0, AlarmStatus: '' })
    const ws = srv.calls[1]!.json
    expect(ws.DeviceSN).toBe('FC-8200H00000001')
    expect(typeof ws.SystemTime).toBe('number')
    expect(ws.TimeZone).toBe(8)
    expect(ws.HTTPClient_ProtocolType).toBe(200)
    expect(sim.lastKeepaliveSuccess).toBe(1)
    expect(sim.events.keepalives).toBe(1)
    expect(sim.events.workParameterUploads).toBe(1)
    // Only once after start; again when asked with UploadWorkParameter.
    await sim.tick()
    expect(srv.paths().slice(2)).toEqual(['/Device/Keepalive'])
    srv.devices.get('FC-8200H00000001')!.uploadWorkParameter = true
    await sim.tick()
    expect(srv.paths().slice(3)).toEqual(['/Device/Keepalive', '/Device/UploadWorkSetting'])
  })

  it('sends plain JSON when gzip is off', async () => {
    const srv = await fakeServer()
    srv.register('FC-8200H00000001')
    await device(srv, { gzip: false }).tick()
    expect(srv.calls[0]!.headers['content-encoding']).toBeUndefined()
    expect(srv.calls[0]!.json.SN).toBe('FC-8200H00000001')
  })

  it('stays quiet after Success 401 (unknown SN): no parameters, no records', async () => {
    const srv = await fakeServer()
    const sim = device(srv, { records: 3 })
    await sim.tick()
    await sim.tick()
    expect(srv.paths()).toEqual(['/Device/Keepalive', '/Device/Keepalive'])
    expect(sim.lastKeepaliveSuccess).toBe(401)
    expect(sim.acknowledgedRecords()).toEqual([])
    // Once registered, the next keepalive opens the way.
    srv.register('FC-8200H00000001')
    await sim.tick()
    expect(srv.paths().slice(2)).toEqual(['/Device/Keepalive', '/Device/UploadWorkSetting', '/Record/UploadIdentifyRecord', '/Record/UploadIdentifyRecord', '/Record/UploadIdentifyRecord'])
    expect(sim.acknowledgedRecords()).toEqual(['1', '2', '3'])
  })

  it('ignores flags that come with Success 0 (field report)', async () => {
    const srv = await fakeServer()
    srv.register('FC-8200H00000001')
    srv.keepaliveAnswer = () => ({ Success: 0, Remote: 1, AddPeople: 1, SyncParameter: 1 })
    const sim = device(srv)
    await sim.tick()
    expect(srv.paths()).toEqual(['/Device/Keepalive'])
    expect(sim.lastKeepaliveSuccess).toBe(0)
    expect(sim.events.ignoredFlagAnswers).toBe(1)
  })

  it('follows the flags in priority order UploadWorkParameter > Remote > SyncParameter > DeletePeople > AddPeople', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv)
    await sim.tick()
    srv.calls = []
    d.uploadWorkParameter = true
    d.remote.push({ Opendoor: 1 })
    d.sync = { Volume: 3 }
    d.deleteQueue.push(99)
    d.addQueue.push(person(1))
    await sim.tick()
    const order = srv.paths().filter((p) => !p.startsWith('/Record/'))
    expect(order).toEqual([
      '/Device/Keepalive',
      '/Device/UploadWorkSetting',
      '/Device/RemoteCommand',
      '/Device/DownloadWorkSetting',
      '/Device/UploadWorkSetting', // parameters changed ("设备属性变化时会再次上传")
      '/People/DeletePeopleList',
      '/People/DeletePeopleListResult',
      '/People/DeletePeopleList',
      '/People/DownloadPeopleList',
      '/People/DownloadPeopleListResult',
      '/People/DownloadPeopleList',
    ])
    // A server that follows the document draws no complaint.
    expect(sim.events.problems).toEqual([])
  })

  it('ignores flags that are not ints (a device reads "1" as 0)', async () => {
    const srv = await fakeServer()
    srv.register('FC-8200H00000001')
    const sim = device(srv)
    await sim.tick()
    srv.keepaliveAnswer = () => ({ Success: 1, Remote: '1' })
    await sim.tick()
    expect(srv.paths()).toEqual(['/Device/Keepalive', '/Device/UploadWorkSetting', '/Device/Keepalive'])
    expect(sim.events.problems.some((p) => p.includes('Remote'))).toBe(true)
  })

  it('keeps the keepalive interval during a long download loop (keepalives interleaved between batches)', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    srv.delays.set('/people/downloadpeoplelist', 25)
    for (let i = 1; i <= 200; i++) d.addQueue.push(person(i))
    const sim = device(srv, { intervalMs: 60 })
    sim.start()
    const t0 = Date.now()
    while (sim.people().size < 200 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20))
    await sim.stop()
    expect(sim.people().size).toBe(200)
    const kas = srv.calls.map((c, i) => (c.path === '/Device/Keepalive' ? srv.times[i]! : -1)).filter((t) => t >= 0)
    const gaps = kas.slice(1).map((t, i) => t - kas[i]!)
    expect(kas.length).toBeGreaterThanOrEqual(3)
    // Between batches (25 ms + result): a keepalive never waits much beyond the interval.
    expect(Math.max(...gaps)).toBeLessThan(60 + 80)
    expect(srv.on('/People/DownloadPeopleListResult').reduce((n, c) => n + c.json.SuccessCount, 0)).toBe(200)
  })

  it('runs a keepalive loop with start() and stops cleanly', async () => {
    const srv = await fakeServer()
    srv.register('FC-8200H00000001')
    const sim = device(srv, { intervalMs: 30 })
    sim.start()
    await new Promise((r) => setTimeout(r, 200))
    await sim.stop()
    const n = srv.on('/Device/Keepalive').length
    expect(n).toBeGreaterThanOrEqual(3)
    expect(sim.events.keepalives).toBe(n)
    await new Promise((r) => setTimeout(r, 80))
    expect(srv.on('/Device/Keepalive').length).toBe(n)
  })
})

describe('httpv2 simulator: remote commands', () => {
  it('Opendoor 2 shows keep-open in the next keepalive and records it as a system record', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv)
    await sim.tick()
    d.remote.push({ Opendoor: 2 })
    await sim.tick()
    expect(sim.events.opens).toEqual([2])
    expect(srv.on('/Device/RemoteCommand')[0]!.json).toEqual({ SN: 'FC-8200H00000001' })
    await sim.tick()
    const ka = srv.on('/Device/Keepalive').at(-1)!.json
    expect(ka.KeepOpenStatus).toBe(1)
    expect(ka.RelayStatus).toBe(1)
    // 系统记录 3 = 软件常开
    expect(d.systemRecords).toEqual([{ SN: 'FC-8200H00000001', RecordType: 2, Records: [expect.objectContaining({ RecordID: 1, RecordType: 3 })] }])
    d.remote.push({ Opendoor: 4 })
    await sim.tick()
    await sim.tick()
    expect(srv.on('/Device/Keepalive').at(-1)!.json).toMatchObject({ KeepOpenStatus: 0, RelayStatus: 0, LockDoorStatus: 1 })
  })

  it('Restart is counted and the device uploads its parameters again after the reboot', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv)
    await sim.tick()
    d.remote.push({ Restart: 1 })
    await sim.tick()
    expect(sim.events.reboots).toBe(1)
    srv.calls = []
    await sim.tick()
    expect(srv.paths()).toEqual(['/Device/Keepalive', '/Device/UploadWorkSetting', '/Record/UploadSystemRecord'])
    expect(d.systemRecords[0].Records[0].RecordType).toBe(28) // 系统加电
  })

  it('Closealarm clears the alarms and records it; alarms raised by the door are uploaded as system records', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv)
    await sim.tick()
    sim.setDoorState({ AlarmStatus: 'fire,anti', DoorSensorStatus: 1 })
    await sim.tick()
    expect(srv.on('/Device/Keepalive').at(-1)!.json).toMatchObject({ AlarmStatus: 'fire,anti', DoorSensorStatus: 1 })
    d.remote.push({ Closealarm: 1 })
    await sim.tick()
    expect(sim.events.alarmsClosed).toBe(1)
    const byType = (t: number): number[] => d.systemRecords.filter((b) => b.RecordType === t).flatMap((b) => b.Records.map((r: any) => r.RecordType))
    expect(byType(1)).toEqual([1]) // 门磁-开门
    expect(byType(2)).toEqual([19, 20, 26, 27]) // raised fire, anti; then cleared
    await sim.tick()
    expect(srv.on('/Device/Keepalive').at(-1)!.json.AlarmStatus).toBe('')
  })

  it('PushAllPeople pushes every person (PushType 4, gzip Detail, Photo) and QueryPeople the listed ones', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv)
    const jpeg = makeJpeg('p')
    d.addQueue.push(person(2, { Photo: jpeg.toString('base64') }), person(1), person(10))
    await sim.tick()
    srv.calls = []
    d.remote.push({ PushAllPeople: 1 })
    await sim.tick()
    const pushes = srv.on('/People/PushPeople')
    expect(pushes.map((c) => partText(c, 'UserID'))).toEqual(['1', '2', '10'])
    for (const c of pushes) {
      expect(partText(c, 'SN')).toBe('FC-8200H00000001')
      expect(partText(c, 'PushType')).toBe('4')
      expect(part(c, 'Detail')!.headers['content-encoding']).toBe('gzip')
    }
    const two = pushes[1]!
    expect(partJson(two, 'Detail')).toMatchObject({ UserID: '2', Name: 'Person 2', PhotoMD5: md5(jpeg).toUpperCase(), PhotoLen: jpeg.length })
    expect(part(two, 'Photo')!.data.equals(jpeg)).toBe(true)
    expect(part(pushes[0]!, 'Photo')).toBeUndefined()

    srv.calls = []
    d.remote.push({ QueryPeople: [10, 999] })
    await sim.tick()
    const q = srv.on('/People/PushPeople')
    expect(q.map((c) => partText(c, 'UserID'))).toEqual(['10', '999'])
    expect(partJson(q[0]!, 'Detail').Name).toBe('Person 10')
    expect(part(q[1]!, 'Detail')).toBeUndefined() // "人员不存在时，则无此字段"
  })

  it('RegisterIdentifyTicket type 4 (object and flat forms) answers with ResultJson and a Photo, then pushes the person', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv)
    d.addQueue.push(person(1), person(2))
    await sim.tick()
    srv.calls = []
    d.remote.push({ RegisterIdentifyTicket: { RegisterType: 4, UserID: 1 } })
    await sim.tick()
    let r = srv.on('/Device/RegisterIdentifyTicketResult')
    expect(r).toHaveLength(1)
    const result = partJson(r[0]!, 'ResultJson')
    const photo = part(r[0]!, 'Photo')!
    expect(result).toMatchObject({ SN: 'FC-8200H00000001', UserID: 1, Result: 1 })
    expect(photo.data[0]).toBe(0xff)
    expect(photo.data[1]).toBe(0xd8)
    expect(result.UserDetail).toMatchObject({ UserID: '1', PhotoMD5: md5(photo.data).toUpperCase(), PhotoLen: photo.data.length })
    expect(sim.people().get('1')!.PhotoMD5).toBe(md5(photo.data).toUpperCase())
    const push = srv.on('/People/PushPeople')
    expect(push.map((c) => [partText(c, 'UserID'), partText(c, 'PushType')])).toEqual([['1', '2']])

    srv.calls = []
    d.remote.push({ RegisterIdentifyTicket: 4, RegisterIdentifyUserID: 2 })
    await sim.tick()
    r = srv.on('/Device/RegisterIdentifyTicketResult')
    expect(partJson(r[0]!, 'ResultJson')).toMatchObject({ UserID: 2, Result: 1 })
    expect(part(r[0]!, 'Photo')).toBeDefined()

    srv.calls = []
    d.remote.push({ RegisterIdentifyTicket: { RegisterType: 4, UserID: 77 } })
    await sim.tick()
    r = srv.on('/Device/RegisterIdentifyTicketResult')
    expect(partJson(r[0]!, 'ResultJson')).toEqual({ SN: 'FC-8200H00000001', UserID: 77, Result: 2 })
    expect(part(r[0]!, 'Photo')).toBeUndefined()
    expect(srv.on('/People/PushPeople')).toHaveLength(0)
  })

  it('Snapshoot uploads a JPEG with the SN to /Device/UploadSnapshoot', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv)
    await sim.tick()
    d.remote.push({ Snapshoot: 1 })
    await sim.tick()
    const s = srv.on('/Device/UploadSnapshoot')
    expect(s).toHaveLength(1)
    expect(partText(s[0]!, 'SN')).toBe('FC-8200H00000001')
    const p = part(s[0]!, 'Photo')!
    expect(p.headers['content-type']).toBe('image/jpeg')
    expect(p.data.subarray(0, 2).toString('hex')).toBe('ffd8')
    expect(sim.events.snapshots).toBe(1)
  })

  it('uses the v1 paths with api v1', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv, { api: 'v1' })
    d.remote.push({ Opendoor: 1 })
    d.addQueue.push(person(5))
    d.deleteQueue.push(6)
    await sim.tick()
    const paths = srv.paths()
    expect(paths).toContain('/device/selectRestart')
    expect(paths).toContain('/DevicePass/SelectPassInfo')
    expect(paths).toContain('/DevicePass/SelectDeleteInfo')
    expect(paths).not.toContain('/Device/RemoteCommand')
    expect(srv.on('/Device/UploadWorkSetting')[0]!.json.HTTPClient_ProtocolType).toBe(100)
    expect(sim.people().has('5')).toBe(true)
  })
})

describe('httpv2 simulator: parameters', () => {
  it('SyncParameter applies SystemTime and TimeZone and reports the new clock', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv)
    await sim.tick()
    d.sync = { SystemTime: 1718421632, TimeZone: 9, Volume: 2, NoSuchThing: 1, ReleaseTime: '5' }
    await sim.tick()
    expect(sim.events.timeSets).toEqual([{ SystemTime: 1718421632, TimeZone: 9 }])
    expect(srv.on('/Device/DownloadWorkSetting')[0]!.json).toEqual({ SN: 'FC-8200H00000001' })
    const up = srv.on('/Device/UploadWorkSetting')
    expect(up).toHaveLength(2)
    expect(up[1]!.json.TimeZone).toBe(9)
    expect(up[1]!.json.Volume).toBe(2)
    expect(Math.abs(up[1]!.json.SystemTime - 1718421632)).toBeLessThanOrEqual(2)
    expect(sim.events.rejectedParameters.map((s) => s.split(':')[0])).toEqual(['NoSuchThing', 'ReleaseTime'])
    // Records carry the device clock.
    sim.addRecord()
    await sim.tick()
    expect(Math.abs([...d.records.values()][0].RecordDate - 1718421632)).toBeLessThanOrEqual(2)
  })
})

describe('httpv2 simulator: people', () => {
  it('AddPeople: 30 people in batches of the device Limit, one NOFACE photo refused with code 30', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv)
    for (let i = 1; i <= 30; i++) {
      const jpeg = makeJpeg(i === 17 ? 'NOFACE' : `face ${i}`)
      if (i % 2 === 0) {
        // URL photos, served by the fake server, with MD5 and length (MD5 lowercase here, uppercase below).
        srv.photos.set(`/photos/${i}.jpg`, jpeg)
        d.addQueue.push(person(i, { Photo: `${srv.url}/photos/${i}.jpg`, PhotoMD5: md5(jpeg), PhotoLen: jpeg.length }))
      } else {
        d.addQueue.push(person(i, { Photo: jpeg.toString('base64'), PhotoMD5: md5(jpeg).toUpperCase() }))
      }
    }
    await sim.tick()
    const lists = srv.on('/People/DownloadPeopleList')
    expect(lists.map((c) => c.json)).toEqual([
      { SN: 'FC-8200H00000001', Limit: 20 },
      { SN: 'FC-8200H00000001', Limit: 20 },
      { SN: 'FC-8200H00000001', Limit: 20 },
    ])
    const results = srv.on('/People/DownloadPeopleListResult').map((c) => c.json)
    expect(results).toEqual([
      {
        SN: 'FC-8200H00000001',
        SuccessCount: 19,
        FailCount: 1,
        FailList: [{ UserID: '17', ErrorCode: 30, RepeatID: '', ErrMsg: expect.any(String) }],
      },
      { SN: 'FC-8200H00000001', SuccessCount: 10, FailCount: 0, FailList: [] },
    ])
    const people = sim.people()
    expect(people.size).toBe(29)
    expect(people.has('17')).toBe(false)
    expect(people.get('4')).toMatchObject({ Name: 'Person 4', PhotoLen: expect.any(Number) })
    expect(srv.paths().filter((p) => p.startsWith('/photos/'))).toEqual([]) // GETs are not logged as calls
    expect(sim.events.problems).toEqual([])
  })

  it('AddPeople validation: byte lengths, photo problems, card duplicates, Count mismatch', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv)
    const jpeg = makeJpeg('ok')
    srv.photos.set('/p/ok.jpg', jpeg)
    d.addQueue.push(
      person(1, { Name: '张'.repeat(21) }), // 63 bytes: fits "<64"
      person(2, { Name: '张'.repeat(22) }), // 66 bytes
      person(3, { Photo: `${srv.url}/p/missing.jpg` }),
      person(4, { Photo: `${srv.url}/p/ok.jpg`, PhotoMD5: '0'.repeat(32) }),
      person(5, { Photo: Buffer.alloc(401 * 1024, 1).toString('base64') }),
      person(6, { CardNum: '123' }),
      person(7, { CardNum: '123' }),
      { ...person(8), UserID: 8 },
      person(9, { Photo: `data:image/jpeg;base64,${jpeg.toString('base64')}` }),
      person(10, { Photo: Buffer.from('not a jpeg').toString('base64') }),
    )
    await sim.tick()
    const r = srv.on('/People/DownloadPeopleListResult')[0]!.json
    expect(r.SuccessCount).toBe(2)
    expect(r.FailList.map((f: any) => [f.UserID, f.ErrorCode, f.RepeatID])).toEqual([
      ['2', 1, ''],
      ['3', 2, ''],
      ['4', 2, ''],
      ['5', 3, ''],
      ['7', 23, '6'],
      ['8', 1, ''],
      ['9', 1, ''],
      ['10', 30, ''],
    ])
    expect([...sim.people().keys()]).toEqual(['1', '6'])
  })

  it('AddPeople: an update without a photo drops the face (field report); PeopleCount bounds the list', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv)
    d.addQueue.push(person(1, { Photo: makeJpeg('x').toString('base64') }))
    await sim.tick()
    expect(sim.people().get('1')!.PhotoMD5).toBeDefined()
    d.addQueue.push(person(1, { Name: 'renamed' }))
    await sim.tick()
    expect(sim.people().get('1')).toMatchObject({ Name: 'renamed' })
    expect(sim.people().get('1')!.PhotoMD5).toBeUndefined()
  })

  it('DeletePeople: deletes the listed ids, reports DeleteCount/DeleteList, reads the document typos, and DeleteAll', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv)
    for (let i = 1; i <= 6; i++) d.addQueue.push(person(i))
    await sim.tick()
    srv.calls = []
    d.deleteQueue.push(1, 2, 3)
    await sim.tick()
    expect(srv.on('/People/DeletePeopleList').map((c) => c.json)).toEqual([
      { SN: 'FC-8200H00000001', Limit: 50 },
      { SN: 'FC-8200H00000001', Limit: 50 },
    ])
    expect(srv.on('/People/DeletePeopleListResult').map((c) => c.json)).toEqual([
      { SN: 'FC-8200H00000001', DeleteCount: 3, DeleteAll: 0, DeleteList: [1, 2, 3] },
    ])
    expect([...sim.people().keys()].sort()).toEqual(['4', '5', '6'])

    srv.deleteListName = 'deleteInfo'
    d.deleteQueue.push('4')
    await sim.tick()
    expect([...sim.people().keys()].sort()).toEqual(['5', '6'])

    srv.calls = []
    d.deleteAll = true
    await sim.tick()
    expect(sim.people().size).toBe(0)
    expect(srv.on('/People/DeletePeopleListResult').map((c) => c.json)).toEqual([
      { SN: 'FC-8200H00000001', DeleteCount: 2, DeleteAll: 1, DeleteList: [5, 6] },
    ])
  })
})

describe('httpv2 simulator: records', () => {
  it('uploads one record per request: SN with a leading space, gzip RecordDetail, Photo (table names)', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv, { records: 2 })
    await sim.tick()
    const ups = srv.on('/Record/UploadIdentifyRecord')
    expect(ups).toHaveLength(2)
    const c = ups[0]!
    expect(String(c.headers['content-type'])).toMatch(/^multipart\/form-data; boundary=/)
    expect(c.parts!.map((p) => p.name)).toEqual(['SN', 'RecordDetail', 'Photo'])
    expect(partText(c, 'SN')).toBe(' FC-8200H00000001')
    expect(part(c, 'RecordDetail')!.headers['content-encoding']).toBe('gzip')
    const detail = partJson(c, 'RecordDetail')
    expect(detail).toMatchObject({ RecordID: 1, RecordType: 3, UserID: expect.any(String), IsEntry: 1, CardNum: '0' })
    expect(Math.abs(detail.RecordDate - Date.now() / 1000)).toBeLessThan(10)
    const photo = part(c, 'Photo')!
    expect(photo.filename).toBeDefined()
    expect(photo.headers['content-type']).toBe('image/jpeg')
    expect(detail.PhotoLen).toBe(photo.data.length)
    expect(sim.acknowledgedRecords()).toEqual(['1', '2'])
    expect([...d.records.keys()]).toEqual(['1', '2'])
    // A new record goes at the next opportunity.
    const id = sim.addRecord({ UserID: '42', Name: 'Ann' })
    expect(id).toBe('3')
    await sim.tick()
    expect(d.records.get('3')).toMatchObject({ UserID: '42', Name: 'Ann' })
  })

  it('uses recordJson/pic with the example names, plain JSON part when gzip is off', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv, { records: 1, multipartNames: 'example', gzip: false })
    await sim.tick()
    const c = srv.on('/Record/UploadIdentifyRecord')[0]!
    expect(c.parts!.map((p) => p.name)).toEqual(['SN', 'recordJson', 'pic'])
    expect(part(c, 'recordJson')!.headers['content-encoding']).toBeUndefined()
    expect(partJson(c, 'recordJson').RecordID).toBe(1)
    expect(d.records.size).toBe(1)
    expect(sim.acknowledgedRecords()).toEqual(['1'])
  })

  it('dropFirstAnswer re-sends the same RecordID; the server stores it once', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv, { records: 2, dropFirstAnswer: true })
    await sim.tick()
    const ids = srv.on('/Record/UploadIdentifyRecord').map((c) => partJson(c, 'RecordDetail').RecordID)
    expect(ids).toEqual([1, 1, 2])
    expect(d.records.size).toBe(2)
    expect(sim.acknowledgedRecords()).toEqual(['1', '2'])
  })

  it('an error answer is retried after retryDelayMs; a 401 stops uploads until the next keepalive', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv, { records: 1, retryDelayMs: 5, intervalMs: 1000 })
    srv.recordAnswer = (_detail, n) => (n === 1 ? { Success: 0, Message: 'busy' } : undefined)
    await sim.tick()
    expect(srv.on('/Record/UploadIdentifyRecord')).toHaveLength(2)
    expect(sim.acknowledgedRecords()).toEqual(['1'])

    srv.calls = []
    srv.recordAnswer = () => ({ Success: 401 })
    sim.addRecord()
    sim.addRecord()
    await sim.tick()
    expect(srv.paths()).toEqual(['/Device/Keepalive', '/Record/UploadIdentifyRecord'])
    srv.recordAnswer = undefined
    await sim.tick()
    expect(sim.acknowledgedRecords()).toEqual(['1', '2', '3'])
    expect(d.records.size).toBe(3)
  })

  it('RepostRecord re-sends every record', async () => {
    const srv = await fakeServer()
    const d = srv.register('FC-8200H00000001')
    const sim = device(srv, { records: 3 })
    await sim.tick()
    srv.calls = []
    d.remote.push({ RepostRecord: 1 })
    await sim.tick()
    expect(srv.on('/Record/UploadIdentifyRecord').map((c) => partJson(c, 'RecordDetail').RecordID)).toEqual([1, 2, 3])
    expect(d.records.size).toBe(3)
  })

  it('RequestAuthorization returns the server decision', async () => {
    const srv = await fakeServer()
    srv.register('FC-8200H00000001')
    const sim = device(srv)
    srv.authAnswer = { Success: 0, Message: 'not today' }
    expect(await sim.requestAuthorization('7')).toBe(0)
    srv.authAnswer = { Success: 2 }
    expect(await sim.requestAuthorization('7')).toBe(2)
    const c = srv.on('/Device/RequestAuthorization')[0]!
    expect(partText(c, 'SN')).toBe(' FC-8200H00000001')
    expect(partJson(c, 'RecordDetail')).toMatchObject({ UserID: '7', RecordType: 3 })
  })
})

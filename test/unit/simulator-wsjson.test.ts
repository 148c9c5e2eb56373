import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { createWsjsonSimulator, makeJpeg, type WsjsonSimulator, type WsjsonSimulatorOptions } from '../../src/simulators/wsjson/index.js'
import { until } from '../helpers.js'

// ---------------------------------------------------------------------------------------------
// A fake wsjson server: the minimum server side of protocols/ws-json.txt, written in the test so
// that it checks the simulator against the document rather than against the simulator's code.

interface Upstream {
  ws: WebSocket
  msg: any
}

const UPSTREAM_CODES = new Set(['205', '206', '207'])

class FakeServer {
  wss!: WebSocketServer
  url = ''
  conns: WebSocket[] = []
  /** Every device → server message of 3.2 (register, heartbeat, event), in order. */
  upstream: Upstream[] = []
  /** Answers to commands that carry no commandId. */
  orphanReplies: any[] = []
  /** Register answer; return undefined to leave the register unanswered. */
  registerAnswer: (msg: any) => Record<string, unknown> | undefined = () => ({ command: 'response', content: { code: '200', interval: '20', data: '' } })
  heartbeatAnswer: ((msg: any) => Record<string, unknown> | undefined) | undefined
  /** When set, event (207) answers are held until released. */
  holdEvents = false
  held: Upstream[] = []
  private waiting = new Map<string, (reply: any) => void>()
  private nextId = 1

  async start(): Promise<void> {
    this.wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/wsjson' })
    await new Promise<void>((r) => this.wss.once('listening', () => r()))
    this.url = `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}/wsjson`
    this.wss.on('connection', (ws) => {
      this.conns.push(ws)
      ws.on('message', (data) => this.onMessage(ws, JSON.parse(data.toString())))
    })
  }

  get current(): WebSocket {
    const open = this.conns.filter((c) => c.readyState === WebSocket.OPEN)
    const ws = open[open.length - 1]
    if (!ws) throw new Error('no device connected')
    return ws
  }

  of(code: string): any[] {
    return this.upstream.filter((u) => u.msg.code === code).map((u) => u.msg)
  }

  private answer(ws: WebSocket, m: Record<string, unknown> | undefined): void {
    if (m) ws.send(JSON.stringify(m))
  }

  private onMessage(ws: WebSocket, msg: any): void {
    if (UPSTREAM_CODES.has(msg.code) && msg.commandId === undefined) {
      const u = { ws, msg }
      this.upstream.push(u)
      if (msg.code === '205') this.answer(ws, this.registerAnswer(msg))
      else if (msg.code === '206') this.answer(ws, this.heartbeatAnswer ? this.heartbeatAnswer(msg) : { command: 'response', content: { code: '200', data: '' } })
      else if (this.holdEvents) this.held.push(u)
      else this.answer(ws, { command: 'response', content: { code: '200', data: '' } })
      return
    }
    if (msg.commandId === undefined) {
      this.orphanReplies.push(msg)
      return
    }
    const w = this.waiting.get(String(msg.commandId))
    this.waiting.delete(String(msg.commandId))
    w?.(msg)
  }

  releaseEvents(): void {
    for (const u of this.held.splice(0)) this.answer(u.ws, { command: 'response', content: { code: '200', data: '' } })
  }

  /** Sends a 3.1 command to the device and resolves with the answer that echoes its commandId. */
  command(command: string, content?: unknown, commandId = `2024011514${String(this.nextId++).padStart(4, '0')}`): Promise<any> {
    const p = new Promise<any>((r) => this.waiting.set(String(commandId), r))
    const msg: Record<string, unknown> = { commandId, command }
    if (content !== undefined) msg.content = content
    this.current.send(JSON.stringify(msg))
    return p
  }

  raw(text: string): void {
    this.current.send(text)
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.terminate()
    await new Promise<void>((r) => this.wss.close(() => r()))
  }
}

const sims: WsjsonSimulator[] = []
const servers: FakeServer[] = []

afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.stop()))
  await Promise.all(servers.splice(0).map((s) => s.close()))
})

async function setup(opts: Partial<WsjsonSimulatorOptions> = {}, configure?: (s: FakeServer) => void): Promise<{ server: FakeServer; sim: WsjsonSimulator; lines: string[] }> {
  const server = new FakeServer()
  configure?.(server)
  await server.start()
  servers.push(server)
  const lines: string[] = []
  const sim = createWsjsonSimulator({ url: server.url, sn: 'WSJ00000001', heartbeatMs: 60_000, reconnectMs: 30, log: (l) => lines.push(l), ...opts })
  sims.push(sim)
  return { server, sim, lines }
}

const user = (id: string, extra: Record<string, unknown> = {}) => ({
  user: `u${id}`,
  userId: id,
  pwd: '1234',
  name: `Person ${id}`,
  role: '0',
  img: makeJpeg(`face ${id}`).toString('base64'),
  ...extra,
})

// ---------------------------------------------------------------------------------------------

describe('wsjson simulator: register and heartbeat (3.2.1, 3.2.2)', () => {
  it('registers with code 205 and string ip/mac/sn/type, and adopts the assigned interval (seconds)', async () => {
    const { server, sim } = await setup({ type: '2', ip: '127.0.0.7' })
    expect(sim.registered).toBe(false)
    await sim.start()
    expect(sim.connected).toBe(true)
    expect(sim.registered).toBe(true)
    expect(sim.events.registers).toBe(1)
    const reg = server.of('205')
    expect(reg).toHaveLength(1)
    expect(reg[0]).toEqual({ code: '205', data: { ip: '127.0.0.7', mac: expect.stringMatching(/^[0-9A-F]{12}$/), sn: 'WSJ00000001', type: '2' } })
    // "interval":"20" = "设置心跳间隔20s"
    expect(sim.assignedHeartbeatMs).toBe(20_000)
    expect(sim.events.lastRegisterReply).toEqual({ command: 'response', content: { code: '200', interval: '20', data: '' } })
  })

  it('reports the connection local address as ip by default', async () => {
    const { server, sim } = await setup()
    await sim.start()
    expect(server.of('205')[0].data.ip).toBe('127.0.0.1')
  })

  it('heartbeats (206, "YYYY-MM-DD HH:mm:ss") at the interval the register answer assigns', async () => {
    const { server, sim } = await setup({ heartbeatMs: 600_000 }, (s) => {
      s.registerAnswer = () => ({ command: 'response', content: { code: '200', interval: '0.03', data: '' } })
    })
    await sim.start()
    expect(sim.assignedHeartbeatMs).toBe(30)
    await until(() => server.of('206').length >= 3, 10_000, 'three heartbeats')
    expect(sim.events.heartbeats).toBeGreaterThanOrEqual(3)
    for (const hb of server.of('206')) {
      expect(Object.keys(hb).sort()).toEqual(['code', 'data'])
      expect(hb.data.time).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/)
    }
  })

  it('keeps heartbeatMs when the register answer has no interval, and writes the time on the given UTC offset', async () => {
    const { server, sim } = await setup({ heartbeatMs: 25, utcOffsetMinutes: 480 }, (s) => {
      s.registerAnswer = () => ({ command: 'response', content: { code: '200', data: '' } })
    })
    await sim.start()
    expect(sim.assignedHeartbeatMs).toBeUndefined()
    await until(() => server.of('206').length >= 2, 10_000, 'two heartbeats')
    const t = server.of('206')[0].data.time as string
    const utc8 = new Date(Date.parse(t.replace(' ', 'T') + '+08:00'))
    expect(Math.abs(utc8.getTime() - Date.now())).toBeLessThan(60_000)
  })

  it('a register refused with code 500 leaves the device unregistered, and it retries after reconnectMs', async () => {
    let refuse = true
    const { server, sim } = await setup({}, (s) => {
      s.registerAnswer = () =>
        refuse ? { command: 'response', content: { code: '500', data: 'unknown device' } } : { command: 'response', content: { code: '200', interval: '20', data: '' } }
    })
    await sim.start()
    expect(sim.registered).toBe(false)
    expect(sim.events.lastRegisterReply).toEqual({ command: 'response', content: { code: '500', data: 'unknown device' } })
    await until(() => server.of('205').length >= 2, 10_000, 'a second register')
    expect(sim.registered).toBe(false)
    refuse = false
    await until(() => sim.registered, 10_000, 'registered once accepted')
    expect(sim.events.registers).toBeGreaterThanOrEqual(3)
  })

  it('reads an answer carried in `data` instead of `content` (AMBIGUITIES wsjson #3)', async () => {
    const { sim } = await setup({}, (s) => {
      s.registerAnswer = () => ({ command: 'response', data: { code: '200', interval: 7, data: '' } })
    })
    await sim.start()
    expect(sim.registered).toBe(true)
    expect(sim.assignedHeartbeatMs).toBe(7000)
  })

  it('reconnects and registers again after the server closes the connection', async () => {
    const { server, sim } = await setup()
    await sim.start()
    server.current.close()
    await until(() => !sim.connected, 10_000, 'disconnect seen')
    expect(sim.registered).toBe(false)
    await until(() => sim.registered && sim.events.registers === 2, 10_000, 'registered again')
    expect(server.conns).toHaveLength(2)
  })

  it('drops the connection and reconnects when an upstream message gets no answer', async () => {
    const { server, sim } = await setup({ replyTimeoutMs: 50 }, (s) => {
      s.registerAnswer = () => ({ command: 'response', content: { code: '200', interval: '0.02', data: '' } })
      s.heartbeatAnswer = () => undefined
    })
    await sim.start()
    await until(() => sim.events.registers >= 2, 10_000, 'reconnect after a lost heartbeat answer')
    expect(server.conns.length).toBeGreaterThanOrEqual(2)
  })
})

describe('wsjson simulator: server commands (3.1)', () => {
  it('addUser → 200 with the commandId echoed; selectUser → 203 with content (and data)', async () => {
    const { server, sim } = await setup()
    await sim.start()
    const add = await server.command('addUser', user('12384865', { name: '李四' }), '20240115144330')
    expect(add).toEqual({ code: '200', data: '', commandId: '20240115144330' })
    expect(sim.users().get('12384865')).toMatchObject({ user: 'u12384865', userId: '12384865', pwd: '1234', name: '李四', role: '0' })

    const sel = await server.command('selectUser', { userId: '12384865', name: '李四' })
    expect(sel.code).toBe('203')
    expect(sel.content).toHaveLength(1)
    expect(sel.content[0]).toEqual(user('12384865', { name: '李四' }))
    expect(sel.data).toEqual(sel.content)
    expect(sel.commandId).toMatch(/^2024/)
    expect(sim.events.commands).toEqual({ addUser: 1, selectUser: 1 })
  })

  it('selectUser without parameters returns everyone; no match is 203 with an empty list', async () => {
    const { server, sim } = await setup()
    await sim.start()
    for (const id of ['1', '2', '3']) expect((await server.command('addUser', user(id))).code).toBe('200')
    const all = await server.command('selectUser')
    expect(all.code).toBe('203')
    expect(all.content.map((u: any) => u.userId)).toEqual(['1', '2', '3'])
    const none = await server.command('selectUser', { userId: '404' })
    expect(none).toMatchObject({ code: '203', content: [] })
  })

  it('editUser changes the given fields; unknown user → 500; the example form (addUser) replaces', async () => {
    const { server, sim } = await setup()
    await sim.start()
    await server.command('addUser', user('7'))
    const edit = await server.command('editUser', { userId: '7', name: 'Renamed', role: '1' }, 'E1')
    expect(edit).toEqual({ code: '200', data: '', commandId: 'E1' })
    expect(sim.users().get('7')).toMatchObject({ name: 'Renamed', role: '1', pwd: '1234', user: 'u7' })
    expect(sim.users().get('7')!.img).toBe(user('7').img)

    const missing = await server.command('editUser', { userId: '8', name: 'x' }, 'E2')
    expect(missing).toMatchObject({ code: '500', commandId: 'E2' })

    // AMBIGUITIES wsjson #2: the document's editUser example sends "addUser" for an existing user.
    const viaAdd = await server.command('addUser', user('7', { name: 'Again' }))
    expect(viaAdd.code).toBe('200')
    expect(sim.users().get('7')).toMatchObject({ name: 'Again', role: '0' })
    expect(sim.users().size).toBe(1)
  })

  it('deleteUser → 200 and the person is gone; deleting again → 500', async () => {
    const { server, sim } = await setup()
    await sim.start()
    await server.command('addUser', user('12384865'))
    const del = await server.command('deleteUser', { userId: '12384865', name: 'Person 12384865' }, 'D1')
    expect(del).toEqual({ code: '200', data: '', commandId: 'D1' })
    expect(sim.users().size).toBe(0)
    expect(await server.command('deleteUser', { userId: '12384865' }, 'D2')).toMatchObject({ code: '500', commandId: 'D2' })
  })

  it('compareUser → 204 with exit "1" for an enrolled face and "0" otherwise', async () => {
    const { server, sim } = await setup()
    await sim.start()
    await server.command('addUser', user('5'))
    const yes = await server.command('compareUser', { img: user('5').img }, 'C1')
    expect(yes).toMatchObject({ code: '204', content: { exit: '1' }, commandId: 'C1' })
    const no = await server.command('compareUser', { img: makeJpeg('someone else').toString('base64') }, 'C2')
    expect(no).toMatchObject({ code: '204', content: { exit: '0' }, data: { exit: '0' }, commandId: 'C2' })
  })

  it('refuses NOFACE images with 500 for addUser, editUser and compareUser', async () => {
    const { server, sim } = await setup()
    await sim.start()
    const bad = makeJpeg('NOFACE').toString('base64')
    expect(await server.command('addUser', user('9', { img: bad }), 'N1')).toEqual({ code: '500', data: 'no face', commandId: 'N1' })
    expect(sim.users().has('9')).toBe(false)
    await server.command('addUser', user('9'))
    expect(await server.command('editUser', { userId: '9', img: bad }, 'N2')).toEqual({ code: '500', data: 'no face', commandId: 'N2' })
    expect(sim.users().get('9')!.img).toBe(user('9').img)
    expect(await server.command('compareUser', { img: bad }, 'N3')).toEqual({ code: '500', data: 'no face', commandId: 'N3' })
  })

  it('honours a custom invalidPhotoMarker and requireAllFields', async () => {
    const { server, sim } = await setup({ invalidPhotoMarker: 'BLURRY', requireAllFields: true })
    await sim.start()
    expect((await server.command('addUser', user('1', { img: makeJpeg('NOFACE').toString('base64') }))).code).toBe('200')
    expect((await server.command('addUser', user('2', { img: makeJpeg('BLURRY').toString('base64') }))).code).toBe('500')
    const partial = await server.command('addUser', { userId: '3', name: 'No photo' })
    expect(partial.code).toBe('500')
    expect(partial.data).toMatch(/user.*pwd.*role.*img/)
    expect([...sim.users().keys()]).toEqual(['1'])
  })

  it('queryEvent → 208 with the stored event; unknown eventid → 500', async () => {
    const { server, sim } = await setup()
    await sim.start()
    await server.command('addUser', user('77986'))
    const ev = await sim.accessEvent({ userId: '77986', door: 0 })
    const q = await server.command('queryEvent', { eventid: ev.eventid }, 'Q1')
    expect(q.code).toBe('208')
    expect(q.commandId).toBe('Q1')
    expect(q.content).toEqual(ev)
    expect(q.content).toMatchObject({ type: '1', data: { userId: '77986', door: '0' } })
    expect(await server.command('queryEvent', { eventid: '19990101000000' }, 'Q2')).toMatchObject({ code: '500', commandId: 'Q2' })
  })

  it('answers every message: unknown command, content as a JSON string, no commandId, not JSON', async () => {
    const { server, sim } = await setup()
    await sim.start()
    expect(await server.command('openDoor', {}, 'X1')).toMatchObject({ code: '500', commandId: 'X1' })
    // The tables type content as "string".
    expect(await server.command('addUser', JSON.stringify(user('42')), 'X2')).toEqual({ code: '200', data: '', commandId: 'X2' })
    expect(sim.users().has('42')).toBe(true)
    // A numeric commandId is echoed as sent.
    expect(await server.command('selectUser', { userId: '42' }, 99 as unknown as string)).toMatchObject({ code: '203', commandId: 99 })

    server.raw(JSON.stringify({ command: 'deleteUser', content: { userId: '42' } }))
    server.raw('not json')
    await until(() => server.orphanReplies.length === 2, 10_000, 'answers without commandId')
    expect(server.orphanReplies.every((r) => r.code === '500' && !('commandId' in r))).toBe(true)
    expect(sim.events.repliesWithoutCommandId).toBe(2)
    expect(sim.users().has('42')).toBe(true) // a command without commandId is not executed
  })

  it('dropOnCommand closes the connection without answering, once; the device reconnects', async () => {
    const { server, sim } = await setup({ dropOnCommand: 'deleteUser' })
    await sim.start()
    await server.command('addUser', user('1'))
    const first = server.current
    const closed = new Promise<number>((r) => first.once('close', (code) => r(code)))
    let answered = false
    void server.command('deleteUser', { userId: '1' }, 'DROP1').then(() => (answered = true))
    await closed
    expect(answered).toBe(false)
    expect(sim.users().has('1')).toBe(true) // not executed
    await until(() => sim.registered && sim.events.registers === 2, 10_000, 're-registered')
    expect(await server.command('deleteUser', { userId: '1' }, 'DROP2')).toEqual({ code: '200', data: '', commandId: 'DROP2' })
    expect(sim.events.commands.deleteUser).toBe(2)
    expect(answered).toBe(false)
  })
})

describe('wsjson simulator: events (3.2.1 实时事件上报, 207)', () => {
  it('access event: type 1 with userId, base64 image and door; resolves only when the server answers', async () => {
    const { server, sim } = await setup({}, (s) => (s.holdEvents = true))
    await sim.start()
    const img = makeJpeg('capture 1')
    let resolved = false
    const p = sim.accessEvent({ userId: '77986', img, door: 1, time: new Date(2024, 0, 15, 11, 36, 44) }).then((e) => {
      resolved = true
      return e
    })
    await until(() => server.of('207').length === 1, 10_000, 'event sent')
    const sent = server.of('207')[0]
    expect(Object.keys(sent).sort()).toEqual(['code', 'data'])
    expect(sent.data).toMatchObject({ eventid: '20240115113644', type: '1', data: { userId: '77986', door: '1' } })
    expect(Buffer.from(sent.data.data.img, 'base64').equals(img)).toBe(true)
    expect(resolved).toBe(false)
    server.releaseEvents()
    const ev = await p
    expect(ev).toEqual(sent.data)
  })

  it('door defaults follow the register type (1 exit → door 1), and event ids stay unique within a second', async () => {
    const { server, sim } = await setup({ type: '1' })
    await sim.start()
    const t = new Date(2024, 0, 15, 11, 36, 44)
    const a = await sim.accessEvent({ userId: '1', time: t })
    const b = await sim.accessEvent({ userId: '2', time: t })
    expect((a.data as any).door).toBe('1')
    expect(a.eventid).toBe('20240115113644')
    expect(b.eventid).not.toBe(a.eventid)
    expect(String(b.eventid).slice(0, 14)).toBe('20240115113644')
    expect(server.of('207')).toHaveLength(2)
  })

  it('device-side enrolment: type 2 with the six user fields; the person is stored on the device', async () => {
    const { server, sim } = await setup()
    await sim.start()
    const img = makeJpeg('enrolled on device')
    await sim.enrollOnDevice({ userId: '12384865', name: '李四', img })
    const sent = server.of('207')
    expect(sent).toHaveLength(1)
    expect(sent[0].data.type).toBe('2')
    expect(Object.keys(sent[0].data.data).sort()).toEqual(['img', 'name', 'pwd', 'role', 'user', 'userId'])
    expect(sent[0].data.data).toMatchObject({ userId: '12384865', name: '李四', role: '0' })
    expect(Buffer.from(sent[0].data.data.img, 'base64').equals(img)).toBe(true)
    expect(sim.users().get('12384865')).toMatchObject({ name: '李四' })
    // compareUser now finds this face
    expect(await server.command('compareUser', { img: img.toString('base64') })).toMatchObject({ code: '204', content: { exit: '1' } })
  })

  it('an event whose answer is lost with the connection is sent again (same eventid) after reconnecting', async () => {
    const { server, sim } = await setup({}, (s) => (s.holdEvents = true))
    await sim.start()
    const p = sim.accessEvent({ userId: '3' })
    await until(() => server.of('207').length === 1, 10_000, 'event sent')
    server.holdEvents = false
    server.held.splice(0)
    server.current.terminate()
    const ev = await p
    const sent = server.of('207')
    expect(sent).toHaveLength(2)
    expect(sent[1].data.eventid).toBe(ev.eventid)
    expect(sent[0].data.eventid).toBe(ev.eventid)
    expect(sim.events.registers).toBe(2)
  })

  it('one upstream message at a time: a second event waits for the first answer', async () => {
    const { server, sim } = await setup({}, (s) => (s.holdEvents = true))
    await sim.start()
    const a = sim.accessEvent({ userId: '1' })
    const b = sim.accessEvent({ userId: '2' })
    await until(() => server.of('207').length === 1, 10_000, 'first event')
    // Round trip a command to be sure the device had every chance to send more.
    await server.command('selectUser')
    expect(server.of('207')).toHaveLength(1)
    server.releaseEvents()
    await until(() => server.of('207').length === 2, 10_000, 'second event')
    server.releaseEvents()
    await Promise.all([a, b])
  })

  it('an event refused by the server rejects; stop() rejects what is still queued', async () => {
    const { server, sim } = await setup({}, (s) => (s.holdEvents = true))
    await sim.start()
    const a = sim.accessEvent({ userId: '1' })
    const b = sim.accessEvent({ userId: '2' })
    await until(() => server.held.length === 1, 10_000, 'first event')
    const u = server.held.splice(0)[0]!
    u.ws.send(JSON.stringify({ command: 'response', content: { code: '500', data: 'nope' } }))
    await expect(a).rejects.toThrow(/code 500/)
    await until(() => server.held.length === 1, 10_000, 'second event')
    const bRejected = expect(b).rejects.toThrow(/stopped/)
    await sim.stop()
    await bRejected
  })
})

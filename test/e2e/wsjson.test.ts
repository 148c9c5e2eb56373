import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'csv-parse/sync'
import WebSocket from 'ws'
import { createWsjsonSimulator, type WsjsonSimulator } from '../../src/simulators/wsjson/index.js'
import { GatewayStore } from '../../src/store/gateway-store.js'
import { FIXTURES, doorctl, freePort, startDoorctl, tempDir, until } from '../helpers.js'

const face = readFileSync(join(FIXTURES, 'face.jpg'))

describe('wsjson devices through the gateway (built binary, simulated devices on 127.0.0.1)', () => {
  const work = tempDir('doorctl-ws-')

  beforeAll(() => {
    writeFileSync(join(work.path, 'face.jpg'), face)
    writeFileSync(join(work.path, 'noface.jpg'), Buffer.concat([face.subarray(0, 2), Buffer.from([0xff, 0xfe, 0x00, 0x08]), Buffer.from('NOFACE'), face.subarray(2)]))
    writeFileSync(join(work.path, 'people.csv'), 'id,name,password,role,photo\n101,张伟,1234,admin,face.jpg\n102,Maria,,user,noface.jpg\n103,Lee,,,\n')
  })
  afterAll(() => work.cleanup())

  async function setup(count = 1, opts: { dropOnCommand?: string } = {}) {
    const home = tempDir()
    const port = await freePort()
    const sims: WsjsonSimulator[] = []
    for (let i = 1; i <= count; i++) {
      const sn = `WS-E2E-000${i}`
      const r = await doorctl(['device', 'add', `door-${i}`, '--protocol', 'wsjson', '--sn', sn, '--tag', 'site'], { home: home.path })
      expect(r.code, r.stderr).toBe(0)
      const sim = createWsjsonSimulator({ url: `ws://127.0.0.1:${port}/wsjson`, sn, heartbeatMs: 500, reconnectMs: 50, dropOnCommand: i === 1 ? opts.dropOnCommand : undefined })
      // resolves once registered: a temporary listener only exists while a command runs
      void sim.start()
      sims.push(sim)
    }
    // --udp-port 0, --mqtt-port 0: every gateway also starts the udp and best handlers; 0 keeps parallel test files off 7998 and 1883
    const listen = ['--http-port', String(port), '--udp-port', '0', '--mqtt-port', '0', '--bind', '127.0.0.1']
    return {
      home, port, sims, listen,
      run: (args: string[]) => doorctl([...args, ...listen], { home: home.path }),
      async close() {
        await Promise.all(sims.map((s) => s.stop()))
        home.cleanup()
      },
    }
  }

  describe('one-shot, with a temporary listener (no serve running)', () => {
    let env: Awaited<ReturnType<typeof setup>>
    beforeAll(async () => { env = await setup(2) })
    afterAll(async () => env.close())

    it('people import: per-person outcomes; a photo without a face fails with the device reason', async () => {
      const report = join(work.path, 'ws-report.csv')
      const r = await env.run(['people', 'import', join(work.path, 'people.csv'), 'door-1', '--report', report, '--json', '--timeout', '20s'])
      expect(r.code, r.stdout + r.stderr).toBe(1)
      const res = r.json().results[0]
      expect(res).toMatchObject({ device: 'door-1', protocol: 'wsjson', status: 'failed' })
      expect(res.problems).toEqual([expect.objectContaining({ id: '102', status: 'failed', message: 'no face' })])
      const rows = parse(readFileSync(report), { columns: true }) as Record<string, string>[]
      expect(rows.map((x) => [x.id, x.status])).toEqual([['101', 'ok'], ['102', 'failed'], ['103', 'ok']])
      const users = env.sims[0].users()
      expect([...users.keys()].sort()).toEqual(['101', '103'])
      expect(users.get('101')).toMatchObject({ name: '张伟', role: '1', pwd: '1234', img: face.toString('base64') })
      expect(env.sims[1].users().size).toBe(0)
      expect(env.sims[0].events.repliesWithoutCommandId).toBe(0)
    })

    it('people list, face enroll, people delete', async () => {
      const list = await env.run(['people', 'list', 'door-1', '--json', '--timeout', '20s'])
      expect(list.code, list.stdout + list.stderr).toBe(0)
      const people = list.json().results[0].people
      expect(people.map((p: { id: string }) => p.id).sort()).toEqual(['101', '103'])
      expect(people.find((p: { id: string }) => p.id === '101')).toMatchObject({ name: '张伟', role: 'admin', has_photo: true })
      expect(people.find((p: { id: string }) => p.id === '103')).toMatchObject({ name: 'Lee', has_photo: false })

      const enroll = await env.run(['face', 'enroll', 'door-1', '--id', '103', '--photo', join(work.path, 'face.jpg'), '--json', '--timeout', '20s'])
      expect(enroll.code, enroll.stdout + enroll.stderr).toBe(0)
      expect(env.sims[0].users().get('103')).toMatchObject({ name: 'Lee', img: face.toString('base64') })

      // compareUser: the enrolled face is found on door-1, not on door-2 (which has nobody)
      const check = await env.run(['face', 'check', 'door-1', 'door-2', '--photo', join(work.path, 'face.jpg'), '--json', '--timeout', '20s'])
      expect(check.code, check.stdout + check.stderr).toBe(0)
      expect(check.json().results.map((r: { device: string; exists: boolean }) => [r.device, r.exists])).toEqual([['door-1', true], ['door-2', false]])

      const del = await env.run(['people', 'delete', 'door-1', '--id', '103', '--json', '--timeout', '20s'])
      expect(del.code, del.stdout + del.stderr).toBe(0)
      expect(env.sims[0].users().has('103')).toBe(false)
    })

    it('device info is the register message', async () => {
      const info = await env.run(['device', 'info', 'door-2', '--json', '--timeout', '20s'])
      expect(info.code, info.stdout + info.stderr).toBe(0)
      expect(info.json().results[0].info).toMatchObject({ sn: 'WS-E2E-0002', mac: expect.stringMatching(/^[0-9A-F]{12}$/), type: '0', terminal: 'entry and exit' })
    })

    it('open and reboot are unsupported (exit 1), capture too', async () => {
      for (const args of [['device', 'open', 'door-1'], ['device', 'reboot', '--tag', 'site'], ['device', 'sync-time', 'door-2']]) {
        const r = await env.run([...args, '--json', '--timeout', '5s'])
        expect(r.code, args.join(' ')).toBe(1)
        for (const x of r.json().results) expect(x).toMatchObject({ protocol: 'wsjson', status: 'unsupported' })
        expect(r.json().results[0].message).toMatch(/wsjson devices cannot/)
      }
      const cap = await env.run(['face', 'enroll', 'door-1', '--id', '101', '--capture', '--json', '--timeout', '5s'])
      expect(cap.code).toBe(1)
      expect(cap.json().results[0].status).toBe('unsupported')
    })

    it('an event raised while no gateway runs arrives with the next one-shot command; records pull has it once, with its photo', async () => {
      const photo = Buffer.concat([face.subarray(0, 2), Buffer.from([0xff, 0xfe, 0x00, 0x06]), Buffer.from('EVT1'), face.subarray(2)])
      const sent = env.sims[1].accessEvent({ userId: '555', img: photo, door: 1 })
      // the device uploads its event right after registering, before it answers the command's selectUser
      const list = await env.run(['people', 'list', 'door-2', '--json', '--timeout', '20s'])
      expect(list.code, list.stdout + list.stderr).toBe(0)
      const ev = await sent
      const out = join(work.path, 'ws-records.csv')
      // no serve: the pull's own temporary listener takes the device's call too, until it is drained (heartbeats every second)
      const collect = { home: env.home.path, env: { DOORCTL_WSJSON_HEARTBEAT_S: '1' } }
      const pull = await doorctl(['records', 'pull', 'door-2', '--since', 'last', '--output', out, '--json', ...env.listen], collect)
      expect(pull.code, pull.stdout + pull.stderr).toBe(0)
      const rows = parse(readFileSync(out), { columns: true }) as Record<string, string>[]
      expect(rows).toHaveLength(1)
      expect(rows[0]).toMatchObject({ device: 'door-2', record_id: String(ev.eventid), user_id: '555', direction: 'out', method: 'face', door: '1' })
      expect(Buffer.from(rows[0].photo, 'base64')).toEqual(photo)
      const again = await doorctl(['records', 'pull', 'door-2', '--since', 'last', '--output', join(work.path, 'ws-again.csv'), '--json', ...env.listen], collect)
      expect(again.json().total).toBe(0)
    })
  })

  it('a device that disconnects on a command gets it again (same commandId) after reconnecting: never hung', async () => {
    const env = await setup(1, { dropOnCommand: 'deleteUser' })
    try {
      const imp = await env.run(['people', 'import', join(work.path, 'people.csv'), 'door-1', '--json', '--timeout', '20s'])
      expect(imp.code).toBe(1) // the NOFACE row
      const started = Date.now()
      const del = await env.run(['people', 'delete', 'door-1', '--id', '101', '--id', '103', '--json', '--timeout', '20s'])
      expect(del.code, del.stdout + del.stderr).toBe(0)
      expect(Date.now() - started).toBeLessThan(15_000)
      expect(env.sims[0].events.commands.deleteUser).toBe(3) // dropped once, re-sent, then the second id
      expect(env.sims[0].users().size).toBe(0)
    } finally {
      await env.close()
    }
  })

  describe('through doorctl serve', () => {
    let env: Awaited<ReturnType<typeof setup>>
    let serve: ReturnType<typeof startDoorctl>
    beforeAll(async () => {
      env = await setup(1)
      serve = startDoorctl(['serve', ...env.listen, '--json'], { home: env.home.path })
      await until(() => serve.out.stdout.includes('"ok":true'), 20_000, 'serve to start')
      await until(() => env.sims[0].registered, 10_000, 'the device to register')
    })
    afterAll(async () => {
      serve.child.kill('SIGTERM')
      await serve.exited
      await env.close()
    })

    it('register answered with the heartbeat interval; device list shows presence', async () => {
      expect(env.sims[0].assignedHeartbeatMs).toBe(30_000)
      const r = await doorctl(['device', 'list', '--json'], { home: env.home.path })
      const d = r.json().devices[0]
      expect(d).toMatchObject({ name: 'door-1', online: true })
      expect(Date.parse(d.last_seen)).toBeGreaterThan(Date.now() - 60_000)
    })

    it('people import and list go through serve; --no-wait is delivered at once', async () => {
      const imp = await doorctl(['people', 'import', join(work.path, 'people.csv'), 'door-1', '--json', '--timeout', '20s'], { home: env.home.path })
      expect(imp.code).toBe(1)
      expect(imp.json().results[0].problems).toEqual([expect.objectContaining({ id: '102', message: 'no face' })])
      const list = await doorctl(['people', 'list', 'door-1', '--json', '--timeout', '20s'], { home: env.home.path })
      expect(list.json().results[0].people.map((p: { id: string }) => p.id).sort()).toEqual(['101', '103'])
      const q = await doorctl(['people', 'delete', 'door-1', '--id', '101', '--no-wait', '--json'], { home: env.home.path })
      expect(q.code, q.stdout + q.stderr).toBe(0)
      expect(q.json().results[0].status).toBe('queued')
      await until(() => !env.sims[0].users().has('101'), 10_000, 'delivery while connected')
    })

    it('access events are spooled once with their photos; records pull exports them exactly once', async () => {
      const a = await env.sims[0].accessEvent({ userId: '103', door: 0 })
      const b = await env.sims[0].accessEvent({ userId: '103', door: 1 })
      const out = join(work.path, 'ws-serve-records.csv')
      const pull = await doorctl(['records', 'pull', 'door-1', '--since', 'last', '--output', out, '--json'], { home: env.home.path })
      expect(pull.code, pull.stdout + pull.stderr).toBe(0)
      const rows = parse(readFileSync(out), { columns: true }) as Record<string, string>[]
      expect(rows.map((x) => x.record_id)).toEqual([String(a.eventid), String(b.eventid)])
      expect(rows.map((x) => x.direction)).toEqual(['in', 'out'])
      expect(rows[0].name).toBe('Lee')
      expect(Buffer.from(rows[0].photo, 'base64').subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]))
      const again = await doorctl(['records', 'pull', 'door-1', '--since', 'last', '--output', join(work.path, 'ws-serve-again.csv'), '--json'], { home: env.home.path })
      expect(again.json().total).toBe(0)
    })

    it('a person enrolled on the device shows up in people list', async () => {
      await env.sims[0].enrollOnDevice({ userId: '900', name: '王芳' })
      const list = await doorctl(['people', 'list', 'door-1', '--json', '--timeout', '20s'], { home: env.home.path })
      expect(list.json().results[0].people.find((p: { id: string }) => p.id === '900')).toMatchObject({ name: '王芳', has_photo: true })
      // kept in the gateway's per-device state (people list's output has no column for it yet)
      const store = new GatewayStore(env.home.path, { readonly: true })
      try {
        expect((store.getState('door-1', 'people') as Record<string, { enrolledAt?: number }>)['900'].enrolledAt).toBeGreaterThan(Date.now() - 60_000)
      } finally {
        store.close()
      }
    })

    it('unknown devices are refused with 500 and listed as discovered', async () => {
      const stranger = createWsjsonSimulator({ url: `ws://127.0.0.1:${env.port}/wsjson`, sn: 'WS-STRANGER', reconnectMs: 60_000 })
      try {
        await stranger.start()
        expect(stranger.registered).toBe(false)
        expect(stranger.events.lastRegisterReply).toMatchObject({ content: { code: '500' } })
        await until(async () => {
          const d = await doorctl(['device', 'list', '--discovered', '--json'], { home: env.home.path })
          return d.json().discovered.some((x: { identity: string }) => x.identity === 'WS-STRANGER')
        }, 10_000, 'discovered device')
      } finally {
        await stranger.stop()
      }
    })

    it('malformed frames are answered 500 and the gateway stays up', async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${env.port}/wsjson`)
      const answers: Record<string, any>[] = []
      ws.on('message', (d) => answers.push(JSON.parse(d.toString())))
      await new Promise((r) => ws.once('open', r))
      for (const bad of ['not json', '{"code":"999"}', '{"code":"207","data":{}}', '[]', Buffer.from([0xff, 0x00, 0x13])]) ws.send(bad)
      await until(() => answers.length === 5, 10_000, 'five answers')
      expect(answers.every((x) => x.content.code === '500')).toBe(true)
      ws.terminate()
      const list = await doorctl(['people', 'list', 'door-1', '--json', '--timeout', '20s'], { home: env.home.path })
      expect(list.code, list.stdout + list.stderr).toBe(0)
    })
  })
})

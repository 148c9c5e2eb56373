/**
 * best devices end to end: the BUILT binary (bin/run.js) against simulated best devices
 * (src/simulators/best), best-w (WebSocket) and best-m (MQTT: the embedded broker, and Debian's
 * mosquitto when it is installed), one-shot (temporary listener) and through `doorctl serve`.
 * Everything on 127.0.0.1 with random ports.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { parse } from 'csv-parse/sync'
import { Aedes } from 'aedes'
import { connect } from 'mqtt'
import { createServer } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { GATEWAY_USER, loadBrokerSecret, withCredentials } from '../../src/drivers/best/broker-auth.js'
import { bestPasswordDigest, bestSign, createBestSimulator, makeJpeg, type BestSimulator } from '../../src/simulators/best/index.js'
import { FIXTURES, doorctl, freePort, startDoorctl, tempDir, until, type RunResult } from '../helpers.js'

const MOSQUITTO = '/usr/sbin/mosquitto'
const hasMosquitto = existsSync(MOSQUITTO)
if (!hasMosquitto) {
  console.warn(`best e2e: ${MOSQUITTO} is not installed, so the test through an external MQTT broker (mosquitto) is skipped; install Debian's mosquitto package to run it`)
}

const PRODUCT = '5d9b11e1a3f448ae81f9f920e976d852'
const SECRET = 'factory-secret-1'
const BROKER_KEY = 'aabbcc'
const face = readFileSync(join(FIXTURES, 'face.jpg'))
const work = tempDir('doorctl-best-work-')

beforeAll(() => {
  writeFileSync(join(work.path, 'face.jpg'), face)
  writeFileSync(join(work.path, 'noface.jpg'), makeJpeg(4096, 'NOFACE'))
  writeFileSync(join(work.path, 'people.csv'), 'id,name,card,password,role,valid_to,photo\n101,张伟,5001,1234,user,2027-12-31T18:00:00+08:00,face.jpg\n102,Maria,,,admin,,\n103,Lee,5003,,blacklist,,\n')
  writeFileSync(join(work.path, 'bad-face.csv'), 'id,name,photo\n201,Good,face.jpg\n202,Bad,noface.jpg\n')
})
afterAll(() => work.cleanup())

interface Env {
  home: ReturnType<typeof tempDir>
  httpPort: number
  mqttPort: number
  listen: string[]
  sim: BestSimulator
  simLog: string[]
  /** One-shot: runs the command with the listener flags, starting the simulator once a gateway answers. */
  run(args: string[]): Promise<RunResult>
  close(): Promise<void>
}

async function setup(o: { transport: 'ws' | 'mqtt'; sn: string; mqttUrl?: string; dropOnCommand?: string }): Promise<Env> {
  const home = tempDir('doorctl-best-e2e-')
  const httpPort = await freePort()
  const mqttPort = await freePort()
  const add = await doorctl(['device', 'add', 'door-1', '--protocol', 'best', '--sn', o.sn, '--transport', o.transport, '--product-id', PRODUCT,
    '--device-secret', SECRET, '--broker-key', BROKER_KEY, '--tag', 'site'], { home: home.path })
  expect(add.code, add.stderr).toBe(0)
  const simLog: string[] = []
  const sim = createBestSimulator({
    server: `http://127.0.0.1:${httpPort}`, sn: o.sn, transport: o.transport, productId: PRODUCT, deviceSecret: SECRET, brokerKey: BROKER_KEY,
    heartbeatMs: 1000, reconnectMs: 200, requestTimeoutMs: 3000, dropOnCommand: o.dropOnCommand, log: (l) => simLog.push(l),
  })
  const listen = ['--http-port', String(httpPort), '--udp-port', String(await freePort()), '--bind', '127.0.0.1', ...(o.mqttUrl ? ['--mqtt-url', o.mqttUrl] : ['--mqtt-port', String(mqttPort)])]
  let started = false
  const ready = async (): Promise<boolean> => {
    const nonce = Math.random().toString(16).slice(2)
    const timestamp = String(Date.now())
    const q = new URLSearchParams({ sn: o.sn, type: o.transport === 'ws' ? 'best-w' : 'best-m', nonce, timestamp, sign: bestSign(o.sn, nonce, timestamp, BROKER_KEY) })
    try {
      const r = await fetch(`http://127.0.0.1:${httpPort}/v3/device/getBrokerServer?${q}`)
      return ((await r.json()) as { code?: string }).code === '00000000'
    } catch {
      return false
    }
  }
  return {
    home, httpPort, mqttPort, listen, sim, simLog,
    async run(args) {
      let done = false
      const p = doorctl([...args, ...listen], { home: home.path }).finally(() => { done = true })
      if (!started) {
        await until(async () => done || (await ready()), 20_000, 'a gateway to answer getBrokerServer')
        if (!done) {
          await sim.start()
          started = true
        }
      }
      return p
    },
    async close() {
      await sim.stop()
      home.cleanup()
    },
  }
}

const ok = (r: RunResult) => expect(r.code, r.stdout + r.stderr).toBe(0)

/** The operations of the issue, run one way (one-shot or through serve). */
function operations(get: () => Env, run: (args: string[]) => Promise<RunResult>) {
  it('reboot and sync-time', async () => {
    const env = get()
    const reboot = await run(['device', 'reboot', 'door-1', '--json', '--timeout', '20s'])
    ok(reboot)
    expect(reboot.json().results[0]).toMatchObject({ device: 'door-1', protocol: 'best', ok: true, status: 'ok' })
    expect(env.sim.events.reboots).toBe(1)
    const sync = await run(['device', 'sync-time', 'door-1', '--json', '--timeout', '20s'])
    ok(sync)
    expect(env.sim.events.timeSyncs.length).toBe(1)
    const ts = env.sim.events.timeSyncs[0]
    expect(Math.abs(Date.parse(ts.time) - Date.now())).toBeLessThan(60_000)
    const offset = -new Date().getTimezoneOffset()
    expect(ts.timeZone).toBe(`${offset >= 0 ? '+' : '-'}${String(Math.trunc(Math.abs(offset) / 60)).padStart(2, '0')}:${String(Math.abs(offset) % 60).padStart(2, '0')}`)
  })

  it('info (from dev.report) and config set option (cmd.option.set); open is unsupported', async () => {
    const env = get()
    const info = await run(['device', 'info', 'door-1', '--json', '--timeout', '20s'])
    ok(info)
    expect(info.json().results[0].info).toMatchObject({ model: 'DOORCTL-SIM', firmware: 'ZAM170-NF-Ver1.1.21' })
    const set = await run(['device', 'config', 'set', 'option', 'meetRoomName=Blue Room', 'meetRoomCapacity=12', 'door-1', '--json', '--timeout', '20s'])
    ok(set)
    expect(env.sim.events.options.at(-1)).toEqual({ meetRoomName: 'Blue Room', meetRoomCapacity: '12' })
    const open = await run(['device', 'open', 'door-1', '--json', '--timeout', '5s'])
    expect(open.code).toBe(1)
    expect(open.json().results[0].status).toBe('unsupported')
  })

  it('people import (passwords hashed, cards, photo by URL), a face the device refuses, list, enroll, delete', async () => {
    const env = get()
    const report = join(work.path, `report-${env.httpPort}.csv`)
    const imp = await run(['people', 'import', join(work.path, 'people.csv'), 'door-1', '--report', report, '--json', '--timeout', '30s'])
    ok(imp)
    const users = env.sim.users()
    expect([...users.keys()].sort()).toEqual(['101', '102', '103'])
    const u101 = users.get('101')!
    expect(u101.password).toBe(bestPasswordDigest('1234', String(u101.passwordSalt)))
    expect(u101.endTime).toMatch(/^2027-12-31T\d{2}:\d{2}:00[+-]\d{2}:\d{2}$/)
    expect(Date.parse(String(u101.endTime))).toBe(Date.parse('2027-12-31T18:00:00+08:00'))
    expect(u101.bioPhotos).toEqual([expect.objectContaining({ type: '9' })])
    expect(users.get('103')).toMatchObject({ disable: '1' })
    const rows = parse(readFileSync(report), { columns: true }) as Record<string, string>[]
    expect(rows.map((r) => [r.id, r.status])).toEqual([['101', 'ok'], ['102', 'ok'], ['103', 'ok']])

    const bad = await run(['people', 'import', join(work.path, 'bad-face.csv'), 'door-1', '--json', '--timeout', '30s'])
    expect(bad.code, bad.stdout + bad.stderr).toBe(1)
    const res = bad.json().results[0]
    expect(res.problems).toEqual([expect.objectContaining({ id: '202', status: 'failed' })])
    expect(res.problems[0].message).toContain('no face')

    const list = await run(['people', 'list', 'door-1', '--json', '--timeout', '20s'])
    ok(list)
    const people = list.json().results[0].people as Record<string, unknown>[]
    expect(people.map((p) => p.id).sort()).toEqual(['101', '102', '103', '201', '202'])
    expect(people.find((p) => p.id === '101')).toMatchObject({ name: '张伟', has_photo: true, role: 'user' })
    expect(people.find((p) => p.id === '102')).toMatchObject({ role: 'admin' })
    expect(people.find((p) => p.id === '103')).toMatchObject({ role: 'blacklist' })

    const enroll = await run(['face', 'enroll', 'door-1', '--id', '102', '--photo', join(work.path, 'face.jpg'), '--json', '--timeout', '20s'])
    ok(enroll)
    expect(env.sim.users().get('102')!.bioPhotos).toHaveLength(1)

    const del = await run(['people', 'delete', 'door-1', '--id', '103', '--json', '--timeout', '20s'])
    ok(del)
    expect(env.sim.users().has('103')).toBe(false)
    const all = await run(['people', 'delete', 'door-1', '--everyone', '--yes', '--json', '--timeout', '20s'])
    ok(all)
    expect(env.sim.users().size).toBe(0)
    expect(env.sim.events.badMessages).toEqual([])
  })
}

for (const { transport, sn } of [{ transport: 'ws' as const, sn: 'BESTW0001' }, { transport: 'mqtt' as const, sn: 'BESTM0001' }]) describe(`best-${transport === 'ws' ? 'w' : 'm'} one-shot (temporary listener${transport === 'mqtt' ? ', embedded broker' : ''})`, () => {
  let env: Env
  beforeAll(async () => { env = await setup({ transport, sn }) })
  afterAll(async () => env.close())
  operations(() => env, (args) => env.run(args))

  it('config apply: the switches dev.report carries and a meeting-room key, in one cmd.option.set; then nothing', async () => {
    const site = join(work.path, `option-${transport}.csv`)
    writeFileSync(site, 'device,section,key,value\ndoor-1,option,volume,70\ndoor-1,option,voiceOn,0\ntag:site,option,meetRoomLocation,3F\n')
    const plan = await env.run(['device', 'config', 'plan', site, '--json', '--timeout', '20s'])
    ok(plan)
    expect(plan.json().results[0].changes).toEqual([
      expect.objectContaining({ key: 'volume', current: 50, desired: 70, known: true }),
      expect.objectContaining({ key: 'voiceOn', current: 1, desired: 0, known: true }),
      // never reported by the device, and not set through doorctl yet
      expect.objectContaining({ key: 'meetRoomLocation', current: null, desired: '3F', known: false }),
    ])
    const sets = env.sim.events.options.length
    const apply = await env.run(['device', 'config', 'apply', site, '--yes', '--json', '--timeout', '20s'])
    ok(apply)
    expect(apply.json().results[0]).toMatchObject({ status: 'ok', changed: [{ key: 'volume' }, { key: 'voiceOn' }, { key: 'meetRoomLocation' }] })
    expect(env.sim.events.options.slice(sets)).toEqual([{ volume: '70', voiceOn: '0', meetRoomLocation: '3F' }])
    const again = await env.run(['device', 'config', 'apply', site, '--yes', '--json', '--timeout', '20s'])
    ok(again)
    expect(again.json().results[0].status).toBe('unchanged')
    expect(env.sim.events.options.length).toBe(sets + 1)
  })

  it('an offline device → timeout and exit 1', async () => {
    await doorctl(['device', 'add', 'ghost', '--protocol', 'best', '--sn', `GHOST${transport}`], { home: env.home.path })
    const r = await env.run(['device', 'reboot', 'ghost', '--timeout', '1500ms', '--json'])
    expect(r.code).toBe(1)
    expect(r.json().results[0].status).toBe('timeout')
  })
})

function serveOps(o: { transport: 'ws' | 'mqtt'; sn: string; mqttUrl?: () => string }) {
  let env: Env
  let serve: ReturnType<typeof startDoorctl>
  beforeAll(async () => {
    env = await setup({ transport: o.transport, sn: o.sn, mqttUrl: o.mqttUrl?.() })
    serve = startDoorctl(['serve', ...env.listen, '--json'], { home: env.home.path })
    await until(() => serve.out.stdout.includes('"ok":true'), 20_000, 'serve to start')
    // the embedded broker and mosquitto both route shared subscriptions: nothing to warn about
    expect(JSON.parse(serve.out.stdout.split('\n')[0])).toMatchObject({ mqtt_url: expect.stringMatching(/^mqtt:\/\/127\.0\.0\.1:\d+$/), mqtt_shared_subscriptions: true, warnings: [] })
    await env.sim.start()
  })
  afterAll(async () => {
    serve.child.kill('SIGTERM')
    expect(await serve.exited).toBe(0)
    await env.close()
  })
  operations(() => env, (args) => doorctl(args, { home: env.home.path }))

  it('device list shows the device online', async () => {
    await until(async () => {
      const r = await doorctl(['device', 'list', '--json'], { home: env.home.path })
      return r.code === 0 && r.json().devices.find((d: { name: string }) => d.name === 'door-1')?.online === true
    }, 10_000, 'presence')
  })

  it('records: verify logs with and without photo, a large photo through dev.file.upload.*, pulled exactly once', async () => {
    await env.sim.verifyLog({ pin: '101' })
    await env.sim.verifyLog({ pin: '102', photo: face })
    const big = makeJpeg(150 * 1024)
    await env.sim.verifyLog({ pin: '103', photo: big })
    const out = join(work.path, `records-${env.httpPort}.csv`)
    const photos = join(work.path, `photos-${env.httpPort}`)
    let rows: Record<string, string>[] = []
    await until(async () => {
      const pull = await doorctl(['records', 'pull', 'door-1', '--output', out, '--photos', photos, '--json'], { home: env.home.path })
      if (pull.code !== 0) return false
      rows = parse(readFileSync(out), { columns: true }) as Record<string, string>[]
      return rows.length === 3
    }, 20_000, 'three records')
    expect(rows.map((r) => r.user_id)).toEqual(['101', '102', '103'])
    expect(rows[0]).toMatchObject({ device: 'door-1', result: 'granted', meet_code: '1', photo: '' })
    expect(rows[0].time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$/)
    expect(readdirSync(photos)).toHaveLength(2)
    expect(readFileSync(join(photos, basename(rows[1].photo))).equals(face)).toBe(true)
    expect(readFileSync(join(photos, basename(rows[2].photo))).equals(big)).toBe(true)
    const first = await doorctl(['records', 'pull', 'door-1', '--since', 'last', '--output', join(work.path, `r1-${env.httpPort}.csv`), '--json'], { home: env.home.path })
    expect(first.json().total).toBe(3)
    const again = await doorctl(['records', 'pull', 'door-1', '--since', 'last', '--output', join(work.path, `r2-${env.httpPort}.csv`), '--json'], { home: env.home.path })
    expect(again.json().total).toBe(0)
  })

  it('malformed frames are answered with an error and logged; the gateway and the device carry on', async () => {
    if (o.transport === 'ws') {
      const ws = new WebSocket(`ws://127.0.0.1:${env.httpPort}/best`)
      await new Promise<void>((r, j) => { ws.once('open', () => r()); ws.once('error', j) })
      const answers: string[] = []
      ws.on('message', (d) => answers.push(d.toString()))
      for (const bad of ['{"funcId":', '[]', '{"mid":"1"}', 'x'.repeat(1000)]) ws.send(bad)
      await until(() => answers.length === 4, 5000, 'error answers')
      expect(answers.every((a) => JSON.parse(a).code !== '00000000')).toBe(true)
      ws.terminate()
    } else {
      // as a gateway (the broker refuses anonymous clients, and a device may publish only as itself)
      const url = withCredentials(JSON.parse(serve.out.stdout.split('\n')[0]).mqtt_url as string, GATEWAY_USER, loadBrokerSecret(env.home.path).gatewayPassword)
      const c = await connectMqtt(url)
      for (const bad of ['{"funcId":', '[]', Buffer.from([0xff, 0x00, 0x13])]) c.publish(`best/${o.sn}/up`, bad, { qos: 1 })
      c.publish('best/STRANGER/up', '{"funcId":"dev.login","mid":"1","sn":"STRANGER","payload":{"params":{}}}', { qos: 1 })
      await c.endAsync()
    }
    await until(() => serve.out.stderr.includes('best malformed message'), 10_000, 'a log line')
    const r = await doorctl(['device', 'reboot', 'door-1', '--json', '--timeout', '20s'], { home: env.home.path })
    ok(r)
    expect(serve.child.exitCode).toBeNull()
  })
}

async function connectMqtt(url: string) {
  const c = connect(url, { reconnectPeriod: 0 })
  await new Promise<void>((r, j) => { c.once('connect', () => r()); c.once('error', j) })
  return c
}

describe('best-w through doorctl serve', () => serveOps({ transport: 'ws', sn: 'BESTW0002' }))
describe('best-m through doorctl serve (embedded broker)', () => serveOps({ transport: 'mqtt', sn: 'BESTM0002' }))

describe('a device that disconnects mid-command gets it again (serve)', () => {
  for (const transport of ['ws', 'mqtt'] as const) {
    it(`best-${transport}: the user batch is dropped once, delivered again after the device logs back in`, async () => {
      const env = await setup({ transport, sn: `DROP${transport}`, dropOnCommand: 'cmd.data.update.user' })
      const serve = startDoorctl(['serve', ...env.listen, '--json'], { home: env.home.path })
      try {
        await until(() => serve.out.stdout.includes('"ok":true'), 20_000, 'serve to start')
        await env.sim.start()
        const r = await doorctl(['people', 'import', join(work.path, 'people.csv'), 'door-1', '--json', '--timeout', '30s'], { home: env.home.path })
        ok(r)
        expect(env.sim.events.commands['cmd.data.update.user']).toBe(2)
        expect(env.sim.events.logins).toBeGreaterThanOrEqual(2)
        expect(env.sim.users().size).toBe(3)
      } finally {
        serve.child.kill('SIGTERM')
        await serve.exited
        await env.close()
      }
    })
  }
})

describe.skipIf(!hasMosquitto)('best-m through Debian\'s mosquitto (--mqtt-url)', () => {
  let mosquitto: ChildProcess
  let mqttUrl = ''
  const conf = tempDir('doorctl-mosq-')
  beforeAll(async () => {
    const port = await freePort()
    writeFileSync(join(conf.path, 'mosquitto.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`)
    mosquitto = spawn(MOSQUITTO, ['-c', join(conf.path, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] })
    mqttUrl = `mqtt://127.0.0.1:${port}`
    await until(async () => {
      try {
        const c = await connectMqtt(mqttUrl)
        await c.endAsync()
        return true
      } catch {
        return false
      }
    }, 10_000, 'mosquitto')
  })
  afterAll(() => {
    mosquitto.kill('SIGTERM')
    conf.cleanup()
  })

  describe('through serve', () => serveOps({ transport: 'mqtt', sn: 'BESTQ0001', mqttUrl: () => mqttUrl }))

  describe('one-shot', () => {
    let env: Env
    beforeAll(async () => { env = await setup({ transport: 'mqtt', sn: 'BESTQ0002', mqttUrl }) })
    afterAll(async () => env.close())
    operations(() => env, (args) => env.run(args))
  })
})

describe('best-m through a broker without shared subscriptions (a plain aedes broker, --mqtt-url)', () => {
  let url = ''
  let closeBroker: () => Promise<void>
  beforeAll(async () => {
    const broker = await Aedes.createBroker()
    const server = createServer((s) => broker.handle(s))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    url = `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`
    closeBroker = async () => {
      server.close()
      await new Promise<void>((r) => broker.close(() => r()))
    }
  })
  afterAll(async () => closeBroker())

  it('serve says so in its ready line (human and --json), falls back to plain subscriptions, and a best-m device is served', async () => {
    const env = await setup({ transport: 'mqtt', sn: 'BESTA0001', mqttUrl: url })
    try {
      const human = startDoorctl(['serve', ...env.listen], { home: env.home.path })
      await until(() => human.out.stdout.includes('listening'), 20_000, 'the human ready line')
      human.child.kill('SIGTERM')
      expect(await human.exited).toBe(0)
      const line = human.out.stdout.split('\n')[0]
      expect(line).toContain('mqtt_shared_subscriptions false')
      expect(line).toMatch(/Warning: the MQTT broker mqtt:\/\/127\.0\.0\.1:\d+ does not route shared subscriptions .* only one gateway may use this broker/)

      const serve = startDoorctl(['serve', ...env.listen, '--json'], { home: env.home.path })
      try {
        await until(() => serve.out.stdout.includes('"ok":true'), 20_000, 'serve to start')
        const ready = JSON.parse(serve.out.stdout.split('\n')[0])
        expect(ready).toMatchObject({ mqtt_url: url, mqtt_shared_subscriptions: false })
        expect(ready.warnings).toHaveLength(1)
        expect(ready.warnings[0]).toContain('only one gateway may use this broker')
        expect(serve.out.stderr).toContain('does not route shared subscriptions')
        await env.sim.start()
        const reboot = await doorctl(['device', 'reboot', 'door-1', '--json', '--timeout', '20s'], { home: env.home.path })
        ok(reboot)
        const sync = await doorctl(['device', 'sync-time', 'door-1', '--json', '--timeout', '20s'], { home: env.home.path })
        ok(sync)
        expect(env.sim.events.reboots).toBe(1)
        expect(env.sim.events.timeSyncs).toHaveLength(1)
      } finally {
        serve.child.kill('SIGTERM')
        await serve.exited
      }
    } finally {
      await env.close()
    }
  })
})

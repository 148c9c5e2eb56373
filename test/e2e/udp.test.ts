/**
 * udp intercoms through the gateway: the built binary against simulated intercoms
 * (src/simulators/udp) heartbeating every 200 ms on 127.0.0.1, one-shot (temporary listener)
 * and through `doorctl serve`.
 */
import { createSocket } from 'node:dgram'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'csv-parse/sync'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createUdpSimulator, type UdpSimulator } from '../../src/simulators/udp/index.js'
import { FIXTURES, doorctl, freePort, freeUdpPort, startDoorctl, tempDir, until } from '../helpers.js'

const face = readFileSync(join(FIXTURES, 'face.jpg'))
/** A JPEG the simulated device judges faceless: the marker sits in a COM segment right after SOI. */
const noface = Buffer.concat([face.subarray(0, 2), Buffer.from([0xff, 0xfe, 0x00, 0x08]), Buffer.from('NOFACE'), face.subarray(2)])

interface Env {
  home: ReturnType<typeof tempDir>
  httpPort: number
  udpPort: number
  sims: UdpSimulator[]
  listen: string[]
  run(args: string[]): ReturnType<typeof doorctl>
  close(): Promise<void>
}

async function setup(devices: { name: string; community: string; code: string; dropIncoming?: number }[]): Promise<Env> {
  const home = tempDir('doorctl-udp-e2e-')
  const httpPort = await freePort()
  const udpPort = await freeUdpPort()
  const sims: UdpSimulator[] = []
  for (const d of devices) {
    const r = await doorctl(['device', 'add', d.name, '--protocol', 'udp', '--community', d.community, '--code', d.code, '--tag', 'site'], { home: home.path })
    expect(r.code, r.stderr).toBe(0)
    const sim = createUdpSimulator({
      server: '127.0.0.1', udpPort, httpUrl: `http://127.0.0.1:${httpPort}`, communityId: d.community, deviceCode: d.code,
      intervalMs: 200, dropIncoming: d.dropIncoming, requestTimeoutMs: 2000,
    })
    await sim.start()
    sims.push(sim)
  }
  const listen = ['--http-port', String(httpPort), '--udp-port', String(udpPort), '--mqtt-port', '0', '--bind', '127.0.0.1']
  return {
    home, httpPort, udpPort, sims, listen,
    run: (args) => doorctl([...args, ...listen], { home: home.path }),
    async close() {
      await Promise.all(sims.map((s) => s.stop()))
      home.cleanup()
    },
  }
}

describe('udp intercoms through the gateway (built binary, simulated intercoms on 127.0.0.1)', () => {
  const work = tempDir('doorctl-udp-work-')
  beforeAll(() => {
    writeFileSync(join(work.path, 'face.jpg'), face)
    writeFileSync(join(work.path, 'noface.jpg'), noface)
    writeFileSync(join(work.path, 'people.csv'), 'id,name,phone,room,unit,photo\n201,张伟,13500000201,0101,0021,face.jpg\n202,Maria,13500000202,0102,0021,face.jpg\n203,Lee,13500000203,0103,0021,noface.jpg\n')
  })
  afterAll(() => work.cleanup())

  describe('one-shot, with a temporary listener (no serve running)', () => {
    let env: Env
    beforeAll(async () => {
      env = await setup([{ name: 'gate-1', community: '123456', code: '200111' }, { name: 'gate-2', community: '123456', code: '200112', dropIncoming: 1 }])
    })
    afterAll(async () => env.close())

    it('device add needs --community and --code', async () => {
      const r = await doorctl(['device', 'add', 'half', '--protocol', 'udp', '--community', '1', '--json'], { home: env.home.path })
      expect(r.code).toBe(2)
      const show = await doorctl(['device', 'show', 'gate-1', '--json'], { home: env.home.path })
      expect(JSON.stringify(show.json())).toContain('200111')
    })

    it('open and reboot: each executed once by the device that was asked', async () => {
      const open = await env.run(['device', 'open', 'gate-1', '--timeout', '20s', '--json'])
      expect(open.code, open.stdout + open.stderr).toBe(0)
      expect(open.json().results[0]).toMatchObject({ device: 'gate-1', protocol: 'udp', ok: true, status: 'ok' })
      expect(env.sims[0].events.unlocks).toHaveLength(1)
      expect(env.sims[1].events.unlocks).toHaveLength(0)

      const reboot = await env.run(['device', 'reboot', 'gate-1', '--timeout', '20s', '--json'])
      expect(reboot.code, reboot.stdout + reboot.stderr).toBe(0)
      expect(env.sims[0].events.reboots).toBe(1)
      expect(env.sims[0].events.duplicatesIgnored).toBe(0)
    })

    it('a dropped first datagram is resent with the same id and executed once', async () => {
      const r = await env.run(['device', 'open', 'gate-2', '--timeout', '20s', '--json'])
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expect(env.sims[1].events.commandsDropped).toBe(1)
      expect(env.sims[1].events.unlocks).toHaveLength(1)
      expect(env.sims[1].events.problems).toEqual([])
    })

    it('what the document lacks is refused per device, exit 1', async () => {
      const mode = await env.run(['device', 'open', 'gate-1', '--mode', 'keep-open', '--timeout', '20s', '--json'])
      expect(mode.code).toBe(1)
      // the gateway fails it with "unsupported: …", which the CLI reports as status unsupported
      expect(mode.json().results[0]).toMatchObject({ status: 'unsupported', message: expect.stringMatching(/keep-open|pulse/) })
      const sync = await env.run(['device', 'sync-time', 'gate-1', '--timeout', '5s', '--json'])
      expect(sync.code).toBe(1)
      expect(sync.json().results[0]).toMatchObject({ status: 'unsupported', message: expect.stringContaining('time') })
      expect(env.sims[0].events.unlocks).toHaveLength(1)
    })

    it('people without a phone are refused before anything is sent (exit 2)', async () => {
      writeFileSync(join(work.path, 'nophone.csv'), 'id,name\n301,Nobody\n')
      const r = await env.run(['people', 'import', join(work.path, 'nophone.csv'), 'gate-1', '--json'])
      expect(r.code).toBe(2)
      expect(r.json().error.problems[0]).toMatchObject({ line: 2, field: 'phone' })
    })

    it('a face import for 3 people: 2 ok, the faceless photo failed with the device\'s reason', async () => {
      const report = join(work.path, 'udp-report.csv')
      const r = await env.run(['people', 'import', join(work.path, 'people.csv'), 'gate-1', '--report', report, '--timeout', '30s', '--json'])
      expect(r.code, r.stdout + r.stderr).toBe(1)
      const res = r.json().results[0]
      expect(res.problems).toEqual([expect.objectContaining({ id: '203', status: 'failed', message: expect.stringContaining('40') })])
      const rows = parse(readFileSync(report), { columns: true }) as Record<string, string>[]
      expect(rows.map((x) => [x.id, x.status])).toEqual(expect.arrayContaining([['201', 'ok'], ['202', 'ok'], ['203', 'failed']]))
      expect(rows).toHaveLength(3)
      expect([...env.sims[0].faces().keys()].sort()).toEqual(['13500000201', '13500000202'])
      expect(env.sims[0].faces().get('13500000201')).toMatchObject({ roomNumber: '0101', unitId: '0021' })
      // the device found nothing wrong in anything the gateway sent it
      expect(env.sims.flatMap((x) => x.events.problems)).toEqual([])
    })
  })

  describe('settings from a file (one-shot)', () => {
    let env: Env
    beforeAll(async () => {
      env = await setup([{ name: 'gate-1', community: '123456', code: '200111' }, { name: 'gate-2', community: '123456', code: '200112' }])
    })
    afterAll(async () => env.close())

    it('a door\'s new code: planned from its heartbeat, sent as setting, the inventory follows; then nothing', async () => {
      const site = join(work.path, 'codes.csv')
      writeFileSync(site, 'device,section,key,value\n*,device,communityId,123456\ngate-1,device,deviceCode,200199\n')
      const shared = join(work.path, 'same-code.csv')
      writeFileSync(shared, 'device,section,key,value\ntag:site,device,deviceCode,7\n')
      const refused = await env.run(['device', 'config', 'plan', shared, '--json'])
      expect(refused.code).toBe(2)
      expect(refused.json().error.problems[0]).toMatchObject({ line: 2, message: expect.stringMatching(/each door's own/) })

      const plan = await env.run(['device', 'config', 'plan', site, '--json', '--timeout', '20s'])
      expect(plan.code, plan.stdout + plan.stderr).toBe(0)
      expect(plan.json()).toMatchObject({ to_change: ['gate-1'], in_line: ['gate-2'] })
      expect(plan.json().results[0].changes).toEqual([expect.objectContaining({ key: 'deviceCode', current: '200111', desired: '200199' })])
      const apply = await env.run(['device', 'config', 'apply', site, '--yes', '--json', '--timeout', '20s'])
      expect(apply.code, apply.stdout + apply.stderr).toBe(0)
      expect(apply.json().results.map((r: { status: string }) => r.status)).toEqual(['ok', 'unchanged'])
      expect(env.sims[0].deviceCode).toBe('200199')
      expect(env.sims[0].events.settings).toHaveLength(1)
      const show = await doorctl(['device', 'show', 'gate-1', '--json'], { home: env.home.path })
      expect(show.json().device).toMatchObject({ community: '123456', code: '200199' })
      const again = await env.run(['device', 'config', 'apply', site, '--yes', '--json', '--timeout', '20s'])
      expect(again.code, again.stdout + again.stderr).toBe(0)
      expect(again.json().results.map((r: { status: string }) => r.status)).toEqual(['unchanged', 'unchanged'])
      expect(env.sims[0].events.settings).toHaveLength(1)
    })
  })

  describe('through doorctl serve', () => {
    let env: Env
    let serve: ReturnType<typeof startDoorctl>
    beforeAll(async () => {
      env = await setup([{ name: 'gate-1', community: '654321', code: '1' }])
      serve = startDoorctl(['serve', ...env.listen, '--json'], { home: env.home.path })
      await until(() => serve.out.stdout.includes('"ok":true'), 20_000, 'serve to start')
    })
    afterAll(async () => {
      serve.child.kill('SIGTERM')
      await serve.exited
      await env.close()
    })

    it('the ready line names the UDP port; device list shows presence', async () => {
      expect(JSON.parse(serve.out.stdout.split('\n')[0])).toMatchObject({ ok: true, udp_port: env.udpPort, http_port: env.httpPort })
      await until(() => env.sims[0].events.lastHeartackResult === '0', 10_000, 'a heartack')
      const r = await doorctl(['device', 'list', '--json'], { home: env.home.path })
      expect(r.json().devices[0]).toMatchObject({ name: 'gate-1', online: true })
    })

    it('open, reboot and info go through serve', async () => {
      const open = await doorctl(['device', 'open', 'gate-1', '--timeout', '20s', '--json'], { home: env.home.path })
      expect(open.code, open.stdout + open.stderr).toBe(0)
      const reboot = await doorctl(['device', 'reboot', 'gate-1', '--timeout', '20s', '--json'], { home: env.home.path })
      expect(reboot.code, reboot.stdout + reboot.stderr).toBe(0)
      expect(env.sims[0].events.unlocks).toHaveLength(1)
      expect(env.sims[0].events.reboots).toBe(1)
      const info = await doorctl(['device', 'info', 'gate-1', '--timeout', '20s', '--json'], { home: env.home.path })
      expect(info.code, info.stdout + info.stderr).toBe(0)
      expect(JSON.stringify(info.json())).toContain('1.02.03.04')
    })

    it('an access event: one record with its capture in records pull', async () => {
      const photo = Buffer.concat([face, Buffer.from('capture-1')])
      const sent = await env.sims[0].accessEvent({ phone: '13500000999', type: 4, result: 0, photo })
      expect(sent.file).toMatch(/^\//)
      const pull = await doorctl(['records', 'pull', 'gate-1', '--since', 'last', '--format', 'ndjson', '--output', '-'], { home: env.home.path })
      expect(pull.code, pull.stderr).toBe(0)
      const recs = pull.stdout.trim().split('\n').map((l) => JSON.parse(l))
      expect(recs).toHaveLength(1)
      expect(recs[0]).toMatchObject({ device: 'gate-1', method: 'face', result: 'granted', user_id: '13500000999', phone: '13500000999' })
      expect(Buffer.from(recs[0].photo, 'base64')).toEqual(photo)
    })

    it('garbage datagrams and bad HTTP bodies: error answers, and the gateway stays up', async () => {
      const s = createSocket('udp4')
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()))
      for (const junk of [Buffer.from('not json'), Buffer.alloc(9000, 0x41), Buffer.from('{"cmd":"heart"}'), Buffer.from([0, 1, 2, 255])]) {
        await new Promise<void>((r) => s.send(junk, env.udpPort, '127.0.0.1', () => r()))
      }
      await new Promise<void>((r) => s.close(() => r()))
      const base = `http://127.0.0.1:${env.httpPort}`
      const bad = [
        await fetch(`${base}/unlockCallback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"communityId": ' }),
        await fetch(`${base}/unlockCallback`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'type=4' }),
        await fetch(`${base}/addUpload`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: 'garbage' }),
        await fetch(`${base}/authImage?phone=1&state=x`, { method: 'POST' }),
        await fetch(`${base}/updateImage`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'timestrap=x&communityId=9&deviceCode=9' }),
        await fetch(`${base}/oneLock`, { method: 'POST', body: 'x'.repeat(3 * 1024 * 1024) }).catch(() => undefined),
      ]
      for (const r of bad) if (r) expect(r.status === 200 ? (await r.json()).code : r.status).not.toBe('0000')
      const beats = env.sims[0].events.heartacks
      await until(() => env.sims[0].events.heartacks > beats + 1, 10_000, 'heartacks after the garbage')
      const open = await doorctl(['device', 'open', 'gate-1', '--timeout', '20s', '--json'], { home: env.home.path })
      expect(open.code, open.stdout + open.stderr).toBe(0)
      expect(env.sims[0].events.problems).toEqual([])
      // every piece of garbage left a log line, and nothing failed inside the gateway
      expect(serve.out.stderr).toMatch(/udp datagram dropped: not JSON/)
      expect(serve.out.stderr).toMatch(/udp datagram dropped: oversized/)
      expect(serve.out.stderr).not.toMatch(/udp callback failed|udp datagram failed/)
    })
  })
})

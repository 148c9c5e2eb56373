/**
 * openapi platform mode (section 9) end to end: the built binary (serve, and one-shot commands
 * with a temporary listener) against simulated platform-mode devices on 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'csv-parse/sync'
import { createOpenapiPlatformSimulator, type OpenapiPlatformSimulator } from '../../src/simulators/openapi/platform.js'
import { FIXTURES, doorctl, freePort, startDoorctl, tempDir, until } from '../helpers.js'

const face = readFileSync(join(FIXTURES, 'face.jpg'))
/** A JPEG the simulated device reports as having no face (its rejectMarker). */
const noface = Buffer.concat([face.subarray(0, 2), Buffer.from([0xff, 0xfe, 0x00, 0x08]), Buffer.from('NOFACE'), face.subarray(2)])

describe('openapi platform mode (built binary, simulated section-9 devices on 127.0.0.1)', () => {
  const work = tempDir('doorctl-oap-')

  beforeAll(() => {
    writeFileSync(join(work.path, 'face.jpg'), face)
    writeFileSync(join(work.path, 'noface.jpg'), noface)
    writeFileSync(join(work.path, 'people.csv'), 'id,name,department,photo\n101,张伟,R&D,face.jpg\n102,Maria,Sales,face.jpg\n103,Lee,,noface.jpg\n')
    writeFileSync(join(work.path, 'allowed.csv'), 'id,name\n101,Zhang\n')
  })
  afterAll(() => work.cleanup())

  async function setup(deviceId = '0000001') {
    const home = tempDir()
    const port = await freePort()
    const r = await doorctl(['device', 'add', 'door-p', '--protocol', 'openapi', '--device-id', deviceId, '--mode', 'platform', '--tag', 'gate'], { home: home.path })
    expect(r.code, r.stderr).toBe(0)
    const sim = createOpenapiPlatformSimulator({ platform: `http://127.0.0.1:${port}`, deviceId, heartbeatMs: 100, pollMs: 100, requestTimeoutMs: 2000 })
    sim.start()
    // --udp-port 0: the udp handler binds a UDP port in every gateway; 0 keeps parallel test files from colliding on 7998
    const listen = ['--http-port', String(port), '--bind', '127.0.0.1', '--udp-port', '0', '--mqtt-port', '0']
    return {
      home, port, sim, listen,
      run: (args: string[]) => doorctl([...args, ...listen], { home: home.path }),
      async close() {
        await sim.stop()
        home.cleanup()
      },
    }
  }

  function importOutcome(json: any) {
    const res = json.results[0]
    return { res, problems: res.problems as { id: string; status: string; message: string }[] }
  }

  describe('through doorctl serve (--authorize FILE.csv)', () => {
    let env: Awaited<ReturnType<typeof setup>>
    let serve: ReturnType<typeof startDoorctl>
    beforeAll(async () => {
      env = await setup()
      serve = startDoorctl(['serve', ...env.listen, '--authorize', join(work.path, 'allowed.csv'), '--json'], { home: env.home.path })
      await until(() => serve.out.stdout.includes('"ok":true'), 20_000, 'serve to start')
    })
    afterAll(async () => {
      serve.child.kill('SIGTERM')
      await serve.exited
      await env.close()
    })

    it('heartbeats → the device is online in device list', async () => {
      await until(() => env.sim.events.heartbeats > 1, 10_000, 'heartbeats')
      await until(async () => {
        const r = await doorctl(['device', 'list', '--json'], { home: env.home.path })
        return r.json().devices[0]?.online === true
      }, 10_000, 'presence')
      const d = (await doorctl(['device', 'list', '--json'], { home: env.home.path })).json().devices[0]
      expect(d).toMatchObject({ name: 'door-p', protocol: 'openapi', online: true })
      expect(Date.parse(d.last_seen)).toBeGreaterThan(Date.now() - 60_000)
    })

    it('an allow-listed user gets openDoor 1, anyone else 0', async () => {
      expect(await env.sim.compare({ userId: '101', userName: '张伟' })).toMatchObject({ ret: '0', openDoor: 1 })
      expect(await env.sim.compare({ userId: '999', userName: 'Stranger' })).toMatchObject({ ret: '0', openDoor: 0 })
      expect(env.sim.events.opens).toBe(1)
    })

    it('a /syface upload is one record with its photo; the device retrying it changes nothing', async () => {
      const base = await doorctl(['records', 'pull', 'door-p', '--since', 'last', '--output', join(work.path, 'base.csv'), '--json'], { home: env.home.path })
      expect(base.code, base.stdout + base.stderr).toBe(0)
      expect(base.json().total).toBe(2)

      const first = await env.sim.compare({ userId: '101', userName: '张伟', temperature: '36.7°C', idCard: true })
      const again = await env.sim.repeatLast()
      expect(again).toEqual(first)
      expect(await env.sim.attribute({ temperature: '38.1', openCode: 101, openMsg: '温度异常' })).toMatchObject({ ret: '0' })

      const out = join(work.path, 'records.csv')
      const photos = join(work.path, 'photos')
      const pull = await doorctl(['records', 'pull', 'door-p', '--since', 'last', '--output', out, '--photos', photos, '--json'], { home: env.home.path })
      expect(pull.code, pull.stdout + pull.stderr).toBe(0)
      const rows = parse(readFileSync(out), { columns: true }) as Record<string, string>[]
      expect(rows).toHaveLength(2)
      const [rec, temp] = rows
      expect(rec).toMatchObject({ device: 'door-p', user_id: '101', name: '张伟', result: 'granted', direction: 'in', method: 'face', temperature: '36.7', mask: 'true', id_card_name: '张三' })
      expect(rec.record_id).toMatch(/^sf-/)
      expect(existsSync(rec.photo)).toBe(true)
      expect(readFileSync(rec.photo).subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]))
      expect(temp).toMatchObject({ method: 'temperature', result: 'denied', temperature: '38.1', open_code: '101' })

      await env.sim.repeatLast()
      const again2 = await doorctl(['records', 'pull', 'door-p', '--since', 'last', '--output', join(work.path, 'again.csv'), '--json'], { home: env.home.path })
      expect(again2.json().total).toBe(0)
    })

    it('people import of 3 → 2 stored, 1 failed with the device\'s own message; people list; delete', async () => {
      const report = join(work.path, 'serve-report.csv')
      const imp = await doorctl(['people', 'import', join(work.path, 'people.csv'), 'door-p', '--report', report, '--json', '--timeout', '20s'], { home: env.home.path })
      expect(imp.code, imp.stdout + imp.stderr).toBe(1)
      const { res, problems } = importOutcome(imp.json())
      expect(res).toMatchObject({ device: 'door-p', protocol: 'openapi', status: 'failed' })
      expect(res.counts).toMatchObject({ ok: 2, failed: 1 })
      expect(problems).toEqual([expect.objectContaining({ id: '103', status: 'failed', message: expect.stringContaining('未检测到人脸') })])
      const rows = parse(readFileSync(report), { columns: true }) as Record<string, string>[]
      expect(rows.map((r) => [r.id, r.status])).toEqual([['101', 'ok'], ['102', 'ok'], ['103', 'failed']])
      expect([...env.sim.faces().keys()].sort()).toEqual(['101', '102'])
      expect(env.sim.faces().get('101')).toMatchObject({ userName: '张伟', userRemark: 'R&D' })
      expect(env.sim.faces().get('101')!.image).toEqual(face)

      const list = await doorctl(['people', 'list', 'door-p', '--json', '--timeout', '20s'], { home: env.home.path })
      expect(list.code, list.stdout + list.stderr).toBe(0)
      const people = list.json().results[0].people as { id: string; name: string; has_photo: boolean }[]
      expect(people.map((p) => p.id).sort()).toEqual(['101', '102'])
      expect(people.find((p) => p.id === '101')).toMatchObject({ name: '张伟', has_photo: true })

      const del = await doorctl(['people', 'delete', 'door-p', '--id', '102', '--json', '--timeout', '20s'], { home: env.home.path })
      expect(del.code, del.stdout + del.stderr).toBe(0)
      expect(env.sim.faces().has('102')).toBe(false)

      const enroll = await doorctl(['face', 'enroll', 'door-p', '--id', '101', '--photo', join(work.path, 'noface.jpg'), '--json', '--timeout', '20s'], { home: env.home.path })
      expect(enroll.code).toBe(1)
    })

    it('what section 9 cannot do is unsupported, the others carry on', async () => {
      const r = await doorctl(['device', 'open', 'door-p', '--json', '--timeout', '5s'], { home: env.home.path })
      expect(r.code).toBe(1)
      expect(r.json().results[0]).toMatchObject({ status: 'unsupported' })
      expect(r.json().results[0].message).toMatch(/platform mode/)
    })

    it('bad bodies get error answers and the gateway stays up; unknown devices are refused and discovered', async () => {
      const base = `http://127.0.0.1:${env.port}`
      const json = { 'content-type': 'application/json' }
      const bad = [
        await fetch(`${base}/syface/0000001`, { method: 'POST', headers: json, body: '{"userId": ' }),
        await fetch(`${base}/syface/0000001`, { method: 'POST', headers: json, body: JSON.stringify({ userId: '101', img: 'not base64 at all!' }) }),
        await fetch(`${base}/syattribute/0000001`, { method: 'POST', headers: json, body: '[]' }),
        await fetch(`${base}/syresult/0000001`, { method: 'POST', headers: json, body: '{}' }),
        await fetch(`${base}/syrecord/0000001?lastQueryTime=abc`),
        await fetch(`${base}/syface/0000001`, { method: 'POST', headers: json, body: 'x'.repeat(3 * 1024 * 1024) }).catch(() => undefined),
      ]
      for (const r of bad) {
        if (!r) continue
        expect(r.status).toBeGreaterThanOrEqual(400)
        const body = (await r.json()) as Record<string, unknown>
        expect(body.ret ?? body.Success).not.toBe('0')
        if ('openDoor' in body) expect(body.openDoor).toBe(0)
      }
      const stranger = await fetch(`${base}/syheartbeat/4242`, { method: 'POST', headers: json, body: '{}' })
      expect(((await stranger.json()) as { ret: string }).ret).not.toBe('0')
      await until(async () => {
        const d = await doorctl(['device', 'list', '--discovered', '--json'], { home: env.home.path })
        return d.json().discovered.some((x: { protocol: string; identity: string }) => x.protocol === 'openapi' && x.identity === '4242')
      }, 10_000, 'discovered device')
      expect(await env.sim.heartbeat()).toEqual({ ret: '0', desc: 'Success' })
    })
  })

  it('one-shot people import with a temporary listener: 2 ok, 1 failed with the device\'s message', async () => {
    const env = await setup('0000002')
    try {
      const imp = await env.run(['people', 'import', join(work.path, 'people.csv'), 'door-p', '--json', '--timeout', '20s'])
      expect(imp.code, imp.stdout + imp.stderr).toBe(1)
      const { res, problems } = importOutcome(imp.json())
      expect(res.counts).toMatchObject({ ok: 2, failed: 1 })
      expect(problems).toEqual([expect.objectContaining({ id: '103', status: 'failed', message: expect.stringContaining('未检测到人脸') })])
      expect([...env.sim.faces().keys()].sort()).toEqual(['101', '102'])
      // nothing is left listening: the next command starts its own listener on the same port
      const list = await env.run(['people', 'list', 'door-p', '--json', '--timeout', '20s'])
      expect(list.code, list.stdout + list.stderr).toBe(0)
      expect(list.json().results[0].people.map((p: { id: string }) => p.id).sort()).toEqual(['101', '102'])
    } finally {
      await env.close()
    }
  })
})

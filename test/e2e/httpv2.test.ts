import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { parse } from 'csv-parse/sync'
import { createHttpv2Simulator, type Httpv2Simulator } from '../../src/simulators/httpv2/index.js'
import { GatewayStore } from '../../src/store/gateway-store.js'
import { FIXTURES, doorctl, freePort, startDoorctl, tempDir, until } from '../helpers.js'

const face = readFileSync(join(FIXTURES, 'face.jpg'))

describe('httpv2 devices through the gateway (built binary, simulated devices on 127.0.0.1)', () => {
  const work = tempDir('doorctl-h2-')

  beforeAll(() => {
    writeFileSync(join(work.path, 'face.jpg'), face)
    writeFileSync(join(work.path, 'people.csv'), 'id,name,card,role,photo\n101,张伟,5001,user,face.jpg\n102,Maria,5002,admin,\n103,Lee,5003,blacklist,\n')
  })
  afterAll(() => work.cleanup())

  async function setup(count = 1) {
    const home = tempDir()
    const port = await freePort()
    const sims: Httpv2Simulator[] = []
    for (let i = 1; i <= count; i++) {
      const sn = `FC-8200H0000000${i}`
      const r = await doorctl(['device', 'add', `door-${i}`, '--protocol', 'httpv2', '--sn', sn, '--tag', 'site'], { home: home.path })
      expect(r.code, r.stderr).toBe(0)
      const sim = createHttpv2Simulator({ server: `http://127.0.0.1:${port}`, sn, intervalMs: 100, requestTimeoutMs: 500, retryDelayMs: 100 })
      sim.start()
      sims.push(sim)
    }
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

    it('reboot, open (modes) and sync-time', async () => {
      const reboot = await env.run(['device', 'reboot', 'door-1', '--json', '--timeout', '20s'])
      expect(reboot.code, reboot.stdout + reboot.stderr).toBe(0)
      expect(reboot.json().results[0]).toMatchObject({ device: 'door-1', protocol: 'httpv2', ok: true, status: 'ok' })
      expect(env.sims[0].events.reboots).toBe(1)
      expect(env.sims[1].events.reboots).toBe(0)

      const open = await env.run(['device', 'open', '--tag', 'site', '--mode', 'keep-open', '--json', '--timeout', '20s'])
      expect(open.code, open.stdout + open.stderr).toBe(0)
      expect(env.sims[0].events.opens).toContain(2)
      expect(env.sims[1].events.opens).toContain(2)

      const sync = await env.run(['device', 'sync-time', 'door-2', '--json', '--timeout', '20s'])
      expect(sync.code, sync.stdout + sync.stderr).toBe(0)
      expect(env.sims[1].events.timeSets.length).toBe(1)
    })

    it('people import with per-person outcomes, list, enroll, delete', async () => {
      const report = join(work.path, 'h2-report.csv')
      const imp = await env.run(['people', 'import', join(work.path, 'people.csv'), 'door-1', '--report', report, '--json', '--timeout', '30s'])
      expect(imp.code, imp.stdout + imp.stderr).toBe(0)
      expect(env.sims[0].people().size).toBe(3)
      const rows = parse(readFileSync(report), { columns: true }) as Record<string, string>[]
      expect(rows.map((r) => r.status)).toEqual(['ok', 'ok', 'ok'])

      const list = await env.run(['people', 'list', 'door-1', '--json', '--timeout', '20s'])
      expect(list.code, list.stdout + list.stderr).toBe(0)
      const people = list.json().results[0].people
      expect(people.map((p: { id: string }) => p.id).sort()).toEqual(['101', '102', '103'])
      expect(people.find((p: { id: string }) => p.id === '101')).toMatchObject({ name: '张伟', has_photo: true })

      const enroll = await env.run(['face', 'enroll', 'door-1', '--id', '102', '--photo', join(work.path, 'face.jpg'), '--json', '--timeout', '20s'])
      expect(enroll.code, enroll.stdout + enroll.stderr).toBe(0)

      const del = await env.run(['people', 'delete', 'door-1', '--id', '103', '--json', '--timeout', '20s'])
      expect(del.code, del.stdout + del.stderr).toBe(0)
      expect(env.sims[0].people().has('103')).toBe(false)
    })

    it('a face the device cannot use is a failed person, with the device reason', async () => {
      const noface = Buffer.concat([face.subarray(0, 2), Buffer.from([0xff, 0xfe, 0x00, 0x08]), Buffer.from('NOFACE'), face.subarray(2)])
      writeFileSync(join(work.path, 'noface.jpg'), noface)
      writeFileSync(join(work.path, 'bad-face.csv'), 'id,name,photo\n201,Good,face.jpg\n202,Bad,noface.jpg\n')
      const r = await env.run(['people', 'import', join(work.path, 'bad-face.csv'), 'door-2', '--json', '--timeout', '30s'])
      expect(r.code).toBe(1)
      const res = r.json().results[0]
      expect(res.problems).toEqual([expect.objectContaining({ id: '202', status: 'failed' })])
      expect(res.problems[0].message.length).toBeGreaterThan(5)
    })

    it('an offline device → timeout status and exit 1', async () => {
      await doorctl(['device', 'add', 'ghost', '--protocol', 'httpv2', '--sn', 'FC-8200H99999999'], { home: env.home.path })
      const r = await env.run(['device', 'reboot', 'ghost', '--timeout', '1500ms', '--json'])
      expect(r.code).toBe(1)
      expect(r.json().results[0].status).toBe('timeout')
    })

    it('ids httpv2 cannot take are refused before anything is sent (exit 2)', async () => {
      writeFileSync(join(work.path, 'bad-ids.csv'), 'id,name\nabc,Letters\n')
      const r = await env.run(['people', 'import', join(work.path, 'bad-ids.csv'), 'door-1', '--json'])
      expect(r.code).toBe(2)
      expect(r.json().error.problems[0]).toMatchObject({ line: 2, field: 'id' })
    })
  })

  describe('through doorctl serve', () => {
    let env: Awaited<ReturnType<typeof setup>>
    let serve: ReturnType<typeof startDoorctl>
    beforeAll(async () => {
      env = await setup(1)
      serve = startDoorctl(['serve', ...env.listen, '--json'], { home: env.home.path })
      await until(() => serve.out.stdout.includes('"ok":true'), 20_000, 'serve to start')
    })
    afterAll(async () => {
      serve.child.kill('SIGTERM')
      await serve.exited
      await env.close()
    })

    it('device list shows presence from the gateway', async () => {
      await until(() => env.sims[0].events.keepalives > 1, 10_000, 'keepalives')
      const r = await doorctl(['device', 'list', '--json'], { home: env.home.path })
      const d = r.json().devices[0]
      expect(d).toMatchObject({ name: 'door-1', online: true })
      expect(Date.parse(d.last_seen)).toBeGreaterThan(Date.now() - 60_000)
    })

    it('operations go through serve', async () => {
      const r = await doorctl(['device', 'reboot', 'door-1', '--json', '--timeout', '20s'], { home: env.home.path })
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expect(env.sims[0].events.reboots).toBe(1)
    })

    it('--no-wait returns queued, and the device gets it at its next heartbeat', async () => {
      const opens = env.sims[0].events.opens.length
      const r = await doorctl(['device', 'open', 'door-1', '--no-wait', '--json'], { home: env.home.path })
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expect(r.json().results[0].status).toBe('queued')
      await until(() => env.sims[0].events.opens.length > opens, 10_000, 'delivery')
    })

    it('records retried by the device are stored once; records pull reads the spool exactly once', async () => {
      const ids = [env.sims[0].addRecord(), env.sims[0].addRecord(), env.sims[0].addRecord()]
      await until(() => ids.every((id) => env.sims[0].acknowledgedRecords().includes(id)), 10_000, 'uploads')
      const out = join(work.path, 'h2-records.csv')
      const pull = await doorctl(['records', 'pull', 'door-1', '--since', 'last', '--output', out, '--json'], { home: env.home.path })
      expect(pull.code, pull.stdout + pull.stderr).toBe(0)
      const rows = parse(readFileSync(out), { columns: true }) as Record<string, string>[]
      for (const id of ids) expect(rows.filter((r) => r.record_id === id)).toHaveLength(1)
      const again = await doorctl(['records', 'pull', 'door-1', '--since', 'last', '--output', join(work.path, 'h2-again.csv'), '--json'], { home: env.home.path })
      expect(again.json().total).toBe(0)
    })

    it('device snapshot saves the camera picture; face enroll --capture asks the device to capture', async () => {
      const file = join(work.path, 'snap.jpg')
      const snap = await doorctl(['device', 'snapshot', 'door-1', '--output', file, '--json', '--timeout', '20s'], { home: env.home.path })
      expect(snap.code, snap.stdout + snap.stderr).toBe(0)
      expect(readFileSync(file).subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]))
      await doorctl(['people', 'import', join(work.path, 'people.csv'), 'door-1', '--json', '--timeout', '30s'], { home: env.home.path })
      const cap = await doorctl(['face', 'enroll', 'door-1', '--id', '102', '--capture', '--json', '--timeout', '20s'], { home: env.home.path })
      expect(cap.code, cap.stdout + cap.stderr).toBe(0)
      expect(env.sims[0].events.ticketResults).toBeGreaterThan(0)
    })

    it('records watch tails the spool as NDJSON', async () => {
      const watch = startDoorctl(['records', 'watch', 'door-1'], { home: env.home.path })
      try {
        // records keep coming until the watcher has printed one
        await until(async () => {
          env.sims[0].addRecord()
          return watch.out.stdout.includes('\n')
        }, 20_000, 'a watched record')
        expect(JSON.parse(watch.out.stdout.split('\n')[0])).toMatchObject({ device: 'door-1' })
      } finally {
        watch.child.kill('SIGINT')
        expect(await watch.exited).toBe(130)
      }
    })

    it('unknown devices are refused and listed as discovered', async () => {
      const r = await fetch(`http://127.0.0.1:${env.port}/Device/Keepalive`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ SN: 'FC-STRANGER01' }) })
      expect((await r.json()).Success).toBe(401)
      await until(async () => {
        const d = await doorctl(['device', 'list', '--discovered', '--json'], { home: env.home.path })
        return d.json().discovered.some((x: { identity: string }) => x.identity === 'FC-STRANGER01')
      }, 10_000, 'discovered device')
    })

    it('bad bodies get error answers and the gateway stays up', async () => {
      const base = `http://127.0.0.1:${env.port}`
      const bad = [
        await fetch(`${base}/Device/Keepalive`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"SN": ' }),
        await fetch(`${base}/Device/Keepalive`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: 'not gzip' }),
        await fetch(`${base}/Device/Keepalive`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(3 * 1024 * 1024) }).catch(() => undefined),
        await fetch(`${base}/Device/Keepalive`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(Buffer.alloc(20 * 1024 * 1024, 32)) }),
        await fetch(`${base}/Record/UploadIdentifyRecord`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: 'garbage' }),
        await fetch(`${base}/Device/Keepalive`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' }),
      ]
      for (const r of bad) if (r) expect(r.status === 200 ? (await r.json()).Success : r.status).not.toBe(1)
      const ok = await fetch(`${base}/Device/Keepalive`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ SN: 'FC-8200H00000001' }) })
      expect(ok.status).toBe(200)
      expect((await ok.json()).Success).toBe(1)
    })
  })

  it('two one-shot commands at once share one temporary listener instead of fighting over the port', async () => {
    const env = await setup(2)
    try {
      const [a, b] = await Promise.all([
        env.run(['device', 'reboot', 'door-1', '--json', '--timeout', '20s']),
        env.run(['device', 'open', 'door-2', '--json', '--timeout', '20s']),
      ])
      expect(a.code, a.stdout + a.stderr).toBe(0)
      expect(b.code, b.stdout + b.stderr).toBe(0)
      expect(env.sims[0].events.reboots).toBe(1)
      expect(env.sims[1].events.opens).toEqual([1])
    } finally {
      await env.close()
    }
  })

  it('serve --authorize FILE.csv decides RequestAuthorization: listed users allowed, others denied', async () => {
    const env = await setup(1)
    const allowed = join(work.path, 'allowed.csv')
    writeFileSync(allowed, 'id,name\n101,Zhang\n')
    const serve = startDoorctl(['serve', ...env.listen, '--authorize', allowed, '--json'], { home: env.home.path })
    try {
      await until(() => serve.out.stdout.includes('"ok":true'), 20_000, 'serve')
      await until(() => env.sims[0].lastKeepaliveSuccess === 1, 10_000, 'a keepalive')
      const yes = await env.sims[0].requestAuthorization('101')
      const no = await env.sims[0].requestAuthorization('999')
      expect(yes).not.toBe(0)
      expect(no).toBe(0)
    } finally {
      serve.child.kill('SIGTERM')
      await serve.exited
      await env.close()
    }
  })

  it('serve killed with SIGKILL while 1,000 records upload: every record the device was told was received is in the spool', async () => {
    const home = tempDir()
    const port = await freePort()
    try {
      await doorctl(['device', 'add', 'busy', '--protocol', 'httpv2', '--sn', 'FC-8200H00000077'], { home: home.path })
      const sim = createHttpv2Simulator({ server: `http://127.0.0.1:${port}`, sn: 'FC-8200H00000077', intervalMs: 50, records: 1000, requestTimeoutMs: 500, retryDelayMs: 50 })
      let serve = startDoorctl(['serve', '--http-port', String(port), '--udp-port', '0', '--mqtt-port', '0', '--bind', '127.0.0.1', '--json'], { home: home.path })
      await until(() => serve.out.stdout.includes('"ok":true'), 20_000, 'serve')
      sim.start()
      await until(() => sim.acknowledgedRecords().length >= 200, 30_000, '200 uploads')
      serve.child.kill('SIGKILL')
      await serve.exited
      const acked = new Set(sim.acknowledgedRecords())
      const store = new GatewayStore(home.path, { readonly: true })
      const spooled = new Set(store.records('busy', 0, 100_000).map((r) => r.recordId))
      store.close()
      for (const id of acked) expect(spooled.has(id)).toBe(true)
      // the rest arrive after a restart, each once
      serve = startDoorctl(['serve', '--http-port', String(port), '--udp-port', '0', '--mqtt-port', '0', '--bind', '127.0.0.1', '--json'], { home: home.path })
      await until(() => sim.acknowledgedRecords().length >= 1000, 60_000, 'all uploads')
      serve.child.kill('SIGTERM')
      expect(await serve.exited).toBe(0)
      await sim.stop()
      const after = new GatewayStore(home.path, { readonly: true })
      const all = after.records('busy', 0, 100_000)
      after.close()
      expect(all.length).toBe(1000)
      expect(new Set(all.map((r) => r.recordId)).size).toBe(1000)
      expect(existsSync(join(home.path, 'gateway.db'))).toBe(true)
    } finally {
      home.cleanup()
    }
  })
})

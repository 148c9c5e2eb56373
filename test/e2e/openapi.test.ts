import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'csv-parse/sync'
import { startOpenapiSimulator, type OpenapiSimulator } from '../../src/simulators/openapi/index.js'
import { BIN, FIXTURES, doorctl, tempDir } from '../helpers.js'

const face = readFileSync(join(FIXTURES, 'face.jpg'))
/** A JPEG the simulated device reports as having no face (its documented 30002). */
const noFace = Buffer.concat([face.subarray(0, 2), Buffer.from([0xff, 0xfe, 0x00, 0x08]), Buffer.from('NOFACE'), face.subarray(2)])

describe('openapi devices end to end (built binary, simulated device on 127.0.0.1)', () => {
  let sim: OpenapiSimulator
  let sim2: OpenapiSimulator
  const home = tempDir()
  const work = tempDir('doorctl-work-')
  const run = (args: string[], input?: string) => doorctl(args, { home: home.path, input })

  beforeAll(async () => {
    sim = await startOpenapiSimulator({ port: 0, wsPort: 0, password: 's3cret', users: 25, records: 2500 })
    sim2 = await startOpenapiSimulator({ port: 0, wsPort: 0 })
    writeFileSync(join(work.path, 'face.jpg'), face)
    writeFileSync(join(work.path, 'noface.jpg'), noFace)
    writeFileSync(join(work.path, 'notjpeg.jpg'), 'hello')
    let r = await run(['device', 'add', 'door-1', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(sim.httpPort), '--ws-port', String(sim.wsPort), '--password-stdin', '--tag', 'hq', '--json'], 's3cret\n')
    expect(r.code, r.stderr).toBe(0)
    r = await run(['device', 'add', 'door-2', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(sim2.httpPort), '--ws-port', String(sim2.wsPort), '--tag', 'hq', '--tag', 'lobby'])
    expect(r.code, r.stderr).toBe(0)
  })
  afterAll(async () => {
    await sim?.close()
    await sim2?.close()
    home.cleanup()
    work.cleanup()
  })

  describe('inventory', () => {
    it('stores secrets with mode 0600 and never prints them', async () => {
      const files = readdirSync(home.path).filter((f) => f.startsWith('inventory'))
      expect(files.length).toBe(1)
      expect(statSync(join(home.path, files[0])).mode & 0o777).toBe(0o600)
      const show = await run(['device', 'show', 'door-1', '--json'])
      expect(show.code).toBe(0)
      expect(show.json().device.password).toBe('********')
      expect(show.stdout).not.toContain('s3cret')
      const human = await run(['device', 'show', 'door-1'])
      expect(human.stdout).not.toContain('s3cret')
      const list = await run(['device', 'list', '--json'])
      expect(list.stdout).not.toContain('s3cret')
      expect(list.json().devices.map((d: { name: string }) => d.name)).toEqual(['door-1', 'door-2'])
    })

    it('device import validates every row before saving any', async () => {
      const csv = join(work.path, 'devices.csv')
      writeFileSync(csv, 'name,protocol,host,port,password,sn,community,code,transport,tags\nd-a,openapi,127.0.0.1,8899,,,,,,x;y\nd-b,httpv2,,,,,,,,\nd-a,udp,,,,,5,,,\nbad name,foo,,,,,,,,\n')
      const r = await run(['device', 'import', csv, '--json'])
      expect(r.code).toBe(2)
      const problems = r.json().error.problems as { line: number; field: string }[]
      expect(problems).toEqual(expect.arrayContaining([
        expect.objectContaining({ line: 3, field: 'sn' }),
        expect.objectContaining({ line: 4, field: 'code' }),
        expect.objectContaining({ line: 4, field: 'name' }),
        expect.objectContaining({ line: 5, field: 'name' }),
        expect.objectContaining({ line: 5, field: 'protocol' }),
      ]))
      const list = await run(['device', 'list', '--json'])
      expect(list.json().devices).toHaveLength(2)

      writeFileSync(csv, '\uFEFFname,protocol,host,port,sn,community,code,tags\nd-a,openapi,127.0.0.1,8899,,,,x;y\nd-b,httpv2,,,FC-8200H12345678,,,\nd-c,udp,,,,7,3,\n')
      const ok = await run(['device', 'import', csv, '--json'])
      expect(ok.code, ok.stdout + ok.stderr).toBe(0)
      expect(ok.json().added).toEqual(['d-a', 'd-b', 'd-c'])
      const removed = await run(['device', 'remove', 'd-a', 'd-b', 'd-c', '--json'])
      expect(removed.code).toBe(0)
    })

    it('unknown device → exit 2 and nothing sent', async () => {
      const before = sim.requestCount
      const r = await run(['device', 'reboot', 'door-1', 'no-such-door', '--json'])
      expect(r.code).toBe(2)
      expect(r.json().error.message).toContain('no-such-door')
      expect(sim.requestCount).toBe(before)
      const human = await run(['device', 'open', 'nope'])
      expect(human.code).toBe(2)
      expect(human.stderr).toMatch(/unknown device: nope/)
      expect(human.stdout).toBe('')
    })

    it('bad flags are usage errors (exit 2)', async () => {
      expect((await run(['device', 'open', 'door-1', '--mode', 'sideways'])).code).toBe(2)
      expect((await run(['device', 'add', 'x', '--protocol', 'openapi', '--json'])).code).toBe(2)
      expect((await run(['device', 'open', '--json'])).code).toBe(2)
      expect((await run(['device', 'open', 'door-1', '--timeout', 'soon', '--json'])).code).toBe(2)
    })
  })

  describe('operations', () => {
    it('open, reboot and sync-time, with the results shape of CLI.md', async () => {
      for (const verb of ['open', 'reboot', 'sync-time']) {
        const r = await run(['device', verb, '--tag', 'hq', '--json'])
        expect(r.code, r.stdout + r.stderr).toBe(0)
        const doc = r.json()
        expect(doc.ok).toBe(true)
        expect(doc.results).toHaveLength(2)
        for (const res of doc.results) {
          expect(res).toMatchObject({ protocol: 'openapi', ok: true, status: 'ok' })
          expect(typeof res.device).toBe('string')
          expect(typeof res.message).toBe('string')
        }
      }
    })

    it('sync-time sets the device clock', async () => {
      const skewed = await startOpenapiSimulator({ port: 0, wsPort: 0, clockSkewSeconds: 120 })
      try {
        await run(['device', 'add', 'skewed', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(skewed.httpPort)])
        expect(Math.abs(skewed.now() - Date.now())).toBeGreaterThan(100_000)
        const r = await run(['device', 'sync-time', 'skewed', '--json'])
        expect(r.code, r.stdout).toBe(0)
        expect(Math.abs(skewed.now() - Date.now())).toBeLessThan(5_000)
      } finally {
        await skewed.close()
        await run(['device', 'remove', 'skewed'])
      }
    })

    it('a device whose clock is 10 minutes off: 10003 and what to do', async () => {
      const late = await startOpenapiSimulator({ port: 0, wsPort: 0, clockSkewSeconds: 600 })
      try {
        await run(['device', 'add', 'late', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(late.httpPort)])
        const r = await run(['device', 'open', 'late', '--json'])
        expect(r.code).toBe(1)
        const res = r.json().results[0]
        expect(res.message).toContain('10003')
        expect(res.message + res.suggestion).toMatch(/clock/i)
      } finally {
        await late.close()
        await run(['device', 'remove', 'late'])
      }
    })

    it('a wrong password → exit 1 with 10005 in the message; the other device carries on', async () => {
      await run(['device', 'add', 'wrong-pw', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(sim.httpPort), '--password', 'nope'])
      try {
        const r = await run(['device', 'open', 'wrong-pw', 'door-2', '--json'])
        expect(r.code).toBe(1)
        const [bad, good] = r.json().results
        expect(bad).toMatchObject({ device: 'wrong-pw', ok: false, status: 'failed' })
        expect(bad.message).toContain('10005')
        expect(good).toMatchObject({ device: 'door-2', ok: true })
        const human = await run(['device', 'open', 'wrong-pw'])
        expect(human.code).toBe(1)
        expect(human.stdout).toContain('10005')
      } finally {
        await run(['device', 'remove', 'wrong-pw'])
      }
    })

    it('modes openapi lacks are unsupported for that device, others carry on', async () => {
      await run(['device', 'add', 'push-1', '--protocol', 'wsjson', '--sn', 'WS-0001'])
      try {
        const r = await run(['device', 'open', 'door-1', '--mode', 'keep-open', '--json'])
        expect(r.code).toBe(1)
        expect(r.json().results[0].status).toBe('unsupported')
        const mixed = await run(['device', 'reboot', 'door-2', 'push-1', '--json'])
        expect(mixed.code).toBe(1)
        const byName = Object.fromEntries(mixed.json().results.map((x: { device: string }) => [x.device, x]))
        expect(byName['door-2'].status).toBe('ok')
        expect(byName['push-1'].status).toBe('unsupported')
      } finally {
        await run(['device', 'remove', 'push-1'])
      }
    })

    it('device info and config get/set', async () => {
      const info = await run(['device', 'info', 'door-1', '--json'])
      expect(info.code, info.stdout).toBe(0)
      const i = info.json().results[0].info
      expect(i.device.deviceID).toBeDefined()
      expect(i.network).toBeDefined()
      expect(i.smartface).toBeDefined()
      expect(i.perpara).toBeDefined()

      const set = await run(['device', 'config', 'set', 'smartface', 'faceThre=7', 'door-1', '--json'])
      expect(set.code, set.stdout).toBe(0)
      const get = await run(['device', 'config', 'get', 'smartface', 'door-1', '--json'])
      expect(get.json().results[0].config.faceThre).toBe(7)

      const badKey = await run(['device', 'config', 'set', 'smartface', 'noSuchKey=1', 'door-1', '--json'])
      expect(badKey.code).not.toBe(0)
      const badSection = await run(['device', 'config', 'get', 'nosuch', 'door-1', '--json'])
      expect(badSection.code).toBe(2)
    })
  })

  describe('people', () => {
    it('25 users → people list returns all 25 (paged 10 at a time)', async () => {
      const r = await run(['people', 'list', 'door-1', '--json'])
      expect(r.code, r.stdout).toBe(0)
      const people = r.json().results[0].people
      expect(people).toHaveLength(25)
      expect(new Set(people.map((p: { id: string }) => p.id)).size).toBe(25)
      expect(Object.keys(people[0]).filter((k) => k !== 'extras').sort()).toEqual(['card', 'department', 'has_photo', 'id', 'name', 'phone', 'role', 'valid_from', 'valid_to'].sort())
      expect(typeof people[0].extras.user_type).toBe('string')
      const csv = await run(['people', 'list', 'door-1', '--format', 'csv'])
      expect(parse(csv.stdout, { columns: true })).toHaveLength(25)
    })

    it('a CSV with a duplicate id and a missing photo → exit 2, zero requests, both errors with line numbers', async () => {
      const csv = join(work.path, 'bad-people.csv')
      writeFileSync(csv, 'id,name,photo\np1,Ann,face.jpg\np2,Bob,missing.jpg\np1,Ann again,\np3,Cy,notjpeg.jpg\n,NoId,\n')
      const before = sim.requestCount + sim2.requestCount
      const r = await run(['people', 'import', csv, 'door-1', 'door-2', '--json'])
      expect(r.code).toBe(2)
      const problems = r.json().error.problems
      expect(problems).toEqual(expect.arrayContaining([
        expect.objectContaining({ line: 3, field: 'photo', message: expect.stringMatching(/missing.jpg: no such file/) }),
        expect.objectContaining({ line: 4, field: 'id', message: expect.stringMatching(/duplicate id "p1" \(first on line 2\)/) }),
        expect.objectContaining({ line: 5, field: 'photo', message: expect.stringMatching(/not a JPEG/) }),
        expect.objectContaining({ line: 6, field: 'id' }),
      ]))
      expect(sim.requestCount + sim2.requestCount).toBe(before)
      const human = await run(['people', 'import', csv, 'door-1'])
      expect(human.code).toBe(2)
      expect(human.stderr).toMatch(/line 3, column "photo"/)
    })

    it('import with BOM, Chinese names and photos; per-person report; re-import updates instead of duplicating', async () => {
      const csv = join(work.path, 'people.csv')
      writeFileSync(csv, '\uFEFFid,name,card,phone,department,role,photo\nn1,张伟,1001,13800000001,研发部,user,face.jpg\nn2,María,1002,,Sales,blacklist,\nn3,No Face,,,,,noface.jpg\n')
      const dry = await run(['people', 'import', csv, 'door-2', '--dry-run', '--json'])
      expect(dry.code).toBe(0)
      expect(dry.json().results[0].status).toBe('skipped')
      expect(sim2.users().size).toBe(0)

      const report = join(work.path, 'report.csv')
      const r = await run(['people', 'import', csv, 'door-2', '--report', report, '--json'])
      expect(r.code).toBe(1)
      const res = r.json().results[0]
      expect(res.status).toBe('failed')
      expect(res.problems).toEqual([expect.objectContaining({ id: 'n3', status: 'failed', message: expect.stringMatching(/30002|face/i) })])
      const rows = parse(readFileSync(report), { columns: true }) as Record<string, string>[]
      expect(rows.map((x) => [x.device, x.id, x.status])).toEqual(expect.arrayContaining([['door-2', 'n1', 'ok'], ['door-2', 'n2', 'ok'], ['door-2', 'n3', 'failed']]))
      expect(Object.keys(rows[0])).toEqual(['device', 'id', 'name', 'status', 'message'])
      expect(sim2.users().get('n1')?.name).toBe('张伟')
      expect(sim2.users().get('n2')?.userType).toBe(3)

      const again = await run(['people', 'import', csv, 'door-2', '--report', report, '--json'])
      expect(again.json().results[0].actions.updated).toBe(2)
      expect(sim2.users().size).toBe(2)
      const list = await run(['people', 'list', 'door-2', '--json'])
      const n1 = list.json().results[0].people.find((p: { id: string }) => p.id === 'n1')
      expect(n1).toMatchObject({ name: '张伟', card: '1001', has_photo: true })
    })

    it('face enroll --photo, --dir, and --capture (unsupported on openapi)', async () => {
      const r = await run(['face', 'enroll', 'door-2', '--id', 'n2', '--photo', join(work.path, 'face.jpg'), '--json'])
      expect(r.code, r.stdout).toBe(0)
      expect(sim2.users().get('n2')?.photo).toBeTruthy()
      const missing = await run(['face', 'enroll', 'door-2', '--id', 'nobody', '--photo', join(work.path, 'face.jpg'), '--json'])
      expect(missing.code).toBe(1)
      const cap = await run(['face', 'enroll', 'door-2', '--id', 'n2', '--capture', '--json'])
      expect(cap.code).toBe(1)
      expect(cap.json().results[0].status).toBe('unsupported')
    })

    it('people delete by id, and --everyone needs --yes without a TTY', async () => {
      const r = await run(['people', 'delete', 'door-2', '--id', 'n1', '--json'])
      expect(r.code, r.stdout).toBe(0)
      expect(sim2.users().has('n1')).toBe(false)
      const noYes = await run(['people', 'delete', 'door-2', '--everyone', '--json'])
      expect(noYes.code).toBe(2)
      expect(noYes.json().error.suggestion).toContain('--yes')
      expect(sim2.users().size).toBe(1)
      const all = await run(['people', 'delete', 'door-2', '--everyone', '--yes', '--json'])
      expect(all.code, all.stdout).toBe(0)
      expect(sim2.users().size).toBe(0)
    })
  })

  describe('records', () => {
    it('2,500 records → records pull returns each once', async () => {
      const out = join(work.path, 'all.csv')
      const r = await run(['records', 'pull', 'door-1', '--output', out, '--json'])
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expect(r.json().total).toBe(2500)
      const rows = parse(readFileSync(out), { columns: true }) as Record<string, string>[]
      expect(rows).toHaveLength(2500)
      expect(new Set(rows.map((x) => x.record_id)).size).toBe(2500)
      expect(Object.keys(rows[0]).slice(0, 9)).toEqual(['device', 'record_id', 'time', 'user_id', 'name', 'type', 'result', 'direction', 'method'])
      expect(rows[0].time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/)
      // oldest first
      expect(Date.parse(rows[0].time)).toBeLessThanOrEqual(Date.parse(rows[2499].time))
    })

    it('--since last twice with 3 new records in between → the second returns exactly those 3', async () => {
      const first = await run(['records', 'pull', 'door-1', '--since', 'last', '--format', 'ndjson', '--output', join(work.path, 'r1.ndjson')])
      expect(first.code, first.stderr).toBe(0)
      const ids1 = readFileSync(join(work.path, 'r1.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).record_id)
      expect(ids1).toHaveLength(2500)
      const added = [sim.addRecord(), sim.addRecord(), sim.addRecord()].map((r) => String(r.id))
      const second = await run(['records', 'pull', 'door-1', '--since', 'last', '--format', 'ndjson', '--output', join(work.path, 'r2.ndjson')])
      expect(second.code).toBe(0)
      const ids2 = readFileSync(join(work.path, 'r2.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).record_id)
      expect(ids2).toEqual(added)
      const third = await run(['records', 'pull', 'door-1', '--since', 'last', '--json', '--format', 'json'])
      expect(third.code).toBe(0)
      expect(third.json().records).toEqual([])
    })

    it('--photos writes capture images as files; --json embeds records in one document', async () => {
      const photos = join(work.path, 'photos')
      const r = await run(['records', 'pull', 'door-1', '--format', 'json', '--photos', photos, '--json'])
      expect(r.code).toBe(0)
      const doc = r.json()
      expect(doc.records.length).toBeGreaterThan(2500)
      const withPhoto = doc.records.filter((x: { photo: string }) => x.photo !== '')
      expect(withPhoto.length).toBeGreaterThan(0)
      expect(existsSync(withPhoto[0].photo)).toBe(true)
      expect(readFileSync(withPhoto[0].photo).subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]))
    })

    it('a pull killed with SIGKILL in the middle, then rerun with --since last → nothing lost, nothing twice', async () => {
      const slow = await startOpenapiSimulator({ port: 0, wsPort: 0, records: 12_000, latencyMs: 40 })
      const h = tempDir()
      try {
        const r0 = await doorctl(['device', 'add', 'slow', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(slow.httpPort)], { home: h.path })
        expect(r0.code).toBe(0)
        const out = join(work.path, 'killed.csv')
        const child = spawn(process.execPath, [BIN, 'records', 'pull', 'slow', '--since', 'last', '--output', out], { env: { ...process.env, DOORCTL_HOME: h.path }, stdio: 'ignore' })
        const start = slow.requestCount
        // kill once a few pages have been fetched (i.e. mid-pull), whatever the machine's speed
        while (slow.requestCount < start + 4) await new Promise((r) => setTimeout(r, 5))
        child.kill('SIGKILL')
        await new Promise((r) => child.on('close', r))
        expect(existsSync(out)).toBe(false)
        slow.addRecord()
        const rerun = await doorctl(['records', 'pull', 'slow', '--since', 'last', '--output', out, '--json'], { home: h.path })
        expect(rerun.code, rerun.stdout + rerun.stderr).toBe(0)
        const ids = (parse(readFileSync(out), { columns: true }) as { record_id: string }[]).map((x) => x.record_id)
        expect(ids).toHaveLength(12_001)
        expect(new Set(ids).size).toBe(12_001)
        const again = await doorctl(['records', 'pull', 'slow', '--since', 'last', '--output', join(work.path, 'after.csv'), '--json'], { home: h.path })
        expect(again.json().total).toBe(0)
        expect(readdirSync(work.path).filter((f) => f.includes('.tmp-'))).toEqual([])
      } finally {
        await slow.close()
        h.cleanup()
      }
    })

    it('records watch prints live records as NDJSON and exits 130 on Ctrl-C', async () => {
      const child = spawn(process.execPath, [BIN, 'records', 'watch', 'door-1'], { env: { ...process.env, DOORCTL_HOME: home.path }, stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      child.stdout.setEncoding('utf8').on('data', (d) => (out += d))
      // keep adding records until the watcher has connected and printed one
      let added: Record<string, unknown> | undefined
      while (!out.includes('\n')) {
        added = sim.addRecord({ name: 'Live Person' })
        await new Promise((r) => setTimeout(r, 50))
      }
      const line = JSON.parse(out.split('\n')[0])
      expect(line.device).toBe('door-1')
      expect(line.name).toBe('Live Person')
      expect(added).toBeDefined()
      child.kill('SIGINT')
      const code = await new Promise((r) => child.on('close', (c) => r(c)))
      expect(code).toBe(130)
    })
  })
})

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'csv-parse/sync'
import { startOpenapiSimulator, type OpenapiSimulator } from '../../src/simulators/openapi/index.js'
import { createHttpv2Simulator, type Httpv2Simulator } from '../../src/simulators/httpv2/index.js'
import { doorctl, freePort, tempDir } from '../helpers.js'

const CFG = /cfg$/

describe('provisioning openapi doors from a settings file (built binary, simulated devices on 127.0.0.1)', () => {
  const home = tempDir()
  const work = tempDir('doorctl-provision-')
  const sims: Record<string, OpenapiSimulator> = {}
  const run = (args: string[]) => doorctl(args, { home: home.path })
  const marks: Record<string, number> = {}
  const allWrites = (name: string) => sims[name]!.deviceRequests.filter((r) => CFG.test(r.path))
  /** Settings writes (the *cfg endpoints) each device received since mark(). */
  const mark = () => { for (const name of Object.keys(sims)) marks[name] = allWrites(name).length }
  const writes = (name: string) => allWrites(name).slice(marks[name] ?? 0)
  const requests = () => Object.values(sims).reduce((n, s) => n + s.requestCount, 0)
  const file = (name: string, text: string) => {
    const path = join(work.path, name)
    writeFileSync(path, text)
    return path
  }

  beforeAll(async () => {
    for (const name of ['golden', 'door-2', 'door-3']) {
      sims[name] = await startOpenapiSimulator({ port: 0, wsPort: 0 })
      const r = await run(['device', 'add', name, '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(sims[name]!.httpPort), '--tag', 'site'])
      expect(r.code, r.stderr).toBe(0)
    }
    // the golden door, tuned by hand; door-3 already shares one of its settings
    for (const [section, kv] of [['smartface', 'faceThre=8'], ['perpara', 'unlockOuttime=12'], ['smartface', 'tempWarnThre=37.5']]) {
      expect((await run(['device', 'config', 'set', section!, kv!, 'golden', '--json'])).code).toBe(0)
    }
    expect((await run(['device', 'config', 'set', 'perpara', 'unlockOuttime=12', 'door-3', '--json'])).code).toBe(0)
  })
  afterAll(async () => {
    await Promise.all(Object.values(sims).map((s) => s.close()))
    home.cleanup()
    work.cleanup()
  })

  it('config get --format csv writes the golden door as device,section,key,value rows', async () => {
    const r = await run(['device', 'config', 'get', 'golden', '--format', 'csv'])
    expect(r.code, r.stderr).toBe(0)
    const rows = parse(r.stdout, { columns: true }) as Record<string, string>[]
    expect(Object.keys(rows[0]!)).toEqual(['device', 'section', 'key', 'value'])
    expect(new Set(rows.map((x) => x.section))).toEqual(new Set(['network', 'smartface', 'perpara']))
    expect(rows.find((x) => x.key === 'faceThre')).toEqual({ device: 'golden', section: 'smartface', key: 'faceThre', value: '8' })
    expect(rows.find((x) => x.key === 'tempWarnThre')?.value).toBe('37.5')
    // one section, and the old argument order (`config get SECTION DEVICE`) still works
    const one = await run(['device', 'config', 'get', 'smartface', 'golden', '--json'])
    expect(one.json().results[0]).toMatchObject({ section: 'smartface', config: { faceThre: 8 } })
    const all = await run(['device', 'config', 'get', 'golden', '--json'])
    expect(Object.keys(all.json().results[0].sections)).toEqual(['network', 'smartface', 'perpara'])
    writeFileSync(join(work.path, 'golden.csv'), r.stdout)
  })

  it('the exported file for every door: the door\'s own address is refused on a tag row, nothing sent (exit 2)', async () => {
    const site = readFileSync(join(work.path, 'golden.csv'), 'utf8').replace(/^golden,/gm, 'tag:site,')
    const before = requests()
    const r = await run(['device', 'config', 'plan', file('site-ip.csv', site), '--json'])
    expect(r.code).toBe(2)
    const problems = r.json().error.problems
    expect(problems).toEqual([expect.objectContaining({ line: 3, field: 'device', message: expect.stringMatching(/ipAddress is each door's own/) })])
    expect(requests()).toBe(before)
    // without that row the template is good
    file('site.csv', site.split('\n').filter((l) => !l.includes(',ipAddress,')).join('\n'))
  })

  it('plan --json: per door the keys that would change, and the doors already in line; nothing written', async () => {
    mark()
    const r = await run(['device', 'config', 'plan', join(work.path, 'site.csv'), '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const doc = r.json()
    expect(doc).toMatchObject({ ok: true, to_change: ['door-2', 'door-3'], in_line: ['golden'] })
    const byDevice = Object.fromEntries(doc.results.map((x: { device: string }) => [x.device, x]))
    expect(byDevice['door-2']).toMatchObject({ protocol: 'openapi', ok: true, status: 'ok', in_line: false })
    expect(byDevice['door-2'].changes).toEqual([
      { section: 'smartface', key: 'faceThre', current: 5, desired: 8, known: true, line: expect.any(Number) },
      { section: 'smartface', key: 'tempWarnThre', current: 37.3, desired: 37.5, known: true, line: expect.any(Number) },
      { section: 'perpara', key: 'unlockOuttime', current: 5, desired: 12, known: true, line: expect.any(Number) },
    ])
    expect(byDevice['door-3'].changes.map((c: { key: string }) => c.key)).toEqual(['faceThre', 'tempWarnThre'])
    expect(byDevice.golden).toMatchObject({ in_line: true, changes: [] })
    for (const name of Object.keys(sims)) expect(writes(name)).toEqual([])
    const human = await run(['device', 'config', 'plan', join(work.path, 'site.csv')])
    expect(human.stdout).toContain('smartface.faceThre: 5 → 8')
    expect(human.stdout).toContain('already in line: golden')
  })

  it('apply without a terminal needs --yes: exit 2 naming it, nothing read or sent', async () => {
    const before = requests()
    const r = await run(['device', 'config', 'apply', join(work.path, 'site.csv')])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('--yes')
    expect(requests()).toBe(before)
  })

  it('apply --yes sends only the differing keys (one write per section), reads them back; a second apply sends nothing', async () => {
    const before = { network: { ...sims['door-2']!.device.network }, perpara3: { ...sims['door-3']!.device.perpara } }
    mark()
    const r = await run(['device', 'config', 'apply', join(work.path, 'site.csv'), '--yes', '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const byDevice = Object.fromEntries(r.json().results.map((x: { device: string }) => [x.device, x]))
    expect(byDevice['door-2']).toMatchObject({ status: 'ok', ok: true })
    expect(byDevice['door-2'].changed).toEqual([
      { section: 'smartface', key: 'faceThre', from: 5, to: 8 },
      { section: 'smartface', key: 'tempWarnThre', from: 37.3, to: 37.5 },
      { section: 'perpara', key: 'unlockOuttime', from: 5, to: 12 },
    ])
    expect(byDevice.golden).toMatchObject({ status: 'unchanged', ok: true })
    // the request logs: door-2 got smartface and perpara once each, door-3 smartface only, golden nothing
    expect(writes('door-2').map((w) => w.path)).toEqual(['/api/device/smartfacecfg', '/api/device/perparacfg'])
    expect(writes('door-3').map((w) => w.path)).toEqual(['/api/device/smartfacecfg'])
    expect(writes('golden')).toEqual([])
    // the *cfg object carries the whole section (8.1.15): only the differing keys differ from what the device had
    const sent = writes('door-2')[0]!.body as Record<string, unknown>
    expect(sent).toMatchObject({ faceThre: 8, tempWarnThre: 37.5, faceMinsize: 80, faceInterval: 6 })
    expect(sims['door-2']!.device.network).toEqual(before.network)
    expect(sims['door-3']!.device.perpara).toEqual(before.perpara3)
    expect(sims['door-2']!.device.smartface.faceThre).toBe(8)

    const again = await run(['device', 'config', 'apply', join(work.path, 'site.csv'), '--yes', '--json'])
    expect(again.code, again.stdout).toBe(0)
    expect(again.json().results.map((x: { status: string }) => x.status)).toEqual(['unchanged', 'unchanged', 'unchanged'])
    expect(writes('door-2')).toHaveLength(2)
    expect(writes('door-3')).toHaveLength(1)
  })

  it('a bad key, a wrong type and an out-of-range value: exit 2, every problem with its line, nothing sent', async () => {
    const bad = file('bad.csv', [
      'device,section,key,value',
      'door-2,smartface,faceThreshold,6',
      'door-2,perpara,unlockOuttime,soon',
      '*,smartface,faceThre,11',
      'tag:site,perpara,voiceProswitch,1',
    ].join('\n'))
    const before = requests()
    for (const verb of ['plan', 'apply']) {
      const r = await run(['device', 'config', verb, bad, '--yes', '--json'].filter((a) => verb === 'apply' || a !== '--yes'))
      expect(r.code).toBe(2)
      const problems = r.json().error.problems as { line: number; field: string; message: string }[]
      expect(problems.map((p) => [p.line, p.field])).toEqual([[2, 'key'], [3, 'value'], [4, 'value']])
      expect(problems[0]!.message).toMatch(/no smartface setting "faceThreshold"/)
      expect(problems[1]!.message).toMatch(/must be an integer, got "soon"/)
      expect(problems[2]!.message).toMatch(/between 0 and 10, got 11/)
    }
    const human = await run(['device', 'config', 'plan', bad])
    expect(human.stderr).toMatch(/bad\.csv, line 2, column "key"/)
    expect(requests()).toBe(before)
  })

  it('targets narrow a file; a device failing to answer is its own result (exit 1), the others go on', async () => {
    const only = await run(['device', 'config', 'plan', join(work.path, 'site.csv'), 'door-2', '--json'])
    expect(only.json().results.map((x: { device: string }) => x.device)).toEqual(['door-2'])
    const dead = await freePort()
    await run(['device', 'add', 'gone', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(dead), '--tag', 'site'])
    try {
      const r = await run(['device', 'config', 'apply', join(work.path, 'site.csv'), '--yes', '--json', '--timeout', '3s'])
      expect(r.code).toBe(1)
      const gone = r.json().results.find((x: { device: string }) => x.device === 'gone')
      expect(gone).toMatchObject({ ok: false, status: 'failed' })
      expect(gone.message).toMatch(/cannot reach/)
      expect(r.json().results.filter((x: { status: string }) => x.status === 'unchanged')).toHaveLength(3)
    } finally {
      await run(['device', 'remove', 'gone'])
    }
  })
})

describe('provisioning httpv2 doors through the gateway', () => {
  const home = tempDir()
  const work = tempDir('doorctl-provision-h2-')
  let sims: Httpv2Simulator[] = []
  let listen: string[] = []
  const run = (args: string[]) => doorctl([...args, ...listen], { home: home.path })

  beforeAll(async () => {
    const port = await freePort()
    listen = ['--http-port', String(port), '--udp-port', '0', '--mqtt-port', '0', '--bind', '127.0.0.1', '--timeout', '20s']
    for (const i of [1, 2]) {
      const sn = `FC-8200H0000010${i}`
      expect((await doorctl(['device', 'add', `h-${i}`, '--protocol', 'httpv2', '--sn', sn, '--tag', 'floor'], { home: home.path })).code).toBe(0)
      const sim = createHttpv2Simulator({ server: `http://127.0.0.1:${port}`, sn, intervalMs: 100, requestTimeoutMs: 500, retryDelayMs: 100 })
      sim.start()
      sims.push(sim)
    }
  })
  afterAll(async () => {
    await Promise.all(sims.map((s) => s.stop()))
    sims = []
    home.cleanup()
    work.cleanup()
  })

  it('reads every section in one report, applies every changed key in one DownloadWorkSetting, then nothing', async () => {
    const site = join(work.path, 'floor.csv')
    writeFileSync(site, [
      'device,section,key,value',
      'tag:floor,system,Volume,8',
      'tag:floor,face,FaceThreshold,70',
      'tag:floor,access,TimeGroups,"[{""Num"":1,""Week1"":""08:00-18:00""}]"',
      'h-2,system,Volume,3',
      'tag:floor,system,MenuPassword,4321',
    ].join('\n'))
    const plan = await run(['device', 'config', 'plan', site, '--json'])
    expect(plan.code, plan.stdout + plan.stderr).toBe(0)
    const h1 = plan.json().results.find((x: { device: string }) => x.device === 'h-1')
    expect(h1.changes).toEqual(expect.arrayContaining([
      expect.objectContaining({ section: 'system', key: 'Volume', current: 6, desired: 8, known: true }),
      expect.objectContaining({ section: 'face', key: 'FaceThreshold', current: 58, desired: 70 }),
      // a password is never read back from the device nor shown
      expect.objectContaining({ section: 'system', key: 'MenuPassword', current: null, desired: '********', known: false }),
    ]))
    expect(plan.stdout).not.toContain('4321')
    const downloads = sims.map((s) => s.events.workSettingDownloads)

    const apply = await run(['device', 'config', 'apply', site, '--yes', '--json'])
    expect(apply.code, apply.stdout + apply.stderr).toBe(0)
    expect(apply.stdout).not.toContain('4321')
    expect(apply.json().results.map((x: { status: string }) => x.status)).toEqual(['ok', 'ok'])
    expect(apply.json().results[0].not_read_back).toEqual(['system.MenuPassword'])
    expect(sims.map((s, i) => s.events.workSettingDownloads - downloads[i]!)).toEqual([1, 1])
    expect(sims[0]!.parameters()).toMatchObject({ Volume: 8, FaceThreshold: 70, MenuPassword: '4321', TimeGroups: [{ Num: 1, Week1: '08:00-18:00' }] })
    expect(sims[1]!.parameters()).toMatchObject({ Volume: 3, FaceThreshold: 70 })

    // the password cannot be read, so it is sent again; everything else is in line
    writeFileSync(site, readFileSync(site, 'utf8').split('\n').filter((l) => !l.includes('MenuPassword')).join('\n'))
    const again = await run(['device', 'config', 'apply', site, '--yes', '--json'])
    expect(again.code, again.stdout + again.stderr).toBe(0)
    expect(again.json().results.map((x: { status: string }) => x.status)).toEqual(['unchanged', 'unchanged'])
    expect(sims.map((s, i) => s.events.workSettingDownloads - downloads[i]!)).toEqual([1, 1])
  })

  it('a setting the device does not take is failed, saying what it kept', async () => {
    const site = join(work.path, 'server.csv')
    // the simulator keeps the server it was started with (it refuses HTTPClient_ServerAddr)
    writeFileSync(site, 'device,section,key,value\nh-1,server,HTTPClient_ServerAddr,http://127.0.0.2:9\n')
    const r = await run(['device', 'config', 'apply', site, '--yes', '--json'])
    expect(r.code).toBe(1)
    expect(r.json().results[0]).toMatchObject({ device: 'h-1', status: 'failed', refused: ['server.HTTPClient_ServerAddr'] })
    expect(r.json().results[0].message).toMatch(/did not take/)
  })

  it('config get --format csv through the gateway: every section, secrets left out', async () => {
    const r = await run(['device', 'config', 'get', 'h-1', '--format', 'csv'])
    expect(r.code, r.stderr).toBe(0)
    const rows = parse(r.stdout, { columns: true }) as Record<string, string>[]
    expect(rows.find((x) => x.key === 'Volume')).toEqual({ device: 'h-1', section: 'system', key: 'Volume', value: '8' })
    expect(rows.some((x) => x.key === 'MenuPassword' || x.key === 'SystemTime')).toBe(false)
    expect(r.stderr).toMatch(/secret settings are not exported/)
  })
})

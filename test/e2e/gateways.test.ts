/**
 * Several gateways on one PostgreSQL store (issue 11): two `serve` processes (the built binary)
 * share a throw-away cluster; simulated httpv2, udp and wsjson devices on 127.0.0.1 are split
 * between them (some through a switchable forwarder standing in for a load balancer); commands
 * come from a third DOORCTL_HOME that runs no gateway.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createHttpv2Simulator, type Httpv2Simulator } from '../../src/simulators/httpv2/index.js'
import { createUdpSimulator, type UdpSimulator } from '../../src/simulators/udp/index.js'
import { createWsjsonSimulator, type WsjsonSimulator } from '../../src/simulators/wsjson/index.js'
import { doorctl, freePort, freeUdpPort, startDoorctl, tempDir, until } from '../helpers.js'
import { startForwarder } from '../lb.js'
import { openStore } from '../../src/store/open.js'
import { pgMissing, startPostgres, type TestPostgres } from '../pg.js'

const missing = pgMissing()

interface Gw { home: ReturnType<typeof tempDir>; http: number; udp: number; proc?: ReturnType<typeof startDoorctl> }

describe.skipIf(missing)(`two gateways on one PostgreSQL${missing ? ` (cannot run: ${missing})` : ''}`, () => {
  let pg: TestPostgres
  let url: string
  const cli = tempDir('doorctl-gw-cli-')
  const gws: Gw[] = []
  const lb: Awaited<ReturnType<typeof startForwarder>>[] = []
  const h: Httpv2Simulator[] = []
  const u: UdpSimulator[] = []
  const w: WsjsonSimulator[] = []

  const run = (args: string[], env: Record<string, string> = {}) => doorctl([...args, '--store', url], { home: cli.path, env })
  async function startServe(g: Gw) {
    g.proc = startDoorctl(['serve', '--http-port', String(g.http), '--udp-port', String(g.udp), '--mqtt-port', '0', '--bind', '127.0.0.1', '--lease', '2s', '--store', url, '--json'], { home: g.home.path })
    await until(() => g.proc!.out.stdout.includes('"ok":true'), 30_000, `serve on ${g.http}: ${g.proc!.out.stderr}`)
  }

  beforeAll(async () => {
    pg = await startPostgres()
    url = pg.url('gw')
    for (let i = 0; i < 2; i++) gws.push({ home: tempDir(`doorctl-gw${i}-`), http: await freePort(), udp: await freeUdpPort() })
    const devices = [
      ['h1', 'httpv2', '--sn', 'GW-H1', '--tag', 'reboots'], ['h2', 'httpv2', '--sn', 'GW-H2', '--tag', 'reboots'],
      ['u1', 'udp', '--community', '9', '--code', '101', '--tag', 'reboots'], ['u2', 'udp', '--community', '9', '--code', '102', '--tag', 'reboots'],
      ['w1', 'wsjson', '--sn', 'GW-W1', '--tag', 'ws'], ['w2', 'wsjson', '--sn', 'GW-W2', '--tag', 'ws'],
    ]
    for (const [name, protocol, ...rest] of devices) {
      const r = await run(['device', 'add', name, '--protocol', protocol, ...rest])
      expect(r.code, r.stderr).toBe(0)
    }
    await Promise.all(gws.map(startServe))
    // h1 and w1 reach gateway 0 through a forwarder (the load balancer), the others call their gateway directly
    lb.push(await startForwarder(gws[0].http), await startForwarder(gws[0].http))
    const httpv2 = (sn: string, port: number) => createHttpv2Simulator({ server: `http://127.0.0.1:${port}`, sn, intervalMs: 150, requestTimeoutMs: 1000, retryDelayMs: 100 })
    h.push(httpv2('GW-H1', lb[0].port), httpv2('GW-H2', gws[1].http))
    for (const s of h) s.start()
    for (const [i, code] of ['101', '102'].entries()) {
      const g = gws[i]
      const sim = createUdpSimulator({ server: '127.0.0.1', udpPort: g.udp, httpUrl: `http://127.0.0.1:${g.http}`, communityId: '9', deviceCode: code, intervalMs: 200, requestTimeoutMs: 2000 })
      await sim.start()
      u.push(sim)
    }
    w.push(createWsjsonSimulator({ url: `ws://127.0.0.1:${lb[1].port}/wsjson`, sn: 'GW-W1', heartbeatMs: 300, reconnectMs: 100 }))
    w.push(createWsjsonSimulator({ url: `ws://127.0.0.1:${gws[1].http}/wsjson`, sn: 'GW-W2', heartbeatMs: 300, reconnectMs: 100 }))
    for (const s of w) void s.start()
  }, 120_000)

  afterAll(async () => {
    await Promise.all([...h.map((s) => s.stop()), ...u.map((s) => s.stop()), ...w.map((s) => s.stop())])
    for (const g of gws) {
      g.proc?.child.kill('SIGTERM')
      await g.proc?.exited
      g.home.cleanup()
    }
    await Promise.all(lb.map((l) => l.close()))
    pg?.destroy()
    cli.cleanup()
  }, 60_000)

  it('every gateway registered; device list sees every device online from a home with no gateway', async () => {
    await until(async () => {
      const list = await run(['device', 'list', '--json'])
      return list.code === 0 && list.json().devices.every((d: { online: boolean }) => d.online)
    }, 30_000, 'every device online')
  }, 60_000)

  it('status from any machine: `doorctl status --store` lists both gateways, and each admin listener shows the whole site', async () => {
    type Doc = { ok: boolean; store: string; gateways: { id: string; pid: number; devices: { online: number; total: number }; devices_here: number; problems: string[] }[] }
    let doc: Doc | undefined
    await until(async () => {
      const r = await run(['status', '--json'])
      doc = r.code === 0 ? r.json() as Doc : undefined
      return doc !== undefined && doc.gateways.length === 2 && doc.gateways.every((g) => g.devices.online === 6 && g.problems.length === 0) &&
        doc.gateways.reduce((n, g) => n + g.devices_here, 0) === 6
    }, 30_000, 'both gateways reporting all 6 devices online, each calling one of them')
    expect(doc!.store).toMatch(/^postgres:\/\/.*127\.0\.0\.1/)
    expect(doc!.gateways.map((g) => g.pid).sort()).toEqual(gws.map((g) => g.proc!.child.pid).sort())
    // h1, w1 and u1 call gateway 0; h2, w2 and u2 gateway 1
    expect(doc!.gateways.map((g) => g.devices_here)).toEqual([3, 3])
    const human = await run(['status'])
    expect(human.code).toBe(0)
    expect(human.stdout).toContain('2 gateways')
    expect(human.stdout).toMatch(/devices 6 online \(3 calling this gateway\)/)

    const admin = (g: Gw) => (JSON.parse(g.proc!.out.stdout.split('\n')[0]) as { admin_port: number }).admin_port
    const get = async (g: Gw, path: string) => {
      const res = await fetch(`http://127.0.0.1:${admin(g)}${path}`)
      return { status: res.status, text: await res.text() }
    }
    const api = JSON.parse((await get(gws[0], '/api/status')).text) as Doc
    expect(api.store).toBe(doc!.store)
    expect(api.gateways.map((g) => g.id).sort()).toEqual(doc!.gateways.map((g) => g.id).sort())
    const view = JSON.parse((await get(gws[1], '/api/view')).text) as { devices: { name: string; online: boolean }[]; store: string; other_gateways: { pid: number }[] }
    expect(view.devices.map((d) => [d.name, d.online])).toEqual(['h1', 'h2', 'u1', 'u2', 'w1', 'w2'].map((n) => [n, true]))
    expect(view.store).toBe(doc!.store)
    expect(view.other_gateways.map((g) => g.pid)).toEqual([gws[0].proc!.child.pid])
    const metrics = (await get(gws[0], '/metrics')).text
    for (const protocol of ['httpv2', 'udp', 'wsjson']) expect(metrics).toContain(`doorctl_devices{protocol="${protocol}",state="online"} 2`)
    expect((await get(gws[1], '/healthz')).status).toBe(200)
  }, 60_000)

  it('reboot --tag from a third process: every device once, whichever gateway it calls', async () => {
    const r = await run(['device', 'reboot', '--tag', 'reboots', '--json', '--timeout', '30s'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json().results.map((x: { device: string; ok: boolean }) => [x.device, x.ok])).toEqual([['h1', true], ['h2', true], ['u1', true], ['u2', true]])
    expect(h.map((s) => s.events.reboots)).toEqual([1, 1])
    expect(u.map((s) => s.events.reboots)).toEqual([1, 1])
    // wsjson devices hold a socket on one gateway: a people import reaches them through it
    const csv = join(cli.path, 'people.csv')
    writeFileSync(csv, 'id,name\n501,Ana\n')
    const imp = await run(['people', 'import', csv, '--tag', 'ws', '--json', '--timeout', '30s'])
    expect(imp.code, imp.stdout + imp.stderr).toBe(0)
    expect(w.map((s) => s.users().has('501'))).toEqual([true, true])
  }, 90_000)

  it('records re-sent through both gateways are exported once by records pull --since last', async () => {
    // a second device with h2's serial number sends the same record ids through gateway 0
    const ids = [h[1].addRecord(), h[1].addRecord(), h[1].addRecord()]
    await until(() => ids.every((id) => h[1].acknowledgedRecords().includes(id)), 20_000, 'records acknowledged by gateway 1')
    const twin = createHttpv2Simulator({ server: `http://127.0.0.1:${gws[0].http}`, sn: 'GW-H2', intervalMs: 150, requestTimeoutMs: 1000, retryDelayMs: 100 })
    const again = [twin.addRecord(), twin.addRecord(), twin.addRecord()]
    expect(again).toEqual(ids)
    twin.start()
    await until(() => again.every((id) => twin.acknowledgedRecords().includes(id)), 20_000, 'the same records acknowledged by gateway 0')
    await twin.stop()
    const out = join(cli.path, 'records.ndjson')
    const pull = await run(['records', 'pull', 'h2', '--since', 'last', '--output', out, '--json'])
    expect(pull.code, pull.stdout + pull.stderr).toBe(0)
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { record_id: string })
    // (the reboot above left a system record too)
    expect(rows.map((r) => r.record_id).filter((id) => !id.startsWith('system-')).sort()).toEqual([...ids].sort())
    // another machine continues the same cursor: nothing new
    const other = tempDir()
    try {
      const next = await doorctl(['records', 'pull', 'h2', '--since', 'last', '--format', 'ndjson', '--store', url], { home: other.path })
      expect(next.code, next.stderr).toBe(0)
      expect(next.stdout.trim()).toBe('')
    } finally {
      other.cleanup()
    }
  }, 90_000)

  it('records watch from a home with no gateway sees records taken by either gateway', async () => {
    const watch = startDoorctl(['records', 'watch', 'h1', 'h2', '--store', url], { home: cli.path })
    try {
      // devices keep uploading until the watch (started at the store's latest record) shows one of each
      let last = 0
      await until(() => {
        if (Date.now() - last > 500) {
          last = Date.now()
          h[0].addRecord()
          h[1].addRecord()
        }
        return watch.out.stdout.includes('"device":"h1"') && watch.out.stdout.includes('"device":"h2"')
      }, 30_000, `records of both gateways in the watch: ${watch.out.stderr}`)
    } finally {
      watch.child.kill('SIGINT')
      await watch.exited
    }
  }, 60_000)

  it('the store stopped for a while: devices get errors (no record acknowledged unstored), then everything recovers by itself', async () => {
    pg.stop()
    const id = h[1].addRecord()
    // the gateways answer with errors while they cannot store it: never acknowledged meanwhile
    await until(() => gws[1].proc!.out.stderr.includes('store write failed'), 20_000, 'a failed store write in the log')
    expect(h[1].acknowledgedRecords()).not.toContain(id)
    // the admin listener's health check says so
    const port = (JSON.parse(gws[1].proc!.out.stdout.split('\n')[0]) as { admin_port: number }).admin_port
    await until(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 503, 20_000, '/healthz 503 while the store is down')
    const health = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json() as { reason: string }
    expect(health.reason).toMatch(/cannot read the store postgres:/)
    pg.start()
    await until(() => h[1].acknowledgedRecords().includes(id), 60_000, 'the record acknowledged once the store is back')
    const pull = await run(['records', 'pull', 'h2', '--format', 'ndjson'])
    expect(pull.stdout).toContain(`"record_id":"${id}"`)
    // both gateways are live again (lease renewed, or registered anew) and carry commands
    const r = await run(['device', 'reboot', 'h1', 'h2', '--json', '--timeout', '30s'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
  }, 120_000)

  it('a gateway SIGKILLed while devices upload and commands wait: devices move to the other, no acknowledged record lost, no door opened twice', async () => {
    let uploading = true
    const uploads = (async () => {
      while (uploading) {
        h[0].addRecord()
        await new Promise((r) => setTimeout(r, 30))
      }
    })()
    await until(() => h[0].acknowledgedRecords().length >= 5, 20_000, 'h1 uploading through gateway 0')
    // an open waiting for h1, queued in the store; then gateway 0 dies (its sockets with it)
    const open = startDoorctl(['device', 'open', 'h1', '--json', '--timeout', '40s', '--store', url], { home: cli.path })
    const store = await openStore({ url, home: cli.path })
    try {
      // queued and waiting for h1, or already taken by h1 (it keepalives often): either way the open is in the store
      await until(async () => {
        if (h[0].events.opens.length > 0) return true
        if (open.child.exitCode !== null) throw new Error(`device open ended before h1 opened (${open.child.exitCode}): ${open.out.stdout}${open.out.stderr}`)
        return (await store.commands.devicesWithPending()).includes('h1')
      }, 20_000, 'the open queued in the store')
    } finally {
      await store.close()
    }
    gws[0].proc!.child.kill('SIGKILL')
    await gws[0].proc!.exited
    for (const l of lb) {
      l.target(gws[1].http)
      l.cut()
    }
    const code = await open.exited
    uploading = false
    await uploads
    const result = JSON.parse(open.out.stdout).results[0] as { ok: boolean; status: string; message: string }
    // delivered by the dead gateway without an answer → unknown, never sent again; else delivered once by the survivor
    if (result.ok) expect(code).toBe(0)
    else {
      expect(code).toBe(1)
      expect(result.message).toContain('not sent again')
    }
    expect(h[0].events.opens.length).toBeLessThanOrEqual(1)
    // h1 now calls gateway 1; every record it was told was received is in the store exactly once
    const acked = h[0].acknowledgedRecords()
    await until(async () => (await run(['device', 'list', '--json'])).json().devices.find((d: { name: string }) => d.name === 'w1').online, 20_000, 'w1 online again')
    const pull = await run(['records', 'pull', 'h1', '--format', 'ndjson'])
    expect(pull.code, pull.stderr).toBe(0)
    const stored = pull.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { record_id: string }).record_id)
    expect(new Set(stored).size).toBe(stored.length)
    for (const id of acked) expect(stored).toContain(id)
    // commands queued now are carried by gateway 1, wsjson through its new socket
    const after = await run(['device', 'reboot', 'h1', '--json', '--timeout', '30s'])
    expect(after.code, after.stdout + after.stderr).toBe(0)
    // its lease ran out: `doorctl status` lists the survivor only, which every door but u1 now calls (u1 knows only the dead one's address)
    let last = ''
    await until(async () => {
      const st = (await run(['status', '--json'])).json() as { gateways: { pid: number; devices_here: number; devices: { online: number } }[] }
      last = JSON.stringify(st.gateways.map((g) => ({ pid: g.pid, here: g.devices_here, online: g.devices.online })))
      return st.gateways.length === 1 && st.gateways[0].pid === gws[1].proc!.child.pid && st.gateways[0].devices_here === 5
    }, 30_000, () => `status: one gateway, five doors calling it; last ${last}`)
  }, 150_000)

  it('no gateway left on the store: `doorctl status` exits 1 and says so', async () => {
    gws[1].proc!.child.kill('SIGTERM')
    await gws[1].proc!.exited
    const r = await run(['status', '--json'])
    expect(r.code).toBe(1)
    expect(r.json()).toMatchObject({ ok: false, gateways: [] })
    const human = await run(['status'])
    expect(human.code).toBe(1)
    expect(human.stdout).toMatch(/no gateway is working on the store postgres:/)
  }, 60_000)
})

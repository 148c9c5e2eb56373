import { afterAll, describe, expect, it } from 'vitest'
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import type { Server } from 'node:http'
import { join } from 'node:path'
import { Gateway } from '../../src/gateway/gateway.js'
import { ControlServer } from '../../src/gateway/control.js'
import { AdminServer } from '../../src/gateway/admin/server.js'
import { handler as httpv2 } from '../../src/drivers/httpv2/gateway.js'
import { adminAccess, bearerMatches, isLoopback } from '../../src/gateway/admin/token.js'
import { RecordActivity } from '../../src/gateway/activity.js'
import { reportedStatus } from '../../src/gateway/status.js'
import { renderStatus } from '../../src/cli/render.js'
import { GatewayStore } from '../../src/store/gateway-store.js'
import { UsageError } from '../../src/types/errors.js'
import type { Logger } from '../../src/types/driver.js'
import { tempDir } from '../helpers.js'

const quiet: Logger = { debug() {}, info() {}, notice() {}, warn() {} }

describe('admin access rules', () => {
  const dir = tempDir('doorctl-admin-unit-')
  afterAll(() => dir.cleanup())

  it('loopback addresses', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) expect(isLoopback(a), a).toBe(true)
    for (const a of ['0.0.0.0', '::', '192.168.1.10', '10.0.0.1', '::ffff:10.0.0.1', 'example.org', '128.0.0.1']) expect(isLoopback(a), a).toBe(false)
  })

  it('loopback without a token file is open; anything else without one is refused', () => {
    expect(adminAccess('127.0.0.1', undefined)).toEqual({ created: false })
    expect(() => adminAccess('0.0.0.0', undefined)).toThrow(UsageError)
    expect(() => adminAccess('192.168.1.10', undefined)).toThrow(/needs a token/)
  })

  it('writes a missing token file (0600), reads an existing one, refuses one others can read or a short one', () => {
    const file = join(dir.path, 'token')
    const made = adminAccess('0.0.0.0', file)
    expect(made.created).toBe(true)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(readFileSync(file, 'utf8').trim()).toBe(made.token)
    expect(adminAccess('0.0.0.0', file)).toEqual({ token: made.token, created: false })
    chmodSync(file, 0o640)
    expect(() => adminAccess('0.0.0.0', file)).toThrow(/mode 0640/)
    const short = join(dir.path, 'short')
    writeFileSync(short, 'abc\n', { mode: 0o600 })
    expect(() => adminAccess('127.0.0.1', short)).toThrow(/at least 16/)
  })

  it('Bearer tokens', () => {
    expect(bearerMatches('Bearer s3cret-s3cret-s3cret', 's3cret-s3cret-s3cret')).toBe(true)
    expect(bearerMatches('bearer   s3cret-s3cret-s3cret ', 's3cret-s3cret-s3cret')).toBe(true)
    expect(bearerMatches('Bearer s3cret', 's3cret-s3cret-s3cret')).toBe(false)
    expect(bearerMatches('Basic czNjcmV0', 's3cret-s3cret-s3cret')).toBe(false)
    expect(bearerMatches(undefined, 's3cret-s3cret-s3cret')).toBe(false)
  })
})

describe('record activity', () => {
  it('counts records per minute over the last hour, seeded from the spool', () => {
    const home = tempDir('doorctl-activity-')
    const store = new GatewayStore(home.path)
    try {
      const now = Date.now()
      store.spool({ device: 'a', recordId: '1', time: now - 5000, userId: '', name: '', type: 'employee', result: 'granted', direction: '', method: 'face', extras: {} })
      const activity = new RecordActivity(store, ['a', 'b'], now)
      expect(activity.lastHour(now)).toBe(1)
      expect(activity.lastRecordOf('a')).toBe(now - 5000)
      expect(activity.lastRecordOf('b')).toBeUndefined()
      activity.recordSpooled('httpv2', 'b', now)
      const perMinute = activity.perMinuteLastHour()
      expect(perMinute).toHaveLength(60)
      expect(perMinute.reduce((x, y) => x + y, 0)).toBe(2)
      expect(perMinute[59]).toBeGreaterThanOrEqual(1)
      // an hour later both have left the window
      expect(activity.lastHour(Date.now() + 3600_000)).toBe(0)
    } finally {
      store.close()
      home.cleanup()
    }
  })
})

describe('/healthz', () => {
  it("503 with the reason when a listener dies (the devices' HTTP port, the control socket), 200 before", async () => {
    const home = tempDir('doorctl-health-')
    // as serve wires them (ops/gateway-client.ts startGateway), with one protocol
    const gateway = new Gateway({ home: home.path, log: quiet, handlers: [httpv2], settings: { httpPort: 0, bind: '127.0.0.1' } })
    const control = new ControlServer(gateway, home.path, quiet, 'serve')
    expect(await control.start()).toBe(true)
    await gateway.start()
    const admin = new AdminServer(control.monitor(), { port: 0, bind: '127.0.0.1', log: quiet })
    await admin.start()
    const health = async () => {
      const res = await fetch(`http://127.0.0.1:${admin.port}/healthz`)
      return { status: res.status, body: (await res.json()) as { ok: boolean; reason?: string; problems?: string[] } }
    }
    try {
      expect(await health()).toEqual({ status: 200, body: { ok: true } })
      // the devices' port goes away under the running gateway
      const http = (gateway as unknown as { http: Server }).http
      http.closeAllConnections()
      await new Promise((r) => http.close(r))
      const down = await health()
      expect(down.status).toBe(503)
      expect(down.body.ok).toBe(false)
      expect(down.body.reason).toMatch(/http listener on 127\.0\.0\.1:\d+ is down/)
      // the control socket
      await control.stop()
      const both = await health()
      expect(both.body.problems).toEqual([expect.stringMatching(/http listener/), expect.stringMatching(/control socket .* is closed/)])
    } finally {
      await admin.stop()
      await control.stop()
      await gateway.stop()
      home.cleanup()
    }
  })
})

describe('the live stream looks for changes cheaply', () => {
  it("changeKey moves with a door's state, not with each of its calls; deviceCounts agrees with the status", async () => {
    const home = tempDir('doorctl-changekey-')
    const { Inventory } = await import('../../src/store/inventory.js')
    const { GatewayMonitor } = await import('../../src/gateway/status.js')
    new Inventory(home.path).save([{ name: 'door-1', protocol: 'httpv2', sn: 'FC-KEY0001', tags: [] }])
    const gateway = new Gateway({ home: home.path, log: quiet, handlers: [httpv2], settings: { httpPort: 0, bind: '127.0.0.1', offlineAfterMs: 60_000 } })
    await gateway.start()
    const keepalive = () => fetch(`http://127.0.0.1:${gateway.httpPort}/Device/Keepalive`, { method: 'POST', body: JSON.stringify({ SN: 'FC-KEY0001' }), headers: { 'content-type': 'application/json' } }).then((r) => r.text())
    try {
      const monitor = new GatewayMonitor(gateway, 'serve')
      const before = monitor.changeKey()
      expect(monitor.deviceCounts()).toEqual({ httpv2: { online: 0, offline: 1 } })
      for (let i = 0; i < 3; i++) await keepalive()
      const at = () => gateway.presenceRowOf('door-1')!.lastSeen
      const online = monitor.changeKey(at())
      expect(online).not.toBe(before)
      expect(monitor.deviceCounts(at())).toEqual({ httpv2: { online: 1, offline: 0 } })
      expect((await monitor.status(at(), false)).devices.by_protocol).toEqual(monitor.deviceCounts(at()))
      // times carry their offset, as every time doorctl prints (never "Z")
      const view = await monitor.view(at())
      for (const t of [view.now, view.gateway.started_at, view.devices[0]!.last_seen]) expect(t).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?[+-]\d\d:\d\d$/)
      // another call: the last-seen time moves, the key does not
      await keepalive()
      expect(monitor.changeKey(at())).toBe(online)
      // quiet for more than three of its intervals: silent; past --offline-after: offline
      const interval = gateway.intervalOf('door-1')!
      const silent = monitor.changeKey(at() + 3 * interval + 1)
      expect(silent).not.toBe(online)
      expect((await monitor.view(at() + 3 * interval + 1)).devices[0]).toMatchObject({ online: true, silent: true })
      expect(monitor.changeKey(at() + 60_000)).not.toBe(silent)
      expect(monitor.deviceCounts(at() + 60_000)).toEqual({ httpv2: { online: 0, offline: 1 } })
    } finally {
      await gateway.stop()
      home.cleanup()
    }
  })
})

describe('the live stream between changes', () => {
  it('sends a whole view on a change and small pulses (last calls, records) in between, in the view\'s device order', async () => {
    const home = tempDir('doorctl-pulse-')
    const { Inventory } = await import('../../src/store/inventory.js')
    new Inventory(home.path).save([{ name: 'door-1', protocol: 'httpv2', sn: 'FC-PULSE001', tags: [] }, { name: 'door-2', protocol: 'httpv2', sn: 'FC-PULSE002', tags: [] }])
    const gateway = new Gateway({ home: home.path, log: quiet, handlers: [httpv2], settings: { httpPort: 0, bind: '127.0.0.1', offlineAfterMs: 60_000 } })
    await gateway.start()
    const control = new ControlServer(gateway, home.path, quiet, 'serve')
    await control.start()
    const admin = new AdminServer(control.monitor(), { port: 0, bind: '127.0.0.1', log: quiet, tickMs: 20, pulseMs: 50 })
    await admin.start()
    const ctrl = new AbortController()
    try {
      const res = await fetch(`http://127.0.0.1:${admin.port}/api/events`, { signal: ctrl.signal })
      const reader = res.body!.getReader()
      const dec = new TextDecoder()
      let buf = ''
      const frames: { event: string; data: Record<string, unknown> }[] = []
      const next = async (event: string) => {
        for (;;) {
          const i = buf.indexOf('\n\n')
          if (i >= 0) {
            const frame = buf.slice(0, i)
            buf = buf.slice(i + 2)
            const ev = /^event: (\w+)$/m.exec(frame)?.[1]
            const data = /^data: (.*)$/m.exec(frame)?.[1]
            if (ev && data) frames.push({ event: ev, data: JSON.parse(data) })
            if (ev === event) return frames.at(-1)!.data
            continue
          }
          const r = await reader.read()
          if (r.done) throw new Error('stream closed')
          buf += dec.decode(r.value, { stream: true })
        }
      }
      const view = await next('view') as { devices: { name: string; last_seen: string | null }[] }
      expect(view.devices.map((d) => [d.name, d.last_seen])).toEqual([['door-1', null], ['door-2', null]])
      // door-2 calls: the first call is a change (offline → online): a whole view
      await fetch(`http://127.0.0.1:${gateway.httpPort}/Device/Keepalive`, { method: 'POST', body: JSON.stringify({ SN: 'FC-PULSE002' }), headers: { 'content-type': 'application/json' } }).then((r) => r.text())
      const online = await next('view') as { devices: { name: string; online: boolean }[] }
      expect(online.devices.map((d) => d.online)).toEqual([false, true])
      // it calls again: not a change (door-2 may turn silent meanwhile, its interval being a few ms: that view is fine), its time goes out in a pulse
      await fetch(`http://127.0.0.1:${gateway.httpPort}/Device/Keepalive`, { method: 'POST', body: JSON.stringify({ SN: 'FC-PULSE002' }), headers: { 'content-type': 'application/json' } }).then((r) => r.text())
      const called = gateway.presenceRowOf('door-2')!.lastSeen
      let pulse: { last_seen: (number | null)[]; records_per_minute: number[]; now: string }
      do pulse = await next('pulse') as typeof pulse
      while (pulse.last_seen[1] !== called)
      expect(pulse.last_seen).toEqual([null, called])
      expect(pulse.records_per_minute).toHaveLength(60)
      expect(pulse.now).toMatch(/[+-]\d\d:\d\d$/)
      // a pulse is not a view: the page keeps the view it has and updates its times
      expect(Object.keys(frames.find((f) => f.event === 'pulse')!.data).sort()).toEqual(['last_record', 'last_seen', 'now', 'records_per_minute'])
    } finally {
      ctrl.abort()
      await admin.stop()
      await control.stop()
      await gateway.stop()
      home.cleanup()
    }
  })
})

describe('refused contacts on the status page', () => {
  it('a pinned door calling from another address is listed with its address, reason and count', async () => {
    const home = tempDir('doorctl-refused-view-')
    const { Inventory } = await import('../../src/store/inventory.js')
    const { GatewayMonitor } = await import('../../src/gateway/status.js')
    new Inventory(home.path).save([{ name: 'door-1', protocol: 'httpv2', sn: 'FC-PIN0001', tags: [], allowFrom: ['192.0.2.0/24'] }])
    const gateway = new Gateway({ home: home.path, log: quiet, handlers: [httpv2], settings: { httpPort: 0, bind: '127.0.0.1' } })
    await gateway.start()
    try {
      const monitor = new GatewayMonitor(gateway, 'serve')
      expect((await monitor.view()).refused).toEqual([])
      const before = monitor.changeKey()
      for (let i = 0; i < 2; i++) {
        await fetch(`http://127.0.0.1:${gateway.httpPort}/Device/Keepalive`, { method: 'POST', body: JSON.stringify({ SN: 'FC-PIN0001' }), headers: { 'content-type': 'application/json' } }).then((r) => r.text())
      }
      expect((await monitor.view()).refused).toEqual([{ device: 'door-1', protocol: 'httpv2', address: '127.0.0.1', reason: 'allow-from', count: 2, last_at: expect.any(String) }])
      // the live stream sends the page a new view
      expect(monitor.changeKey()).not.toBe(before)
    } finally {
      await gateway.stop()
      home.cleanup()
    }
  })
})

describe('several gateways on a shared store in `doorctl status`', () => {
  const info = { id: '5f0c2d9e-1111-4222-8333-944445555666', host: 'gw-b', pid: 4242, ports: { http: 8090, udp: 7998 }, startedAt: Date.parse('2026-12-01T08:00:00Z'), leaseUntil: Date.parse('2026-12-03T08:00:15Z') }
  const now = Date.parse('2026-12-03T08:00:00Z')

  it('a gateway that reported is shown as it reported, uptime from the store; one that has not yet says so', () => {
    const reported = reportedStatus({ ...info, status: { pid: 4242, host: 'gw-b', mode: 'serve', devices: { total: 3, online: 2, offline: 1, by_protocol: {} }, queue_depth: { total: 0, by_protocol: {} }, uptime_seconds: 1, problems: [] } }, now)
    expect(reported).toMatchObject({ id: info.id, pid: 4242, devices: { online: 2 }, uptime_seconds: 172_800 })
    const silent = reportedStatus({ ...info, status: { nonsense: true } }, now)
    expect(silent).toMatchObject({ id: info.id, pid: 4242, host: 'gw-b', ports: { http: 8090, udp: 7998 }, uptime_seconds: 172_800, devices: { total: 0 } })
    expect(silent.problems).toEqual(['this gateway has not reported its figures to the store yet'])
    expect(silent.started_at).toMatch(/[+-]\d\d:\d\d$/)
  })

  it('the human rendering names the store once and each gateway by its short id, with the doors calling it', () => {
    const lines: string[] = []
    const g = { ...reportedStatus(info, now), devices_here: 1, problems: [] }
    renderStatus({ ok: true, store: 'postgres://doorctl@127.0.0.1:5432/doorctl', gateways: [g] }, (l) => lines.push(l), false)
    expect(lines[0]).toBe("store postgres://doorctl@127.0.0.1:5432/doorctl: 1 gateway; each one's figures are the whole site's")
    expect(lines[1]).toMatch(/^gateway 5f0c2d9e pid 4242 on gw-b \(serve\), up 2d 0h/)
    expect(lines[2]).toMatch(/^devices 0 online \(1 calling this gateway\)/)
    const none: string[] = []
    renderStatus({ ok: false, store: 'postgres://doorctl@127.0.0.1:5432/doorctl', gateways: [] }, (l) => none.push(l), false)
    expect(none).toEqual(['no gateway is working on the store postgres://doorctl@127.0.0.1:5432/doorctl (start one with `doorctl serve --store …`)'])
  })
})

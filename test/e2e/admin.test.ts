import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync, mkdirSync, statSync, writeFileSync, readFileSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import { createHttpv2Simulator, type Httpv2Simulator } from '../../src/simulators/httpv2/index.js'
import { GatewayStore } from '../../src/store/gateway-store.js'
import { ROOT, doorctl, freePort, startDoorctl, tempDir, until } from '../helpers.js'

const CHROMIUM = '/usr/bin/chromium'
const hasChromium = existsSync(CHROMIUM)
if (!hasChromium) console.warn(`admin e2e: ${CHROMIUM} is not installed, so the status page is not tested in a browser; install Debian's chromium package to run it`)

/** Prometheus text format → samples (name, labels, value). */
function parseMetrics(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const samples = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2]
    samples.push({ name: m[1], labels, value: Number(m[3]) })
  }
  return samples
}

function sample(samples: ReturnType<typeof parseMetrics>, name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
}

describe('serve --admin-port: status page, /metrics, /healthz, /api/status and doorctl status (built binary, simulated httpv2 doors on 127.0.0.1)', () => {
  const home = tempDir('doorctl-admin-')
  const sims: Httpv2Simulator[] = []
  let serve: ReturnType<typeof startDoorctl>
  let admin = ''
  let listen: string[] = []

  beforeAll(async () => {
    const port = await freePort()
    listen = ['--http-port', String(port), '--udp-port', '0', '--mqtt-port', '0', '--bind', '127.0.0.1']
    for (let i = 1; i <= 3; i++) {
      const sn = `FC-8200H0000001${i}`
      const r = await doorctl(['device', 'add', `door-${i}`, '--protocol', 'httpv2', '--sn', sn, '--tag', i === 3 ? 'garage' : 'lobby'], { home: home.path })
      expect(r.code, r.stderr).toBe(0)
      sims.push(createHttpv2Simulator({ server: `http://127.0.0.1:${port}`, sn, intervalMs: 100, requestTimeoutMs: 1000, retryDelayMs: 100 }))
    }
    expect((await doorctl(['device', 'add', 'ghost', '--protocol', 'httpv2', '--sn', 'FC-8200H99999998', '--tag', 'garage'], { home: home.path })).code).toBe(0)
    serve = startDoorctl(['serve', ...listen, '--admin-port', '0', '--offline-after', '2s', '--json'], { home: home.path })
    await until(() => serve.out.stdout.includes('"ok":true'), 20_000, 'serve to start')
    const ready = JSON.parse(serve.out.stdout.split('\n')[0])
    expect(ready).toMatchObject({ admin_bind: '127.0.0.1', admin_port: expect.any(Number) })
    admin = `http://127.0.0.1:${ready.admin_port}`
    for (const s of sims) s.start()
  })

  afterAll(async () => {
    await Promise.all(sims.map((s) => s.stop()))
    if (serve && serve.child.exitCode === null) {
      serve.child.kill('SIGINT')
      await serve.exited
    }
    home.cleanup()
  })

  const status = async () => (await (await fetch(`${admin}/api/status`)).json()) as { ok: boolean; gateways: any[] }

  it('loopback without a token file: open; /healthz 200; /api/status = doorctl status --json', async () => {
    await until(async () => (await status()).gateways[0].devices.online === 3, 20_000, 'three doors online')
    const health = await fetch(`${admin}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.json()).toEqual({ ok: true })

    const cli = await doorctl(['status', '--json'], { home: home.path })
    expect(cli.code, cli.stderr).toBe(0)
    const doc = cli.json()
    const api = await status()
    expect(Object.keys(doc)).toEqual(Object.keys(api))
    expect(doc.gateways).toHaveLength(1)
    expect(doc.gateways[0]).toMatchObject({
      pid: serve.child.pid, mode: 'serve', bind: '127.0.0.1',
      ports: { http: Number(listen[1]), admin_port: Number(new URL(admin).port) },
      devices: { total: 4, online: 3, offline: 1, by_protocol: { httpv2: { online: 3, offline: 1 } } },
      queue_depth: { total: 0 }, problems: [],
    })
    expect(Object.keys(doc.gateways[0]).sort()).toEqual(Object.keys(api.gateways[0]).sort())

    const human = await doorctl(['status'], { home: home.path })
    expect(human.code).toBe(0)
    expect(human.stdout).toContain(`gateway pid ${serve.child.pid}`)
    expect(human.stdout).toMatch(/httpv2\t3\t1\t0/)
  })

  it('/metrics counts what was done: 3 doors online, 2 reboots ok, 1 timeout, 2 records', async () => {
    const reboot = await doorctl(['device', 'reboot', 'door-1', 'door-2', '--json', '--timeout', '20s', ...listen], { home: home.path })
    expect(reboot.code, reboot.stdout + reboot.stderr).toBe(0)
    const ghost = await doorctl(['device', 'reboot', 'ghost', '--json', '--timeout', '1500ms', ...listen], { home: home.path })
    expect(ghost.code).toBe(1)
    expect(ghost.json().results[0].status).toBe('timeout')
    sims[0].addRecord()
    sims[0].addRecord()
    await until(() => sims[0].acknowledgedRecords().length === 2, 20_000, 'two records acknowledged')

    let samples: ReturnType<typeof parseMetrics> = []
    await until(async () => {
      const res = await fetch(`${admin}/metrics`)
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/)
      samples = parseMetrics(await res.text())
      return sample(samples, 'doorctl_commands_total', { status: 'timeout' }) === 1
    }, 20_000, 'the ghost reboot to expire')
    expect(sample(samples, 'doorctl_devices', { protocol: 'httpv2', state: 'online' })).toBe(3)
    expect(sample(samples, 'doorctl_devices', { protocol: 'httpv2', state: 'offline' })).toBe(1)
    expect(sample(samples, 'doorctl_commands_total', { protocol: 'httpv2', kind: 'reboot', status: 'ok' })).toBe(2)
    expect(sample(samples, 'doorctl_commands_total', { protocol: 'httpv2', kind: 'reboot', status: 'timeout' })).toBe(1)
    expect(samples.filter((s) => s.name === 'doorctl_commands_total')).toHaveLength(2)
    // the two records, and what else the doors reported (a reboot's system record): every row of the spool
    const store = new GatewayStore(home.path, { readonly: true })
    const spooled = store.recordsAfter(0, 1000)
    store.close()
    expect(spooled.filter((r) => r.device === 'door-1').length).toBeGreaterThanOrEqual(2)
    expect(sample(samples, 'doorctl_records_total', { protocol: 'httpv2' })).toBe(spooled.length)
    expect(sample(samples, 'doorctl_queue_depth', { protocol: 'httpv2' })).toBe(0)
    expect(sample(samples, 'doorctl_discovered_devices')).toBe(0)
    const requests = sample(samples, 'doorctl_device_requests_total', { protocol: 'httpv2', outcome: 'ok' })!
    expect(requests).toBeGreaterThan(10)
    expect(sample(samples, 'doorctl_device_request_duration_seconds_count', { protocol: 'httpv2' })).toBe(requests + (sample(samples, 'doorctl_device_requests_total', { outcome: 'error' }) ?? 0))
    expect(sample(samples, 'process_cpu_seconds_total')).toBeGreaterThan(0)

    const doc = await status()
    expect(doc.gateways[0].records_last_hour).toBe(spooled.length)
  })

  it.skipIf(!hasChromium)('the page in chromium: every door, and a door that stops turns offline without a reload', async () => {
    const { chromium } = await import('playwright-core')
    const profile = tempDir('doorctl-chromium-')
    const browser = await chromium.launchPersistentContext(profile.path, {
      executablePath: CHROMIUM, headless: true, viewport: { width: 1280, height: 900 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
    try {
      const page = browser.pages()[0] ?? (await browser.newPage())
      const errors: string[] = []
      page.on('pageerror', (e) => errors.push(String(e)))
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()) })
      await page.goto(admin + '/')
      await page.locator('#devbody tr').nth(3).waitFor()
      const rows = () => page.locator('#devbody tr').allInnerTexts()
      // door-1 calls every 100 ms; on a loaded machine it may show silent for a moment, so wait for online
      await page.locator('#devbody tr', { hasText: 'door-1' }).filter({ hasText: 'online' }).waitFor({ timeout: 20_000 }).catch(async (e) => { throw new Error(String(e) + '\nROWS: ' + (await rows()).join(' | ')) })
      expect((await rows()).find((r) => r.includes('ghost'))).toMatch(/offline/)
      // the commands of the last hour, with their status
      await page.locator('#cmdbody', { hasText: 'timeout' }).waitFor()
      // filter by tag
      await page.fill('#q', 'tag:garage')
      expect((await rows()).map((r) => r.split(/\s/)[0]).sort()).toEqual(['door-3', 'ghost'])
      await page.fill('#q', '')

      await page.evaluate(() => { (window as unknown as { marker: number }).marker = 42 })
      const stopped = Date.now()
      await sims[1].stop()
      await page.locator('#devbody tr.off', { hasText: 'door-2' }).waitFor({ timeout: 20_000 })
      console.info(`admin e2e: door-2 shown offline ${Date.now() - stopped} ms after it stopped (--offline-after 2s)`)
      expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42)
      expect(await page.title()).toMatch(/^2 offline/)
      mkdirSync(join(ROOT, 'test', 'artifacts'), { recursive: true })
      await page.screenshot({ path: join(ROOT, 'test', 'artifacts', 'status-page.png'), fullPage: true })
      // a phone: the table becomes cards, nothing wider than the screen
      await page.setViewportSize({ width: 390, height: 844 })
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390)
      await page.screenshot({ path: join(ROOT, 'test', 'artifacts', 'status-page-phone.png'), fullPage: true })
      expect(errors).toEqual([])
    } finally {
      await browser.close()
      profile.cleanup()
    }
  })

  it('doorctl status exits 1 once the gateway is gone', async () => {
    serve.child.kill('SIGINT')
    expect(await serve.exited).toBe(0)
    const r = await doorctl(['status', '--json'], { home: home.path })
    expect(r.code).toBe(1)
    expect(r.json()).toEqual({ ok: false, gateways: [] })
    const human = await doorctl(['status'], { home: home.path })
    expect(human.code).toBe(1)
    expect(human.stdout).toContain('no gateway is running')
  })
})

describe('admin token rules', () => {
  const home = tempDir('doorctl-admin-token-')
  afterAll(() => home.cleanup())
  const listen = ['--http-port', '0', '--udp-port', '0', '--mqtt-port', '0', '--bind', '127.0.0.1', '--admin-port', '0']

  it('a non-loopback admin bind without a token file: exit 2, nothing started', async () => {
    const r = await doorctl(['serve', ...listen, '--admin-bind', '0.0.0.0', '--json'], { home: home.path })
    expect(r.code).toBe(2)
    expect(r.json().error.message).toMatch(/needs a token/)
    expect(r.json().error.suggestion).toMatch(/--admin-token-file/)
    expect(existsSync(join(home.path, 'gateway.sock'))).toBe(false)
  })

  it('a token file others can read: exit 2', async () => {
    const file = join(home.path, 'open-token')
    writeFileSync(file, 'x'.repeat(40) + '\n')
    chmodSync(file, 0o644)
    const r = await doorctl(['serve', ...listen, '--admin-token-file', file, '--json'], { home: home.path })
    expect(r.code).toBe(2)
    expect(r.json().error).toMatchObject({ message: expect.stringMatching(/can be read by others \(mode 0644\)/), suggestion: `chmod 600 ${file}` })
  })

  it('--no-admin: no admin listener, so no token needed whatever --admin-bind says', async () => {
    const serve = startDoorctl(['serve', ...listen, '--no-admin', '--admin-bind', '0.0.0.0', '--json'], { home: home.path })
    await until(() => serve.out.stdout.includes('"ok":true') || serve.child.exitCode !== null, 20_000, 'serve to start')
    const ready = JSON.parse(serve.out.stdout.split('\n')[0])
    expect(ready.ok).toBe(true)
    expect(ready).not.toHaveProperty('admin_port')
    const status = await doorctl(['status', '--json'], { home: home.path })
    expect(status.code).toBe(0)
    expect(status.json().gateways[0].ports).not.toHaveProperty('admin_port')
    serve.child.kill('SIGINT')
    expect(await serve.exited).toBe(0)
  })

  describe('with a token file', () => {
    const file = join(home.path, 'admin-token')
    let serve: ReturnType<typeof startDoorctl>
    let admin = ''
    beforeAll(async () => {
      serve = startDoorctl(['serve', ...listen, '--admin-token-file', file, '--json'], { home: home.path })
      await until(() => serve.out.stdout.includes('"ok":true'), 20_000, 'serve to start')
      admin = `http://127.0.0.1:${JSON.parse(serve.out.stdout.split('\n')[0]).admin_port}`
    })
    afterAll(async () => {
      serve.child.kill('SIGINT')
      await serve.exited
    })

    it('is written with a new token, mode 0600, never printed', () => {
      expect(statSync(file).mode & 0o777).toBe(0o600)
      const token = readFileSync(file, 'utf8').trim()
      expect(token.length).toBeGreaterThanOrEqual(32)
      expect(serve.out.stdout + serve.out.stderr).not.toContain(token)
      expect(serve.out.stderr).toContain('a new admin token was written')
    })

    it('no token → 401, wrong token → 401, the token → 200; the page shell is open', async () => {
      const token = readFileSync(file, 'utf8').trim()
      for (const path of ['/metrics', '/healthz', '/api/status', '/api/events']) {
        const none = await fetch(admin + path)
        expect(none.status, path).toBe(401)
        expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/)
        expect((await fetch(admin + path, { headers: { authorization: 'Bearer wrong-token' } })).status, path).toBe(401)
      }
      expect((await fetch(admin + '/metrics', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)
      expect((await fetch(admin + '/healthz', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)
      const page = await fetch(admin + '/')
      expect(page.status).toBe(200)
      const html = await page.text()
      expect(html).toContain('<title>doorctl</title>')
      // self-contained: nothing loaded from elsewhere
      expect(html).not.toMatch(/(src|href)="(https?:)?\/\//)
      expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'/)
    })

    it.skipIf(!hasChromium)('the page asks for the token once, then shows the gateway', async () => {
      const { chromium } = await import('playwright-core')
      const profile = tempDir('doorctl-chromium-')
      const browser = await chromium.launchPersistentContext(profile.path, {
        executablePath: CHROMIUM, headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      })
      try {
        const page = browser.pages()[0] ?? (await browser.newPage())
        await page.goto(admin + '/')
        await page.locator('#login[open]').waitFor()
        await page.fill('#token', 'wrong-token-wrong-token')
        await page.press('#token', 'Enter')
        await page.locator('#loginmsg', { hasText: 'refused' }).waitFor()
        await page.fill('#token', readFileSync(file, 'utf8').trim())
        await page.press('#token', 'Enter')
        await page.locator('#conn.live').waitFor()
        await page.locator('#foot', { hasText: 'doorctl gateway on 127.0.0.1' }).waitFor()
        // kept for the session: a reload does not ask again
        await page.reload()
        await page.locator('#conn.live').waitFor()
        expect(await page.locator('#login[open]').count()).toBe(0)
      } finally {
        await browser.close()
        profile.cleanup()
      }
    })
  })
})

#!/usr/bin/env node
// The README's picture of the status page: a site of 50 doors on 127.0.0.1 (41 simulated httpv2
// doors calling `doorctl serve`, a few that stopped, udp/wsjson/best doors that never called, one
// unknown device), some commands and records, photographed in Debian's chromium.
//   npm run build && node scripts/status-screenshot.js [OUT.png]   (default docs/status-page.png)
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createHttpv2Simulator } from '../dist/src/simulators/httpv2/index.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const RUN = join(ROOT, 'bin', 'run.js')
const out = resolve(process.argv[2] ?? join(ROOT, 'docs', 'status-page.png'))
const home = mkdtempSync(join(tmpdir(), 'doorctl-shot-'))
const env = { ...process.env, DOORCTL_HOME: home, NO_COLOR: '1' }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const doorctl = (...args) => spawnSync(process.execPath, [RUN, ...args], { env, encoding: 'utf8' })

const places = [['hq-lobby', 'lobby'], ['hq-f2', 'floor-2'], ['hq-f3', 'floor-3'], ['hq-garage', 'garage'], ['warehouse', 'warehouse']]
const rows = []
const sns = []
for (let i = 0; i < 44; i++) {
  const [prefix, tag] = places[i % places.length]
  const sn = `FC-8200H${String(10000 + i).padStart(8, '0')}`
  sns.push(sn)
  rows.push(`${prefix}-${String(Math.floor(i / places.length) + 1).padStart(2, '0')},httpv2,,,,${sn},,,,${tag};site-a`)
}
rows.push('intercom-gate-1,udp,,,,,C001,D0101,,gate;site-a', 'intercom-gate-2,udp,,,,,C001,D0102,,gate;site-a')
rows.push('canteen-face-1,wsjson,,,,WS0000001,,,,canteen;site-a', 'canteen-face-2,wsjson,,,,WS0000002,,,,canteen;site-a')
rows.push('dock-turnstile-1,best,,,,BEST000001,,,ws,warehouse;site-b', 'dock-turnstile-2,best,,,,BEST000002,,,mqtt,warehouse;site-b')
writeFileSync(join(home, 'devices.csv'), 'name,protocol,host,port,password,sn,community,code,transport,tags\n' + rows.join('\n') + '\n')
const imp = doorctl('device', 'import', join(home, 'devices.csv'))
if (imp.status !== 0) throw new Error(imp.stderr)

const serve = spawn(process.execPath, [RUN, 'serve', '--bind', '127.0.0.1', '--http-port', '0', '--udp-port', '0', '--mqtt-port', '0', '--admin-port', '0', '--offline-after', '20s', '--json'], { env, stdio: ['ignore', 'pipe', 'inherit'] })
process.on('exit', () => serve.kill('SIGINT'))
const ready = await new Promise((r) => createInterface({ input: serve.stdout }).once('line', (l) => r(JSON.parse(l))))
const server = `http://127.0.0.1:${ready.http_port}`
const sims = sns.map((sn) => createHttpv2Simulator({ server, sn, intervalMs: 1000 }))
const stranger = createHttpv2Simulator({ server, sn: 'FC-8200H77777777', intervalMs: 1000 })
for (const s of [...sims, stranger]) s.start()
await sleep(3000)
for (const s of sims.slice(0, 12)) for (let k = 0; k < 1 + (sns.indexOf(s.sn) % 3); k++) s.addRecord()
const names = rows.map((r) => r.split(',')[0])
doorctl('device', 'reboot', names[1], names[2], '--timeout', '20s')
doorctl('device', 'sync-time', '--tag', 'floor-3', '--timeout', '20s')
doorctl('device', 'open', 'intercom-gate-2', '--timeout', '2s')
// three doors lose power (offline once silent for --offline-after), two go quiet just now (silent: three missed heartbeats)
const admin = `http://127.0.0.1:${ready.admin_port}`
const status = async () => (await (await fetch(`${admin}/api/status`)).json()).gateways[0]
const until = async (cond) => { while (!(await cond())) await sleep(200) }
await Promise.all(sims.slice(40, 43).map((s) => s.stop()))
await until(async () => (await status()).devices.offline >= 9)
doorctl('device', 'open', names[41], '--no-wait')
const { chromium } = await import('playwright-core')
const profile = mkdtempSync(join(tmpdir(), 'doorctl-chromium-'))
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1280, height: 1000 }, deviceScaleFactor: 1,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
try {
  const page = browser.pages()[0] ?? (await browser.newPage())
  await page.goto(`${admin}/`)
  await page.locator('#devbody tr').nth(49).waitFor()
  await Promise.all(sims.slice(30, 32).map((s) => s.stop()))
  await page.locator('#devbody tr.silent').nth(1).waitFor({ timeout: 60_000 })
  await page.screenshot({ path: out })
  await page.setViewportSize({ width: 390, height: 844 })
  await sleep(300)
  await page.screenshot({ path: out.replace(/\.png$/, '-phone.png') })
  process.stdout.write(`${out}\n`)
} finally {
  await browser.close()
  await Promise.all([...sims, stranger].map((s) => s.stop()))
  serve.kill('SIGINT')
  await new Promise((r) => serve.once('close', r))
  rmSync(home, { recursive: true, force: true })
  rmSync(profile, { recursive: true, force: true })
}

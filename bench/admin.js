// The admin listener's cost to devices: httpv2 keepalive latency against `doorctl serve` with the
// admin listener off (`--no-admin`) and on while it is used the way a site uses it — /metrics and
// /api/status fetched every SCRAPE_MS (5 s; Prometheus' default is 15 s) and one status page open
// (its live stream, /api/events). Phases alternate off, on, off, on in one run, each with a fresh
// serve and the same load generator (bench/keepalive-load.js), so both modes see the same machine.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'node:http'

/** BENCH_ADMIN_PHASES=off,on for a quick look (a profile of each mode, say). */
const PHASES = (process.env.BENCH_ADMIN_PHASES ?? 'off,on,off,on,off,on').split(',')
/** How often /metrics and /api/status are fetched while on: a fast Prometheus (its default is 15 s). BENCH_ADMIN_SCRAPE_MS=1000 for a harsher run. */
const SCRAPE_MS = Number(process.env.BENCH_ADMIN_SCRAPE_MS ?? 5000)

export async function benchAdmin(h) {
  const count = h.sizes.devices
  const intervalMs = 1000
  const durationMs = 20_000
  const warmupMs = 5_000
  const home = join(h.work, 'admin-home')
  await h.importInventory(home, join(h.work, 'admin-devices.csv'), 'name,protocol,sn,tags', Array.from({ length: count }, (_, i) => `dev-${i + 1},httpv2,BENCH${String(i + 1).padStart(6, '0')},floor-${(i % 8) + 1}`))
  const phases = []
  for (const [i, mode] of PHASES.entries()) {
    const serve = await h.startServe(home, `admin-${i}`, mode === 'off' ? ['--no-admin'] : [])
    const user = mode === 'on' ? useAdmin(serve.ready.admin_port) : undefined
    const cpuBefore = cpuSeconds(serve.pid)
    const load = spawn(h.node, [join(h.bench, 'keepalive-load.js'), String(serve.ready.http_port), String(count), String(intervalMs), String(durationMs), String(warmupMs)], { cwd: h.root, env: h.childEnv(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const report = await new Promise((resolve) => load.on('message', (m) => { if (m.type === 'report') resolve(m) }))
    const used = await user?.stop()
    // serve's own CPU per keepalive: what the admin listener costs, far less moved by other work on the machine than latency is
    const cpuMsPer1000 = ((cpuSeconds(serve.pid) - cpuBefore) * 1000 * 1000) / report.requests
    const rssKB = await serve.stop()
    phases.push({ mode, p50: report.p50, p99: report.p99, max: report.max, requests: report.requests, measured: report.measured, errors: report.errors, serveRssKB: rssKB, cpuMsPer1000, ...used })
    process.stderr.write(`[bench] admin ${mode}: keepalive p50 ${report.p50.toFixed(1)} ms, p99 ${report.p99.toFixed(1)} ms, serve CPU ${cpuMsPer1000.toFixed(0)} ms per 1000 keepalives${used ? `, ${used.scrapes} scrapes, ${used.frames} page updates` : ''}\n`)
  }
  const mean = (mode, k) => { const xs = phases.filter((p) => p.mode === mode).map((p) => p[k]); return xs.reduce((a, b) => a + b, 0) / xs.length }
  const p99Off = mean('off', 'p99')
  const p99On = mean('on', 'p99')
  const ratio = p99On / p99Off
  const cpuRatio = mean('on', 'cpuMsPer1000') / mean('off', 'cpuMsPer1000')
  return {
    devices: count, intervalMs, durationMs, warmupMs, scrapeMs: SCRAPE_MS, phases, p99Off, p99On, p50Off: mean('off', 'p50'), p50On: mean('on', 'p50'), ratio,
    cpuOff: mean('off', 'cpuMsPer1000'), cpuOn: mean('on', 'cpuMsPer1000'), cpuRatio,
    pass: { ratio: ratio < 1.05, cpu: cpuRatio < 1.05, errors: phases.every((p) => p.errors === 0) },
  }
}

/** user + system CPU seconds of a process so far, from /proc/PID/stat (clock ticks of 1/100 s). */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** A Prometheus scraping /metrics and /api/status every second, and an open status page reading the live stream. */
function useAdmin(port) {
  let scrapes = 0
  let frames = 0
  let failures = 0
  const get = (path) => new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode === 200))
    })
    req.on('error', () => resolve(false))
    req.end()
  })
  const timer = setInterval(async () => {
    const ok = (await get('/metrics')) && (await get('/api/status'))
    if (ok) scrapes++
    else failures++
  }, SCRAPE_MS)
  const page = request({ host: '127.0.0.1', port, path: '/api/events' }, (res) => {
    res.setEncoding('utf8')
    res.on('data', (chunk) => { frames += chunk.split('event: view').length - 1 })
  })
  page.on('error', () => {})
  page.end()
  return {
    async stop() {
      clearInterval(timer)
      page.destroy()
      return { scrapes, frames, scrapeFailures: failures }
    },
  }
}

export function renderAdmin(e, f) {
  const r = e.result
  return [
    '## 13. admin listener (keepalive latency with it off and on)',
    f.stamp(e),
    `${f.f0(r.devices)} simulated httpv2 devices (\`bench/keepalive-load.js\`) POST \`/Device/Keepalive\` every ${r.intervalMs} ms for ${r.durationMs / 1000} s against \`doorctl serve\` (latencies after a ${r.warmupMs / 1000} s warm-up), in six alternating phases of one run, each with a fresh serve: off (\`--no-admin\`), on, off, on, off, on. *On*: the admin listener runs and is used — \`/metrics\` and \`/api/status\` fetched every ${(r.scrapeMs ?? 1000) / 1000} s (Prometheus' default interval is 15 s) and one status page open (the live stream \`/api/events\`, which looks for changes every second). Serve's CPU per keepalive (user + system, \`/proc/PID/stat\`) is reported beside latency: on a shared machine it moves far less with other work than a p99 does. \`bench/admin.js\`.`,
    f.table(['phase', 'keepalive p50 ms', 'p99 ms', 'max ms', 'answered (measured)', 'serve CPU ms / 1000 keepalives', 'errors', 'scrapes', 'page updates', 'serve peak RSS MB'], r.phases.map((p) => [
      p.mode, f.f1(p.p50), f.f1(p.p99), f.f1(p.max), `${f.f0(p.requests)} (${f.f0(p.measured)})`, f.f0(p.cpuMsPer1000), f.f0(p.errors), p.scrapes === undefined ? '' : f.f0(p.scrapes), p.frames === undefined ? '' : f.f0(p.frames), p.serveRssKB ? f.f1(p.serveRssKB / 1024) : '',
    ])),
    f.table(['measure', 'value', 'target', 'result'], [
      ['keepalive p50 off / on ms (mean of three phases)', `${f.f1(r.p50Off)} / ${f.f1(r.p50On)}`, '', ''],
      ['keepalive p99 off / on ms (mean of three phases)', `${f.f1(r.p99Off)} / ${f.f1(r.p99On)}`, '', ''],
      ['p99 on ÷ p99 off', f.f2(r.ratio), '< 1.05', f.verdict(r.pass.ratio)],
      ['serve CPU per keepalive, on ÷ off (mean of phases)', `${f.f0(r.cpuOn)} / ${f.f0(r.cpuOff)} ms per 1000 = ${f.f2(r.cpuRatio)}`, '< 1.05', f.verdict(r.pass.cpu)],
      ['errors', f.f0(r.phases.reduce((a, p) => a + p.errors, 0)), '0', f.verdict(r.pass.errors)],
    ]),
  ].join('\n\n')
}

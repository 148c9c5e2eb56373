// The admin listener's cost to devices: httpv2 keepalive latency against `doorctl serve` with the
// admin listener off (`--no-admin`) and on while it is used the way a site uses it — /metrics and
// /api/status fetched every SCRAPE_MS (5 s; Prometheus' default is 15 s) and one status page open
// (its live stream, /api/events).
// Paired: each round runs two serves at once, one off and one on, each with its own DOORCTL_HOME of
// N/2 devices (N = BENCH_DEVICES, 2,000: the machine's load is the gateway benchmark's) and its own load generator (bench/keepalive-load.js), so whatever else the machine does
// meets both alike; the roles swap every round. (Measured one after the other, two phases of the
// same mode differed by up to 2× in p99 on this shared 2-core machine: far more than the effect.)
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'node:http'

/** Rounds of 20 s (roles swapped each round); BENCH_ADMIN_ROUNDS=2 for a quick look. */
const ROUNDS = Number(process.env.BENCH_ADMIN_ROUNDS ?? 6)
/** How often /metrics and /api/status are fetched while on: a fast Prometheus (its default is 15 s). BENCH_ADMIN_SCRAPE_MS=1000 for a harsher run. */
const SCRAPE_MS = Number(process.env.BENCH_ADMIN_SCRAPE_MS ?? 5000)

export async function benchAdmin(h) {
  // half the gateway benchmark's devices on each of the two serves: the machine carries the same 2,000 keepalives a second as there
  const count = Math.round(h.sizes.devices / 2)
  const intervalMs = 1000
  const durationMs = 20_000
  const warmupMs = 5_000
  const homes = []
  for (const side of ['a', 'b']) {
    const home = join(h.work, `admin-home-${side}`)
    await h.importInventory(home, join(h.work, `admin-devices-${side}.csv`), 'name,protocol,sn,tags', Array.from({ length: count }, (_, i) => `dev-${i + 1},httpv2,BENCH${String(i + 1).padStart(6, '0')},floor-${(i % 8) + 1}`))
    homes.push(home)
  }
  const rounds = []
  for (let i = 0; i < ROUNDS; i++) {
    // home a is off in even rounds and on in odd ones
    const modes = i % 2 === 0 ? ['off', 'on'] : ['on', 'off']
    const serves = await Promise.all(homes.map((home, k) => h.startServe(home, `admin-${i}-${modes[k]}`, modes[k] === 'off' ? ['--no-admin'] : [])))
    const users = serves.map((s, k) => (modes[k] === 'on' ? useAdmin(s.ready.admin_port) : undefined))
    const cpuBefore = serves.map((s) => cpuSeconds(s.pid))
    const reports = await Promise.all(serves.map((s) => {
      const load = spawn(h.node, [join(h.bench, 'keepalive-load.js'), String(s.ready.http_port), String(count), String(intervalMs), String(durationMs), String(warmupMs)], { cwd: h.root, env: h.childEnv(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      return new Promise((resolve) => load.on('message', (m) => { if (m.type === 'report') resolve(m) }))
    }))
    const used = await Promise.all(users.map((u) => u?.stop()))
    const round = {}
    for (const [k, s] of serves.entries()) {
      // serve's own CPU per keepalive: what the admin listener costs, far less moved by other work on the machine than latency is
      const cpuMsPer1000 = ((cpuSeconds(s.pid) - cpuBefore[k]) * 1000 * 1000) / reports[k].requests
      const rssKB = await s.stop()
      const r = reports[k]
      round[modes[k]] = { p50: r.p50, p99: r.p99, max: r.max, requests: r.requests, measured: r.measured, errors: r.errors, serveRssKB: rssKB, cpuMsPer1000, ...used[k] }
    }
    rounds.push(round)
    process.stderr.write(`[bench] admin round ${i + 1}: p99 off ${round.off.p99.toFixed(1)} ms / on ${round.on.p99.toFixed(1)} ms, CPU per 1000 keepalives off ${round.off.cpuMsPer1000.toFixed(0)} / on ${round.on.cpuMsPer1000.toFixed(0)} ms${round.on.scrapes !== undefined ? `, ${round.on.scrapes} scrapes, ${round.on.frames} page views + ${round.on.pulses} pulses` : ''}\n`)
  }
  const mean = (mode, k) => rounds.reduce((a, r) => a + r[mode][k], 0) / rounds.length
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2 }
  const p99Off = mean('off', 'p99')
  const p99On = mean('on', 'p99')
  const ratio = p99On / p99Off
  const ratioMedian = median(rounds.map((r) => r.on.p99 / r.off.p99))
  const cpuRatio = mean('on', 'cpuMsPer1000') / mean('off', 'cpuMsPer1000')
  return {
    design: 'paired', devices: count, intervalMs, durationMs, warmupMs, scrapeMs: SCRAPE_MS, rounds, p99Off, p99On, p50Off: mean('off', 'p50'), p50On: mean('on', 'p50'), ratio, ratioMedian,
    cpuOff: mean('off', 'cpuMsPer1000'), cpuOn: mean('on', 'cpuMsPer1000'), cpuRatio,
    pass: { ratio: ratio < 1.05, cpu: cpuRatio < 1.05, errors: rounds.every((r) => r.on.errors === 0 && r.off.errors === 0) },
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
  let pulses = 0
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
    res.on('data', (chunk) => {
      frames += chunk.split('event: view').length - 1
      pulses += chunk.split('event: pulse').length - 1
    })
  })
  page.on('error', () => {})
  page.end()
  return {
    async stop() {
      clearInterval(timer)
      page.destroy()
      return { scrapes, frames, pulses, scrapeFailures: failures }
    },
  }
}

export function renderAdmin(e, f) {
  const r = e.result
  if (r.design !== 'paired') return `## 13. admin listener\n\n${f.stamp(e)}\n\nMeasured with an earlier design of this benchmark: run \`node bench/run.js admin\` again.`
  const rows = r.rounds.flatMap((x, i) => ['off', 'on'].map((mode) => {
    const p = x[mode]
    return [mode === 'off' ? String(i + 1) : '', mode, f.f1(p.p50), f.f1(p.p99), f.f1(p.max), `${f.f0(p.requests)} (${f.f0(p.measured)})`, f.f0(p.cpuMsPer1000), f.f0(p.errors), p.scrapes === undefined ? '' : f.f0(p.scrapes), p.frames === undefined ? '' : `${f.f0(p.frames)} + ${f.f0(p.pulses ?? 0)}`, p.serveRssKB ? f.f1(p.serveRssKB / 1024) : '']
  }))
  return [
    '## 13. admin listener (keepalive latency with it off and on)',
    f.stamp(e),
    `Paired rounds: each round runs two \`doorctl serve\` at once, each with its own DOORCTL_HOME of ${f.f0(r.devices)} httpv2 devices (half the gateway benchmark's ${f.f0(2 * r.devices)}, so the machine carries the same ${f.f0((2 * r.devices * 1000) / r.intervalMs)} keepalives a second) and its own load generator (\`bench/keepalive-load.js\`: every device POSTs \`/Device/Keepalive\` every ${r.intervalMs} ms for ${r.durationMs / 1000} s; latencies after a ${r.warmupMs / 1000} s warm-up) — one serve with the admin listener off (\`--no-admin\`), the other with it on and used: \`/metrics\` and \`/api/status\` fetched every ${r.scrapeMs / 1000} s (Prometheus' default interval is 15 s) and one status page open (its live stream \`/api/events\`: looks for changes every second, sends a whole view on a change or every 60 s, and every 5 s a pulse of the doors' last calls and records). The roles swap every round, so both modes meet the same machine at the same moments (run one after the other, two phases of the *same* mode differed by up to 2× in p99 here). Serve's CPU per keepalive (user + system, \`/proc/PID/stat\`: every thread, the admin listener's worker thread included) is reported beside latency. (Before the admin listener's HTTP moved to a worker thread, four trivial requests to it in 20 s made serve's CPU per keepalive 15 % higher — V8 had optimized node's HTTP code for the devices' traffic alone — and p99 came out between 0.96× and 1.66× in four runs.) The *on* serve's extra CPU also slows the *off* one a little (they share 2 cores), so the difference is if anything understated in CPU, not in the event-loop stalls that make a p99. \`bench/admin.js\`.`,
    f.table(['round', 'admin', 'keepalive p50 ms', 'p99 ms', 'max ms', 'answered (measured)', 'serve CPU ms / 1000 keepalives', 'errors', 'scrapes', 'page views + pulses', 'serve peak RSS MB'], rows),
    f.table(['measure', 'value', 'target', 'result'], [
      ['keepalive p50 off / on ms (mean of rounds)', `${f.f1(r.p50Off)} / ${f.f1(r.p50On)}`, '', ''],
      ['keepalive p99 off / on ms (mean of rounds)', `${f.f1(r.p99Off)} / ${f.f1(r.p99On)}`, '', ''],
      ['p99 on ÷ p99 off (means of rounds)', f.f2(r.ratio), '< 1.05', f.verdict(r.pass.ratio)],
      ['p99 on ÷ off, median of the rounds\' ratios', f.f2(r.ratioMedian), '', ''],
      ['serve CPU per keepalive, on ÷ off (means of rounds)', `${f.f0(r.cpuOn)} / ${f.f0(r.cpuOff)} ms per 1000 = ${f.f2(r.cpuRatio)}`, '< 1.05', f.verdict(r.pass.cpu)],
      ['errors', f.f0(r.rounds.reduce((a, x) => a + x.on.errors + x.off.errors, 0)), '0', f.verdict(r.pass.errors)],
    ]),
  ].join('\n\n')
}

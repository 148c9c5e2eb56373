#!/usr/bin/env node
// doorctl benchmarks, each against a floor measured in the same run on the same machine state.
//
//   npm run bench                       build, then all four benchmarks
//   node bench/run.js [startup|pull|import|validate …]   only these (needs an earlier `npm run build`)
//   node bench/run.js provision         config plan/apply over 50 simulated doors (BENCH_DOORS)
//   node bench/run.js udp wsjson bestm  push-protocol gateways under load (sizes: BENCH_UDP_DEVICES,
//                                       BENCH_WSJSON_DEVICES, BENCH_BEST_DEVICES; load generators bench/udp-load.js,
//                                       bench/conn-load.js); `node bench/run.js render` only re-renders RESULTS.md
//   node bench/run.js fleet             sync-time and reboot --no-wait on 1,000 httpv2 doors through serve
//                                       (bench/fleet.js; BENCH_FLEET_DEVICES; BENCH_LABEL names the run)
//   node bench/run.js copy              people copy of 5,000 people with 60 KB photos against people import of the same (bench/copy.js; BENCH_COPY_PEOPLE)
//   node bench/run.js store             store primitives: embedded SQLite before/after the Store interface, and
//                                       PostgreSQL when installed (bench/store.js; size BENCH_STORE_OPS)
//   node bench/run.js gateways          two serve on one PostgreSQL vs one on SQLite: 2,000 httpv2 devices,
//                                       200 records/s (bench/gateways.js; size BENCH_DEVICES)
//
// Results: bench/results.json (raw numbers, one entry per benchmark, kept across partial runs) and
// bench/RESULTS.md (rendered from it). Sizes can be lowered for a quick try-out with BENCH_RECORDS,
// BENCH_PEOPLE, BENCH_BIG_PEOPLE and BENCH_STARTUP_RUNS; a run with other sizes than the defaults
// says so in RESULTS.md. Everything talks to 127.0.0.1 only.
//
// pull: BENCH_PULL_LATENCY_MS (the simulator's delay per request, default 5) and BENCH_PULL_ROUNDS
// (default 3). `BENCH_SAVE_AS=pull-before node bench/run.js pull` on the code before a change keeps
// that run beside the current one; RESULTS.md then shows both.
import { spawn, execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { checkRecords } from './check-records.js'
import { summarizeProfile } from './cpu-profile.js'
import { writePeopleCsv } from './gen-people.js'
import { benchFleet, renderFleet } from './fleet.js'
import { benchStore, renderStore } from './store.js'
import { benchProvision, renderProvision } from './provision.js'
import { benchCopy, renderCopy } from './copy.js'
import { benchAdmin, renderAdmin } from './admin.js'
import { benchGateways, gatewaysNote, renderGateways } from './gateways.js'

const BENCH = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(BENCH, '..')
const RUN = join(ROOT, 'bin', 'run.js')
const PROBE = join(BENCH, 'rss-probe.js')
const SIM = join(BENCH, 'sim-server.js')
const RESULTS_JSON = join(BENCH, 'results.json')
const RESULTS_MD = join(BENCH, 'RESULTS.md')
const PASSWORD = 'bench-Pa55word'
const NODE = process.execPath

const DEFAULTS = { records: 1_000_000, pullLatencyMs: 5, pullRounds: 3, people: 10_000, bigPeople: 100_000, startupRuns: 15, devices: 2000, udpDevices: 10_000, wsjsonDevices: 2000, bestDevices: 2000, fleetDevices: 1000, storeOps: 2000, doors: 50, copyPeople: 5000 }
const intEnv = (name, def) => {
  const v = process.env[name]
  if (v === undefined || v === '') return def
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${v}"`)
  return n
}
const SIZES = {
  records: intEnv('BENCH_RECORDS', DEFAULTS.records),
  pullLatencyMs: intEnv('BENCH_PULL_LATENCY_MS', DEFAULTS.pullLatencyMs),
  pullRounds: intEnv('BENCH_PULL_ROUNDS', DEFAULTS.pullRounds),
  people: intEnv('BENCH_PEOPLE', DEFAULTS.people),
  bigPeople: intEnv('BENCH_BIG_PEOPLE', DEFAULTS.bigPeople),
  startupRuns: Math.max(10, intEnv('BENCH_STARTUP_RUNS', DEFAULTS.startupRuns)),
  devices: intEnv('BENCH_DEVICES', DEFAULTS.devices),
  udpDevices: intEnv('BENCH_UDP_DEVICES', DEFAULTS.udpDevices),
  wsjsonDevices: intEnv('BENCH_WSJSON_DEVICES', DEFAULTS.wsjsonDevices),
  bestDevices: intEnv('BENCH_BEST_DEVICES', DEFAULTS.bestDevices),
  fleetDevices: intEnv('BENCH_FLEET_DEVICES', DEFAULTS.fleetDevices),
  storeOps: intEnv('BENCH_STORE_OPS', DEFAULTS.storeOps),
  doors: intEnv('BENCH_DOORS', DEFAULTS.doors),
  copyPeople: intEnv('BENCH_COPY_PEOPLE', DEFAULTS.copyPeople),
}
const CHILD_TIMEOUT_MS = 240_000

const TARGETS = {
  startupRatio: 2.5, // doorctl --version median / node -e 0 median, at most
  pullRatio: 1.0, // doorctl records/s / floor records/s (medians), at least, NDJSON and CSV
  pullRssMB: 150,
  importRatio: 0.7,
  validateRssMB: 150,
}

// ---------------------------------------------------------------------------------------------
// processes

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`)
const work = mkdtempSync(join(os.tmpdir(), 'doorctl-bench-'))
let rssSeq = 0

/** Environment for measured children: nothing inherited that changes how node or doorctl behave. */
function childEnv(extra = {}) {
  const env = { ...process.env }
  for (const k of ['NODE_OPTIONS', 'BENCH_RSS_FILE', 'DOORCTL_HOME', 'DOORCTL_DEBUG', 'FORCE_COLOR', 'NODE_DEBUG']) delete env[k]
  return { ...env, NO_COLOR: '1', ...extra }
}

/**
 * Runs `node ARGS`; wall time is from spawn to the 'exit' event. With `rss`, the child gets the
 * probe through NODE_OPTIONS and its peak RSS (KB) is read back from the file the probe writes.
 */
function runNode(args, { env = {}, input = '', rss = false, cwd = ROOT, timeoutMs = CHILD_TIMEOUT_MS } = {}) {
  return new Promise((resolveRun) => {
    const e = childEnv(env)
    let rssFile
    if (rss) {
      rssFile = join(work, `rss-${++rssSeq}`)
      e.NODE_OPTIONS = `--import=${PROBE.includes(' ') ? JSON.stringify(PROBE) : PROBE}`
      e.BENCH_RSS_FILE = rssFile
    }
    const limit = 8 << 20
    const out = []
    const err = []
    let outLen = 0
    let errLen = 0
    let timedOut = false
    let exitAt
    const t0 = process.hrtime.bigint()
    const child = spawn(NODE, args, { cwd, env: e, stdio: ['pipe', 'pipe', 'pipe'] })
    child.stdout.on('data', (c) => { if (outLen < limit) { out.push(c); outLen += c.length } })
    child.stderr.on('data', (c) => { if (errLen < limit) { err.push(c); errLen += c.length } })
    child.stdin.on('error', () => {})
    child.stdin.end(input)
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL') }, timeoutMs)
    child.on('exit', () => { exitAt = process.hrtime.bigint() })
    child.on('error', (error) => {
      clearTimeout(timer)
      resolveRun({ code: null, signal: null, ms: NaN, stdout: '', stderr: String(error), rssKB: undefined, timedOut })
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      let rssKB
      let cpuMs
      if (rssFile && existsSync(rssFile)) {
        const [kb, user, sys] = readFileSync(rssFile, 'utf8').trim().split(/\s+/).map(Number)
        if (Number.isFinite(kb) && kb > 0) rssKB = kb
        if (Number.isFinite(user) && Number.isFinite(sys)) cpuMs = (user + sys) / 1000
        rmSync(rssFile, { force: true })
      }
      resolveRun({
        code, signal, timedOut, rssKB, cpuMs,
        ms: Number((exitAt ?? process.hrtime.bigint()) - t0) / 1e6,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      })
    })
  })
}

/** Why a finished child is not a success, or undefined. */
function failure(r) {
  if (r.timedOut) return `killed after ${CHILD_TIMEOUT_MS / 1000} s without finishing`
  if (r.code !== 0) return `exit code ${r.code ?? r.signal}${tail(r.stderr) ? `: ${tail(r.stderr)}` : ''}`
  return undefined
}
const tail = (s, n = 400) => {
  const t = s.replace(/\s+/g, ' ').trim()
  return t.length > n ? '…' + t.slice(-n) : t
}

const sims = new Set()
/** The openapi simulator in a child process of its own (bench/sim-server.js). */
async function startSim(opts) {
  const child = spawn(NODE, [SIM, JSON.stringify({ password: PASSWORD, ...opts })], { cwd: ROOT, env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] })
  sims.add(child)
  let stderr = ''
  child.stderr.on('data', (c) => { stderr += c })
  child.stdin.on('error', () => {})
  const lines = createInterface({ input: child.stdout })
  const waiting = []
  const queued = []
  lines.on('line', (l) => (waiting.length ? waiting.shift()(l) : queued.push(l)))
  const exited = new Promise((r) => child.on('exit', r))
  const nextLine = () =>
    new Promise((res, rej) => {
      if (queued.length) return res(queued.shift())
      waiting.push(res)
      exited.then(() => rej(new Error(`simulator exited: ${tail(stderr) || 'no message'}`)))
    })
  const hello = JSON.parse(await nextLine())
  return {
    port: hello.httpPort,
    url: hello.url,
    pid: child.pid,
    async stats() {
      child.stdin.write('stats\n')
      return JSON.parse(await nextLine())
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin.end('close\n')
        const t = setTimeout(() => child.kill('SIGKILL'), 5000)
        await exited
        clearTimeout(t)
      }
      sims.delete(child)
    },
  }
}
const cpuMs = (c) => (c.user + c.system) / 1000

process.on('exit', () => {
  for (const c of sims) c.kill('SIGKILL')
  if (!process.env.BENCH_KEEP_TMP) rmSync(work, { recursive: true, force: true })
})
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130))

/** A fresh DOORCTL_HOME with device `bench` at 127.0.0.1:port (password on stdin, as the README says). */
async function freshHome(port) {
  const home = mkdtempSync(join(work, 'home-'))
  const r = await runNode([RUN, 'device', 'add', 'bench', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(port), '--password-stdin'], {
    env: { DOORCTL_HOME: home },
    input: PASSWORD + '\n',
  })
  const bad = failure(r)
  if (bad) throw new Error(`doorctl device add failed: ${bad}`)
  return home
}

async function countLines(path) {
  let n = 0
  let last = 10
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) n++
    last = chunk[chunk.length - 1]
  }
  return last === 10 ? n : n + 1
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const mb = (kb) => (kb === undefined ? undefined : kb / 1024)
const loadavg = () => os.loadavg().map((x) => Number(x.toFixed(2)))

/** Sign like the vendor document: md5(timestamp#password), both in the query. */
function signed() {
  const ts = String(Date.now())
  return `timestamp=${ts}&sign=${createHash('md5').update(`${ts}#${PASSWORD}`).digest('hex')}`
}

// ---------------------------------------------------------------------------------------------
// benchmarks

async function benchStartup() {
  const cmds = [
    { key: 'node', label: 'node -e 0', args: ['-e', '0'] },
    { key: 'doorctl', label: 'node bin/run.js --version', args: [RUN, '--version'] },
    { key: 'oclif', label: 'node -e "import(\'@oclif/core\')"', args: ['-e', "import('@oclif/core').then(() => {}, (e) => { console.error(e.message); process.exit(3) })"] },
  ]
  const times = Object.fromEntries(cmds.map((c) => [c.key, []]))
  const errors = []
  let version = ''
  // one untimed round first: disk cache and the like
  for (const c of cmds) await runNode(c.args)
  for (let i = 0; i < SIZES.startupRuns; i++) {
    // interleaved, and the order rotates so no command always runs right after the same one
    for (let k = 0; k < cmds.length; k++) {
      const c = cmds[(i + k) % cmds.length]
      const r = await runNode(c.args)
      const bad = failure(r)
      if (bad) {
        errors.push(`${c.label}: ${bad}`)
        continue
      }
      if (c.key === 'doorctl') {
        version = r.stdout.trim()
        if (!/^doorctl\/\S+/.test(version)) {
          errors.push(`${c.label} printed ${JSON.stringify(tail(r.stdout, 120))}, not doorctl/VERSION …`)
          continue
        }
      }
      times[c.key].push(r.ms)
    }
  }
  // peak RSS, once each, with the probe (also checks that bin/run.js works with that NODE_OPTIONS)
  const rss = {}
  for (const c of cmds) {
    const r = await runNode(c.args, { rss: true })
    const bad = failure(r)
    if (bad) errors.push(`${c.label} with the RSS probe: ${bad}`)
    else if (c.key === 'doorctl' && r.stdout.trim() !== version) errors.push(`with the RSS probe, --version printed ${JSON.stringify(tail(r.stdout, 120))}`)
    if (r.rssKB === undefined && !bad) errors.push(`${c.label}: the RSS probe wrote nothing`)
    rss[c.key] = r.rssKB
  }
  const stat = (k) => {
    const t = times[k]
    return t.length ? { runs: t.length, median: median(t), min: Math.min(...t), max: Math.max(...t) } : { runs: 0 }
  }
  const s = Object.fromEntries(cmds.map((c) => [c.key, stat(c.key)]))
  const ratio = s.doorctl.median / s.node.median
  const oclifShare = (s.oclif.median - s.node.median) / (s.doorctl.median - s.node.median)
  return {
    version,
    commands: cmds.map((c) => ({ key: c.key, label: c.label, ...s[c.key], rssKB: rss[c.key] })),
    ratio,
    oclifShare,
    pass: errors.length === 0 && ratio <= TARGETS.startupRatio,
    errors,
  }
}

/**
 * records pull: 1,000,000 records from the simulator (a small per-request latency, as a device on a
 * LAN has) into a file, doorctl in NDJSON and in CSV against the floor, interleaved round by round
 * with the order rotating. Every output is checked: the record count and that no id occurs twice.
 * Then one more run of each doorctl format under `node --cpu-prof` (not counted), summarised.
 */
async function benchPull() {
  const n = SIZES.records
  const latencyMs = SIZES.pullLatencyMs
  const sim = await startSim({ records: n, latencyMs })
  const errors = []
  const runs = []
  const profiles = {}
  const SIDES = {
    ndjson: { check: 'ndjson', args: (out) => [RUN, 'records', 'pull', 'bench', '--format', 'ndjson', '--output', out] },
    csv: { check: 'csv', args: (out) => [RUN, 'records', 'pull', 'bench', '--format', 'csv', '--output', out] },
    floor: { check: 'raw', args: (out) => [join(BENCH, 'floor-pull.js'), sim.url, PASSWORD, out] },
  }
  try {
    const home = await freshHome(sim.port)
    // warm the simulator's code paths (JIT) so that neither side pays for it in its first run
    for (let p = 1; p <= 20; p++) {
      const res = await fetch(`${sim.url}/api/record?${signed()}&page=${p * 37}&size=1000&startTime=0&endTime=${Math.floor(Date.now() / 1000)}`)
      await res.arrayBuffer()
    }
    const one = async (side, round, nodeArgs = []) => {
      const out = join(work, `pull-${side}-${round}.${side === 'csv' ? 'csv' : 'ndjson'}`)
      const before = await sim.stats()
      const r = await runNode([...nodeArgs, ...SIDES[side].args(out)], { env: side === 'floor' ? {} : { DOORCTL_HOME: home }, rss: true })
      const after = await sim.stats()
      const run = { side, round, ms: r.ms, rssKB: r.rssKB, cpuMs: r.cpuMs, simCpuMs: cpuMs(after.cpu) - cpuMs(before.cpu), simRequests: after.requests - before.requests }
      const bad = failure(r)
      if (bad) run.error = bad
      else if (!existsSync(out)) run.error = `exit 0 but no output file ${out}`
      else {
        const c = await checkRecords(out, SIDES[side].check)
        Object.assign(run, { count: c.count, unique: c.unique, bytes: statSync(out).size, rate: c.count / (r.ms / 1000) })
        if (c.bad) run.error = `${c.bad} lines without a record id`
        else if (c.count !== n) run.error = `wrong count: ${c.count} records in the output, expected ${n}`
        else if (c.unique !== c.count) run.error = `${c.count - c.unique} records exported twice (e.g. ids ${c.duplicates.join(', ')})`
      }
      rmSync(out, { force: true })
      return run
    }
    const order = ['ndjson', 'floor', 'csv']
    for (let round = 0; round < SIZES.pullRounds; round++) {
      for (let k = 0; k < order.length; k++) {
        const side = order[(round + k) % order.length]
        const run = await one(side, round)
        if (run.error) errors.push(`${side} run ${round + 1}: ${run.error}`)
        log(`pull ${side} run ${round + 1}: ${(run.ms / 1000).toFixed(1)} s, ${run.count ?? '?'} records, ${mb(run.rssKB)?.toFixed(0) ?? '?'} MB${run.error ? ` — ${run.error}` : ''}`)
        runs.push(run)
      }
    }
    for (const side of ['ndjson', 'csv']) {
      const dir = mkdtempSync(join(work, `prof-${side}-`))
      const run = await one(side, -1, ['--cpu-prof', `--cpu-prof-dir=${dir}`])
      const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
      if (run.error || !file) errors.push(`${side} profiled run: ${run.error ?? 'no profile written'}`)
      else profiles[side] = { ms: run.ms, rate: run.rate, ...summarizeProfile(join(dir, file)) }
      log(`pull ${side} profiled: ${(run.ms / 1000).toFixed(1)} s${run.error ? ` — ${run.error}` : ''}`)
    }
  } finally {
    await sim.close()
  }
  const ok = (side) => runs.filter((r) => r.side === side && !r.error)
  const stats = Object.fromEntries(
    Object.keys(SIDES).map((side) => {
      const rates = ok(side).map((r) => r.rate)
      const rss = runs.filter((r) => r.side === side && r.rssKB).map((r) => r.rssKB)
      return [side, { runs: rates.length, bestRate: rates.length ? Math.max(...rates) : undefined, medianRate: rates.length ? median(rates) : undefined, peakRssKB: rss.length ? Math.max(...rss) : undefined }]
    }),
  )
  const ratios = {}
  for (const side of ['ndjson', 'csv']) {
    const d = stats[side]
    const f = stats.floor
    const clean = !runs.some((r) => r.side === side && r.error)
    ratios[side] = {
      median: d.medianRate / f.medianRate,
      best: d.bestRate / f.bestRate,
      pass: clean && d.medianRate / f.medianRate >= TARGETS.pullRatio,
      passRss: d.peakRssKB !== undefined && mb(d.peakRssKB) <= TARGETS.pullRssMB,
    }
  }
  return { version: 2, records: n, latencyMs, runs, stats, ratios, profiles, errors }
}

async function benchImport() {
  const n = SIZES.people
  const csv = join(work, 'people.csv')
  await writePeopleCsv(n, csv)
  const errors = []
  const runs = []
  const one = async (side, round) => {
    const sim = await startSim({}) // a fresh device each run: every add is a real add
    const run = { side, round }
    try {
      let r
      if (side === 'doorctl') {
        const home = await freshHome(sim.port)
        r = await runNode([RUN, 'people', 'import', csv, 'bench', '--json'], { env: { DOORCTL_HOME: home }, rss: true })
      } else {
        r = await runNode([join(BENCH, 'floor-import.js'), sim.url, PASSWORD, csv], { rss: true })
      }
      const st = await sim.stats()
      Object.assign(run, { ms: r.ms, rssKB: r.rssKB, cpuMs: r.cpuMs, users: st.users, simRequests: st.requests, simCpuMs: cpuMs(st.cpu) })
      let doc
      try {
        doc = JSON.parse(r.stdout)
      } catch {
        doc = undefined
      }
      const bad = failure(r)
      if (side === 'doorctl') {
        if (!doc) run.error = `${bad ?? 'exit 0'}; stdout is not one JSON document: ${JSON.stringify(tail(r.stdout, 200))}`
        else if (!doc.ok || !doc.results?.[0]?.ok) run.error = `not ok: ${JSON.stringify(doc.error ?? doc.results?.[0] ?? doc).slice(0, 400)}`
        else if (bad) run.error = bad
      } else if (bad) run.error = `${bad} ${tail(r.stdout, 200)}`
      if (!run.error && st.users !== n) run.error = `the simulator has ${st.users} users after the import, expected ${n}`
      if (!run.error) run.rate = n / (r.ms / 1000)
    } finally {
      await sim.close()
    }
    if (run.error) errors.push(`${side} run ${round + 1}: ${run.error}`)
    log(`import ${side} run ${round + 1}: ${(run.ms / 1000).toFixed(1)} s, ${run.users} users, ${mb(run.rssKB)?.toFixed(0) ?? '?'} MB${run.error ? ` — ${run.error}` : ''}`)
    runs.push(run)
  }
  await one('doorctl', 0)
  await one('floor', 0)
  await one('floor', 1)
  await one('doorctl', 1)
  const best = (side) => runs.filter((r) => r.side === side && !r.error).sort((a, b) => b.rate - a.rate)[0]
  const d = best('doorctl')
  const f = best('floor')
  const ratio = d && f ? d.rate / f.rate : undefined
  const peak = (side) => {
    const v = runs.filter((r) => r.side === side && r.rssKB).map((r) => r.rssKB)
    return v.length ? Math.max(...v) : undefined
  }
  return {
    people: n,
    runs,
    best: { doorctl: d, floor: f },
    ratio,
    doorctlRssKB: peak('doorctl'),
    floorRssKB: peak('floor'),
    pass: ratio !== undefined && ratio >= TARGETS.importRatio && !runs.some((r) => r.side === 'doorctl' && r.error),
    errors,
  }
}

async function benchValidate() {
  const n = SIZES.bigPeople
  const csv = join(work, 'big.csv')
  await writePeopleCsv(n, csv)
  // the device must be in the inventory; a dry run never contacts it (port 9: nothing listens)
  const home = await freshHome(9)
  const errors = []
  const runs = []
  const sides = {
    doorctl: { label: 'doorctl people import --dry-run', args: [RUN, 'people', 'import', csv, 'bench', '--dry-run', '--json'], env: { DOORCTL_HOME: home } },
    parse: { label: 'floor: csv-parse stream, count rows', args: [join(BENCH, 'floor-validate.js'), csv] },
    node: { label: 'node -e 0', args: ['-e', '0'] },
  }
  const order = Object.keys(sides)
  const rounds = 3
  for (let i = 0; i < rounds; i++) {
    for (let k = 0; k < order.length; k++) {
      const side = order[(i + k) % order.length]
      const s = sides[side]
      const r = await runNode(s.args, { env: s.env, rss: true })
      const run = { side, round: i, ms: r.ms, rssKB: r.rssKB, cpuMs: r.cpuMs }
      const bad = failure(r)
      if (side === 'doorctl') {
        let doc
        try {
          doc = JSON.parse(r.stdout)
        } catch {
          doc = undefined
        }
        if (!doc) run.error = `${bad ?? 'exit 0'}; stdout is not one JSON document: ${JSON.stringify(tail(r.stdout, 200))}`
        else if (!doc.ok) run.error = `not ok: ${JSON.stringify(doc.error ?? doc.results?.[0]).slice(0, 400)}`
        else if (doc.people !== n) run.error = `reports ${doc.people} people valid, expected ${n}`
        else if (bad) run.error = bad
      } else if (bad) run.error = bad
      else if (side === 'parse') {
        const rows = JSON.parse(r.stdout).rows
        if (rows !== n) run.error = `counted ${rows} rows, expected ${n}`
      }
      if (run.error) errors.push(`${s.label} run ${i + 1}: ${run.error}`)
      runs.push(run)
    }
  }
  const summary = Object.fromEntries(
    order.map((side) => {
      const ok = runs.filter((r) => r.side === side && !r.error)
      const rss = runs.filter((r) => r.side === side && r.rssKB).map((r) => r.rssKB)
      return [side, { label: sides[side].label, runs: ok.length, medianMs: ok.length ? median(ok.map((r) => r.ms)) : undefined, medianCpuMs: ok.some((r) => r.cpuMs !== undefined) ? median(ok.filter((r) => r.cpuMs !== undefined).map((r) => r.cpuMs)) : undefined, minMs: ok.length ? Math.min(...ok.map((r) => r.ms)) : undefined, peakRssKB: rss.length ? Math.max(...rss) : undefined }]
    }),
  )
  for (const side of order) log(`validate ${side}: median ${summary[side].medianMs?.toFixed(0)} ms, peak ${mb(summary[side].peakRssKB)?.toFixed(0)} MB`)
  const timeRatio = summary.doorctl.medianMs / summary.parse.medianMs
  return {
    people: n,
    runs,
    summary,
    timeRatio,
    pass: summary.doorctl.peakRssKB !== undefined && mb(summary.doorctl.peakRssKB) <= TARGETS.validateRssMB && !runs.some((r) => r.side === 'doorctl' && r.error),
    errors,
  }
}

// ---------------------------------------------------------------------------------------------
// RESULTS.md

function machine() {
  let nproc
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim())
  } catch {
    nproc = os.availableParallelism?.() ?? os.cpus().length
  }
  return {
    nproc,
    cpu: os.cpus()[0]?.model?.trim() ?? 'unknown',
    totalMemGiB: Number((os.totalmem() / 1024 ** 3).toFixed(1)),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  }
}

const f0 = (x) => (x === undefined || Number.isNaN(x) ? '—' : Math.round(x).toLocaleString('en-US'))
const f1 = (x) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(1))
const f2 = (x) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(2))
const verdict = (ok) => (ok ? '**PASS**' : '**MISS**')
const table = (head, rows) => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')

function stamp(e) {
  const m = e.machine
  const sizes = Object.entries(e.sizes ?? {}).filter(([k, v]) => DEFAULTS[k] !== v)
  return (
    `_Measured ${e.date} · ${m.nproc} CPUs (${m.cpu}), ${m.totalMemGiB} GiB RAM, node ${m.node} · load average ${e.loadBefore.join('/')} before, ${e.loadAfter.join('/')} after · ${(e.seconds).toFixed(0)} s_` +
    (sizes.length ? `\n\n**Not the standard sizes:** ${sizes.map(([k, v]) => `${k}=${v} (standard ${DEFAULTS[k]})`).join(', ')}.` : '')
  )
}

function renderStartup(e) {
  const r = e.result
  const by = Object.fromEntries(r.commands.map((c) => [c.key, c]))
  const rows = r.commands.map((c) => [
    `\`${c.label}\``,
    String(c.runs),
    f1(c.median),
    f1(c.min),
    f1(c.max),
    f1(mb(c.rssKB)),
    c.key === 'node' ? 'floor' : c.key === 'doorctl' ? f2(c.median / by.node.median) : `${f2(c.median / by.node.median)} (extra line)`,
  ])
  return [
    '## 1. startup',
    stamp(e),
    table(['command', 'runs', 'median ms', 'min ms', 'max ms', 'peak RSS MB', 'ratio to floor'], rows),
    table(['measure', 'value', 'target', 'result'], [
      ['median(`doorctl --version`) / median(`node -e 0`)', f2(r.ratio), `≤ ${TARGETS.startupRatio}`, verdict(r.pass)],
    ]),
    `Of the ${f0(by.doorctl.median - by.node.median)} ms doorctl takes beyond a bare node, importing \`@oclif/core\` alone accounts for ${f0(by.oclif.median - by.node.median)} ms (${f0(100 * r.oclifShare)} %). \`--version\` printed \`${r.version}\`.`,
  ].join('\n\n')
}

const PULL_LABELS = { ndjson: '`doorctl records pull --format ndjson`', csv: '`doorctl records pull --format csv`', floor: 'floor: `bench/floor-pull.js`' }

function pullMeasures(r) {
  return ['ndjson', 'csv'].flatMap((side) => [
    [`records/s ${side.toUpperCase()}, median (best) of ${r.stats[side].runs}: ratio doorctl / floor`, `${f0(r.stats[side].medianRate)} (${f0(r.stats[side].bestRate)})`, `${f0(r.stats.floor.medianRate)} (${f0(r.stats.floor.bestRate)})`, `${f2(r.ratios[side].median)} (${f2(r.ratios[side].best)})`, `≥ ${TARGETS.pullRatio.toFixed(1)}`, verdict(r.ratios[side].pass)],
    [`peak RSS MB ${side.toUpperCase()}, highest of the runs`, f1(mb(r.stats[side].peakRssKB)), f1(mb(r.stats.floor.peakRssKB)), f1(mb(r.stats[side].peakRssKB)), `≤ ${TARGETS.pullRssMB}`, verdict(r.ratios[side].passRss)],
  ])
}

function renderPull(e, before) {
  const r = e.result
  if (r.version !== 2) return `## 2. pull\n\n${stamp(e)}\n\nMeasured with an earlier version of this benchmark: run \`node bench/run.js pull\`.`
  const rows = r.runs.map((x) => [
    PULL_LABELS[x.side],
    String(x.round + 1),
    f2(x.ms / 1000),
    f0(x.count),
    f0(x.unique),
    f0(x.rate),
    f1(mb(x.rssKB)),
    f1(x.cpuMs / 1000),
    f1(x.simCpuMs / 1000),
    x.error ? `**FAILED**: ${x.error}` : 'ok',
  ])
  const head = ['measure', 'doorctl', 'floor', 'value', 'target', 'result']
  const parts = [
    '## 2. pull',
    stamp(e) + (e.commit ? ` · code at ${e.commit}` : ''),
    `${f0(r.records)} generated records on the simulator, which answers every request ${r.latencyMs} ms late (as a device on a LAN might), exported to a file by doorctl (NDJSON, CSV) and by the floor (NDJSON), ${r.stats.floor.runs} rounds, interleaved and rotating. records/s = records in the output / wall seconds (spawn to exit); every output is checked for the count and for ids exported twice ("unique").`,
    table(['run', '#', 'wall s', 'records', 'unique', 'records/s', 'peak RSS MB', 'client CPU s', 'simulator CPU s', 'check'], rows),
    table(head, pullMeasures(r)),
  ]
  const b = before?.result
  if (b?.version === 2) {
    parts.push(
      `**Before** (the code at ${before.commit ?? 'the previous commit'}, measured the same way on ${before.date}, load average ${before.loadBefore.join('/')} before, ${before.loadAfter.join('/')} after):`,
      table(head, pullMeasures(b)),
    )
  }
  for (const [side, p] of Object.entries(r.profiles ?? {})) {
    parts.push(
      `CPU profile of one more ${side.toUpperCase()} run (\`node --cpu-prof\`, not counted above: ${f1(p.ms / 1000)} s, ${f0(p.rate)} records/s), self time by area: ` +
        p.areas.map((a) => `${a.area} ${f0(100 * a.share)} %`).join(', ') + '. Top functions by self time:',
      table(['function', 'where', 'area', 'ms', 'share'], p.top.map((t) => [`\`${t.fn}\``, t.where ? `\`${t.where}\`` : '(native)', t.area, f0(t.ms), `${f1(100 * t.share)} %`])),
    )
  }
  if (b?.profiles) {
    for (const [side, p] of Object.entries(b.profiles)) {
      parts.push(`Before, the same profile (${side.toUpperCase()}): ` + p.areas.map((a) => `${a.area} ${f0(100 * a.share)} %`).join(', ') + '.')
    }
  }
  return parts.join('\n\n')
}

function renderImport(e) {
  const r = e.result
  const rows = r.runs.map((x) => [
    x.side === 'doorctl' ? '`doorctl people import --json`' : 'floor: `bench/floor-import.js`',
    String(x.round + 1),
    f2(x.ms / 1000),
    f0(x.users),
    f0(x.rate),
    f1(mb(x.rssKB)),
    f1(x.cpuMs / 1000),
    x.error ? `**FAILED**: ${x.error}` : 'ok',
  ])
  return [
    '## 3. import',
    stamp(e),
    `${f0(r.people)} people without photos (\`id,name,card,phone,department\`, Latin and Chinese names), each run against a fresh simulator; "users" is what the simulator holds afterwards.`,
    table(['run', '#', 'wall s', 'users', 'people/s', 'peak RSS MB', 'client CPU s', 'check'], rows),
    table(['measure', 'doorctl', 'floor', 'value', 'target', 'result'], [
      ['people/s, best of 2 (ratio doorctl / floor)', f0(r.best.doorctl?.rate), f0(r.best.floor?.rate), f2(r.ratio), `≥ ${TARGETS.importRatio}`, verdict(r.pass)],
      ['peak RSS MB, highest of the runs', f1(mb(r.doorctlRssKB)), f1(mb(r.floorRssKB)), '—', '(none)', '—'],
    ]),
  ].join('\n\n')
}

function renderValidate(e) {
  const r = e.result
  const s = r.summary
  const rows = Object.entries(s).map(([k, v]) => [
    k === 'doorctl' ? '`doorctl people import big.csv bench --dry-run --json`' : k === 'parse' ? 'floor: `bench/floor-validate.js` (csv-parse, count rows)' : 'floor: `node -e 0` (RSS scale)',
    String(v.runs),
    f0(v.medianMs),
    f0(v.minMs),
    f0(v.medianCpuMs),
    k === 'node' ? '—' : f0(r.people / (v.medianMs / 1000)),
    f1(mb(v.peakRssKB)),
  ])
  return [
    '## 4. validate',
    stamp(e),
    `A ${f0(r.people)}-row people CSV (no photos) checked with \`--dry-run\`; three interleaved rounds, medians.`,
    table(['command', 'runs', 'median ms', 'min ms', 'median CPU ms', 'rows/s', 'peak RSS MB'], rows),
    table(['measure', 'value', 'target', 'result'], [
      ['doorctl peak RSS MB (highest of the runs)', f1(mb(s.doorctl.peakRssKB)), `≤ ${TARGETS.validateRssMB}`, verdict(r.pass)],
      ['doorctl RSS above `node -e 0`, MB', f1(mb(s.doorctl.peakRssKB - s.node.peakRssKB)), '(for scale)', '—'],
      ['wall time doorctl / csv-parse floor', f2(r.timeRatio), '(none)', '—'],
    ]),
  ].join('\n\n')
}

const RENDER = { startup: renderStartup, pull: renderPull, import: renderImport, validate: renderValidate, gateway: (e) => renderGateway(e), udp: (e) => renderUdp(e), wsjson: (e) => renderConn('wsjson', e), bestm: (e) => renderConn('bestm', e), fleet: (e) => renderFleet(e, { f0, f1, f2, table, verdict, stamp }), store: (e) => renderStore(e, { stamp, table, f0, f2, verdict }), provision: (e) => renderProvision(e, { stamp, table, f0, f1, f2, verdict }), copy: (e) => renderCopy(e, { f1, f2, table, stamp }), admin: (e) => renderAdmin(e, { f0, f1, f2, table, verdict, stamp }), gateways: (e) => renderGateways(e, { stamp, table, f0, f1, verdict }) }

function autoNotes(all) {
  const notes = []
  const st = all.startup?.result
  if (st) {
    const by = Object.fromEntries(st.commands.map((c) => [c.key, c]))
    const oclifRatio = by.oclif.median / by.node.median
    const budget = TARGETS.startupRatio * by.node.median
    notes.push(
      `**startup** is dominated by loading \`@oclif/core\`: \`node -e "import('@oclif/core')"\` alone takes ${f0(by.oclif.median)} ms (median) against ${f0(by.node.median)} ms for \`node -e 0\` (${f2(oclifRatio)}× the floor), before oclif reads doorctl's manifest or touches any command; \`--version\` takes ${f0(by.doorctl.median)} ms in all. ` +
        (oclifRatio > TARGETS.startupRatio
          ? `The target ratio of ${TARGETS.startupRatio} (${f0(budget)} ms here) is below what importing oclif alone costs, so it cannot be met while every start loads @oclif/core.`
          : `The target ratio of ${TARGETS.startupRatio} allows ${f0(budget)} ms here; oclif's import leaves ${f0(budget - by.oclif.median)} ms of it for everything else, against the ${f0(by.doorctl.median - by.oclif.median)} ms the rest of \`--version\` takes.`) +
        ` The modules \`--version\` loads are all oclif's and its dependencies' (none from doorctl's src/). \`node -e 0\` itself takes ${f0(by.node.median)} ms on this machine; the slower the floor, the smaller every ratio against it.`,
    )
  }
  const pu = all.pull?.result
  if (pu?.version === 2) {
    const avg = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length
    const of = (side, k) => f1(avg(pu.runs.filter((r) => r.side === side && r[k] !== undefined).map((r) => r[k])) / 1000)
    notes.push(
      `**pull**: the simulator generates every record on request and serialises 1000 a page, in a process of its own; it used ${of('ndjson', 'simCpuMs')} s of CPU per doorctl NDJSON run, ${of('csv', 'simCpuMs')} s per CSV run and ${of('floor', 'simCpuMs')} s per floor run, while the clients themselves used ${of('ndjson', 'cpuMs')} s (NDJSON), ${of('csv', 'cpuMs')} s (CSV) and ${of('floor', 'cpuMs')} s (floor). On 2 cores the device, the client and anything else running on the machine share the CPUs, so every side is partly bound by the simulator. The floor has one request in flight and writes each record with its own write. doorctl keeps three pages in flight while it decodes and writes the current one (a page waits as bytes and is parsed when its turn comes), parses a page's record array a slice of ~32 KB at a time instead of as one ~350 KB string (V8 builds strings over ~128 KB in its large-object space, several times costlier and kept until a full GC), encodes each row straight into one buffer per page and writes it at once, reuses its body and output buffers, and bounds V8's old-generation growth during a pull (\`--heap-growing-percent=100\`). In the profiles a function's self time includes the native work V8 does not sample apart: \`writeRows\` is mostly JSON.stringify of the rows, \`parseAnswer\` is JSON.parse of the bodies, \`slice\` (Buffer#toString) their UTF-8 decoding, \`write\`/\`writeBuffer\`/\`writeLatin1String\` the encoding of rows into the output buffer; idle is waiting for the device or the disk.`,
    )
  }
  const im = all.import?.result
  if (im) {
    notes.push(
      `**import**: the floor sends one request at a time (sequential, as specified); doorctl keeps 4 requests in flight per device` +
        (im.ratio > 1 ? `, which is why it beats the floor (ratio ${f2(im.ratio)}): its per-person overhead is hidden by that concurrency, it does not do less work.` : '.') +
        ` Each run adds ${f0(im.people)} new users to a fresh simulator (its own process, started before the timed command). V8 would compile undici's WebAssembly HTTP parser (llhttp) a second time with its optimising compiler shortly after the first request, a transient ~35 MB (one request through undici's \`Pool\` peaked at ~99 MB, ~64 MB without it); \`bin/run.js\` keeps WebAssembly at V8's baseline tier (\`--liftoff-only\`), so doorctl no longer pays it, while the fetch-based floors still do for Node's built-in undici.`,
    )
  }
  const va = all.validate?.result
  if (va) {
    notes.push(
      `**validate**: the floor only parses (csv-parse, streaming, columns) and counts; doorctl also starts oclif, loads the driver for its rules and checks every field of every row, and keeps every validated person (the import needs them afterwards), so its RSS grows with the file: ${f1(mb(va.summary.doorctl.peakRssKB - va.summary.node.peakRssKB))} MB above \`node -e 0\` for ${f0(va.people)} rows. Measured separately on a scratch copy of dist/ while writing these benchmarks: asking csv-parse for \`info: true\` (a new ~15-field object per record, used only for line numbers) costs ~23 MB of that peak and ~0.3 s of CPU, and loading the openapi driver for its rules also loads undici and ws (~14 MB) although a dry run sends nothing; without both, the same run peaked at ~121 MB.`,
    )
  }
  const ud = all.udp?.result
  if (ud) {
    notes.push(
      `**udp**: ${f0(ud.drops)} of ${f0(ud.sent)} heartbeats got no heartack within 2 s, ${f0(ud.measuredDrops)} of them after the ${ud.warmupMs / 1000} s warm-up; the kernel counted ${f0(ud.udpKernel?.RcvbufErrors)} UDP receive-buffer overflows (RcvbufErrors, whole machine) in the same time, so the drops are datagrams the kernel discarded because serve's socket buffer was full (serve leaves SO_RCVBUF at the default, net.core.rmem_default = 212,992 bytes; a few hundred datagrams at most) while its event loop fell behind, all of it in the first seconds (most likely the first heartbeats of devices serve had not heard from yet, which cost more than the later ones; not profiled) — after the warm-up, 2,000/s were answered without a drop. Raising the socket's receive buffer (\`recvBufferSize\` in dgram.createSocket, capped by net.core.rmem_max) would absorb such a burst. Load generator and serve share the 2 CPUs; the p99 includes the load generator's own event-loop delay.`,
    )
  }
  const ws = all.wsjson?.result
  if (ws) {
    notes.push(
      `**wsjson**: the heartbeat p50 is ${f1(ws.p50)} ms and the tail (p99 ${f1(ws.p99)} ms) is a small share of samples; during the measured window ${ws.commandCount} \`doorctl people list\` processes start (each a whole node + oclif start-up, several hundred ms of CPU) on the same 2 CPUs as serve and the load generator, which is the likely cause of the tail (not separated out in this run). Memory per connection is serve's VmRSS difference, so it includes whatever V8 had not collected yet; the end-of-run VmRSS grows further with the heartbeats' garbage.`,
    )
  }
  const be = all.bestm?.result
  if (be) {
    notes.push(
      `**bestm**: the best driver and its embedded MQTT broker are in serve's process, so memory per device (${f1(be.perConnKB)} KB) includes the broker's per-client state (session, subscriptions) as well as the driver's. The heartbeat round trip has a p50 of ${f1(be.p50)} ms; with 200 devices (40/s) it was ~47 ms too, so it is a fixed delay, not load — its size (~40 ms) suggests a Nagle / delayed-ACK interaction on one of the loopback TCP connections (device ↔ broker; not verified here). Command round trips (${f0(be.rtP50)} ms p50) carry it twice (command down, answer up). Connecting all ${f0(be.devices)} (getBrokerServer + MQTT connect + exchange + login + report, 50 at a time) took ${f1(be.connectMs / 1000)} s.`,
    )
  }
  if (all.gateways?.result) { const n = gatewaysNote(all.gateways); if (n) notes.push(n) }
  for (const [name, e] of Object.entries(all)) for (const err of e.result?.errors ?? []) notes.push(`**${name} failure**: ${err}`)
  for (const [name, e] of Object.entries(all)) if (e.crash) notes.push(`**${name} did not complete**: ${e.crash}`)
  return notes
}

function render(all) {
  const m = Object.values(all).sort((a, b) => (a.date < b.date ? 1 : -1))[0]?.machine
  const parts = [
    '# doorctl benchmarks',
    'Run all four with `npm run bench` (builds first; about 2½ minutes on a 2-core machine, plus the build), or one with `node bench/run.js startup|pull|import|validate` after `npm run build`; that updates its own section here and keeps the others (each section says when it was measured). Every measured process is a child started by `bench/run.js`, timed from spawn to exit; peak RSS is `process.resourceUsage().maxRSS` written at exit by `bench/rss-probe.js`, loaded through `NODE_OPTIONS=--import=…` into doorctl and into every floor alike. The simulated device (`bench/sim-server.js`) runs in a process of its own on 127.0.0.1, so its CPU time is counted against neither side, although on 2 cores it still competes for them. **Floors**, measured in the same run and interleaved with doorctl: *startup* — `node -e 0`; *pull* — `bench/floor-pull.js`, global `fetch` paging `/api/record` 1000 a page one request at a time and writing each raw record as a JSON line through a write stream with back-pressure; *import* — `bench/floor-import.js`, one signed `POST /api/user` after the other with `fetch`; *validate* — `bench/floor-validate.js`, csv-parse streaming the same file and counting rows (wall time), and `node -e 0` for RSS scale. Raw numbers are in `bench/results.json`.',
    m ? `Machine: ${m.nproc} CPUs (\`nproc\`), ${m.cpu}, ${m.totalMemGiB} GiB RAM, node ${m.node}, ${m.platform}. MB here are MiB (maxRSS KB / 1024).` : '',
  ]
  const ORDER = ['startup', 'pull', 'import', 'validate', 'gateway', 'udp', 'wsjson', 'bestm', 'fleet', 'store', 'provision', 'copy', 'admin', 'gateways']
  for (const name of ORDER) {
    const e = all[name]
    if (!e) {
      parts.push(`## ${ORDER.indexOf(name) + 1}. ${name}\n\nNot measured yet: \`node bench/run.js ${name}\`.`)
      continue
    }
    if (e.crash) {
      parts.push(`## ${ORDER.indexOf(name) + 1}. ${name}\n\n${stamp(e)}\n\n**The benchmark did not complete:** ${e.crash}`)
      continue
    }
    parts.push(name === 'pull' ? renderPull(e, all['pull-before']) : RENDER[name](e))
  }
  const notes = autoNotes(all)
  notes.push(
    'Every wall time includes starting node itself (about one `node -e 0`), on both sides. The machine may be shared with other work: each section gives the load average before and after it ran; interleaving and alternating the order keep doorctl and its floor under the same load, but absolute numbers move between runs more than the ratios do.',
  )
  parts.push(['## Notes', ...notes.map((n) => `- ${n}`)].join('\n\n'))
  return parts.filter(Boolean).join('\n\n') + '\n'
}


// ---------------------------------------------------------------------------------------------
// 5. gateway: N httpv2 devices keepaliving every second against `doorctl serve`

async function benchGateway() {
  const count = SIZES.devices
  const intervalMs = 1000
  const durationMs = 20_000
  const warmupMs = 5_000
  const home = join(work, 'gw-home')
  const csv = join(work, 'gw-devices.csv')
  writeFileSync(csv, 'name,protocol,sn\n' + Array.from({ length: count }, (_, i) => `dev-${i + 1},httpv2,BENCH${String(i + 1).padStart(6, '0')}`).join('\n') + '\n')
  const imp = await runNode([RUN, 'device', 'import', csv], { env: { DOORCTL_HOME: home } })
  if (failure(imp)) throw new Error(`device import: ${failure(imp)}`)
  // serve, measured with the RSS probe; its ready line gives the port
  const e = childEnv({ DOORCTL_HOME: home, NODE_OPTIONS: `--import=${PROBE}`, BENCH_RSS_FILE: join(work, 'gw-serve-rss') })
  const serve = spawn(NODE, [RUN, 'serve', '--http-port', '0', '--bind', '127.0.0.1', '--admin-port', '0', '--json'], { cwd: ROOT, env: e, stdio: ['ignore', 'pipe', 'pipe'] })
  let serveErr = ''
  serve.stderr.on('data', (c) => { serveErr += c })
  const ready = await new Promise((resolveReady, reject) => {
    const lines = createInterface({ input: serve.stdout })
    lines.once('line', (l) => resolveReady(JSON.parse(l)))
    serve.once('exit', (code) => reject(new Error(`serve exited ${code}: ${tail(serveErr)}`)))
  })
  const load = spawn(NODE, [join(BENCH, 'keepalive-load.js'), String(ready.http_port), String(count), String(intervalMs), String(durationMs), String(warmupMs)], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const report = new Promise((resolveReport) => load.on('message', (m) => { if (m.type === 'report') resolveReport(m) }))
  // while the load runs: queue a door opening for 10 devices, one every second, through serve
  await new Promise((r) => setTimeout(r, warmupMs))
  const queued = []
  for (let k = 0; k < 10; k++) {
    const name = `dev-${1 + Math.floor((k * count) / 10)}`
    const r = await runNode([RUN, 'device', 'open', name, '--no-wait', '--json'], { env: { DOORCTL_HOME: home } })
    if (failure(r) || JSON.parse(r.stdout).results[0].status !== 'queued') throw new Error(`device open --no-wait: ${failure(r) ?? r.stdout}`)
    queued.push(name)
    await new Promise((r2) => setTimeout(r2, 500))
  }
  const loadResult = await report
  serve.kill('SIGTERM')
  await new Promise((r) => serve.once('close', r))
  const rssKB = Number(readFileSync(join(work, 'gw-serve-rss'), 'utf8').trim().split(/\s+/)[0])
  // queue → delivery times, as the gateway's own durable queue recorded them
  const { default: Database } = await import('better-sqlite3')
  const db = new Database(join(home, 'gateway.db'), { readonly: true })
  const rows = db.prepare("SELECT device, created_at, delivered_at FROM commands WHERE kind = 'open'").all()
  db.close()
  const deliveryMs = rows.map((row) => (row.delivered_at ? row.delivered_at - row.created_at : NaN)).sort((a, b) => a - b)
  const undelivered = deliveryMs.filter((x) => Number.isNaN(x)).length
  const maxDelivery = Math.max(...deliveryMs.filter((x) => !Number.isNaN(x)))
  return {
    devices: count, intervalMs, durationMs, warmupMs, ...loadResult, errors: undefined, errorCount: loadResult.errors, serveRssKB: rssKB, queued: queued.length,
    delivered: rows.length - undelivered, deliveryMs, maxDelivery,
    pass: { p99: loadResult.p99 < 50, errors: loadResult.errors === 0, rss: rssKB / 1024 <= 300, delivery: undelivered === 0 && maxDelivery <= intervalMs + 100 },
  }
}

function renderGateway(e) {
  const r = e.result
  return [
    '## 5. gateway (httpv2 keepalives against `doorctl serve`)',
    stamp(e),
    `${f0(r.devices)} simulated httpv2 devices (\`bench/keepalive-load.js\`, its own process, one keep-alive connection per device) POST \`/Device/Keepalive\` every ${r.intervalMs} ms for ${r.durationMs / 1000} s against \`doorctl serve\`; latencies after a ${r.warmupMs / 1000} s warm-up. Meanwhile 10 door openings are queued through serve with \`doorctl device open NAME --no-wait\`; their queue → delivery times come from the gateway's own queue (\`created_at\` → \`delivered_at\`).`,
    table(['measure', 'value', 'target', 'result'], [
      ['keepalives answered (measured)', `${f0(r.requests)} (${f0(r.measured)})`, '', ''],
      ['keepalive latency p50 / p99 / max ms', `${f1(r.p50)} / ${f1(r.p99)} / ${f1(r.max)}`, 'p99 < 50', verdict(r.pass.p99)],
      ['errors', f0(r.errorCount), '0', verdict(r.pass.errors)],
      ['gateway peak RSS MB', f1(mb(r.serveRssKB)), '≤ 300', verdict(r.pass.rss)],
      ['queued → delivered ms (10 commands), max', `${r.deliveryMs.map((x) => f0(x)).join(', ')}; max ${f0(r.maxDelivery)}`, `≤ interval + 100 = ${r.intervalMs + 100}`, verdict(r.pass.delivery)],
      ['load generator peak RSS MB', f1(mb(r.rssKB)), '', ''],
    ]),
    r.errorSamples?.length ? `First errors: ${r.errorSamples.map((x) => `\`${x}\``).join('; ')}` : '',
  ].filter(Boolean).join('\n\n')
}

// ---------------------------------------------------------------------------------------------
// 6–8. udp / wsjson / bestm: many devices of one push protocol against `doorctl serve`

/** `doorctl serve` on 127.0.0.1 with every listener on port 0, measured with the RSS probe; resolves with its JSON ready line. */
async function startServe(home, tag, extraArgs = []) {
  const rssFile = join(work, `${tag}-serve-rss`)
  const e = childEnv({ DOORCTL_HOME: home, NODE_OPTIONS: `--import=${PROBE}`, BENCH_RSS_FILE: rssFile })
  // BENCH_SERVE_CPU_PROF=DIR: a V8 CPU profile of every serve (written when it stops), to see where its time goes
  const prof = process.env.BENCH_SERVE_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_SERVE_CPU_PROF}`, `--cpu-prof-name=${tag}.cpuprofile`] : []
  const child = spawn(NODE, [...prof, RUN, 'serve', '--http-port', '0', '--udp-port', '0', '--mqtt-port', '0', '--bind', '127.0.0.1', '--admin-port', '0', ...extraArgs, '--json'], { cwd: ROOT, env: e, stdio: ['ignore', 'pipe', 'pipe'] })
  sims.add(child)
  let err = ''
  child.stderr.on('data', (c) => { err = (err + c).slice(-20_000) })
  const ready = await new Promise((resolveReady, reject) => {
    const lines = createInterface({ input: child.stdout })
    lines.once('line', (l) => { try { resolveReady(JSON.parse(l)) } catch { reject(new Error(`serve printed ${tail(l, 200)}`)) } })
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${tail(err)}`)))
  })
  return {
    child, ready, pid: child.pid,
    stderr: () => err,
    async stop() {
      child.kill('SIGTERM')
      if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('close', r))
      sims.delete(child)
      return existsSync(rssFile) ? Number(readFileSync(rssFile, 'utf8').trim().split(/\s+/)[0]) : undefined
    },
  }
}

/** Current resident set (KB) of a process, from /proc/PID/status. */
function vmRssKB(pid) {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) : undefined
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const pctOf = (xs, p) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b)
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : undefined
}

async function importInventory(home, csv, header, rows) {
  writeFileSync(csv, header + '\n' + rows.join('\n') + '\n')
  const imp = await runNode([RUN, 'device', 'import', csv], { env: { DOORCTL_HOME: home } })
  if (failure(imp)) throw new Error(`device import: ${failure(imp)}`)
}

/** The kernel's UDP counters (/proc/net/snmp, whole machine): receive-buffer overflows show up in RcvbufErrors. */
function udpCounters() {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'))
  const [head, vals] = lines.map((l) => l.split(/\s+/).slice(1))
  return Object.fromEntries(head.map((k, i) => [k, Number(vals[i])]))
}

async function benchUdp() {
  const count = SIZES.udpDevices
  const intervalMs = 5000
  const durationMs = 30_000
  const warmupMs = 10_000
  const home = join(work, 'udp-home')
  await importInventory(home, join(work, 'udp-devices.csv'), 'name,protocol,community,code', Array.from({ length: count }, (_, i) => `udp-${i + 1},udp,B1,${i + 1}`))
  const serve = await startServe(home, 'udp')
  let loadResult
  let idleKB
  let loadedKB
  try {
    await sleep(1000)
    idleKB = vmRssKB(serve.pid)
    var udpBefore = udpCounters()
    const load = spawn(NODE, [join(BENCH, 'udp-load.js'), String(serve.ready.udp_port), String(count), String(intervalMs), String(durationMs), String(warmupMs), 'B1'], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const report = new Promise((resolveReport, reject) => { load.once('message', resolveReport); load.once('exit', (c) => reject(new Error(`udp-load exited ${c} without a report`))) })
    await sleep(durationMs - 2000)
    loadedKB = vmRssKB(serve.pid)
    loadResult = await report
    var udpAfter = udpCounters()
  } finally {
    var serveRssKB = await serve.stop()
  }
  return { devices: count, intervalMs, durationMs, warmupMs, rate: (count * 1000) / intervalMs, ...loadResult, errors: undefined, serveRssKB, idleKB, loadedKB, udpKernel: udpAfter && udpBefore ? Object.fromEntries(Object.keys(udpAfter).map((k) => [k, udpAfter[k] - udpBefore[k]])) : undefined }
}

function renderUdp(e) {
  const r = e.result
  return [
    '## 6. udp (udp intercom heartbeats against `doorctl serve`)',
    stamp(e),
    `${f0(r.devices)} simulated udp intercoms (\`bench/udp-load.js\`, its own process, one dgram socket per device on 127.0.0.1) send a heartbeat every ${r.intervalMs / 1000} s (the document's devices: every 50 s; compressed, ${f0(r.rate)}/s in all, spread evenly) for ${r.durationMs / 1000} s to serve's UDP port and wait for the \`heartack\` on the same socket; latencies after a ${r.warmupMs / 1000} s warm-up. A heartbeat not answered within 2 s is a drop. No target was given: the numbers are reported as measured.`,
    table(['measure', 'value'], [
      ['heartbeats sent / answered (measured)', `${f0(r.sent)} / ${f0(r.answered)} (${f0(r.measured)})`],
      ['heartack latency p50 / p99 / max ms', `${f1(r.p50)} / ${f1(r.p99)} / ${f1(r.max)}`],
      ['drops (no heartack within 2 s): all / after warm-up', `${f0(r.drops)} / ${f0(r.measuredDrops)}`],
      ['kernel UDP counters during the run (whole machine): InDatagrams / RcvbufErrors / SndbufErrors', r.udpKernel ? `${f0(r.udpKernel.InDatagrams)} / ${f0(r.udpKernel.RcvbufErrors)} / ${f0(r.udpKernel.SndbufErrors)}` : '—'],
      ['heartacks with result ≠ 0 / send errors', `${f0(r.refused)} / ${f0(r.sendErrors)}`],
      ['serve RSS idle → under load MB (VmRSS)', `${f1(mb(r.idleKB))} → ${f1(mb(r.loadedKB))}`],
      ['serve peak RSS MB', f1(mb(r.serveRssKB))],
      ['load generator peak RSS MB / CPU s', `${f1(mb(r.rssKB))} / ${f1(r.cpuMs / 1000)}`],
    ]),
    r.errorSamples?.length ? `First errors: ${r.errorSamples.map((x) => `\`${x}\``).join('; ')}` : '',
  ].filter(Boolean).join('\n\n')
}

/** Shared by wsjson and bestm: N simulator devices (bench/conn-load.js), memory per connection, heartbeat RTT, command round trips. */
async function benchConn(kind) {
  const count = kind === 'wsjson' ? SIZES.wsjsonDevices : SIZES.bestDevices
  const intervalMs = 5000
  const measureMs = 20_000
  const commandCount = 20
  const home = join(work, `${kind}-home`)
  const PRODUCT = '5d9b11e1a3f448ae81f9f920e976d852'
  const sn = kind === 'wsjson' ? 'WSJ' : 'BEST'
  const name = (i) => `${kind}-${i}`
  if (kind === 'wsjson') await importInventory(home, join(work, `${kind}.csv`), 'name,protocol,sn', Array.from({ length: count }, (_, i) => `${name(i + 1)},wsjson,${sn}${String(i + 1).padStart(6, '0')}`))
  else await importInventory(home, join(work, `${kind}.csv`), 'name,protocol,sn,transport,product_id,device_secret,broker_key', Array.from({ length: count }, (_, i) => `${name(i + 1)},best,${sn}${String(i + 1).padStart(6, '0')},mqtt,${PRODUCT},bench-secret-${i + 1},aabbcc`))
  const serve = await startServe(home, kind)
  const out = { devices: count, intervalMs, measureMs, commandCount }
  let load
  try {
    if (kind === 'bestm' && !serve.ready.mqtt_url) throw new Error(`serve's ready line has no mqtt_url: ${JSON.stringify(serve.ready)}`)
    await sleep(2000)
    out.idleKB = vmRssKB(serve.pid)
    const o = kind === 'wsjson'
      ? { proto: 'wsjson', url: `ws://127.0.0.1:${serve.ready.http_port}/wsjson`, count, intervalMs, sn }
      : { proto: 'best', server: `http://127.0.0.1:${serve.ready.http_port}`, count, intervalMs, sn, productId: PRODUCT, brokerKey: 'aabbcc' }
    if (kind === 'bestm') o.deviceSecretPrefix = 'bench-secret-'
    load = spawn(NODE, [join(BENCH, 'conn-load.js'), JSON.stringify(o)], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const msgs = []
    const waiters = []
    load.on('message', (m) => (waiters.length ? waiters.shift()(m) : msgs.push(m)))
    const loadExit = new Promise((r) => load.once('exit', r))
    const next = (ms) => Promise.race([
      new Promise((r) => (msgs.length ? r(msgs.shift()) : waiters.push(r))),
      loadExit.then((c) => { throw new Error(`load generator exited ${c}`) }),
      sleep(ms).then(() => { throw new Error(`no answer from the load generator within ${ms / 1000} s`) }),
    ])
    const conn = await next(180_000)
    out.connected = conn.ok
    out.connectFailed = conn.failed
    out.connectMs = conn.ms
    out.connectErrors = conn.errorSamples
    if (conn.ok === 0) throw new Error(`no device connected: ${conn.errorSamples.join('; ')}`)
    await sleep(3000)
    out.connectedKB = vmRssKB(serve.pid)
    out.perConnKB = (out.connectedKB - out.idleKB) / conn.ok
    load.send('measure')
    // commands through serve while the heartbeats go on: `people list DEVICE --no-wait`, spread over the devices
    const queued = []
    for (let k = 0; k < commandCount; k++) {
      const dev = name(1 + Math.floor((k * count) / commandCount))
      const r = await runNode([RUN, 'people', 'list', dev, '--no-wait', '--json'], { env: { DOORCTL_HOME: home } })
      if (failure(r)) throw new Error(`people list --no-wait: ${failure(r)}`)
      queued.push(dev)
      await sleep(Math.max(0, measureMs / 2 / commandCount - r.ms))
    }
    out.queued = queued.length
    await sleep(measureMs / 2)
    out.loadedKB = vmRssKB(serve.pid)
    load.send('stop')
    Object.assign(out, await next(30_000), { type: undefined })
    await loadExit
  } finally {
    if (load && load.exitCode === null) load.kill('SIGKILL')
    out.serveRssKB = await serve.stop()
  }
  const { default: Database } = await import('better-sqlite3')
  const db = new Database(join(home, 'gateway.db'), { readonly: true })
  const rows = db.prepare('SELECT device, kind, state, created_at, delivered_at, finished_at FROM commands').all()
  db.close()
  out.kinds = [...new Set(rows.map((r) => `${r.kind}:${r.state}`))]
  out.roundTripMs = rows.map((r) => (r.finished_at ? r.finished_at - r.created_at : NaN))
  out.deliveryMs = rows.map((r) => (r.delivered_at ? r.delivered_at - r.created_at : NaN))
  out.finished = out.roundTripMs.filter((x) => !Number.isNaN(x)).length
  out.rtP50 = pctOf(out.roundTripMs, 50)
  out.rtP99 = pctOf(out.roundTripMs, 99)
  out.rtMax = pctOf(out.roundTripMs, 100)
  return out
}

function renderConn(kind, e) {
  const r = e.result
  const what = kind === 'wsjson'
    ? `${f0(r.devices)} wsjson devices (doorctl's own simulator, \`createWsjsonSimulator\`, all in \`bench/conn-load.js\`, its own process) connect to \`ws://127.0.0.1:PORT/wsjson\` and register (205); serve's register answer assigns 30 s, which the load generator compresses to a heartbeat (206) every ${r.intervalMs / 1000} s per device (${f0((r.devices * 1000) / r.intervalMs)}/s in all). Heartbeat round trip = the simulator sending 206 → serve's response arriving (timed by wrapping the simulator's own methods; it has one message in flight at a time).`
    : `${f0(r.devices)} best-m devices (doorctl's own simulator, \`createBestSimulator\`, transport mqtt, all in \`bench/conn-load.js\`, its own process) ask serve's \`/v3/device/getBrokerServer\`, connect to serve's embedded MQTT broker, log in (device secret from the inventory, so no dev.accredit) and send dev.heartbeat every ${r.intervalMs / 1000} s per device (${f0((r.devices * 1000) / r.intervalMs)}/s in all). Heartbeat round trip = dev.heartbeat published → serve's answer received (timed by wrapping the simulator's request method).`
  return [
    kind === 'wsjson' ? '## 7. wsjson (WebSocket devices against `doorctl serve`)' : '## 8. bestm (best-m devices over MQTT against `doorctl serve`)',
    stamp(e),
    what + ` Memory per connection = (serve VmRSS 3 s after all connected − VmRSS before any connected) / connected, from /proc/PID/status. Meanwhile ${r.commandCount} \`doorctl people list DEVICE --no-wait\` are queued through serve on devices spread over the range (the simulated device answers them); their round trips are \`created_at\` → \`finished_at\` of the gateway's own queue. No targets were given: the numbers are reported as measured.`,
    table(['measure', 'value'], [
      ['connected / failed (time to connect all)', `${f0(r.connected)} / ${f0(r.connectFailed)} (${f1(r.connectMs / 1000)} s)`],
      ['heartbeat round trip p50 / p99 / max ms (samples)', `${f1(r.p50)} / ${f1(r.p99)} / ${f1(r.max)} (${f0(r.measured)})`],
      ['heartbeat failures while measured / still up at the end', `${f0(r.hbFailures ?? 0)} / ${f0(r.stillUp)}`],
      ['serve VmRSS idle → connected → end of run MB', `${f1(mb(r.idleKB))} → ${f1(mb(r.connectedKB))} → ${f1(mb(r.loadedKB))}`],
      ['memory per connection KB', f1(r.perConnKB)],
      ['serve peak RSS MB', f1(mb(r.serveRssKB))],
      [`command round trip (${r.finished}/${r.queued} finished) p50 / p99 / max ms`, `${f0(r.rtP50)} / ${f0(r.rtP99)} / ${f0(r.rtMax)}`],
      ['queue → delivered ms, p50 / max', `${f0(pctOf(r.deliveryMs, 50))} / ${f0(pctOf(r.deliveryMs, 100))}`],
      ['commands in the queue (kind:state)', r.kinds.join(', ')],
      ['load generator peak RSS MB / CPU s', `${f1(mb(r.rssKB))} / ${f1(r.cpuMs / 1000)}`],
    ]),
    r.connectErrors?.length ? `First connect errors: ${r.connectErrors.map((x) => `\`${x}\``).join('; ')}` : '',
    r.errorSamples?.length ? `First errors: ${r.errorSamples.map((x) => `\`${x}\``).join('; ')}` : '',
  ].filter(Boolean).join('\n\n')
}

// ---------------------------------------------------------------------------------------------
// 9. fleet (bench/fleet.js) gets this file's process helpers

const fleetHelpers = { runNode, startServe, importInventory, failure, childEnv, sleep, work, sizes: SIZES, root: ROOT, bench: BENCH, run: RUN, node: NODE }

// ---------------------------------------------------------------------------------------------
// main

const BENCHES = {
  startup: benchStartup, pull: benchPull, import: benchImport, validate: benchValidate, gateway: benchGateway, udp: benchUdp, wsjson: () => benchConn('wsjson'), bestm: () => benchConn('bestm'),
  fleet: (previous) => benchFleet(fleetHelpers, previous), store: () => benchStore({ ops: SIZES.storeOps, log }),
  copy: () => benchCopy({ runNode, startSim, freshHome, failure, log, work, sizes: SIZES, root: ROOT, run: RUN, password: PASSWORD }),
  admin: () => benchAdmin(fleetHelpers),
  gateways: () => benchGateways(fleetHelpers),
  provision: () => benchProvision({ runNode, failure, childEnv, work, RUN, BENCH, NODE, ROOT, doors: SIZES.doors }),
}

async function main() {
  const asked = process.argv.slice(2)
  if (asked.length === 1 && asked[0] === 'render') {
    // only re-render RESULTS.md from results.json (after a change to the text)
    writeFileSync(RESULTS_MD, render(JSON.parse(readFileSync(RESULTS_JSON, 'utf8'))))
    return
  }
  const unknown = asked.filter((a) => !(a in BENCHES))
  if (unknown.length) {
    process.stderr.write(`unknown benchmark ${unknown.join(', ')}; usage: node bench/run.js [${Object.keys(BENCHES).join('|')} …]\n`)
    process.exit(2)
  }
  if (!existsSync(join(ROOT, 'dist', 'src', 'simulators', 'openapi', 'index.js'))) {
    process.stderr.write('dist/ is missing: run `npm run build` first (npm run bench does)\n')
    process.exit(2)
  }
  const names = asked.length ? [...new Set(asked)] : Object.keys(BENCHES)
  let all = {}
  try {
    all = JSON.parse(readFileSync(RESULTS_JSON, 'utf8'))
  } catch {
    all = {}
  }
  const mach = machine()
  let crashed = false
  const t0 = Date.now()
  for (const name of names) {
    log(`${name} …`)
    const entry = { date: new Date().toISOString(), machine: mach, commit: commitOf(), sizes: sizesFor(name), loadBefore: loadavg() }
    const t = Date.now()
    try {
      entry.result = await BENCHES[name](all[name])
    } catch (err) {
      crashed = true
      entry.crash = err instanceof Error ? err.message : String(err)
      log(`${name} did not complete: ${entry.crash}`)
    }
    entry.loadAfter = loadavg()
    entry.seconds = (Date.now() - t) / 1000
    // BENCH_SAVE_AS keeps a run beside the current one (e.g. pull-before: the code before a change)
    all[names.length === 1 && process.env.BENCH_SAVE_AS ? process.env.BENCH_SAVE_AS : name] = entry
    writeFileSync(RESULTS_JSON, JSON.stringify(all, null, 2) + '\n')
    writeFileSync(RESULTS_MD, render(all))
    log(`${name} done in ${entry.seconds.toFixed(0)} s`)
  }
  log(`all done in ${((Date.now() - t0) / 1000).toFixed(0)} s → ${RESULTS_MD}`)
  process.exitCode = crashed ? 1 : 0
}

/** The commit measured, and whether the working tree had changes on top of it. */
function commitOf() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'commands'], { cwd: ROOT, encoding: 'utf8' }).trim() !== ''
    return dirty ? `${head} (with uncommitted changes)` : head
  } catch {
    return undefined
  }
}

function sizesFor(name) {
  if (name === 'startup') return { startupRuns: SIZES.startupRuns }
  if (name === 'pull') return { records: SIZES.records, pullLatencyMs: SIZES.pullLatencyMs, pullRounds: SIZES.pullRounds }
  if (name === 'import') return { people: SIZES.people }
  if (name === 'gateway') return { devices: SIZES.devices }
  if (name === 'udp') return { udpDevices: SIZES.udpDevices }
  if (name === 'wsjson') return { wsjsonDevices: SIZES.wsjsonDevices }
  if (name === 'bestm') return { bestDevices: SIZES.bestDevices }
  if (name === 'fleet') return { fleetDevices: SIZES.fleetDevices }
  if (name === 'store') return { storeOps: SIZES.storeOps }
  if (name === 'provision') return { doors: SIZES.doors }
  if (name === 'copy') return { copyPeople: SIZES.copyPeople }
  if (name === 'admin') return { devices: SIZES.devices }
  if (name === 'gateways') return { devices: SIZES.devices }
  return { bigPeople: SIZES.bigPeople }
}

await main()

// Load generator for the wsjson and bestm benchmarks: N devices from doorctl's own simulators
// (dist/src/simulators/{wsjson,best}), each on a connection of its own, all in this process.
// Heartbeat round trips (request sent → the server's answer received) are timed by wrapping the
// simulator instance's own methods, so the frames on the wire are exactly the simulator's.
//   node bench/conn-load.js '{"proto":"wsjson"|"best", "url"|"server", "count", "intervalMs", "sn": prefix, ...}'
// IPC: → {type:'connected', ok, failed, ms, errors}; ← 'measure' (latencies from now on); ← 'stop' → {type:'report', …}
import { pathToFileURL } from 'node:url'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const o = JSON.parse(process.argv[2])
const latencies = []
let measuring = false
let hbFailures = 0
const errorSamples = []
const note = (what) => { if (errorSamples.length < 5) errorSamples.push(what) }

const sims = []
async function make(i) {
  const sn = `${o.sn}${String(i).padStart(6, '0')}`
  if (o.proto === 'wsjson') {
    const { createWsjsonSimulator } = await import(pathToFileURL(join(ROOT, 'dist/src/simulators/wsjson/index.js')).href)
    const sim = createWsjsonSimulator({ url: o.url, sn, heartbeatMs: o.intervalMs, replyTimeoutMs: 10_000, reconnectMs: 2000 })
    // time heartbeat (206) → the server's response; the simulator has one message in flight at a time (wsjson #7)
    let t0
    const sendUpstream = sim.sendUpstream.bind(sim)
    sim.sendUpstream = (kind, ...rest) => { if (kind === 'heartbeat') t0 = performance.now(); return sendUpstream(kind, ...rest) }
    const onResponse = sim.onResponse.bind(sim)
    sim.onResponse = (msg) => {
      if (sim.inflight?.kind === 'heartbeat' && t0 !== undefined) {
        if (measuring) latencies.push(performance.now() - t0)
        t0 = undefined
      }
      return onResponse(msg)
    }
    return sim
  }
  const { createBestSimulator } = await import(pathToFileURL(join(ROOT, 'dist/src/simulators/best/index.js')).href)
  const sim = createBestSimulator({
    server: o.server, sn, transport: 'mqtt', productId: o.productId, deviceSecret: o.deviceSecretPrefix ? `${o.deviceSecretPrefix}${i}` : o.deviceSecret, brokerKey: o.brokerKey,
    heartbeatMs: o.intervalMs, reconnectMs: 2000, requestTimeoutMs: 10_000,
  })
  const request = sim.request.bind(sim)
  sim.request = async (msg, ...rest) => {
    if (msg.funcId !== 'dev.heartbeat') return request(msg, ...rest)
    const t0 = performance.now()
    try {
      const r = await request(msg, ...rest)
      if (measuring) latencies.push(performance.now() - t0)
      return r
    } catch (err) {
      if (measuring) { hbFailures++; note(`${sn} heartbeat: ${err.message}`) }
      throw err
    }
  }
  return sim
}

const t0 = performance.now()
let ok = 0
let failed = 0
let nextI = 1
async function worker() {
  while (nextI <= o.count) {
    const i = nextI++
    const sim = await make(i)
    sims.push(sim)
    try {
      await Promise.race([sim.start(), new Promise((_, rej) => setTimeout(() => rej(new Error('not up within 30 s')), 30_000))])
      const up = o.proto === 'wsjson' ? sim.registered : sim.loggedIn
      if (up) ok++
      else { failed++; note(`${sim.sn}: start() resolved but not ${o.proto === 'wsjson' ? 'registered' : 'logged in'}`) }
    } catch (err) {
      failed++
      note(`${sim.sn}: ${err.message}`)
    }
    if (o.proto === 'wsjson' && sim.registered) {
      // the server assigns 30 s in its register answer; compress to the benchmark's interval
      sim._assigned = o.intervalMs
      sim.scheduleHeartbeat()
    }
  }
}
await Promise.all(Array.from({ length: o.concurrency ?? 50 }, worker))
process.send({ type: 'connected', ok, failed, ms: performance.now() - t0, errorSamples: [...errorSamples] })

process.on('message', async (m) => {
  if (m === 'measure') { measuring = true; return }
  if (m !== 'stop') return
  measuring = false
  const heartbeats = sims.reduce((a, s) => a + s.events.heartbeats, 0)
  const commands = {}
  for (const s of sims) for (const [k, v] of Object.entries(s.events.commands)) commands[k] = (commands[k] ?? 0) + v
  const stillUp = sims.filter((s) => (o.proto === 'wsjson' ? s.registered : s.loggedIn)).length
  latencies.sort((a, b) => a - b)
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]
  const u = process.resourceUsage()
  process.send({ type: 'report', measured: latencies.length, p50: pct(50), p99: pct(99), max: latencies[latencies.length - 1], hbFailures, heartbeats, commands, stillUp, errorSamples, rssKB: u.maxRSS, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000 })
  await Promise.race([Promise.all(sims.map((s) => s.stop().catch(() => {}))), new Promise((r) => setTimeout(r, 5000))])
  process.exit(0)
})

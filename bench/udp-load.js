// Load generator for the udp benchmark: N virtual udp intercoms, each with a dgram socket of its
// own on 127.0.0.1 (as real devices have their own address), sending a heartbeat every interval
// (spread evenly over it) and waiting for the `heartack` datagram on the same socket. A heartbeat
// not answered within DROP_MS counts as a drop. Runs in its own process; reports over IPC.
//   node bench/udp-load.js PORT COUNT INTERVAL_MS DURATION_MS WARMUP_MS COMMUNITY
import { createSocket } from 'node:dgram'

const [port, count, intervalMs, durationMs, warmupMs] = process.argv.slice(2, 7).map(Number)
const community = process.argv[7] ?? 'B1'
const DROP_MS = 2000
const start = Date.now()
const latencies = []
let sent = 0
let answered = 0
let drops = 0
let measuredDrops = 0
let refused = 0
let late = 0
let sendErrors = 0
const errorSamples = []
let stopping = false
const note = (what) => { if (errorSamples.length < 5) errorSamples.push(what) }

function device(i) {
  return new Promise((resolveDevice) => {
    const sock = createSocket('udp4')
    const payload = Buffer.from(JSON.stringify({ communityId: community, deviceCode: String(i), cmd: 'heart', softVer: '1.0', name: 'bench', deviceSn: `SN${i}` }))
    let pending // { t0, measured, timer }
    sock.on('message', (msg) => {
      let m
      try { m = JSON.parse(msg.toString('utf8')) } catch { return note(`device ${i}: not JSON: ${msg.toString('utf8').slice(0, 80)}`) }
      if (m.cmd !== 'heartack') return // commands (unlock, …) are not part of this benchmark
      if (!pending) { late++; return }
      const ms = performance.now() - pending.t0
      clearTimeout(pending.timer)
      answered++
      if (m.result !== '0') { refused++; note(`device ${i}: heartack ${JSON.stringify(m)}`) }
      if (pending.measured) latencies.push(ms)
      pending = undefined
    })
    sock.on('error', (e) => { sendErrors++; note(`device ${i}: ${e.message}`) })
    sock.bind(0, '127.0.0.1', () => {
      let next = Date.now() + (i / count) * intervalMs
      const beat = () => {
        if (stopping) {
          const finish = () => { sock.close(); resolveDevice() }
          // let the last heartbeat be answered (or time out) before closing
          if (pending) setTimeout(finish, DROP_MS + 50)
          else finish()
          return
        }
        if (pending) { clearTimeout(pending.timer); drops++; pending = undefined } // should not happen: DROP_MS < interval
        const p = { t0: performance.now(), measured: Date.now() - start > warmupMs }
        p.timer = setTimeout(() => { if (pending === p) { pending = undefined; drops++; if (p.measured) measuredDrops++ } }, DROP_MS)
        pending = p
        sent++
        sock.send(payload, port, '127.0.0.1', (err) => { if (err) { sendErrors++; note(`device ${i}: send: ${err.message}`) } })
        next += intervalMs
        setTimeout(beat, Math.max(0, next - Date.now()))
      }
      setTimeout(beat, Math.max(0, next - Date.now()))
    })
  })
}

const all = Array.from({ length: count }, (_, i) => device(i + 1))
setTimeout(() => { stopping = true }, durationMs)
await Promise.all(all)
latencies.sort((a, b) => a - b)
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]
process.send({ sent, answered, measured: latencies.length, drops, measuredDrops, refused, late, sendErrors, errorSamples, p50: pct(50), p99: pct(99), max: latencies[latencies.length - 1], rssKB: process.resourceUsage().maxRSS, cpuMs: (process.resourceUsage().userCPUTime + process.resourceUsage().systemCPUTime) / 1000 })
process.disconnect()

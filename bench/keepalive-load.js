// Load generator for the gateway benchmark: N virtual httpv2 devices, each on its own keep-alive
// connection (as real devices are), POSTing /Device/Keepalive every interval and following a
// Remote flag to /Device/RemoteCommand. Runs in its own process; reports over IPC.
//   node bench/keepalive-load.js PORT COUNT INTERVAL_MS DURATION_MS WARMUP_MS
import { Client } from 'undici'

const [port, count, intervalMs, durationMs, warmupMs] = process.argv.slice(2).map(Number)
const origin = `http://127.0.0.1:${port}`
const start = Date.now()
const latencies = []
let errors = 0
let requests = 0
const errorSamples = []
const deliveries = []
let stopping = false

function noteError(what) {
  errors++
  if (errorSamples.length < 5) errorSamples.push(what)
}

async function post(client, path, body) {
  const res = await client.request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const text = await res.body.text()
  return { status: res.statusCode, json: text ? JSON.parse(text) : undefined }
}

async function device(i) {
  const sn = `BENCH${String(i).padStart(6, '0')}`
  const client = new Client(origin, { pipelining: 1, keepAliveTimeout: 60_000 })
  // spread the devices evenly over one interval
  await new Promise((r) => setTimeout(r, (i / count) * intervalMs))
  let next = Date.now()
  while (!stopping) {
    const t0 = performance.now()
    try {
      const r = await post(client, '/Device/Keepalive', { SN: sn, RelayStatus: 0, KeepOpenStatus: 0, DoorSensorStatus: 0, LockDoorStatus: 0, AlarmStatus: '' })
      const ms = performance.now() - t0
      requests++
      if (Date.now() - start > warmupMs) latencies.push(ms)
      if (r.status !== 200 || r.json?.Success !== 1) noteError(`keepalive ${sn}: HTTP ${r.status} ${JSON.stringify(r.json)}`)
      else if (r.json.Remote === 1) {
        const c = await post(client, '/Device/RemoteCommand', { SN: sn })
        if (c.json?.Opendoor) deliveries.push({ sn, at: Date.now() })
      } else if (r.json.UploadWorkParameter === 1) {
        await post(client, '/Device/UploadWorkSetting', { SN: sn })
      }
    } catch (err) {
      noteError(`keepalive ${sn}: ${err.message}`)
    }
    next += intervalMs
    const wait = next - Date.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  }
  await client.close()
}

const all = Array.from({ length: count }, (_, i) => device(i + 1))
setTimeout(() => { stopping = true }, durationMs)
await Promise.all(all)
latencies.sort((a, b) => a - b)
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]
process.send({ requests, measured: latencies.length, errors, errorSamples, p50: pct(50), p99: pct(99), max: latencies[latencies.length - 1], deliveries, rssKB: process.resourceUsage().maxRSS })
process.disconnect()

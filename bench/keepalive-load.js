// Load generator for the gateway benchmarks: N virtual httpv2 devices, each on its own keep-alive
// connection (as real devices are), POSTing /Device/Keepalive every interval and following the
// answer's flags: Remote → /Device/RemoteCommand, SyncParameter → /Device/DownloadWorkSetting,
// UploadWorkParameter → /Device/UploadWorkSetting. Every command a device takes is counted per
// device (open, restart, time), so a benchmark can check that each door got its command once.
// Runs in its own process; reports over IPC.
//   node bench/keepalive-load.js PORT COUNT INTERVAL_MS DURATION_MS WARMUP_MS [FIRST [RECORDS_PER_S]]
// FIRST: the number of the first device (serial BENCH<FIRST>…), so two generators can split one
// inventory; RECORDS_PER_S: identification records uploaded per second, spread over the devices
// (RecordIDs R<n>); the report counts those acknowledged, and their upload latencies.
// DURATION_MS 0: run until the parent sends 'stop'. The parent gets { type: 'warm' } once every
// device has had a keepalive answered, and { type: 'taken', taken } whenever it sends 'counts'.
import { Client, Pool } from 'undici'

const [port, count, intervalMs, durationMs, warmupMs, firstArg, recordsPerSec] = process.argv.slice(2).map(Number)
const firstDevice = Number.isInteger(firstArg) && firstArg > 0 ? firstArg : 1
const origin = `http://127.0.0.1:${port}`
const start = Date.now()
const latencies = []
let errors = 0
let requests = 0
const errorSamples = []
const deliveries = []
let stopping = false
/** Per kind of command: how many times each device took one (index = device number - 1). */
const taken = { open: new Uint16Array(count), restart: new Uint16Array(count), time: new Uint16Array(count) }
let answeredOnce = 0

function noteError(what) {
  errors++
  if (errorSamples.length < 5) errorSamples.push(what)
}

async function post(client, path, body) {
  const res = await client.request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const text = await res.body.text()
  return { status: res.statusCode, json: text ? JSON.parse(text) : undefined }
}

/** What each device took so far, per kind (plain arrays for IPC). */
const takenSoFar = () => Object.fromEntries(Object.entries(taken).map(([kind, per]) => [kind, Array.from(per)]))

async function device(i) {
  const sn = `BENCH${String(firstDevice + i - 1).padStart(6, '0')}`
  const client = new Client(origin, { pipelining: 1, keepAliveTimeout: 60_000 })
  // spread the devices evenly over one interval
  await new Promise((r) => setTimeout(r, (i / count) * intervalMs))
  let next = Date.now()
  let first = true
  while (!stopping) {
    const t0 = performance.now()
    try {
      const r = await post(client, '/Device/Keepalive', { SN: sn, RelayStatus: 0, KeepOpenStatus: 0, DoorSensorStatus: 0, LockDoorStatus: 0, AlarmStatus: '' })
      const ms = performance.now() - t0
      requests++
      if (Date.now() - start > warmupMs) latencies.push(ms)
      if (r.status !== 200 || r.json?.Success !== 1) noteError(`keepalive ${sn}: HTTP ${r.status} ${JSON.stringify(r.json)}`)
      else {
        if (first && ++answeredOnce === count && process.send) process.send({ type: 'warm' })
        first = false
        if (r.json.UploadWorkParameter === 1) await post(client, '/Device/UploadWorkSetting', { SN: sn })
        if (r.json.Remote === 1) {
          const c = await post(client, '/Device/RemoteCommand', { SN: sn })
          if (c.json?.Opendoor) {
            taken.open[i - 1]++
            deliveries.push({ sn, at: Date.now() })
          }
          if (c.json?.Restart === 1) taken.restart[i - 1]++
        }
        if (r.json.SyncParameter === 1) {
          const s = await post(client, '/Device/DownloadWorkSetting', { SN: sn })
          if (s.json?.SystemTime !== undefined) taken.time[i - 1]++
        }
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

process.on('message', (m) => {
  if (m === 'stop') stopping = true
  else if (m === 'counts') process.send({ type: 'taken', taken: takenSoFar() })
})
/** Records at RECORDS_PER_S, each from the next device on a connection of its own (the device retries nothing: an error counts). */
const recordStats = { sent: 0, acked: 0, latencies: [] }
async function records() {
  if (!(recordsPerSec > 0)) return
  const client = new Pool(origin, { pipelining: 1, keepAliveTimeout: 60_000, connections: 16 })
  const inflight = new Set()
  let n = 0
  let next = Date.now()
  while (!stopping) {
    const k = n++
    const sn = `BENCH${String(firstDevice + (k % count)).padStart(6, '0')}`
    const t0 = performance.now()
    const p = post(client, '/Record/UploadIdentifyRecord', { SN: sn, RecordID: `R${firstDevice}-${k}`, RecordDate: Math.floor(Date.now() / 1000), RecordType: 3, UserID: '1001' })
      .then((r) => {
        if (r.status === 200 && r.json?.Success === 1) {
          recordStats.acked++
          if (Date.now() - start > warmupMs) recordStats.latencies.push(performance.now() - t0)
        } else noteError(`record ${sn}: HTTP ${r.status} ${JSON.stringify(r.json)}`)
      }, (err) => noteError(`record ${sn}: ${err.message}`))
      .finally(() => inflight.delete(p))
    inflight.add(p)
    recordStats.sent++
    next += 1000 / recordsPerSec
    const wait = next - Date.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  }
  await Promise.all(inflight)
  await client.close()
}

const all = [...Array.from({ length: count }, (_, i) => device(i + 1)), records()]
if (durationMs > 0) setTimeout(() => { stopping = true }, durationMs)
await Promise.all(all)
latencies.sort((a, b) => a - b)
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]
recordStats.latencies.sort((a, b) => a - b)
const rpct = (p) => recordStats.latencies[Math.min(recordStats.latencies.length - 1, Math.floor((p / 100) * recordStats.latencies.length))]
const recordReport = { sent: recordStats.sent, acked: recordStats.acked, p50: rpct(50), p99: rpct(99) }
process.send({ type: 'report', records: recordReport, requests, measured: latencies.length, errors, errorSamples, p50: pct(50), p99: pct(99), max: latencies[latencies.length - 1], deliveries, taken: takenSoFar(), rssKB: process.resourceUsage().maxRSS })
process.disconnect()

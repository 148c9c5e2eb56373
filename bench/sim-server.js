// Runs the openapi simulator in its own process, so its CPU use is not counted against doorctl or
// a floor. Options come as one JSON argument; the ports are printed as one JSON line on stdout.
// Control over stdin, one command a line: "stats" → {"users":N,"requests":M}; "close" → exit.
// The simulator also exits when stdin ends (the bench died), so nothing is left behind.
import { createInterface } from 'node:readline'
import { startOpenapiSimulator } from '../dist/src/simulators/openapi/index.js'

const opts = JSON.parse(process.argv[2] ?? '{}')
const sim = await startOpenapiSimulator({ host: '127.0.0.1', port: 0, wsPort: 0, ...opts })
process.stdout.write(JSON.stringify({ httpPort: sim.httpPort, wsPort: sim.wsPort, url: sim.url, pid: process.pid }) + '\n')

let closing = false
const shutdown = async () => {
  if (closing) return
  closing = true
  await sim.close().catch(() => {})
  process.exit(0)
}
const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => {
  const cmd = line.trim()
  if (cmd === 'stats') {
    process.stdout.write(JSON.stringify({ users: sim.users().size, requests: sim.requestCount, cpu: process.cpuUsage() }) + '\n')
  } else if (cmd === 'close') void shutdown()
})
rl.on('close', () => void shutdown())
process.on('SIGTERM', () => void shutdown())

// N openapi simulators in one process of their own (so their CPU is counted against neither side):
// argv[2] = N, argv[3] = JSON options for each. Prints one JSON line: {"ports":[…]}; exits when
// stdin ends (the bench finished or died), so nothing is left behind.
import { startOpenapiSimulator } from '../dist/src/simulators/openapi/index.js'

const count = Number(process.argv[2] ?? '1')
const opts = JSON.parse(process.argv[3] ?? '{}')
const sims = []
for (let i = 0; i < count; i++) sims.push(await startOpenapiSimulator({ host: '127.0.0.1', port: 0, wsPort: 0, ...opts }))
process.stdout.write(JSON.stringify({ ports: sims.map((s) => s.httpPort) }) + '\n')

const stop = async () => {
  await Promise.all(sims.map((s) => s.close().catch(() => {})))
  process.exit(0)
}
process.stdin.on('data', () => {})
process.stdin.on('end', () => void stop())
process.on('SIGTERM', () => void stop())

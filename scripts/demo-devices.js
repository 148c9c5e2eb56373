// Two simulated openapi doors for `npm run demo`; reports their ports to the parent over IPC.
import { startOpenapiSimulator } from '../dist/src/simulators/openapi/index.js'

const sims = [
  await startOpenapiSimulator({ port: 0, wsPort: 0, records: 40, users: 3 }),
  await startOpenapiSimulator({ port: 0, wsPort: 0, records: 25 }),
]
process.send?.(sims.map((s) => ({ httpPort: s.httpPort, wsPort: s.wsPort })))
const stop = async () => {
  await Promise.all(sims.map((s) => s.close()))
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.on('disconnect', stop)

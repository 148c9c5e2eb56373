import { Command, Flags } from '@oclif/core'
import { startOpenapiSimulator, type OpenapiSimulator } from '../../src/simulators/openapi/index.js'

export default class SimulateOpenapi extends Command {
  static override summary = 'Run simulated openapi face-recognition devices (HTTP API + record push WebSocket)'
  static override description = `Each simulated device follows protocols/openapi-face.txt sections 4–8: md5(timestamp#password) signing with the 5-minute window, device/user/record endpoints and the record push WebSocket at /api/record.
Prints one line per device once all are listening (with --json, one JSON document on a single line), then runs until SIGINT/SIGTERM.`
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --port 0 --ws-port 0 --users 25 --records 100000 --json',
    '<%= config.bin %> <%= command.id %> --count 5 --port 18899 --ws-port 19000',
  ]
  static override enableJsonFlag = true

  static override flags = {
    host: Flags.string({ description: 'address to bind', default: '127.0.0.1' }),
    port: Flags.integer({ description: 'HTTP API port of the first device (0 = any free port)', default: 8899, min: 0, max: 65535 }),
    'ws-port': Flags.integer({ description: 'record push WebSocket port of the first device (0 = any free port)', default: 9000, min: 0, max: 65535 }),
    password: Flags.string({ description: 'device password (signing key)', default: '123456' }),
    users: Flags.integer({ description: 'pre-enrolled generated people per device', default: 0, min: 0 }),
    records: Flags.integer({ description: 'pre-generated access records per device', default: 0, min: 0 }),
    latency: Flags.integer({ description: 'artificial delay before each HTTP answer, in ms', default: 0, min: 0 }),
    'clock-skew': Flags.integer({ description: 'device clock offset from real time, in seconds (negative: behind; use --clock-skew=-60)', default: 0 }),
    count: Flags.integer({ description: 'number of devices; fixed ports count up from --port and --ws-port', default: 1, min: 1 }),
    verbose: Flags.boolean({ description: 'log every request to stderr', default: false }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(SimulateOpenapi)
    const sims: OpenapiSimulator[] = []
    const closeAll = (): Promise<unknown> => Promise.all(sims.map((s) => s.close()))
    try {
      for (let i = 0; i < flags.count; i++) {
        const tag = flags.count > 1 ? `[${i + 1}] ` : ''
        sims.push(
          await startOpenapiSimulator({
            host: flags.host,
            port: flags.port === 0 ? 0 : flags.port + i,
            wsPort: flags['ws-port'] === 0 ? 0 : flags['ws-port'] + i,
            password: flags.password,
            users: flags.users,
            records: flags.records,
            latencyMs: flags.latency,
            clockSkewSeconds: flags['clock-skew'],
            log: flags.verbose ? (line) => process.stderr.write(`${tag}${line}\n`) : undefined,
          }),
        )
      }
    } catch (e) {
      await closeAll()
      this.error(`could not start simulator ${sims.length + 1}: ${(e as Error).message}`, { exit: 1 })
    }

    // Written directly (not via oclif's pretty JSON) so that the whole document is one line that
    // a parent process can read as soon as every device is listening.
    if (this.jsonEnabled()) {
      const devices = sims.map((s) => ({ url: s.url, httpPort: s.httpPort, wsPort: s.wsPort, password: flags.password }))
      process.stdout.write(JSON.stringify({ devices }) + '\n')
    } else {
      for (const s of sims) {
        const wsHost = new URL(s.url).hostname
        process.stdout.write(`openapi simulator listening on ${s.url} (records ws://${wsHost}:${s.wsPort}/api/record)\n`)
      }
    }

    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
        resolve()
      }
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
    })
    await closeAll()
    process.exitCode = 0
    // Returning nothing: with --json the document above is the only output.
  }
}

import { Command, Flags } from '@oclif/core'
import { startOpenapiSimulator, type OpenapiSimulator } from '../../src/simulators/openapi/index.js'
import { createOpenapiPlatformSimulator, type OpenapiPlatformSimulator } from '../../src/simulators/openapi/platform.js'
import { untilStopped } from '../../src/cli/signals.js'

export default class SimulateOpenapi extends Command {
  static override summary = 'Run simulated openapi face-recognition devices (HTTP API + record push WebSocket; or, with --platform, section-9 devices that call a gateway)'
  static override description = `Each simulated device follows protocols/openapi-face.txt sections 4–8: md5(timestamp#password) signing with the 5-minute window, device/user/record endpoints and the record push WebSocket at /api/record.
With --platform URL --device-id ID the devices run in platform mode instead (section 9): they call URL (/syheartbeat, /syrecord, /syresult) and apply the face library it hands out; device ids count up from --device-id (numeric ids keep their width).
Prints one line per device once all are listening (with --json, one JSON document on a single line), then runs until SIGINT/SIGTERM.`
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --port 0 --ws-port 0 --users 25 --records 100000 --json',
    '<%= config.bin %> <%= command.id %> --count 5 --port 18899 --ws-port 19000',
    '<%= config.bin %> <%= command.id %> --platform http://127.0.0.1:8090 --device-id 0000001 --poll-interval 2000',
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
    platform: Flags.string({ description: 'platform mode (section 9): the BaseUrl the devices call, e.g. http://127.0.0.1:8090', helpGroup: 'PLATFORM MODE' }),
    'device-id': Flags.string({ description: 'platform mode: the (first) device id in the /sy… paths', helpGroup: 'PLATFORM MODE' }),
    'heartbeat-interval': Flags.integer({ description: 'platform mode: /syheartbeat period in ms', default: 30_000, min: 1, helpGroup: 'PLATFORM MODE' }),
    'poll-interval': Flags.integer({ description: 'platform mode: /syrecord poll period in ms', default: 10_000, min: 1, helpGroup: 'PLATFORM MODE' }),
    'reject-marker': Flags.string({ description: 'platform mode: faces whose bytes contain this text are reported failed in /syresult', default: 'NOFACE', helpGroup: 'PLATFORM MODE' }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(SimulateOpenapi)
    if (flags.platform !== undefined || flags['device-id'] !== undefined) return this.runPlatform(flags)
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

    await untilStopped()
    await closeAll()
    process.exitCode = 0
    // Returning nothing: with --json the document above is the only output.
  }

  /** Platform mode (section 9): the simulated devices call --platform instead of serving HTTP. */
  private async runPlatform(flags: {
    platform?: string; 'device-id'?: string; count: number; 'heartbeat-interval': number; 'poll-interval': number; 'reject-marker': string; verbose: boolean
  }): Promise<void> {
    if (!flags.platform || !flags['device-id']) this.error('platform mode needs both --platform URL and --device-id ID', { exit: 2 })
    let url: URL
    try {
      url = new URL(flags.platform)
    } catch {
      this.error(`--platform must be a URL such as http://127.0.0.1:8090, got ${flags.platform}`, { exit: 2 })
    }
    if (url.protocol !== 'http:') this.error('--platform must be an http:// URL (section 9 devices speak plain http)', { exit: 2 })
    const first = flags['device-id'].trim()
    const idOf = (i: number): string => {
      if (i === 0) return first
      if (/^\d+$/.test(first)) return String(BigInt(first) + BigInt(i)).padStart(first.length, '0')
      return `${first}-${i + 1}`
    }
    const sims: OpenapiPlatformSimulator[] = []
    for (let i = 0; i < flags.count; i++) {
      sims.push(createOpenapiPlatformSimulator({
        platform: flags.platform,
        deviceId: idOf(i),
        heartbeatMs: flags['heartbeat-interval'],
        pollMs: flags['poll-interval'],
        rejectMarker: flags['reject-marker'],
        log: flags.verbose ? (line) => process.stderr.write(`${line}\n`) : undefined,
      }))
    }
    if (this.jsonEnabled()) {
      const devices = sims.map((s) => ({ deviceId: s.deviceId, platform: flags.platform, heartbeatMs: flags['heartbeat-interval'], pollMs: flags['poll-interval'] }))
      process.stdout.write(JSON.stringify({ devices }) + '\n')
    } else {
      for (const s of sims) process.stdout.write(`openapi platform-mode simulator ${s.deviceId} -> ${flags.platform} (heartbeat every ${flags['heartbeat-interval']} ms, /syrecord every ${flags['poll-interval']} ms)\n`)
    }
    for (const s of sims) s.start()
    await untilStopped()
    await Promise.all(sims.map((s) => s.stop()))
    process.exitCode = 0
  }
}

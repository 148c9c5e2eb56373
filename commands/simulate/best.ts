import { Command, Flags } from '@oclif/core'
import { BEST_DEFAULT_PRODUCT_ID, createBestSimulator, type BestSimulator } from '../../src/simulators/best/index.js'
import { untilStopped } from '../../src/cli/signals.js'
import { caFlag, readCa } from '../../src/cli/ca-flag.js'

export default class SimulateBest extends Command {
  static override summary = 'Run simulated best devices (funcId/mid JSON) over WebSocket (best-w) or MQTT (best-m)'
  static override description = `Each simulated device follows protocols/best.txt: it calls GET /v3/device/getBrokerServer on --server (signed with --broker-key), connects to the URL it is given (ws://HOST:PORT/best, or the MQTT broker with topics best/{sn}/up and best/{sn}/down), exchanges keys, registers, is accredited, logs in (devKey = PBKDF2 of --device-secret, or of the secret dev.accredit gives), reports itself and heartbeats; it executes reboot, sync-time, user, photo, query and option commands and answers each with dev.cmd.response.
Device SNs are <sn-prefix><index padded to 8 digits> (BEST00000001, ...). Prints one line per device (with --json, one JSON document on a single line), then runs until SIGINT/SIGTERM; a device that cannot log in retries every --reconnect ms.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --server http://127.0.0.1:8090',
    '<%= config.bin %> <%= command.id %> --server http://127.0.0.1:8090 --transport mqtt --count 10 --json',
    '<%= config.bin %> <%= command.id %> --server http://127.0.0.1:8090 --device-secret 123456 --broker-key aabbcc --heartbeat 5000',
  ]
  static override enableJsonFlag = true

  static override flags = {
    server: Flags.string({ description: 'the gateway\'s HTTP base URL (getBrokerServer lives there), e.g. http://127.0.0.1:8090', required: true }),
    transport: Flags.string({ description: 'best-w (WebSocket) or best-m (MQTT)', options: ['ws', 'mqtt'], default: 'ws' }),
    count: Flags.integer({ description: 'number of devices', default: 1, min: 1 }),
    'sn-prefix': Flags.string({ description: 'SN prefix; the device index (from 1, 8 digits) is appended', default: 'BEST' }),
    'product-id': Flags.string({ description: 'productId (salt of devKey)', default: BEST_DEFAULT_PRODUCT_ID }),
    'device-secret': Flags.string({ description: 'secret written at production (devKey is derived from it); without it the secret dev.accredit answers is used' }),
    'broker-key': Flags.string({ description: 'getBrokerServer secretKey used to sign the request', default: '' }),
    heartbeat: Flags.integer({ description: 'business heartbeat period in ms (default: the server\'s heartbeatInterval, else 60000)', min: 1 }),
    reconnect: Flags.integer({ description: 'ms to wait before reconnecting / retrying a refused login', default: 5000, min: 1 }),
    ...caFlag,
    verbose: Flags.boolean({ description: 'log every step to stderr', default: false }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(SimulateBest)
    let server: URL
    try {
      server = new URL(flags.server)
    } catch {
      this.error(`--server must be a URL such as http://127.0.0.1:8090, got ${flags.server}`, { exit: 2 })
    }
    if (server.protocol !== 'http:' && server.protocol !== 'https:') {
      this.error(`--server must be the gateway's http(s) base URL (getBrokerServer lives there), got ${flags.server}`, { exit: 2 })
    }
    const transport = flags.transport as 'ws' | 'mqtt'
    const ca = readCa(flags.ca, (m) => this.error(m, { exit: 2 }))
    const width = Math.max(8, String(flags.count).length)
    const stderr = (line: string): void => void process.stderr.write(`${line}\n`)
    const sims: BestSimulator[] = []
    for (let i = 0; i < flags.count; i++) {
      const sn = `${flags['sn-prefix']}${String(i + 1).padStart(width, '0')}`
      sims.push(
        createBestSimulator({
          server: flags.server,
          ca,
          sn,
          transport,
          productId: flags['product-id'],
          ...(flags['device-secret'] !== undefined ? { deviceSecret: flags['device-secret'] } : {}),
          brokerKey: flags['broker-key'],
          ...(flags.heartbeat !== undefined ? { heartbeatMs: flags.heartbeat } : {}),
          reconnectMs: flags.reconnect,
          ...(flags.verbose ? { log: stderr } : {}),
        }),
      )
    }

    // Written directly (not via oclif's pretty JSON) so that the whole document is one line.
    if (this.jsonEnabled()) {
      const devices = sims.map((s) => ({ sn: s.sn, server: flags.server, transport, productId: flags['product-id'] }))
      process.stdout.write(JSON.stringify({ devices }) + '\n')
    } else {
      for (const s of sims) process.stdout.write(`best simulator ${s.sn} -> ${flags.server} (${transport === 'ws' ? 'best-w' : 'best-m'})\n`)
    }

    let stopping = false
    const timers = new Set<NodeJS.Timeout>()
    // start() rejects when the gateway is not up yet or refuses the device (not in the inventory yet): keep trying.
    const bringUp = (s: BestSimulator): void => {
      s.start().then(
        () => {
          if (flags.verbose) stderr(`best ${s.sn}: logged in`)
        },
        (err: unknown) => {
          if (stopping) return
          stderr(`best ${s.sn}: ${err instanceof Error ? err.message : String(err)}; retrying in ${flags.reconnect} ms`)
          const t = setTimeout(() => {
            timers.delete(t)
            if (!stopping) bringUp(s)
          }, flags.reconnect)
          timers.add(t)
        },
      )
    }
    for (const s of sims) bringUp(s)

    await untilStopped()
    stopping = true
    for (const t of timers) clearTimeout(t)
    await Promise.all(sims.map((s) => s.stop()))
    process.exitCode = 0
  }
}

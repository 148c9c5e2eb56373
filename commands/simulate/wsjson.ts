import { Command, Flags } from '@oclif/core'
import { createWsjsonSimulator, type WsjsonSimulator } from '../../src/simulators/wsjson/index.js'
import { untilStopped } from '../../src/cli/signals.js'
import { caFlag, readCa } from '../../src/cli/ca-flag.js'

export default class SimulateWsjson extends Command {
  static override summary = 'Run simulated wsjson face terminals that connect to a server WebSocket (register, heartbeat, events, user commands)'
  static override description = `Each simulated device follows protocols/ws-json.txt: it connects to --server, registers (code 205), heartbeats (206) at the interval the register answer assigns (--heartbeat until then), and answers addUser, editUser, deleteUser, selectUser (203), compareUser (204) and queryEvent (208) with the command's commandId. It reconnects after a drop, and after a refused register.
Device SNs are <sn-prefix><index padded to 8 digits> (WSJ00000001, ...). Prints one line per device (with --json, one JSON document on a single line), then runs until SIGINT/SIGTERM.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --server ws://127.0.0.1:8090/wsjson',
    '<%= config.bin %> <%= command.id %> --server ws://127.0.0.1:8090/wsjson --count 10 --sn-prefix SITE1- --heartbeat 5000 --json',
  ]
  static override enableJsonFlag = true

  static override flags = {
    server: Flags.string({ description: 'WebSocket URL the devices connect to, e.g. ws://127.0.0.1:8090/wsjson', required: true }),
    count: Flags.integer({ description: 'number of devices', default: 1, min: 1 }),
    'sn-prefix': Flags.string({ description: 'SN prefix; the device index (from 1, 8 digits) is appended', default: 'WSJ' }),
    heartbeat: Flags.integer({ description: 'heartbeat interval in ms until the server assigns one in its register answer', default: 20000, min: 1 }),
    type: Flags.string({ description: 'register type: 0 entry and exit, 1 exit, 2 entry', options: ['0', '1', '2'], default: '0' }),
    reconnect: Flags.integer({ description: 'reconnect delay after a drop or a refused register, in ms', default: 1000, min: 0 }),
    ...caFlag,
    verbose: Flags.boolean({ description: 'log every exchange to stderr', default: false }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(SimulateWsjson)
    let url: URL | undefined
    try {
      url = new URL(flags.server)
    } catch {
      url = undefined
    }
    if (!url || (url.protocol !== 'ws:' && url.protocol !== 'wss:')) {
      this.error(`--server must be a WebSocket URL such as ws://127.0.0.1:8090/wsjson, got ${flags.server}`, { exit: 2 })
    }
    const ca = readCa(flags.ca, (m) => this.error(m, { exit: 2 }))
    const width = Math.max(8, String(flags.count).length)
    const sims: WsjsonSimulator[] = []
    for (let i = 0; i < flags.count; i++) {
      const sn = `${flags['sn-prefix']}${String(i + 1).padStart(width, '0')}`
      sims.push(
        createWsjsonSimulator({
          url: flags.server,
          ca,
          sn,
          type: flags.type,
          heartbeatMs: flags.heartbeat,
          reconnectMs: flags.reconnect,
          log: flags.verbose ? (line) => process.stderr.write(`${line}\n`) : undefined,
        }),
      )
    }

    // Written directly (not via oclif's pretty JSON) so that the whole document is one line.
    if (this.jsonEnabled()) {
      const devices = sims.map((s) => ({ sn: s.sn, server: flags.server, heartbeatMs: flags.heartbeat, type: flags.type }))
      process.stdout.write(JSON.stringify({ devices }) + '\n')
    } else {
      for (const s of sims) process.stdout.write(`wsjson simulator ${s.sn} -> ${flags.server} (heartbeat every ${flags.heartbeat} ms until the server assigns one)\n`)
    }
    // start() resolves at the first register answer; the devices keep reconnecting on their own.
    for (const s of sims) s.start().catch(() => {})

    await untilStopped()
    await Promise.all(sims.map((s) => s.stop()))
    process.exitCode = 0
  }
}

import { Command, Flags } from '@oclif/core'
import { createUdpSimulator, type UdpSimulator } from '../../src/simulators/udp/index.js'
import { untilStopped } from '../../src/cli/signals.js'

export default class SimulateUdp extends Command {
  static override summary = 'Run simulated udp intercom devices that heartbeat to a server over UDP and call its HTTP endpoints'
  static override description = `Each simulated device follows protocols/udp-intercom.txt: a JSON heartbeat (cmd "heart") to --server:--udp-port every --interval ms from its own source port (the "NAT" port), answering unlock/setting/reboot commands sent back to that port with unlockack/settingack/rebootack and the same id; it polls --http-url/updateImage for faces, reports verdicts to /authImage (40 invalid, 50 valid), and calls /oneLock, /addUpload and /unlockCallback.
Device codes count up from --code-start (200111, 200112, ...). Prints one line per device once all are started (with --json, one JSON document on a single line), then runs until SIGINT/SIGTERM.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --server 127.0.0.1 --udp-port 7998 --http-url http://127.0.0.1:8090',
    '<%= config.bin %> <%= command.id %> --server 127.0.0.1 --udp-port 7998 --http-url http://127.0.0.1:8090 --count 10 --interval 2000 --json',
    '<%= config.bin %> <%= command.id %> --server gw.example.com --udp-port 7998 --http-url http://gw.example.com:8090 --community 123456 --code-start 300001 --drop 1 --broken-id-form',
  ]
  static override enableJsonFlag = true

  static override flags = {
    server: Flags.string({ description: 'host the heartbeats go to, e.g. 127.0.0.1', required: true }),
    'udp-port': Flags.integer({ description: 'server UDP port (the document: 7998)', default: 7998, min: 1, max: 65535 }),
    'http-url': Flags.string({ description: 'server base URL for the HTTP callbacks, e.g. http://127.0.0.1:8090 (default http://SERVER:8090)' }),
    count: Flags.integer({ description: 'number of devices', default: 1, min: 1 }),
    interval: Flags.integer({ description: 'heartbeat interval in ms (the document: 50000)', default: 50_000, min: 1 }),
    community: Flags.string({ description: 'communityId of every device', default: '123456' }),
    'code-start': Flags.integer({ description: 'deviceCode of the first device; the others count up from it', default: 200111, min: 0 }),
    'source-port': Flags.integer({ description: 'UDP source port of the first device, the others count up from it (0 = random)', default: 0, min: 0, max: 65535 }),
    drop: Flags.integer({ description: 'drop the first N commands each device receives (the server must resend with the same id)', default: 0, min: 0 }),
    'broken-id-form': Flags.boolean({ description: 'send acks with the document\'s "id","1" form, as real devices do', default: false }),
    'face-poll-every': Flags.integer({ description: 'poll /updateImage after every Nth heartbeat (0 = never)', default: 1, min: 0 }),
    'body-encoding': Flags.string({ description: 'HTTP request bodies (the document does not say)', options: ['form', 'json'], default: 'form' }),
    verbose: Flags.boolean({ description: 'log every datagram and request to stderr', default: false }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(SimulateUdp)
    const httpUrl = flags['http-url'] ?? `http://${flags.server.includes(':') && !flags.server.startsWith('[') ? `[${flags.server}]` : flags.server}:8090`
    try {
      const u = new URL(httpUrl)
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http')
    } catch {
      this.error(`--http-url must be a URL such as http://127.0.0.1:8090, got ${httpUrl}`, { exit: 2 })
    }
    const sourcePort = flags['source-port']
    if (sourcePort !== 0 && sourcePort + flags.count - 1 > 65535) {
      this.error(`--source-port ${sourcePort} with --count ${flags.count} runs past port 65535`, { exit: 2 })
    }

    const sims: UdpSimulator[] = []
    const stopAll = (): Promise<unknown> => Promise.all(sims.map((s) => s.stop()))
    try {
      for (let i = 0; i < flags.count; i++) {
        const deviceCode = String(flags['code-start'] + i)
        const tag = flags.count > 1 ? `[${deviceCode}] ` : ''
        const sim = createUdpSimulator({
          server: flags.server,
          udpPort: flags['udp-port'],
          httpUrl,
          communityId: flags.community,
          deviceCode,
          intervalMs: flags.interval,
          sourcePort: sourcePort === 0 ? 0 : sourcePort + i,
          dropIncoming: flags.drop,
          brokenIdForm: flags['broken-id-form'],
          facePollEvery: flags['face-poll-every'],
          bodyEncoding: flags['body-encoding'] as 'form' | 'json',
          log: flags.verbose ? (line) => process.stderr.write(`${tag}${line}\n`) : undefined,
        })
        sims.push(sim)
        await sim.start()
      }
    } catch (e) {
      await stopAll()
      this.error(`could not start simulator ${sims.length}: ${(e as Error).message}`, { exit: 1 })
    }

    // Written directly (not via oclif's pretty JSON) so that the whole document is one line that
    // a parent process can read as soon as every device is heartbeating.
    if (this.jsonEnabled()) {
      const devices = sims.map((s) => ({ communityId: s.communityId, deviceCode: s.deviceCode, sourcePort: s.sourcePort }))
      process.stdout.write(JSON.stringify({ devices }) + '\n')
    } else {
      for (const s of sims) {
        process.stdout.write(`udp simulator ${s.communityId}/${s.deviceCode} from UDP port ${s.sourcePort} -> ${flags.server}:${flags['udp-port']} (heartbeat every ${flags.interval} ms, HTTP ${httpUrl})\n`)
      }
    }

    await untilStopped()
    await stopAll()
    process.exitCode = 0
  }
}

import { Command, Flags } from '@oclif/core'
import { createHttpv2Simulator, type Httpv2Simulator } from '../../src/simulators/httpv2/index.js'
import { untilStopped } from '../../src/cli/signals.js'
import { caFlag, readCa } from '../../src/cli/ca-flag.js'

export default class SimulateHttpv2 extends Command {
  static override summary = 'Run simulated httpv2 face-recognition devices that call a server (keepalive, flags, people, records)'
  static override description = `Each simulated device follows protocols/httpv2-face.md: it POSTs /Device/Keepalive to --server every --interval ms and follows the answer's flags (UploadWorkParameter > Remote > SyncParameter > DeletePeople > AddPeople), then uploads its queued records.
Device SNs are <sn-prefix><index padded to 8 digits> (FC-8200H00000001, ...). Prints one line per device (with --json, one JSON document on a single line), then runs until SIGINT/SIGTERM.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --server http://127.0.0.1:8090',
    '<%= config.bin %> <%= command.id %> --server http://127.0.0.1:8090 --count 10 --interval 2000 --records 50 --json',
    '<%= config.bin %> <%= command.id %> --server http://127.0.0.1:8090 --api v1 --no-gzip',
  ]
  static override enableJsonFlag = true

  static override flags = {
    server: Flags.string({ description: 'base URL of the server the devices call, e.g. http://127.0.0.1:8090', required: true }),
    count: Flags.integer({ description: 'number of devices', default: 1, min: 1 }),
    'sn-prefix': Flags.string({ description: 'SN prefix; the device index (from 1, 8 digits) is appended', default: 'FC-8200H' }),
    interval: Flags.integer({ description: 'keepalive interval in ms', default: 15000, min: 1 }),
    gzip: Flags.boolean({ description: 'gzip JSON request bodies (Content-Encoding: gzip) like mongoose 6.18 firmware; --no-gzip to send plain JSON', default: true, allowNo: true }),
    records: Flags.integer({ description: 'generated identification records queued per device at start', default: 0, min: 0 }),
    api: Flags.string({ description: 'path family (HTTPClient_ProtocolType 100 = v1, 200 = v2)', options: ['v1', 'v2'], default: 'v2' }),
    'multipart-names': Flags.string({ description: 'record multipart part names: table (RecordDetail/Photo) or example (recordJson/pic)', options: ['table', 'example'], default: 'table' }),
    ...caFlag,
    verbose: Flags.boolean({ description: 'log every request to stderr', default: false }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(SimulateHttpv2)
    try {
      new URL(flags.server)
    } catch {
      this.error(`--server must be a URL such as http://127.0.0.1:8090, got ${flags.server}`, { exit: 2 })
    }
    const ca = readCa(flags.ca, (m) => this.error(m, { exit: 2 }))
    const width = Math.max(8, String(flags.count).length)
    const sims: Httpv2Simulator[] = []
    for (let i = 0; i < flags.count; i++) {
      const sn = `${flags['sn-prefix']}${String(i + 1).padStart(width, '0')}`
      sims.push(
        createHttpv2Simulator({
          server: flags.server,
          ca,
          sn,
          intervalMs: flags.interval,
          gzip: flags.gzip,
          api: flags.api as 'v1' | 'v2',
          records: flags.records,
          multipartNames: flags['multipart-names'] as 'table' | 'example',
          log: flags.verbose ? (line) => process.stderr.write(`${line}\n`) : undefined,
        }),
      )
    }

    // Written directly (not via oclif's pretty JSON) so that the whole document is one line.
    if (this.jsonEnabled()) {
      const devices = sims.map((s) => ({ sn: s.sn, server: flags.server, api: flags.api, intervalMs: flags.interval, gzip: flags.gzip }))
      process.stdout.write(JSON.stringify({ devices }) + '\n')
    } else {
      for (const s of sims) process.stdout.write(`httpv2 simulator ${s.sn} -> ${flags.server} (api ${flags.api}, keepalive every ${flags.interval} ms)\n`)
    }
    for (const s of sims) s.start()

    await untilStopped()
    await Promise.all(sims.map((s) => s.stop()))
    process.exitCode = 0
  }
}

import { Flags } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { targetFlags } from '../../src/cli/flags.js'
import { UsageError } from '../../src/types/errors.js'
import { exportRecords } from '../../src/ops/records-export.js'
import { RECORD_FORMATS, type RecordFormat } from '../../src/ops/record-writer.js'
import { parseTime } from '../../src/util/time.js'

export default class RecordsPull extends DoorctlCommand {
  static override description = 'Export access records (incrementally with --since last)'
  static override examples = [
    'doorctl records pull door-1 --since last --output records-$(date +%F).csv',
    'doorctl records pull --all --since 2026-11-01 --until 2026-11-30 --format ndjson --output november.ndjson',
    'doorctl records pull door-1 --since last --photos ./photos --output today.csv',
  ]
  static override strict = false
  static override flags = {
    ...targetFlags,
    since: Flags.string({ description: 'ISO 8601 date or time, or "last": continue after the previous --since last pull of each device' }),
    until: Flags.string({ description: 'ISO 8601 date or time (default: now)' }),
    format: Flags.string({ description: 'output format', options: [...RECORD_FORMATS] }),
    output: Flags.string({ char: 'o', description: 'file to write (written to a temp file and renamed when complete), or - for stdout', default: '-' }),
    photos: Flags.string({ description: 'write capture photos as files in this folder instead of base64 in the output' }),
  }

  async run() {
    const { argv, flags } = await this.parse(RecordsPull)
    const devices = this.targets(argv as string[], flags)
    const sinceLast = flags.since === 'last'
    const since = flags.since && !sinceLast ? parseTime(flags.since, '--since') : undefined
    const until = flags.until ? parseTime(flags.until, '--until') : undefined
    if (since && until && since > until) throw new UsageError('--since is after --until', 'swap them')
    const format = (flags.format ?? guessFormat(flags.output)) as RecordFormat
    const toStdout = flags.output === '-'
    // --json: stdout holds one JSON document; records on stdout go inside it as "records"
    const embed = this.jsonEnabled() && toStdout
    if (embed && format !== 'json') throw new UsageError(`--json with records on stdout needs --format json (got ${format})`, 'write the records to a file with --output FILE, or drop --format')
    const store = await this.sharedStore()
    const { SharedCursors } = await import('../../src/store/shared-cursors.js')
    const cursors = store && sinceLast ? new SharedCursors(store, devices.map((d) => d.name)) : undefined
    const result = await this.spin(`pulling records from ${devices.length} device(s)`, () =>
      exportRecords({
        home: this.home, env: this.env_, devices, format, output: flags.output, stdout: process.stdout, photosDir: flags.photos,
        sinceLast, since, until, concurrency: flags.concurrency, timeoutMs: this.timeoutMs(flags), signal: this.signal,
        jsonPrefix: embed ? '{"records":[' : undefined, cursors,
      }),
    )
    const ok = result.results.every((r) => r.ok)
    if (!ok) process.exitCode = 1
    const summary = { total: result.total, output: toStdout ? '-' : result.output }
    if (embed) {
      // close the document opened by jsonPrefix
      process.stdout.write(`\n],"ok":${ok},"results":${JSON.stringify(result.results)},"total":${result.total}}\n`)
      return undefined
    }
    if (this.jsonEnabled()) return { ok, results: result.results, ...summary }
    for (const r of result.results) process.stderr.write(`${r.device}: ${r.status}: ${r.message}\n`)
    if (!toStdout) process.stderr.write(`${result.total} records written to ${result.output}\n`)
    return undefined
  }
}

function guessFormat(output: string): RecordFormat {
  if (/\.ndjson$|\.jsonl$/i.test(output)) return 'ndjson'
  if (/\.json$/i.test(output)) return 'json'
  return 'csv'
}

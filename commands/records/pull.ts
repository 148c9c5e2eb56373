import { Flags } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { renderZoneFlags, targetFlags } from '../../src/cli/flags.js'
import { boundHeapGrowth } from '../../src/cli/heap.js'
import { UsageError } from '../../src/types/errors.js'
import { exportRecords } from '../../src/ops/records-export.js'
import { RECORD_FORMATS, type RecordFormat } from '../../src/ops/record-writer.js'
import { parseTime, parseTimeZone } from '../../src/util/time.js'
import type { ProgressListener } from '../../src/types/progress.js'

export default class RecordsPull extends DoorctlCommand {
  static override description = 'Export access records (incrementally with --since last)'
  static override examples = [
    'doorctl records pull door-1 --since last --output records-$(date +%F).csv',
    'doorctl records pull --all --since 2026-11-01 --until 2026-11-30 --format ndjson --output november.ndjson',
    'doorctl records pull door-1 --since last --photos ./photos --output today.csv',
    {
      description: 'Push-style doors with no serve running: a temporary listener takes what they upload until each is drained',
      command: 'doorctl records pull --all --since last --timeout 5m --output records-$(date +%F).csv',
    },
    { description: 'An httpv2 door uploads every record it holds again (a backfill)', command: 'doorctl records pull door-7 --since last --repost --timeout 10m --output backfill.csv' },
    'doorctl records pull --tag tokyo --since 2026-11-01 --tz Europe/Berlin --output report.csv',
    'doorctl records pull --all --since last --utc --format ndjson --output records.ndjson',
  ]
  static override strict = false
  static override flags = {
    ...targetFlags,
    ...renderZoneFlags,
    since: Flags.string({ description: 'ISO 8601 date or time, or "last": continue after the previous --since last pull of each device' }),
    until: Flags.string({ description: 'ISO 8601 date or time (default: now)' }),
    format: Flags.string({ description: 'output format', options: [...RECORD_FORMATS] }),
    output: Flags.string({ char: 'o', description: 'file to write (written to a temp file and renamed when complete), or - for stdout', default: '-' }),
    photos: Flags.string({ description: 'write capture photos as files in this folder instead of base64 in the output' }),
    repost: Flags.boolean({ description: 'push-style devices that can (httpv2): ask them to upload every record they hold again (a backfill; records already exported are not exported again)' }),
  }

  async run() {
    const { argv, flags } = await this.parse(RecordsPull)
    boundHeapGrowth()
    const zone = flags.utc ? 'UTC' : flags.tz !== undefined ? parseTimeZone(flags.tz, '--tz') : undefined
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
    const pull = (progress?: ProgressListener) =>
      exportRecords({
        home: this.home, env: this.driverEnv(flags), devices, format, output: flags.output, stdout: process.stdout, photosDir: flags.photos,
        sinceLast, since, until, zone, concurrency: flags.concurrency, timeoutMs: this.timeoutMs(flags), signal: this.signal,
        repost: flags.repost, jsonPrefix: embed ? '{"records":[' : undefined, progress, cursors,
      })
    // records scrolling on the terminal are their own progress
    const result = toStdout && process.stdout.isTTY ? await pull() : await this.withProgress({ label: 'pulling', unit: 'records', devices: devices.length }, pull)
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

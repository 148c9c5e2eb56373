import { Flags } from '@oclif/core'
import { stringify } from 'csv-stringify/sync'
import { DoorctlCommand } from '../../../src/cli/base-command.js'
import { targetFlags } from '../../../src/cli/flags.js'
import { renderTable } from '../../../src/cli/render.js'
import { UnsupportedError, UsageError } from '../../../src/core/errors.js'
import { SETTINGS_COLUMNS, settingsSchemas } from '../../../src/ops/settings-file.js'
import { readSettings, settingRows } from '../../../src/ops/settings-plan.js'
import { settingText } from '../../../src/util/setting-values.js'

type Sections = Record<string, Record<string, unknown>>

export default class DeviceConfigGet extends DoorctlCommand {
  static override description = "Read devices' settings: every section, or the ones named (openapi: network, smartface, perpara)"
  static override usage = 'device config get [DEVICES...] [SECTION...] [--all] [--tag T] [--format table|csv]'
  static override examples = [
    'doorctl device config get door-1',
    'doorctl device config get door-1 smartface',
    'doorctl device config get golden --format csv > site.csv   # a settings file for `device config apply`',
    'doorctl device config get network --all --json',
  ]
  static override strict = false
  static override flags = {
    ...targetFlags,
    format: Flags.string({ description: 'table, or csv: device,section,key,value rows (a settings file); with --json the settings are in each result', options: ['table', 'csv'], default: 'table' }),
  }

  async run() {
    const { argv, flags } = await this.parse(DeviceConfigGet)
    // device names and section names, in any order (`config get SECTION DEVICE` and `config get DEVICE [SECTION]`)
    const names = (argv as string[]).filter((a) => this.inventory.get(a) !== undefined)
    const asked = (argv as string[]).filter((a) => this.inventory.get(a) === undefined)
    const devices = this.targets(names, flags)
    const known = await this.configSectionsOf(devices)
    const unknown = asked.filter((s) => !known.has(s))
    if (unknown.length > 0) throw new UsageError(`unknown device or config section: ${unknown.join(', ')}`, `devices: \`doorctl device list\`; sections of these devices: ${[...known].join(', ') || 'none'}`)
    const results = await this.spin('reading settings', async () => {
      const { runOnTargets } = await import('../../../src/core/run.js')
      return runOnTargets(devices, this.runOptions(flags), async (d, ctx) => {
        const own = d.configSections()
        const sections = asked.length > 0 ? asked : own
        const missing = sections.filter((s) => !own.includes(s))
        if (own.length === 0 || missing.length > 0) throw new UnsupportedError(`${d.protocol} devices have no config section ${missing.map((s) => `"${s}"`).join(', ') || '(no settings at all)'}`, `sections: ${own.join(', ') || 'none'}`)
        const current = await readSettings(d, sections, ctx)
        const count = Object.values(current).reduce((n, v) => n + Object.keys(v).length, 0)
        // one section asked: the shape `config get SECTION` always had
        return { message: `${count} settings`, fields: asked.length === 1 ? { section: asked[0], config: current[asked[0]!] } : { sections: current } }
      })
    })
    const ok = results.every((r) => r.ok)
    if (!ok) process.exitCode = 1
    const doc = { ok, results }
    if (this.jsonEnabled()) return doc
    const current = (r: (typeof results)[number]): Sections => (r.sections as Sections | undefined) ?? (r.config ? { [String(r.section)]: r.config as Record<string, unknown> } : {})
    if (flags.format === 'csv') {
      const schemaOf = await settingsSchemas(devices)
      const rows: string[][] = []
      for (const r of results.filter((x) => x.ok)) {
        const out = settingRows(r.device, schemaOf(this.inventory.get(r.device)!), current(r))
        rows.push(...out.rows)
        if (out.secrets.length > 0) this.log_.notice(`${r.device}: secret settings are not exported (${out.secrets.join(', ')}); add rows for them by hand`)
      }
      process.stdout.write(stringify(rows, { header: true, columns: [...SETTINGS_COLUMNS] }))
    } else {
      const rows = results.filter((r) => r.ok).flatMap((r) => Object.entries(current(r)).flatMap(([s, kv]) => Object.entries(kv).map(([k, v]) => [r.device, s, k, settingText(v)])))
      renderTable(['DEVICE', 'SECTION', 'KEY', 'VALUE'], rows)
    }
    for (const r of results) if (!r.ok) process.stderr.write(`${r.device}: ${r.status}: ${r.message}\n`)
    return doc
  }
}

/**
 * A settings file (`device,section,key,value`, long format) turned into the settings each door
 * should have. Every row is checked against the settings table of every door it selects before
 * anything is read or sent; any problem → InputError listing them all with their lines.
 */
import { parse } from 'csv-parse/sync'
import { InputError, type InputProblem } from '../types/errors.js'
import { loadDriver } from '../drivers/registry.js'
import type { DeviceEntry } from '../types/driver.js'
import type { SettingSpec, SettingsSchema } from '../types/settings.js'
import { parseSettingValue } from '../util/setting-values.js'
import { readTextInput } from '../util/user-paths.js'

export const SETTINGS_COLUMNS = ['device', 'section', 'key', 'value'] as const

export interface SettingRow {
  line: number
  device: string
  section: string
  key: string
  value: string
}

/** One setting one door should have, typed for its protocol. */
export interface DesiredSetting {
  section: string
  key: string
  value: unknown
  spec: SettingSpec
  /** The file line it comes from. */
  line: number
}

export interface DoorSettings {
  device: DeviceEntry
  schema: SettingsSchema
  settings: DesiredSetting[]
}

type Selector = { kind: 'name'; name: string } | { kind: 'tag'; tag: string } | { kind: 'all' }

/** name wins over tag, tag over `*`; between rows of the same kind, the later one. */
const SPECIFICITY: Record<Selector['kind'], number> = { all: 1, tag: 2, name: 3 }

function selectorOf(text: string): Selector {
  if (text === '*') return { kind: 'all' }
  if (text.toLowerCase().startsWith('tag:')) return { kind: 'tag', tag: text.slice(4).trim() }
  return { kind: 'name', name: text }
}

/** Reads the rows of a settings file (UTF-8, with or without BOM, header row in any order). */
export function readSettingsCsv(file: string): SettingRow[] {
  // a folder, a binary file, an empty or unreadable one: one line naming the path (util/user-paths)
  const text = readTextInput(file)
  let records: { record: Record<string, string>; info: { lines: number } }[]
  try {
    records = parse(text, { bom: true, columns: (h: string[]) => h.map((c) => c.trim().toLowerCase()), skip_empty_lines: true, info: true, relax_column_count: true }) as never
  } catch (err) {
    throw new InputError([{ file, line: (err as { lines?: number }).lines, message: `not valid CSV: ${(err as Error).message.replace(/^Invalid [^:]*: /, '')}` }])
  }
  const problems: InputProblem[] = []
  const header = text.trim() === '' ? [] : Object.keys(records[0]?.record ?? headerOnly(text))
  for (const c of SETTINGS_COLUMNS) if (!header.includes(c)) problems.push({ file, line: 1, field: c, message: `the header has no "${c}" column (a settings file has the columns ${SETTINGS_COLUMNS.join(',')})` })
  for (const h of header) if (!(SETTINGS_COLUMNS as readonly string[]).includes(h)) problems.push({ file, line: 1, field: h, message: `unknown column "${h}" (known: ${SETTINGS_COLUMNS.join(', ')})` })
  if (problems.length > 0) throw new InputError(problems)
  const rows: SettingRow[] = []
  for (const { record, info } of records) {
    const row = { line: info.lines, device: (record.device ?? '').trim(), section: (record.section ?? '').trim(), key: (record.key ?? '').trim(), value: record.value ?? '' }
    let ok = true
    for (const f of ['device', 'section', 'key'] as const) {
      if (row[f] === '') {
        problems.push({ file, line: row.line, field: f, message: `${f} is empty${f === 'device' ? ' (a device name, tag:NAME or *)' : ''}` })
        ok = false
      }
    }
    if (ok) rows.push(row)
  }
  if (problems.length === 0 && rows.length === 0) problems.push({ file, message: 'no settings in the file (only a header row)' })
  if (problems.length > 0) throw new InputError(problems, 'fix the rows listed and run again; nothing was read from or sent to any device')
  return rows
}

function headerOnly(text: string): Record<string, string> {
  const first = parse(text, { bom: true, to_line: 1 }) as string[][]
  return Object.fromEntries((first[0] ?? []).map((c) => [c.trim().toLowerCase(), '']))
}

/** Settings tables of these devices' protocols (driver modules are loaded once per protocol). */
export async function settingsSchemas(devices: readonly DeviceEntry[]): Promise<(d: DeviceEntry) => SettingsSchema> {
  const modules = new Map<string, Awaited<ReturnType<typeof loadDriver>>>()
  for (const d of devices) if (!modules.has(d.protocol)) modules.set(d.protocol, await loadDriver(d.protocol))
  return (d) => {
    const m = modules.get(d.protocol)
    return m?.settingsSchemaFor?.(d) ?? m?.settingsSchema ?? { sections: {} }
  }
}

function findKey<T>(table: Readonly<Record<string, T>>, name: string): string | undefined {
  if (Object.hasOwn(table, name)) return name
  const lower = name.toLowerCase()
  return Object.keys(table).find((k) => k.toLowerCase() === lower)
}

export interface DesiredState {
  /** Doors that get at least one setting, in inventory order. */
  doors: DoorSettings[]
  /** Targets given on the command line that no row applies to. */
  untouched: DeviceEntry[]
}

/**
 * The settings each door should have. `inventory` is every device (rows are checked against
 * what they select there, whatever the targets); `targets`, when given, limits which doors are
 * planned. Throws InputError with every problem, each with its line.
 */
export function desiredState(
  file: string,
  rows: readonly SettingRow[],
  opts: { inventory: readonly DeviceEntry[]; targets?: readonly DeviceEntry[]; schemaOf: (d: DeviceEntry) => SettingsSchema },
): DesiredState {
  const problems: InputProblem[] = []
  const bad = (line: number, field: string, message: string) => problems.push({ file, line, field, message })
  const byName = new Map(opts.inventory.map((d) => [d.name, d]))
  const inScope = new Set((opts.targets ?? opts.inventory).map((d) => d.name))
  // door → "section\0key" → the winning row's setting and its rank
  const chosen = new Map<string, Map<string, { setting: DesiredSetting; rank: number }>>()

  for (const row of rows) {
    const sel = selectorOf(row.device)
    let selected: DeviceEntry[]
    if (sel.kind === 'name') {
      const d = byName.get(sel.name)
      if (!d) {
        bad(row.line, 'device', `unknown device "${sel.name}" (a device name, tag:NAME or *; see \`doorctl device list\`)`)
        continue
      }
      selected = [d]
    } else if (sel.kind === 'tag') {
      selected = opts.inventory.filter((d) => d.tags.includes(sel.tag))
      if (selected.length === 0) {
        bad(row.line, 'device', `no device has the tag "${sel.tag}"`)
        continue
      }
    } else selected = [...opts.inventory]

    // a name row needs the section on its door; `*` and tag rows apply where the section exists
    const withSection = selected.filter((d) => findKey(opts.schemaOf(d).sections, row.section) !== undefined)
    if (withSection.length === 0) {
      const where = sel.kind === 'name' ? `${selected[0]!.name} (${selected[0]!.protocol})` : sel.kind === 'tag' ? `no device tagged ${sel.tag}` : 'no device in the inventory'
      const known = [...new Set(selected.flatMap((d) => Object.keys(opts.schemaOf(d).sections)))]
      bad(row.line, 'section', `${where} has no settings section "${row.section}" (sections: ${known.join(', ') || 'none'})`)
      continue
    }

    // the key and the value, once per protocol the row reaches
    const typed = new Map<string, { section: string; key: string; spec: SettingSpec; value: unknown } | undefined>()
    for (const d of withSection) {
      if (typed.has(d.protocol)) continue
      const sections = opts.schemaOf(d).sections
      const section = findKey(sections, row.section)!
      const key = findKey(sections[section]!, row.key)
      if (key === undefined) {
        bad(row.line, 'key', `${d.protocol} devices have no ${section} setting "${row.key}" (known: ${Object.keys(sections[section]!).join(', ')})`)
        typed.set(d.protocol, undefined)
        continue
      }
      const spec = sections[section]![key]!
      const parsed = parseSettingValue(spec, row.value)
      if ('error' in parsed) {
        // a secret's value is not repeated back
        const why = spec.secret ? parsed.error.replace(/, got .*$/, '') : parsed.error
        bad(row.line, 'value', `${section}.${key} ${why} (${d.protocol} devices)`)
        typed.set(d.protocol, undefined)
        continue
      }
      typed.set(d.protocol, { section, key, spec, value: parsed.value })
      if (spec.perDevice && sel.kind !== 'name' && withSection.length > 1) {
        const names = withSection.slice(0, 3).map((x) => x.name).join(', ') + (withSection.length > 3 ? ', …' : '')
        bad(row.line, 'device', `${section}.${key} is each door's own: give it on a row naming one device (this row selects ${withSection.length}: ${names})`)
      }
    }

    const rank = SPECIFICITY[sel.kind] * 1e9 + row.line
    for (const d of withSection) {
      const t = typed.get(d.protocol)
      if (!t || !inScope.has(d.name)) continue
      let mine = chosen.get(d.name)
      if (!mine) chosen.set(d.name, (mine = new Map()))
      const id = `${t.section}\0${t.key}`
      const prev = mine.get(id)
      if (!prev || prev.rank < rank) mine.set(id, { setting: { section: t.section, key: t.key, value: t.value, spec: t.spec, line: row.line }, rank })
    }
  }
  if (problems.length > 0) throw new InputError(problems, 'fix the rows listed and run again; nothing was read from or sent to any device')

  const doors: DoorSettings[] = []
  const untouched: DeviceEntry[] = []
  for (const d of opts.targets ?? opts.inventory) {
    const mine = chosen.get(d.name)
    if (mine && mine.size > 0) doors.push({ device: d, schema: opts.schemaOf(d), settings: [...mine.values()].map((c) => c.setting).sort((a, b) => a.line - b.line) })
    else if (opts.targets) untouched.push(d)
  }
  if (doors.length === 0) {
    throw new InputError([{ file, message: opts.targets ? 'no row of the file applies to the devices given' : 'no row of the file applies to any device' }], 'check the device column: a name, tag:NAME or *')
  }
  return { doors, untouched }
}

/**
 * Planning and applying a door's settings: read what the device has, compare with what the
 * settings file wants, send only what differs (one write per section, or one in all where the
 * protocol takes every section at once), read it back where the device can say. The same code
 * for every protocol: the differences are in each protocol's settings table.
 */
import { DoorctlError, UnsupportedError, statusOf } from '../types/errors.js'
import type { DeviceBook } from '../store/inventory.js'
import type { Outcome } from './run.js'
import type { DeviceDriver, OperationContext } from '../types/driver.js'
import { isReadable, type SettingsSchema } from '../types/settings.js'
import { reportedValue, sameSettingValue, settingText } from '../util/setting-values.js'
import type { DesiredSetting, DoorSettings } from './settings-file.js'

export const MASK = '********'

/** The device's settings, section by section: in one answer where the driver can, else one read per section. */
export async function readSettings(driver: DeviceDriver, sections: readonly string[], ctx: OperationContext): Promise<Record<string, Record<string, unknown>>> {
  if (sections.length === 0) return {}
  if (driver.readConfig) return driver.readConfig(sections, ctx)
  const out: Record<string, Record<string, unknown>> = {}
  for (const s of sections) out[s] = await driver.getConfig(s, ctx)
  return out
}

/**
 * `config get`: the sections asked (all the device has when none), as a per-device result. One
 * section keeps the shape `config get SECTION` always had: `section` and `config`.
 */
export async function readSettingsOutcome(driver: DeviceDriver, asked: readonly string[], ctx: OperationContext): Promise<Outcome> {
  const own = driver.configSections()
  const sections = asked.length > 0 ? asked : own
  const missing = sections.filter((s) => !own.includes(s))
  if (own.length === 0 || missing.length > 0) {
    throw new UnsupportedError(`${driver.protocol} devices have no config section ${missing.map((s) => `"${s}"`).join(', ') || '(no settings at all)'}`, `sections: ${own.join(', ') || 'none'}`)
  }
  const current = await readSettings(driver, sections, ctx)
  const count = Object.values(current).reduce((n, v) => n + Object.keys(v).length, 0)
  return { message: `${count} settings`, fields: asked.length === 1 ? { section: asked[0], config: current[asked[0]!] } : { sections: current } }
}

export interface SettingChange extends DesiredSetting {
  /** The device's value, when it is known. */
  current?: unknown
  known: boolean
}

export interface DoorPlan {
  door: DoorSettings
  changes: SettingChange[]
  /** Settings the device already has. */
  inLine: DesiredSetting[]
}

/** Reads the door's current settings and compares. Unreadable values count as changes (their current value is unknown). */
export async function planDoor(driver: DeviceDriver, door: DoorSettings, ctx: OperationContext): Promise<DoorPlan> {
  const readable = door.settings.filter((s) => isReadable(s.spec))
  const current = await readSettings(driver, [...new Set(readable.map((s) => s.section))], ctx)
  const changes: SettingChange[] = []
  const inLine: DesiredSetting[] = []
  for (const s of door.settings) {
    const now = isReadable(s.spec) ? reportedValue(s.spec, current[s.section]?.[s.key]) : undefined
    if (now === undefined) changes.push({ ...s, known: false })
    else if (sameSettingValue(now, s.value)) inLine.push(s)
    else changes.push({ ...s, current: now, known: true })
  }
  return { door, changes, inLine }
}

function shown(s: DesiredSetting, v: unknown): unknown {
  return s.spec.secret ? MASK : v
}

/** `section.key: current → desired`, secrets masked. */
export function changeLine(c: SettingChange): string {
  const from = c.known ? settingText(shown(c, c.current)) : '(unknown)'
  return `${c.section}.${c.key}: ${from === '' ? '""' : from} → ${settingText(shown(c, c.value)) || '""'}`
}

/** A plan as a per-door result of the CLI contract (`--json` of `device config plan`). */
export function planOutcome(plan: DoorPlan): Outcome {
  const n = plan.changes.length
  const unknown = plan.changes.filter((c) => !c.known).length
  const message = n === 0
    ? `in line (${plan.inLine.length} setting${plan.inLine.length === 1 ? '' : 's'})`
    : `${n} setting${n === 1 ? '' : 's'} to change${unknown ? ` (${unknown} with an unknown current value)` : ''}`
  return {
    message,
    fields: {
      in_line: n === 0,
      changes: plan.changes.map((c) => ({ section: c.section, key: c.key, current: c.known ? shown(c, c.current) : null, desired: shown(c, c.value), known: c.known, line: c.line })),
      unchanged: plan.inLine.map((s) => `${s.section}.${s.key}`),
    },
  }
}

export interface ApplyOptions {
  /** Where a device that took a new identity (udp community/code) is followed. */
  inventory?: DeviceBook
}

/**
 * Sends the plan's changes and reads them back where the protocol can. The outcome is `ok`
 * (with the keys changed), `unchanged`, or the failure of the write that failed, saying which
 * writes went through before it.
 */
export async function applyDoor(driver: DeviceDriver, plan: DoorPlan, ctx: OperationContext, opts: ApplyOptions = {}): Promise<Outcome> {
  if (plan.changes.length === 0) return { status: 'unchanged', message: planOutcome(plan).message, fields: { changed: [] } }
  const schema = plan.door.schema
  const writes = groupWrites(schema, plan.changes)
  const done: SettingChange[] = []
  for (const [section, changes] of writes) {
    try {
      const r = await driver.setConfig(section, Object.fromEntries(changes.map((c) => [c.key, c.value])), ctx)
      await followMovedDevice(opts.inventory, plan.door.device.name, r.data)
    } catch (err) {
      return failure(err, `${section}: `, done)
    }
    done.push(...changes)
  }
  const changed = done.map((c) => ({ section: c.section, key: c.key, from: c.known ? shown(c, c.current) : null, to: shown(c, c.value) }))
  const checkable = schema.readBack === false ? [] : done.filter((c) => isReadable(c.spec))
  const unchecked = done.filter((c) => !checkable.includes(c)).map((c) => `${c.section}.${c.key}`)
  if (checkable.length > 0) {
    let back: Record<string, Record<string, unknown>>
    try {
      back = await readSettings(driver, [...new Set(checkable.map((c) => c.section))], ctx)
    } catch (err) {
      return failure(err, 'sent, but reading the settings back failed: ', done)
    }
    const kept = checkable.filter((c) => !sameSettingValue(reportedValue(c.spec, back[c.section]?.[c.key]), c.value))
    if (kept.length > 0) {
      const what = kept.map((c) => `${c.section}.${c.key} is ${settingText(shown(c, reportedValue(c.spec, back[c.section]?.[c.key]))) || '(not reported)'}, not ${settingText(shown(c, c.value))}`)
      return { status: 'failed', message: `the device did not take every setting: ${what.join('; ')}`, fields: { changed: changed.filter((c) => !kept.some((k) => k.section === c.section && k.key === c.key)), refused: kept.map((c) => `${c.section}.${c.key}`) } }
    }
  }
  const message = `changed ${done.map(changeLine).join(', ')}` + (unchecked.length ? `; not read back: ${unchecked.join(', ')}` : '')
  return { status: 'ok', message, fields: { changed, ...(unchecked.length ? { not_read_back: unchecked } : {}) } }
}

/** One write per section, or all in one where the protocol's write takes every section. */
function groupWrites(schema: SettingsSchema, changes: readonly SettingChange[]): Map<string, SettingChange[]> {
  const writes = new Map<string, SettingChange[]>()
  for (const c of changes) {
    const section = schema.writeAllAs ?? c.section
    writes.set(section, [...(writes.get(section) ?? []), c])
  }
  return writes
}

function failure(err: unknown, prefix: string, done: readonly SettingChange[]): Outcome {
  const message = (err instanceof Error ? err.message : String(err)) + (done.length ? ` (already changed: ${done.map((c) => `${c.section}.${c.key}`).join(', ')})` : '')
  const fields: Record<string, unknown> = { changed: done.map((c) => ({ section: c.section, key: c.key })) }
  if (err instanceof DoorctlError) {
    fields.code = err.code
    if (err.suggestion) fields.suggestion = err.suggestion
    const deviceCode = (err as { deviceCode?: number | string }).deviceCode
    if (deviceCode !== undefined) fields.device_code = deviceCode
  }
  return { status: statusOf(err), message: prefix + message, fields }
}

/**
 * udp intercoms are known by community and code: when one acknowledged new ones (the write's
 * `newCommunity`/`newCode`), the inventory follows it, or the next command would not find it.
 */
export async function followMovedDevice(inventory: DeviceBook | undefined, name: string, data: Record<string, unknown> | undefined): Promise<void> {
  const moved = data as { newCommunity?: string; newCode?: string } | undefined
  if (!inventory || !(moved?.newCommunity || moved?.newCode)) return
  const current = inventory.get(name)
  if (current) await inventory.save([{ ...current, community: moved.newCommunity ?? current.community, code: moved.newCode ?? current.code }])
}

/**
 * A door's current settings as settings-file rows (`device,section,key,value`): the keys its
 * protocol's table lists and the device reported, in the table's order. Secrets (never known)
 * and values that change by themselves (the clock) are left out; `secrets` names the secrets.
 */
export function settingRows(device: string, schema: SettingsSchema, current: Record<string, Record<string, unknown>>): { rows: string[][]; secrets: string[] } {
  const rows: string[][] = []
  const secrets: string[] = []
  for (const [section, keys] of Object.entries(schema.sections)) {
    if (!current[section]) continue
    for (const [key, spec] of Object.entries(keys)) {
      if (spec.secret) {
        secrets.push(`${section}.${key}`)
        continue
      }
      if (spec.volatile || !isReadable(spec)) continue
      const v = reportedValue(spec, current[section][key])
      if (v !== undefined) rows.push([device, section, key, settingText(v)])
    }
  }
  return { rows, secrets }
}

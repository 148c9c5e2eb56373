import { parse } from 'csv-parse/sync'
import { InputError, type InputProblem } from '../types/errors.js'
import { buildDeviceEntry } from '../store/inventory.js'
import { readTextInput } from '../util/user-paths.js'
import type { DeviceEntry } from '../types/driver.js'

export const DEVICE_COLUMNS = ['name', 'protocol', 'host', 'port', 'password', 'sn', 'community', 'code', 'transport', 'tags', 'ws_port', 'device_id', 'mode', 'product_id', 'device_secret', 'broker_key', 'tz', 'allow_from'] as const

/** Reads devices.csv and validates every row; any problem → InputError listing them all, nothing saved. */
export function readDevicesCsv(file: string): DeviceEntry[] {
  const text = readTextInput(file)
  const problems: InputProblem[] = []
  let rows: { record: Record<string, string>; info: { lines: number } }[]
  try {
    rows = parse(text, { bom: true, columns: (h: string[]) => h.map((c) => c.trim().toLowerCase()), skip_empty_lines: true, info: true, relax_column_count: true }) as never
  } catch (err) {
    throw new InputError([{ file, line: (err as { lines?: number }).lines, message: `not valid CSV: ${(err as Error).message}` }])
  }
  const header = rows.length > 0 ? Object.keys(rows[0].record) : []
  for (const h of header) if (!(DEVICE_COLUMNS as readonly string[]).includes(h)) problems.push({ file, line: 1, field: h, message: `unknown column "${h}" (known: ${DEVICE_COLUMNS.join(', ')})` })
  if (rows.length === 0) problems.push({ file, message: 'no devices in the file' })
  const seen = new Map<string, number>()
  const entries: DeviceEntry[] = []
  for (const { record: r, info } of rows) {
    const line = info.lines
    const built = buildDeviceEntry(
      {
        name: r.name, protocol: r.protocol, host: r.host, port: r.port, wsPort: r.ws_port, password: r.password === '' ? undefined : r.password,
        sn: r.sn, community: r.community, code: r.code, transport: r.transport, tags: r.tags?.split(';'),
        deviceId: r.device_id, mode: r.mode, productId: r.product_id, deviceSecret: r.device_secret, brokerKey: r.broker_key, tz: r.tz, allowFrom: r.allow_from ? [r.allow_from] : undefined,
      },
      { file, line },
    )
    problems.push(...built.problems)
    const name = r.name?.trim()
    if (name) {
      const first = seen.get(name)
      if (first !== undefined) problems.push({ file, line, field: 'name', message: `duplicate name "${name}" (first on line ${first})` })
      else seen.set(name, line)
    }
    if (built.entry) entries.push(built.entry)
  }
  if (problems.length > 0) throw new InputError(problems, 'fix the rows listed and run again; no device was saved')
  return entries
}

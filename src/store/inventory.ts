import { statSync } from 'node:fs'
import Conf from 'conf'
import { parseCidrList } from '../util/cidr.js'
import { UsageError, type InputProblem } from '../types/errors.js'
import { isoWithOffset } from '../util/time.js'
import { PROTOCOLS, type DeviceEntry, type Protocol } from '../types/driver.js'
import { canonicalZone } from '../util/time.js'

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/
export const TAG_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$/
export const SECRET_FIELDS = ['password', 'deviceSecret', 'brokerKey'] as const

type Store = { devices: Record<string, DeviceEntry> }

/** What commands read and change the inventory through: the file (default store) or a snapshot of a shared store. */
export interface DeviceBook {
  all(): DeviceEntry[]
  get(name: string): DeviceEntry | undefined
  /** Adds or replaces devices in one atomic write; done (durably) when it returns or resolves. */
  save(entries: DeviceEntry[]): void | Promise<void>
  remove(names: string[]): void | Promise<void>
}

/**
 * The device inventory: one JSON file in DOORCTL_HOME, mode 0600 because it holds device
 * passwords and keys. Writes are atomic (conf → temp file, fsync, rename).
 */
export class Inventory implements DeviceBook {
  private readonly conf: Conf<Store>

  constructor(home: string) {
    this.conf = new Conf<Store>({
      cwd: home,
      configName: 'inventory',
      configFileMode: 0o600,
      defaults: { devices: {} },
      accessPropertiesByDotNotation: false,
    })
  }

  get path(): string {
    return this.conf.path
  }

  /** Changes whenever the inventory file does (the gateway re-reads it then). */
  stamp(): string {
    try {
      const st = statSync(this.conf.path)
      return `${st.mtimeMs}:${st.size}`
    } catch {
      return 'none'
    }
  }

  all(): DeviceEntry[] {
    return Object.values(this.conf.get('devices')).sort((a, b) => a.name.localeCompare(b.name))
  }

  get(name: string): DeviceEntry | undefined {
    return this.conf.get('devices')[name]
  }

  /** Adds or replaces devices in one atomic write. */
  save(entries: DeviceEntry[]): void {
    const devices = { ...this.conf.get('devices') }
    for (const e of entries) devices[e.name] = e
    this.conf.set('devices', devices)
  }

  remove(names: string[]): void {
    const devices = { ...this.conf.get('devices') }
    for (const n of names) delete devices[n]
    this.conf.set('devices', devices)
  }
}

/** The fields `device add` / `device import` accept, as text. */
export interface DeviceInput {
  name?: string
  protocol?: string
  host?: string
  port?: string
  wsPort?: string
  password?: string
  sn?: string
  community?: string
  code?: string
  transport?: string
  tags?: string[]
  deviceId?: string
  mode?: string
  productId?: string
  deviceSecret?: string
  brokerKey?: string
  /** IANA time zone (Asia/Shanghai) */
  tz?: string
  /** CIDR ranges, each value may hold several (comma, semicolon or space separated). */
  allowFrom?: string[]
}

/**
 * Validates one device's fields for its protocol. Returns the entry, or the problems found
 * (each naming its field) so a CSV import can list every bad row before saving any.
 */
export function buildDeviceEntry(input: DeviceInput, where: Omit<InputProblem, 'message' | 'field'> = { file: 'arguments' }):
  | { entry: DeviceEntry; problems: [] }
  | { entry?: undefined; problems: InputProblem[] } {
  const problems: InputProblem[] = []
  const bad = (field: string, message: string) => problems.push({ ...where, field, message })
  const name = input.name?.trim() ?? ''
  if (!NAME_RE.test(name)) bad('name', name === '' ? 'a device name is required' : `"${name}" is not a valid name (letters, digits, . _ -; at most 63; starts with a letter or digit)`)
  const protocol = (input.protocol?.trim().toLowerCase() ?? '') as Protocol
  if (!PROTOCOLS.includes(protocol)) {
    bad('protocol', protocol === ('' as Protocol) ? `a protocol is required (${PROTOCOLS.join(', ')})` : `unknown protocol "${input.protocol}" (one of ${PROTOCOLS.join(', ')})`)
  }
  const tags = (input.tags ?? []).map((t) => t.trim()).filter((t) => t !== '')
  for (const t of tags) if (!TAG_RE.test(t)) bad('tags', `"${t}" is not a valid tag`)
  const port = parsePort(input.port, 'port', bad)
  const wsPort = parsePort(input.wsPort, 'ws_port', bad)
  const entry: DeviceEntry = { name, protocol, tags: [...new Set(tags)], addedAt: isoWithOffset(new Date()) }
  try {
    const allowFrom = parseCidrList(input.allowFrom ?? [])
    if (allowFrom.length > 0) entry.allowFrom = allowFrom
  } catch (err) {
    bad('allow_from', (err as Error).message)
  }
  const text = (v: string | undefined) => (v === undefined || v.trim() === '' ? undefined : v.trim())
  const tz = text(input.tz)
  if (tz !== undefined) {
    const zone = canonicalZone(tz)
    if (zone) entry.tz = zone
    else bad('tz', `"${tz}" is not an IANA time zone (e.g. Asia/Shanghai, America/New_York, UTC)`)
  }

  switch (protocol) {
    case 'openapi': {
      entry.host = text(input.host)
      entry.deviceId = text(input.deviceId)
      if (!entry.host && !entry.deviceId) bad('host', 'openapi devices need --host (direct mode) or --device-id (platform mode)')
      if (entry.host && !isHost(entry.host)) bad('host', `"${entry.host}" is not a host name or IP address (no scheme, no port)`)
      const mode = text(input.mode) ?? (entry.host ? 'direct' : 'platform')
      if (mode !== 'direct' && mode !== 'platform' && mode !== 'both') bad('mode', `mode "${mode}" must be direct, platform or both`)
      else entry.mode = mode
      if ((mode === 'direct' || mode === 'both') && !entry.host) bad('host', `mode ${mode} needs --host`)
      if ((mode === 'platform' || mode === 'both') && !entry.deviceId) bad('device_id', `mode ${mode} needs --device-id`)
      if (entry.host) {
        entry.port = port ?? 8899
        entry.wsPort = wsPort ?? 9000
        entry.password = input.password ?? '123456'
      }
      break
    }
    case 'httpv2':
    case 'wsjson':
    case 'best': {
      entry.sn = text(input.sn)
      if (!entry.sn) bad('sn', `${protocol} devices need --sn (the serial number the device reports)`)
      if (protocol === 'best') {
        const transport = text(input.transport) ?? 'ws'
        if (transport !== 'ws' && transport !== 'mqtt') bad('transport', `transport "${transport}" must be ws or mqtt`)
        else entry.transport = transport
        entry.productId = text(input.productId)
        entry.deviceSecret = text(input.deviceSecret)
        entry.brokerKey = text(input.brokerKey)
      }
      if (input.password !== undefined && input.password !== '') entry.password = input.password
      break
    }
    case 'udp': {
      entry.community = text(input.community)
      entry.code = text(input.code)
      if (!entry.community) bad('community', 'udp devices need --community (communityId)')
      if (!entry.code) bad('code', 'udp devices need --code (deviceCode)')
      break
    }
  }
  if (problems.length > 0) return { problems }
  for (const k of Object.keys(entry) as (keyof DeviceEntry)[]) if (entry[k] === undefined) delete entry[k]
  return { entry, problems: [] }
}

function parsePort(v: string | undefined, field: string, bad: (f: string, m: string) => void): number | undefined {
  if (v === undefined || v.trim() === '') return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    bad(field, `"${v}" is not a port number (1-65535)`)
    return undefined
  }
  return n
}

function isHost(h: string): boolean {
  return /^[A-Za-z0-9.-]+$/.test(h) || /^\[?[0-9A-Fa-f:]+\]?$/.test(h)
}

/** A copy safe to print: secrets replaced by a mask, never their length or any character. */
export function maskSecrets(entry: DeviceEntry): DeviceEntry {
  const copy = { ...entry }
  for (const f of SECRET_FIELDS) if (copy[f] !== undefined) copy[f] = '********'
  return copy
}

/** The address or identity a human recognises a device by. */
export function identityOf(d: DeviceEntry): string {
  switch (d.protocol) {
    case 'openapi':
      return [d.host ? `${d.host}:${d.port ?? 8899}` : undefined, d.deviceId ? `id ${d.deviceId}` : undefined].filter(Boolean).join(' ')
    case 'udp':
      return `community ${d.community} code ${d.code}`
    default:
      return `sn ${d.sn}`
  }
}

export function assertKnown(inv: Pick<DeviceBook, 'get'>, names: string[]): DeviceEntry[] {
  const unknown = names.filter((n) => !inv.get(n))
  if (unknown.length > 0) {
    throw new UsageError(`unknown device${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`, 'see `doorctl device list`, or add it with `doorctl device add`')
  }
  return names.map((n) => inv.get(n)!)
}

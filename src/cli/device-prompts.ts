/**
 * Guided setup on a terminal (@inquirer/prompts, on stderr so stdout stays the command's output):
 * what `device add` was not given — name, protocol, then only that protocol's fields, passwords
 * masked — and which discovered devices `device adopt` takes in, with a name for each.
 * Callers ask only when a human can answer (a TTY on stdin, no --json).
 */
import { NAME_RE, TAG_RE, type DeviceInput } from '../store/inventory.js'
import { PROTOCOLS, type Protocol } from '../types/driver.js'
import type { Adoptable } from '../ops/adopt.js'

const io = { output: process.stderr }

const PROTOCOL_HINTS: Record<Protocol, string> = {
  openapi: 'face terminal serving HTTP on port 8899 (doorctl calls it), or calling the gateway (platform mode)',
  httpv2: 'face terminal polling the gateway (/Device/Keepalive)',
  wsjson: 'face terminal holding a WebSocket to the gateway',
  udp: 'community door intercom: UDP heartbeats + HTTP callbacks',
  best: 'ZKTeco-style device over WebSocket (best-w) or MQTT (best-m)',
}

interface Field {
  key: keyof Omit<DeviceInput, 'tags' | 'allowFrom'>
  message: string
  required?: boolean
  default?: string | ((a: DeviceInput) => string)
  /** asked with a masked prompt; empty = not given */
  secret?: boolean
  choices?: readonly string[]
  when?: (a: DeviceInput) => boolean
  validate?: (v: string) => true | string
}

/** As buildDeviceEntry decides when no mode is given. */
const modeOf = (a: DeviceInput) => a.mode ?? (a.host ? 'direct' : a.deviceId ? 'platform' : 'direct')
const direct = (a: DeviceInput) => modeOf(a) !== 'platform'
const platform = (a: DeviceInput) => modeOf(a) !== 'direct'
const port = (v: string) => v.trim() === '' || (/^\d+$/.test(v.trim()) && Number(v) >= 1 && Number(v) <= 65535) || 'a port number, 1 to 65535'
const SN: Field = { key: 'sn', message: 'Serial number (SN) the device reports', required: true }

/** Each protocol's fields, in the order an installer reads them off the device. */
const FIELDS: Record<Protocol, readonly Field[]> = {
  openapi: [
    { key: 'mode', message: 'How doorctl reaches it (direct: doorctl calls it; platform: it calls the gateway)', choices: ['direct', 'platform', 'both'], default: modeOf },
    { key: 'host', message: 'Device address (IP or host name, no port)', required: true, when: direct },
    { key: 'port', message: 'HTTP API port', default: '8899', when: direct, validate: port },
    { key: 'password', message: 'Device password (Enter: the factory default 123456)', secret: true, when: direct },
    { key: 'deviceId', message: 'Device id (as in its /sy… platform paths)', required: true, when: platform },
  ],
  httpv2: [SN],
  wsjson: [SN],
  best: [
    SN,
    { key: 'transport', message: 'Transport', choices: ['ws', 'mqtt'], default: 'ws' },
    { key: 'productId', message: 'productId (Enter to skip: the first key the device presents is trusted)' },
    { key: 'deviceSecret', message: 'Device secret (Enter to skip)', secret: true },
    { key: 'brokerKey', message: 'getBrokerServer secretKey (Enter to skip)', secret: true },
  ],
  udp: [
    { key: 'community', message: 'communityId', required: true },
    { key: 'code', message: 'deviceCode', required: true },
  ],
}

const nameCheck = (v: string) => NAME_RE.test(v.trim()) || 'letters, digits, . _ -; at most 63; starting with a letter or digit'

function splitTags(v: string): string[] {
  return v.split(/[\s,;]+/).filter(Boolean)
}

const tagsCheck = (v: string) => splitTags(v).every((t) => TAG_RE.test(t)) || 'tags are letters, digits, . _ : -'

/** Does `device add` lack something only a human could still give? */
export function missingAnything(given: DeviceInput): boolean {
  if (!given.name || !given.protocol) return true
  return (FIELDS[given.protocol as Protocol] ?? []).some((f) => f.required && given[f.key] === undefined && (!f.when || f.when(given)))
}

/** Asks for everything `given` lacks; what was given on the command line is not asked again. */
export async function askDeviceInput(given: DeviceInput): Promise<DeviceInput> {
  const { input, password, select } = await import('@inquirer/prompts')
  const a: DeviceInput = { ...given }
  if (!a.name) a.name = (await input({ message: 'Name for the device', required: true, validate: nameCheck }, io)).trim()
  if (!a.protocol) {
    a.protocol = await select({ message: 'Protocol', choices: PROTOCOLS.map((p) => ({ value: p, description: PROTOCOL_HINTS[p] })) }, io)
  }
  for (const f of FIELDS[a.protocol as Protocol] ?? []) {
    if (a[f.key] !== undefined || (f.when && !f.when(a))) continue
    const dflt = typeof f.default === 'function' ? f.default(a) : f.default
    let v: string
    if (f.choices) v = await select({ message: f.message, choices: f.choices.map((c) => ({ value: c })), default: dflt }, io)
    else if (f.secret) v = await password({ message: f.message, mask: '*' }, io)
    else v = (await input({ message: f.message, default: dflt, required: f.required, validate: f.validate }, io)).trim()
    if (v !== '') a[f.key] = v
  }
  if (!given.tags || given.tags.length === 0) {
    const tags = await input({ message: 'Tags (optional; comma or space separated)', validate: tagsCheck }, io)
    a.tags = splitTags(tags)
  }
  return a
}

/** Which discovered devices to take in, a name for each, and tags for them all. */
export async function askAdoptions(devices: readonly Adoptable[], taken: (name: string) => boolean): Promise<DeviceInput[]> {
  const { checkbox, input } = await import('@inquirer/prompts')
  const picked = await checkbox(
    {
      message: 'Devices to add (space to pick, enter to confirm)',
      required: true,
      choices: devices.map((d, i) => ({ value: i, name: `${d.protocol} ${d.identity}  from ${d.address || '?'}, last seen ${d.lastSeen}` })),
    },
    io,
  )
  const names = new Set<string>()
  const out: DeviceInput[] = []
  for (const i of picked) {
    const d = devices[i]!
    const name = (
      await input(
        {
          message: `Name for ${d.protocol} ${d.identity}`,
          required: true,
          validate: (v) => {
            const ok = nameCheck(v)
            if (ok !== true) return ok
            return names.has(v.trim()) || taken(v.trim()) ? `"${v.trim()}" is already a device name` : true
          },
        },
        io,
      )
    ).trim()
    names.add(name)
    out.push({ ...d.input, name })
  }
  const tags = splitTags(await input({ message: 'Tags for these devices (optional; comma or space separated)', validate: tagsCheck }, io))
  return out.map((a) => ({ ...a, tags }))
}

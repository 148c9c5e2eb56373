import { Args, Flags } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { askDeviceInput, missingAnything } from '../../src/cli/device-prompts.js'
import { listenerFlags } from '../../src/cli/flags.js'
import { readSecretFromStdin } from '../../src/cli/secrets.js'
import { InputError } from '../../src/types/errors.js'
import { buildDeviceEntry, maskSecrets, type DeviceInput } from '../../src/store/inventory.js'
import { PROTOCOLS } from '../../src/types/driver.js'

export default class DeviceAdd extends DoorctlCommand {
  static override description = 'Add a device to the inventory (or replace one of the same name); on a terminal, what is missing is asked'
  static override examples = [
    'doorctl device add                 # on a terminal: asks name, protocol and that protocol\'s fields, then offers a connection test',
    'doorctl device add door-1 --protocol openapi --host 127.0.0.1 --password-stdin < password.txt --test',
    'doorctl device add lobby --protocol httpv2 --sn FC-8200H12345678 --tag hq',
    'doorctl device add gate-3 --protocol udp --community 12 --code 3',
    'doorctl device add tokyo-1 --protocol httpv2 --sn FC-8200H87654321 --tz Asia/Tokyo',
  ]
  static override args = { name: Args.string({ description: 'a name for the device (letters, digits, . _ -); asked on a terminal when missing' }) }
  static override flags = {
    protocol: Flags.string({ char: 'p', description: 'device protocol', options: [...PROTOCOLS] }),
    host: Flags.string({ description: 'openapi: the device address' }),
    port: Flags.integer({ description: 'openapi: HTTP API port (default 8899)', min: 1, max: 65535 }),
    'ws-port': Flags.integer({ description: 'openapi: live-record WebSocket port (default 9000)', min: 1, max: 65535 }),
    password: Flags.string({ description: 'device password (prefer --password-stdin: flags show up in shell history)' }),
    'password-stdin': Flags.boolean({ description: 'read the password from standard input', exclusive: ['password'] }),
    sn: Flags.string({ description: 'httpv2, wsjson, best: serial number' }),
    community: Flags.string({ description: 'udp: communityId' }),
    code: Flags.string({ description: 'udp: deviceCode' }),
    transport: Flags.string({ description: 'best: ws or mqtt', options: ['ws', 'mqtt'] }),
    'device-id': Flags.string({ description: 'openapi platform mode: the device id in its /sy… paths' }),
    mode: Flags.string({ description: 'openapi: direct, platform or both', options: ['direct', 'platform', 'both'] }),
    'product-id': Flags.string({ description: 'best: productId' }),
    'device-secret': Flags.string({ description: 'best: device secret (devKey is derived from it)' }),
    'broker-key': Flags.string({ description: 'best: getBrokerServer secretKey' }),
    tag: Flags.string({ char: 't', description: 'tag (repeatable)', multiple: true }),
    test: Flags.boolean({ description: 'test the connection once added (on a terminal you are asked; --no-test skips)', allowNo: true }),
    'test-timeout': Flags.string({ description: 'connection test: how long to wait (push-style devices must call the gateway within it)', default: '60s' }),
    ...listenerFlags,
    tz: Flags.string({ description: "the device clock's IANA time zone, e.g. Asia/Shanghai (default: this machine's zone)" }),
    'allow-from': Flags.string({ description: 'push-style devices: the gateway takes this device\'s requests only from these CIDR ranges (IPv4/IPv6; repeatable or comma-separated)', multiple: true }),
  }

  async run() {
    const { args, flags } = await this.parse(DeviceAdd)
    const password = flags['password-stdin'] ? await readSecretFromStdin('--password-stdin') : flags.password
    let input: DeviceInput = {
      name: args.name, protocol: flags.protocol, host: flags.host, port: flags.port?.toString(), wsPort: flags['ws-port']?.toString(), password,
      sn: flags.sn, community: flags.community, code: flags.code, transport: flags.transport, tags: flags.tag,
      deviceId: flags['device-id'], mode: flags.mode, productId: flags['product-id'], deviceSecret: flags['device-secret'], brokerKey: flags['broker-key'], tz: flags.tz, allowFrom: flags['allow-from'],
    }
    if (this.canPrompt && missingAnything(input)) input = await askDeviceInput(input)
    const built = buildDeviceEntry(input)
    if (!built.entry) throw new InputError(built.problems.map((p) => ({ ...p, file: 'flags', field: p.field === 'name' ? 'NAME' : p.field ? `--${p.field.replace('_', '-')}` : undefined })))
    const replaced = this.inventory.get(built.entry.name) !== undefined
    await this.inventory.save([built.entry])
    const message = `${replaced ? 'replaced' : 'added'} ${built.entry.name} (${built.entry.protocol})`
    if (!this.jsonEnabled()) this.log(message)
    const doc = { ok: true, device: maskSecrets(built.entry), replaced, message }
    const wanted = flags.test ?? (this.canPrompt ? await this.ask('Test the connection now?') : false)
    if (!wanted) return doc
    const { testConnection } = await import('../../src/ops/connection-test.js')
    const timeoutMs = this.timeoutMs({ timeout: flags['test-timeout'] })
    const test = await this.spin(`testing ${built.entry.name}`, () => testConnection(built.entry!, this.driverEnv(flags), { timeoutMs, signal: this.signal }))
    if (!test.ok) process.exitCode = 1
    if (!this.jsonEnabled()) {
      this.log(`connection test: ${test.ok ? 'ok' : 'failed'}: ${test.message}`)
      if (!test.ok && test.suggestion) this.log(`Try: ${test.suggestion}`)
    }
    return { ...doc, ok: test.ok, test }
  }
}

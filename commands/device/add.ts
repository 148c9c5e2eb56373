import { Args, Flags } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { readSecretFromStdin } from '../../src/cli/secrets.js'
import { UsageError, InputError } from '../../src/types/errors.js'
import { buildDeviceEntry, maskSecrets } from '../../src/store/inventory.js'
import { PROTOCOLS } from '../../src/types/driver.js'

export default class DeviceAdd extends DoorctlCommand {
  static override description = 'Add a device to the inventory (or replace one of the same name)'
  static override examples = [
    'doorctl device add door-1 --protocol openapi --host 127.0.0.1 --password-stdin < password.txt',
    'doorctl device add lobby --protocol httpv2 --sn FC-8200H12345678 --tag hq',
    'doorctl device add gate-3 --protocol udp --community 12 --code 3',
  ]
  static override args = { name: Args.string({ description: 'a name for the device (letters, digits, . _ -)', required: true }) }
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
  }

  async run() {
    const { args, flags } = await this.parse(DeviceAdd)
    let protocol = flags.protocol
    if (!protocol) {
      if (!process.stdin.isTTY || this.jsonEnabled()) throw new UsageError('--protocol is required', `pass --protocol with one of ${PROTOCOLS.join(', ')}`)
      const { select } = await import('@inquirer/prompts')
      protocol = await select({ message: 'Protocol', choices: PROTOCOLS.map((p) => ({ value: p })) }, { output: process.stderr })
    }
    const password = flags['password-stdin'] ? await readSecretFromStdin('--password-stdin') : flags.password
    const built = buildDeviceEntry({
      name: args.name, protocol, host: flags.host, port: flags.port?.toString(), wsPort: flags['ws-port']?.toString(), password,
      sn: flags.sn, community: flags.community, code: flags.code, transport: flags.transport, tags: flags.tag,
      deviceId: flags['device-id'], mode: flags.mode, productId: flags['product-id'], deviceSecret: flags['device-secret'], brokerKey: flags['broker-key'],
    })
    if (!built.entry) throw new InputError(built.problems.map((p) => ({ ...p, file: 'flags', field: p.field ? `--${p.field.replace('_', '-')}` : undefined })))
    const replaced = this.inventory.get(args.name) !== undefined
    await this.inventory.save([built.entry])
    const message = `${replaced ? 'replaced' : 'added'} ${args.name} (${built.entry.protocol})`
    if (!this.jsonEnabled()) this.log(message)
    return { ok: true, device: maskSecrets(built.entry), replaced, message }
  }
}

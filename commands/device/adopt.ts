import { DoorctlCommand } from '../../src/cli/base-command.js'
import { askAdoptions } from '../../src/cli/device-prompts.js'
import { renderTable } from '../../src/cli/render.js'
import { InputError, UsageError } from '../../src/types/errors.js'
import { buildDeviceEntry, maskSecrets } from '../../src/store/inventory.js'
import { adoptableDevices } from '../../src/ops/adopt.js'

export default class DeviceAdopt extends DoorctlCommand {
  static override description = 'Add devices that called the gateway but are not in the inventory: pick them from a list and name each (on a terminal)'
  static override examples = [
    'doorctl device adopt                       # lists discovered devices, asks which to add and a name for each',
    'doorctl device list --discovered --json    # the same list, for scripts (then `doorctl device add NAME --protocol P --sn SN`)',
  ]

  async run() {
    await this.parse(DeviceAdopt)
    const { devices } = await adoptableDevices(this.home, this.inventory)
    if (devices.length === 0) {
      if (!this.jsonEnabled()) this.log('no discovered devices waiting to be added (devices appear here once they call the gateway: `doorctl serve`)')
      return { ok: true, added: [], discovered: [] }
    }
    if (!this.canPrompt) {
      throw new UsageError(
        `${devices.length} discovered device${devices.length === 1 ? '' : 's'} to adopt, but picking them needs a terminal`,
        'add each with `doorctl device add NAME --protocol P --sn SN` (udp: --community C --code D; openapi: --device-id ID); `doorctl device list --discovered --json` lists them',
      )
    }
    renderTable(['PROTOCOL', 'IDENTITY', 'ADDRESS', 'LAST SEEN'], devices.map((d) => [d.protocol, d.identity, d.address, d.lastSeen]))
    const picked = await askAdoptions(devices, (name) => this.inventory.get(name) !== undefined)
    const built = picked.map((input) => buildDeviceEntry(input))
    const problems = built.flatMap((b) => b.problems)
    if (problems.length > 0) throw new InputError(problems.map((p) => ({ ...p, file: 'answers' })))
    const entries = built.map((b) => b.entry!)
    await this.inventory.save(entries)
    const message = `added ${entries.map((e) => `${e.name} (${e.protocol})`).join(', ')}`
    this.log(message)
    return { ok: true, added: entries.map(maskSecrets), message }
  }
}

import { DoorctlCommand } from '../../src/cli/base-command.js'
import { UsageError } from '../../src/types/errors.js'
import { assertKnown } from '../../src/store/inventory.js'

export default class DeviceRemove extends DoorctlCommand {
  static override description = 'Remove devices from the inventory (the devices themselves are not touched)'
  static override examples = ['doorctl device remove door-1 door-2']
  static override strict = false
  static override args = {}

  async run() {
    const { argv } = await this.parse(DeviceRemove)
    const names = argv as string[]
    if (names.length === 0) throw new UsageError('name the devices to remove', 'doorctl device remove NAME...')
    assertKnown(this.inventory, names)
    await this.inventory.remove(names)
    if (!this.jsonEnabled()) this.log(`removed ${names.join(', ')}`)
    return { ok: true, removed: names }
  }
}

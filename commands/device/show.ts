import { Args } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { renderTable } from '../../src/cli/render.js'
import { assertKnown, maskSecrets } from '../../src/store/inventory.js'

export default class DeviceShow extends DoorctlCommand {
  static override description = 'Show one device as stored (passwords and keys masked)'
  static override examples = ['doorctl device show door-1']
  static override args = { name: Args.string({ required: true }) }

  async run() {
    const { args } = await this.parse(DeviceShow)
    const [device] = assertKnown(this.inventory, [args.name])
    const shown = maskSecrets(device)
    if (!this.jsonEnabled()) renderTable(['FIELD', 'VALUE'], Object.entries(shown).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : String(v)]))
    return { ok: true, device: shown }
  }
}

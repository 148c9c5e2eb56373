import { DoorctlCommand } from '../../src/cli/base-command.js'
import { targetFlags } from '../../src/cli/flags.js'

export default class DeviceReboot extends DoorctlCommand {
  static override description = 'Reboot devices'
  static override examples = ['doorctl device reboot door-1', 'doorctl device reboot --all --json']
  static override strict = false
  static override flags = { ...targetFlags }

  async run() {
    const { argv, flags } = await this.parse(DeviceReboot)
    return this.operate(argv as string[], flags, 'rebooting', async (d, ctx) => {
      const r = await d.reboot(ctx)
      return { status: r.queued ? 'queued' : undefined, message: r.message ?? 'rebooting', fields: r.data }
    })
  }
}

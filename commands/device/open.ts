import { Flags } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { targetFlags } from '../../src/cli/flags.js'
import { OPEN_MODES } from '../../src/types/driver.js'

export default class DeviceOpen extends DoorctlCommand {
  static override description = 'Open doors remotely'
  static override examples = ['doorctl device open door-1', 'doorctl device open --tag lobby --mode keep-open --json']
  static override strict = false
  static override flags = {
    ...targetFlags,
    mode: Flags.string({ description: 'pulse opens once; keep-open, close, lock and unlock where the protocol has them', options: [...OPEN_MODES], default: 'pulse' }),
  }

  async run() {
    const { argv, flags } = await this.parse(DeviceOpen)
    const mode = flags.mode as (typeof OPEN_MODES)[number]
    return this.operate(argv as string[], flags, 'opening', async (d, ctx) => {
      const r = await d.open(mode, ctx)
      return { status: r.queued ? 'queued' : undefined, message: r.message ?? (mode === 'pulse' ? 'opened' : `door set to ${mode}`), fields: { mode, ...r.data } }
    })
  }
}

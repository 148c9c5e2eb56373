import { Flags } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { targetFlags } from '../../src/cli/flags.js'
import { isoWithOffset, parseTime } from '../../src/util/time.js'

export default class DeviceSyncTime extends DoorctlCommand {
  static override description = "Set devices' clocks to this machine's time (or --time)"
  static override examples = ['doorctl device sync-time --all', 'doorctl device sync-time door-1 --time 2026-11-24T08:00:00+08:00']
  static override strict = false
  static override flags = {
    ...targetFlags,
    time: Flags.string({ description: 'the time to set, ISO 8601 (default: now)' }),
  }

  async run() {
    const { argv, flags } = await this.parse(DeviceSyncTime)
    const fixed = flags.time ? parseTime(flags.time, '--time') : undefined
    return this.operate(argv as string[], flags, 'setting the time', async (d, ctx) => {
      const time = fixed ?? new Date()
      const r = await d.syncTime(time, ctx)
      return { status: r.queued ? 'queued' : undefined, message: r.message ?? `clock set to ${isoWithOffset(time)}`, fields: { time: isoWithOffset(time), ...r.data } }
    })
  }
}

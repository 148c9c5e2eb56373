import { Flags } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { targetFlags } from '../../src/cli/flags.js'
import { deviceOffsetAt, isoWithOffset, machineZone, parseTimeInZone } from '../../src/util/time.js'

export default class DeviceSyncTime extends DoorctlCommand {
  static override description = "Set devices' clocks to this machine's time (or --time), each shown in the device's own zone (--tz of device add)"
  static override examples = [
    'doorctl device sync-time --all',
    'doorctl device sync-time door-1 --time 2026-11-24T08:00:00+08:00',
    'doorctl device sync-time --tag tokyo --time 2026-11-24T08:00:00   # 08:00 on each door\'s own clock',
  ]
  static override strict = false
  static override flags = {
    ...targetFlags,
    time: Flags.string({ description: "the time to set, ISO 8601 (default: now); with an offset it is sent with that offset, without one it is a wall time in each device's zone" }),
  }

  async run() {
    const { argv, flags } = await this.parse(DeviceSyncTime)
    // a bad --time is a usage error before anything is sent, whatever the devices' zones
    if (flags.time) parseTimeInZone(flags.time, '--time', machineZone())
    return this.operate(argv as string[], flags, 'setting the time', async (d, ctx, device) => {
      const zone = device.tz ?? machineZone()
      const { date: time, offsetMinutes } = flags.time ? parseTimeInZone(flags.time, '--time', zone) : { date: new Date(), offsetMinutes: undefined }
      const offset = offsetMinutes ?? deviceOffsetAt({ zone }, time.getTime())
      const r = await d.syncTime(time, ctx, offset)
      const shown = isoWithOffset(time, offset)
      return { status: r.queued ? 'queued' : undefined, message: r.message ?? `clock set to ${shown}`, fields: { ...r.data, time: shown } }
    })
  }
}

import { Flags } from '@oclif/core'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { targetFlags } from '../../src/cli/flags.js'
import { writeFileAtomic } from '../../src/util/atomic-file.js'
import { isoWithOffsetMs } from '../../src/util/time.js'
import { prepareOutputDir, prepareOutputFile } from '../../src/util/user-paths.js'

export default class DeviceSnapshot extends DoorctlCommand {
  static override description = "Save a picture from devices' cameras"
  static override examples = ['doorctl device snapshot lobby --output lobby.jpg', 'doorctl device snapshot --tag hq --output ./snapshots/']
  static override strict = false
  static override flags = {
    ...targetFlags,
    output: Flags.string({ char: 'o', description: 'a .jpg file (one device) or a folder (DEVICE-TIME.jpg each)', default: '.' }),
  }

  async run() {
    const { argv, flags } = await this.parse(DeviceSnapshot)
    const devices = this.targets(argv as string[], flags)
    const toDir = devices.length > 1 || !/\.jpe?g$/i.test(flags.output) || isDir(flags.output)
    if (toDir) prepareOutputDir(flags.output, '--output')
    else prepareOutputFile(flags.output, '--output')
    return this.operate(devices, flags, 'taking snapshots', async (d, ctx, device) => {
      const r = await d.snapshot(ctx)
      if (r.queued || !r.photo) return { status: r.queued ? 'queued' : undefined, message: r.message ?? 'no picture came back', fields: r.data }
      const file = toDir ? join(flags.output, `${device.name}-${isoWithOffsetMs(new Date()).replace(/[:.]/g, '-')}.jpg`) : flags.output
      await writeFileAtomic(file, r.photo, 0o644)
      return { message: `saved ${file} (${Math.round(r.photo.length / 1024)} KB)`, fields: { file, bytes: r.photo.length } }
    })
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory()
  } catch {
    return false
  }
}

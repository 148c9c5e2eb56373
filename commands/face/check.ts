import { Flags } from '@oclif/core'
import { resolve } from 'node:path'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { targetFlags } from '../../src/cli/flags.js'
import { InputError } from '../../src/types/errors.js'
import { checkJpeg } from '../../src/util/user-paths.js'

export default class FaceCheck extends DoorctlCommand {
  static override description = 'Ask devices whether the face in a photo is enrolled (wsjson compareUser)'
  static override examples = ['doorctl face check lobby --photo visitor.jpg', 'doorctl face check --tag wsjson --photo visitor.jpg --json']
  static override strict = false
  static override flags = {
    ...targetFlags,
    photo: Flags.string({ description: 'JPEG photo of the face', required: true }),
  }

  async run() {
    const { argv, flags } = await this.parse(FaceCheck)
    const devices = this.targets(argv as string[], flags)
    const photo = resolve(flags.photo)
    const problem = checkJpeg(photo, 400 * 1024)
    if (problem) throw new InputError([{ file: flags.photo, flag: '--photo', message: problem }])
    return this.operate(devices, flags, 'checking the face', async (d, ctx) => {
      const r = await d.checkFace(photo, ctx)
      if (r.queued) return { status: 'queued', message: r.message, fields: r.data }
      return { message: r.exists ? 'enrolled on the device' : 'not enrolled on the device', fields: { exists: r.exists === true } }
    }, ['exists'])
  }
}

import { Flags } from '@oclif/core'
import { basename, extname, join, resolve } from 'node:path'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { targetFlags } from '../../src/cli/flags.js'
import { InputError, UsageError, type InputProblem } from '../../src/types/errors.js'
import { checkJpeg, readInputDir } from '../../src/util/user-paths.js'
import { PeopleReport, syncPeople } from '../../src/ops/people-sync.js'
import { loadDriver } from '../../src/drivers/registry.js'
import type { FaceSource, PersonOutcome } from '../../src/types/driver.js'

export default class FaceEnroll extends DoorctlCommand {
  static override description = "Enroll faces for people already on the devices"
  static override usage = 'face enroll [DEVICES...] [--all] [--tag T] (--id ID (--photo FILE | --capture) | --dir DIR)'
  static override examples = [
    'doorctl face enroll door-1 --id 1001 --photo 1001.jpg',
    'doorctl face enroll --tag hq --dir ./faces   # every ID.jpg in ./faces',
    'doorctl face enroll lobby --id 1001 --capture',
  ]
  static override strict = false
  static override flags = {
    ...targetFlags,
    id: Flags.string({ description: 'the person id' }),
    photo: Flags.string({ description: 'JPEG photo of the face', exclusive: ['capture', 'dir'] }),
    capture: Flags.boolean({ description: 'let the device capture the face itself, where the protocol can', exclusive: ['photo', 'dir'] }),
    dir: Flags.string({ description: 'a folder of ID.jpg files: enroll each', exclusive: ['id', 'photo', 'capture'] }),
    report: Flags.string({ description: 'write one row per person per device: device,id,name,status,message' }),
  }

  async run() {
    const { argv, flags } = await this.parse(FaceEnroll)
    const devices = this.targets(argv as string[], flags)
    const maxBytes = Math.min(...(await Promise.all([...new Set(devices.map((d) => d.protocol))].map(async (p) => (await loadDriver(p)).personRules.maxPhotoBytes))))
    const faces = this.faces(flags, maxBytes)
    const report = flags.report ? new PeopleReport(flags.report) : undefined
    try {
      const results = await this.withProgress({ label: 'enrolling', unit: 'faces', devices: devices.length }, (progress) =>
        syncPeople(devices, faces, { ...this.runOptions(flags), progress }, report, (d, ctx) => enrollEach(faces, (f) => d.enrollFace(f.id, f.source, ctx)), 'enrolled'),
      )
      return this.finish(results, { faces: faces.length })
    } finally {
      await report?.close()
    }
  }

  private faces(flags: { id?: string; photo?: string; capture?: boolean; dir?: string }, maxBytes: number): { id: string; source: FaceSource }[] {
    if (flags.dir) {
      const dir = resolve(flags.dir)
      const names = readInputDir(flags.dir, '--dir').filter((n) => /\.jpe?g$/i.test(n))
      if (names.length === 0) throw new InputError([{ file: flags.dir, flag: '--dir', message: 'no .jpg files in the folder (name each photo after the person id, e.g. 1001.jpg)' }])
      const problems: InputProblem[] = []
      const faces = names.sort().map((n) => {
        const path = join(dir, n)
        const problem = checkJpeg(path, maxBytes)
        if (problem) problems.push({ file: path, message: problem })
        return { id: basename(n, extname(n)), source: { photoPath: path } }
      })
      if (problems.length > 0) throw new InputError(problems, 'fix or remove these photos; nothing was sent')
      return faces
    }
    if (!flags.id) throw new UsageError('say whose face to enroll', 'pass --id ID with --photo FILE or --capture, or --dir DIR')
    if (flags.capture) return [{ id: flags.id, source: { capture: true } }]
    if (!flags.photo) throw new UsageError('--id needs --photo FILE or --capture', 'doorctl face enroll DEVICE --id ID --photo FILE')
    const path = resolve(flags.photo)
    const problem = checkJpeg(path, maxBytes)
    if (problem) throw new InputError([{ file: flags.photo, flag: '--photo', message: problem }])
    return [{ id: flags.id, source: { photoPath: path } }]
  }
}

async function* enrollEach<T extends { id: string }>(faces: T[], enroll: (f: T) => Promise<PersonOutcome>): AsyncIterable<PersonOutcome> {
  for (const f of faces) yield await enroll(f)
}

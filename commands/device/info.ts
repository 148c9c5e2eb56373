import { DoorctlCommand } from '../../src/cli/base-command.js'
import { targetFlags } from '../../src/cli/flags.js'

export default class DeviceInfo extends DoorctlCommand {
  static override description = 'Show what devices report about themselves (model, versions, network, settings)'
  static override examples = ['doorctl device info door-1', 'doorctl device info --all --json']
  static override strict = false
  static override flags = { ...targetFlags }

  async run() {
    const { argv, flags } = await this.parse(DeviceInfo)
    const doc = await this.operate(argv as string[], flags, 'reading device info', async (d, ctx) => {
      const info = await d.info(ctx)
      return { message: summarize(info), fields: { info } }
    })
    if (!this.jsonEnabled()) {
      for (const r of doc.results) if (r.info) this.log(`\n${r.device}:\n${JSON.stringify(r.info, null, 2)}`)
    }
    return doc
  }
}

function summarize(info: Record<string, unknown>): string {
  const dev = (info.device ?? info) as Record<string, unknown>
  const parts = ['deviceModel', 'model', 'deviceName', 'appVer', 'softVer', 'firmware'].map((k) => dev[k]).filter((v) => typeof v === 'string' && v !== '')
  return parts.length > 0 ? parts.join(' ') : 'ok'
}

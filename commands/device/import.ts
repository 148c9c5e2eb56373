import { Args } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { readDevicesCsv } from '../../src/ops/devices-csv.js'

export default class DeviceImport extends DoorctlCommand {
  static override description = 'Add or update many devices from a CSV file (every row is checked before any is saved)'
  static override examples = ['doorctl device import devices.csv', 'doorctl device import devices.csv --json']
  static override args = { file: Args.string({ description: 'CSV with columns name,protocol,host,port,password,sn,community,code,transport,tags (and ws_port, device_id, mode, product_id, device_secret, broker_key, tz: the IANA time zone)', required: true }) }

  async run() {
    const { args } = await this.parse(DeviceImport)
    const entries = readDevicesCsv(args.file)
    const existing = new Set(this.inventory.all().map((d) => d.name))
    await this.inventory.save(entries)
    const added = entries.filter((e) => !existing.has(e.name)).map((e) => e.name)
    const updated = entries.filter((e) => existing.has(e.name)).map((e) => e.name)
    const message = `${added.length} added, ${updated.length} updated`
    if (!this.jsonEnabled()) this.log(message)
    return { ok: true, added, updated, message }
  }
}

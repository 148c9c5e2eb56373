import { Flags } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { renderTable } from '../../src/cli/render.js'
import { identityOf } from '../../src/core/inventory.js'

export default class DeviceList extends DoorctlCommand {
  static override description = 'List the devices in the inventory'
  static override examples = ['doorctl device list', 'doorctl device list --tag hq --json']
  static override flags = {
    tag: Flags.string({ description: 'only devices with this tag (repeatable)', multiple: true }),
    discovered: Flags.boolean({ description: 'devices that called the gateway but are not in the inventory' }),
  }

  async run() {
    const { flags } = await this.parse(DeviceList)
    if (flags.discovered) {
      // presence and discovery are the gateway's (push-style devices); none has called yet
      const discovered: unknown[] = []
      if (!this.jsonEnabled()) this.log('no discovered devices')
      return { ok: true, discovered }
    }
    const tags = flags.tag ?? []
    const devices = this.inventory.all().filter((d) => tags.every((t) => d.tags.includes(t)))
    const rows = devices.map((d) => ({
      name: d.name,
      protocol: d.protocol,
      address: identityOf(d),
      tags: d.tags,
      // direct (openapi) devices are not watched: online is only known for push-style devices via the gateway
      online: null as boolean | null,
      last_seen: null as string | null,
    }))
    if (!this.jsonEnabled()) {
      if (rows.length === 0) this.log('no devices; add one with `doorctl device add`')
      else renderTable(['NAME', 'PROTOCOL', 'ADDRESS', 'TAGS', 'ONLINE', 'LAST SEEN'], rows.map((r) => [r.name, r.protocol, r.address, r.tags.join(','), r.online === null ? '-' : r.online ? 'yes' : 'no', r.last_seen ?? '-']))
    }
    return { ok: true, devices: rows }
  }
}

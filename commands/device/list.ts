import { Flags } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { renderTable } from '../../src/cli/render.js'
import { identityOf } from '../../src/store/inventory.js'
import { isoWithOffset } from '../../src/util/time.js'

export default class DeviceList extends DoorctlCommand {
  static override description = 'List the devices in the inventory, with presence for push-style devices'
  static override examples = ['doorctl device list', 'doorctl device list --tag hq --json', 'doorctl device list --discovered']
  static override flags = {
    tag: Flags.string({ description: 'only devices with this tag (repeatable)', multiple: true }),
    discovered: Flags.boolean({ description: 'devices that called the gateway but are not in the inventory' }),
  }

  async run() {
    const { flags } = await this.parse(DeviceList)
    const tags = flags.tag ?? []
    const devices = this.inventory.all().filter((d) => tags.every((t) => d.tags.includes(t)))
    const pushStyle = devices.some((d) => d.protocol !== 'openapi' || d.deviceId)
    // direct openapi devices are not watched: their presence is unknown (null) until asked
    const store = await this.sharedStore()
    const read = store ? async () => (await import('../../src/ops/store-handle.js')).readStorePresence(store) : async () => (await import('../../src/gateway/presence.js')).readPresence(this.home)
    const known = pushStyle || flags.discovered ? await read() : { running: false, presence: [], discovered: [] }
    if (flags.discovered) {
      const discovered = known.discovered.map((d) => ({ protocol: d.protocol, identity: d.identity, address: d.address, last_seen: isoWithOffset(new Date(d.lastSeen)), info: d.info }))
      if (!this.jsonEnabled()) {
        if (discovered.length === 0) this.log('no discovered devices')
        else renderTable(['PROTOCOL', 'IDENTITY', 'ADDRESS', 'LAST SEEN'], discovered.map((d) => [d.protocol, d.identity, d.address, d.last_seen]))
      }
      return { ok: true, gateway_running: known.running, discovered }
    }
    const presence = new Map(known.presence.map((p) => [p.device, p]))
    const rows = devices.map((d) => {
      const p = presence.get(d.name)
      return { name: d.name, protocol: d.protocol, address: identityOf(d), tags: d.tags, tz: d.tz ?? null, online: p ? p.online : null, last_seen: p?.lastSeen ?? null, peer: p?.address ?? null }
    })
    if (!this.jsonEnabled()) {
      if (rows.length === 0) this.log('no devices; add one with `doorctl device add`')
      else renderTable(['NAME', 'PROTOCOL', 'ADDRESS', 'TAGS', 'TZ', 'ONLINE', 'LAST SEEN'], rows.map((r) => [r.name, r.protocol, r.address, r.tags.join(','), r.tz ?? 'local', r.online === null ? '-' : r.online ? 'yes' : 'no', r.last_seen ?? '-']))
    }
    return { ok: true, gateway_running: known.running, devices: rows }
  }
}

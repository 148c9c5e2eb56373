import { UsageError } from '../types/errors.js'
import { assertKnown, type DeviceBook } from '../store/inventory.js'
import type { DeviceEntry } from '../types/driver.js'

export interface TargetSelection {
  names: string[]
  all?: boolean
  tags?: string[]
}

/** Resolves NAMES…, --all and --tag to inventory entries; anything unknown is a usage error (exit 2, nothing sent). */
export function resolveTargets(inv: Pick<DeviceBook, 'all' | 'get'>, sel: TargetSelection): DeviceEntry[] {
  const tags = sel.tags ?? []
  if (sel.names.length === 0 && !sel.all && tags.length === 0) {
    throw new UsageError('no target devices given', 'name one or more devices, or pass --all or --tag TAG')
  }
  if (sel.all && (sel.names.length > 0 || tags.length > 0)) {
    throw new UsageError('--all cannot be combined with device names or --tag', 'pass either --all, or names and/or --tag')
  }
  const picked = new Map<string, DeviceEntry>()
  for (const d of assertKnown(inv, [...new Set(sel.names)])) picked.set(d.name, d)
  const all = inv.all()
  if (sel.all) for (const d of all) picked.set(d.name, d)
  for (const tag of tags) {
    const tagged = all.filter((d) => d.tags.includes(tag))
    if (tagged.length === 0) throw new UsageError(`no device has the tag "${tag}"`, 'see the TAGS column of `doorctl device list`')
    for (const d of tagged) picked.set(d.name, d)
  }
  if (picked.size === 0) throw new UsageError('the inventory is empty', 'add devices with `doorctl device add` or `doorctl device import`')
  return [...picked.values()]
}

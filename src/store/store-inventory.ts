import type { DeviceEntry } from '../types/driver.js'
import type { DeviceBook } from './inventory.js'
import type { Store } from './interface.js'

/**
 * The inventory of a shared store as one command sees it: read once when the command starts
 * (targets resolve synchronously, as with the file), written through the store, in one
 * transaction each, before the command reports anything.
 */
export class StoreInventory implements DeviceBook {
  private constructor(private readonly store: Store, private readonly devices: Map<string, DeviceEntry>) {}

  static async load(store: Store): Promise<StoreInventory> {
    const all = await store.devices.all()
    return new StoreInventory(store, new Map(all.map((d) => [d.name, d])))
  }

  all(): DeviceEntry[] {
    return [...this.devices.values()].sort((a, b) => a.name.localeCompare(b.name))
  }

  get(name: string): DeviceEntry | undefined {
    return this.devices.get(name)
  }

  async save(entries: DeviceEntry[]): Promise<void> {
    await this.store.devices.save(entries)
    for (const e of entries) this.devices.set(e.name, e)
  }

  async remove(names: string[]): Promise<void> {
    await this.store.devices.remove(names)
    for (const n of names) this.devices.delete(n)
  }
}

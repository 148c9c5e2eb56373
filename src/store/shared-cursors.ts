import { existsSync, statSync, unlinkSync } from 'node:fs'
import { hostname } from 'node:os'
import { DoorctlError } from '../types/errors.js'
import type { CursorEntry, Store } from './interface.js'

type Cursors = Record<string, CursorEntry>

/**
 * `records pull --since last` cursors kept in a shared store, with the same three durable steps
 * as the file CursorStore (intent, rename, commit: interface.ts "--since last"), so any machine
 * with the store's URL continues the same cursors. The pulled devices are leased to this pull
 * while it runs: two pulls of one device (on two machines) never overlap.
 */
export class SharedCursors {
  private readonly owner = `${hostname()}:${process.pid}`
  private readonly host = hostname()
  private pendingId?: string
  private timer?: NodeJS.Timeout

  constructor(private readonly store: Store, private readonly devices: readonly string[], private readonly ttlMs = 60_000) {}

  /** Takes the devices for this pull, and settles what an interrupted pull on this machine left. */
  async recover(): Promise<'none' | 'committed' | 'dropped'> {
    const held = await this.store.cursors.hold(this.devices, this.owner, this.ttlMs)
    if (!held.ok) {
      throw new DoorctlError(`another records pull (${held.heldBy}) is exporting ${held.device}`, { code: 'busy', exitCode: 1, suggestion: 'wait for it to finish, then run this again' })
    }
    this.timer = setInterval(() => void this.store.cursors.hold(this.devices, this.owner, this.ttlMs).catch(() => {}), this.ttlMs / 3)
    this.timer.unref()
    let outcome: 'none' | 'committed' | 'dropped' = 'none'
    for (const p of await this.store.cursors.pendingOn(this.host)) {
      const renamed = !existsSync(p.temp) && existsSync(p.output) && statSync(p.output).size === p.size
      if (renamed) await this.store.cursors.commit(p.cursors, p.id)
      else {
        if (existsSync(p.temp)) unlinkSync(p.temp)
        await this.store.cursors.drop(p.id)
      }
      outcome = renamed ? 'committed' : 'dropped'
    }
    return outcome
  }

  read(): Promise<Cursors> {
    return this.store.cursors.read()
  }

  /** Step 1: the intent, refused when this pull lost its lease on the devices (before anything is renamed). */
  async prepare(temp: string, output: string, size: number, cursors: Cursors): Promise<void> {
    const r = await this.store.cursors.prepare({ host: this.host, temp, output, size, cursors }, this.owner)
    if (!r.ok) throw new DoorctlError(`this pull lost its hold on ${r.device} to ${r.heldBy}; its output was not written`, { code: 'busy', exitCode: 1 })
    this.pendingId = r.id
  }

  /** Step 3: the cursors merged and the intent dropped, in one transaction; the devices released. */
  async commit(cursors: Cursors): Promise<void> {
    await this.store.cursors.commit(cursors, this.pendingId)
    await this.release()
  }

  async release(): Promise<void> {
    clearInterval(this.timer)
    await this.store.cursors.release(this.devices, this.owner).catch(() => {})
  }
}

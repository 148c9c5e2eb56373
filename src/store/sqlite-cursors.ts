import { randomUUID } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { CursorStore as CursorFiles } from './cursors.js'
import { UsageError } from '../types/errors.js'
import type { GatewayStore } from './gateway-store.js'
import type { CursorEntry, PendingPull, PullHeld } from './interface.js'

type Row = Record<string, unknown>

/** `--since last` cursors, pending pulls and pull leases in gateway.db (see CursorStore in interface.ts). */
export class SqliteCursors {
  constructor(private readonly core: GatewayStore) {}

  /**
   * record-cursors.json (doorctl before the store) is imported once, so `--since last` continues
   * where it was. A pull that a kill interrupted there becomes a pending pull of this host, settled
   * by the same recovery as any other (nothing on disk is touched here).
   */
  importFiles(home: string): void {
    if (this.core.prepared("SELECT 1 FROM meta WHERE key = 'cursors_imported'").get()) return
    const files = new CursorFiles(home)
    let cursors: Record<string, CursorEntry> = {}
    try {
      if (existsSync(files.path)) cursors = files.read()
    } catch (err) {
      throw new UsageError(`cannot read ${files.path}: ${(err as Error).message}`, 'repair or remove it (records pull --since last then starts over for its devices)')
    }
    let pending: { temp: string; output: string; size: number; cursors: Record<string, CursorEntry> } | undefined
    try {
      pending = existsSync(files.pendingPath) ? JSON.parse(readFileSync(files.pendingPath, 'utf8')) : undefined
    } catch {
      pending = undefined // torn: the file protocol drops it too
    }
    this.core.db.transaction(() => {
      this.merge(cursors, 'ignore')
      if (pending) this.prepare({ host: hostname(), temp: pending.temp, output: pending.output, size: pending.size, cursors: pending.cursors })
      this.core.prepared("INSERT INTO meta (key, value) VALUES ('cursors_imported', ?)").run(new Date().toISOString())
    }).immediate()
  }

  read(): Record<string, CursorEntry> {
    const rows = this.core.prepared('SELECT device, entry FROM cursors').all() as Row[]
    return Object.fromEntries(rows.map((r) => [String(r.device), JSON.parse(String(r.entry)) as CursorEntry]))
  }

  /** Without `owner` (files of doorctl before the store) nothing is checked. */
  prepare(p: Omit<PendingPull, 'id' | 'createdAt'>, owner?: string): { ok: true; id: string } | PullHeld {
    const id = randomUUID()
    const holder = this.core.prepared('SELECT owner, until FROM pull_holds WHERE device = ?')
    const insert = this.core.prepared('INSERT INTO pending_pulls (id, host, temp, output, size, cursors, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
    return this.core.db.transaction(() => {
      const now = Date.now()
      for (const device of owner === undefined ? [] : Object.keys(p.cursors)) {
        const h = holder.get(device) as { owner: string; until: number } | undefined
        if (!h || h.owner !== owner || h.until <= now) return { ok: false as const, device, heldBy: h && h.until > now ? h.owner : 'nobody (the lease ran out)' }
      }
      insert.run(id, p.host, p.temp, p.output, p.size, JSON.stringify(p.cursors), now)
      return { ok: true as const, id }
    }).immediate()
  }

  commit(cursors: Record<string, CursorEntry>, pendingId?: string): void {
    this.core.db.transaction(() => {
      this.merge(cursors, 'replace')
      if (pendingId) this.drop(pendingId)
    })()
  }

  private merge(cursors: Record<string, CursorEntry>, onConflict: 'replace' | 'ignore'): void {
    const stmt = this.core.prepared(onConflict === 'replace'
      ? 'INSERT INTO cursors (device, entry) VALUES (?, ?) ON CONFLICT(device) DO UPDATE SET entry = excluded.entry'
      : 'INSERT INTO cursors (device, entry) VALUES (?, ?) ON CONFLICT(device) DO NOTHING')
    for (const [device, entry] of Object.entries(cursors)) stmt.run(device, JSON.stringify(entry))
  }

  pendingOn(host: string): PendingPull[] {
    return (this.core.prepared('SELECT * FROM pending_pulls WHERE host = ? ORDER BY created_at').all(host) as Row[]).map((r) => ({
      id: String(r.id), host: String(r.host), temp: String(r.temp), output: String(r.output), size: Number(r.size),
      cursors: JSON.parse(String(r.cursors)), createdAt: Number(r.created_at),
    }))
  }

  drop(pendingId: string): void {
    this.core.prepared('DELETE FROM pending_pulls WHERE id = ?').run(pendingId)
  }

  hold(devices: readonly string[], owner: string, ttlMs: number): { ok: true } | PullHeld {
    const now = Date.now()
    const held = this.core.prepared('SELECT owner FROM pull_holds WHERE device = ? AND owner <> ? AND until > ?')
    const take = this.core.prepared('INSERT INTO pull_holds (device, owner, until) VALUES (?, ?, ?) ON CONFLICT(device) DO UPDATE SET owner = excluded.owner, until = excluded.until')
    return this.core.db.transaction(() => {
      for (const d of devices) {
        const row = held.get(d, owner, now) as { owner: string } | undefined
        if (row) return { ok: false as const, heldBy: row.owner, device: d }
      }
      for (const d of devices) take.run(d, owner, now + ttlMs)
      return { ok: true as const }
    }).immediate()
  }

  release(devices: readonly string[], owner: string): void {
    const stmt = this.core.prepared('DELETE FROM pull_holds WHERE device = ? AND owner = ?')
    this.core.db.transaction(() => { for (const d of devices) stmt.run(d, owner) })()
  }
}

import { randomUUID } from 'node:crypto'
import type { GatewayStore } from './gateway-store.js'
import type { CommandKind } from '../types/gateway.js'
import { unknownAfterDeathMessage, type GatewayInfo, type ReapResult } from './interface.js'

type Row = Record<string, unknown>

/** Gateways, their leases and the devices they hold, in gateway.db (see GatewayRegistry). */
export class SqliteGateways {
  constructor(private readonly core: GatewayStore) {}

  register(g: { host: string; pid: number; ports: Record<string, number | string>; leaseMs: number }): GatewayInfo {
    const now = Date.now()
    const info: GatewayInfo = { id: randomUUID(), host: g.host, pid: g.pid, ports: g.ports, startedAt: now, leaseUntil: now + g.leaseMs }
    this.core.prepared('INSERT INTO gateways (id, host, pid, ports, started_at, lease_until) VALUES (?, ?, ?, ?, ?, ?)')
      .run(info.id, info.host, info.pid, JSON.stringify(info.ports), info.startedAt, info.leaseUntil)
    return info
  }

  renew(id: string, leaseMs: number): boolean {
    return this.core.prepared('UPDATE gateways SET lease_until = ? WHERE id = ?').run(Date.now() + leaseMs, id).changes > 0
  }

  live(): GatewayInfo[] {
    return (this.core.prepared('SELECT * FROM gateways WHERE lease_until > ? ORDER BY started_at').all(Date.now()) as Row[]).map((r) => ({
      id: String(r.id), host: String(r.host), pid: Number(r.pid), ports: JSON.parse(String(r.ports)),
      startedAt: Number(r.started_at), leaseUntil: Number(r.lease_until), ...(r.status ? { status: JSON.parse(String(r.status)) } : {}),
    }))
  }

  report(id: string, status: unknown): void {
    this.core.prepared('UPDATE gateways SET status = ? WHERE id = ?').run(JSON.stringify(status), id)
  }

  reap(): ReapResult {
    return this.core.db.transaction(() => {
      const dead = (this.core.prepared('SELECT id FROM gateways WHERE lease_until <= ?').all(Date.now()) as Row[]).map((r) => String(r.id))
      return this.leave(dead)
    }).immediate()
  }

  unregister(id: string): ReapResult {
    return this.core.db.transaction(() => this.leave([id])).immediate()
  }

  /**
   * Removes `gateways` (their lease and holds), then settles every delivered command whose gateway
   * is gone: idempotent ones queued again, the others unknown.
   */
  private leave(gateways: string[]): ReapResult {
    const result: ReapResult = { gateways: [], requeued: [], unknown: [] }
    for (const g of gateways) {
      this.core.prepared('DELETE FROM holders WHERE gateway = ?').run(g)
      if (this.core.prepared('DELETE FROM gateways WHERE id = ?').run(g).changes > 0) result.gateways.push(g)
    }
    const now = Date.now()
    const left = this.core.prepared(`
      SELECT id, kind, gateway, idempotent FROM commands c
      WHERE state = 'delivered' AND gateway IS NOT NULL AND NOT EXISTS (SELECT 1 FROM gateways g WHERE g.id = c.gateway)`)
    const requeue = this.core.prepared("UPDATE commands SET state = 'queued', gateway = NULL, delivered_at = NULL WHERE id = ?")
    const unknown = this.core.prepared("UPDATE commands SET state = 'unknown', finished_at = ?, result = json_set(COALESCE(result, '{}'), '$.message', ?) WHERE id = ?")
    for (const c of left.all() as Row[]) {
      if (Number(c.idempotent) === 1) {
        requeue.run(c.id)
        result.requeued.push(Number(c.id))
      } else {
        unknown.run(now, unknownAfterDeathMessage(String(c.kind) as CommandKind, String(c.gateway)), c.id)
        result.unknown.push(Number(c.id))
      }
    }
    return result
  }

  hold(gateway: string, devices: readonly string[]): void {
    const now = Date.now()
    const stmt = this.core.prepared('INSERT INTO holders (device, gateway, since) VALUES (?, ?, ?) ON CONFLICT(device) DO UPDATE SET gateway = excluded.gateway, since = excluded.since WHERE holders.gateway <> excluded.gateway')
    this.core.db.transaction(() => { for (const d of devices) stmt.run(d, gateway, now) })()
  }

  release(gateway: string, devices: readonly string[]): void {
    const stmt = this.core.prepared('DELETE FROM holders WHERE device = ? AND gateway = ?')
    this.core.db.transaction(() => { for (const d of devices) stmt.run(d, gateway) })()
  }

  holders(devices: readonly string[]): Record<string, string> {
    const rows = this.core.prepared(`
      SELECT h.device, h.gateway FROM holders h JOIN gateways g ON g.id = h.gateway AND g.lease_until > ?
      WHERE h.device IN (SELECT value FROM json_each(?))`).all(Date.now(), JSON.stringify(devices)) as Row[]
    return Object.fromEntries(rows.map((r) => [String(r.device), String(r.gateway)]))
  }
}

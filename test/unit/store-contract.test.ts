/**
 * The store contract: every method of the Store interface, run against both implementations —
 * embedded SQLite in a temp DOORCTL_HOME, and PostgreSQL in a throw-away cluster (test/pg.ts), a
 * schema of its own per test. "Two gateways" are two store instances on one location.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { FIXTURES, ROOT, tempDir, until } from '../helpers.js'
import { pgMissing, startPostgres, type TestPostgres } from '../pg.js'
import { SqliteStore } from '../../src/store/sqlite-store.js'
import { PostgresStore } from '../../src/store/postgres-store.js'
import type { NewCommand, Store } from '../../src/store/interface.js'
import type { SpoolRecord } from '../../src/types/gateway.js'
import type { DeviceEntry } from '../../src/types/driver.js'

const PHOTO = readFileSync(join(FIXTURES, 'face.jpg'))
const missing = pgMissing()
if (missing) console.warn(`store contract: ${missing}, so the PostgreSQL half of these tests is skipped`)

interface Location {
  /** Another store instance on the same data (another gateway, another command line). */
  open(): Promise<Store>
  cleanup(): Promise<void>
}

let server: TestPostgres | undefined

const backends: { name: string; skip: boolean; location(): Promise<Location> }[] = [
  {
    name: 'sqlite',
    skip: false,
    async location() {
      const home = tempDir()
      return { open: async () => new SqliteStore(home.path, { pollMs: 20 }), cleanup: async () => home.cleanup() }
    },
  },
  {
    name: 'postgres',
    skip: missing !== undefined,
    async location() {
      const schema = `t_${randomBytes(6).toString('hex')}`
      return { open: () => PostgresStore.open({ url: server!.url(schema), pollMs: 50 }), cleanup: async () => {} }
    },
  },
]

const cmd = (device: string, kind: NewCommand['kind'] = 'syncTime', expiresIn = 60_000): NewCommand =>
  ({ device, protocol: 'httpv2', kind, payload: { n: 1 }, expiresAt: Date.now() + expiresIn })
const rec = (device: string, id: string, time: number, photo?: Buffer): SpoolRecord => ({
  device, recordId: id, time, userId: 'u1', name: 'Ann', type: 'employee', result: 'granted', direction: 'in', method: 'face', extras: { temp: 36.5 }, photo,
})
const ports = { http: 8090 }

for (const backend of backends) {
  describe.skipIf(backend.skip)(`store contract: ${backend.name}`, () => {
    let loc: Location
    const opened: Store[] = []
    const open = async () => {
      const s = await loc.open()
      opened.push(s)
      return s
    }

    beforeAll(async () => {
      if (backend.name === 'postgres') server = await startPostgres()
    })
    afterAll(() => {
      if (backend.name === 'postgres') server?.destroy()
    })
    // a fresh location per test, closed after it
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close()
      await loc?.cleanup()
    })
    const fresh = async () => {
      loc = await backend.location()
      return open()
    }

    it('creates its schema at the latest version, and reopens without losing anything', async () => {
      const a = await fresh()
      const version = await a.schemaVersion()
      expect(version).toBeGreaterThan(0)
      await a.commands.enqueue([cmd('d1')])
      const b = await open()
      expect(await b.schemaVersion()).toBe(version)
      expect((await b.commands.pending('d1')).length).toBe(1)
    })

    it('inventory: save, get, all (by name), secrets kept, remove; the stamp moves with every change', async () => {
      const a = await fresh()
      let changes = 0
      a.subscribe('inventory', () => changes++)
      await a.listening()
      const s0 = await a.devices.stamp()
      const gate: DeviceEntry = { name: 'gate', protocol: 'openapi', tags: ['lobby', 'north'], host: '127.0.0.1', port: 8899, password: 's3cret', addedAt: '2026-01-01T00:00:00.000Z' }
      const door: DeviceEntry = { name: 'door', protocol: 'best', tags: [], sn: 'B1', deviceSecret: 'k1', brokerKey: 'k2', transport: 'ws' }
      await a.devices.save([gate, door])
      const s1 = await a.devices.stamp()
      expect(s1).not.toBe(s0)
      const b = await open()
      expect((await b.devices.all()).map((d) => d.name)).toEqual(['door', 'gate'])
      expect(await b.devices.get('gate')).toEqual(gate)
      expect(await b.devices.get('door')).toEqual(door)
      expect(await b.devices.get('absent')).toBeUndefined()
      await b.devices.save([{ ...gate, tags: ['south'], password: undefined }])
      const again = await a.devices.get('gate')
      expect(again?.tags).toEqual(['south'])
      expect(again?.password).toBeUndefined()
      await until(async () => (await a.devices.stamp()) !== s1, 5000, 'stamp change')
      const s2 = await a.devices.stamp()
      await a.devices.remove(['door'])
      expect(await b.devices.get('door')).toBeUndefined()
      await until(async () => (await b.devices.stamp()) !== s2, 5000, 'stamp change after remove')
      // the gateway's identity cache hears of changes made through its own store at least
      await until(() => changes >= 2, 5000, 'inventory events')
    })

    it('queue: enqueue many in order in one go; pending oldest first; devices with pending; get and getMany', async () => {
      const a = await fresh()
      const queued = await a.commands.enqueue([cmd('d1', 'open'), cmd('d2'), cmd('d1', 'reboot')])
      expect(queued.map((c) => [c.device, c.kind, c.state])).toEqual([['d1', 'open', 'queued'], ['d2', 'syncTime', 'queued'], ['d1', 'reboot', 'queued']])
      expect(queued[0].id).toBeLessThan(queued[1].id)
      expect(queued[1].id).toBeLessThan(queued[2].id)
      expect(queued[0].payload).toEqual({ n: 1 })
      expect((await a.commands.pending('d1')).map((c) => c.kind)).toEqual(['open', 'reboot'])
      expect((await a.commands.devicesWithPending()).sort()).toEqual(['d1', 'd2'])
      expect((await a.commands.get(queued[1].id))?.device).toBe('d2')
      expect(await a.commands.get(999_999)).toBeUndefined()
      expect((await a.commands.getMany([queued[2].id, queued[0].id])).map((c) => c.id)).toEqual([queued[0].id, queued[2].id])
      expect(await a.commands.enqueue([])).toEqual([])
    })

    it('claim: oldest queued first, stamped with the gateway; by kind, by id, as holder; nothing expired; only live gateways', async () => {
      const a = await fresh()
      expect(await a.commands.claim('d1', 'nobody')).toBeUndefined()
      const g = await a.gateways.register({ host: 'h1', pid: 1, ports, leaseMs: 60_000 })
      const [c1, c2, c3] = await a.commands.enqueue([cmd('d1', 'open'), cmd('d1', 'upsertPeople'), cmd('d1', 'reboot')])
      await a.commands.enqueue([cmd('d1', 'syncTime', -1)])
      expect(await a.commands.claim('d1', 'nobody')).toBeUndefined()
      expect(await a.commands.claim('d1', g.id, { kinds: new Set(['upsertPeople']) })).toMatchObject({ id: c2.id, state: 'delivered', gateway: g.id })
      expect(await a.commands.claim('d1', g.id, { id: c2.id })).toBeUndefined()
      expect(await a.commands.claim('d1', g.id, { asHolder: true })).toBeUndefined()
      await a.gateways.hold(g.id, ['d1'])
      const first = await a.commands.claim('d1', g.id, { asHolder: true })
      expect(first?.id).toBe(c1.id)
      expect(first?.deliveredAt).toBeGreaterThan(0)
      expect((await a.commands.claim('d1', g.id, { id: c3.id }))?.id).toBe(c3.id)
      expect(await a.commands.claim('d1', g.id)).toBeUndefined()
      expect(await a.commands.claim('d2', g.id)).toBeUndefined()
    })

    it('two gateways claiming one device\'s commands at once: each command is claimed exactly once', async () => {
      const a = await fresh()
      const b = await open()
      const ga = await a.gateways.register({ host: 'a', pid: 1, ports, leaseMs: 60_000 })
      const gb = await b.gateways.register({ host: 'b', pid: 2, ports, leaseMs: 60_000 })
      const queued = await a.commands.enqueue(Array.from({ length: 60 }, () => cmd('d1')))
      const drain = async (s: Store, gw: string) => {
        const got: number[] = []
        for (;;) {
          const c = await s.commands.claim('d1', gw)
          if (!c) return got
          expect(c.gateway).toBe(gw)
          got.push(c.id)
        }
      }
      const [fromA, fromB, fromA2, fromB2] = await Promise.all([drain(a, ga.id), drain(b, gb.id), drain(a, ga.id), drain(b, gb.id)])
      const all = [...fromA, ...fromB, ...fromA2, ...fromB2]
      expect(all.length).toBe(60)
      expect(new Set(all).size).toBe(60)
      expect(new Set(all)).toEqual(new Set(queued.map((c) => c.id)))
    })

    it('progress, finish once, expire; final and queued events; waitFinal across instances and on abort', async () => {
      const a = await fresh()
      const b = await open()
      const queuedSeen: string[][] = []
      const finalSeen: number[] = []
      a.subscribe('queued', (d) => queuedSeen.push(d))
      a.subscribe('final', (ids) => finalSeen.push(...ids))
      await a.listening()
      const [c1, c2, c3] = await a.commands.enqueue([cmd('d1', 'upsertPeople'), cmd('d2'), cmd('d3', 'info', 200)])
      await until(() => queuedSeen.flat().includes('d1') && queuedSeen.flat().includes('d2'), 5000, 'queued event')
      const waiting = a.commands.waitFinal([c1.id, c2.id])
      await b.commands.progress(c1.id, { message: '1 of 2 answered', people: [{ id: 'p1', status: 'ok', message: 'added' }] })
      expect((await a.commands.get(c1.id))?.result?.message).toBe('1 of 2 answered')
      expect(await b.commands.finish(c1.id, 'acknowledged', { message: 'done', people: [{ id: 'p1', status: 'ok', message: 'added' }, { id: 'p2', status: 'failed', message: 'no face' }] })).toBe(true)
      expect(await b.commands.finish(c1.id, 'failed', { message: 'late' })).toBe(false)
      expect(await b.commands.finish(c2.id, 'failed')).toBe(true)
      const done = await waiting
      expect(done.map((c) => [c.id, c.state])).toEqual([[c1.id, 'acknowledged'], [c2.id, 'failed']])
      expect(done[0].result?.people?.[1]).toEqual({ id: 'p2', status: 'failed', message: 'no face' })
      expect(done[1].finishedAt).toBeGreaterThan(0)
      await until(async () => (await a.commands.expire()).includes(c3.id) || (await a.commands.get(c3.id))?.state === 'expired', 5000, 'expiry')
      expect((await a.commands.get(c3.id))?.state).toBe('expired')
      expect(await a.commands.expire()).toEqual([])
      await until(() => finalSeen.includes(c3.id), 5000, 'final event of the expiry')
      expect(await a.commands.devicesWithPending()).toEqual([])
      const c4 = (await a.commands.enqueue([cmd('d4')]))[0]
      const abort = new AbortController()
      const waited = a.commands.waitFinal([c4.id], abort.signal)
      abort.abort(new Error('interrupted'))
      await expect(waited).rejects.toThrow('interrupted')
      await expect(a.commands.waitFinal([987_654])).rejects.toThrow(/no command/)
    })

    it('records: stored once per (device, record id) with the photo; paged by sequence and time; photos back byte for byte', async () => {
      const a = await fresh()
      const b = await open()
      expect(await a.records.lastSeq()).toBe(0)
      const t = Date.parse('2026-03-01T08:00:00Z')
      expect(await a.records.add([rec('d1', 'r1', t, PHOTO), rec('d1', 'r2', t + 1000), rec('d2', 'r1', t + 2000), rec('d1', 'r1', t)])).toEqual([true, true, true, false])
      expect(await b.records.add([rec('d1', 'r2', t + 1000), rec('d1', 'r3', t + 3000)])).toEqual([false, true])
      const d1 = await b.records.after('d1', 0, 100)
      expect(d1.map((r) => r.recordId)).toEqual(['r1', 'r2', 'r3'])
      expect(d1[0]).toMatchObject({ device: 'd1', recordId: 'r1', time: t, userId: 'u1', name: 'Ann', extras: { temp: 36.5 }, hasPhoto: true })
      expect(d1[1].hasPhoto).toBe(false)
      expect('photo' in d1[0]).toBe(false)
      expect((await b.records.photo(d1[0].seq))?.equals(PHOTO)).toBe(true)
      expect(await b.records.photo(d1[1].seq)).toBeUndefined()
      expect((await a.records.after('d1', d1[0].seq, 1)).map((r) => r.recordId)).toEqual(['r2'])
      expect((await a.records.after('d1', 0, 100, { since: t + 500, until: t + 1500 })).map((r) => r.recordId)).toEqual(['r2'])
      const all = await a.records.afterAll(0, 100)
      expect(all.map((r) => `${r.device}/${r.recordId}`)).toEqual(['d1/r1', 'd1/r2', 'd2/r1', 'd1/r3'])
      expect(await a.records.lastSeq()).toBe(all[3].seq)
      expect(await a.records.afterAll(all[3].seq, 10)).toEqual([])
    })

    it('the same records sent through two gateways at once are stored once', async () => {
      const a = await fresh()
      const b = await open()
      const t = Date.now()
      const batch = Array.from({ length: 40 }, (_, i) => rec('d1', `r${i}`, t + i, i % 4 === 0 ? PHOTO : undefined))
      const results = await Promise.all([
        ...batch.map((r) => a.records.add([r])),
        ...batch.map((r) => b.records.add([r])),
      ])
      expect(results.flat().filter(Boolean).length).toBe(40)
      const stored = await a.records.after('d1', 0, 1000)
      expect(stored.length).toBe(40)
      expect(new Set(stored.map((r) => r.recordId)).size).toBe(40)
      for (const r of stored.filter((x) => x.hasPhoto)) expect((await b.records.photo(r.seq))?.equals(PHOTO)).toBe(true)
    })

    it('a reader paging by sequence number while two gateways write misses nothing and sees nothing twice', async () => {
      const a = await fresh()
      const b = await open()
      const reader = await open()
      const per = 150
      const write = async (s: Store, tag: string) => {
        for (let i = 0; i < per; i++) await s.records.add([rec(`d${i % 3}`, `${tag}${i}`, Date.now())])
      }
      const seen: string[] = []
      let last = 0
      let writing = true
      const writers = Promise.all([write(a, 'a'), write(b, 'b')]).finally(() => { writing = false })
      // --since last keeps only the last sequence number: a record committed after a higher one was read would be lost
      for (;;) {
        // an empty page ends it only when the writers had finished before it was read
        const finished = !writing
        const page = await reader.records.afterAll(last, 7)
        for (const r of page) {
          seen.push(`${r.device}/${r.recordId}`)
          last = r.seq
        }
        if (page.length === 0 && finished) break
      }
      await writers
      expect(seen.length).toBe(per * 2)
      expect(new Set(seen).size).toBe(per * 2)
    })

    it('presence and discovered devices: saved in batches, last write wins', async () => {
      const a = await fresh()
      await a.presence.save([
        { device: 'd1', protocol: 'httpv2', lastSeen: 1000, address: '127.0.0.1:5000', info: { fw: '1' }, gateway: 'g1' },
        { device: 'd2', protocol: 'udp', lastSeen: 2000, address: '127.0.0.2:5000', info: {} },
      ])
      await a.presence.save([{ device: 'd1', protocol: 'httpv2', lastSeen: 3000, address: '127.0.0.1:5001', info: { fw: '2' }, gateway: 'g2' }])
      const rows = (await a.presence.all()).sort((x, y) => x.device.localeCompare(y.device))
      expect(rows).toEqual([
        { device: 'd1', protocol: 'httpv2', lastSeen: 3000, address: '127.0.0.1:5001', info: { fw: '2' }, gateway: 'g2' },
        { device: 'd2', protocol: 'udp', lastSeen: 2000, address: '127.0.0.2:5000', info: {} },
      ])
      await a.presence.saveDiscovered([
        { protocol: 'httpv2', identity: 'SN1', lastSeen: 10, address: '127.0.0.3:1', info: {} },
        { protocol: 'wsjson', identity: 'SN2', lastSeen: 20, address: '127.0.0.4:1', info: { model: 'x' } },
      ])
      await a.presence.saveDiscovered([{ protocol: 'httpv2', identity: 'SN1', lastSeen: 30, address: '127.0.0.3:2', info: {} }])
      expect((await a.presence.discovered()).map((d) => [d.identity, d.lastSeen, d.address])).toEqual([['SN1', 30, '127.0.0.3:2'], ['SN2', 20, '127.0.0.4:1']])
      await a.presence.save([])
      await a.presence.saveDiscovered([])
    })

    it('per-device state: set, get, all, delete, several in one transaction', async () => {
      const a = await fresh()
      const b = await open()
      await a.state.set('d1', 'timezone', 480)
      await a.state.set('d1', 'faces', ['p1', 'p2'])
      await a.state.set('_global', 'gatewayId', 'gw-1')
      expect(await b.state.get('d1', 'faces')).toEqual(['p1', 'p2'])
      expect(await b.state.all('d1')).toEqual({ timezone: 480, faces: ['p1', 'p2'] })
      await b.state.set('d1', 'timezone', undefined)
      expect(await a.state.get('d1', 'timezone')).toBeUndefined()
      await a.state.setMany([
        { device: 'd1', key: 'faces', value: undefined },
        { device: 'd2', key: 'heartbeat', value: { at: 5, ip: '127.0.0.1' } },
        { device: 'd2', key: 'heartbeat', value: { at: 6, ip: '127.0.0.1' } },
      ])
      expect(await b.state.all('d1')).toEqual({})
      expect(await b.state.get('d2', 'heartbeat')).toEqual({ at: 6, ip: '127.0.0.1' })
      expect(await b.state.get('_global', 'gatewayId')).toBe('gw-1')
    })

    it('cursors: prepare, commit atomically with the pending pull, drop; pulls of one device never overlap', async () => {
      const a = await fresh()
      const b = await open()
      expect(await a.cursors.read()).toEqual({})
      const entry = { protocol: 'httpv2', cursor: { seq: 7 }, updated_at: '2026-03-01T00:00:00.000Z', exported_total: 7 }
      const pull = { host: 'cron-1', temp: '/tmp/.out.tmp', output: '/tmp/out.csv', size: 120, cursors: { d1: entry } }
      // a pull that does not hold its devices records nothing
      expect(await a.cursors.prepare(pull, 'cron-1:100')).toEqual({ ok: false, device: 'd1', heldBy: 'nobody (the lease ran out)' })
      expect(await b.cursors.hold(['d1'], 'cron-2:200', 60_000)).toEqual({ ok: true })
      expect(await a.cursors.prepare(pull, 'cron-1:100')).toEqual({ ok: false, device: 'd1', heldBy: 'cron-2:200' })
      await b.cursors.release(['d1'], 'cron-2:200')
      expect(await a.cursors.pendingOn('cron-1')).toEqual([])
      expect(await a.cursors.hold(['d1'], 'cron-1:100', 60_000)).toEqual({ ok: true })
      const prepared = await a.cursors.prepare(pull, 'cron-1:100')
      if (!prepared.ok) throw new Error('refused')
      const id = prepared.id
      expect(await b.cursors.pendingOn('cron-2')).toEqual([])
      expect(await b.cursors.pendingOn('cron-1')).toMatchObject([{ id, host: 'cron-1', temp: '/tmp/.out.tmp', output: '/tmp/out.csv', size: 120, cursors: { d1: entry } }])
      expect(await b.cursors.read()).toEqual({})
      await b.cursors.commit({ d1: entry }, id)
      expect(await a.cursors.read()).toEqual({ d1: entry })
      expect(await a.cursors.pendingOn('cron-1')).toEqual([])
      const id2 = await a.cursors.prepare({ host: 'cron-1', temp: 't', output: 'o', size: 1, cursors: { d1: { ...entry, cursor: { seq: 9 } } } }, 'cron-1:100')
      expect(id2.ok).toBe(true)
      await a.cursors.drop((id2 as { id: string }).id)
      await a.cursors.release(['d1'], 'cron-1:100')
      expect(await a.cursors.pendingOn('cron-1')).toEqual([])
      expect(await a.cursors.read()).toEqual({ d1: entry })
      await a.cursors.commit({ d2: { ...entry, cursor: { seq: 1 } } })
      expect(Object.keys(await b.cursors.read()).sort()).toEqual(['d1', 'd2'])

      expect(await a.cursors.hold(['d1', 'd2'], 'cron-1:100', 60_000)).toEqual({ ok: true })
      expect(await b.cursors.hold(['d3', 'd2'], 'cron-2:200', 60_000)).toEqual({ ok: false, heldBy: 'cron-1:100', device: 'd2' })
      // all or none: d3 was not taken by the refused pull
      expect(await a.cursors.hold(['d3'], 'cron-3:300', 60_000)).toEqual({ ok: true })
      expect(await a.cursors.hold(['d1'], 'cron-1:100', 60_000)).toEqual({ ok: true })
      await a.cursors.release(['d1', 'd2'], 'cron-1:100')
      expect(await b.cursors.hold(['d2'], 'cron-2:200', 50)).toEqual({ ok: true })
      await until(async () => (await a.cursors.hold(['d2'], 'cron-1:100', 60_000)).ok, 5000, 'an expired pull lease to be taken')
    })

    it('gateways: register, live, renew; an expired lease is reaped and cannot be renewed', async () => {
      const a = await fresh()
      const b = await open()
      const g1 = await a.gateways.register({ host: 'host-a', pid: 11, ports: { http: 8090, udp: 7998 }, leaseMs: 60_000 })
      const g2 = await b.gateways.register({ host: 'host-b', pid: 22, ports, leaseMs: 150 })
      expect(g1.id).not.toBe(g2.id)
      expect(g1.leaseUntil).toBeGreaterThan(g1.startedAt)
      expect((await b.gateways.live()).map((g) => g.id)).toContain(g1.id)
      expect((await a.gateways.live()).find((g) => g.id === g1.id)).toMatchObject({ host: 'host-a', pid: 11, ports: { http: 8090, udp: 7998 } })
      expect(await a.gateways.renew(g1.id, 60_000)).toBe(true)
      await until(async () => !(await a.gateways.live()).some((g) => g.id === g2.id), 5000, 'the short lease to run out')
      expect((await a.gateways.reap()).gateways).toEqual([g2.id])
      expect(await b.gateways.renew(g2.id, 60_000)).toBe(false)
      expect((await a.gateways.reap()).gateways).toEqual([])
      expect((await a.gateways.live()).map((g) => g.id)).toEqual([g1.id])
    })

    it('status figures: open commands per device, the newest commands, records per minute and each device\'s latest record; a gateway\'s report', async () => {
      const a = await fresh()
      const b = await open()
      const [c1, , c3] = await a.commands.enqueue([cmd('d1'), cmd('d1', 'reboot'), cmd('d2', 'open')])
      const g = await b.gateways.register({ host: 'host-b', pid: 22, ports, leaseMs: 60_000 })
      expect(await b.commands.claim('d2', g.id)).toMatchObject({ id: c3.id })
      await a.commands.finish(c1.id, 'acknowledged', { message: 'done' })
      expect((await b.commands.openCounts()).sort((x, y) => x.device.localeCompare(y.device))).toEqual([
        { device: 'd1', protocol: 'httpv2', count: 1 }, { device: 'd2', protocol: 'httpv2', count: 1 },
      ])
      const recent = await b.commands.recent(Date.now() - 60_000, 2)
      expect(recent.map((c) => [c.id, c.state])).toEqual([[c3.id, 'delivered'], [c3.id - 1, 'queued']])
      expect(recent[0].payload).toEqual({})
      expect(await b.commands.recent(Date.now() + 60_000, 10)).toEqual([])
      expect((await a.commands.recent(0, 10)).find((c) => c.id === c1.id)).toMatchObject({ state: 'acknowledged', result: { message: 'done' } })

      const before = Date.now()
      const t = Date.parse('2026-03-01T08:00:00Z')
      await a.records.add([rec('d1', 'r1', t), rec('d1', 'r2', t + 5000), rec('d2', 'r1', t - 1000)])
      await b.records.add([rec('d1', 'r3', t - 9000)])
      const act = await b.records.activity(before - 60_000, ['d1', 'd2', 'd3'])
      expect(Object.values(act.perMinute).reduce((x, y) => x + y, 0)).toBe(4)
      for (const m of Object.keys(act.perMinute)) expect(Number(m)).toBeGreaterThanOrEqual(Math.floor((before - 60_000) / 60_000))
      // the latest spooled, not the latest in time: what the device sent last
      expect(act.lastRecord).toEqual({ d1: t - 9000, d2: t - 1000 })
      expect((await b.records.activity(Date.now() + 60_000, [])).perMinute).toEqual({})

      expect((await a.gateways.live()).find((x) => x.id === g.id)?.status).toBeUndefined()
      await b.gateways.report(g.id, { pid: 22, devices: { online: 3 } })
      expect((await a.gateways.live()).find((x) => x.id === g.id)?.status).toEqual({ pid: 22, devices: { online: 3 } })
    })

    it('holders: the latest connection holds a device; a stale release keeps it; a dead gateway\'s holds go', async () => {
      const a = await fresh()
      const ga = await a.gateways.register({ host: 'a', pid: 1, ports, leaseMs: 150 })
      const gb = await a.gateways.register({ host: 'b', pid: 2, ports, leaseMs: 60_000 })
      await a.gateways.hold(ga.id, ['d1', 'd2'])
      expect(await a.gateways.holders(['d1', 'd2', 'd3'])).toEqual({ d1: ga.id, d2: ga.id })
      await a.gateways.hold(gb.id, ['d1'])
      await a.gateways.release(ga.id, ['d1'])
      expect(await a.gateways.holders(['d1'])).toEqual({ d1: gb.id })
      await a.commands.enqueue([cmd('d2')])
      expect(await a.commands.claim('d2', gb.id, { asHolder: true })).toBeUndefined()
      await until(async () => !(await a.gateways.holders(['d2'])).d2, 5000, 'the holder\'s lease to run out')
      await a.gateways.reap()
      // the device's next connection, to any gateway, takes its queue
      await a.gateways.hold(gb.id, ['d2'])
      expect((await a.commands.claim('d2', gb.id, { asHolder: true }))?.gateway).toBe(gb.id)
      await a.gateways.release(gb.id, ['d1', 'd2'])
      expect(await a.gateways.holders(['d1', 'd2'])).toEqual({})
    })

    it('a gateway dies holding commands: open and reboot end unknown (not sent again), idempotent ones go out through another', async () => {
      const a = await fresh()
      const b = await open()
      const dead = await a.gateways.register({ host: 'a', pid: 1, ports, leaseMs: 200 })
      const alive = await b.gateways.register({ host: 'b', pid: 2, ports, leaseMs: 60_000 })
      const [open1, time1, reboot1, queued1] = await b.commands.enqueue([cmd('d1', 'open'), cmd('d1', 'syncTime'), cmd('d1', 'reboot'), cmd('d1', 'upsertPeople')])
      for (let i = 0; i < 3; i++) expect(await a.commands.claim('d1', dead.id)).toBeDefined()
      await a.commands.progress(time1.id, { message: 'half way' })
      const waiting = b.commands.waitFinal([open1.id, reboot1.id])
      // while the lease lasts, the other gateway gets only what is still queued
      expect((await b.commands.claim('d1', alive.id))?.id).toBe(queued1.id)
      await until(async () => !(await b.gateways.live()).some((g) => g.id === dead.id), 5000, 'the lease to run out')
      const reaped = await b.gateways.reap()
      expect(reaped.gateways).toEqual([dead.id])
      expect(reaped.unknown.sort()).toEqual([open1.id, reboot1.id].sort())
      expect(reaped.requeued).toEqual([time1.id])
      const [o, r] = await waiting
      expect(o.state).toBe('unknown')
      expect(o.result?.message).toMatch(new RegExp(`gateway ${dead.id} stopped after handing this open .*not sent again`))
      expect(r.state).toBe('unknown')
      expect(await a.commands.claim('d1', dead.id)).toBeUndefined()
      const again = await b.commands.claim('d1', alive.id)
      expect(again).toMatchObject({ id: time1.id, state: 'delivered', gateway: alive.id })
      expect(await b.commands.claim('d1', alive.id)).toBeUndefined()
      expect(await b.commands.finish(open1.id, 'acknowledged', { message: 'too late' })).toBe(false)
    })

    it('a clean stop (unregister) settles its commands at once, by the same rule', async () => {
      const a = await fresh()
      const g = await a.gateways.register({ host: 'a', pid: 1, ports, leaseMs: 60_000 })
      const [o, p] = await a.commands.enqueue([cmd('d1', 'open'), cmd('d1', 'deletePeople')])
      await a.commands.claim('d1', g.id)
      await a.commands.claim('d1', g.id)
      const finalSeen: number[] = []
      a.subscribe('final', (ids) => finalSeen.push(...ids))
      await a.listening()
      const r = await a.gateways.unregister(g.id)
      expect(r).toEqual({ gateways: [g.id], requeued: [p.id], unknown: [o.id] })
      expect((await a.commands.get(o.id))?.state).toBe('unknown')
      expect((await a.commands.get(p.id))).toMatchObject({ state: 'queued' })
      expect((await a.commands.get(p.id))?.gateway).toBeUndefined()
      await until(() => finalSeen.includes(o.id), 5000, 'final event for the unknown command')
      expect(await a.gateways.live()).toEqual([])
    })
  })
}

// In one process better-sqlite3 runs each transaction to its end before anything else runs, so
// the embedded store's claims and inserts are raced here from processes of their own.
describe('embedded store: two gateway processes on one gateway.db', () => {
  const child = (home: string, gateway: string) => new Promise<{ claimed: number[]; fresh: boolean[] }>((resolve, reject) => {
    const code = `
      const { SqliteStore } = await import(${JSON.stringify(join(ROOT, 'dist', 'src', 'store', 'sqlite-store.js'))})
      const { readFileSync } = await import('node:fs')
      const [home, gateway, photo] = process.argv.slice(1)
      const store = new SqliteStore(home)
      const pic = readFileSync(photo)
      const claimed = [], fresh = []
      for (let i = 0; i < 60; i++) {
        fresh.push(...await store.records.add([{ device: 'd1', recordId: 'r' + i, time: i, userId: '', name: '', type: '', result: '', direction: '', method: '', extras: {}, photo: i % 3 ? undefined : pic }]))
        const c = await store.commands.claim('d1', gateway)
        if (c) claimed.push(c.id)
      }
      for (;;) { const c = await store.commands.claim('d1', gateway); if (!c) break; claimed.push(c.id) }
      await store.close()
      process.stdout.write(JSON.stringify({ claimed, fresh }))`
    const p = spawn(process.execPath, ['--input-type=module', '-e', code, home, gateway, join(FIXTURES, 'face.jpg')], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.on('data', (d) => (out += d))
    p.stderr.on('data', (d) => (err += d))
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`child exited ${code}: ${err}`))))
  })

  it('each command is claimed by exactly one process, each record stored once with its photo', async () => {
    const home = tempDir()
    try {
      const store = new SqliteStore(home.path)
      const g1 = await store.gateways.register({ host: 'a', pid: 1, ports, leaseMs: 600_000 })
      const g2 = await store.gateways.register({ host: 'b', pid: 2, ports, leaseMs: 600_000 })
      const queued = await store.commands.enqueue(Array.from({ length: 100 }, () => cmd('d1')))
      const [a, b] = await Promise.all([child(home.path, g1.id), child(home.path, g2.id)])
      const claimed = [...a.claimed, ...b.claimed]
      expect(claimed.length).toBe(100)
      expect(new Set(claimed)).toEqual(new Set(queued.map((c) => c.id)))
      expect([...a.fresh, ...b.fresh].filter(Boolean).length).toBe(60)
      const stored = await store.records.after('d1', 0, 1000)
      expect(stored.length).toBe(60)
      for (const r of stored.filter((x) => x.hasPhoto)) expect((await store.records.photo(r.seq))?.equals(PHOTO)).toBe(true)
      expect(stored.filter((x) => x.hasPhoto).length).toBe(20)
      await store.close()
    } finally {
      home.cleanup()
    }
  })
})

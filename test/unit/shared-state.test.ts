/**
 * What a gateway keeps of a shared store (src/gateway/shared-state.ts), two gateways on one
 * throw-away PostgreSQL: a command queued anywhere reaches both caches; the first claim wins and the
 * other gateway's claim is lost (and it stops offering the command); finishing reaches the other's
 * cache; a gateway whose lease ran out is reaped and its unanswered open ends `unknown`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SharedGatewayState, ClaimLost } from '../../src/gateway/shared-state.js'
import { PostgresStore } from '../../src/store/postgres-store.js'
import type { Store } from '../../src/store/interface.js'
import type { Logger } from '../../src/types/driver.js'
import type { SpoolRecord } from '../../src/types/gateway.js'
import { until } from '../helpers.js'
import { pgMissing, startPostgres, type TestPostgres } from '../pg.js'

const missing = pgMissing()
const record = (recordId: string): SpoolRecord => ({ device: 'd1', recordId, time: Date.now(), userId: '7', name: 'Ana', type: 'employee', result: 'granted', direction: 'in', method: 'face' })
const quiet: Logger = { debug: () => {}, info: () => {}, notice: () => {}, warn: () => {} }

describe.skipIf(missing)(`two gateways' shared state on one PostgreSQL${missing ? ` (cannot run: ${missing})` : ''}`, () => {
  let pg: TestPostgres
  const stores: Store[] = []
  const states: SharedGatewayState[] = []
  const queued: string[][] = [[], []]
  const finals: number[][] = [[], []]

  beforeAll(async () => {
    pg = await startPostgres()
    for (let i = 0; i < 3; i++) stores.push(await PostgresStore.open({ url: pg.url('shared'), pollMs: 50 }))
    await stores[2].devices.save([{ name: 'd1', protocol: 'httpv2', sn: 'S1', tags: [], addedAt: new Date().toISOString() }])
    for (let i = 0; i < 2; i++) {
      const s = new SharedGatewayState({
        store: stores[i], log: quiet, leaseMs: 60_000, flushMs: 100,
        onQueued: (d) => queued[i].push(...d), onFinal: (ids) => finals[i].push(...ids),
      })
      await s.start({})
      states.push(s)
    }
  }, 60_000)

  afterAll(async () => {
    for (const s of states) await s.stop()
    for (const s of stores) await s.close()
    pg?.destroy()
  })

  /** Runs `fn` collecting the writes it tracked, and settles them. */
  async function tracked(s: SharedGatewayState, fn: () => void): Promise<PromiseSettledResult<unknown>[]> {
    const writes: Promise<unknown>[] = []
    s.track = (w) => writes.push(w)
    fn()
    return Promise.allSettled(writes)
  }

  it('a queued command reaches both gateways; one claim wins, the other is lost and stops offering it', async () => {
    const [cmd] = await stores[2].commands.enqueue([{ device: 'd1', protocol: 'httpv2', kind: 'open', payload: { mode: 'pulse' }, expiresAt: Date.now() + 60_000 }])
    await until(() => states.every((s) => s.pending('d1').some((c) => c.id === cmd.id)), 10_000, 'both caches')
    expect(queued.every((q) => q.includes('d1'))).toBe(true)
    const [a, b] = await Promise.all([tracked(states[0], () => states[0].delivered(cmd.id)), tracked(states[1], () => states[1].delivered(cmd.id))])
    const outcomes = [a[0].status, b[0].status].sort()
    expect(outcomes).toEqual(['fulfilled', 'rejected'])
    const loser = a[0].status === 'rejected' ? 0 : 1
    const winner = 1 - loser
    expect(((loser === 0 ? a : b)[0] as PromiseRejectedResult).reason).toBeInstanceOf(ClaimLost)
    await until(() => states[loser].pending('d1').length === 0, 10_000, 'the loser no longer offers it')
    expect(states[winner].pending('d1').map((c) => c.id)).toEqual([cmd.id])

    const done = await tracked(states[winner], () => states[winner].finish(cmd.id, 'acknowledged', { message: 'door opened' }, () => {}))
    expect(done[0].status).toBe('fulfilled')
    expect((await stores[2].commands.get(cmd.id))?.state).toBe('acknowledged')
    await until(() => finals[loser].includes(cmd.id), 10_000, 'the other gateway hears it is final')
  }, 30_000)

  it('records: a record committed through either gateway is stored once', async () => {
    const rec = record('r-1')
    const r = await Promise.all(states.map((s) => tracked(s, () => s.spool(rec))))
    expect(r.flat().every((x) => x.status === 'fulfilled')).toBe(true)
    expect((await stores[2].records.after('d1', 0, 10)).map((x) => x.recordId)).toEqual(['r-1'])
  })

  it('the store down: tracked writes reject (the device would get an error), and succeed again after', async () => {
    pg.stop()
    const down = await tracked(states[0], () => states[0].spool(record('r-2')))
    expect(down[0].status).toBe('rejected')
    pg.start()
    await until(async () => {
      const again = await tracked(states[0], () => states[0].spool(record('r-2')))
      return again[0].status === 'fulfilled'
    }, 30_000, 'the store back')
    expect((await stores[2].records.after('d1', 0, 10)).map((x) => x.recordId)).toEqual(['r-1', 'r-2'])
  }, 60_000)

  it('a claim that did not commit (the store down) is made again, not taken as done; one in flight is waited for again', async () => {
    const [cmd] = await stores[2].commands.enqueue([{ device: 'd1', protocol: 'httpv2', kind: 'reboot', payload: {}, expiresAt: Date.now() + 60_000 }])
    await until(() => states[0].pending('d1').some((c) => c.id === cmd.id), 10_000, 'the command cached')
    pg.stop()
    try {
      const down = await tracked(states[0], () => states[0].delivered(cmd.id))
      expect(down.map((r) => r.status)).toEqual(['rejected'])
    } finally {
      pg.start()
    }
    expect(states[0].command(cmd.id)).toMatchObject({ state: 'queued' })
    await until(async () => {
      // asked twice in the same moment: both wait for the one claim
      const both = await tracked(states[0], () => {
        states[0].delivered(cmd.id)
        states[0].delivered(cmd.id)
      })
      return both.length === 2 && both.every((r) => r.status === 'fulfilled')
    }, 30_000, 'claimed once the store is back')
    expect(await stores[2].commands.get(cmd.id)).toMatchObject({ state: 'delivered', gateway: states[0].id })
  }, 60_000)
})

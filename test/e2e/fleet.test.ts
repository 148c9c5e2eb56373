/**
 * One operation on a fleet of push-style devices (issue 9, item 2): the BUILT binary against 200
 * simulated httpv2 doors (in this process, on 127.0.0.1, random ports). Every door's command is
 * queued at once — one store transaction, so every command of the operation has the same
 * created_at — and all outcomes are waited for together; each door takes its command exactly
 * once; nothing warns on stderr (a listener per device on one AbortSignal used to raise
 * MaxListenersExceededWarning). Through serve, a temporary listener, and a command that joins
 * another command's temporary listener. Times are not asserted (bench/fleet.js measures them).
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GatewayStore } from '../../src/store/gateway-store.js'
import { createHttpv2Simulator, type Httpv2Simulator } from '../../src/simulators/httpv2/index.js'
import { doorctl, freePort, startDoorctl, tempDir, until, type RunResult } from '../helpers.js'

const DOORS = 200

interface Fleet {
  home: ReturnType<typeof tempDir>
  listen: string[]
  sims: Httpv2Simulator[]
  close(): Promise<void>
}

async function fleet(prefix: string): Promise<Fleet> {
  const home = tempDir(`doorctl-fleet-${prefix}-`)
  const port = await freePort()
  const sn = (i: number) => `${prefix}${String(i).padStart(6, '0')}`
  const csv = join(home.path, 'doors.csv')
  writeFileSync(csv, 'name,protocol,sn,tags\n' + Array.from({ length: DOORS }, (_, i) => `door-${i + 1},httpv2,${sn(i + 1)},fleet`).join('\n') + '\n')
  const imp = await doorctl(['device', 'import', csv], { home: home.path })
  expect(imp.code, imp.stderr).toBe(0)
  const sims = Array.from({ length: DOORS }, (_, i) =>
    createHttpv2Simulator({ server: `http://127.0.0.1:${port}`, sn: sn(i + 1), intervalMs: 1000, gzip: false, requestTimeoutMs: 5000, retryDelayMs: 500 }))
  for (const s of sims) s.start()
  return {
    home, sims,
    listen: ['--http-port', String(port), '--udp-port', '0', '--mqtt-port', '0', '--bind', '127.0.0.1'],
    async close() {
      await Promise.all(sims.map((s) => s.stop()))
      home.cleanup()
    },
  }
}

/** Process warnings (MaxListenersExceededWarning and the like) or stack traces on stderr. */
const warnings = (stderr: string) => stderr.split('\n').filter((l) => /Warning|MaxListeners|^\s+at /.test(l))

function allOk(r: RunResult, status: 'ok' | 'queued') {
  expect(r.code, r.stdout.slice(0, 2000) + r.stderr).toBe(0)
  const results = r.json().results as { device: string; status: string }[]
  expect(results).toHaveLength(DOORS)
  expect(results.filter((x) => x.status !== status)).toEqual([])
  expect(new Set(results.map((x) => x.device)).size).toBe(DOORS)
  expect(warnings(r.stderr)).toEqual([])
}

function readStore<T>(home: string, read: (store: GatewayStore) => T): T {
  const store = new GatewayStore(home, { readonly: true })
  try {
    return read(store)
  } finally {
    store.close()
  }
}

/** created_at of each command of this kind: one transaction gives them all the same one. */
const createdAt = (home: string, kind: string) =>
  readStore(home, (s) => s.db.prepare('SELECT COUNT(*) AS count, COUNT(DISTINCT created_at) AS "distinct" FROM commands WHERE kind = ?').get(kind) as { count: number; distinct: number })

const counts = (sims: Httpv2Simulator[], what: (s: Httpv2Simulator) => number) => sims.map(what)

describe(`${DOORS} httpv2 doors through doorctl serve`, () => {
  let f: Fleet
  let serve: ReturnType<typeof startDoorctl>
  beforeAll(async () => {
    f = await fleet('FLS')
    serve = startDoorctl(['serve', ...f.listen, '--json'], { home: f.home.path })
    await until(() => serve.out.stdout.includes('"ok":true'), 20_000, 'serve to start')
    await until(() => f.sims.every((s) => s.lastKeepaliveSuccess === 1), 30_000, 'every door to call')
  })
  afterAll(async () => {
    serve.child.kill('SIGTERM')
    await serve.exited
    await f.close()
  })

  it('sync-time on every door (default --concurrency 8): queued in one go, every door sets its clock once', async () => {
    const r = await doorctl(['device', 'sync-time', '--tag', 'fleet', '--json', '--timeout', '30s'], { home: f.home.path })
    allOk(r, 'ok')
    expect(createdAt(f.home.path, 'syncTime')).toEqual({ count: DOORS, distinct: 1 })
    expect(counts(f.sims, (s) => s.events.timeSets.length)).toEqual(f.sims.map(() => 1))
  })

  it('reboot --no-wait: all queued in one transaction; each door reboots once', async () => {
    const r = await doorctl(['device', 'reboot', '--tag', 'fleet', '--no-wait', '--json'], { home: f.home.path })
    allOk(r, 'queued')
    expect(createdAt(f.home.path, 'reboot')).toEqual({ count: DOORS, distinct: 1 })
    await until(() => f.sims.every((s) => s.events.reboots >= 1), 30_000, 'every door to reboot')
    // every command is final once the doors took them: nothing left to hand out a second time
    await until(() => readStore(f.home.path, (s) => s.devicesWithPending().length === 0), 30_000, 'the queue to empty')
    expect(counts(f.sims, (s) => s.events.reboots)).toEqual(f.sims.map(() => 1))
    expect(warnings(serve.out.stderr)).toEqual([])
  })
})

describe(`${DOORS} httpv2 doors, no serve: temporary listener, and a command joining it`, () => {
  let f: Fleet
  beforeAll(async () => { f = await fleet('FLT') })
  afterAll(async () => f.close())

  it('sync-time through a temporary listener: every door once, no warning', async () => {
    const r = await doorctl(['device', 'sync-time', '--tag', 'fleet', '--json', '--timeout', '30s', ...f.listen], { home: f.home.path })
    allOk(r, 'ok')
    expect(r.stderr).toContain('temporary gateway listening')
    expect(createdAt(f.home.path, 'syncTime')).toEqual({ count: DOORS, distinct: 1 })
    expect(counts(f.sims, (s) => s.events.timeSets.length)).toEqual(f.sims.map(() => 1))
  })

  it('two operations at once: one starts the listener, the other joins it; each door takes each command once', async () => {
    const [sync, open] = await Promise.all([
      doorctl(['device', 'sync-time', '--tag', 'fleet', '--json', '--timeout', '40s', ...f.listen], { home: f.home.path }),
      doorctl(['device', 'open', '--tag', 'fleet', '--json', '--timeout', '40s', ...f.listen], { home: f.home.path }),
    ])
    allOk(sync, 'ok')
    allOk(open, 'ok')
    // exactly one of them started the temporary listener; the other queued through its control channel
    expect([sync, open].filter((r) => r.stderr.includes('temporary gateway listening'))).toHaveLength(1)
    expect(createdAt(f.home.path, 'open')).toEqual({ count: DOORS, distinct: 1 })
    expect(counts(f.sims, (s) => s.events.timeSets.length)).toEqual(f.sims.map(() => 2))
    expect(counts(f.sims, (s) => s.events.opens.length)).toEqual(f.sims.map(() => 1))
  })
})

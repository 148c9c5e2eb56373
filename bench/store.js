// Store primitives, measured in this process (wired into bench/run.js as `store`).
//
// Floor: gateway.db driven the way doorctl did before the store interface (every statement
// prepared on each call, photos written in place) on the same schema and settings, measured as
// deployed (WAL, synchronous=FULL) and for the code path alone (synchronous=OFF).
// Against it, in interleaved turns: GatewayStore (the embedded store's synchronous core, statements prepared
// once), SqliteStore (the async Store interface over it) and, when Debian's postgresql is
// installed, PostgresStore on a throw-away cluster with PostgreSQL's durable defaults (fsync on).
import Database from 'better-sqlite3'
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pgMissing, startPostgres } from '../scripts/pg-cluster.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const dist = (p) => import(join(ROOT, 'dist', 'src', p))
const PHOTO = readFileSync(join(ROOT, 'test', 'fixtures', 'face.jpg'))
/** The embedded store must not get slower than this (ops/s ratio to the floor, each operation). */
export const STORE_TARGET_RATIO = 0.95

const record = (i) => ({
  device: `d${i % 50}`, recordId: `r${i}`, time: 1_700_000_000_000 + i, userId: `u${i % 300}`, name: 'Ann', type: 'employee',
  result: 'granted', direction: 'in', method: 'face', extras: { temp: 36.5 }, photo: i % 10 === 0 ? PHOTO : undefined,
})
const command = (i) => ({ device: `d${i % 50}`, protocol: 'httpv2', kind: i % 2 ? 'syncTime' : 'open', payload: { i }, expiresAt: Date.now() + 3_600_000 })

/** Before the store: the same SQL, prepared per call, as src/gateway/store.ts had it. */
class Floor {
  constructor(home, sync) {
    this.photosDir = join(home, 'spool-photos')
    this.db = new Database(join(home, 'gateway.db'), { timeout: 10_000 })
    this.db.pragma('journal_mode = WAL')
    this.db.pragma(`synchronous = ${sync}`)
  }
  enqueue(c) {
    const info = this.db.prepare('INSERT INTO commands (device, protocol, kind, payload, state, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(c.device, c.protocol, c.kind, JSON.stringify(c.payload), 'queued', Date.now(), c.expiresAt)
    return this.db.prepare('SELECT * FROM commands WHERE id = ?').get(Number(info.lastInsertRowid))
  }
  pending(device) {
    return this.db.prepare("SELECT * FROM commands WHERE device = ? AND state IN ('queued', 'delivered') ORDER BY id").all(device).map((r) => ({ ...r, payload: JSON.parse(r.payload) }))
  }
  delivered(id) {
    this.db.prepare("UPDATE commands SET state = 'delivered', delivered_at = ? WHERE id = ? AND state = 'queued'").run(Date.now(), id)
  }
  finish(id, state, result) {
    return this.db.prepare("UPDATE commands SET state = ?, result = COALESCE(?, result), finished_at = ? WHERE id = ? AND state IN ('queued', 'delivered')")
      .run(state, JSON.stringify(result), Date.now(), id).changes > 0
  }
  spool(r) {
    if (this.db.prepare('SELECT 1 FROM records WHERE device = ? AND record_id = ?').get(r.device, r.recordId)) return false
    let photoPath = null
    if (r.photo) {
      const dir = join(this.photosDir, r.device)
      mkdirSync(dir, { recursive: true })
      photoPath = join(dir, `${r.recordId}.jpg`)
      const fd = openSync(photoPath, 'w', 0o644)
      try { writeFileSync(fd, r.photo); fsyncSync(fd) } finally { closeSync(fd) }
      const dfd = openSync(dir, 'r')
      fsyncSync(dfd)
      closeSync(dfd)
    }
    const { photo: _p, ...rest } = r
    return this.db.prepare('INSERT OR IGNORE INTO records (device, record_id, time, data, photo_path, received_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(r.device, r.recordId, r.time, JSON.stringify(rest), photoPath, Date.now()).changes > 0
  }
  getState(device, key) {
    const row = this.db.prepare('SELECT value FROM device_state WHERE device = ? AND key = ?').get(device, key)
    return row ? JSON.parse(row.value) : undefined
  }
  setState(device, key, value) {
    this.db.prepare('INSERT INTO device_state (device, key, value) VALUES (?, ?, ?) ON CONFLICT(device, key) DO UPDATE SET value = excluded.value').run(device, key, JSON.stringify(value))
  }
  close() { this.db.close() }
}

/** The four workloads, each as async steps so one harness times every variant. */
function workloads(n) {
  return {
    spool: { ops: n, run: (v) => v.spool },
    queue: { ops: n, run: (v) => v.cycle },
    pending: { ops: n * 10, run: (v) => v.pending },
    state: { ops: n * 2, run: (v) => v.state },
  }
}

/** Each variant: open on a fresh location (SQLite's `synchronous` as given), the four steps, close. */
const VARIANTS = {
  floor: async (home, sync) => {
    const { GatewayStore } = await dist('store/gateway-store.js')
    new GatewayStore(home).close() // the same schema for everyone
    const f = new Floor(home, sync)
    return {
      spool: (i) => f.spool(record(i)),
      cycle: (i) => { const c = f.enqueue(command(i)); f.delivered(c.id); f.finish(c.id, 'acknowledged', { message: 'ok' }) },
      pending: (i) => f.pending(`p${i % 50}`),
      state: (i) => (i % 2 ? f.getState(`d${i % 50}`, 'faces') : f.setState(`d${i % 50}`, 'faces', ['p1', 'p2', i])),
      seed: () => { for (let i = 0; i < 50; i++) f.enqueue({ ...command(i), device: `p${i}` }) },
      close: async () => f.close(),
    }
  },
  core: async (home, sync) => {
    const { GatewayStore } = await dist('store/gateway-store.js')
    const { SqliteGateways } = await dist('store/sqlite-gateways.js')
    const s = new GatewayStore(home)
    s.db.pragma(`synchronous = ${sync}`)
    const g = new SqliteGateways(s).register({ host: 'bench', pid: process.pid, ports: {}, leaseMs: 3_600_000 })
    return {
      spool: (i) => s.spool(record(i)),
      cycle: (i) => { const c = s.enqueue(command(i)); s.claim(c.device, g.id, { id: c.id }); s.finish(c.id, 'acknowledged', { message: 'ok' }) },
      pending: (i) => s.pending(`p${i % 50}`),
      state: (i) => (i % 2 ? s.getState(`d${i % 50}`, 'faces') : s.setState(`d${i % 50}`, 'faces', ['p1', 'p2', i])),
      seed: () => { for (let i = 0; i < 50; i++) s.enqueue({ ...command(i), device: `p${i}` }) },
      close: async () => s.close(),
    }
  },
  sqliteStore: async (home, sync) => {
    const { SqliteStore } = await dist('store/sqlite-store.js')
    const store = new SqliteStore(home)
    store.core.db.pragma(`synchronous = ${sync}`)
    return storeSteps(store)
  },
}

async function storeSteps(store) {
  const g = await store.gateways.register({ host: 'bench', pid: process.pid, ports: {}, leaseMs: 3_600_000 })
  return {
    spool: (i) => store.records.add([record(i)]),
    cycle: async (i) => {
      const [c] = await store.commands.enqueue([command(i)])
      await store.commands.claim(c.device, g.id, { id: c.id })
      await store.commands.finish(c.id, 'acknowledged', { message: 'ok' })
    },
    pending: (i) => store.commands.pending(`p${i % 50}`),
    state: (i) => (i % 2 ? store.state.get(`d${i % 50}`, 'faces') : store.state.set(`d${i % 50}`, 'faces', ['p1', 'p2', i])),
    seed: () => store.commands.enqueue(Array.from({ length: 50 }, (_, i) => ({ ...command(i), device: `p${i}` }))),
    close: () => store.close(),
  }
}

/**
 * Every variant open at once, each on its own fresh DOORCTL_HOME (or schema); each workload runs
 * in `slices` short turns, the variants taking turns in a rotating order, so a change in the
 * machine's load (other work, other disks) falls on all of them alike. ops/s = ops / summed time.
 */
async function measure(variants, n, slices, sync = 'FULL') {
  const homes = []
  const open = {}
  for (const [name, make] of Object.entries(variants)) {
    const home = mkdtempSync(join(os.tmpdir(), 'doorctl-bench-store-'))
    homes.push(home)
    open[name] = await make(home, sync)
    await open[name].seed()
  }
  const names = Object.keys(open)
  const out = Object.fromEntries(names.map((v) => [v, {}]))
  /** Per workload and variant: its time in each turn (ns), for ratios taken turn by turn. */
  const turns = Object.fromEntries(names.map((v) => [v, {}]))
  try {
    for (const [load, w] of Object.entries(workloads(n))) {
      const per = Math.ceil(w.ops / slices)
      const ns = Object.fromEntries(names.map((v) => [v, 0n]))
      const done = Object.fromEntries(names.map((v) => [v, 0]))
      for (const v of names) turns[v][load] = []
      for (let slice = 0; slice < slices; slice++) {
        for (let k = 0; k < names.length; k++) {
          const v = names[(slice + k) % names.length]
          const step = w.run(open[v])
          const t = process.hrtime.bigint()
          for (let i = slice * per; i < Math.min(w.ops, (slice + 1) * per); i++) await step(i)
          const took = process.hrtime.bigint() - t
          ns[v] += took
          turns[v][load].push(Number(took))
          done[v] = Math.min(w.ops, (slice + 1) * per)
        }
      }
      for (const v of names) out[v][load] = done[v] / (Number(ns[v]) / 1e9)
    }
    out.turns = turns
  } finally {
    for (const v of names) await open[v].close()
    for (const h of homes) rmSync(h, { recursive: true, force: true })
  }
  return out
}

/** Embedded variants at one `synchronous` setting: ops/s, and per workload the median over turns of floor time / variant time. */
async function embedded(ops, slices, sync) {
  const { turns, ...best } = await measure(VARIANTS, ops, slices, sync)
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const ratios = {}
  for (const v of ['core', 'sqliteStore']) {
    ratios[v] = Object.fromEntries(Object.keys(turns.floor).map((load) => [load, median(turns.floor[load].map((t, i) => t / turns[v][load][i]))]))
  }
  return { best, ratios }
}

export async function benchStore({ ops, slices = 40, log = () => {} }) {
  log(`store: embedded variants as deployed (synchronous=FULL), ${slices} interleaved turns per workload`)
  const durable = await embedded(ops, slices, 'FULL')
  log('store: embedded variants, code path only (synchronous=OFF)')
  const codePath = await embedded(ops, slices, 'OFF')
  let postgres
  const missing = pgMissing()
  if (missing) {
    postgres = { skipped: missing }
  } else {
    log('store: postgres')
    const server = await startPostgres({ durable: true })
    try {
      const { PostgresStore } = await dist('store/postgres-store.js')
      const { turns: _t, ...pg } = await measure({ postgres: async () => storeSteps(await PostgresStore.open({ url: server.url('bench') })) }, ops, 1)
      postgres = pg.postgres
    } finally {
      server.destroy()
    }
  }
  return { ops, slices, durable, codePath, postgres }
}

export function renderStore(e, { stamp, table, f0, f2, verdict }) {
  const r = e.result
  const names = { floor: 'floor: before the store (statements prepared per call)', core: 'GatewayStore (embedded core, sync)', sqliteStore: 'SqliteStore (Store interface, async)', postgres: 'PostgresStore (pg, durable defaults)' }
  const loads = ['spool', 'queue', 'pending', 'state']
  const opsTable = (best, extra = {}) => {
    const all = { ...best, ...extra }
    return table(['variant', ...loads], Object.keys(all).map((v) => [names[v], ...loads.map((w) => `${f0(all[v][w])}${v === 'floor' ? '' : ` (${f2(all[v][w] / best.floor[w])})`}`)]))
  }
  const ratioRows = (ratios, withVerdict) => ['core', 'sqliteStore'].flatMap((v) => loads.map((w) => {
    const ratio = ratios[v][w]
    return withVerdict ? [`${names[v]}: ${w}`, f2(ratio), `≥ ${STORE_TARGET_RATIO}`, verdict(ratio >= STORE_TARGET_RATIO)] : [`${names[v]}: ${w}`, f2(ratio)]
  }))
  const pg = r.postgres && !r.postgres.skipped ? { postgres: r.postgres } : {}
  return [
    '## 10. store',
    stamp(e),
    `Operations per second (ratio to the floor in brackets), in one process, each variant on a fresh DOORCTL_HOME or schema, the embedded ones taking ${r.slices} interleaved turns per workload so that the machine's load falls on all alike: **spool** ${f0(r.ops)} records added one per transaction (every tenth with a ${PHOTO.length}-byte photo); **queue** ${f0(r.ops)} cycles of enqueue one + claim (the floor: mark delivered) + finish; **pending** ${f0(r.ops * 10)} reads of a device's pending commands; **state** ${f0(r.ops * 2)} per-device state operations, half writes. Ratios in the verdict tables are the median, over the turns, of the floor's time divided by the variant's time in the same turn.`,
    '**As deployed** (WAL, synchronous=FULL): every write commits and waits for its fsync, and the variants do the same number of commits and fsyncs, so spool and queue measure the disk; on a machine shared with other work they move by about ±15 % from run to run, in either direction.',
    opsTable(r.durable.best, pg),
    table(['measure (as deployed)', 'median ratio'], ratioRows(r.durable.ratios, false)),
    '**Code path** (the same, with synchronous=OFF, so the time is doorctl\'s and SQLite\'s work rather than the disk\'s): the verdict that the embedded store did not get slower.',
    opsTable(r.codePath.best),
    table(['measure (code path)', 'median ratio', 'target', 'result'], ratioRows(r.codePath.ratios, true)),
    r.postgres?.skipped ? `PostgreSQL not measured: ${r.postgres.skipped}.` : 'PostgreSQL runs on a throw-away cluster on 127.0.0.1 with its durable defaults (fsync, synchronous_commit on), one pooled connection per call; each write is a network round trip plus a commit, so it is slower per operation than the embedded store: its place is several gateways on several machines, not speed on one.',
  ].join('\n\n')
}

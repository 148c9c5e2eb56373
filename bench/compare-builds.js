// Two builds of doorctl against each other, paired: each round runs `serve` from both at once (each
// with its own DOORCTL_HOME of N httpv2 devices and its own bench/keepalive-load.js, 1 keepalive/s
// for 20 s after 5 s), the start order swapped every round, so the machine's other work meets both
// alike. Prints each round and the means: keepalive p50/p99 and serve's CPU ms per 1000 keepalives.
//   node bench/compare-builds.js BASE/bin/run.js NEW/bin/run.js     (N=1000 ROUNDS=4 by default)
// e.g. a worktree of the previous release, built, against this checkout.
import { spawn, execFileSync } from 'node:child_process'
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
const [baseRun, newRun] = process.argv.slice(2)
if (!baseRun || !newRun) {
  process.stderr.write('usage: node bench/compare-builds.js BASE/bin/run.js NEW/bin/run.js\n')
  process.exit(2)
}
const builds = { base: baseRun, new: newRun }
const LOAD = new URL('./keepalive-load.js', import.meta.url).pathname
const N = Number(process.env.N ?? 1000), ROUNDS = Number(process.env.ROUNDS ?? 4)
const cpu = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 10 }
const homeList = ['base', 'new'].map((s) => {
  const h = mkdtempSync(join(tmpdir(), `ab-${s}-`))
  writeFileSync(`${h}.csv`, 'name,protocol,sn,tags\n' + Array.from({ length: N }, (_, i) => `dev-${i + 1},httpv2,BENCH${String(i + 1).padStart(6, '0')},floor-${i % 8}`).join('\n') + '\n')
  // each build its own home: a newer build may upgrade gateway.db's schema past what the older one opens
  execFileSync(process.execPath, [builds[s], 'device', 'import', `${h}.csv`], { env: { ...process.env, DOORCTL_HOME: h } })
  return h
})
const homes = { base: homeList[0], new: homeList[1] }
const res = { base: [], new: [] }
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 ? ['new', 'base'] : ['base', 'new']
  const serves = await Promise.all(order.map(async (b, k) => {
    const child = spawn(process.execPath, [builds[b], 'serve', '--http-port', '0', '--udp-port', '0', '--mqtt-port', '0', '--bind', '127.0.0.1', '--admin-port', '0', '--json'], { env: { ...process.env, DOORCTL_HOME: homes[b] }, stdio: ['ignore', 'pipe', 'ignore'] })
    const ready = await new Promise((ok) => createInterface({ input: child.stdout }).once('line', (l) => ok(JSON.parse(l))))
    return { b, child, ready }
  }))
  const c0 = serves.map((s) => cpu(s.child.pid))
  const reports = await Promise.all(serves.map((s) => new Promise((ok) => {
    const load = spawn(process.execPath, [LOAD, String(s.ready.http_port), String(N), '1000', '20000', '5000'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    load.on('message', (m) => { if (m.type === 'report') ok(m) })
  })))
  serves.forEach((s, k) => { res[s.b].push({ p50: reports[k].p50, p99: reports[k].p99, cpu: (cpu(s.child.pid) - c0[k]) * 1000 / reports[k].requests }); s.child.kill('SIGTERM') })
  await new Promise((ok) => setTimeout(ok, 1500))
  console.log(`round ${r + 1}: ` + serves.map((s) => `${s.b} p50 ${res[s.b].at(-1).p50.toFixed(1)} p99 ${res[s.b].at(-1).p99.toFixed(1)} cpu/1000 ${res[s.b].at(-1).cpu.toFixed(0)}`).join(' | '))
}
const mean = (b, k) => res[b].reduce((a, x) => a + x[k], 0) / res[b].length
console.log(`mean: base p50 ${mean('base', 'p50').toFixed(2)} p99 ${mean('base', 'p99').toFixed(1)} cpu ${mean('base', 'cpu').toFixed(0)} | new p50 ${mean('new', 'p50').toFixed(2)} p99 ${mean('new', 'p99').toFixed(1)} cpu ${mean('new', 'cpu').toFixed(0)}`)
for (const h of homeList) {
  rmSync(h, { recursive: true, force: true })
  rmSync(`${h}.csv`, { force: true })
}

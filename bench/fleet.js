// 9. fleet: one operation on 1,000 httpv2 doors through `doorctl serve` (issue 9, item 2).
//
// serve + bench/keepalive-load.js (its own process: 1,000 httpv2 doors keepaliving every second,
// following Remote and SyncParameter, counting every command each door takes). Measured, each as
// a child process from spawn to exit, with default flags:
//   `device sync-time --tag soak --json`            target: ≤ one keepalive interval + 2 s
//   `device reboot --tag soak --no-wait --json`     target: < 1 s
// and, as the baseline in the same run, the same two commands on one door (`solo`, not in the
// tag). Checks: every door took exactly one time setting and one restart, nothing on stderr
// warns (MaxListenersExceededWarning), every result ok / queued.
// Each run is appended to the fleet entry's `runs` (label: BENCH_LABEL, else the git commit), so
// RESULTS.md shows the code before and after a change side by side.
import { spawn, execFileSync } from 'node:child_process'
import os from 'node:os'
import { join } from 'node:path'

const TARGET_SLACK_MS = 2000

export async function benchFleet(h, previous) {
  const count = h.sizes.fleetDevices
  const intervalMs = 1000
  const home = join(h.work, 'fleet-home')
  const sn = (i) => `BENCH${String(i).padStart(6, '0')}`
  // doors 1..count are tagged soak; door count+1 is `solo`, the one-door baseline
  const rows = Array.from({ length: count }, (_, i) => `door-${i + 1},httpv2,${sn(i + 1)},soak`)
  rows.push(`solo,httpv2,${sn(count + 1)},`)
  await h.importInventory(home, join(h.work, 'fleet.csv'), 'name,protocol,sn,tags', rows)
  const serve = await h.startServe(home, 'fleet')
  const out = { devices: count, intervalMs, label: process.env.BENCH_LABEL || commitLabel(h.root) }
  let load
  try {
    load = spawn(h.node, [join(h.bench, 'keepalive-load.js'), String(serve.ready.http_port), String(count + 1), String(intervalMs), '0', '0'], { cwd: h.root, env: h.childEnv(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const msgs = []
    const waiters = []
    load.on('message', (m) => {
      const i = waiters.findIndex((w) => w.type === m.type)
      if (i >= 0) waiters.splice(i, 1)[0].resolve(m)
      else msgs.push(m)
    })
    const loadExit = new Promise((r) => load.once('exit', r))
    const next = (type, ms) => Promise.race([
      new Promise((resolve) => {
        const i = msgs.findIndex((m) => m.type === type)
        if (i >= 0) resolve(msgs.splice(i, 1)[0])
        else waiters.push({ type, resolve })
      }),
      loadExit.then((c) => { throw new Error(`load generator exited ${c}`) }),
      h.sleep(ms).then(() => { throw new Error(`no ${type} from the load generator within ${ms / 1000} s`) }),
    ])
    await next('warm', 60_000)
    out.load = os.loadavg()[0]
    const doorctl = async (args) => {
      const r = await h.runNode([h.run, ...args, '--json'], { env: { DOORCTL_HOME: home } })
      let doc
      try { doc = JSON.parse(r.stdout) } catch { doc = undefined }
      return { ms: r.ms, code: r.code, results: doc?.results ?? [], warnings: warningLines(r.stderr), error: h.failure(r) }
    }
    const summary = (r, want) => ({
      ms: r.ms, code: r.code, results: r.results.length, wanted: r.results.filter((x) => x.status === want).length,
      statuses: tally(r.results.map((x) => x.status)), warnings: r.warnings, error: r.error,
    })
    out.syncOne = summary(await doorctl(['device', 'sync-time', 'solo']), 'ok')
    out.syncAll = summary(await doorctl(['device', 'sync-time', '--tag', 'soak']), 'ok')
    out.rebootOne = summary(await doorctl(['device', 'reboot', 'solo', '--no-wait']), 'queued')
    const t = Date.now()
    out.rebootAll = summary(await doorctl(['device', 'reboot', '--tag', 'soak', '--no-wait']), 'queued')
    // the queued restarts reach the doors at their next keepalives; then two more intervals, in which a repeat would show
    let taken
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await h.sleep(250)) {
      load.send('counts')
      taken = (await next('taken', 10_000)).taken
      if (taken.restart.slice(0, count).every((n) => n > 0)) break
    }
    out.rebootDeliveredMs = Date.now() - t
    await h.sleep(2 * intervalMs)
    load.send('stop')
    const report = await next('report', 30_000)
    await loadExit
    const soak = (per) => per.slice(0, count)
    out.time = once(soak(report.taken.time))
    out.restart = once(soak(report.taken.restart))
    out.solo = { time: report.taken.time[count], restart: report.taken.restart[count] }
    out.loadErrors = report.errors
    out.loadErrorSamples = report.errorSamples
    out.keepaliveP99 = report.p99
  } finally {
    if (load && load.exitCode === null) load.kill('SIGKILL')
    out.serveRssKB = await serve.stop()
    out.serveWarnings = warningLines(serve.stderr())
  }
  out.pass = {
    sync: out.syncAll.code === 0 && out.syncAll.wanted === count && out.syncAll.ms <= intervalMs + TARGET_SLACK_MS,
    noWait: out.rebootAll.code === 0 && out.rebootAll.wanted === count && out.rebootAll.ms < 1000,
    once: out.time.once === count && out.restart.once === count && out.solo.time === 1 && out.solo.restart === 1,
    warnings: [out.syncOne, out.syncAll, out.rebootOne, out.rebootAll].every((r) => r.warnings.length === 0) && out.serveWarnings.length === 0,
  }
  const run = {
    label: out.label, date: new Date().toISOString(), devices: count, load: out.load,
    syncAllMs: out.syncAll.ms, syncOneMs: out.syncOne.ms, rebootAllMs: out.rebootAll.ms, rebootOneMs: out.rebootOne.ms,
    rebootDeliveredMs: out.rebootDeliveredMs, pass: out.pass,
    statuses: { sync: out.syncAll.statuses, reboot: out.rebootAll.statuses },
  }
  out.runs = [...(previous?.result?.runs ?? []), run]
  return out
}

function commitLabel(root) {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'commands'], { cwd: root, encoding: 'utf8' }).trim() !== ''
    return dirty ? `${head}+changes` : head
  } catch {
    return 'unknown'
  }
}

/** Node's process warnings (MaxListenersExceededWarning and the like) and stack traces on stderr. */
function warningLines(stderr) {
  return stderr.split('\n').filter((l) => /Warning:|MaxListenersExceeded|^\s+at /.test(l)).slice(0, 5)
}

const tally = (xs) => xs.reduce((acc, x) => ({ ...acc, [x]: (acc[x] ?? 0) + 1 }), {})

/** Doors that took a command once, more than once, never. */
function once(per) {
  let one = 0
  let more = 0
  for (const n of per) {
    if (n === 1) one++
    else if (n > 1) more++
  }
  return { once: one, more, none: per.length - one - more }
}

export function renderFleet(e, f) {
  const r = e.result
  const { f0, f1, f2, table, verdict, stamp } = f
  const s = (ms) => f2(ms / 1000)
  const statuses = (x) => Object.entries(x.statuses).map(([k, v]) => `${f0(v)} ${k}`).join(', ') || 'none'
  return [
    '## 9. fleet (one operation on 1,000 httpv2 doors through `doorctl serve`)',
    stamp(e),
    `\`doorctl serve\` and ${f0(r.devices)} + 1 simulated httpv2 doors (\`bench/keepalive-load.js\`, its own process, one keep-alive connection per door, a keepalive every ${r.intervalMs / 1000} s, following Remote and SyncParameter and counting what each door takes). ${f0(r.devices)} doors carry the tag \`soak\`; the extra door \`solo\` is the baseline: the same command on one door, in the same run. Wall time of each command from spawn to exit, default flags (\`--concurrency 8\`, \`--timeout 30s\`). Run label: \`${r.label}\`.`,
    table(['measure', 'value', 'target', 'result'], [
      ['`device sync-time solo` s (baseline)', s(r.syncOne.ms), '', ''],
      [`\`device sync-time --tag soak\` s (${statuses(r.syncAll)})`, `${s(r.syncAll.ms)} (${f1(r.syncAll.ms / r.syncOne.ms)}× the baseline)`, `≤ interval + 2 = ${(r.intervalMs + TARGET_SLACK_MS) / 1000}`, verdict(r.pass.sync)],
      ['`device reboot solo --no-wait` s (baseline)', s(r.rebootOne.ms), '', ''],
      [`\`device reboot --tag soak --no-wait\` s (${statuses(r.rebootAll)})`, `${s(r.rebootAll.ms)} (${f1(r.rebootAll.ms / r.rebootOne.ms)}× the baseline)`, '< 1', verdict(r.pass.noWait)],
      ['queued restarts all taken by the doors after s', s(r.rebootDeliveredMs), '', ''],
      ['doors that took the time setting once / more / never', `${f0(r.time.once)} / ${f0(r.time.more)} / ${f0(r.time.none)}`, 'every door once', verdict(r.time.once === r.devices)],
      ['doors that took the restart once / more / never', `${f0(r.restart.once)} / ${f0(r.restart.more)} / ${f0(r.restart.none)}`, 'every door once', verdict(r.restart.once === r.devices)],
      ['warnings on stderr (commands, serve)', [r.syncOne, r.syncAll, r.rebootOne, r.rebootAll].map((x) => x.warnings.length).join(' + ') + ` , ${r.serveWarnings.length}`, 'none', verdict(r.pass.warnings)],
      ['keepalive p99 ms / load generator errors', `${f1(r.keepaliveP99)} / ${f0(r.loadErrors)}`, '', ''],
      ['serve peak RSS MB', f1(r.serveRssKB / 1024), '', ''],
    ]),
    [...r.syncAll.warnings, ...r.rebootAll.warnings, ...r.serveWarnings].length ? `Warnings seen: ${[...new Set([...r.syncAll.warnings, ...r.rebootAll.warnings, ...r.serveWarnings])].map((x) => `\`${x.trim()}\``).join('; ')}` : '',
    r.loadErrorSamples?.length ? `First load generator errors: ${r.loadErrorSamples.map((x) => `\`${x}\``).join('; ')}` : '',
    'Every run recorded (the code before and after a change; each row measured as above, newest last):',
    table(['run', 'measured (load average)', 'sync-time, 1,000 doors s', 'sync-time, 1 door s', 'reboot --no-wait, 1,000 doors s', 'reboot --no-wait, 1 door s', 'restarts all taken after s', 'once each', 'no warnings'], r.runs.map((x) => [
      `\`${x.label}\``, `${x.date.slice(0, 16).replace('T', ' ')} (${x.load === undefined ? '—' : f1(x.load)})`, s(x.syncAllMs), s(x.syncOneMs), s(x.rebootAllMs), s(x.rebootOneMs), s(x.rebootDeliveredMs), x.pass.once ? 'yes' : 'no', x.pass.warnings ? 'yes' : 'no',
    ])),
    NOTES,
  ].filter(Boolean).join('\n\n')
}

const NOTES = [
  '**Where the time goes.** Before: every door was its own control-channel request and its own fsync\'d transaction, and serve parsed the inventory file once per command (1,000 × a 1,000-entry file); and with `--concurrency 8` each batch of 8 doors waited for their next keepalive and then for the acknowledgement, which httpv2 gives at the door\'s following request (the protocol has no confirmation of DownloadWorkSetting), so about two intervals per batch of 8. ' +
    'After: the commands of one operation are queued in one control request and one transaction, waits hold no `--concurrency` slot, and serve writes what it hands out to the doors answering in the same moment in one transaction (group commit) before answering them. So `sync-time` on 1,000 doors takes about what it takes on one: node and oclif start-up, up to one interval until each door calls, one more interval until its next request acknowledges the time — the one-door baseline shows that floor in the same run. ' +
    '`reboot --no-wait` on 1,000: a CPU profile of the CLI (`node --cpu-prof`, taken at a load average of ~5) shows ~0.3 s above the one-door run (garbage collection ~0.16 s, per-device context, driver and promise ~0.1 s); serve queues the batch in ~0.05–0.1 s (1,000 inserts, one fsync, each protocol looking once at each door\'s pending commands). ' +
    'Statements are prepared once, and `--json` is written without oclif\'s colour tokenizer when stdout is not a terminal (~60 ms for 1,000 results).',
  '**The cost of the group commit.** serve has to know which writes an HTTP answer waits for; it uses AsyncLocalStorage, which costs it CPU on every request. Measured A/B on serve\'s CPU time for 15 s of 1,000 httpv2 keepalives/s (`/proc/PID/stat`, alternating runs, same build with and without the scope): 2,460 and 2,730 ms without, 2,780 and 2,930 ms with — about 9 % more, against ~2 ms of fsync saved per command handed out.',
  '**This machine** was shared with other engineers\' builds and test runs during most of these runs (the load average of each is in the table; 4–7 on 2 CPUs at worst), which stretches every absolute time, the one-door baselines included. The rows marked "quiet" were measured back to back at a load average of ~0.2: before, 173 s and 8.6 s (the issue measured 83.5 s and 9 s; how long each batch of 8 waits depends on where in its interval each door is); after, 2.8 s and 0.75 s.',
].join('\n\n')

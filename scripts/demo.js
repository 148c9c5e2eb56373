#!/usr/bin/env node
// `npm run demo`: two simulated openapi doors on 127.0.0.1, driven by the real doorctl binary.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const home = mkdtempSync(join(tmpdir(), 'doorctl-demo-'))
const out = join(root, 'demo-output')

function doorctl(...args) {
  process.stdout.write(`\n$ doorctl ${args.join(' ')}\n`)
  const r = spawnSync(process.execPath, [join(root, 'bin', 'run.js'), ...args], {
    env: { ...process.env, DOORCTL_HOME: home },
    encoding: 'utf8',
    input: '',
  })
  process.stdout.write(r.stdout)
  process.stderr.write(r.stderr)
  return r.status
}

// spawnSync blocks this process, so the simulators run in a child of their own
const { fork } = await import('node:child_process')
const simProc = fork(join(root, 'scripts', 'demo-devices.js'), { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
const devices = await new Promise((resolve) => simProc.once('message', resolve))

try {
  doorctl('device', 'add', 'front-door', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(devices[0].httpPort), '--ws-port', String(devices[0].wsPort), '--tag', 'hq')
  doorctl('device', 'add', 'back-door', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(devices[1].httpPort), '--ws-port', String(devices[1].wsPort), '--tag', 'hq')
  doorctl('device', 'list')
  doorctl('people', 'import', join(root, 'examples', 'people.csv'), '--tag', 'hq', '--report', join(out, 'import-report.csv'))
  doorctl('people', 'list', 'front-door')
  doorctl('device', 'open', 'front-door')
  doorctl('device', 'sync-time', '--tag', 'hq')
  doorctl('records', 'pull', '--tag', 'hq', '--since', 'last', '--output', join(out, 'records.csv'))
  const lines = readFileSync(join(out, 'records.csv'), 'utf8').split('\n')
  process.stdout.write(`\nfirst lines of ${join('demo-output', 'records.csv')}:\n${lines.slice(0, 4).join('\n')}\n`)
  doorctl('records', 'pull', '--tag', 'hq', '--since', 'last', '--output', join(out, 'records-again.csv'), '--json')
  process.stdout.write('\n(the second --since last pull found nothing new: every record is exported exactly once)\n')
} finally {
  simProc.kill('SIGTERM')
  rmSync(home, { recursive: true, force: true })
}

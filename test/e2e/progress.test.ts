import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startOpenapiSimulator, type OpenapiSimulator } from '../../src/simulators/openapi/index.js'
import { BIN, FIXTURES, doorctl, tempDir } from '../helpers.js'

/**
 * Progress on long work, as a human at a terminal sees it: `script` (util-linux) gives doorctl a
 * pseudo-terminal, once with a normal width and once reporting 0 columns (a container `exec -t`
 * without a size: the case that used to print cursor-up sequences forever). In a pipe, and with
 * --json, none of it appears.
 */
const hasScript = spawnSync('script', ['--version']).status === 0

const PEOPLE = 1500
/** Output of a whole run on a terminal stays small: a line a second, or ten frames a second of one line. */
const BOUNDED = 256 * 1024
/** Cursor up, erase line: what a 0-column terminal must never get. */
const CURSOR_CONTROL = /\x1b\[\d*[AK]/

interface TerminalRun {
  code: number | null
  output: string
  bytes: number
  timedOut: boolean
}

/** Runs a shell command line under a pseudo-terminal of `cols` columns; killed after `timeoutMs`. */
function underTerminal(commandLine: string, cols: number, home: string, timeoutMs = 45_000): Promise<TerminalRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', `stty cols ${cols} rows 40 && ${commandLine}`, '/dev/null'], {
      env: { ...process.env, DOORCTL_HOME: home, NO_COLOR: '1', TERM: 'xterm-256color' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    let bytes = 0
    let timedOut = false
    child.stdout.on('data', (d: Buffer) => {
      bytes += d.length
      if (output.length < 4 * BOUNDED) output += d.toString('utf8')
    })
    child.stderr.on('data', (d: Buffer) => (output += d.toString('utf8')))
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGTERM')
    }, timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output, bytes, timedOut })
    })
  })
}

describe.skipIf(!hasScript)('progress on a terminal (needs `script` from util-linux)', () => {
  const home = tempDir()
  const work = tempDir('doorctl-progress-')
  let sim1: OpenapiSimulator
  let sim2: OpenapiSimulator
  const csv = join(work.path, 'people.csv')
  const doorctlCmd = `'${process.execPath}' '${BIN}'`

  beforeAll(async () => {
    // a little latency per request: an import of 1,500 people lasts seconds, long enough for live counts
    sim1 = await startOpenapiSimulator({ port: 0, wsPort: 0, latencyMs: 8, records: 2500 })
    sim2 = await startOpenapiSimulator({ port: 0, wsPort: 0, latencyMs: 8 })
    writeFileSync(csv, 'id,name\n' + Array.from({ length: PEOPLE }, (_, i) => `${i + 1},Person ${i + 1}`).join('\n') + '\n')
    mkdirSync(join(work.path, 'faces'))
    for (const id of ['1', '2', '3']) copyFileSync(join(FIXTURES, 'face.jpg'), join(work.path, 'faces', `${id}.jpg`))
    for (const [name, sim] of [['door-1', sim1], ['door-2', sim2]] as const) {
      const r = await doorctl(['device', 'add', name, '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(sim.httpPort), '--ws-port', String(sim.wsPort)], { home: home.path })
      expect(r.code, r.stderr).toBe(0)
    }
  })
  afterAll(async () => {
    await sim1?.close()
    await sim2?.close()
    home.cleanup()
    work.cleanup()
  })

  it('a 0-column terminal gets plain lines with the counts, and the import finishes', async () => {
    const r = await underTerminal(`exec ${doorctlCmd} people import '${csv}' door-1`, 0, home.path)
    expect(r.timedOut).toBe(false)
    expect(r.code, r.output).toBe(0)
    expect(r.bytes).toBeLessThan(BOUNDED)
    expect(r.output).not.toMatch(CURSOR_CONTROL)
    // at most one line a second while it runs, then the summary
    expect(r.output).toMatch(/importing \d+\/1500 people · \d+(\.\d)?\/s · ETA/)
    expect(r.output).toMatch(/importing 1500 people in \d+(\.\d)?s/)
  })

  it('a normal terminal gets a live bar with done/total per device, rate and ETA', async () => {
    const r = await underTerminal(`exec ${doorctlCmd} people import '${csv}' door-1 door-2`, 100, home.path)
    expect(r.timedOut).toBe(false)
    expect(r.code, r.output).toBe(0)
    expect(r.bytes).toBeLessThan(BOUNDED)
    expect(r.output).toMatch(/importing [█░]{20} \d+\/3000 people · \d+(\.\d)?\/s · ETA [\dms.]+ · devices [0-2]\/2 · (door-\d \d+\/1500|\+[12] more)/)
    expect(r.output).toMatch(/devices 0\/2 · door-1 \d+\/1500, door-2 \d+\/1500/)
    // a device's count is shown whole or not at all
    expect(r.output).not.toMatch(/door-\d \d*\/?\d*…/)
    expect(r.output).toMatch(/importing 3000 people on 2 devices in \d+(\.\d)?s/)
    // no frame is wider than the terminal
    for (const frame of r.output.split(/\r|\n|\x1b\[\d*[GK]/)) expect(frame.replace(/\x1b\[[\d;?]*[a-zA-Z]/g, '').length).toBeLessThanOrEqual(100)
  })

  it('records pull, face enroll --dir, people copy and multi-device operations count too', async () => {
    const out = join(work.path, 'records.csv')
    const pull = await underTerminal(`exec ${doorctlCmd} records pull door-1 --output '${out}'`, 120, home.path)
    expect(pull.code, pull.output).toBe(0)
    expect(pull.output).toMatch(/pulling 2500 records in/)
    const enroll = await underTerminal(`exec ${doorctlCmd} face enroll door-1 door-2 --dir '${join(work.path, 'faces')}'`, 120, home.path)
    expect(enroll.code, enroll.output).toBe(0)
    expect(enroll.output).toMatch(/enrolling 6 faces on 2 devices in/)
    const copy = await underTerminal(`exec ${doorctlCmd} people copy door-1 door-2 --id 1 --id 2 --id 3`, 120, home.path)
    expect(copy.code, copy.output).toBe(0)
    expect(copy.output).toMatch(/copying 3 people in/)
    const reboot = await underTerminal(`exec ${doorctlCmd} device reboot door-1 door-2`, 0, home.path)
    expect(reboot.code, reboot.output).toBe(0)
    expect(reboot.output).toMatch(/rebooting 2 devices in/)
  })

  it('--json on a terminal: no progress, stdout is one JSON document', async () => {
    const doc = join(work.path, 'import.json')
    const r = await underTerminal(`exec ${doorctlCmd} people import '${csv}' door-2 --json > '${doc}'`, 100, home.path)
    expect(r.code, r.output).toBe(0)
    expect(r.output).not.toMatch(/importing|people ·/)
    const parsed = JSON.parse(readFileSync(doc, 'utf8'))
    expect(parsed).toMatchObject({ ok: true, people: PEOPLE })
  })

  it('in a pipe: no progress at all', async () => {
    const r = await doorctl(['people', 'import', csv, 'door-1'], { home: home.path })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe('')
    expect(r.stdout).not.toMatch(/importing/)
    const pull = await doorctl(['records', 'pull', 'door-1', '--output', join(work.path, 'piped.csv')], { home: home.path })
    expect(pull.code).toBe(0)
    expect(pull.stderr).not.toMatch(/pulling/)
  })
})

import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
export const BIN = join(ROOT, 'bin', 'run.js')
export const FIXTURES = join(ROOT, 'test', 'fixtures')

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  json<T = any>(): T
}

/** An unprivileged account to run doorctl as (uid and gid), for tests of permissions. */
export interface RunAs {
  uid: number
  gid: number
}

const binsFor = new Map<string, string>()

/**
 * The doorctl binary another user can run. A checkout under a folder that user cannot enter (a
 * root-owned 0700 home or mktemp folder) is hard-linked (else copied) once into a folder of its
 * own under the system's temp folder; removeStagedBins() removes it (a test file's afterAll).
 */
export function binFor(as?: RunAs): string {
  if (!as) return BIN
  const key = `${as.uid}:${as.gid}`
  const known = binsFor.get(key)
  if (known) return known
  const probe = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(join(ROOT, 'dist', 'commands'))}, 4)`], { uid: as.uid, gid: as.gid, cwd: '/', stdio: 'ignore' })
  let bin = BIN
  if (probe.status !== 0) {
    const dir = mkdtempSync(join(tmpdir(), 'doorctl-as-'))
    chmodSync(dir, 0o755)
    for (const entry of ['bin', 'dist', 'node_modules', 'package.json', 'oclif.manifest.json']) {
      if (spawnSync('cp', ['-al', join(ROOT, entry), join(dir, entry)]).status === 0) continue
      rmSync(join(dir, entry), { recursive: true, force: true })
      if (spawnSync('cp', ['-r', join(ROOT, entry), join(dir, entry)]).status !== 0) throw new Error(`cannot copy ${entry} to ${dir} for uid ${as.uid}`)
    }
    bin = join(dir, 'bin', 'run.js')
  }
  binsFor.set(key, bin)
  return bin
}

/** Removes the copies binFor() made. */
export function removeStagedBins(): void {
  for (const bin of binsFor.values()) if (bin !== BIN) rmSync(dirname(dirname(bin)), { recursive: true, force: true })
  binsFor.clear()
}

/**
 * Runs the built `doorctl` binary as a user would, with its own DOORCTL_HOME. `as` runs it as
 * another (unprivileged) user; `command` runs something else than doorctl (bash -c '… <(…)').
 */
export function doorctl(
  args: string[],
  opts: { home: string; input?: string; env?: Record<string, string>; cwd?: string; as?: RunAs; command?: string },
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const bin = binFor(opts.as)
    const child = spawn(opts.command ?? process.execPath, opts.command ? args : [bin, ...args], {
      cwd: opts.cwd ?? dirname(dirname(bin)),
      env: { ...process.env, DOORCTL_HOME: opts.home, NO_COLOR: '1', ...(opts.as ? { HOME: opts.home } : {}), ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(opts.as ?? {}),
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code, signal) =>
      resolvePromise({
        code, signal, stdout, stderr,
        json() {
          try {
            return JSON.parse(stdout)
          } catch {
            throw new Error(`stdout is not one JSON document:\n${stdout}\n--- stderr:\n${stderr}`)
          }
        },
      }),
    )
    child.stdin.end(opts.input ?? '')
  })
}

export function tempDir(prefix = 'doorctl-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) }
}

/** A port that was free a moment ago (for listeners a device must know in advance). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net')
  return new Promise((resolvePort, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolvePort(port))
    })
  })
}

/** A UDP port on 127.0.0.1 that was free a moment ago. */
export async function freeUdpPort(): Promise<number> {
  const { createSocket } = await import('node:dgram')
  const s = createSocket('udp4')
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()))
  const port = s.address().port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

/** Polls `cond` every 20 ms until true, or fails after `ms` (conditions, not sleeps). */
export async function until(cond: () => boolean | Promise<boolean>, ms = 20_000, what: string | (() => string) = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Starts a long-running doorctl command (serve, watch) and returns it with its output so far. */
export function startDoorctl(args: string[], opts: { home: string; env?: Record<string, string> }) {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, DOORCTL_HOME: opts.home, NO_COLOR: '1', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const out = { stdout: '', stderr: '' }
  child.stdout.setEncoding('utf8').on('data', (d) => (out.stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d) => (out.stderr += d))
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
  return { child, out, exited }
}

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
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

/**
 * Runs the built `doorctl` binary as a user would, with its own DOORCTL_HOME. `as` runs it as
 * another (unprivileged) user; `command` runs something else than doorctl (bash -c '… <(…)').
 */
export function doorctl(
  args: string[],
  opts: { home: string; input?: string; env?: Record<string, string>; cwd?: string; as?: RunAs; command?: string },
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(opts.command ?? process.execPath, opts.command ? args : [BIN, ...args], {
      cwd: opts.cwd ?? ROOT,
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

/** Polls `cond` every 20 ms until true, or fails after `ms` (conditions, not sleeps). */
export async function until(cond: () => boolean | Promise<boolean>, ms = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
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

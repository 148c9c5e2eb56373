/**
 * A throw-away PostgreSQL cluster for tests: Debian's postgresql (`initdb` + `pg_ctl`) in a
 * temp dir, on a random loopback port, without fsync. PostgreSQL refuses to run as root, so
 * under root (here and in CI) the cluster is owned and run by the `postgres` user.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { freePort } from './helpers.js'

/** Debian's server binaries (postgresql 15 on bookworm; the newest installed major version wins). */
export const PG_BIN = process.env.DOORCTL_TEST_PG_BIN ?? debianPgBin()

function debianPgBin(): string {
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb'))) : []
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0] ?? '15'
  return join(root, newest, 'bin')
}

/** Why the PostgreSQL tests cannot run on this machine, or undefined when they can. */
export function pgMissing(): string | undefined {
  for (const tool of ['initdb', 'pg_ctl', 'postgres']) {
    if (!existsSync(join(PG_BIN, tool))) return `${join(PG_BIN, tool)} is not installed (Debian's postgresql package; .ci/run installs it)`
  }
  return undefined
}

export interface TestPostgres {
  /** `postgres://doorctl:PASSWORD@127.0.0.1:PORT/doorctl`, optionally with a schema of its own. */
  url(schema?: string): string
  readonly host: string
  readonly port: number
  readonly password: string
  /** Stops the server (fast shutdown) and keeps the data: `start()` brings it back on the same port. */
  stop(): void
  start(): void
  /** Stops the server and removes every file. */
  destroy(): void
}

export async function startPostgres(): Promise<TestPostgres> {
  const missing = pgMissing()
  if (missing) throw new Error(missing)
  const root = mkdtempSync(join(tmpdir(), 'doorctl-pg-'))
  const data = join(root, 'data')
  const password = randomBytes(12).toString('hex')
  const asRoot = process.getuid?.() === 0
  let uid: number | undefined
  let gid: number | undefined
  if (asRoot) {
    uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
    gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim())
    chownSync(root, uid, gid)
  }
  chmodSync(root, 0o700)
  const pwfile = join(root, 'pwfile')
  writeFileSync(pwfile, password + '\n', { mode: 0o600 })
  if (asRoot) chownSync(pwfile, uid!, gid!)
  const run = (tool: string, args: string[]) => {
    const cmd = asRoot ? 'runuser' : join(PG_BIN, tool)
    const argv = asRoot ? ['-u', 'postgres', '--', join(PG_BIN, tool), ...args] : args
    const r = spawnSync(cmd, argv, { encoding: 'utf8', cwd: root, timeout: 60_000 })
    if (r.status !== 0) throw new Error(`${tool} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`)
  }
  run('initdb', ['-D', data, '--no-sync', '-U', 'doorctl', `--pwfile=${pwfile}`, '--auth-host=scram-sha-256', '--auth-local=peer', '-E', 'UTF8', '--locale=C'])
  let port = 0
  const start = () => {
    run('pg_ctl', [
      '-D', data, '-l', join(root, 'log'), '-w', '-t', '60',
      '-o', `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`,
      'start',
    ])
  }
  for (let attempt = 0; ; attempt++) {
    port = await freePort()
    try {
      start()
      break
    } catch (err) {
      if (attempt >= 3) {
        rmSync(root, { recursive: true, force: true })
        throw err
      }
    }
  }
  const stop = () => {
    if (existsSync(join(data, 'postmaster.pid'))) run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop'])
  }
  return {
    host: '127.0.0.1',
    port,
    password,
    url: (schema) => `postgres://doorctl:${password}@127.0.0.1:${port}/postgres${schema ? `?schema=${schema}` : ''}`,
    stop,
    start,
    destroy() {
      try {
        if (existsSync(join(data, 'postmaster.pid'))) run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop'])
      } finally {
        rmSync(root, { recursive: true, force: true })
      }
    },
  }
}

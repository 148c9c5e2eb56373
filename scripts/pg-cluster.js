// A throw-away PostgreSQL cluster (used by the tests through test/pg.ts, and by bench/store.js):
// Debian's postgresql (`initdb` + `pg_ctl`) in a temp dir, on a random loopback port. PostgreSQL
// refuses to run as root, so under root (here and in CI) the cluster is owned and run by the
// `postgres` user. `durable: false` (tests) turns fsync off; benchmarks keep PostgreSQL's defaults.
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Debian's server binaries (postgresql 15 on bookworm; the newest installed major version wins). */
export const PG_BIN = process.env.DOORCTL_TEST_PG_BIN ?? debianPgBin()

function debianPgBin() {
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb'))) : []
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0] ?? '15'
  return join(root, newest, 'bin')
}

/** Why a cluster cannot be started on this machine, or undefined when it can. */
export function pgMissing() {
  for (const tool of ['initdb', 'pg_ctl', 'postgres']) {
    if (!existsSync(join(PG_BIN, tool))) return `${join(PG_BIN, tool)} is not installed (Debian's postgresql package; .ci/run installs it)`
  }
  return undefined
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/**
 * Starts a cluster; user `doorctl` (superuser) with a random password, database `postgres`.
 * @param {{ durable?: boolean }} [opts]
 */
export async function startPostgres(opts = {}) {
  const missing = pgMissing()
  if (missing) throw new Error(missing)
  const root = mkdtempSync(join(tmpdir(), 'doorctl-pg-'))
  const data = join(root, 'data')
  const password = randomBytes(12).toString('hex')
  const asRoot = process.getuid?.() === 0
  const owner = asRoot ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) } : undefined
  if (owner) chownSync(root, owner.uid, owner.gid)
  chmodSync(root, 0o700)
  const pwfile = join(root, 'pwfile')
  writeFileSync(pwfile, password + '\n', { mode: 0o600 })
  if (owner) chownSync(pwfile, owner.uid, owner.gid)
  const run = (tool, args) => {
    const r = asRoot
      ? spawnSync('runuser', ['-u', 'postgres', '--', join(PG_BIN, tool), ...args], { encoding: 'utf8', cwd: root, timeout: 60_000 })
      : spawnSync(join(PG_BIN, tool), args, { encoding: 'utf8', cwd: root, timeout: 60_000 })
    if (r.status !== 0) throw new Error(`${tool} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`)
  }
  run('initdb', ['-D', data, ...(opts.durable ? [] : ['--no-sync']), '-U', 'doorctl', `--pwfile=${pwfile}`, '--auth-host=scram-sha-256', '--auth-local=peer', '-E', 'UTF8', '--locale=C'])
  const fast = opts.durable ? '' : ' -c fsync=off -c synchronous_commit=off -c full_page_writes=off'
  let port = 0
  const start = () => run('pg_ctl', ['-D', data, '-l', join(root, 'log'), '-w', '-t', '60', '-o',
    `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200${fast}`, 'start'])
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
  const running = () => existsSync(join(data, 'postmaster.pid'))
  return {
    host: '127.0.0.1',
    port,
    password,
    /** @param {string} [schema] */
    url: (schema) => `postgres://doorctl:${password}@127.0.0.1:${port}/postgres${schema ? `?schema=${schema}` : ''}`,
    /** Stops the server (fast shutdown), keeping its data: start() brings it back on the same port. */
    stop() { if (running()) run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']) },
    start,
    /** Stops the server and removes every file. */
    destroy() {
      try {
        if (running()) run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop'])
      } finally {
        rmSync(root, { recursive: true, force: true })
      }
    },
  }
}

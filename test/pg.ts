/**
 * The throw-away PostgreSQL of the tests (scripts/pg-cluster.js, shared with the benchmarks):
 * started once per test file that needs it, on a random loopback port, without fsync.
 */
// @ts-ignore -- plain JavaScript, typed here
import * as cluster from '../scripts/pg-cluster.js'

export interface TestPostgres {
  /** `postgres://doorctl:PASSWORD@127.0.0.1:PORT/postgres`, optionally with a schema of its own. */
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

/** Why the PostgreSQL tests cannot run on this machine, or undefined when they can. */
export const pgMissing: () => string | undefined = cluster.pgMissing

export const startPostgres: () => Promise<TestPostgres> = () => cluster.startPostgres({ durable: false })

import { UsageError } from '../types/errors.js'
import type { Logger } from '../types/driver.js'
import type { Store } from './interface.js'
import { PostgresStore } from './postgres-store.js'
import { SqliteStore } from './sqlite-store.js'

export interface OpenStoreOptions {
  /** --store / DOORCTL_STORE / `config set store`: absent = SQLite in `home`; postgres://… = PostgreSQL. */
  url?: string
  /** DOORCTL_HOME. */
  home: string
  log?: Logger
  /** How often waitFinal checks by itself (ms). */
  pollMs?: number
  connectTimeoutMs?: number
  poolSize?: number
}

/** Opens (creating or migrating) the store a URL names. A wrong or unreachable one is a UsageError (exit 2). */
export async function openStore(o: OpenStoreOptions): Promise<Store> {
  const url = o.url?.trim()
  if (!url) return new SqliteStore(o.home, { pollMs: o.pollMs })
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase()
  if (scheme === 'postgres' || scheme === 'postgresql') {
    return PostgresStore.open({ url, log: o.log, pollMs: o.pollMs, connectTimeoutMs: o.connectTimeoutMs, poolSize: o.poolSize })
  }
  // the rest of the text may hold a password: name only the scheme
  throw new UsageError(scheme ? `unknown kind of store "${scheme}:"` : 'the store URL is not a URL', 'pass postgres://USER@HOST:PORT/DATABASE, or nothing for the embedded store in DOORCTL_HOME')
}

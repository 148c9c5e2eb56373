import { existsSync, readFileSync, statSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomicSync } from '../util/atomic-file.js'

export interface CursorEntry {
  protocol: string
  cursor: unknown
  updated_at: string
  exported_total: number
}

type Cursors = Record<string, CursorEntry>

/** What a pull intends to commit once its output file is in place. */
interface PendingCommit {
  temp: string
  output: string
  size: number
  cursors: Cursors
}

/**
 * `records pull --since last` state. Exactly-once across kills works in three durable steps:
 * 1. write the pending commit (the output's temp path and size, and the new cursors),
 * 2. rename temp → output, 3. write the cursors and drop the pending commit.
 * On start, a pending commit whose temp file is gone and whose output has the recorded size
 * was renamed: its cursors are committed. Otherwise the rename never happened: dropped.
 */
export class CursorStore {
  readonly path: string
  readonly pendingPath: string

  constructor(home: string) {
    this.path = join(home, 'record-cursors.json')
    this.pendingPath = join(home, 'record-cursors.pending.json')
  }

  read(): Cursors {
    if (!existsSync(this.path)) return {}
    return JSON.parse(readFileSync(this.path, 'utf8')) as Cursors
  }

  get(device: string): CursorEntry | undefined {
    return this.read()[device]
  }

  /** Finishes or drops a commit interrupted by a kill. Returns what happened, for the log. */
  recover(): 'none' | 'committed' | 'dropped' {
    if (!existsSync(this.pendingPath)) return 'none'
    let pending: PendingCommit
    try {
      pending = JSON.parse(readFileSync(this.pendingPath, 'utf8')) as PendingCommit
    } catch {
      unlinkSync(this.pendingPath) // torn before its own rename: cannot be, but never block pulls on it
      return 'dropped'
    }
    const renamed = !existsSync(pending.temp) && existsSync(pending.output) && statSync(pending.output).size === pending.size
    if (renamed) this.merge(pending.cursors)
    else if (existsSync(pending.temp)) unlinkSync(pending.temp)
    unlinkSync(this.pendingPath)
    return renamed ? 'committed' : 'dropped'
  }

  /** Step 1 of a file commit. */
  prepare(temp: string, output: string, size: number, cursors: Cursors): void {
    writeFileAtomicSync(this.pendingPath, JSON.stringify({ temp, output, size, cursors } satisfies PendingCommit))
  }

  /** Step 3 of a file commit (also the whole commit when records went to stdout). */
  commit(cursors: Cursors): void {
    this.merge(cursors)
    if (existsSync(this.pendingPath)) unlinkSync(this.pendingPath)
  }

  private merge(cursors: Cursors): void {
    if (Object.keys(cursors).length === 0) return
    writeFileAtomicSync(this.path, JSON.stringify({ ...this.read(), ...cursors }, null, 2))
  }
}

import { FINAL_STATES, type QueuedCommand } from '../types/gateway.js'

interface Waiter {
  ids: readonly number[]
  /** Distinct ids. */
  need: number
  done: Map<number, QueuedCommand>
  resolve(commands: QueuedCommand[]): void
  reject(err: unknown): void
}

/**
 * Everyone waiting for commands to become final, checked together: one query for all waited
 * ids when a `final` event names some of them, and every `pollMs` while anyone waits (changes made
 * by another process on SQLite, or a notification missed while PostgreSQL reconnected).
 */
export class FinalWaiters {
  private readonly waiters = new Set<Waiter>()
  private readonly byId = new Map<number, Set<Waiter>>()
  private timer?: NodeJS.Timeout
  private checking?: Promise<void>
  private again = false

  constructor(private readonly fetch: (ids: readonly number[]) => Promise<QueuedCommand[]>, private readonly pollMs: number) {}

  wait(ids: readonly number[], signal?: AbortSignal): Promise<QueuedCommand[]> {
    if (signal?.aborted) return Promise.reject(signal.reason)
    if (ids.length === 0) return Promise.resolve([])
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.remove(w)
        reject(signal!.reason)
      }
      const w: Waiter = {
        ids,
        need: new Set(ids).size,
        done: new Map(),
        resolve: (c) => { signal?.removeEventListener('abort', onAbort); resolve(c) },
        reject: (e) => { signal?.removeEventListener('abort', onAbort); reject(e) },
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.waiters.add(w)
      for (const id of ids) {
        let set = this.byId.get(id)
        if (!set) this.byId.set(id, (set = new Set()))
        set.add(w)
      }
      // kept referenced: a command line waiting for a device must not exit while it waits
      this.timer ??= setInterval(() => void this.check(), this.pollMs)
      void this.check()
    })
  }

  /** Some commands became final: check those that anyone waits for. */
  notify(ids: readonly number[]): void {
    if (ids.some((id) => this.byId.has(id))) void this.check()
  }

  /** Fails every waiter (the store is closing). */
  rejectAll(err: Error): void {
    for (const w of [...this.waiters]) {
      this.remove(w)
      w.reject(err)
    }
  }

  private check(): Promise<void> {
    if (this.checking) {
      this.again = true
      return this.checking
    }
    this.checking = (async () => {
      do {
        this.again = false
        const ids = [...this.byId.keys()]
        if (ids.length === 0) break
        let commands: QueuedCommand[]
        try {
          commands = await this.fetch(ids)
        } catch {
          break // the store is unreachable for now: the next poll tries again
        }
        const found = new Set(commands.map((c) => c.id))
        for (const id of ids) {
          if (found.has(id)) continue
          for (const w of this.byId.get(id) ?? []) {
            this.remove(w)
            w.reject(new Error(`no command ${id}`))
          }
        }
        for (const c of commands) {
          if (!FINAL_STATES.has(c.state)) continue
          for (const w of this.byId.get(c.id) ?? []) {
            w.done.set(c.id, c)
            if (w.done.size === w.need) {
              this.remove(w)
              w.resolve(w.ids.map((id) => w.done.get(id)!))
            }
          }
        }
      } while (this.again)
    })().finally(() => { this.checking = undefined })
    return this.checking
  }

  private remove(w: Waiter): void {
    this.waiters.delete(w)
    for (const id of w.ids) {
      const set = this.byId.get(id)
      set?.delete(w)
      if (set?.size === 0) this.byId.delete(id)
    }
    if (this.waiters.size === 0 && this.timer) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }
}

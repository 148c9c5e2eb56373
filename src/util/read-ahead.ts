/**
 * Paged reads that keep the next pages in flight while the caller works on the current one, so a
 * device's latency is hidden instead of added once per page. Bounded: at most `depth` requests
 * are out at a time, so memory stays flat however many pages there are.
 */

/** One request started ahead of its turn. */
export interface Ahead<K, T> {
  key: K
  /** Its place among every request this ReadAhead started (0, 1, 2, …). */
  seq: number
  /** Settles with the answer; a rejection is only seen by whoever awaits it. */
  result: Promise<T>
}

interface Pending<K, T> extends Ahead<K, T> {
  cancel: AbortController
}

/**
 * A queue of at most `depth` requests, taken in the order they were started. Each request gets a
 * signal of its own that follows `signal`, so one dropped from the queue is cancelled, and a
 * rejected one left in the queue never surfaces as an unhandled rejection.
 */
export class ReadAhead<K, T> {
  private readonly queue: Pending<K, T>[] = []
  private started = 0

  constructor(
    private readonly fetch: (key: K, signal: AbortSignal) => Promise<T>,
    readonly depth: number,
    private readonly signal: AbortSignal,
  ) {}

  /** True when no more requests may be started until one is taken. */
  get full(): boolean {
    return this.queue.length >= this.depth
  }

  /** How many requests were started so far (the `seq` the next one gets). */
  get count(): number {
    return this.started
  }

  /** The key of the request started last that is still queued. */
  get lastKey(): K | undefined {
    return this.queue[this.queue.length - 1]?.key
  }

  /** Starts the request for `key`, to be taken after those already queued. */
  push(key: K): void {
    const cancel = new AbortController()
    const follow = (): void => cancel.abort(this.signal.reason)
    if (this.signal.aborted) follow()
    else this.signal.addEventListener('abort', follow, { once: true })
    const result = this.fetch(key, cancel.signal)
    const done = (): void => this.signal.removeEventListener('abort', follow)
    result.then(done, done)
    this.queue.push({ key, seq: this.started++, result, cancel })
  }

  /** The oldest queued request, taken out of the queue; undefined when none is queued. */
  take(): Ahead<K, T> | undefined {
    return this.queue.shift()
  }

  /** Cancels and forgets every queued request. */
  clear(): void {
    for (const p of this.queue.splice(0)) p.cancel.abort()
  }
}

export interface PagedRead<T> {
  /** Reads page `n` (1 is the first). */
  fetch(n: number, signal: AbortSignal): Promise<T>
  /**
   * Called for each page in order, before it is handed out: the number of the last page there is
   * as far as this page tells, or any number ≤ n when page n is the last.
   */
  lastPage(page: T, n: number): number
  /** Requests in flight at most (1 = one page at a time). */
  depth: number
  signal: AbortSignal
}

/** Pages 1, 2, 3, … in order, the next ones requested while the caller works on the current one. */
export async function* readPages<T>(read: PagedRead<T>): AsyncGenerator<T> {
  const ahead = new ReadAhead<number, T>((n, signal) => read.fetch(n, signal), Math.max(1, read.depth), read.signal)
  let next = 1
  let last = 1
  try {
    for (let n = 1; ; n++) {
      while (next <= last && !ahead.full) ahead.push(next++)
      const page = await ahead.take()!.result
      const lastSaid = read.lastPage(page, n)
      if (lastSaid <= n) {
        ahead.clear()
        yield page
        return
      }
      last = Math.max(last, lastSaid)
      while (next <= last && !ahead.full) ahead.push(next++)
      yield page
    }
  } finally {
    ahead.clear()
  }
}

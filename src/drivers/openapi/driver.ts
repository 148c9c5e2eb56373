/**
 * openapi driver (document sections 4–8, direct mode): the device is the HTTP server, doorctl the
 * client. Layering: transport.ts (signed HTTP) → codec.ts (pure mappings) → this file.
 */
import { readFile } from 'node:fs/promises'
import { UnsupportedError, UsageError } from '../../types/errors.js'
import type {
  AccessRecord,
  DeviceDriver,
  DeviceEntry,
  FaceSource,
  OpenMode,
  OperationContext,
  OpResult,
  Person,
  PersonInfo,
  PersonOutcome,
  PullQuery,
  RecordPull,
} from '../../types/driver.js'
import {
  CONFIG_FIELDS,
  documentedUserFields,
  mergeConfig,
  parsePage,
  personToUserObject,
  signTimeSeconds,
  signToRecord,
  userObjectToPersonInfo,
  type ConfigSection,
  type Page,
  type SignObject,
} from './codec.js'
import { isAuthCode } from './errors.js'
import type { LiveTimings } from './live.js'
import { abortError, OpenapiTransport } from './transport.js'

export const DEFAULT_PORT = 8899
export const DEFAULT_WS_PORT = 9000
export const DEFAULT_PASSWORD = '123456'
/** 8.2.5: at most 10 people a page. */
const USER_PAGE_SIZE = 10
/** 8.3.2: at most 1000 records a page. */
const RECORD_PAGE_SIZE = 1000

const SECTIONS: readonly ConfigSection[] = ['network', 'smartface', 'perpara']

/** Add refusals that cannot mean "the id exists", so no update is tried (AMBIGUITIES openapi #9). */
const NOT_EXISTS_CODES = new Set([30002, 30004, 50009, 40001])

export interface OpenapiDriverOptions {
  /** Requests in flight per device for people import/delete (default 4). */
  inflight?: number
  /** Live-record timings (default: env DOORCTL_OPENAPI_*_MS, else the document's 10 s / 33 s). */
  live?: Partial<LiveTimings>
  /** Record page size (default and maximum 1000, 8.3.2). */
  recordPageSize?: number
}

/** The `--since last` cursor: the newest second exported and the record ids exported at exactly that second. */
export interface OpenapiCursor {
  time: number
  ids: string[]
}

function parseCursor(after: unknown): OpenapiCursor | undefined {
  if (after === undefined || after === null) return undefined
  const c = after as Partial<OpenapiCursor>
  if (typeof c === 'object' && Number.isFinite(c.time) && Array.isArray(c.ids)) {
    return { time: Number(c.time), ids: c.ids.map(String) }
  }
  throw new UsageError(
    'the stored position of the last pull of this device is not an openapi cursor',
    'pull with --since TIME once to start again from a known time',
  )
}

function deviceCodeOf(err: unknown): number | undefined {
  const c = (err as { deviceCode?: unknown })?.deviceCode
  const n = Number(c)
  return c !== undefined && Number.isInteger(n) ? n : undefined
}

/** An error that ends the whole operation on this device, not just one person's part. */
function isDeviceWide(err: unknown): boolean {
  const code = deviceCodeOf(err)
  return code === undefined || isAuthCode(code) || err instanceof UnsupportedError
}

function failed(p: { id: string; name?: string }, err: unknown): PersonOutcome {
  const o: PersonOutcome = { id: p.id, status: 'failed', message: err instanceof Error ? err.message : String(err) }
  if (p.name !== undefined) o.name = p.name
  const code = deviceCodeOf(err)
  if (code !== undefined) o.deviceCode = code
  return o
}

function photoReadError(path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code
  return `cannot read photo ${path}: ${code === 'ENOENT' ? 'no such file' : code ?? String(err)}`
}

/**
 * Run `fn` over `items` with at most `limit` in flight, yielding results as they finish.
 * A thrown error stops new work; the ones in flight are awaited (their results yielded), then it is rethrown.
 */
async function* concurrently<T, R>(
  items: Iterable<T>,
  limit: number,
  signal: AbortSignal,
  fn: (item: T) => Promise<R>,
): AsyncGenerator<R> {
  type Done = { key: number; ok: true; value: R } | { key: number; ok: false; error: unknown }
  const it = items[Symbol.iterator]()
  const running = new Map<number, Promise<Done>>()
  let next = 0
  let error: { e: unknown } | undefined
  const launch = (): void => {
    while (running.size < limit && !error && !signal.aborted) {
      const n = it.next()
      if (n.done) return
      const key = next++
      running.set(
        key,
        fn(n.value).then(
          (value): Done => ({ key, ok: true, value }),
          (e: unknown): Done => ({ key, ok: false, error: e }),
        ),
      )
    }
  }
  launch()
  while (running.size > 0) {
    const done = await Promise.race(running.values())
    running.delete(done.key)
    if (done.ok) yield done.value
    else error ??= { e: done.error }
    launch()
  }
  if (error) throw signal.aborted ? abortError(signal) : error.e
  if (signal.aborted) throw abortError(signal)
}

/**
 * One item at a time out of an iterator of arrays, without an async generator's per-item cost
 * (a pull hands out a million records). `take` sees each item as it is handed out.
 */
function flatten<T>(pages: AsyncIterator<T[]>, take: (item: T) => void): AsyncIterableIterator<T> {
  let buf: T[] = []
  let i = 0
  const it: AsyncIterableIterator<T> = {
    [Symbol.asyncIterator]: () => it,
    next(): Promise<IteratorResult<T>> {
      if (i < buf.length) {
        const value = buf[i]!
        buf[i++] = undefined as T
        take(value)
        return Promise.resolve({ value, done: false })
      }
      return pages.next().then((r) => {
        if (r.done) return { value: undefined, done: true }
        buf = r.value
        i = 0
        return it.next()
      })
    },
    async return(): Promise<IteratorResult<T>> {
      buf = []
      await pages.return?.(undefined)
      return { value: undefined, done: true }
    },
  }
  return it
}

export class OpenapiDriver implements DeviceDriver {
  readonly protocol = 'openapi' as const
  private readonly device: DeviceEntry
  private readonly transport?: OpenapiTransport
  private readonly inflight: number
  private readonly recordPageSize: number
  private readonly liveTimings: Partial<LiveTimings>

  constructor(device: DeviceEntry, opts: OpenapiDriverOptions = {}) {
    this.device = device
    this.inflight = Math.max(1, Math.floor(opts.inflight ?? 4))
    this.recordPageSize = Math.min(RECORD_PAGE_SIZE, Math.max(1, Math.floor(opts.recordPageSize ?? RECORD_PAGE_SIZE)))
    this.liveTimings = opts.live ?? {}
    if (device.host) {
      this.transport = new OpenapiTransport({
        host: device.host,
        port: device.port ?? DEFAULT_PORT,
        password: device.password ?? DEFAULT_PASSWORD,
        name: device.name,
        // +1: a record pull prefetches one page beside the one being read
        connections: this.inflight + 1,
      })
    }
  }

  private get tx(): OpenapiTransport {
    if (!this.transport) throw this.noHost()
    return this.transport
  }

  private noHost(): UnsupportedError {
    return new UnsupportedError(
      `device ${this.device.name} has no host: direct openapi operations need one (platform mode only talks through \`doorctl serve\`)`,
      `run \`doorctl device add ${this.device.name} --protocol openapi --host HOST\` to add its address`,
    )
  }

  // ---- device ------------------------------------------------------------------------------

  async open(mode: OpenMode, ctx: OperationContext): Promise<OpResult> {
    if (mode !== 'pulse') {
      throw new UnsupportedError(
        `openapi devices only have a momentary open (pulse); --mode ${mode} is not possible`,
        'use --mode pulse, or set the lock behaviour (perpara unlockControl) with `doorctl device config set`',
      )
    }
    await this.tx.call('POST', '/api/device/open', ctx, { query: { remark: 'doorctl' } })
    return { message: 'door opened (momentary)' }
  }

  async reboot(ctx: OperationContext): Promise<OpResult> {
    // AMBIGUITIES openapi #1: 8.1.9's text says "open door"; the path is what counts
    await this.tx.call('POST', '/api/device/reboot', ctx)
    return { message: 'rebooting' }
  }

  async syncTime(time: Date, ctx: OperationContext): Promise<OpResult> {
    // openapi 8.1.8 / AMBIGUITIES openapi #2: the signed timestamp is the time to set
    await this.tx.call('POST', '/api/device/syncTime', ctx, { timestamp: time.getTime() })
    return { message: `time set to ${time.toISOString()}`, data: { time: time.toISOString() } }
  }

  async info(ctx: OperationContext): Promise<Record<string, unknown>> {
    const parts = [
      ['device', '/api/device/information'],
      ['network', '/api/device/network'],
      ['smartface', '/api/device/smartface'],
      ['perpara', '/api/device/perpara'],
    ] as const
    const settled = await Promise.allSettled(parts.map(([, path]) => this.tx.call('POST', path, ctx)))
    const out: Record<string, unknown> = {}
    const notes: string[] = []
    // A device-wide failure (auth, network) wins over per-section "not supported".
    const hard = settled.find((s) => s.status === 'rejected' && !(s.reason instanceof UnsupportedError))
    if (hard) throw (hard as PromiseRejectedResult).reason
    settled.forEach((s, i) => {
      const [name, path] = parts[i]!
      if (s.status === 'rejected') {
        notes.push(`${name}: the device does not support ${path} (40001)`)
        return
      }
      const data = s.value.data && typeof s.value.data === 'object' ? { ...(s.value.data as Record<string, unknown>) } : {}
      // AMBIGUITIES openapi #13: DeviceObject spells the model `deviceMoel`
      if (name === 'device' && data.deviceModel === undefined && data.deviceMoel !== undefined) data.deviceModel = data.deviceMoel
      out[name] = data
    })
    if (notes.length === parts.length) {
      throw (settled[0] as PromiseRejectedResult).reason
    }
    if (notes.length) out.notes = notes
    return out
  }

  configSections(): string[] {
    return [...SECTIONS]
  }

  private section(section: string): ConfigSection {
    if ((SECTIONS as readonly string[]).includes(section)) return section as ConfigSection
    throw new UsageError(
      `openapi devices have no configuration section "${section}"`,
      `sections: ${SECTIONS.join(', ')} (and json, to send a raw /api/device/jsonCmd with config set)`,
    )
  }

  async getConfig(section: string, ctx: OperationContext): Promise<Record<string, unknown>> {
    const s = this.section(section)
    const env = await this.tx.call('POST', `/api/device/${s}`, ctx)
    return env.data && typeof env.data === 'object' ? (env.data as Record<string, unknown>) : {}
  }

  async setConfig(section: string, values: Record<string, unknown>, ctx: OperationContext): Promise<OpResult> {
    if (section === 'json') return this.jsonCmd(values, ctx)
    const s = this.section(section)
    if (Object.keys(values).length === 0) {
      throw new UsageError(`nothing to set in ${s}`, `give KEY=VALUE pairs; keys: ${Object.keys(CONFIG_FIELDS[s]).join(', ')}`)
    }
    // The *cfg endpoints take the whole object: read it, change the given keys, send it back.
    const current = await this.getConfig(s, ctx)
    const merged = mergeConfig(s, current, values)
    // AMBIGUITIES openapi #3: the *cfg endpoints carry the object as JSON in the body
    await this.tx.call('POST', `/api/device/${s}cfg`, ctx, { body: merged })
    const changed = Object.keys(merged).filter((k) => merged[k] !== current[k])
    return {
      message: changed.length ? `${s}: set ${changed.map((k) => `${k}=${String(merged[k])}`).join(', ')}` : `${s}: no change`,
      data: { [s]: merged },
    }
  }

  /** POST /api/device/jsonCmd (8.1.10): `obj` is sent as the JSON body; the answer's `json` is returned. */
  async jsonCmd(obj: Record<string, unknown>, ctx: OperationContext): Promise<OpResult> {
    const env = await this.tx.call('POST', '/api/device/jsonCmd', ctx, { body: obj })
    return { message: 'json command accepted', data: { json: env.raw.json ?? env.data ?? null } }
  }

  // ---- people ------------------------------------------------------------------------------

  upsertPeople(people: readonly Person[], ctx: OperationContext): AsyncIterable<PersonOutcome> {
    return concurrently(people, this.inflight, ctx.signal, (p) => this.upsertOne(p, ctx))
  }

  private async upsertOne(p: Person, ctx: OperationContext): Promise<PersonOutcome> {
    const who = { id: p.id, name: p.name }
    let photo: Buffer | undefined
    if (p.photoPath) {
      // Read only now: 5,000 photos do not fit in memory at once.
      try {
        photo = await readFile(p.photoPath)
      } catch (err) {
        return failed(who, new Error(photoReadError(p.photoPath, err)))
      }
    }
    const { user, notes } = personToUserObject(p, photo)
    const ok = (action: string): PersonOutcome => ({
      ...who,
      status: 'ok',
      action,
      message: action + (notes.length ? ` (${notes.join('; ')})` : ''),
    })
    try {
      await this.tx.call('POST', '/api/user', ctx, { body: user })
      return ok('added')
    } catch (addErr) {
      if (isDeviceWide(addErr)) throw addErr
      if (NOT_EXISTS_CODES.has(deviceCodeOf(addErr)!)) return failed(who, addErr)
      // AMBIGUITIES openapi #9: adding an existing id is undocumented; any other refusal may mean "exists"
      try {
        await this.tx.call('POST', `/api/user/update/${encodeURIComponent(p.id)}`, ctx, { body: user })
        return ok('updated')
      } catch (updErr) {
        const code = deviceCodeOf(updErr)
        if (code !== 40001 && isDeviceWide(updErr)) throw updErr
        // 20001 (no such user) or no update at all: the add's own refusal is the real reason
        return failed(who, code === 20001 || code === 40001 ? addErr : updErr)
      }
    }
  }

  deletePeople(ids: readonly string[] | 'all', ctx: OperationContext): AsyncIterable<PersonOutcome> {
    if (ids === 'all') return this.deleteAll(ctx)
    return concurrently(ids, this.inflight, ctx.signal, (id) => this.deleteOne(id, ctx))
  }

  private async *deleteAll(ctx: OperationContext): AsyncGenerator<PersonOutcome> {
    // openapi 8.2.4: the id `all` clears every person
    await this.tx.call('GET', '/api/user/delete/all', ctx, { query: { id: 'all' } })
    yield { id: 'all', status: 'ok', action: 'deleted', message: 'every person deleted' }
  }

  private async deleteOne(id: string, ctx: OperationContext): Promise<PersonOutcome> {
    if (id.toLowerCase() === 'all') {
      return { id, status: 'failed', message: 'refused: to an openapi device the id "all" means every person (8.2.4); use --everyone' }
    }
    try {
      // openapi 8.2.4 / AMBIGUITIES openapi #6: the id goes in the path; also sent as `id` for the table's reading
      await this.tx.call('GET', `/api/user/delete/${encodeURIComponent(id)}`, ctx, { query: { id } })
      return { id, status: 'ok', action: 'deleted', message: 'deleted' }
    } catch (err) {
      if (isDeviceWide(err)) throw err
      // Deleting someone who is not there leaves the device as asked: skipped, not failed.
      if (deviceCodeOf(err) === 20001) return { id, status: 'skipped', message: 'not on the device', deviceCode: 20001 }
      return failed({ id }, err)
    }
  }

  async *listPeople(ctx: OperationContext): AsyncGenerator<PersonInfo> {
    let read = 0
    for (let page = 1; ; page++) {
      const env = await this.tx.call('GET', '/api/user/list', ctx, {
        query: { page, size: USER_PAGE_SIZE },
        // 50008 "Search List Null": an empty device
        accept: [50008],
      })
      if (env.code !== 200) return
      const p = parsePage<Record<string, unknown>>(env.data)
      for (const u of p.items) yield userObjectToPersonInfo(u)
      read += p.items.length
      if (p.items.length === 0 || read >= p.total || (p.totalPage > 0 && page >= p.totalPage)) return
    }
  }

  async enrollFace(id: string, source: FaceSource, ctx: OperationContext): Promise<PersonOutcome> {
    if (source.capture) {
      throw new UnsupportedError(
        'openapi devices cannot be told to capture a face themselves',
        'enroll from a photo: doorctl face enroll DEVICE --id ID --photo FILE.jpg',
      )
    }
    if (!source.photoPath) throw new UsageError('face enroll needs a photo', 'pass --photo FILE.jpg')
    const existing = await this.findUser(id, ctx)
    if (!existing) {
      return { id, status: 'failed', message: 'no such person on the device; import them first', deviceCode: 20001 }
    }
    let photo: Buffer
    try {
      photo = await readFile(source.photoPath)
    } catch (err) {
      return { id, status: 'failed', message: photoReadError(source.photoPath, err) }
    }
    const user = documentedUserFields(existing)
    user.photo = photo.toString('base64')
    const name = typeof existing.name === 'string' ? existing.name : undefined
    try {
      await this.tx.call('POST', `/api/user/update/${encodeURIComponent(id)}`, ctx, { body: user })
      return { id, ...(name === undefined ? {} : { name }), status: 'ok', action: 'enrolled', message: 'face enrolled' }
    } catch (err) {
      if (isDeviceWide(err)) throw err
      const code = deviceCodeOf(err)
      if (code === 30002) return { id, status: 'failed', message: 'no face detected in the photo', deviceCode: 30002 }
      if (code === 20001) {
        return { id, status: 'failed', message: 'no such person on the device; import them first', deviceCode: 20001 }
      }
      return failed({ id, name }, err)
    }
  }

  /** The user with exactly this id, or undefined (the list's userId filter may be a search, so the match is checked). */
  private async findUser(id: string, ctx: OperationContext): Promise<Record<string, unknown> | undefined> {
    for (let page = 1; page <= 100; page++) {
      const env = await this.tx.call('GET', '/api/user/list', ctx, {
        query: { userId: id, page, size: USER_PAGE_SIZE },
        accept: [50008, 20001],
      })
      if (env.code !== 200) return undefined
      const p = parsePage<Record<string, unknown>>(env.data)
      const hit = p.items.find((u) => String(u.userId) === id)
      if (hit) return hit
      if (p.items.length === 0 || page * USER_PAGE_SIZE >= p.total) return undefined
    }
    return undefined
  }

  // ---- records -----------------------------------------------------------------------------

  pullRecords(query: PullQuery, ctx: OperationContext): RecordPull {
    const after = parseCursor(query.after)
    let maxTime = after?.time ?? -1
    let idsAtMax = new Set(after?.ids ?? [])
    let exported = false
    // The cursor moves as records are handed out, so a consumer that stops early gets a cursor
    // covering exactly what it took.
    const take = (rec: AccessRecord): void => {
      exported = true
      const t = rec.time.getTime() / 1000
      if (t > maxTime) {
        maxTime = t
        idsAtMax = new Set([rec.recordId])
      } else if (t === maxTime) idsAtMax.add(rec.recordId)
    }
    return {
      records: { [Symbol.asyncIterator]: () => flatten(this.walkRecords(query, after, ctx), take) },
      cursor(): OpenapiCursor {
        if (!exported) return after ?? { time: 0, ids: [] }
        return { time: maxTime, ids: [...idsAtMax] }
      },
    }
  }

  /**
   * Stream the records oldest first, one decoded page at a time, one page in memory (plus one
   * prefetched).
   *
   * openapi 8.3.2 / AMBIGUITIES openapi #11: pages are newest first, the default window is "today"
   * and inclusive or exclusive ends are not said. So both ends are always sent, each one second
   * wider than needed and filtered here; endTime is fixed when the pull starts; pages are read from
   * the last one back to page 1. A new record lands at the front and pushes older ones towards
   * pages already read, so the pull is split at the newest record N seen when it starts: seconds
   * ≤ N-2 (where no new record can land unless the device clock goes back) are walked page by page,
   * then the few records of seconds ≥ N-1 and whatever arrived meanwhile. Within a walk, a growing
   * `total` still shifts positions to make up for records that land anyway, and ids seen on the last
   * two pages are remembered, so nothing is exported twice.
   */
  private async *walkRecords(
    query: PullQuery,
    after: OpenapiCursor | undefined,
    ctx: OperationContext,
  ): AsyncGenerator<AccessRecord[]> {
    const nowS = Math.floor(Date.now() / 1000)
    const sinceS = query.since ? Math.floor(query.since.getTime() / 1000) : undefined
    const untilS = query.until ? Math.floor(query.until.getTime() / 1000) : undefined
    let startTime = 0
    if (after) startTime = Math.max(startTime, after.time - 1)
    if (sinceS !== undefined) startTime = Math.max(startTime, sinceS - 1)
    const endTime = untilS !== undefined ? untilS + 1 : nowS
    const afterIds = new Set(after?.ids ?? [])
    /** No record older than this second is exported. */
    const lowest = Math.max(after?.time ?? -Infinity, sinceS ?? -Infinity)
    const maxSize = this.recordPageSize
    let recent = new Set<string>()
    let current = new Set<string>()
    let badTimes = 0

    // Prefetches are cancelled when the consumer stops early.
    const ac = new AbortController()
    const onAbort = (): void => ac.abort(ctx.signal.reason)
    ctx.signal.addEventListener('abort', onAbort, { once: true })
    const pctx: OperationContext = { ...ctx, signal: ac.signal }

    const fetchPage = async (start: number, end: number, page: number, size: number): Promise<Page<SignObject>> => {
      const env = await this.tx.call('GET', '/api/record', pctx, {
        query: { startTime: Math.max(0, start), endTime: end, page, size },
        // 50008 "Search List Null": nothing in the window
        accept: [50008],
      })
      return parsePage<SignObject>(env.code === 200 ? env.data : undefined)
    }

    /** items[count-1] … items[0] (oldest first) within [minT, maxT] that pass the filters, decoded. */
    const decode = (items: SignObject[], count: number, minT: number, maxT: number): AccessRecord[] => {
      const out: AccessRecord[] = []
      recent = current
      current = new Set()
      for (let i = count - 1; i >= 0; i--) {
        const s = items[i]!
        const t = signTimeSeconds(s)
        if (!Number.isFinite(t)) {
          badTimes++
          continue
        }
        if (t < minT || t > maxT) continue
        const id = String(s.id)
        current.add(id)
        if (recent.has(id)) continue
        if (after && (t < after.time || (t === after.time && afterIds.has(id)))) continue
        if ((sinceS !== undefined && t < sinceS) || (untilS !== undefined && t > untilS)) continue
        out.push(signToRecord(s))
      }
      return out
    }

    /**
     * Everything wanted is on page 1 when it holds the whole window, or when it already reaches
     * below the lower bound (a device that ignores the window must not cost a full walk).
     */
    const onePage = (first: Page<SignObject>, minT: number): boolean => {
      const len = first.items.length
      return len >= first.total || signTimeSeconds(first.items[len - 1]!) < Math.max(minT, lowest)
    }

    /** One window [start, end], oldest first; `first` is its page 1 when already fetched. */
    const walk = async function* (
      start: number,
      end: number,
      minT: number,
      maxT: number,
      first?: Page<SignObject>,
    ): AsyncGenerator<AccessRecord[]> {
      first ??= await fetchPage(start, end, 1, maxSize)
      const total0 = first.total
      const len = first.items.length
      if (len === 0) return
      if (onePage(first, minT)) {
        const recs = decode(first.items, len, minT, maxT)
        if (recs.length) yield recs
        return
      }
      // The page size the device really uses (it may cap below what was asked).
      const size = first.pageSize > 0 && first.pageSize <= maxSize ? first.pageSize : Math.min(maxSize, len)
      let shift = 0
      // Records whose index at the start of the walk is ≥ bound are done; index 0 is the newest.
      let bound = total0
      const fetchAt = (pos: number): { lo: number; page: Promise<Page<SignObject>> } => {
        const n = Math.floor(pos / size) + 1
        const page = fetchPage(start, end, n, size)
        page.catch(() => {}) // awaited below; this only keeps an abandoned prefetch from being "unhandled"
        return { lo: (n - 1) * size, page }
      }
      let next = fetchAt(bound - 1)
      let resyncs = 0
      while (bound > 0) {
        const { lo } = next
        const page = await next.page
        if (page.total - total0 > shift && resyncs < 100) {
          shift = page.total - total0
          const pos = bound - 1 + shift
          if (pos < lo || pos >= lo + page.items.length) {
            resyncs++
            next = fetchAt(pos)
            continue
          }
        }
        resyncs = 0
        const count = Math.max(0, Math.min(page.items.length, bound + shift - lo))
        bound = lo - shift
        if (bound > 0) next = fetchAt(bound - 1 + shift)
        const recs = decode(page.items, count, minT, maxT)
        if (recs.length) yield recs
      }
    }

    try {
      const first = await fetchPage(startTime, endTime, 1, maxSize)
      const newest = first.items.length ? signTimeSeconds(first.items[0]!) : NaN
      if (first.items.length === 0 || onePage(first, -Infinity) || !Number.isFinite(newest) || newest - 1 <= startTime) {
        yield* walk(startTime, endTime, -Infinity, Infinity, first)
        return
      }
      // Asked one second wider on each side of the split, filtered to seconds ≤ N-2 and ≥ N-1.
      yield* walk(startTime, newest - 1, -Infinity, newest - 2)
      yield* walk(newest - 2, endTime, newest - 1, Infinity)
    } finally {
      ctx.signal.removeEventListener('abort', onAbort)
      ac.abort()
      if (badTimes) ctx.log.warn('records without a readable signTime were left out', { count: badTimes })
    }
  }

  async *watchRecords(ctx: OperationContext): AsyncGenerator<AccessRecord> {
    if (!this.device.host) throw this.noHost()
    // ws is loaded only by commands that watch
    const { watchLive } = await import('./live.js')
    yield* watchLive(
      {
        host: this.device.host,
        port: this.device.wsPort ?? DEFAULT_WS_PORT,
        password: this.device.password ?? DEFAULT_PASSWORD,
        ...this.liveTimings,
      },
      ctx,
    )
  }

  async checkFace(): Promise<OpResult & { exists?: boolean }> {
    throw new UnsupportedError('openapi devices have no face comparison in their API (document section 8)', 'list the people with `doorctl people list`')
  }

  async snapshot(): Promise<OpResult & { photo?: Buffer }> {
    throw new UnsupportedError('openapi devices have no camera snapshot in their API (document section 8)')
  }

  async close(): Promise<void> {
    await this.transport?.close()
  }
}

import { DeviceError, TimeoutError, UnsupportedError } from '../types/errors.js'
import type {
  AccessRecord, DeviceDriver, DeviceEntry, FaceSource, OpenMode, OperationContext, OpResult, Person,
  PersonInfo, PersonOutcome, PullQuery, RecordPull, Protocol,
} from '../types/driver.js'
import type { DriverEnv } from '../types/driver-module.js'
import { toPersonPayload } from './payloads.js'
import { deviceOffsetAt } from '../util/time.js'
import { GatewayStore } from '../store/gateway-store.js'
import type { CommandKind, QueuedCommand } from '../types/gateway.js'

export interface PushCapabilities {
  protocol: Protocol
  kinds: ReadonlySet<CommandKind>
  configSections: readonly string[]
  /** How the protocol says it, for "unsupported" messages. */
  unsupportedWhy?: Partial<Record<CommandKind, string>>
  /** A `repostRecords` command with no payload has the device upload every record it holds again (records pull --repost). */
  repostAll?: boolean
}

/** Records read from the spool at a time. */
const SPOOL_PAGE = 1000

/** Default lifetime of a command queued with --no-wait when no --timeout was given. */
export const NO_WAIT_EXPIRY_MS = 24 * 3600_000

/** A command payload larger than this (serialized, bytes) is queued within a --concurrency slot: a people list for a thousand devices is not held in memory all at once. */
const BIG_PAYLOAD = 64 * 1024

const VERB: Record<CommandKind, string> = {
  open: 'open the door', reboot: 'reboot', syncTime: 'set the time', info: 'report its information', setConfig: 'change settings',
  upsertPeople: 'import people', deletePeople: 'delete people', listPeople: 'list people', enrollFace: 'enroll a face',
  snapshot: 'take a snapshot', repostRecords: 'upload its records again', checkFace: 'check whether a face is enrolled',
}

/**
 * The CLI side of every push-style protocol: operations become queued commands, delivered by
 * the gateway when the device next calls; records come from the gateway's spool.
 */
export class PushDriver implements DeviceDriver {
  readonly protocol: Protocol

  constructor(private readonly device: DeviceEntry, private readonly env: DriverEnv, private readonly caps: PushCapabilities) {
    this.protocol = caps.protocol
  }

  private async run(kind: CommandKind, payload: Record<string, unknown>, ctx: OperationContext): Promise<QueuedCommand> {
    if (!this.caps.kinds.has(kind)) {
      throw new UnsupportedError(this.caps.unsupportedWhy?.[kind] ?? `${this.protocol} devices have no way to ${VERB[kind]} (the vendor document offers none)`)
    }
    const gateway = this.env.gateway
    if (!gateway) throw new Error('no gateway available to reach push-style devices')
    const wait = ctx.wait !== false
    const opts = { timeoutMs: wait ? ctx.timeoutMs : Math.max(ctx.timeoutMs, NO_WAIT_EXPIRY_MS), signal: ctx.signal }
    const idle = <T>(work: () => Promise<T>) => (ctx.idle ? ctx.idle(work) : work())
    let cmd: QueuedCommand
    if (JSON.stringify(payload).length <= BIG_PAYLOAD) {
      // queued together with every other device's command of this operation, and waited for without a --concurrency slot
      cmd = await idle(async () => (await gateway()).submit(this.device, kind, payload, { ...opts, wait }))
    } else {
      // a big payload (people) is queued within the slot, so --concurrency bounds the memory and work in flight; the wait is idle
      const gw = await gateway()
      const queued = await gw.submit(this.device, kind, payload, { ...opts, wait: false })
      cmd = wait ? await idle(() => gw.wait(queued.id, ctx.signal)) : queued
    }
    if (!wait) return cmd
    switch (cmd.state) {
      case 'acknowledged':
        return cmd
      case 'failed': {
        const message = cmd.result?.message ?? `${this.device.name} refused the command`
        // a protocol module that finds the request impossible for this device says so with this prefix
        if (message.startsWith('unsupported:')) throw new UnsupportedError(message.slice('unsupported:'.length).trim())
        throw new DeviceError(message, { deviceCode: cmd.result?.deviceCode })
      }
      case 'unknown':
        throw new DeviceError(cmd.result?.message ?? `${this.device.name} may or may not have carried out the command`, { code: 'outcome_unknown' })
      default:
        throw new TimeoutError(
          cmd.deliveredAt
            ? `${this.device.name} took the command but did not answer within ${ctx.timeoutMs / 1000}s`
            : `${this.device.name} did not call the gateway within ${ctx.timeoutMs / 1000}s (is it online and pointed at this gateway?)`,
          'raise --timeout to more than the device\'s heartbeat interval, or check `doorctl device list` for when it was last seen',
        )
    }
  }

  private async op(kind: CommandKind, payload: Record<string, unknown>, ctx: OperationContext): Promise<OpResult> {
    const cmd = await this.run(kind, payload, ctx)
    if (cmd.state === 'queued' || cmd.state === 'delivered') return { queued: true, message: `queued as command ${cmd.id}`, data: { command: cmd.id } }
    return { message: cmd.result?.message, data: cmd.result?.data }
  }

  open(mode: OpenMode, ctx: OperationContext) { return this.op('open', { mode }, ctx) }
  reboot(ctx: OperationContext) { return this.op('reboot', {}, ctx) }
  syncTime(time: Date, ctx: OperationContext, utcOffsetMinutes?: number) {
    const offset = utcOffsetMinutes ?? deviceOffsetAt({ zone: this.device.tz }, time.getTime())
    return this.op('syncTime', { epochMs: time.getTime(), utcOffsetMinutes: offset }, ctx)
  }

  async info(ctx: OperationContext): Promise<Record<string, unknown>> {
    const r = await this.op('info', {}, ctx)
    return r.queued ? { queued: true, command: r.data?.command } : (r.data ?? {})
  }

  configSections(): string[] {
    return [...this.caps.configSections]
  }

  async getConfig(section: string, ctx: OperationContext): Promise<Record<string, unknown>> {
    const info = await this.info(ctx)
    return (info[section] as Record<string, unknown> | undefined) ?? info
  }

  /** One `info` answers every section: push-style devices report all their settings at once. */
  async readConfig(sections: readonly string[], ctx: OperationContext): Promise<Record<string, Record<string, unknown>>> {
    const info = await this.info(ctx)
    const out: Record<string, Record<string, unknown>> = {}
    for (const s of sections) {
      const v = info[s]
      out[s] = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {}
    }
    return out
  }

  setConfig(section: string, values: Record<string, unknown>, ctx: OperationContext) {
    return this.op('setConfig', { section, values }, ctx)
  }

  async *upsertPeople(people: readonly Person[], ctx: OperationContext): AsyncIterable<PersonOutcome> {
    const payload = { people: people.map(toPersonPayload) }
    yield* this.peopleOutcomes(await this.run('upsertPeople', payload, ctx), people)
  }

  async *deletePeople(ids: readonly string[] | 'all', ctx: OperationContext): AsyncIterable<PersonOutcome> {
    yield* this.peopleOutcomes(await this.run('deletePeople', { ids }, ctx), ids === 'all' ? [] : ids.map((id) => ({ id })))
  }

  private *peopleOutcomes(cmd: QueuedCommand, people: readonly { id: string; name?: string }[]): Iterable<PersonOutcome> {
    if (cmd.state === 'queued' || cmd.state === 'delivered') {
      for (const p of people) yield { id: p.id, name: p.name, status: 'queued', message: `queued as command ${cmd.id}` }
      return
    }
    const seen = new Set<string>()
    for (const o of cmd.result?.people ?? []) {
      seen.add(o.id)
      yield o
    }
    // the device confirmed the command without naming everyone: those it did not name were not refused
    for (const p of people) if (!seen.has(p.id)) yield { id: p.id, name: p.name, status: 'ok', message: cmd.result?.message ?? 'done' }
  }

  async *listPeople(ctx: OperationContext): AsyncIterable<PersonInfo> {
    const cmd = await this.run('listPeople', {}, ctx)
    for (const p of (cmd.result?.data?.people ?? []) as (Omit<PersonInfo, 'validFrom' | 'validTo'> & { validFrom?: number; validTo?: number })[]) {
      yield { ...p, validFrom: p.validFrom ? new Date(p.validFrom) : undefined, validTo: p.validTo ? new Date(p.validTo) : undefined }
    }
  }

  async enrollFace(id: string, source: FaceSource, ctx: OperationContext): Promise<PersonOutcome> {
    const cmd = await this.run('enrollFace', { id, photoPath: source.photoPath, capture: source.capture === true }, ctx)
    if (cmd.state === 'queued' || cmd.state === 'delivered') return { id, status: 'queued', message: `queued as command ${cmd.id}` }
    return cmd.result?.people?.[0] ?? { id, status: 'ok', action: 'enrolled', message: cmd.result?.message ?? 'face enrolled' }
  }

  async checkFace(photoPath: string, ctx: OperationContext): Promise<OpResult & { exists?: boolean }> {
    const r = await this.op('checkFace', { photoPath }, ctx)
    return r.queued ? r : { ...r, exists: r.data?.exists === true }
  }

  async snapshot(ctx: OperationContext): Promise<OpResult & { photo?: Buffer }> {
    const r = await this.op('snapshot', {}, ctx)
    const b64 = r.data?.photoBase64
    return { ...r, data: r.queued ? r.data : {}, photo: typeof b64 === 'string' ? Buffer.from(b64, 'base64') : undefined }
  }

  /**
   * Without serve, a temporary listener takes the device's next call and the uploads that follow,
   * until it is drained (gateway/collect.ts); with serve (or a joined gateway) the spool is
   * already complete.
   */
  async collectRecords(ctx: OperationContext, opts: { repost?: boolean } = {}): Promise<void> {
    const gateway = await this.env.gateway?.()
    if (!gateway) return
    const drained = gateway.collect?.(this.device, { timeoutMs: ctx.timeoutMs, signal: ctx.signal })
    if (opts.repost) {
      if (!this.caps.repostAll) ctx.log.notice(`${this.device.name}: ${this.caps.unsupportedWhy?.repostRecords ?? `${this.protocol} devices cannot be asked to upload their records again`}; taking what it sends`)
      // with serve, what it sends again lands in the spool for this pull or the next
      else await gateway.submit(this.device, 'repostRecords', {}, { timeoutMs: ctx.timeoutMs, wait: false, signal: ctx.signal })
    }
    if (!drained) return
    const r = await drained
    ctx.log.info('device drained', { device: this.device.name, records: r.records })
  }

  /** Records from the spool in arrival order, a page at a time; the cursor is the spool sequence number. */
  pullRecords(query: PullQuery, ctx: OperationContext): RecordPull {
    let lastSeq = typeof (query.after as { seq?: unknown } | undefined)?.seq === 'number' ? (query.after as { seq: number }).seq : 0
    const device = this.device.name
    const home = this.env.home
    const range = { since: query.since?.getTime(), until: query.until?.getTime() }
    const shared = this.env.records
    async function* batches(): AsyncIterable<readonly AccessRecord[]> {
      if (shared) {
        // a shared store (PostgreSQL): a page is one query, its photos one each
        for (;;) {
          if (ctx.signal.aborted) throw ctx.signal.reason
          const page = await shared.after(device, lastSeq, SPOOL_PAGE, range)
          if (page.length === 0) return
          const batch: AccessRecord[] = []
          for (const { hasPhoto, seq, ...r } of page) batch.push({ ...r, time: new Date(r.time), photo: hasPhoto ? await shared.photo(seq) : undefined })
          lastSeq = page[page.length - 1]!.seq
          yield batch
          if (page.length < SPOOL_PAGE) return
        }
      }
      // the embedded spool is SQLite in this process: a page is read synchronously, there is no latency to hide
      const store = new GatewayStore(home, { readonly: true })
      try {
        for (;;) {
          if (ctx.signal.aborted) throw ctx.signal.reason
          const page = store.records(device, lastSeq, SPOOL_PAGE, range)
          if (page.length === 0) return
          const batch = page.map((r) => ({ ...r, time: new Date(r.time), photo: r.photoPath ? store.photo(r.photoPath) : undefined }))
          lastSeq = page[page.length - 1]!.seq
          yield batch
          if (page.length < SPOOL_PAGE) return
        }
      } finally {
        store.close()
      }
    }
    return { batches: batches(), cursor: () => ({ seq: lastSeq }) }
  }

  async *watchRecords(ctx: OperationContext): AsyncIterable<AccessRecord> {
    if (this.env.gateway) await this.env.gateway()
    const shared = this.env.records
    if (shared) {
      // a shared store: records taken by every gateway on it
      let lastSeq = await shared.lastSeq()
      while (!ctx.signal.aborted) {
        for (const { hasPhoto, seq, ...r } of await shared.after(this.device.name, lastSeq, 1000)) {
          lastSeq = seq
          yield { ...r, time: new Date(r.time), photo: hasPhoto ? await shared.photo(seq) : undefined }
        }
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
      return
    }
    const store = new GatewayStore(this.env.home, { readonly: true })
    try {
      let lastSeq = (store.db.prepare('SELECT COALESCE(MAX(seq), 0) AS s FROM records').get() as { s: number }).s
      while (!ctx.signal.aborted) {
        for (const r of store.records(this.device.name, lastSeq, 1000)) {
          lastSeq = r.seq
          yield { ...r, time: new Date(r.time), photo: r.photoPath ? store.photo(r.photoPath) : undefined }
        }
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
    } finally {
      store.close()
    }
  }

  async close(): Promise<void> {}
}

import pg from 'pg'
import type { Logger } from '../types/driver.js'
import type { StoreEventHub } from './events.js'

type Channel = 'queued' | 'final' | 'inventory'

/**
 * One connection that LISTENs to the store's channels and turns notifications into events,
 * opened when something first subscribes. When it drops (the server restarted), it reconnects
 * with back-off and emits `reconnected`: whatever was announced meanwhile must be re-read.
 */
export class PostgresListener {
  private client?: pg.Client
  private started = false
  private stopped = false
  private retryMs = 100
  private timer?: NodeJS.Timeout
  private readonly byChannel: Map<string, Channel>
  private readyWaiters: (() => void)[] = []

  constructor(private readonly opts: {
    connectionString: string
    channels: Record<Channel, string>
    hub: StoreEventHub
    log?: Logger
    connectTimeoutMs?: number
  }) {
    this.byChannel = new Map(Object.entries(opts.channels).map(([event, channel]) => [channel, event as Channel]))
  }

  start(): void {
    if (this.started || this.stopped) return
    this.started = true
    void this.connect(false)
  }

  /** Resolves once LISTEN is in place (again, after a reconnection). */
  ready(): Promise<void> {
    if (this.client || this.stopped) return Promise.resolve()
    return new Promise((resolve) => this.readyWaiters.push(resolve))
  }

  async stop(): Promise<void> {
    this.stopped = true
    for (const w of this.readyWaiters.splice(0)) w()
    if (this.timer) clearTimeout(this.timer)
    const c = this.client
    this.client = undefined
    if (c) await c.end().catch(() => {})
  }

  private async connect(again: boolean): Promise<void> {
    const client = new pg.Client({ connectionString: this.opts.connectionString, connectionTimeoutMillis: this.opts.connectTimeoutMs ?? 10_000 })
    let lost = false
    const onLost = (err?: Error) => {
      if (lost) return
      lost = true
      if (this.client === client) this.client = undefined
      client.end().catch(() => {})
      if (this.stopped) return
      this.opts.log?.warn('store notifications lost; reconnecting', { error: err?.message })
      this.retry()
    }
    client.on('error', onLost)
    client.on('end', () => onLost())
    client.on('notification', (n) => this.deliver(n.channel, n.payload))
    try {
      await client.connect()
      for (const channel of this.byChannel.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`)
    } catch (err) {
      onLost(err as Error)
      return
    }
    if (this.stopped) {
      await client.end().catch(() => {})
      return
    }
    this.client = client
    this.retryMs = 100
    for (const w of this.readyWaiters.splice(0)) w()
    if (again) this.opts.hub.emit('reconnected')
  }

  private retry(): void {
    if (this.timer) return
    const wait = this.retryMs
    this.retryMs = Math.min(this.retryMs * 2, 5_000)
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.connect(true)
    }, wait)
    this.timer.unref()
  }

  private deliver(channel: string, payload: string | undefined): void {
    const event = this.byChannel.get(channel)
    if (!event) return
    if (event === 'inventory') {
      this.opts.hub.emit('inventory')
      return
    }
    let items: unknown
    try {
      items = JSON.parse(payload ?? '[]')
    } catch {
      return
    }
    if (!Array.isArray(items)) return
    if (event === 'queued') this.opts.hub.emit('queued', items.map(String))
    else this.opts.hub.emit('final', items.map(Number))
  }
}

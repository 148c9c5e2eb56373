/**
 * The gateway's MQTT side for best-m devices (loaded only when the gateway starts): a client on
 * the broker named by --mqtt-url, or on an embedded aedes broker started on --bind:--mqtt-port.
 *
 * aedes has no MQTT shared subscriptions, which the best gateway uses so that each device message
 * is handled by exactly one of several gateways on one broker (see gateway.ts). The embedded
 * broker adds them: `$share/{group}/{filter}` subscribes to the filter, and each message that
 * matches is forwarded to one connected member of the group, round robin (as mosquitto does).
 */
import type { Server, Socket } from 'node:net'
import type { IPublishPacket, MqttClient } from 'mqtt'
import type { GatewaySettings } from '../../types/gateway.js'
import type { Logger } from '../../types/driver.js'

export interface BrokerLink {
  readonly client: MqttClient
  /** The URL devices are given (getBrokerServer, type best-m); `host` replaces an unspecified bind address. */
  deviceUrl(host?: string): string
  /** For the ready line. */
  readonly bound: Record<string, string | number>
  close(): Promise<void>
}

export interface BrokerOptions {
  settings: GatewaySettings
  log: Logger
  clientId: string
  /** Filters to subscribe to (QoS 1), on every (re)connect. */
  subscriptions: string[]
  /** Every message, handled synchronously: the QoS 1 acknowledgement goes to the broker only after it returns. */
  onMessage(topic: string, payload: Buffer): void
  /** How long start-up waits for the first connection before going on (the client keeps trying). */
  connectWaitMs?: number
}

export class BrokerUnavailable extends Error {}

/** Resolves when `p` does, or after `ms` at the latest. */
function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms)
    t.unref()
    p.then(() => { clearTimeout(t); resolve() }, () => { clearTimeout(t); resolve() })
  })
}

/** MQTT topic filter matching (`+` one level, `#` the rest). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}

/** Shared-subscription bookkeeping for the embedded broker. */
class ShareGroups {
  /** clientId → filter → group */
  private readonly members = new Map<string, Map<string, string>>()
  private readonly connected = new Set<string>()
  private readonly chosen = new Map<string, string>()
  private rr = 0

  join(clientId: string, group: string, filter: string): void {
    let m = this.members.get(clientId)
    if (!m) this.members.set(clientId, (m = new Map()))
    m.set(filter, group)
  }

  online(clientId: string, up: boolean): void {
    if (up) this.connected.add(clientId)
    else this.connected.delete(clientId)
  }

  /** The packet for `clientId`, or null when another member of its share group takes it. */
  forward<P extends { topic: string; brokerId?: string; brokerCounter?: number }>(clientId: string, packet: P): P | null {
    const mine = this.members.get(clientId)
    if (!mine) return packet
    for (const [filter, group] of mine) {
      if (!topicMatches(filter, packet.topic)) continue
      const key = `${group}\u0000${filter}\u0000${packet.brokerId ?? ''}:${packet.brokerCounter ?? ''}`
      let who = this.chosen.get(key)
      if (who === undefined) {
        const candidates = [...this.members].filter(([id, m]) => m.get(filter) === group && this.connected.has(id)).map(([id]) => id).sort()
        who = candidates.length > 0 ? candidates[this.rr++ % candidates.length] : clientId
        this.chosen.set(key, who)
        if (this.chosen.size > 4096) this.chosen.delete(this.chosen.keys().next().value as string)
      }
      return who === clientId ? packet : null
    }
    return packet
  }
}

interface Embedded {
  port: number
  close(): Promise<void>
}

async function startEmbedded(settings: GatewaySettings, log: Logger): Promise<Embedded> {
  const { Aedes } = await import('aedes')
  const { createServer } = await import('node:net')
  const shares = new ShareGroups()
  const broker = await Aedes.createBroker({
    authorizeSubscribe(client, sub, done) {
      const m = /^\$share\/([^/+#]+)\/(.+)$/.exec(sub.topic)
      if (m) {
        shares.join(client.id, m[1], m[2])
        sub.topic = m[2]
      }
      done(null, sub)
    },
    authorizeForward(client, packet) {
      return shares.forward(client.id, packet)
    },
  })
  broker.on('client', (c) => shares.online(c.id, true))
  broker.on('clientDisconnect', (c) => shares.online(c.id, false))
  broker.on('clientError', (c, err) => log.debug('mqtt client error', { client: c?.id, error: err.message }))
  const sockets = new Set<Socket>()
  // small MQTT packets each way: without no-delay, Nagle + delayed ACKs add ~40 ms per hop
  const server: Server = createServer({ noDelay: true }, (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    broker.handle(s)
  })
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(settings.mqttPort, settings.bind, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    await new Promise<void>((r) => broker.close(() => r()))
    const code = (err as NodeJS.ErrnoException).code
    throw new BrokerUnavailable(code === 'EADDRINUSE' ? `port ${settings.mqttPort} on ${settings.bind} is in use` : String(err))
  }
  const port = (server.address() as { port: number }).port
  return {
    port,
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
      await new Promise<void>((r) => broker.close(() => r()))
    },
  }
}

function isUnspecified(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::' || host === '[::]'
}

function bracket(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
}

/** The URL without user name and password: those are the gateway's, never handed to devices or printed. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    return u.toString().replace(/\/$/, '')
  } catch {
    return url
  }
}

/** Starts the embedded broker (or not, with --mqtt-url) and connects the gateway's client. */
export async function openBroker(opts: BrokerOptions): Promise<BrokerLink> {
  const { settings, log } = opts
  let embedded: Embedded | undefined
  let clientUrl: string
  if (settings.mqttUrl) {
    clientUrl = settings.mqttUrl
  } else {
    embedded = await startEmbedded(settings, log)
    clientUrl = `mqtt://${isUnspecified(settings.bind) ? '127.0.0.1' : bracket(settings.bind)}:${embedded.port}`
  }
  const { connect } = await import('mqtt')
  const client = connect(clientUrl, {
    clientId: opts.clientId,
    // a clean session: what devices sent while no gateway listened is not worth answering late (the
    // device timed out and sends it again); duplicates within a session are dropped by mid
    clean: true,
    protocolVersion: 4,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    keepalive: 30,
  })
  client.handleMessage = (packet: IPublishPacket, done) => {
    try {
      opts.onMessage(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload))
    } catch (err) {
      log.warn('best mqtt message handling failed', { topic: packet.topic, error: String(err) })
    }
    done()
  }
  let warned = false
  let subscribed: () => void = () => {}
  const ready = new Promise<void>((resolve) => (subscribed = resolve))
  client.on('error', (err) => {
    if (!warned) log.warn('best mqtt connection problem (retrying)', { broker: redactUrl(clientUrl), error: err.message })
    warned = true
  })
  client.on('connect', () => {
    warned = false
    const subs: Record<string, { qos: 1 }> = {}
    for (const topic of opts.subscriptions) subs[topic] = { qos: 1 }
    client.subscribe(subs, (err) => {
      if (err) log.warn('best mqtt subscribe failed', { error: err.message })
      subscribed()
    })
  })
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      log.warn('best mqtt broker not reachable yet; best-m devices are served once it is', { broker: redactUrl(clientUrl) })
      resolve()
    }, opts.connectWaitMs ?? 5000)
    t.unref()
    void ready.then(() => {
      clearTimeout(t)
      resolve()
    })
  })
  const shownUrl = embedded ? `mqtt://${bracket(settings.bind)}:${embedded.port}` : redactUrl(clientUrl)
  return {
    client,
    bound: { mqtt_url: shownUrl },
    deviceUrl(host?: string): string {
      if (!embedded) return redactUrl(clientUrl)
      const h = isUnspecified(settings.bind) ? (host && host !== '' ? host : '127.0.0.1') : settings.bind
      return `mqtt://${bracket(h)}:${embedded.port}`
    },
    async close() {
      // neither a broker that went away nor a client still connecting may hold the gateway's stop
      await bounded(new Promise<void>((r) => client.end(false, {}, () => r())), 1000)
      if (!client.disconnected) await bounded(new Promise<void>((r) => client.end(true, {}, () => r())), 500)
      if (embedded) await bounded(embedded.close(), 2000)
    },
  }
}

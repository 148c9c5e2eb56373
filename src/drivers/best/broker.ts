/**
 * The gateway's MQTT side for best-m devices (loaded only when the gateway starts): a client on
 * the broker named by --mqtt-url, or on an embedded aedes broker started on --bind:--mqtt-port.
 *
 * aedes has no MQTT shared subscriptions, which the best gateway uses so that each device message
 * is handled by exactly one of several gateways on one broker (see relay.ts). The embedded
 * broker adds them: `$share/{group}/{filter}` subscribes to the filter, and each message that
 * matches is forwarded to one connected member of the group, round robin (as mosquitto does).
 * A broker of --mqtt-url is asked whether it routes them (a probe message through a `$share`
 * subscription of this gateway's own); one that does not gets plain subscriptions instead, with
 * a warning that only one gateway may use it.
 *
 * The embedded broker takes no anonymous client (broker-auth.ts: devices as their serial number,
 * confined to best/{sn}/…; gateways as doorctl-gateway), speaks MQTTS when the gateway has
 * --tls-cert, and this gateway's own client reaches it in-process (no socket, no certificate to
 * check against itself).
 */
import { randomBytes } from 'node:crypto'
import type { Server, Socket } from 'node:net'
import { Duplex } from 'node:stream'
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt'
import type { GatewaySettings, TlsMaterial } from '../../types/gateway.js'
import type { Logger } from '../../types/driver.js'
import { deviceMayUse, GATEWAY_USER, loadBrokerSecret, samePassword, withCredentials, type BrokerSecret } from './broker-auth.js'

export interface BrokerLink {
  readonly client: MqttClient
  /** The URL device `sn` is given (getBrokerServer, type best-m), with its credentials for a doorctl broker; `host` replaces an unspecified bind address. */
  deviceUrl(sn: string, host?: string): string
  /** For the ready line. */
  readonly bound: Record<string, string | number | boolean>
  /** Whether `$share/…` subscriptions are routed: always by the embedded broker; probed on a broker of --mqtt-url (undefined until it answered). */
  readonly sharedSubscriptions: boolean | undefined
  /** What the ready line must say about the broker (plain subscriptions instead of shared ones). */
  readonly warnings: readonly string[]
  close(): Promise<void>
}

export interface BrokerOptions {
  settings: GatewaySettings
  log: Logger
  /** DOORCTL_HOME: the broker secret (broker-auth.ts). */
  home: string
  /** The gateway's certificate: the embedded broker speaks MQTTS. */
  tls?: TlsMaterial
  /** Whether device `sn` may connect from `address` (in the inventory, and its --allow-from); refusals are logged by the caller. */
  admitDevice?(sn: string, address: string): boolean
  /** Told of each client or packet refused for its credentials or topics (logged here). */
  onRefused?(r: { reason: 'anonymous' | 'credentials' | 'acl'; address: string; sn?: string }): void
  clientId: string
  /** Filters to subscribe to (QoS 1), on every (re)connect. */
  subscriptions: string[]
  /** Every message, handled synchronously: the QoS 1 acknowledgement goes to the broker only after it returns. */
  onMessage(topic: string, payload: Buffer): void
  /** How long start-up waits for the first connection before going on (the client keeps trying). */
  connectWaitMs?: number
  /** How long the probe of a --mqtt-url broker waits for its message before taking shared subscriptions as not routed. */
  sharedProbeMs?: number
}

const SHARED = /^\$share\/[^/+#]+\/(.+)$/

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
  /** A stream to the broker for this gateway's own client (in-process, authenticated as a gateway). */
  connect(): Duplex
  close(): Promise<void>
}

/** Two connected in-memory streams: what one writes, the other reads. */
function duplexPair(): [Duplex, Duplex] {
  const make = (peer: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        peer().push(chunk)
        cb()
      },
      final(cb) {
        peer().push(null)
        cb()
      },
      destroy(err, cb) {
        const p = peer()
        if (!p.destroyed) p.destroy()
        cb(err)
      },
    })
  const a: Duplex = make(() => b)
  const b: Duplex = make(() => a)
  return [a, b]
}

type Role = { gateway: true } | { sn: string }

function authError(message: string, returnCode: 4 | 5): Error & { returnCode: 4 | 5 } {
  return Object.assign(new Error(message), { returnCode })
}

async function startEmbedded(opts: BrokerOptions, secret: BrokerSecret): Promise<Embedded> {
  const { settings, log } = opts
  const { Aedes } = await import('aedes')
  const shares = new ShareGroups()
  const roles = new WeakMap<object, Role>()
  /** The streams of this gateway's own client: trusted without a password. */
  const inProcess = new WeakSet<object>()
  const addressOf = (client: { conn: unknown } | null) => (client?.conn as { remoteAddress?: string } | undefined)?.remoteAddress ?? 'in-process'
  const refused = (what: string, reason: 'anonymous' | 'credentials' | 'acl', fields: Record<string, unknown> & { from: string; sn?: string }) => {
    log.warn(`mqtt ${what} refused`, fields)
    opts.onRefused?.({ reason, address: fields.from, sn: fields.sn })
  }
  const broker = await Aedes.createBroker({
    authenticate(client, username, password, done) {
      const conn = client.conn as Duplex & { remoteAddress?: string }
      const address = conn.remoteAddress ?? 'in-process'
      if (inProcess.has(conn)) {
        roles.set(client, { gateway: true })
        return done(null, true)
      }
      if (username === undefined || username === '') {
        refused('anonymous client', 'anonymous', { client: client.id, from: address })
        return done(authError('anonymous clients are refused', 5), false)
      }
      if (username === GATEWAY_USER) {
        if (!samePassword(password, secret.gatewayPassword)) {
          refused('gateway login', 'credentials', { client: client.id, from: address, reason: 'wrong password' })
          return done(authError('bad user name or password', 4), false)
        }
        roles.set(client, { gateway: true })
        return done(null, true)
      }
      const sn = username
      if (!samePassword(password, secret.devicePassword(sn))) {
        refused('device login', 'credentials', { sn, from: address, reason: 'wrong password' })
        return done(authError('bad user name or password', 4), false)
      }
      // one session per device: another client id could take over (disconnect) someone else's session
      if (client.id !== sn) {
        refused('device login', 'credentials', { sn, client: client.id, from: address, reason: 'client id must be the sn' })
        return done(authError('client id must be the sn', 5), false)
      }
      if (opts.admitDevice && !opts.admitDevice(sn, address)) return done(authError('not authorized', 5), false)
      roles.set(client, { sn })
      done(null, true)
    },
    authorizePublish(client, packet, done) {
      const role = client ? roles.get(client) : { gateway: true as const }
      if (role && ('gateway' in role || deviceMayUse(role.sn, packet.topic))) return done(null)
      refused('publish', 'acl', { client: client?.id, topic: packet.topic, from: addressOf(client), sn: role && 'sn' in role ? role.sn : undefined })
      done(new Error(`publishing to ${packet.topic} is not allowed`))
    },
    authorizeSubscribe(client, sub, done) {
      const role = roles.get(client)
      if (!role || ('sn' in role && !deviceMayUse(role.sn, sub.topic))) {
        refused('subscribe', 'acl', { client: client.id, topic: sub.topic, from: addressOf(client), sn: role && 'sn' in role ? role.sn : undefined })
        return done(null, null)
      }
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
  const onSocket = (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    broker.handle(s)
  }
  // small MQTT packets each way: without no-delay, Nagle + delayed ACKs add ~40 ms per hop
  let server: Server
  if (opts.tls) {
    const { createServer } = await import('node:tls')
    server = createServer({ cert: opts.tls.cert, key: opts.tls.key, noDelay: true }, onSocket)
    server.on('tlsClientError', (err, s) => log.debug('mqtts handshake failed', { from: s.remoteAddress, error: err.message }))
  } else {
    const { createServer } = await import('node:net')
    server = createServer({ noDelay: true }, onSocket)
  }
  const port = settings.mqttPort ?? (opts.tls ? MQTTS_PORT : MQTT_PORT)
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, settings.bind, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    await new Promise<void>((r) => broker.close(() => r()))
    const code = (err as NodeJS.ErrnoException).code
    throw new BrokerUnavailable(code === 'EADDRINUSE' ? `port ${port} on ${settings.bind} is in use` : String(err))
  }
  const streams = new Set<Duplex>()
  return {
    port: (server.address() as { port: number }).port,
    connect() {
      const [mine, theirs] = duplexPair()
      inProcess.add(theirs)
      streams.add(theirs)
      theirs.on('close', () => streams.delete(theirs))
      broker.handle(theirs)
      return mine
    },
    async close() {
      for (const s of sockets) s.destroy()
      for (const s of streams) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
      await new Promise<void>((r) => broker.close(() => r()))
    },
  }
}

/** MQTT's and MQTTS's ports: the embedded broker's defaults. */
const MQTT_PORT = 1883
const MQTTS_PORT = 8883

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
  // only a doorctl broker (embedded, or another gateway's) needs the secret: none is made for mosquitto
  let loaded: BrokerSecret | undefined
  const secret = () => (loaded ??= loadBrokerSecret(opts.home))
  const mqtt = await import('mqtt')
  const options: IClientOptions = {
    clientId: opts.clientId,
    // a clean session: what devices sent while no gateway listened is not worth answering late (the
    // device timed out and sends it again); duplicates within a session are dropped by mid
    clean: true,
    protocolVersion: 4,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    keepalive: 30,
  }
  let embedded: Embedded | undefined
  let client: MqttClient
  let clientUrl: string
  /** Whether the broker is a doorctl one (its gateway user): devices are then handed credentials. */
  let doorctlBroker: boolean
  if (settings.mqttUrl) {
    clientUrl = settings.mqttUrl
    const u = new URL(clientUrl)
    doorctlBroker = decodeURIComponent(u.username) === GATEWAY_USER
    // another gateway's embedded broker: the password comes from the copy of its secret, not the command line
    if (doorctlBroker && u.password === '') options.password = secret().gatewayPassword
    client = mqtt.connect(clientUrl, options)
  } else {
    embedded = await startEmbedded(opts, secret())
    doorctlBroker = true
    clientUrl = `${opts.tls ? 'mqtts' : 'mqtt'}://${isUnspecified(settings.bind) ? '127.0.0.1' : bracket(settings.bind)}:${embedded.port}`
    const e = embedded
    client = new mqtt.MqttClient(() => e.connect(), options)
  }
  // shared subscriptions: the embedded broker routes them; a broker of --mqtt-url is probed once
  let shared: boolean | undefined = embedded ? true : undefined
  const warnings: string[] = []
  const probeTopic = `doorctl/probe/${opts.clientId}`
  let probeHeard: (payload: string) => void = () => {}
  let probing = false
  const filters = () => opts.subscriptions.map((f) => (shared === false ? f.replace(SHARED, '$1') : f))

  client.handleMessage = (packet: IPublishPacket, done) => {
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload)
    if (packet.topic === probeTopic) {
      probeHeard(payload.toString('utf8'))
      return done()
    }
    try {
      opts.onMessage(packet.topic, payload)
    } catch (err) {
      log.warn('best mqtt message handling failed', { topic: packet.topic, error: String(err) })
    }
    done()
  }

  /** Publishes a probe through a `$share` subscription only this client has: a broker that routes shared subscriptions hands it back. */
  async function probeShared(): Promise<boolean> {
    const filter = `$share/doorctl-probe/${probeTopic}`
    try {
      const granted = await client.subscribeAsync(filter, { qos: 1 })
      if (granted.some((g) => g.qos === 128)) return false
      const nonce = randomBytes(8).toString('hex')
      const heard = new Promise<boolean>((resolve) => {
        probeHeard = (p) => { if (p === nonce) resolve(true) }
        setTimeout(() => resolve(false), opts.sharedProbeMs ?? 3000).unref()
      })
      await client.publishAsync(probeTopic, nonce, { qos: 1 })
      return await heard
    } finally {
      probeHeard = () => {}
      client.unsubscribe(filter)
    }
  }

  /** No shared subscriptions: the same filters, plain; correct for one gateway on this broker only. */
  async function subscribePlain(): Promise<void> {
    const sharedOnes = opts.subscriptions.filter((f) => SHARED.test(f))
    const plain = sharedOnes.map((f) => f.replace(SHARED, '$1'))
    await client.unsubscribeAsync(sharedOnes)
    await client.subscribeAsync(plain, { qos: 1 })
    const text = `the MQTT broker ${redactUrl(clientUrl)} does not route shared subscriptions ($share/…): subscribed to ${plain.join(', ')} instead, so only one gateway may use this broker (with two, both would handle every device message)`
    warnings.push(text)
    log.warn(text)
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
    for (const topic of filters()) subs[topic] = { qos: 1 }
    client.subscribe(subs, (err) => {
      if (err) log.warn('best mqtt subscribe failed', { error: err.message })
      if (shared !== undefined || probing) return subscribed()
      probing = true
      probeShared()
        .then(async (ok) => {
          shared = ok
          if (!ok) await subscribePlain()
        })
        .catch((e: Error) => log.warn('best mqtt shared-subscription probe failed (probed again on the next connection)', { error: e.message }))
        .finally(() => {
          probing = false
          subscribed()
        })
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
  const shownUrl = embedded ? `${opts.tls ? 'mqtts' : 'mqtt'}://${bracket(settings.bind)}:${embedded.port}` : redactUrl(clientUrl)
  return {
    client,
    get bound() {
      return { mqtt_url: shownUrl, ...(shared !== undefined ? { mqtt_shared_subscriptions: shared } : {}) }
    },
    get sharedSubscriptions() {
      return shared
    },
    warnings,
    deviceUrl(sn: string, host?: string): string {
      let url = redactUrl(clientUrl)
      if (embedded) {
        const h = isUnspecified(settings.bind) ? (host && host !== '' ? host : '127.0.0.1') : settings.bind
        url = `${opts.tls ? 'mqtts' : 'mqtt'}://${bracket(h)}:${embedded.port}`
      }
      return doorctlBroker ? withCredentials(url, sn, secret().devicePassword(sn)) : url
    },
    async close() {
      // neither a broker that went away nor a client still connecting may hold the gateway's stop
      await bounded(new Promise<void>((r) => client.end(false, {}, () => r())), 1000)
      if (!client.disconnected) await bounded(new Promise<void>((r) => client.end(true, {}, () => r())), 500)
      if (embedded) await bounded(embedded.close(), 2000)
    },
  }
}

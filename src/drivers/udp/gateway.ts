/**
 * udp intercom gateway side (udp-intercom.txt). Devices heartbeat on UDP (settings.udpPort) every
 * 50 s and call HTTP callbacks on the gateway's HTTP port.
 *
 * - Commands (open → unlock, reboot, setConfig → setting) go to the source address of the latest
 *   heartbeat, one at a time per device in queue order, each with its own `id` (codec wireId) and
 *   matched to its ack by that id. Without an ack a datagram is sent again every `resendMs`, at
 *   most `resends` more times, with the same id (the device executes an id once); then the
 *   command waits for the next heartbeat (a NAT'd device is reachable right after one) and the
 *   round starts again, until the command's --timeout.
 * - `info` is answered at once from the last heartbeat's fields (section 1).
 * - Faces (upsertPeople, enrollFace, deletePeople) are entries of the device's face list, served
 *   at /updateImage (section 5) with createTime unique and increasing per device; a person's
 *   outcome is the device's verdict at /authImage (section 6: 40 invalid, 50 valid). Deletions
 *   have no verdict: they count as done when the device fetched the list holding them.
 *   The list is durable (ctx.setState, 64 buckets by phone, so one verdict rewrites 1/64 of it);
 *   outcomes so far are in the command (ctx.progress), so a restart loses neither.
 * - Records: /addUpload stores the capture (durably, before answering its path); /unlockCallback
 *   spools the record with that capture attached, before answering.
 * - /oneLock: the password is looked up among the people imported to that device (stored as a
 *   salted hash); the user id given to `serve --authorize` is that person's doorctl id, or ''
 *   when no imported person has the password (so `allow` lets it through, a list refuses it).
 *
 * This file wires the socket and routes; delivery.ts sends commands and takes acks, people.ts (with
 * face-book.ts, the durable list) runs faces, verdicts and /oneLock, records.ts spools records,
 * devices.ts holds what is known of each device.
 */
import { createSocket, type RemoteInfo } from 'node:dgram'
import { isIPv6 } from 'node:net'
import { UsageError } from '../../types/errors.js'
import { REFUSED, type GatewayContext, type GatewayRequest, type GatewayResponse, type ProtocolHandler, type Route } from '../../types/gateway.js'
import { failAnswer, heartack, identity, parseAck, parseDatagram, parseHeartbeat, type Heartbeat, type Json } from './codec.js'
import { UdpDelivery } from './delivery.js'
import { UdpDevices } from './devices.js'
import { UdpPeople } from './people.js'
import { UdpRecords } from './records.js'
import { kinds } from './rules.js'

export interface UdpOptions {
  /** Resend an unacknowledged command datagram after this long (ms). Default 1000. */
  resendMs?: number
  /** Resends per round (after the first send). Default 5. */
  resends?: number
  /** A command queued while the device was heard from within this long is sent at once (ms); else at its next heartbeat. Default 60 000. */
  freshMs?: number
  /** Captures (/addUpload) never claimed by a record are dropped after this long (ms). Default 1 h. */
  uploadTtlMs?: number
}

/** Paths of sections 2–6; section 4's example has them under /app/equipment, so both are served. */
const PREFIXES = ['', '/app/equipment']
/** Section 4's `;uploadFile=/sdcard/…` path syntax (AMBIGUITIES #8): the router splits on `/`, so depths 1–8 are routed. */
const UPLOAD_PATH_DEPTH = 8

class UdpGateway {
  private readonly devices: UdpDevices
  private readonly people: UdpPeople
  private readonly delivery: UdpDelivery
  private readonly records: UdpRecords

  constructor(private readonly ctx: GatewayContext, opts: UdpOptions) {
    this.devices = new UdpDevices(ctx)
    this.people = new UdpPeople(this.devices, (dev) => this.delivery.service(dev))
    this.delivery = new UdpDelivery(this.devices, this.people, opts)
    this.records = new UdpRecords(this.devices, this.people, opts.uploadTtlMs ?? 3600_000)
    ctx.onQueued((device) => this.delivery.queued(device))
  }

  // ---- lifecycle --------------------------------------------------------------------------------

  async start(): Promise<Record<string, number>> {
    const { udpPort, bind } = this.ctx.settings
    // a site's intercoms come back at once after a power cut: a larger receive buffer absorbs the burst
    const socket = createSocket({ type: isIPv6(bind) ? 'udp6' : 'udp4', recvBufferSize: 4 * 1024 * 1024 })
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(err.code === 'EADDRINUSE'
          ? new UsageError(`udp port ${udpPort} on ${bind} is in use`, 'stop what holds it (another doorctl serve?), or pick another with --udp-port')
          : err)
      }
      socket.once('error', onError)
      socket.bind(udpPort, bind, () => {
        socket.off('error', onError)
        resolve()
      })
    })
    socket.on('error', (err) => this.ctx.log.warn('udp socket error', { error: String(err) }))
    socket.on('message', (buf, rinfo) => this.datagram(buf, rinfo))
    // closed while the gateway runs (not by stop()): /healthz says so
    socket.on('close', () => { if (this.devices.socket === socket) this.lost = `udp socket on ${bind}:${port} closed` })
    this.devices.socket = socket
    const port = socket.address().port
    this.ctx.log.info('udp listening', { udp: `${bind}:${port}` })
    return { udp_port: port }
  }

  /** Set when the socket closed under a running gateway. */
  lost?: string

  async stop(): Promise<void> {
    for (const d of this.devices.devs.values()) if (d.round?.timer) clearInterval(d.round.timer)
    const s = this.devices.socket
    this.devices.socket = undefined
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()))
  }

  routes(): Route[] {
    const routes: Route[] = []
    const add = (path: string, fn: (req: GatewayRequest) => GatewayResponse | Promise<GatewayResponse>) =>
      routes.push({ method: '*', path, handle: (req) => this.guard(path, req, fn) })
    for (const p of PREFIXES) {
      add(`${p}/oneLock`, (r) => this.people.oneLock(r))
      add(`${p}/unlockCallback`, (r) => this.records.unlockCallback(r))
      add(`${p}/updateImage`, (r) => this.people.updateImage(r))
      add(`${p}/authImage`, (r) => this.people.authImage(r))
      add(`${p}/addUpload`, (r) => this.records.addUpload(r))
      for (let depth = 1; depth <= UPLOAD_PATH_DEPTH; depth++) {
        add(`${p}/addUpload;uploadFile=` + Array.from({ length: depth }, (_, i) => `/{p${i}}`).join(''), (r) => this.records.addUpload(r))
      }
    }
    return routes
  }

  private async guard(path: string, req: GatewayRequest, fn: (req: GatewayRequest) => GatewayResponse | Promise<GatewayResponse>): Promise<GatewayResponse> {
    try {
      return await fn(req)
    } catch (err) {
      this.ctx.log.warn('udp callback failed', { path, from: `${req.remoteAddress}:${req.remotePort}`, error: String(err) })
      return { status: 500, json: failAnswer('internal error, send again') }
    }
  }

  private datagram(buf: Buffer, rinfo: RemoteInfo): void {
    const from = `${rinfo.address}:${rinfo.port}`
    try {
      const d = parseDatagram(buf)
      if ('error' in d) {
        this.devices.warnLimited(`drop:${d.error}`, `udp datagram dropped: ${d.error}`, { from, detail: d.detail })
        return
      }
      if (d.cmd === 'heart') return this.heartbeat(d.msg, rinfo)
      const ack = parseAck(d.msg)
      if (ack === undefined) {
        this.devices.warnLimited('drop:cmd', 'udp datagram dropped: unknown cmd', { from, cmd: d.cmd })
        return
      }
      if ('error' in ack) {
        this.devices.warnLimited('drop:ack', `udp datagram dropped: ${ack.error}`, { from })
        return
      }
      this.delivery.ack(ack, from)
    } catch (err) {
      this.ctx.log.warn('udp datagram failed', { from, error: String(err) })
    }
  }

  private heartbeat(msg: Json, rinfo: RemoteInfo): void {
    const from = `${rinfo.address}:${rinfo.port}`
    const hb = parseHeartbeat(msg)
    if ('error' in hb) {
      this.devices.warnLimited('drop:heart', `udp heartbeat dropped: ${hb.error}`, { from })
      return
    }
    const id = identity(hb.communityId, hb.deviceCode)
    const info = { communityId: hb.communityId, deviceCode: hb.deviceCode, softVer: hb.softVer, name: hb.name, deviceSn: hb.deviceSn }
    const entry = this.devices.lookup(id, rinfo.address)
    const reply = (known: boolean) => this.devices.socket?.send(heartack(known), rinfo.port, rinfo.address)
    // pinned elsewhere (--allow-from): refused as an unknown device is (result "1"), nothing served
    if (entry === REFUSED) return void reply(false)
    if (!entry) {
      this.ctx.discovered('udp', id, from, info)
      reply(false)
      return
    }
    const dev = this.devices.devOf(entry.name, entry)
    dev.address = { host: rinfo.address, port: rinfo.port }
    dev.heardAt = Date.now()
    const prev = dev.hb ?? (this.ctx.state(dev.name, 'heartbeat') as Heartbeat | undefined)
    dev.hb = hb
    this.ctx.touch(entry, from, info)
    // durable for `info` after a restart; written only when something changed
    if (!prev || (Object.keys(info) as (keyof Heartbeat)[]).some((k) => prev[k] !== hb[k])) this.ctx.setState(dev.name, 'heartbeat', { ...hb, at: dev.heardAt })
    reply(true)
    this.ctx.heartbeat(entry)
    this.delivery.service(dev)
  }
}

/** A udp protocol handler; `handler` is the default one. Options exist for tests (short resend intervals). */
export function createHandler(opts: UdpOptions = {}): ProtocolHandler {
  const instances = new WeakMap<GatewayContext, UdpGateway>()
  const all = new Set<UdpGateway>()
  const of = (ctx: GatewayContext) => {
    let gw = instances.get(ctx)
    if (!gw) {
      gw = new UdpGateway(ctx, opts)
      instances.set(ctx, gw)
      all.add(gw)
    }
    return gw
  }
  return {
    protocol: 'udp',
    kinds,
    routes: (ctx) => of(ctx).routes(),
    start: (ctx) => of(ctx).start(),
    problems: () => [...all].flatMap((gw) => (gw.lost ? [gw.lost] : [])),
    async stop(): Promise<void> {
      for (const gw of all) await gw.stop()
      all.clear()
    },
  }
}

export const handler: ProtocolHandler = createHandler()

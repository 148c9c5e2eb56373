import type { Socket } from 'node:dgram'
import { REFUSED, type GatewayContext, type GatewayRequest, type GatewayResponse, type QueuedCommand } from '../../types/gateway.js'
import type { DeviceEntry } from '../../types/driver.js'
import { failAnswer, identity, type Heartbeat } from './codec.js'
import type { FaceBook, FaceJob } from './face-book.js'

/** One command being sent over UDP: its datagram, resent until acknowledged. */
export interface Round {
  cmd: QueuedCommand
  wire: string
  frame: string
  sends: number
  timer?: NodeJS.Timeout
}

/** What the gateway knows of one udp device. */
export interface Dev {
  name: string
  entry?: DeviceEntry
  /** Source of the latest heartbeat: where commands go. */
  address?: { host: string; port: number }
  heardAt: number
  hb?: Heartbeat
  round?: Round
  /** The round of this command ran out without an ack: wait for a heartbeat newer than `at`. */
  gaveUp?: { cmd: number; at: number }
  book?: FaceBook
  jobs: Map<number, FaceJob>
}

/**
 * The udp devices the gateway knows and the socket that reaches them, shared by the delivery of
 * commands, the face list and the record callbacks.
 */
export class UdpDevices {
  socket?: Socket
  readonly devs = new Map<string, Dev>()
  /** Identities a device took with an acknowledged setting, until the inventory says so itself. */
  readonly aliases = new Map<string, DeviceEntry>()
  private readonly warned = new Map<string, { at: number; suppressed: number }>()

  constructor(readonly ctx: GatewayContext) {}

  /** A warning at most every 5 s per kind, so a flood of garbage cannot flood the log. */
  warnLimited(key: string, msg: string, fields: Record<string, unknown>): void {
    const now = Date.now()
    const w = this.warned.get(key)
    if (w && now - w.at < 5000) {
      w.suppressed++
      return
    }
    this.warned.set(key, { at: now, suppressed: 0 })
    this.ctx.log.warn(msg, w && w.suppressed > 0 ? { ...fields, suppressed: w.suppressed } : fields)
  }

  /** The device by its identity, for a peer at `from` (REFUSED: pinned to other addresses). */
  lookup(id: string, from: string): DeviceEntry | typeof REFUSED | undefined {
    const entry = this.ctx.findDevice('udp', id, from)
    if (entry === REFUSED) return entry
    if (entry) {
      this.aliases.delete(id)
      return entry
    }
    return this.aliases.get(id)
  }

  devOf(name: string, entry?: DeviceEntry): Dev {
    let d = this.devs.get(name)
    if (!d) {
      d = { name, heardAt: 0, jobs: new Map() }
      this.devs.set(name, d)
    }
    if (entry) d.entry = entry
    return d
  }

  /** The identity the device calls itself by (heartbeat), else the inventory's. */
  addressed(dev: Dev, wire: string): { communityId: string; deviceCode: string; id: string } {
    return { communityId: dev.hb?.communityId ?? dev.entry?.community ?? '', deviceCode: dev.hb?.deviceCode ?? dev.entry?.code ?? '', id: wire }
  }

  send(dev: Dev, text: string): void {
    if (!this.socket || !dev.address) return
    this.socket.send(text, dev.address.port, dev.address.host, (err) => {
      if (err) this.ctx.log.warn('udp send failed', { device: dev.name, to: `${dev.address?.host}:${dev.address?.port}`, error: String(err) })
    })
  }

  /** The devices an HTTP callback is about: by communityId + deviceCode, else by the address it heartbeats from. */
  resolve(f: Record<string, string>, req: GatewayRequest): { devs: Dev[]; unknown?: string } {
    const c = f.communityId ?? ''
    const d = f.deviceCode ?? ''
    if (c && d) {
      const id = identity(c, d)
      const entry = this.lookup(id, req.remoteAddress)
      if (entry === REFUSED) return { devs: [], unknown: id }
      if (!entry) {
        this.ctx.discovered('udp', id, `${req.remoteAddress}:${req.remotePort}`, { communityId: c, deviceCode: d })
        return { devs: [], unknown: id }
      }
      return { devs: [this.devOf(entry.name, entry)] }
    }
    // section 5: "communityId, deviceCode … 可无参数" — the device is told by where it heartbeats from
    const host = plainIp(req.remoteAddress)
    const devs = [...this.devs.values()].filter((x) => x.address && plainIp(x.address.host) === host && (!c || (x.hb?.communityId ?? x.entry?.community) === c))
    return { devs }
  }

  refuse(req: GatewayRequest, path: string, message: string, status = 400): GatewayResponse {
    this.warnLimited(`http:${path}:${status}`, `udp ${path} refused`, { from: `${req.remoteAddress}:${req.remotePort}`, reason: message })
    return { status, json: failAnswer(message) }
  }

  refused(): GatewayResponse {
    return { json: failAnswer('not allowed from this address') }
  }

  unknownDevice(id: string): GatewayResponse {
    return { json: failAnswer(`设备未登记 (device ${id} is not registered)`) }
  }

  /** HTTP calls count as contact; the presence address stays the UDP one commands go to. */
  touchHttp(dev: Dev, req: GatewayRequest): void {
    if (!dev.entry) return
    this.ctx.touch(dev.entry, dev.address ? `${dev.address.host}:${dev.address.port}` : `${req.remoteAddress}:${req.remotePort}`)
  }
}

function plainIp(a: string): string {
  return a.startsWith('::ffff:') ? a.slice(7) : a
}

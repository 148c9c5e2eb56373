/**
 * A simulated udp intercom door station ("门口机"), written from the vendor document
 * (protocols/udp-intercom.txt) plus the udp parts of protocols/README.md and
 * protocols/AMBIGUITIES.md — and from nothing else. It deliberately shares no code with the udp
 * driver/gateway: a simulator built on the server's codec would confirm its misreadings.
 *
 * The device sits behind NAT. It sends a JSON heartbeat (UDP) to the server every 50 s from its
 * source port (section 1); the server reaches it only by answering to that source address/port:
 * `unlock` (section 7), `setting` (8), `reboot` (9), each answered with `…ack` and the command's
 * `id`. Over HTTP the device calls the server: /oneLock (2), /unlockCallback (3), /addUpload (4),
 * /updateImage (5) and /authImage (6).
 *
 * Where the document is silent or contradicts itself, the decision is a one-line comment that
 * names the section or the AMBIGUITIES item ("AMB udp #n").
 *
 * This file is the device: its lifecycle and heartbeats. state.ts holds its identity and
 * events, transport.ts its socket and HTTP calls, commands.ts the UDP commands, people.ts the
 * face list, records.ts records and password checks, protocol.ts the document's constants.
 */
import { createSocket } from 'node:dgram'
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { UdpCommands } from './commands.js'
import { UdpFaces } from './people.js'
import { errMsg } from './protocol.js'
import { UdpRecords } from './records.js'
import { UdpState, type AccessEventOptions, type UdpEvents, type UdpSimulatorOptions } from './state.js'
import { UdpTransport } from './transport.js'

// ---------------------------------------------------------------------------------------------
// Public API.

export interface UdpSimulator {
  readonly sourcePort: number
  /** Commands executed (each id once, even if the server resent it). */
  readonly events: UdpEvents
  /** Faces stored on the device, keyed by phone (the document keys faces by phone). */
  faces(): Map<string, Record<string, unknown>>
  /** Current communityId / deviceCode (a `setting` command can change them). */
  readonly communityId: string
  readonly deviceCode: string
  /** The `timestrap` the next /updateImage will send. */
  readonly faceCursor: number
  /** Bind the UDP socket, send the first heartbeat immediately, then every intervalMs. */
  start(): Promise<void>
  stop(): Promise<void>
  /** Send a heartbeat now. */
  heartbeat(): Promise<void>
  /** Poll /updateImage now, download new faces (imageUrl relative to httpUrl, or absolute), judge them, report /authImage. Resolves when done. */
  syncFaces(): Promise<void>
  /** Simulate a person at the door: upload the capture (/addUpload), then the access event (/unlockCallback) referring to it. Returns what was sent. */
  accessEvent(opts?: AccessEventOptions): Promise<Record<string, unknown>>
  /** Ask /oneLock whether this password opens the door; resolves with the server's verdict as parsed. */
  passwordCheck(password: string, extra?: Record<string, unknown>): Promise<Record<string, unknown>>
}

export function createUdpSimulator(opts: UdpSimulatorOptions): UdpSimulator {
  return new UdpDevice(opts)
}

// ---------------------------------------------------------------------------------------------
// The device.

class UdpDevice implements UdpSimulator {
  private readonly intervalMs: number
  private readonly facePollEvery: number
  private timer: NodeJS.Timeout | undefined

  private readonly state: UdpState
  private readonly transport: UdpTransport
  private readonly commands: UdpCommands
  private readonly faceList: UdpFaces
  private readonly records: UdpRecords

  constructor(opts: UdpSimulatorOptions) {
    if (!opts.server) throw new Error('server is required')
    if (!Number.isInteger(opts.udpPort) || opts.udpPort <= 0 || opts.udpPort > 65535) throw new Error(`udpPort must be 1..65535, got ${opts.udpPort}`)
    this.state = new UdpState(opts)
    this.transport = new UdpTransport(this.state)
    this.commands = new UdpCommands(this.state, this.transport, () => this.heartbeat(), () => this.schedule())
    this.faceList = new UdpFaces(this.state, this.transport)
    this.records = new UdpRecords(this.state, this.transport, this.faceList)
    this.intervalMs = opts.intervalMs ?? 50_000
    this.facePollEvery = opts.facePollEvery ?? 1
  }

  get events(): UdpEvents {
    return this.state.events
  }

  get sourcePort(): number {
    return this.transport.boundPort
  }

  get communityId(): string {
    return this.state.community
  }

  get deviceCode(): string {
    return this.state.code
  }

  get faceCursor(): number {
    return this.faceList.cursor
  }

  faces(): Map<string, Record<string, unknown>> {
    return new Map(this.faceList.faceStore)
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  async start(): Promise<void> {
    if (this.transport.socket) throw new Error('already started')
    this.state.stopped = false
    this.state.abort = new AbortController()
    const host = this.state.opts.server.replace(/^\[|\]$/g, '')
    const resolved = isIP(host) ? { address: host, family: isIP(host) } : await lookup(host, { family: 4 }).catch(() => lookup(host))
    this.transport.serverAddress = resolved.address
    const loopback = resolved.family === 6 ? resolved.address === '::1' : resolved.address.startsWith('127.')
    const bindAddress = this.state.opts.bindAddress ?? (loopback ? resolved.address : undefined)
    const socket = createSocket(resolved.family === 6 ? 'udp6' : 'udp4')
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(e)
      socket.once('error', onError)
      socket.bind({ port: this.state.opts.sourcePort ?? 0, ...(bindAddress ? { address: bindAddress } : {}), exclusive: true }, () => {
        socket.off('error', onError)
        resolve()
      })
    })
    socket.on('error', (e) => this.state.log(`socket error: ${e.message}`))
    socket.on('message', (buf, rinfo) => this.commands.onDatagram(buf, rinfo))
    this.transport.socket = socket
    this.transport.boundPort = socket.address().port
    this.state.log(`bound UDP ${bindAddress ?? '*'}:${this.transport.boundPort}, heartbeats to ${this.transport.serverAddress}:${this.state.opts.udpPort} every ${this.intervalMs} ms`)
    try {
      await this.heartbeat()
    } catch (e) {
      await this.stop()
      throw e
    }
    this.schedule()
  }

  async stop(): Promise<void> {
    this.state.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    this.state.abort.abort(new Error('simulator stopped'))
    await Promise.allSettled([...this.state.inflight])
    const s = this.transport.socket
    this.transport.socket = undefined
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()))
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer)
    if (this.state.stopped || !this.transport.socket) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.heartbeat().catch((e: unknown) => this.state.log(`heartbeat failed: ${errMsg(e)}`))
      this.schedule()
    }, this.intervalMs)
  }

  // ---- UDP -----------------------------------------------------------------------------------

  async heartbeat(): Promise<void> {
    // Section 1: heart with communityId, deviceCode, cmd (required), softVer, name, deviceSn.
    const msg = {
      communityId: this.state.community,
      deviceCode: this.state.code,
      cmd: 'heart',
      softVer: this.state.opts.softVer ?? '1.02.03.04',
      name: this.state.opts.name ?? '模拟小区',
      deviceSn: this.state.opts.deviceSn ?? `SIM${this.state.opts.communityId}${this.state.opts.deviceCode}`,
    }
    await this.transport.send(JSON.stringify(msg))
    this.state.lastHeartbeatAt = Date.now()
    this.state.events.heartbeats++
    if (this.facePollEvery > 0 && this.state.events.heartbeats % this.facePollEvery === 0 && !this.faceList.autoSyncRunning) {
      this.faceList.autoSyncRunning = true
      this.state.track(
        this.faceList.syncFaces()
          .catch((e: unknown) => this.state.log(`face list poll failed: ${errMsg(e)}`))
          .finally(() => (this.faceList.autoSyncRunning = false)),
      )
    }
  }

  syncFaces(): Promise<void> {
    return this.faceList.syncFaces()
  }

  accessEvent(o: AccessEventOptions = {}): Promise<Record<string, unknown>> {
    return this.records.accessEvent(o)
  }

  passwordCheck(password: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return this.records.passwordCheck(password, extra)
  }
}

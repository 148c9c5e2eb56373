/**
 * httpv2 gateway side (httpv2-face.md): the device polls /Device/Keepalive and follows the
 * flags of our answer. Queued commands are turned into flags and into the answers of the
 * endpoints those flags send the device to; the device's reports finish them.
 *
 * Delivery rules (one command at a time, in queue order):
 * - A keepalive answer raises the flags of the oldest unfinished command only, so the device's
 *   own flag order (AMBIGUITIES #1, see FLAG_ORDER) can never reorder our queue. listPeople
 *   raises two (UploadWorkParameter + Remote) and works in either order.
 * - A command is marked delivered when the device takes it (RemoteCommand, DownloadWorkSetting,
 *   the first DownloadPeopleList/DeletePeopleList batch, or the keepalive answer carrying
 *   UploadWorkParameter).
 * - Lost answers: a device that asks RemoteCommand / DownloadWorkSetting again with no other
 *   request in between gets the same answer again, not the next command; a batch it asks for
 *   again before reporting it is handed out again (at most `batchResends` times).
 * - Hand-overs without a report of their own (open, reboot, repostRecords, syncTime, setConfig)
 *   are acknowledged when the device shows it has them: its next request of another kind (a
 *   keepalive included), or `ackQuietMs` (5 s) without a repeat: the device's request timeout is
 *   2 s with 3 retries (异常处理), so one that lost our answer asks again well within that.
 * - PushPeople has no end marker (AMBIGUITIES #12): a listing ends `pushQuietMs` (3 s) after the
 *   last PushPeople once the device has either sent a keepalive (the document has it work
 *   between keepalives, and keepalive in the middle of long work, hence the quiet period) or
 *   pushed as many people as its PeopleStorageInfo.Person.Current says (we ask for the work
 *   settings with the same keepalive). A verification ends when every asked id was pushed.
 *
 * This file routes requests; delivery.ts turns commands into flags and answers, people.ts runs
 * imports, deletions and listings, records.ts spools records, devices.ts holds each device's
 * state and the command it is working on.
 */
import { REFUSED, type GatewayContext, type GatewayRequest, type GatewayResponse, type ProtocolHandler, type Route } from '../../types/gateway.js'
import { errorAnswer, isObject, jsonPart, keepaliveMeansIdle, parseKeepalive, snOf, unknownDeviceAnswer, type DoorStatus } from './codec.js'
import { Httpv2Delivery } from './delivery.js'
import { Httpv2Devices, type DeviceState, type Endpoint, type Reply } from './devices.js'
import { Httpv2People } from './people.js'
import { Httpv2Records } from './records.js'
import { kinds } from './rules.js'

/** v2 paths (HTTPClient_ProtocolType 200) and the v1 ones README.md names (100); matching is case-insensitive. */
const PATHS: [string, Endpoint][] = [
  ['/Device/Keepalive', 'keepalive'],
  ['/Device/UploadWorkSetting', 'uploadSetting'],
  ['/Device/DownloadWorkSetting', 'downloadSetting'],
  ['/Device/RemoteCommand', 'remote'],
  ['/Device/RegisterIdentifyTicketResult', 'registerResult'],
  ['/Device/UploadSnapshoot', 'snapshot'],
  ['/Device/UploadSnapshot', 'snapshot'],
  ['/Device/RequestAuthorization', 'authorize'],
  ['/People/DownloadPeopleList', 'downloadPeople'],
  ['/People/DownloadPeopleListResult', 'downloadResult'],
  ['/People/DeletePeopleList', 'deletePeople'],
  ['/People/DeletePeopleListResult', 'deleteResult'],
  ['/People/PushPeople', 'pushPeople'],
  ['/Record/UploadIdentifyRecord', 'identifyRecord'],
  ['/Record/UploadSystemRecord', 'systemRecord'],
  // v1 (AMBIGUITIES #2: the keepalive table points here, bodies undocumented: read as their v2 twins)
  ['/DevicePass/SelectPassInfo', 'downloadPeople'],
  ['/DevicePass/SelectDeleteInfo', 'deletePeople'],
  ['/device/selectRestart', 'remote'],
]

export interface Httpv2Options {
  /** Acknowledge a hand-over after this long without a repeat of the request (ms). */
  ackQuietMs?: number
  /** A PushPeople collection ends after this long without a push, once it may end (ms). */
  pushQuietMs?: number
  /** How often an unreported batch is handed out again to a device that asks again. */
  batchResends?: number
}

class Httpv2Gateway {
  private readonly devices: Httpv2Devices
  private readonly people: Httpv2People
  private readonly delivery: Httpv2Delivery
  private readonly records: Httpv2Records

  constructor(private readonly ctx: GatewayContext, opts: Httpv2Options) {
    this.devices = new Httpv2Devices(ctx, { ackQuietMs: opts.ackQuietMs ?? 5000, pushQuietMs: opts.pushQuietMs ?? 3000, batchResends: opts.batchResends ?? 3 })
    this.people = new Httpv2People(this.devices)
    this.delivery = new Httpv2Delivery(this.devices, this.people)
    this.records = new Httpv2Records(this.devices)
    // commands that can never work are failed when queued, not after the device's next keepalive
    ctx.onQueued((device) => this.delivery.precheck(device))
  }

  routes(): Route[] {
    return PATHS.map(([path, endpoint]) => ({ method: '*', path, handle: (req: GatewayRequest) => this.handle(endpoint, req) }))
  }

  stop(): void {
    this.devices.stop()
  }

  // ---- request entry ------------------------------------------------------------------------

  private async handle(endpoint: Endpoint, req: GatewayRequest): Promise<GatewayResponse> {
    const address = `${req.remoteAddress}:${req.remotePort}`
    try {
      const result = jsonPart(req, ['ResultJson'])
      const sn = snOf(req, isObject(result) ? result : undefined)
      if (!sn) return this.devices.bad(endpoint, address, 'SN missing')
      const status = endpoint === 'keepalive' && isObject(req.json) ? parseKeepalive(req.json) : undefined
      const entry = this.ctx.findDevice('httpv2', sn, req.remoteAddress)
      // pinned elsewhere (--allow-from): the same refusal as an unknown device, nothing served
      if (entry === REFUSED) return { json: unknownDeviceAnswer() }
      if (!entry) {
        this.ctx.discovered('httpv2', sn, address, status ? { ...status } : undefined)
        return { json: unknownDeviceAnswer() }
      }
      this.ctx.touch(entry, address, status ? presenceInfo(status) : undefined)
      const state = this.devices.stateOf(entry)
      // one request of a device at a time: a retry that overtakes its original sees its effects
      const run = state.lock.then(() => this.dispatch(endpoint, req, state, sn, address))
      state.lock = run.catch(() => undefined)
      const reply = await run
      return 'status' in reply && typeof reply.status === 'number' && isObject(reply.json) ? { status: reply.status, json: reply.json } : { json: reply }
    } catch (err) {
      this.ctx.log.warn('httpv2 request failed', { endpoint, from: address, error: String(err) })
      return { status: 500, json: errorAnswer('internal error') }
    }
  }

  private async dispatch(endpoint: Endpoint, req: GatewayRequest, state: DeviceState, sn: string, address: string): Promise<Reply> {
    // the previous request, and acknowledgement of a hand-over by any request of another kind
    const prev = state.last
    state.last = { endpoint }
    const now = Date.now()
    const previousAt = state.requestAt
    state.requestAt = now
    const repeat = prev?.endpoint === endpoint ? prev.answer : undefined
    const job = state.job
    if (job && job.ackVia && job.ackVia !== endpoint) this.devices.finish(state, job, 'acknowledged', { message: job.ackMessage })
    const body = isObject(req.json) ? req.json : undefined
    switch (endpoint) {
      case 'keepalive':
        this.ctx.heartbeat(state.entry, { idle: keepaliveMeansIdle(now, previousAt, state.keepaliveMs) })
        return this.delivery.keepalive(state)
      case 'remote':
        return this.delivery.remoteCommand(state, repeat)
      case 'downloadSetting':
        return this.delivery.downloadSetting(state, sn, repeat)
      case 'uploadSetting':
        return body ? this.delivery.uploadSetting(state, body) : this.devices.bad(endpoint, address, 'body is not a JSON object', state.name)
      case 'downloadPeople':
        return this.people.downloadPeople(state, req, prev?.endpoint)
      case 'downloadResult':
        return body ? this.people.downloadResult(state, body) : this.devices.bad(endpoint, address, 'body is not a JSON object', state.name)
      case 'deletePeople':
        return this.people.deletePeople(state, req, prev?.endpoint)
      case 'deleteResult':
        return body ? this.people.deleteResult(state, body) : this.devices.bad(endpoint, address, 'body is not a JSON object', state.name)
      case 'pushPeople':
        return this.people.pushPeople(state, req, address)
      case 'registerResult':
        return this.delivery.registerResult(state, req, address)
      case 'snapshot':
        return this.delivery.snapshot(state, req)
      case 'authorize':
        return this.records.authorize(state, req, address)
      case 'identifyRecord':
        return this.records.identifyRecord(state, req, address)
      case 'systemRecord':
        return body ? this.records.systemRecord(state, body, address) : this.devices.bad(endpoint, address, 'body is not a JSON object', state.name)
    }
  }
}

function presenceInfo(s: DoorStatus): Record<string, unknown> {
  return { relay: s.relay, keepOpen: s.keepOpen, doorOpen: s.doorOpen, locked: s.locked, alarms: s.alarms }
}

/** An httpv2 protocol handler; `handler` is the default one. Options exist for tests (shorter quiet periods). */
export function createHandler(opts: Httpv2Options = {}): ProtocolHandler {
  const instances = new Set<Httpv2Gateway>()
  return {
    protocol: 'httpv2',
    kinds,
    routes(ctx: GatewayContext): Route[] {
      const gw = new Httpv2Gateway(ctx, opts)
      instances.add(gw)
      return gw.routes()
    },
    async stop(): Promise<void> {
      for (const gw of instances) gw.stop()
      instances.clear()
    },
  }
}

export const handler: ProtocolHandler = createHandler()

/**
 * A simulated `best` access-control terminal (ZKTeco-style `funcId`/`mid` JSON), written from
 * the vendor document (protocols/best.txt), the best rows of protocols/README.md and the best
 * part of protocols/AMBIGUITIES.md — and from nothing else. It shares no code with the best
 * driver/gateway: a simulator built on the server's codec would only confirm its misreadings.
 *
 * Life of a device (document sections 3.1–3.7):
 *   GET {server}/v3/device/getBrokerServer?sn&type&nonce&timestamp&sign → url
 *   connect (best-w: WebSocket; best-m: MQTT, topics best/{sn}/up|down from CLI.md)
 *   device.exchange.publicKey, device.exchange.factor (no cipher is given: plaintext after)
 *   dev.register → authCode; dev.accredit → secret; dev.login; dev.report; dev.heartbeat…
 * then it executes the server's `cmd.*` messages one at a time, each answered with
 * `dev.cmd.response` carrying the command's `cmdId`, and uploads access records
 * (dev.data.upload.verifyLog / verifyPhoto, large photos through dev.file.upload.*).
 *
 * Every decision where the document is silent or contradicts itself is a one-line comment
 * naming the AMBIGUITIES item ("AMBIGUITIES best #N" = item N of the best section of AMBIGUITIES.md).
 *
 * This file is the device and the commands it runs; state.ts holds what it holds, connection.ts
 * its link and login, people.ts and records.ts the user commands and record uploads,
 * protocol.ts the document's constants and helpers, transport.ts the WebSocket/MQTT link.
 */
import { bad, BEST_CODES, firstStr, formatBestTime, formatTimeZone, isObj, obj, ok, parseServerTime, parseTimeZone, codeOf, errMsg, isOk, results, str, strings, type CmdResult, type Json } from './protocol.js'
import { BestConnection } from './connection.js'
import { BestPeople } from './people.js'
import { BestRecords } from './records.js'
import { BestState, type BestEvents, type BestSimulatorOptions } from './state.js'

// ---------------------------------------------------------------------------------------------
// Public API.

export interface BestSimulator {
  readonly sn: string
  readonly loggedIn: boolean
  /** Users stored on the device, by pin (user id), fields as received. */
  users(): Map<string, Record<string, unknown>>
  readonly events: BestEvents
  /**
   * Upload an access record (dev.data.upload.verifyLog, + verifyPhoto if photo); resolves when the server answered (rejects on a refusal).
   * Returns the log sent. `logId`: send a log again (a device re-sending one the server did not acknowledge).
   */
  verifyLog(opts?: { pin?: string; photo?: Buffer; time?: Date; meetCode?: string; verifyStyle?: string; logId?: string }): Promise<Record<string, unknown>>
  /** getBrokerServer → connect → exchange → register/accredit/login → report; resolves when logged in (rejects if the server refuses). */
  start(): Promise<void>
  stop(): Promise<void>
}

export function createBestSimulator(opts: BestSimulatorOptions): BestSimulator {
  return new BestDevice(opts)
}

// ---------------------------------------------------------------------------------------------
// The device.

class BestDevice implements BestSimulator {
  private starting: Promise<void> | undefined
  private cmdChain: Promise<void> = Promise.resolve()
  private dropped = false

  private readonly state: BestState
  private readonly conn: BestConnection
  private readonly people: BestPeople
  private readonly records: BestRecords

  constructor(opts: BestSimulatorOptions) {
    this.state = new BestState(opts)
    this.conn = new BestConnection(this.state, (funcId, msg) => this.onCommand(funcId, msg))
    this.people = new BestPeople(this.state, this.conn)
    this.records = new BestRecords(this.state, this.conn)
  }

  get sn(): string {
    return this.state.sn
  }

  get events(): BestEvents {
    return this.state.events
  }

  get loggedIn(): boolean {
    return this.conn._loggedIn
  }

  users(): Map<string, Record<string, unknown>> {
    return this.state.store
  }

  // -------------------------------------------------------------------------------------------
  // Lifecycle.

  start(): Promise<void> {
    if (this.starting) return this.starting // a second call waits for the same attempt
    if (!this.conn.stopped && this.conn._loggedIn) return Promise.resolve()
    this.starting = this.conn.firstConnect().finally(() => {
      this.starting = undefined
    })
    return this.starting
  }

  async stop(): Promise<void> {
    this.conn.stopped = true
    this.conn.autoReconnect = false
    if (this.conn.reconnectTimer) clearTimeout(this.conn.reconnectTimer)
    this.conn.reconnectTimer = undefined
    await this.conn.linkDown('stopped', false)
    await this.cmdChain.catch(() => undefined)
  }

  // -------------------------------------------------------------------------------------------
  // Commands.

  private onCommand(funcId: string, msg: Json): void {
    this.state.events.commands[funcId] = (this.state.events.commands[funcId] ?? 0) + 1
    if (this.state.o.dropOnCommand === funcId && !this.dropped) {
      this.dropped = true
      this.state.log(`${funcId} arrived: dropping the link without answering (dropOnCommand)`)
      void this.conn.linkDown(`dropped on ${funcId}`, true)
      return
    }
    const session = this.conn.session
    // Commands run one at a time, in arrival order (3.6 isFree: the device is busy while it handles one).
    this.cmdChain = this.cmdChain.then(() => this.runCommand(funcId, msg, session)).catch((err) => this.state.log(`${funcId}: ${errMsg(err)}`))
  }

  private async runCommand(funcId: string, msg: Json, session: number): Promise<void> {
    if (session !== this.conn.session) return // the link it came on is gone; the server will send it again
    const params = obj(obj(msg.payload).params)
    const cmdId = str(params.cmdId)
    let result: CmdResult
    this.state.busy++
    try {
      if (cmdId === undefined) {
        this.state.bad(`${funcId}: no payload.params.cmdId`)
        result = { code: BEST_CODES.badParams, message: 'payload.params.cmdId is required' }
      } else {
        result = await this.execute(funcId, params, cmdId)
      }
    } catch (err) {
      result = { code: BEST_CODES.failed, message: errMsg(err) }
    } finally {
      this.state.busy--
    }
    if (session !== this.conn.session || !this.conn.link) {
      this.state.log(`${funcId} ${cmdId ?? ''}: link lost before the answer`)
      return
    }
    this.state.log(`${funcId} ${cmdId ?? ''}: ${result.code} ${result.message}`)
    // 3.14 ff.: every command is answered with dev.cmd.response carrying its cmdId; a fresh device mid (4.2.2: a device request).
    await this.conn.notify({ funcId: 'dev.cmd.response', code: result.code, message: result.message, payload: { params: { cmdId: cmdId ?? '' } } })
    result.after?.()
  }

  private async execute(funcId: string, p: Json, cmdId: string): Promise<CmdResult> {
    switch (funcId) {
      case 'cmd.control.reboot':
        // AMBIGUITIES best #7: the reboot reply is undocumented: answered like every command (dev.cmd.response), then the device reboots.
        return { code: BEST_CODES.ok, message: 'rebooting', after: () => this.reboot() }
      case 'cmd.system.sync.time':
        return this.syncTime()
      case 'cmd.data.update.user':
        return this.people.updateUsers(p)
      case 'cmd.data.update.bioPhoto':
        return this.people.updateBioPhotos(p)
      case 'cmd.data.delete.user':
        return this.people.deleteUsers(p)
      case 'cmd.data.clear.user':
        this.state.store.clear()
        this.state.cards.clear()
        return ok('all users cleared')
      case 'cmd.data.query.user':
        return this.people.queryUsers(p, cmdId)
      case 'cmd.option.set':
        return this.setOptions(p)
      case 'cmd.data.delete.userPhoto':
      case 'cmd.data.delete.bioPhoto':
        return this.people.deletePhotos(funcId, p)
      case 'cmd.data.update.multiCard':
        return this.people.updateCards(p)
      case 'cmd.data.delete.multiCard': {
        const pins = strings(p.pins)
        if (!pins) return bad('pins must be an array of pins')
        for (const pin of pins) this.state.cards.delete(pin)
        return ok(`cards of ${pins.length} user(s) deleted`)
      }
      case 'cmd.data.clear.multiCard':
        this.state.cards.clear()
        return ok('all cards cleared')
      case 'cmd.data.clear.all':
        this.state.store.clear()
        this.state.cards.clear()
        this.state.meetings.clear()
        this.state.meetingMembers.clear()
        return ok('all data cleared')
      case 'cmd.data.update.meeting': {
        const list = Array.isArray(p.meeting) ? p.meeting : Array.isArray(p.meetings) ? p.meetings : undefined // 3.15: `meeting` against rule 4 (plural): both read
        if (!list) return bad('meeting must be an array')
        for (const m of list) if (isObj(m) && str(m.id)) this.state.meetings.set(str(m.id)!, m)
        return ok(`${list.length} meeting(s) stored`)
      }
      case 'cmd.data.update.meetingMember': {
        const list = Array.isArray(p.members) ? p.members : undefined
        if (!list) return bad('members must be an array')
        for (const m of list) {
          const id = isObj(m) ? str(m.meetingId) : undefined
          if (!id || !isObj(m)) continue
          const set = this.state.meetingMembers.get(id) ?? new Set<string>()
          for (const pin of strings(m.pins) ?? []) set.add(pin)
          this.state.meetingMembers.set(id, set)
        }
        return ok('members stored')
      }
      case 'cmd.data.delete.meeting': {
        const ids = strings(p.meetings)
        if (!ids) return bad('meetings must be an array of ids')
        for (const id of ids) {
          this.state.meetings.delete(id)
          this.state.meetingMembers.delete(id)
        }
        return ok(`${ids.length} meeting(s) deleted`)
      }
      case 'cmd.data.delete.meetingMember': {
        const id = str(p.meetingId)
        const pins = strings(p.pins)
        if (!id || !pins) return bad('meetingId and pins are required')
        for (const pin of pins) this.state.meetingMembers.get(id)?.delete(pin)
        return ok('members deleted')
      }
      default:
        return { code: BEST_CODES.unsupported, message: `unsupported funcId ${funcId}` }
    }
  }

  private reboot(): void {
    this.state.events.reboots++
    this.state.log('rebooting')
    // A reboot drops the link; the device comes back after reconnectMs and logs in again.
    this.conn.autoReconnect = !this.conn.stopped
    void this.conn.linkDown('reboot', false)
  }

  /** 3.30: on cmd.system.sync.time the device asks the server's time with dev.system.sync.time and applies it. */
  private async syncTime(): Promise<CmdResult> {
    // AMBIGUITIES best #13: no sn; the document's example has no payload, so none is sent.
    const reply = await this.conn.request({ funcId: 'dev.system.sync.time' })
    if (!isOk(reply)) return { code: BEST_CODES.failed, message: `dev.system.sync.time answered ${codeOf(reply)} ${str(reply.message) ?? ''}`.trim() }
    // AMBIGUITIES best #7: the answer's format is undocumented: time in payload.results (or the top level) as time/serverTime/dateTime/timestamp, zone as timeZone/timezone.
    const r = { ...reply, ...results(reply) }
    const rawTime = firstStr(r, ['time', 'serverTime', 'dateTime', 'datetime', 'sysTime', 'timestamp'])
    const rawTz = firstStr(r, ['timeZone', 'timezone', 'tz'])
    let tzMin: number | undefined
    if (rawTz !== undefined) {
      tzMin = parseTimeZone(rawTz)
      if (tzMin === undefined) {
        this.state.bad(`dev.system.sync.time answer: time zone ${rawTz} is not ±HH:mm`)
        return bad(`time zone ${rawTz} is not ±HH:mm`)
      }
    }
    if (rawTime === undefined) {
      if (tzMin === undefined) {
        this.state.bad('dev.system.sync.time answer carries no time')
        return bad('answer carries no time')
      }
    }
    let ms: number | undefined
    if (rawTime !== undefined) {
      ms = parseServerTime(rawTime, tzMin ?? parseTimeZone(this.state.timeZone) ?? 480)
      if (ms === undefined) {
        this.state.bad(`dev.system.sync.time answer: unreadable time ${rawTime}`)
        return bad(`unreadable time ${rawTime}`)
      }
    }
    if (ms !== undefined) this.state.clockOffsetMs = ms - Date.now()
    if (tzMin !== undefined) this.state.timeZone = formatTimeZone(tzMin)
    else if (rawTime !== undefined) {
      // An ISO time with an offset and no separate zone: the offset is the zone (3.14's format says the offset is the zone's).
      const m = /([+-]\d{2}:\d{2})$/.exec(rawTime)
      if (m) this.state.timeZone = m[1]!
    }
    const entry: { time: string; timeZone?: string } = { time: rawTime ?? '' }
    if (rawTz !== undefined) entry.timeZone = rawTz
    this.state.events.timeSyncs.push(entry)
    return ok(`clock set to ${formatBestTime(this.state.now(), this.state.timeZone)}`)
  }

  private setOptions(p: Json): CmdResult {
    if (!isObj(p.option)) return bad('option must be an object')
    this.state.events.options.push(p.option)
    for (const [k, v] of Object.entries(p.option)) {
      const s = str(v)
      if (s !== undefined) this.state.deviceOptions[k] = s
    }
    return ok(`${Object.keys(p.option).length} option(s) set`)
  }

  verifyLog(opts: { pin?: string; photo?: Buffer; time?: Date; meetCode?: string; verifyStyle?: string; logId?: string } = {}): Promise<Record<string, unknown>> {
    return this.records.verifyLog(opts)
  }
}

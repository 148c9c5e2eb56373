/**
 * A simulated httpv2 face-recognition terminal, written from the vendor document
 * (protocols/httpv2-face.md) plus the field reports in protocols/README.md and the httpv2 part
 * of protocols/AMBIGUITIES.md — and from nothing else. It deliberately shares no code with the
 * httpv2 driver/gateway: a simulator built on the server's codec would confirm its misreadings.
 *
 * httpv2 devices are HTTP *clients*: the device POSTs /Device/Keepalive every KeepaliveTime
 * seconds and follows the flags in the answer, calling the server's other endpoints, then
 * uploads its queued records. Everything runs over one HTTP/1.1 connection (undici `Client`,
 * one socket, one request at a time), as the document's "关于HTTP的连接保持" asks.
 *
 * Where the document is silent or contradicts itself, the decision is a one-line comment that
 * names the section or the AMBIGUITIES item.
 *
 * This file is the device and its exchange loop (keepalive, flags, remote commands); state.ts
 * holds what the device holds, transport.ts its connection, people.ts and records.ts the people
 * and record flows, work-settings.ts its parameters, protocol.ts the document's constants.
 */
import { defaultParameters } from './parameters.js'
import {
  FLAG_NAMES, HTTPV2_PATHS, idCompare, idString, isInt, makeJpeg, OPENDOOR_EVENTS, QuietError, NetError, RebootError, StoppedError, str,
  type Flag,
} from './protocol.js'
import { Httpv2Records } from './records.js'
import { Httpv2Roster } from './people.js'
import { Httpv2State, type DoorState, type Httpv2Events, type Httpv2SimulatorOptions } from './state.js'
import { Httpv2Transport } from './transport.js'
import { Httpv2WorkSettings } from './work-settings.js'

// ---------------------------------------------------------------------------------------------
// Public API.

export interface Httpv2Simulator {
  readonly sn: string
  /** People stored on the device (by the id used in the protocol). */
  people(): Map<string, Record<string, unknown>>
  readonly events: Httpv2Events
  /** Queue a new identification record for upload (and upload it at the next opportunity). Returns its RecordID. */
  addRecord(partial?: Record<string, unknown>): string
  /** Records the server acknowledged (RecordIDs, first acknowledgement order, no repeats). */
  acknowledgedRecords(): string[]
  /** Set what the door reports in keepalives. */
  setDoorState(s: Partial<DoorState>): void
  /** Send a keepalive now (don't wait for the interval); resolves when the whole exchange the answer triggered is done. */
  tick(): Promise<void>
  /** Ask the server for an online decision (RequestAuthorization) for this user id; resolves with the server's Success value. */
  requestAuthorization(userId: string): Promise<number>
  /** Last Success value the server gave to a keepalive (401 for unknown SN, ...). */
  readonly lastKeepaliveSuccess: number | undefined
  /** Begin the keepalive loop (first keepalive immediately). */
  start(): void
  stop(): Promise<void>
}

export function createHttpv2Simulator(opts: Httpv2SimulatorOptions): Httpv2Simulator {
  return new Httpv2Device(opts)
}

// ---------------------------------------------------------------------------------------------
// The device.

class Httpv2Device implements Httpv2Simulator {
  lastKeepaliveSuccess: number | undefined
  private lock: Promise<void> = Promise.resolve()
  private loopDone: Promise<void> | undefined
  private kickQueued = false

  private readonly state: Httpv2State
  private readonly transport: Httpv2Transport
  private readonly records: Httpv2Records
  private readonly roster: Httpv2Roster
  private readonly settings: Httpv2WorkSettings

  constructor(opts: Httpv2SimulatorOptions) {
    this.state = new Httpv2State(opts)
    this.transport = new Httpv2Transport(this.state, opts)
    this.records = new Httpv2Records(this.state, this.transport, opts)
    this.roster = new Httpv2Roster(this.state, this.transport, this.records, (pending) => this.keepaliveIfDue(pending), opts)
    this.settings = new Httpv2WorkSettings(this.state, this.transport)
    for (let i = 0; i < (opts.records ?? 0); i++) this.records.queueRecord({}, this.state.nowS() - (opts.records ?? 0) + i)
  }

  get sn(): string {
    return this.state.sn
  }

  get events(): Httpv2Events {
    return this.state.events
  }

  // -- public ---------------------------------------------------------------------------------

  people(): Map<string, Record<string, unknown>> {
    const m = new Map<string, Record<string, unknown>>()
    for (const [id, p] of this.state.store) m.set(id, { ...p.detail })
    return m
  }

  addRecord(partial: Record<string, unknown> = {}): string {
    const r = this.records.queueRecord(partial, this.state.nowS())
    this.kick()
    return String(r.id)
  }

  acknowledgedRecords(): string[] {
    return [...this.state.acked]
  }

  setDoorState(s: Partial<DoorState>): void {
    const before = { ...this.state.door }
    this.state.door = { ...this.state.door, ...s }
    if (s.DoorSensorStatus !== undefined && s.DoorSensorStatus !== before.DoorSensorStatus) {
      this.records.queueSys(1, s.DoorSensorStatus ? 1 : 2) // 门磁记录: 1 门磁-开门, 2 门磁-关门
    }
    if (s.AlarmStatus !== undefined && s.AlarmStatus !== before.AlarmStatus) this.records.alarmRecords(before.AlarmStatus, s.AlarmStatus)
    this.kick()
  }

  tick(): Promise<void> {
    if (this.state.stopped) return Promise.reject(new Error(`${this.state.sn}: simulator stopped`))
    // tick() sends at once, even inside the interval a reboot skips (that skip is the loop's).
    return this.withLock(() => this.exchange())
  }

  async requestAuthorization(userId: string): Promise<number> {
    if (this.state.stopped) throw new Error(`${this.state.sn}: simulator stopped`)
    let result: number | undefined
    let failure: Error | undefined
    await this.withLock(async () => {
      const p = this.state.store.get(userId)?.detail ?? {}
      const photo = makeJpeg(`AUTH ${this.state.sn} ${userId} ${Date.now()}`)
      // "请求服务器鉴权": RecordID is a request id (example 1718616771001): device ms clock.
      const detail = {
        RecordID: Date.now(),
        RecordType: 3,
        RecordDate: this.state.nowS(),
        UserID: userId,
        Code: str(p.Code),
        Name: str(p.Name),
        IdentityCard: str(p.IdentityCard),
        Job: str(p.Job),
        Department: str(p.Department),
        CardNum: str(p.CardNum) || '0',
        QRCode: '',
        IsEntry: 1,
        BodyTemp: 0,
        PhotoLen: photo.length,
      }
      try {
        const ans = await this.transport.post('/Device/RequestAuthorization', { multipart: this.records.recordParts(detail, photo) })
        if (ans.status !== 200 || !ans.json || typeof ans.json.Success !== 'number') {
          failure = new Error(`RequestAuthorization: HTTP ${ans.status} ${ans.text.slice(0, 200)}`)
          return
        }
        result = ans.json.Success
        // "Success 返回结果": 0 refuse, 1 open and show Message, 2 open silently.
        if (result === 1 || result === 2) this.pulseRelay()
        this.state.log(`RequestAuthorization ${userId} -> ${result}${ans.json.Message ? ` (${String(ans.json.Message)})` : ''}`)
      } catch (e) {
        failure = e as Error
      }
    })
    if (failure) throw failure
    return result as number
  }

  start(): void {
    if (this.state.running || this.state.stopped) return
    this.state.running = true
    this.loopDone = this.loop()
  }

  async stop(): Promise<void> {
    if (this.state.stopped) return
    this.state.stopped = true
    this.state.running = false
    this.transport.abort.abort(new StoppedError('stopped'))
    this.transport.wake?.()
    if (this.state.relayTimer) clearTimeout(this.state.relayTimer)
    await this.loopDone
    await this.lock
    await this.transport.client?.close().catch(() => {})
    this.transport.client = undefined
  }

  // -- loop and exchange ------------------------------------------------------------------------

  private async loop(): Promise<void> {
    while (this.state.running) {
      await this.withLock(() => this.exchange())
      // "设备需要保证两个心跳保活包间隔不要超过设定的轮询间隔"; a reboot skips one interval.
      for (;;) {
        if (!this.state.running) return
        let due = this.state.lastKeepaliveAt + this.state.intervalMs
        if (this.state.rebootedAt) due = Math.max(due, this.state.rebootedAt + 2 * this.state.intervalMs)
        const wait = due - Date.now()
        if (wait <= 0) break
        await this.transport.sleep(wait)
      }
      this.state.rebootedAt = 0
    }
  }

  private withLock(fn: () => Promise<void>): Promise<void> {
    const run = this.lock.then(async () => {
      try {
        await fn()
      } catch (e) {
        if (e instanceof QuietError) {
          this.state.quiet = true
          this.state.log(`quiet until the next keepalive: ${e.message}`)
        } else if (e instanceof NetError) {
          this.state.quiet = true
          this.state.log(`no answer, sleeping until the next keepalive: ${e.message}`)
        } else if (e instanceof RebootError) {
          this.state.quiet = true
        } else if (e instanceof StoppedError || this.state.stopped) {
          // stopping
        } else {
          this.state.problem(`internal error: ${(e as Error).stack ?? String(e)}`)
        }
      }
    })
    this.lock = run
    return run
  }

  /** One keepalive and everything its answer asks for, then the record backlog. */
  private async exchange(): Promise<void> {
    const pending = await this.keepalive()
    if (!this.state.workSettingUploaded) {
      // "调用流程": after the first OK keepalive the device sends its work parameters; an
      // UploadWorkParameter flag in the same answer is satisfied by this upload.
      pending.delete('UploadWorkParameter')
      await this.settings.uploadWorkSetting()
    }
    await this.session(pending)
  }

  /**
   * Flags in priority order, then records. AMBIGUITIES httpv2 #1: the keepalive section's order
   * (UploadWorkParameter > Remote > SyncParameter > DeletePeople > AddPeople) is used, not the
   * call-flow list (syncParameter > Remote > ...), because it is the one that names all five flags.
   * While the loop runs, a keepalive is interleaved whenever one is due ("但要保障在10:00:15 时再次
   * 发送一次心跳"); its flags join the pending set.
   */
  private async session(pending: Set<Flag>): Promise<void> {
    for (;;) {
      this.transport.checkStopped()
      await this.keepaliveIfDue(pending)
      const flag = FLAG_NAMES.find((f) => pending.has(f))
      if (flag) {
        pending.delete(flag)
        await this.handleFlag(flag, pending)
        continue
      }
      const step = await this.records.recordStep()
      if (step === 'done') return
    }
  }

  private async handleFlag(flag: Flag, pending: Set<Flag>): Promise<void> {
    switch (flag) {
      case 'UploadWorkParameter':
        return this.settings.uploadWorkSetting()
      case 'Remote':
        return this.remote()
      case 'SyncParameter':
        return this.settings.syncParameters()
      case 'DeletePeople':
        return this.roster.deletePeople(pending)
      case 'AddPeople':
        return this.roster.addPeople(pending)
    }
  }

  private async keepaliveIfDue(pending: Set<Flag>): Promise<void> {
    if (!this.state.running || Date.now() - this.state.lastKeepaliveAt < this.state.intervalMs) return
    for (const f of await this.keepalive()) pending.add(f)
  }

  /** POST /Device/Keepalive. Returns the flags to follow, or throws QuietError. */
  private async keepalive(): Promise<Set<Flag>> {
    this.state.events.keepalives++
    this.state.lastKeepaliveAt = Date.now()
    // Keepalive request table. AMBIGUITIES httpv2 #4: the example's trailing comma is not copied; valid JSON is sent.
    const ans = await this.transport.post('/Device/Keepalive', { json: { SN: this.state.sn, ...this.state.door } })
    const flags = new Set<Flag>()
    if (ans.status !== 200) {
      this.lastKeepaliveSuccess = undefined
      throw new QuietError(`keepalive: HTTP ${ans.status}`)
    }
    if (!ans.json) {
      this.lastKeepaliveSuccess = undefined
      this.state.problem(`keepalive answer is not a JSON object: ${ans.text.slice(0, 200)}`)
      throw new QuietError('keepalive answer unreadable')
    }
    const success = ans.json.Success
    this.lastKeepaliveSuccess = typeof success === 'number' ? success : undefined
    for (const f of FLAG_NAMES) {
      const v = ans.json[f]
      if (v === undefined || v === null || v === 0) continue
      if (typeof v !== 'number') {
        // Keepalive answer table types every flag as int; a device reads a string as 0.
        this.state.problem(`keepalive flag ${f} is ${JSON.stringify(v)}, not an int: ignored`)
        continue
      }
      // AddPeople/DeletePeople: ">0"; the other three: "1".
      if (f === 'AddPeople' || f === 'DeletePeople' ? v > 0 : v === 1) flags.add(f)
    }
    if (success !== 1) {
      // "返回错误代码" / "服务器拒绝连接": any Success but 1 → only keepalives until one gets 1.
      // README field report: flags with Success 0 were ignored by real devices, so they are here too.
      if (flags.size) {
        this.state.events.ignoredFlagAnswers++
        this.state.problem(`keepalive answer carries flags ${[...flags].join(',')} with Success ${JSON.stringify(success)}: ignored (a device needs Success 1)`)
      }
      throw new QuietError(`keepalive Success ${JSON.stringify(success)}${ans.json.Message ? ` (${String(ans.json.Message)})` : ''}`)
    }
    this.state.quiet = false
    return flags
  }

  // -- remote commands --------------------------------------------------------------------------

  private async remote(): Promise<void> {
    this.state.events.remoteCommands++
    const ans = await this.transport.post(HTTPV2_PATHS[this.state.api].remote, { json: { SN: this.state.sn } })
    if (!this.transport.ok(ans, 'RemoteCommand') || !ans.json) return
    const c = ans.json
    const intField = (k: string): number => {
      const v = c[k]
      if (v === undefined || v === null) return 0
      if (typeof v !== 'number') { this.state.problem(`RemoteCommand ${k} is ${JSON.stringify(v)}, not an int: ignored`); return 0 }
      return v
    }
    const open = intField('Opendoor')
    if (open) this.opendoor(open)
    if (intField('Closealarm') === 1) this.closeAlarm()
    if (intField('ClearRecord') === 1) {
      this.state.events.recordsCleared++
      this.state.idRecords = []
      this.state.sysRecords = []
      this.records.queueSys(2, 44) // 删除所有记录
    }
    if (intField('RepostRecord') === 1) {
      // "将所有已上传记录重新标记为未上传并重新传输": identification and system records alike.
      for (const r of this.state.idRecords) { r.uploaded = false; r.notBefore = 0 }
      for (const r of this.state.sysRecords) { r.uploaded = false; r.notBefore = 0 }
    }
    if (intField('Recover') === 1) this.recover()
    if (c.QueryPeople !== undefined && c.QueryPeople !== null) {
      if (!Array.isArray(c.QueryPeople)) this.state.problem(`RemoteCommand QueryPeople is ${JSON.stringify(c.QueryPeople)}, not an array: ignored`)
      else {
        for (const raw of c.QueryPeople) {
          const id = idString(raw)
          if (id === undefined) { this.state.problem(`RemoteCommand QueryPeople holds ${JSON.stringify(raw)}: skipped`); continue }
          await this.roster.pushPerson(id, 4)
        }
      }
    }
    if (intField('PushAllPeople') === 1) {
      // AMBIGUITIES httpv2 #12: no end marker exists, none is invented. One PushPeople (PushType 4) per person, by ascending
      // UserID, all inside this exchange (no keepalive is interleaved): the run is complete when the next keepalive arrives.
      const ids = [...this.state.store.keys()].sort(idCompare)
      for (const id of ids) await this.roster.pushPerson(id, 4)
    }
    if (c.RegisterIdentifyTicket !== undefined && c.RegisterIdentifyTicket !== null && c.RegisterIdentifyTicket !== 0) await this.roster.registerTicket(c)
    if (intField('Snapshoot') === 1) await this.snapshot()
    for (const k of ['PushSoftware', 'PushSystemFile', 'OpenElevatorPort', 'KeepOpenElevatorPort', 'CloseElevatorPort', 'LockElevatorPort', 'UnlockElevatorPort']) {
      if (c[k] !== undefined && c[k] !== null && c[k] !== '' && c[k] !== 0) {
        this.state.events.unsupported.push(k)
        this.state.log(`RemoteCommand ${k} not simulated: ignored`)
      }
    }
    // Restart last: everything else in the same answer is done before the device goes down.
    if (intField('Restart') === 1) this.reboot()
  }

  private opendoor(mode: number): void {
    if (mode < 1 || mode > 5 || !Number.isInteger(mode)) { this.state.problem(`RemoteCommand Opendoor ${mode} is not 0..5: ignored`); return }
    this.state.events.opens.push(mode)
    const d = this.state.door
    switch (mode) {
      case 1: this.pulseRelay(); break
      case 2: d.KeepOpenStatus = 1; d.RelayStatus = 1; break
      case 3: d.KeepOpenStatus = 0; d.RelayStatus = 0; break
      // Locking ends a keep-open; the relay drops.
      case 4: d.LockDoorStatus = 1; d.KeepOpenStatus = 0; d.RelayStatus = 0; break
      case 5: d.LockDoorStatus = 0; break
    }
    this.records.queueSys(2, OPENDOOR_EVENTS[mode] ?? 1)
  }

  /** Opendoor 1: relay on for ReleaseTime seconds (work parameter), then off unless kept open. */
  private pulseRelay(): void {
    this.state.door.RelayStatus = 1
    if (this.state.relayTimer) clearTimeout(this.state.relayTimer)
    const secs = isInt(this.state.params.ReleaseTime) ? this.state.params.ReleaseTime : 3
    this.state.relayTimer = setTimeout(() => {
      this.state.relayTimer = undefined
      if (!this.state.door.KeepOpenStatus) this.state.door.RelayStatus = 0
    }, secs * 1000)
    this.state.relayTimer.unref()
  }

  private closeAlarm(): void {
    // "关闭所有正在发生的报警，并记录".
    this.state.events.alarmsClosed++
    const before = this.state.door.AlarmStatus
    this.state.door.AlarmStatus = ''
    this.records.alarmRecords(before, '')
  }

  private recover(): void {
    // Factory reset: people, records and parameters go; the server connection is kept so the simulation goes on.
    this.state.events.recovers++
    this.state.store.clear()
    this.state.idRecords = []
    this.state.sysRecords = []
    this.state.params = defaultParameters(this.state.sn, String(this.state.params.HTTPClient_ServerAddr), this.state.intervalMs, this.state.gzip, this.state.api)
    this.state.workSettingUploaded = false
  }

  private reboot(): void {
    this.state.events.reboots++
    this.state.rebootedAt = Date.now()
    this.state.log('Restart: rebooting (the loop skips one interval)')
    this.state.door.RelayStatus = this.state.door.KeepOpenStatus ? 1 : 0
    this.state.workSettingUploaded = false // "设备开机时发送一次"
    this.records.queueSys(2, 28) // 系统加电
    throw new RebootError('restart')
  }

  private async snapshot(): Promise<void> {
    // The Remote table says "上传快照调用API /Device/RegisterIdentifyTicketResult"; the snapshot section has its own
    // endpoint and form (SN, Photo), which is what is used.
    this.state.events.snapshots++
    const photo = makeJpeg(`SNAPSHOT ${this.state.sn} ${Date.now()}`)
    const ans = await this.transport.post('/Device/UploadSnapshoot', {
      multipart: [
        { name: 'SN', data: this.state.sn },
        { name: 'Photo', data: photo, filename: 'Snapshoot.jpg', contentType: 'image/jpeg' },
      ],
    })
    this.transport.ok(ans, 'UploadSnapshoot')
  }

  /** New record or door event while the loop runs and the server accepts us: upload now ("当设备中有新的打卡记录时使用此接口"). */
  private kick(): void {
    if (!this.state.running || this.state.quiet || this.kickQueued) return
    this.kickQueued = true
    void this.withLock(async () => {
      this.kickQueued = false
      if (!this.state.quiet) await this.session(new Set())
    })
  }
}

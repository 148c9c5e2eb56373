import { NOT_SIMULATED_PARAMETERS, READ_ONLY_PARAMETERS, sameType } from './parameters.js'
import { isInt, MAX_PEOPLE, str } from './protocol.js'
import type { Httpv2State } from './state.js'
import type { Httpv2Transport } from './transport.js'

/** Work parameters: UploadWorkSetting (what the device reports) and DownloadWorkSetting (what the server sets). */
export class Httpv2WorkSettings {
  constructor(private readonly state: Httpv2State, private readonly transport: Httpv2Transport) {}

  private workParameters(): Record<string, unknown> {
    const counts = this.state.store.size
    const faces = [...this.state.store.values()].filter((p) => p.photo).length
    const cards = [...this.state.store.values()].filter((p) => str(p.detail.CardNum) !== '' && str(p.detail.CardNum) !== '0').length
    return {
      ...this.state.params,
      SystemTime: this.state.nowS(),
      RunDays: Math.floor((this.state.nowS() - this.state.bootTime) / 86400),
      FormatCount: 0,
      WatchDogCount: 0,
      BootTime: this.state.bootTime,
      RelayStatus: this.state.door.RelayStatus,
      KeepOpenStatus: this.state.door.KeepOpenStatus,
      DoorSensorStatus: this.state.door.DoorSensorStatus,
      LockDoorStatus: this.state.door.LockDoorStatus,
      // The UploadWorkSetting example reports no alarm as the two-character string "\"\"" — reproduced.
      AlarmStatus: this.state.door.AlarmStatus === '' ? '""' : this.state.door.AlarmStatus,
      PeopleStorageInfo: {
        Person: { Max: MAX_PEOPLE, Current: counts },
        Face: { Max: MAX_PEOPLE, Current: faces },
        Card: { Max: MAX_PEOPLE, Current: cards },
        Fingerprint: { Max: 0, Current: 0 },
        PalmVein: { Max: 0, Current: 0 },
        Pasword: { Max: MAX_PEOPLE, Current: [...this.state.store.values()].filter((p) => str(p.detail.Password) !== '').length }, // sic
        Admin: { Max: 5, Current: [...this.state.store.values()].filter((p) => p.detail.AccessType === 1).length },
      },
      RecordStorageInfo: {
        VerifyRecord: { Max: 1000000, Current: this.state.idRecords.length },
        DoorRecord: { Max: 10000, Current: this.state.sysRecords.filter((r) => r.category === 1).length },
        SystemRecord: { Max: 10000, Current: this.state.sysRecords.filter((r) => r.category === 2).length },
        RecordPhoto: { Max: 10000, Current: this.state.idRecords.filter((r) => r.photo).length },
      },
      FirmwareVerson: 'sim-1.0',
      FingerprintVerson: '-',
      FaceVerson: '6.01',
      FunctionList: {
        BodyTemperature: false, Fingerprint: false, Palmvein: false, Face: true, QRCode: true, FaceMask: false,
        SafetyHelmet: false, Lift: false, AlarmClock: true, ExcelFile: false, ZipFile: false, TimeGroup: 64, WIFI: false,
        HTTPClient_V1: true, HTTPClient_V2: true, MQTT: false, YZW: false, Websocket_V1: false, Websocket_V2: false,
      },
    }
  }

  async uploadWorkSetting(): Promise<void> {
    this.state.events.workParameterUploads++
    const ans = await this.transport.post('/Device/UploadWorkSetting', { json: this.workParameters() })
    if (this.transport.ok(ans, 'UploadWorkSetting')) this.state.workSettingUploaded = true
  }

  /** SyncParameter → DownloadWorkSetting; applies every settable parameter, then re-uploads if anything changed. */
  async syncParameters(): Promise<void> {
    this.state.events.workSettingDownloads++
    const ans = await this.transport.post('/Device/DownloadWorkSetting', { json: { SN: this.state.sn } })
    if (!this.transport.ok(ans, 'DownloadWorkSetting') || !ans.json) return
    const a = ans.json
    let changed = false
    if (a.SystemTime !== undefined || a.TimeZone !== undefined) {
      this.state.events.timeSets.push({ SystemTime: a.SystemTime, TimeZone: a.TimeZone })
    }
    for (const [k, v] of Object.entries(a)) {
      if (k === 'Success' || k === 'Message') continue
      if (k === 'DeviceSN') {
        if (v !== this.state.sn) this.reject(k, `is ${JSON.stringify(v)}, this device is ${this.state.sn}`)
        continue
      }
      if (k === 'SystemTime') {
        // "SystemTime": unix seconds (example 1718421632). Milliseconds would put the clock ~50000 years ahead.
        if (!isInt(v) || v < 0) { this.reject(k, `${JSON.stringify(v)} is not unix seconds`); continue }
        if (v > 1e11) this.state.problem(`SystemTime ${v} looks like milliseconds; the document uses seconds (applied anyway, as a device would)`)
        this.state.clockOffsetS = v - Math.floor(Date.now() / 1000)
        changed = true
        continue
      }
      if (k === 'TimeZone') {
        // AMBIGUITIES httpv2 #14: whole hours only.
        if (!isInt(v) || v < -12 || v > 14) { this.reject(k, `${JSON.stringify(v)} is not a whole-hour zone (-12..14)`); continue }
      }
      if (READ_ONLY_PARAMETERS.has(k)) { this.reject(k, 'read-only (reported by UploadWorkSetting, not settable)'); continue }
      if (NOT_SIMULATED_PARAMETERS.has(k)) {
        if (JSON.stringify(v) !== JSON.stringify(this.state.params[k])) this.reject(k, `${JSON.stringify(v)} not followed by the simulator (it keeps its --server)`)
        continue
      }
      if (!(k in this.state.params)) { this.reject(k, 'unknown parameter'); continue }
      if (!sameType(this.state.params[k], v)) { this.reject(k, `${JSON.stringify(v)} has the wrong type (device has ${JSON.stringify(this.state.params[k])})`); continue }
      if (k === 'HTTPClient_KeepaliveTime') {
        if (!isInt(v) || v < 1) { this.reject(k, `${JSON.stringify(v)} is not a positive number of seconds`); continue }
        // The HTTP client's own interval (KeepaliveTime belongs to the TCP client group beside ServerAddress/ServerPort).
        if (v !== this.state.params[k]) this.state.intervalMs = v * 1000
      }
      if (k === 'HTTPClient_ProtocolType') {
        if (v !== 100 && v !== 200) { this.reject(k, `${JSON.stringify(v)} is neither 100 (v1) nor 200 (v2)`); continue }
        this.state.api = v === 100 ? 'v1' : 'v2'
      }
      if (k === 'HTTPClient_UseGZIP') this.state.gzip = v === 1
      if (JSON.stringify(this.state.params[k]) !== JSON.stringify(v)) {
        this.state.params[k] = v
        changed = true
      }
    }
    // "上传当前设备参数": "设备属性变化时会再次上传".
    if (changed) await this.uploadWorkSetting()
  }

  private reject(name: string, reason: string): void {
    this.state.events.rejectedParameters.push(`${name}: ${reason}`)
    this.state.problem(`DownloadWorkSetting ${name} ${reason}`)
  }
}

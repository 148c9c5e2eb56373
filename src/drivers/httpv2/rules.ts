/**
 * httpv2 rules and tables the CLI needs without loading the gateway side: the PeopleJson limits
 * (httpv2-face.md, 人员管理 → PeopleJson人员数据格式), the record columns we add, the command kinds
 * and the work-setting sections (设备工作参数: the DownloadWorkSetting example is the list of
 * "所有可修改参数", every parameter the server may set).
 */
import type { CommandKind } from '../../types/gateway.js'
import type { PersonRules } from '../../types/driver.js'
import type { SettingSpec, SettingsSchema, SettingsSection } from '../../types/settings.js'

/** UserID: "数字 最大值 4294967295 类型 UINT32"; 0 is excluded (records use user 0 for "nobody", RecordType 25), and so are leading zeros (the device would store "007" as 7). */
export const USER_ID_RE = /^(?:[1-9]\d{0,8}|[1-3]\d{9}|4[01]\d{8}|42[0-8]\d{7}|429[0-3]\d{6}|4294[0-8]\d{5}|42949[0-5]\d{4}|429496[0-6]\d{3}|4294967[01]\d{2}|42949672[0-8]\d|429496729[0-5])$/

/**
 * PeopleJson limits. Name/Department "字符<64位" and "字符是指字节" (a character means a byte): at
 * most 63 UTF-8 bytes. CardNum is a uint64 (the document's "UINT62" is a typo, AMBIGUITIES #13):
 * at most 20 digits. Password 0 or 4–8 digits. Digits-only for card/password and the 4-digit
 * minimum cannot be said in PersonRules: the gateway refuses such a person (failed outcome, not sent).
 * There is no phone field in PeopleJson, so phone is accepted and not sent.
 */
export const personRules: PersonRules = {
  protocol: 'httpv2',
  maxLength: { id: 10, name: 63, department: 63, card: 20, password: 8 },
  required: ['id'],
  idPattern: { re: USER_ID_RE, description: 'digits only, 1 to 4294967295, no leading zeros (the device stores UserID as a UINT32)' },
  // PeopleJson: CardNum is a number (UINT64), Password "纯数字, 长度 0 / 4-8"
  patterns: {
    card: { re: /^\d{1,20}$/, description: 'digits only (the device stores CardNum as a number)' },
    password: { re: /^\d{4,8}$/, description: '4 to 8 digits' },
  },
  maxPhotoBytes: 400 * 1024,
  lengthInBytes: true,
}

/** AccessRecord.extras keys httpv2 records carry, in output order. */
export const recordExtras = ['record_type', 'event', 'card', 'qrcode', 'temperature', 'code', 'department', 'job'] as const

/** Command kinds an httpv2 device can carry out (README operations table). */
export const kinds: ReadonlySet<CommandKind> = new Set<CommandKind>([
  'open', 'reboot', 'syncTime', 'info', 'setConfig', 'upsertPeople', 'deletePeople', 'listPeople', 'enrollFace', 'snapshot', 'repostRecords',
])

const N: SettingSpec = { type: 'number' }
const S: SettingSpec = { type: 'string' }
const O: SettingSpec = { type: 'object' }
const A: SettingSpec = { type: 'array' }
/** Passwords: the device reports them, but doorctl never keeps or shows them (so their current value is unknown). */
const SECRET: SettingSpec = { type: 'string', secret: true }
/** A door's own addresses: never given to several doors by one `*` or tag row. */
const OWN: SettingSpec = { type: 'string', perDevice: true }
/** The clock: set by `device sync-time`, left out of exports (it would set a copied time back). */
const CLOCK: SettingSpec = { type: 'integer', min: 0, volatile: true }
/** AMBIGUITIES #14: TimeZone is whole hours. */
const ZONE: SettingSpec = { type: 'integer', min: -12, max: 14 }

/**
 * The writable work parameters, grouped the way the DownloadWorkSetting example orders them
 * (the document gives no group names: these are ours). Types are the example values' types; the
 * referenced 设备工作参数.md with ranges is not part of the document, so only TimeZone has one.
 */
export const WORK_SETTINGS: Readonly<Record<string, SettingsSection>> = {
  alarm: {
    FireAlarm: N, DoorLongOpenAlarm: N, DoorLongOpenTime: N, DoorSensorAlarm: N, DoorSensorAlarmTimegroup: O,
    BlacklistAlarm: N, AntiDisassemblyAlarm: N, IllegalVerificationAlarm: N, IllegalVerificationAlarmLimit: N,
    UseUserCloseAlarm: N, PasswordAlarm: N, PasswordAlarm_Password: SECRET, PasswordAlarm_Mode: N, AlarmClocks: A,
  },
  temperature: {
    UseBodyTemperature: N, UseFahrenheitDisplay: N, TemperatureCompensate: N, TemperatureAlarmThreshold: N, TemperatureDisplay: N,
  },
  access: {
    CardBytes: N, AccessType: N, WgFormat: N, WGContent: N, ReleaseTime: N, FreeOpen: N, OpenInterval: N,
    OpenInterval_SaveRecord: N, Relay: N, ShortMessage: S, VerificationType: N, OverdueRemind: N, OverdueRemind_Day: N,
    TimingOpen: N, TimingOpen_mode: N, TimingOpen_timegroup: O, TimingLocked: N, TimingLocked_timegroup: O,
    VisitorRootPassword: SECRET, MultiPerson: N, TimeGroups: A, Holidays: A,
  },
  elevator: { UseElevator: N, ElevatorPorts: A },
  face: {
    FaceIR: N, FaceIRThreshold: N, FaceDistance: N, FaceThreshold: N, FPComparison: N, FaceMask: N, FaceMaskThreshold: N,
  },
  system: {
    Language: N, SystemTime: CLOCK, UseNTP: N, TimeZone: ZONE, Volume: N, Voice: N, ConnectPassword: SECRET,
    AutoRestart: N, AutoRestartTime: S, MenuPassword: SECRET,
  },
  network: {
    UseWired: N, WiredDHCP: N, WiredIP: OWN, WiredIPMask: S, WiredGteway: S, WiredDNS: S, WiredMAC: OWN,
    UseWIFI: N, WIFIDHCP: N, WIFIIP: OWN, WIFIIPMask: S, WIFIGteway: S, WIFIDNS: S, WIFIMAC: OWN,
    WIFIAPName: S, WIFIAPPassword: SECRET,
  },
  services: {
    UseWebPage: N, HTTPPort: N, HTTPSPort: N, WebPageUseSSL: N, UseUDP: N, UDPPort: N, UseTelnet: N,
    TelnetPort: N, UseRTSP: N, RTSPPort: N, RTSPUser: S, RTSPPassword: SECRET,
  },
  server: {
    UseTCPClient: N, UseUDPClient: N, ServerAddress: S, ServerPort: N, KeepaliveTime: N, UseHTTPClient: N,
    HTTPClient_ProtocolType: N, HTTPClient_ServerAddr: S, HTTPClient_KeepaliveTime: N, HTTPClient_UseGZIP: N,
    UseMQTTClient: N, UseMQTTSSL: N, MQTTServerAddr: S, MQTTPort: N, MQTTLoginName: S, MQTTLoginPassword: SECRET,
    MQTTPublishTopic: S, MQTTSubscribeTopic: S, MQTT_KeepaliveTime: N, MQTT_UseGZIP: N, UseWebsocketClient: N,
    WebsocketClient_ProtocolType: N, WebsocketClient_ServerAddr: S, WebsocketClient_UseGZIP: N, WebsocketClient_KeepaliveTime: N,
    UseYZW: N, YZWAddr: S,
  },
  records: { RecordAutoCycle: N, SaveUnregistered: N, SaveRecordPicture: N },
  display: {
    DisplayBrightness: N, ShowIR: N, ShowPersonPhoto: N, PlayPersonName: N, RecognitionButton: N,
    UnregisteredWarn: N, ShowPersonName: N, FillLight: N,
  },
  identity: { DeviceName: S, Manufacturer: S, ManufacturerPhone: S, Website: S, ProductionDate: S, OEMText: S },
}

/** Config sections (`device config get/set SECTION`); `json` (any writable key) is handled by the CLI itself. */
export const configSections: readonly string[] = Object.keys(WORK_SETTINGS)

/** Every writable parameter, read from UploadWorkSetting; one DownloadWorkSetting carries keys of every section (`json`). */
export const settingsSchema: SettingsSchema = { sections: WORK_SETTINGS, writeAllAs: 'json' }

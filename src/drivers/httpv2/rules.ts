/**
 * httpv2 rules and tables the CLI needs without loading the gateway side: the PeopleJson limits
 * (httpv2-face.md, 人员管理 → PeopleJson人员数据格式), the record columns we add, the command kinds
 * and the work-setting sections (设备工作参数: the DownloadWorkSetting example is the list of
 * "所有可修改参数", every parameter the server may set).
 */
import type { CommandKind } from '../../types/gateway.js'
import type { PersonRules } from '../../types/driver.js'

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

export type SettingType = 'number' | 'string' | 'object' | 'array'

/**
 * The writable work parameters, grouped the way the DownloadWorkSetting example orders them
 * (the document gives no group names: these are ours). Types are the example values' types.
 */
export const WORK_SETTINGS: Readonly<Record<string, Readonly<Record<string, SettingType>>>> = {
  alarm: {
    FireAlarm: 'number', DoorLongOpenAlarm: 'number', DoorLongOpenTime: 'number', DoorSensorAlarm: 'number', DoorSensorAlarmTimegroup: 'object',
    BlacklistAlarm: 'number', AntiDisassemblyAlarm: 'number', IllegalVerificationAlarm: 'number', IllegalVerificationAlarmLimit: 'number',
    UseUserCloseAlarm: 'number', PasswordAlarm: 'number', PasswordAlarm_Password: 'string', PasswordAlarm_Mode: 'number', AlarmClocks: 'array',
  },
  temperature: {
    UseBodyTemperature: 'number', UseFahrenheitDisplay: 'number', TemperatureCompensate: 'number', TemperatureAlarmThreshold: 'number', TemperatureDisplay: 'number',
  },
  access: {
    CardBytes: 'number', AccessType: 'number', WgFormat: 'number', WGContent: 'number', ReleaseTime: 'number', FreeOpen: 'number', OpenInterval: 'number',
    OpenInterval_SaveRecord: 'number', Relay: 'number', ShortMessage: 'string', VerificationType: 'number', OverdueRemind: 'number', OverdueRemind_Day: 'number',
    TimingOpen: 'number', TimingOpen_mode: 'number', TimingOpen_timegroup: 'object', TimingLocked: 'number', TimingLocked_timegroup: 'object',
    VisitorRootPassword: 'string', MultiPerson: 'number', TimeGroups: 'array', Holidays: 'array',
  },
  elevator: { UseElevator: 'number', ElevatorPorts: 'array' },
  face: {
    FaceIR: 'number', FaceIRThreshold: 'number', FaceDistance: 'number', FaceThreshold: 'number', FPComparison: 'number', FaceMask: 'number', FaceMaskThreshold: 'number',
  },
  system: {
    Language: 'number', SystemTime: 'number', UseNTP: 'number', TimeZone: 'number', Volume: 'number', Voice: 'number', ConnectPassword: 'string',
    AutoRestart: 'number', AutoRestartTime: 'string', MenuPassword: 'string',
  },
  network: {
    UseWired: 'number', WiredDHCP: 'number', WiredIP: 'string', WiredIPMask: 'string', WiredGteway: 'string', WiredDNS: 'string', WiredMAC: 'string',
    UseWIFI: 'number', WIFIDHCP: 'number', WIFIIP: 'string', WIFIIPMask: 'string', WIFIGteway: 'string', WIFIDNS: 'string', WIFIMAC: 'string',
    WIFIAPName: 'string', WIFIAPPassword: 'string',
  },
  services: {
    UseWebPage: 'number', HTTPPort: 'number', HTTPSPort: 'number', WebPageUseSSL: 'number', UseUDP: 'number', UDPPort: 'number', UseTelnet: 'number',
    TelnetPort: 'number', UseRTSP: 'number', RTSPPort: 'number', RTSPUser: 'string', RTSPPassword: 'string',
  },
  server: {
    UseTCPClient: 'number', UseUDPClient: 'number', ServerAddress: 'string', ServerPort: 'number', KeepaliveTime: 'number', UseHTTPClient: 'number',
    HTTPClient_ProtocolType: 'number', HTTPClient_ServerAddr: 'string', HTTPClient_KeepaliveTime: 'number', HTTPClient_UseGZIP: 'number',
    UseMQTTClient: 'number', UseMQTTSSL: 'number', MQTTServerAddr: 'string', MQTTPort: 'number', MQTTLoginName: 'string', MQTTLoginPassword: 'string',
    MQTTPublishTopic: 'string', MQTTSubscribeTopic: 'string', MQTT_KeepaliveTime: 'number', MQTT_UseGZIP: 'number', UseWebsocketClient: 'number',
    WebsocketClient_ProtocolType: 'number', WebsocketClient_ServerAddr: 'string', WebsocketClient_UseGZIP: 'number', WebsocketClient_KeepaliveTime: 'number',
    UseYZW: 'number', YZWAddr: 'string',
  },
  records: { RecordAutoCycle: 'number', SaveUnregistered: 'number', SaveRecordPicture: 'number' },
  display: {
    DisplayBrightness: 'number', ShowIR: 'number', ShowPersonPhoto: 'number', PlayPersonName: 'number', RecognitionButton: 'number',
    UnregisteredWarn: 'number', ShowPersonName: 'number', FillLight: 'number',
  },
  identity: { DeviceName: 'string', Manufacturer: 'string', ManufacturerPhone: 'string', Website: 'string', ProductionDate: 'string', OEMText: 'string' },
}

/** Config sections (`device config get/set SECTION`); `json` (any writable key) is handled by the CLI itself. */
export const configSections: readonly string[] = Object.keys(WORK_SETTINGS)

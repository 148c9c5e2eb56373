/**
 * best rules and tables the CLI needs without loading the gateway side: person limits, the record
 * columns we add, the command kinds and the config sections (best.txt).
 */
import type { CommandKind } from '../../types/gateway.js'
import type { PersonRules } from '../../types/driver.js'
import type { SettingSpec, SettingsSchema, SettingsSection } from '../../types/settings.js'

/**
 * The document gives no lengths for pin or names (3.14 types them "字符串" only). A pin is a
 * string the device stores and echoes in logs and MQTT-free JSON: we refuse whitespace and control
 * characters and keep it to 32 characters, names to 64. Cards must be decimal strings (3.17): the
 * gateway refuses a person with any other card before sending. phone/department have no field.
 */
export const personRules: PersonRules = {
  protocol: 'best',
  maxLength: { id: 32, name: 64, card: 20, password: 32 },
  required: ['id'],
  idPattern: { re: /^[^\s\u0000-\u001f\u007f]{1,32}$/, description: 'no spaces or control characters, at most 32 characters' },
  maxPhotoBytes: 400 * 1024,
}

/** AccessRecord.extras keys best verify logs carry (3.12), in output order. */
export const recordExtras = ['meet_code', 'verify_style', 'sign_status', 'category', 'record_type'] as const

/**
 * Command kinds a best device can carry out (README operations table). The document has no door
 * command (open), no snapshot and no record re-upload.
 */
export const kinds: ReadonlySet<CommandKind> = new Set<CommandKind>([
  'reboot', 'syncTime', 'info', 'setConfig', 'upsertPeople', 'deletePeople', 'listPeople', 'enrollFace',
])

const SWITCH: SettingSpec = { type: 'integer', min: 0, max: 1 }

/**
 * cmd.option.set's `option` object (3.28), every value sent as a string (AMBIGUITIES #10).
 * 3.28 documents the meeting-room keys; the device never reports them, so their current value is
 * what it last confirmed to doorctl (unknown before). dev.report (3.5) reports the device's own
 * switches with their ranges: they are the same parameter data ("option" in the appendix's funcId
 * naming), so they are set through cmd.option.set too and read from the latest report. What
 * dev.report says the device supports (qrCodeSupport, *FunOn, sipOn, adOn) is a fact, not a setting.
 */
export const OPTION_SETTINGS: SettingsSection = {
  meetRoomName: { type: 'string' },
  meetRoomManager: { type: 'string' },
  meetRoomLocation: { type: 'string' },
  // a capacity is a count, though 3.28 types every value as text
  meetRoomCapacity: { type: 'integer', min: 0 },
  meetRoomManagerPin: { type: 'string' },
  qrCodeOn: SWITCH,
  cameraOn: SWITCH,
  capturePic: { type: 'integer', min: 0, max: 4 },
  enableBioTest: SWITCH,
  voiceOn: SWITCH,
  keyPadBeepOn: SWITCH,
  volume: { type: 'integer', min: 0, max: 100 },
  irTempDetectionOn: SWITCH,
  maxTemperature: { type: 'number' },
  minTemperature: { type: 'number' },
  temperatureOn: SWITCH,
  irTempUnit: SWITCH,
  maskDetectionOn: SWITCH,
  maskOn: SWITCH,
  scene: { type: 'integer', min: 1, max: 2 },
}

/** `device config set option KEY=VALUE`; `json` passes any keys. */
export const configSections: readonly string[] = ['option']

export const settingsSchema: SettingsSchema = { sections: { option: OPTION_SETTINGS } }

/** The option keys best.txt documents (3.28, and dev.report's switches); others are passed through as the device may know them. */
export const OPTION_KEYS: readonly string[] = Object.keys(OPTION_SETTINGS)

export const unsupportedWhy: Partial<Record<CommandKind, string>> = {
  open: 'best devices have no remote door-open command (best.txt has none)',
  snapshot: 'best devices have no snapshot command (best.txt has none)',
  repostRecords: 'best devices have no command to upload their records again (best.txt has none)',
}

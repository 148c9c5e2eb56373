/**
 * best rules and tables the CLI needs without loading the gateway side: person limits, the record
 * columns we add, the command kinds and the config sections (best.txt).
 */
import type { CommandKind } from '../../types/gateway.js'
import type { PersonRules } from '../../types/driver.js'

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

/** `device config set option KEY=VALUE`: cmd.option.set's `option` object (3.28); `json` passes any keys. */
export const configSections: readonly string[] = ['option']

/** The option keys 3.28 documents (meeting-room settings); others are passed through as the device may know them. */
export const OPTION_KEYS: readonly string[] = ['meetRoomName', 'meetRoomManager', 'meetRoomLocation', 'meetRoomCapacity', 'meetRoomManagerPin']

export const unsupportedWhy: Partial<Record<CommandKind, string>> = {
  open: 'best devices have no remote door-open command (best.txt has none)',
  snapshot: 'best devices have no snapshot command (best.txt has none)',
  repostRecords: 'best devices have no command to upload their records again (best.txt has none)',
}

/**
 * wsjson rules and tables the CLI needs without loading the gateway side: the person limits of
 * ws-json.txt 4.1 (设备控制参数), the record columns we add, and the command kinds.
 */
import type { CommandKind } from '../../types/gateway.js'
import type { PersonRules } from '../../types/driver.js'

/**
 * 4.1 gives the six user fields (user, userId, pwd, name, role, img) as strings "新增必传" and no
 * lengths at all. Decisions (AMBIGUITIES wsjson #6):
 * - `id` and `name` are required here: the CSV has both, and a person without a name cannot be added.
 * - `pwd` and `img` are sent as empty strings when the CSV has none (the codec's addUserContent);
 *   a device that insists refuses that person with its own reason, which the report shows.
 *   (PersonRules cannot require a photo; nor would we: enrolling faces later is the common case.)
 * - Lengths: none documented; these bounds are ours, to catch a wrong column before anything is sent.
 * - Photo: base64 inside one WebSocket frame; 400 KB like every other protocol.
 * - No card, phone, department or validity fields exist: accepted and not sent (the import says so).
 */
export const personRules: PersonRules = {
  protocol: 'wsjson',
  maxLength: { id: 64, name: 64, password: 32 },
  required: ['id', 'name'],
  maxPhotoBytes: 400 * 1024,
}

/** AccessRecord.extras keys wsjson records carry, in output order: the event's `door` (0 in, 1 out) and the register `type` (0 both, 1 exit, 2 entry). */
export const recordExtras = ['door', 'terminal_type'] as const

/**
 * Command kinds a wsjson device can carry out (protocols/README.md, wsjson column):
 * info (the register message), people import/delete/list and face enroll. ws-json.txt has no
 * command to open, reboot, set the time or settings, take a snapshot, or re-send all records
 * (queryEvent fetches one event by its id only).
 */
export const kinds: ReadonlySet<CommandKind> = new Set<CommandKind>(['info', 'upsertPeople', 'deletePeople', 'listPeople', 'enrollFace', 'checkFace'])

/** compareUser (3.1.5): payload `{ photoPath }` (or `{ photoBase64 }`); result `data: { exists: boolean }`. */
export const CHECK_FACE_KIND: CommandKind = 'checkFace'

/** Queued command kind that fetches events by id (queryEvent, 3.1.6): payload `{ eventIds: string[] }`. */
export const FETCH_EVENTS_KIND = 'repostRecords'

const VIA = 'ws-json.txt has only addUser, editUser, deleteUser, selectUser, compareUser and queryEvent'

/** Why an operation is unsupported, for the CLI's message. */
export const unsupportedWhy: Partial<Record<CommandKind, string>> = {
  open: `wsjson devices cannot open the door remotely (${VIA})`,
  reboot: `wsjson devices cannot be rebooted remotely (${VIA})`,
  syncTime: `wsjson devices cannot have their clock set (${VIA})`,
  setConfig: `wsjson devices have no settings to change (${VIA})`,
  snapshot: `wsjson devices cannot take a snapshot (${VIA})`,
  repostRecords: 'wsjson devices cannot upload all their records again: queryEvent fetches one event by its id',
}

/**
 * udp intercom rules and tables the CLI needs without loading the gateway side
 * (udp-intercom.txt). The device keys people by phone (AMBIGUITIES udp #7): a person without a
 * phone cannot go to a udp device. Names, cards and ids never reach the device (no such fields).
 */
import type { CommandKind } from '../../types/gateway.js'
import type { PersonRules } from '../../types/driver.js'

/**
 * Phone ("手机号"): the examples are 11 digits (13533335555) and 12 digits (354756412341, section 6).
 * Digits with an optional leading +, 5 to 20 of them, checked in the CSV before anything is sent
 * (and again by the gateway, for people that reach it another way).
 */
export const PHONE_RE = /^\+?\d{5,20}$/
export const PHONE_DESCRIPTION = 'digits only (an optional leading +), 5 to 20 of them'

/**
 * roomNumber is "4位长度" in the unlock command but "8位长度" in its ack (AMBIGUITIES udp #9): the
 * CSV may hold either, so at most 8; unitId "共4位" (section 2) / "4位长度" (section 7).
 */
export const personRules: PersonRules = {
  protocol: 'udp',
  maxLength: { phone: 21, room: 8, unit: 4 },
  required: ['phone'],
  patterns: { phone: { re: PHONE_RE, description: PHONE_DESCRIPTION } },
  maxPhotoBytes: 400 * 1024,
}

/** AccessRecord.extras keys of udp records (/unlockCallback), in output order. */
export const recordExtras = ['unlock_type', 'event', 'phone', 'room', 'unit'] as const

/**
 * What the document offers: unlock (7), setting (8), reboot (9), faces through /updateImage (5)
 * with verdicts at /authImage (6). `info` is answered from the last heartbeat's fields (1).
 */
export const kinds: ReadonlySet<CommandKind> = new Set<CommandKind>(['open', 'reboot', 'setConfig', 'info', 'upsertPeople', 'deletePeople', 'enrollFace'])

/** Why the other operations cannot be done, in the words the CLI shows. */
export const unsupportedWhy: Partial<Record<CommandKind, string>> = {
  syncTime: 'udp intercoms have no command to set the time (udp-intercom.txt has unlock, setting and reboot only)',
  listPeople: 'udp intercoms cannot report the faces they hold (the document has no query: faces only flow to the device through /updateImage)',
  snapshot: 'udp intercoms have no snapshot command (captures only arrive with access records, /addUpload)',
  repostRecords: 'udp intercoms cannot be asked to upload their records again (the document has no such command)',
}

/** `device config set device doorcodeNew=… communityId=…` (section 8); `json` passes any key through. */
export const configSections: readonly string[] = ['device']

/** Section 8 keys of the `device` section; `deviceCode` is accepted for doorcodeNew (what `config get device` shows). */
export const SETTING_KEYS: readonly string[] = ['doorcodeNew', 'communityId']

/**
 * The openapi error table (document section 7), turned into typed doorctl errors with a readable
 * explanation and a suggested fix for each code.
 */
import { DeviceError, UnsupportedError } from '../../types/errors.js'

export interface OpenapiCodeInfo {
  /** The English message the document gives for the code. */
  message: string
  /** What it means, for a human. */
  explanation: string
  /** What to do about it. */
  suggestion: string
}

const READD =
  'wrong password: run `doorctl device add NAME --protocol openapi --host HOST --password-stdin` again with the password set on the device (default 123456)'

/** Every code of section 7, in the document's order. */
export const OPENAPI_ERRORS: Readonly<Record<number, OpenapiCodeInfo>> = {
  10001: {
    message: 'Password Not Exist',
    explanation: 'the device does not know the password doorctl signs with (wrong password)',
    suggestion: READD,
  },
  10002: {
    message: 'Password Expired',
    explanation: 'the device says the password doorctl signs with has expired (wrong or outdated password)',
    suggestion: `set a new password on the device's own screen or web page, then ${READD}`,
  },
  10003: {
    message: 'Request Expired',
    explanation:
      "the device's clock is more than 5 minutes off from this machine's clock, so it rejects every signed request",
    // AMBIGUITIES openapi #2: syncTime is itself a signed request and is rejected the same way
    suggestion:
      "check this machine's clock (and time zone), then set the device's time on its own screen or web page; " +
      '`doorctl device sync-time` cannot fix this because the device rejects its request too',
  },
  10004: {
    message: 'IP Invalid',
    explanation: "this machine's IP address is not on the device's whitelist",
    suggestion: "add this machine's IP address to the whitelist on the device's web page, or turn the whitelist off",
  },
  10005: {
    message: 'Signature Failed',
    explanation: 'the signature did not match: the password is wrong',
    suggestion: READD,
  },
  20001: {
    message: 'User Not Exists',
    explanation: 'no person with that id is on the device',
    suggestion: 'check the id (`doorctl people list`), or import the person first',
  },
  20002: {
    message: 'User Not Match',
    explanation: 'the device says the person does not match (the id and the data sent disagree)',
    suggestion: 'check that the id in the file is the id stored on the device (`doorctl people list`)',
  },
  30001: {
    message: 'Param Invalid',
    explanation: 'the device rejected a value as invalid',
    suggestion: 'check the field values and lengths (id ≤ 40, name ≤ 80, card ≤ 40, phone ≤ 20, department ≤ 80 characters)',
  },
  30002: {
    message: 'No Face Detected In The Image',
    explanation: 'no face detected in the photo',
    suggestion: 'use a sharp, well-lit, frontal JPEG with one face filling a good part of the picture',
  },
  30003: {
    message: 'Missing Param',
    explanation: 'the device says a required parameter is missing',
    suggestion: "the device's firmware may differ from the openapi document; report this with the device model (`doorctl device info`)",
  },
  30004: {
    message: 'Avatar File Illegal',
    explanation: 'the device did not accept the photo file',
    suggestion: 'send a baseline JPEG of at most 400 KB',
  },
  40001: {
    message: 'Not Support',
    explanation: 'the device does not support this operation',
    suggestion: 'this device model or firmware has no way to do this; use the device\'s own screen or web page',
  },
  50001: {
    message: 'RPC Failed',
    explanation: "the device's internal sync service failed (the document adds: invalid timestamp)",
    suggestion: "check this machine's clock, then retry; reboot the device if it persists",
  },
  50002: {
    message: 'Internal Server Error',
    explanation: 'the device had an internal error',
    suggestion: 'retry; reboot the device if it persists',
  },
  50003: {
    message: 'Multi Request Error',
    explanation: 'the device failed a batch of requests',
    suggestion: 'retry with fewer requests at once (lower --concurrency)',
  },
  50004: {
    message: 'Request Method Not Allowed',
    explanation: 'the device refused the HTTP method of the request',
    suggestion: "the device's firmware may differ from the openapi document; report this with the device model (`doorctl device info`)",
  },
  50008: {
    message: 'Search List Null',
    explanation: 'nothing matched the search',
    suggestion: 'widen the search (other id, other time range)',
  },
  50009: {
    message: 'Database Full',
    explanation: "the device's face database is full",
    suggestion: 'delete people who no longer need access (`doorctl people delete`), then retry',
  },
  99999: {
    message: 'Unknown Error',
    explanation: 'the device reported an unknown error',
    suggestion: 'retry; reboot the device if it persists',
  },
}

/** A device's own "not supported" (40001): status `unsupported` per the CLI contract, but keeps the device code. */
export class OpenapiUnsupportedError extends UnsupportedError {
  readonly deviceCode: number
  constructor(message: string, suggestion: string, deviceCode: number) {
    super(message, suggestion)
    this.name = 'UnsupportedError'
    this.deviceCode = deviceCode
  }
}

/** 10001…10005: the password, the clock or the whitelist is wrong; every further request would fail the same way. */
export function isAuthCode(code: number | string | undefined): boolean {
  const n = Number(code)
  return n >= 10001 && n <= 10005
}

/**
 * The typed error for an answer with a non-200 `code`.
 * `context` names what was asked (e.g. "POST /api/user"), appended in parentheses; `target` fills the
 * device's name and host into the suggested command.
 */
export function openapiError(
  code: number | string,
  message?: string,
  desc?: string,
  context?: string,
  target?: { name?: string; host?: string },
): DeviceError | OpenapiUnsupportedError {
  const n = Number(code)
  const info = Number.isInteger(n) ? OPENAPI_ERRORS[n] : undefined
  const known = info?.message ?? ''
  const said = [message, desc]
    .map((s) => (typeof s === 'string' ? s.trim() : ''))
    .filter((s, i, all) => s !== '' && s.toLowerCase() !== known.toLowerCase() && all.indexOf(s) === i)
  const head = `device answered ${code} ${known || said.shift() || 'error'}${said.length ? ` (${said.join('; ')})` : ''}`
  const where = context ? ` (${context})` : ''
  if (info === undefined) {
    return new DeviceError(`${head}: an error code the openapi document does not list${where}`, {
      deviceCode: code,
      suggestion: "retry; if it persists, report it with the device model (`doorctl device info`)",
    })
  }
  const text = `${head}: ${info.explanation}${where}`
  let suggestion = info.suggestion
  if (target?.name) suggestion = suggestion.replace('device add NAME', `device add ${target.name}`)
  if (target?.host) suggestion = suggestion.replace('--host HOST', `--host ${target.host}`)
  if (n === 40001) return new OpenapiUnsupportedError(text, suggestion, n)
  return new DeviceError(text, { deviceCode: n, suggestion })
}

/**
 * Typed errors. Every error doorctl raises on purpose is a DoorctlError: it carries the exit
 * code the CLI contract promises (2 = bad usage or input, nothing sent; 1 = a device failed),
 * a stable machine-readable `code`, and a suggested fix for humans.
 */
export type ResultStatus = 'ok' | 'unchanged' | 'failed' | 'unsupported' | 'timeout' | 'queued' | 'skipped'

export class DoorctlError extends Error {
  readonly exitCode: 1 | 2
  readonly code: string
  readonly suggestion?: string
  constructor(message: string, opts: { code: string; exitCode: 1 | 2; suggestion?: string; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = new.target.name
    this.code = opts.code
    this.exitCode = opts.exitCode
    this.suggestion = opts.suggestion
  }
}

/** Invalid usage: unknown device, bad flag value, missing answer without a TTY. Exit 2. */
export class UsageError extends DoorctlError {
  constructor(message: string, suggestion?: string) {
    super(message, { code: 'usage', exitCode: 2, suggestion })
  }
}

/** One problem in an input file, located precisely. */
export interface InputProblem {
  file: string
  /** The flag that named the file (`--from`), when not the command's file argument. */
  flag?: string
  line?: number
  field?: string
  message: string
}

export function formatProblem(p: InputProblem): string {
  const where = [p.flag ? `${p.flag} ${p.file}` : p.file, p.line === undefined ? undefined : `line ${p.line}`, p.field === undefined ? undefined : `column "${p.field}"`]
    .filter(Boolean)
    .join(', ')
  return `${where}: ${p.message}`
}

/** Invalid input file (CSV and the like): every problem listed, nothing sent. Exit 2. */
export class InputError extends DoorctlError {
  readonly problems: InputProblem[]
  constructor(problems: InputProblem[], suggestion?: string) {
    // one problem fits on one line; more are listed one a line below a count
    const message = problems.length === 1
      ? `${formatProblem(problems[0])} (nothing was sent or saved)`
      : `${problems.length} problems in input; nothing was sent or saved:\n` + problems.map((p) => '  ' + formatProblem(p)).join('\n')
    super(message, {
      code: 'invalid_input',
      exitCode: 2,
      suggestion,
    })
    this.problems = problems
  }
}

/** A device (or the network on the way to it) failed the operation. Exit 1 for that target. */
export class DeviceError extends DoorctlError {
  /** The device's own error code, when it gave one (e.g. openapi 10005). */
  readonly deviceCode?: number | string
  constructor(message: string, opts: { deviceCode?: number | string; suggestion?: string; code?: string; cause?: unknown } = {}) {
    super(message, { code: opts.code ?? 'device_error', exitCode: 1, suggestion: opts.suggestion, cause: opts.cause })
    this.deviceCode = opts.deviceCode
  }
}

/** The protocol (or the device itself, e.g. openapi 40001) has no way to do this operation. */
export class UnsupportedError extends DoorctlError {
  constructor(message: string, suggestion?: string) {
    super(message, { code: 'unsupported', exitCode: 1, suggestion })
  }
}

/** The device did not answer within --timeout. */
export class TimeoutError extends DoorctlError {
  constructor(message: string, suggestion?: string) {
    super(message, { code: 'timeout', exitCode: 1, suggestion })
  }
}

/** Maps any thrown value to the per-target status of the CLI contract. */
export function statusOf(err: unknown): ResultStatus {
  if (err instanceof UnsupportedError) return 'unsupported'
  if (err instanceof TimeoutError) return 'timeout'
  return 'failed'
}

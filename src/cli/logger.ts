import type { Logger } from '../types/driver.js'

/** Log lines go to stderr, never stdout (stdout is the command's output, e.g. one JSON document). */
export function stderrLogger(opts: { verbose: boolean; debug: boolean }): Logger {
  const line = (level: string, msg: string, fields?: Record<string, unknown>) => {
    const extra = fields ? Object.entries(fields).map(([k, v]) => ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join('') : ''
    process.stderr.write(`doorctl ${level}: ${msg}${extra}\n`)
  }
  return {
    debug: (m, f) => { if (opts.debug) line('debug', m, f) },
    info: (m, f) => { if (opts.verbose || opts.debug) line('info', m, f) },
    notice: (m, f) => line('info', m, f),
    warn: (m, f) => line('warning', m, f),
  }
}

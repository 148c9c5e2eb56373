import { randomBytes, timingSafeEqual, createHash } from 'node:crypto'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { isIP } from 'node:net'
import { writeFileAtomicSync } from '../../util/atomic-file.js'
import { UsageError } from '../../types/errors.js'

/** 127.0.0.0/8, ::1 (and IPv4-mapped loopback), localhost. */
export function isLoopback(address: string): boolean {
  const a = address.replace(/^\[|\]$/g, '').toLowerCase()
  if (a === 'localhost' || a === '::1') return true
  const v4 = a.startsWith('::ffff:') ? a.slice(7) : a
  return isIP(v4) === 4 && v4.startsWith('127.')
}

export interface AdminAccess {
  /** undefined: open (loopback without a token file). */
  token?: string
  /** The token file did not exist and was written with a new token. */
  created: boolean
}

/**
 * Who may use the admin listener. Bound to anything but loopback it needs a token file: read
 * when it exists (refused unless only its owner can read it), else written with a new token
 * (mode 0600). Checked before anything listens, so a refusal (exit 2) leaves nothing started.
 */
export function adminAccess(bind: string, tokenFile: string | undefined): AdminAccess {
  if (!tokenFile) {
    if (isLoopback(bind)) return { created: false }
    throw new UsageError(`the admin listener on ${bind} (not loopback) needs a token`, 'pass --admin-token-file FILE (a new token is written there if it does not exist), or keep --admin-bind 127.0.0.1')
  }
  if (!existsSync(tokenFile)) {
    const token = randomBytes(32).toString('base64url')
    writeFileAtomicSync(tokenFile, token + '\n', 0o600)
    return { token, created: true }
  }
  const mode = statSync(tokenFile).mode & 0o777
  if ((mode & 0o077) !== 0) {
    throw new UsageError(`--admin-token-file ${tokenFile} can be read by others (mode ${mode.toString(8).padStart(4, '0')})`, `chmod 600 ${tokenFile}`)
  }
  const token = readFileSync(tokenFile, 'utf8').trim()
  if (token.length < 16) throw new UsageError(`--admin-token-file ${tokenFile} holds no token of at least 16 characters`, `remove it and start serve again to have one written, or put a long random token in it`)
  return { token, created: false }
}

/** Whether an Authorization header carries the token (compared in constant time). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '')
  if (!m) return false
  const digest = (s: string) => createHash('sha256').update(s).digest()
  return timingSafeEqual(digest(m[1].trim()), digest(token))
}

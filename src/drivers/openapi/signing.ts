/**
 * openapi request signing (document section 4): sign = md5(timestamp + "#" + password), with the
 * timestamp in milliseconds since the epoch (UTC). Both go into the query string of every request.
 */
import { createHash } from 'node:crypto'

/** md5(`${timestamp}#${password}`) as lowercase hex. */
export function sign(timestampMs: number | string, password: string): string {
  // openapi 4.1 / AMBIGUITIES openapi #5: hex case unstated; the document's example is lowercase
  return createHash('md5').update(`${timestampMs}#${password}`, 'utf8').digest('hex')
}

/** The `timestamp=…&sign=…` query fragment for a request made at `now` (ms). */
export function signedQuery(password: string, now: number = Date.now()): string {
  const ts = String(Math.trunc(now))
  return `timestamp=${ts}&sign=${sign(ts, password)}`
}

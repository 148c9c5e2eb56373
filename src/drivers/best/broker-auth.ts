/**
 * Who may use the embedded MQTT broker, and for what (issue 12): nobody anonymously. A best-m
 * device logs in as its serial number with a password derived from this gateway's broker secret
 * (handed out only in the answer to a correctly signed getBrokerServer, inside the URL: best.txt
 * 3.1's answer has no user or password field), and may publish and subscribe under
 * `best/{its sn}/…` only. Gateways log in as `doorctl-gateway` with the secret's gateway password
 * and may use every topic (shared subscriptions, the relay's doorctl/best/… topics).
 *
 * The secret lives in DOORCTL_HOME/mqtt-broker.secret (mode 0600): another gateway given a copy
 * (and `--mqtt-url mqtts://doorctl-gateway@HOST:PORT`) hands devices the same credentials.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { loadOrCreateSecret } from '../../store/secret-file.js'
import { TOPICS } from './codec.js'

export const GATEWAY_USER = 'doorctl-gateway'
export const BROKER_SECRET_FILE = 'mqtt-broker.secret'

export interface BrokerSecret {
  /** The gateways' password. */
  readonly gatewayPassword: string
  /** A device's password: HMAC of its serial number, so nothing per device is stored. */
  devicePassword(sn: string): string
}

export function loadBrokerSecret(home: string): BrokerSecret {
  const secret = loadOrCreateSecret(home, BROKER_SECRET_FILE, () => randomBytes(32).toString('hex'))
  const derive = (label: string) => createHmac('sha256', secret).update(label).digest('base64url').slice(0, 32)
  return {
    gatewayPassword: derive(`gateway`),
    devicePassword: (sn) => derive(`device\u0000${sn}`),
  }
}

export function samePassword(given: Buffer | string | undefined, expected: string): boolean {
  if (given === undefined) return false
  const a = Buffer.isBuffer(given) ? given : Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** The device's URL: user = sn, password derived; both percent-encoded as URLs want. */
export function withCredentials(url: string, user: string, password: string): string {
  const u = new URL(url)
  u.username = encodeURIComponent(user)
  u.password = encodeURIComponent(password)
  return u.toString().replace(/\/$/, '')
}

/**
 * Whether a device may publish to `topic`, or subscribe to filter `topic`: only inside
 * `best/{sn}/`, with no wildcard reaching out of it (`best/+/down`, `#`, `$share/…` are refused).
 */
export function deviceMayUse(sn: string, topic: string): boolean {
  const prefix = `${TOPICS.up(sn).slice(0, -'up'.length)}`
  return topic.startsWith(prefix) && topic.length > prefix.length
}

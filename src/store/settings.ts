import { resolve } from 'node:path'
import Conf from 'conf'
import { UsageError } from '../types/errors.js'

/** doorctl's own defaults (`doorctl config set KEY VALUE`): the listener settings of CLI.md. */
export const SETTING_KEYS = {
  'http-port': { description: 'gateway HTTP port', parse: port },
  'udp-port': { description: 'gateway UDP port (udp intercom heartbeats)', parse: port },
  bind: { description: 'address the gateway listens on', parse: (v: string) => v.trim() },
  'mqtt-url': { description: 'MQTT broker for best-m devices (unset: embedded broker)', parse: (v: string) => {
    if (!/^mqtts?:\/\/[^/]+/.test(v)) throw new UsageError(`"${v}" is not an mqtt:// URL`, 'e.g. mqtt://127.0.0.1:1883')
    return v
  } },
  'mqtt-port': { description: 'port of the embedded MQTT broker', parse: port },
  'tls-cert': { description: 'PEM certificate chain: the device port speaks HTTPS/WSS, the embedded broker MQTTS', parse: (v: string) => resolve(v.trim()) },
  'tls-key': { description: 'PEM private key of tls-cert (keep it mode 0600)', parse: (v: string) => resolve(v.trim()) },
  store: { description: 'shared store (postgres://USER@HOST:PORT/DB; unset: SQLite in DOORCTL_HOME)', parse: (v: string) => {
    if (!/^postgres(ql)?:\/\/[^/]/i.test(v.trim())) throw new UsageError('the store must be a postgres:// URL', 'e.g. postgres://doorctl@127.0.0.1:5432/doorctl')
    return v.trim()
  } },
} as const
export type SettingKey = keyof typeof SETTING_KEYS

function port(v: string): number {
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`"${v}" is not a port number (0-65535)`)
  return n
}

/** A setting as it may be shown: a store URL without its password. */
export function showSetting(key: SettingKey, value: string | number): string | number {
  if (key !== 'store' || typeof value !== 'string') return value
  try {
    const u = new URL(value)
    if (u.password) u.password = '********'
    return u.toString()
  } catch {
    return '(unreadable URL)'
  }
}

export class Settings {
  private readonly conf: Conf<Record<string, string | number>>

  constructor(home: string) {
    this.conf = new Conf({ cwd: home, configName: 'settings', configFileMode: 0o600, accessPropertiesByDotNotation: false })
  }

  static assertKey(key: string): SettingKey {
    if (!(key in SETTING_KEYS)) throw new UsageError(`unknown setting "${key}"`, `settings: ${Object.keys(SETTING_KEYS).join(', ')}`)
    return key as SettingKey
  }

  get(key: SettingKey): string | number | undefined {
    return this.conf.get(key)
  }

  all(): Record<string, string | number> {
    return { ...this.conf.store }
  }

  set(key: SettingKey, value: string): string | number {
    const parsed = SETTING_KEYS[key].parse(value)
    this.conf.set(key, parsed)
    return parsed
  }

  unset(key: SettingKey): void {
    this.conf.delete(key)
  }
}

/**
 * httpv2 driver module (DriverModule shape), loaded lazily by the command layer. The devices
 * call us, so every operation is a command queued for the gateway (gateway.ts, loaded only by
 * the gateway itself: not imported here, to keep CLI start-up light).
 */
import { PushDriver } from '../../gateway/push-driver.js'
import type { DeviceDriver, DeviceEntry } from '../../types/driver.js'
import type { DriverEnv } from '../../types/driver-module.js'
import { configSections, kinds } from './rules.js'

export { personRules, recordExtras, settingsSchema } from './rules.js'

export function createDriver(device: DeviceEntry, env: DriverEnv): DeviceDriver {
  return new PushDriver(device, env, { protocol: 'httpv2', kinds, configSections: [...configSections], repostAll: true })
}

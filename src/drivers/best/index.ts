/**
 * best driver module (DriverModule shape), loaded lazily by the command layer. best devices call
 * us (best-w over WebSocket, best-m over MQTT), so every operation is a command queued for the
 * gateway (gateway.ts, loaded only by the gateway itself: not imported here).
 */
import { PushDriver } from '../../gateway/push-driver.js'
import type { DeviceDriver, DeviceEntry } from '../../types/driver.js'
import type { DriverEnv } from '../../types/driver-module.js'
import { configSections, kinds, unsupportedWhy } from './rules.js'

export { personRules, recordExtras } from './rules.js'

export function createDriver(device: DeviceEntry, env: DriverEnv): DeviceDriver {
  return new PushDriver(device, env, { protocol: 'best', kinds, configSections: [...configSections], unsupportedWhy })
}

/**
 * wsjson driver module (DriverModule shape), loaded lazily by the command layer. The device
 * holds a WebSocket open to the gateway, so every operation is a command queued for the gateway
 * (gateway.ts, loaded only by the gateway itself: not imported here).
 */
import { UnsupportedError } from '../../types/errors.js'
import { PushDriver } from '../../gateway/push-driver.js'
import type { DeviceDriver, DeviceEntry, FaceSource, OperationContext, PersonOutcome } from '../../types/driver.js'
import type { DriverEnv } from '../../types/driver-module.js'
import { kinds, unsupportedWhy } from './rules.js'

export { personRules, recordExtras } from './rules.js'

export class WsjsonDriver extends PushDriver {
  constructor(entry: DeviceEntry, env: DriverEnv) {
    super(entry, env, { protocol: 'wsjson', kinds, configSections: [], unsupportedWhy })
  }

  override enrollFace(id: string, source: FaceSource, ctx: OperationContext): Promise<PersonOutcome> {
    // nothing in ws-json.txt asks the device to capture a face itself
    if (source.capture) return Promise.reject(new UnsupportedError('wsjson devices cannot capture a face themselves (ws-json.txt has no such command)', 'enroll with --photo FILE'))
    return super.enrollFace(id, source, ctx)
  }
}

export function createDriver(device: DeviceEntry, env: DriverEnv): DeviceDriver {
  return new WsjsonDriver(device, env)
}

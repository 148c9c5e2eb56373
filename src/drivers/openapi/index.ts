/** openapi driver module (DriverModule shape): loaded lazily by the command layer. */
import type { DeviceDriver, DeviceEntry, DriverEnv } from '../types.js'
import { OpenapiDriver } from './driver.js'

export { personRules } from './codec.js'
export { OpenapiDriver, type OpenapiCursor, type OpenapiDriverOptions } from './driver.js'
export { OpenapiTransport } from './transport.js'
export { openapiError, OPENAPI_ERRORS, OpenapiUnsupportedError, isAuthCode } from './errors.js'
export { sign, signedQuery } from './signing.js'
export * as codec from './codec.js'

export function createDriver(device: DeviceEntry, _env: DriverEnv): DeviceDriver {
  return new OpenapiDriver(device)
}

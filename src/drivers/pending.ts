import { UnsupportedError } from '../types/errors.js'
import type { DeviceDriver, Protocol } from '../types/driver.js'
import type { DriverModule } from '../types/driver-module.js'

/**
 * Push-style protocols whose gateway driver is not in this release yet. Devices of these
 * protocols can be kept in the inventory; every operation says plainly that it is not
 * available yet (status `unsupported`), so mixed fleets still run.
 */
export function pendingDriver(protocol: Protocol): DriverModule {
  const no = (): never => {
    throw new UnsupportedError(`the ${protocol} driver is not available in this version of doorctl yet`, 'see the README for what each protocol supports')
  }
  const driver: DeviceDriver = {
    protocol,
    open: async () => no(),
    reboot: async () => no(),
    syncTime: async () => no(),
    info: async () => no(),
    configSections: () => [],
    getConfig: async () => no(),
    setConfig: async () => no(),
    upsertPeople: () => ({ [Symbol.asyncIterator]: () => ({ next: async () => no() }) }),
    deletePeople: () => ({ [Symbol.asyncIterator]: () => ({ next: async () => no() }) }),
    listPeople: () => ({ [Symbol.asyncIterator]: () => ({ next: async () => no() }) }),
    enrollFace: async () => no(),
    snapshot: async () => no(),
    checkFace: async () => no(),
    pullRecords: () => ({ records: { [Symbol.asyncIterator]: () => ({ next: async () => no() }) }, cursor: () => undefined }),
    watchRecords: () => ({ [Symbol.asyncIterator]: () => ({ next: async () => no() }) }),
    close: async () => {},
  }
  return {
    personRules: { protocol, maxLength: { id: 64, name: 64 }, required: ['id'], maxPhotoBytes: 400 * 1024 },
    createDriver: () => driver,
  }
}

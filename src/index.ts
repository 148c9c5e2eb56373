/**
 * doorctl as a library: the same inventory, drivers and exports the CLI uses, for scripts that
 * would rather `import` than shell out.
 *
 *   import { Inventory, resolveHome, loadDriver, runOnTargets } from 'doorctl'
 */
export * from './types/driver.js'
export * from './types/driver-module.js'
export { loadDriver } from './drivers/registry.js'
export * from './types/errors.js'
export { resolveHome } from './store/home.js'
export { Inventory, buildDeviceEntry, maskSecrets, identityOf } from './store/inventory.js'
export { resolveTargets, type TargetSelection } from './ops/targets.js'
export { runOnTargets, mapPool, type TargetResult, type RunOptions, type Outcome } from './ops/run.js'
export { readPeopleCsv, PEOPLE_COLUMNS } from './ops/people-csv.js'
export { readDevicesCsv, DEVICE_COLUMNS } from './ops/devices-csv.js'
export { syncPeople, PeopleReport } from './ops/people-sync.js'
export { exportRecords, type ExportOptions } from './ops/records-export.js'
export { CursorStore } from './store/cursors.js'
export { RecordWriter, recordRow, RECORD_FORMATS, type RecordFormat } from './ops/record-writer.js'
export { parseDuration, parseTime, isoWithOffset } from './util/time.js'
export { startOpenapiSimulator, type OpenapiSimulator, type OpenapiSimulatorOptions } from './simulators/openapi/index.js'

/**
 * doorctl as a library: the same inventory, drivers and exports the CLI uses, for scripts that
 * would rather `import` than shell out.
 *
 *   import { Inventory, resolveHome, loadDriver, runOnTargets } from 'doorctl'
 */
export * from './drivers/types.js'
export { loadDriver } from './drivers/registry.js'
export * from './core/errors.js'
export { resolveHome } from './core/home.js'
export { Inventory, buildDeviceEntry, maskSecrets, identityOf } from './core/inventory.js'
export { resolveTargets, type TargetSelection } from './core/targets.js'
export { runOnTargets, mapPool, type TargetResult, type RunOptions, type Outcome } from './core/run.js'
export { readPeopleCsv, PEOPLE_COLUMNS } from './core/people-csv.js'
export { readDevicesCsv, DEVICE_COLUMNS } from './core/devices-csv.js'
export { syncPeople, PeopleReport } from './core/people-sync.js'
export { exportRecords, type ExportOptions } from './core/records-export.js'
export { CursorStore } from './core/cursors.js'
export { RecordWriter, recordRow, RECORD_FORMATS, type RecordFormat } from './core/record-writer.js'
export { parseDuration, parseTime, isoWithOffset } from './core/time.js'
export { startOpenapiSimulator, type OpenapiSimulator, type OpenapiSimulatorOptions } from './simulators/openapi/index.js'

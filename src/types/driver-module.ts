import type { DeviceDriver, DeviceEntry, Logger, PersonRules } from './driver.js'
import type { GatewayHandle, RecordSource } from './gateway.js'
import type { SettingsSchema } from './settings.js'

/** What a driver module exports; loaded lazily so only protocols in use are imported. */
export interface DriverModule {
  personRules: PersonRules
  /** Protocol-specific record columns (AccessRecord.extras keys), in output order. */
  recordExtras?: readonly string[]
  /** The same for one device, where a protocol's modes differ (openapi direct vs platform). */
  recordExtrasFor?(device: DeviceEntry): readonly string[]
  /** The device settings the protocol documents (absent: none). */
  settingsSchema?: SettingsSchema
  /** The same for one device, where a protocol's modes differ (openapi platform mode has none). */
  settingsSchemaFor?(device: DeviceEntry): SettingsSchema
  createDriver(device: DeviceEntry, env: DriverEnv): DeviceDriver
}

export interface DriverEnv {
  /** DOORCTL_HOME: where durable state lives. */
  home: string
  log: Logger
  /** The gateway push-style drivers queue commands through (serve, or a temporary listener), shared by all devices of one run. */
  gateway?: () => Promise<GatewayHandle>
  /** The shared store's record spool, when there is one (else gateway.db in `home`). */
  records?: RecordSource
}

/**
 * openapi driver module (DriverModule shape): loaded lazily by the command layer.
 *
 * Which path a device takes, by its inventory `mode`:
 * - `direct` (sections 4–8): OpenapiDriver, doorctl calls the device.
 * - `platform` (section 9): the device calls the gateway; operations are commands queued
 *   through it (PushDriver: people import/delete/list and face enroll; everything else is
 *   unsupported, section 9 has no way to do it) and records come from the gateway's spool.
 * - `both`: direct for every operation, records included (the device's own log, with its real
 *   record ids, through /api/record and the push WebSocket). The gateway still serves the
 *   device (presence, openDoor decisions, its face library), but what it spools for a `both`
 *   device is not exported: the same events would come out twice under two ids.
 */
import type { PushCapabilities } from '../../gateway/push-driver.js'
import type { CommandKind } from '../../types/gateway.js'
import type {
  AccessRecord, DeviceDriver, DeviceEntry, FaceSource, OpenMode, OperationContext, OpResult, Person, PersonInfo, PersonOutcome, PullQuery,
  RecordPull,
} from '../../types/driver.js'
import type { DriverEnv } from '../../types/driver-module.js'
import type { SettingsSchema } from '../../types/settings.js'
import { settingsSchema } from './codec.js'
import { OpenapiDriver } from './driver.js'
import { PLATFORM_KINDS, PLATFORM_RECORD_EXTRAS } from './platform-codec.js'

export { personRules, settingsSchema } from './codec.js'
export { OpenapiDriver, type OpenapiCursor, type OpenapiDriverOptions } from './driver.js'
export { OpenapiTransport } from './transport.js'
export { openapiError, OPENAPI_ERRORS, OpenapiUnsupportedError, isAuthCode } from './errors.js'
export { sign, signedQuery } from './signing.js'
export * as codec from './codec.js'

const DIRECT_RECORD_EXTRAS = ['similarity', 'temperature', 'temperature_state', 'mask', 'mask_alarm', 'device_mark'] as const

/** Record columns of any openapi device: direct-mode extras (8.3.1 SignObject), then what platform-mode uploads add (9.2, 9.3). */
export const recordExtras: readonly string[] = [...new Set([...DIRECT_RECORD_EXTRAS, ...PLATFORM_RECORD_EXTRAS])]

/** A direct-mode export keeps its six columns; platform-mode records bring theirs. */
export function recordExtrasFor(device: DeviceEntry): readonly string[] {
  return modeOf(device) === 'platform' ? PLATFORM_RECORD_EXTRAS : DIRECT_RECORD_EXTRAS
}

/** The mode a device is used in: as stored, else what its addresses allow. */
export function modeOf(device: DeviceEntry): 'direct' | 'platform' | 'both' {
  if (device.mode) return device.mode
  return device.host ? 'direct' : device.deviceId ? 'platform' : 'direct'
}

/** Platform mode (section 9) has no settings to read or write. */
export function settingsSchemaFor(device: DeviceEntry): SettingsSchema {
  return modeOf(device) === 'platform' ? { sections: {} } : settingsSchema
}

const PLATFORM_ONLY = 'openapi platform mode (section 9) only lets the device pull its face library and upload records'
const platformWhy = (what: string): string =>
  `${PLATFORM_ONLY}: there is no way to ${what}; add the device's address (\`doorctl device add NAME --protocol openapi --host H --device-id ID --mode both\`) to use direct mode for it`

export const platformCapabilities: PushCapabilities = {
  protocol: 'openapi',
  kinds: PLATFORM_KINDS,
  configSections: [],
  unsupportedWhy: {
    open: platformWhy('open the door remotely (the door opens only as the answer to a face upload, see serve --authorize)'),
    reboot: platformWhy('reboot it'),
    syncTime: platformWhy('set its time'),
    info: platformWhy('ask for its information'),
    setConfig: platformWhy('change its settings'),
    snapshot: platformWhy('take a snapshot'),
    repostRecords: platformWhy('ask for its records again'),
  } satisfies Partial<Record<CommandKind, string>>,
}

export function createDriver(device: DeviceEntry, env: DriverEnv): DeviceDriver {
  if (modeOf(device) === 'platform') return new PlatformDriver(device, env)
  return new OpenapiDriver(device)
}

/**
 * A PushDriver for a platform-mode device, loaded on first use: the gateway's queue and spool
 * (SQLite) are not loaded by commands that only talk to direct-mode devices.
 */
class PlatformDriver implements DeviceDriver {
  readonly protocol = 'openapi' as const
  private inner?: Promise<DeviceDriver>

  constructor(private readonly device: DeviceEntry, private readonly env: DriverEnv) {}

  private get(): Promise<DeviceDriver> {
    return (this.inner ??= import('../../gateway/push-driver.js').then((m) => new m.PushDriver(this.device, this.env, platformCapabilities)))
  }

  async open(mode: OpenMode, ctx: OperationContext): Promise<OpResult> { return (await this.get()).open(mode, ctx) }
  async reboot(ctx: OperationContext): Promise<OpResult> { return (await this.get()).reboot(ctx) }
  async syncTime(time: Date, ctx: OperationContext): Promise<OpResult> { return (await this.get()).syncTime(time, ctx) }
  async info(ctx: OperationContext): Promise<Record<string, unknown>> { return (await this.get()).info(ctx) }
  configSections(): string[] { return [...platformCapabilities.configSections] }
  async getConfig(section: string, ctx: OperationContext): Promise<Record<string, unknown>> { return (await this.get()).getConfig(section, ctx) }
  async setConfig(section: string, values: Record<string, unknown>, ctx: OperationContext): Promise<OpResult> { return (await this.get()).setConfig(section, values, ctx) }
  async *upsertPeople(people: readonly Person[], ctx: OperationContext): AsyncIterable<PersonOutcome> { yield* (await this.get()).upsertPeople(people, ctx) }
  async *deletePeople(ids: readonly string[] | 'all', ctx: OperationContext): AsyncIterable<PersonOutcome> { yield* (await this.get()).deletePeople(ids, ctx) }
  async *listPeople(ctx: OperationContext): AsyncIterable<PersonInfo> { yield* (await this.get()).listPeople(ctx) }
  async enrollFace(id: string, source: FaceSource, ctx: OperationContext): Promise<PersonOutcome> { return (await this.get()).enrollFace(id, source, ctx) }
  async snapshot(ctx: OperationContext): Promise<OpResult & { photo?: Buffer }> { return (await this.get()).snapshot(ctx) }
  async checkFace(photoPath: string, ctx: OperationContext): Promise<OpResult & { exists?: boolean }> { return (await this.get()).checkFace(photoPath, ctx) }

  async collectRecords(ctx: OperationContext, opts?: { repost?: boolean }): Promise<void> { return (await this.get()).collectRecords?.(ctx, opts) }

  pullRecords(query: PullQuery, ctx: OperationContext): RecordPull {
    let pull: RecordPull | undefined
    const get = () => this.get()
    async function* batches(): AsyncIterable<readonly AccessRecord[]> {
      pull = (await get()).pullRecords(query, ctx)
      yield* pull.batches
    }
    // before iteration nothing was read: the cursor stays what it was
    return { batches: batches(), cursor: () => (pull ? pull.cursor() : query.after) }
  }

  async *watchRecords(ctx: OperationContext): AsyncIterable<AccessRecord> { yield* (await this.get()).watchRecords(ctx) }

  async close(): Promise<void> {
    if (this.inner) await (await this.inner).close()
  }
}

/**
 * `device config plan|apply FILE.csv [TARGETS]` over a whole site: the file checked against every
 * door it selects (nothing read or sent before that), then every door's plan read with bounded
 * concurrency, then the changes applied to the doors that need them.
 */
import type { DeviceBook } from '../store/inventory.js'
import { runOnTargets, type RunOptions, type TargetResult } from './run.js'
import type { DeviceEntry } from '../types/driver.js'
import { desiredState, readSettingsCsv, settingsSchemas, type DesiredState } from './settings-file.js'
import { applyDoor, planDoor, planOutcome, type DoorPlan } from './settings-plan.js'

/** The settings file, checked: any problem → InputError (exit 2) before any device is touched. */
export async function loadDesiredState(file: string, inventory: DeviceBook, targets?: readonly DeviceEntry[]): Promise<DesiredState> {
  const rows = readSettingsCsv(file)
  const all = inventory.all()
  return desiredState(file, rows, { inventory: all, targets, schemaOf: await settingsSchemas(all) })
}

export interface SitePlan {
  /** One result per door: its plan (status ok), or why it could not be read; `skipped` for targets no row applies to. */
  results: TargetResult[]
  /** Plans of the doors that could be read, by device name. */
  plans: Map<string, DoorPlan>
}

/** Reads every door's current settings and compares (each request bounded by the run's timeout, not the whole door). */
export async function planSite(state: DesiredState, opts: RunOptions): Promise<SitePlan> {
  const plans = new Map<string, DoorPlan>()
  const byName = new Map(state.doors.map((d) => [d.device.name, d]))
  const results = await runOnTargets(state.doors.map((d) => d.device), { ...opts, perRequest: true }, async (driver, ctx, device) => {
    const plan = await planDoor(driver, byName.get(device.name)!, ctx)
    plans.set(device.name, plan)
    return planOutcome(plan)
  })
  for (const d of state.untouched) results.push({ device: d.name, protocol: d.protocol, ok: true, status: 'skipped', message: 'no row of the file applies to this device' })
  return { results, plans }
}

/** Doors whose plan has something to send. */
export function doorsToChange(plan: SitePlan): DoorPlan[] {
  return [...plan.plans.values()].filter((p) => p.changes.length > 0)
}

/**
 * Applies every plan that has changes; the other doors keep their plan's result (`unchanged`
 * when already in line, or why they could not be read).
 */
export async function applySite(plan: SitePlan, opts: RunOptions & { inventory: DeviceBook }): Promise<TargetResult[]> {
  const changing = doorsToChange(plan)
  const byName = new Map(changing.map((p) => [p.door.device.name, p]))
  const applied = await runOnTargets(changing.map((p) => p.door.device), { ...opts, perRequest: true }, (driver, ctx, device) =>
    applyDoor(driver, byName.get(device.name)!, ctx, { inventory: opts.inventory }),
  )
  const appliedByName = new Map(applied.map((r) => [r.device, r]))
  return plan.results.map((r) => {
    const done = appliedByName.get(r.device)
    if (done) return done
    if (r.status !== 'ok') return r
    const { changes: _changes, in_line: _inLine, ...rest } = r
    return { ...rest, status: 'unchanged', message: `already ${r.message}`, changed: [] }
  })
}

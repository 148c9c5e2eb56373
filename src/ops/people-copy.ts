import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DeviceError, DoorctlError, InputError, UsageError, type InputProblem } from '../types/errors.js'
import type { DeviceEntry, Person, PersonInfo, PersonOutcome, PersonRules } from '../types/driver.js'
import { loadDriver } from '../drivers/registry.js'
import { checkPerson, maxPhotoBytesOf } from './people-csv.js'
import { PeopleReport, syncPeople } from './people-sync.js'
import { contextFor, runOnTargets, type RunOptions, type TargetResult } from './run.js'

export interface CopyOptions {
  source: DeviceEntry
  targets: readonly DeviceEntry[]
  /** --id: only these people (default: everyone on the source). */
  ids?: readonly string[]
  dryRun: boolean
  /** --report: one row per person per target. */
  report?: string
  run: RunOptions
}

export interface CopyResult {
  results: TargetResult[]
  people: number
  photos: number
  /** People the source has a face for but whose photo its people list does not carry. */
  withoutPhoto: number
}

/** What reading the source gave: people ready to send (photos as temp files) and who lost a photo. */
interface SourcePeople {
  people: Person[]
  noPhoto: Map<string, string>
  dir: string
}

/**
 * `people copy`: reads the people of one device (photos written to private temp files page by
 * page, never all in memory), checks each against every target protocol's rules as `people
 * import` does (any problem → InputError, exit 2, nothing sent), then adds or updates them on
 * every target through the same sync and report as `people import`. --dry-run reads each
 * target's people instead and says who would be added, updated or left unchanged.
 */
export async function copyPeople(o: CopyOptions): Promise<CopyResult> {
  const source = await readSource(o)
  let report: PeopleReport | undefined
  try {
    const rules = await Promise.all([...new Set(o.targets.map((d) => d.protocol))].map(async (p) => (await loadDriver(p)).personRules))
    const problems: InputProblem[] = []
    const maxPhoto = maxPhotoBytesOf(rules)
    for (const p of source.people) {
      checkPerson(p, rules, maxPhoto, (field, message) => problems.push({ file: o.source.name, field, message: `person ${p.id}: ${message}` }))
    }
    if (problems.length > 0) throw new InputError(problems, `fix these people on ${o.source.name}, or leave them out with --id; nothing was sent to any device`)

    report = o.report ? new PeopleReport(o.report) : undefined
    const photos = source.people.filter((p) => p.photoPath !== undefined).length
    const summary = { people: source.people.length, photos, withoutPhoto: source.noPhoto.size }
    const results = o.dryRun
      ? await planCopy(o, source, report)
      : await syncPeople(o.targets, source.people, o.run, report, (d, ctx) => withPhotoNotes(d.upsertPeople(source.people, ctx), source.noPhoto), 'copied')
    return { results, ...summary }
  } finally {
    rmSync(source.dir, { recursive: true, force: true })
    await report?.close()
  }
}

async function readSource(o: CopyOptions): Promise<SourcePeople> {
  const wanted = o.ids ? new Set(o.ids) : undefined
  const dir = mkdtempSync(join(tmpdir(), 'doorctl-copy-'))
  const people: Person[] = []
  const noPhoto = new Map<string, string>()
  const driver = (await loadDriver(o.source.protocol)).createDriver(o.source, o.run.env)
  const ctx = contextFor(o.source, o.run, o.run.env.log, false)
  try {
    let n = 0
    for await (const info of driver.listPeople(ctx)) {
      if (wanted && !wanted.has(info.id)) continue
      let photoPath: string | undefined
      if (info.photo && info.photo.length > 0) {
        // personal data: readable by this user only, removed when the copy ends
        photoPath = join(dir, `${n++}.jpg`)
        writeFileSync(photoPath, info.photo, { mode: 0o600 })
      } else if (info.hasPhoto) {
        noPhoto.set(info.id, `photo not copied: ${o.source.protocol} people lists do not carry photos`)
      }
      people.push(personFrom(info, photoPath))
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    if (err instanceof DoorctlError) throw err
    throw new DeviceError(`cannot read the people of ${o.source.name}: ${(err as Error).message ?? String(err)}`)
  } finally {
    ctx.dispose()
    await driver.close().catch(() => {})
  }
  const found = new Set(people.map((p) => p.id))
  const missing = (o.ids ?? []).filter((id) => !found.has(id))
  if (missing.length > 0 || people.length === 0) {
    rmSync(dir, { recursive: true, force: true })
    if (missing.length > 0) throw new UsageError(`${o.source.name} has no person with id ${missing.join(', ')}`, `see \`doorctl people list ${o.source.name}\``)
    throw new UsageError(`${o.source.name} has no people to copy`, `see \`doorctl people list ${o.source.name}\``)
  }
  return { people, noPhoto, dir }
}

/** A person as the source lists them, as a person to send (passwords never leave a device's list). */
export function personFrom(info: PersonInfo, photoPath?: string): Person {
  const p: Person = { id: info.id }
  for (const k of ['name', 'card', 'phone', 'department'] as const) if (info[k] !== '') p[k] = info[k]
  if (info.role !== '') p.role = info.role
  if (info.validFrom) p.validFrom = info.validFrom
  if (info.validTo) p.validTo = info.validTo
  if (photoPath) p.photoPath = photoPath
  return p
}

async function* withPhotoNotes(outcomes: AsyncIterable<PersonOutcome>, noPhoto: ReadonlyMap<string, string>): AsyncIterable<PersonOutcome> {
  for await (const o of outcomes) {
    const note = noPhoto.get(o.id)
    yield note ? { ...o, message: `${o.message}; ${note}` } : o
  }
}

/** Does a protocol store this field at all (httpv2 keeps no phone: a copy can never make it equal)? */
function stores(rules: PersonRules, field: 'name' | 'card' | 'phone' | 'department'): boolean {
  return field in rules.maxLength || (rules.required as readonly string[]).includes(field) || field in (rules.patterns ?? {})
}

/** The fields of `p` a target's copy of the person differs in, among those its protocol stores (empty: unchanged). */
export function differences(p: Person, on: PersonInfo, rules: PersonRules): string[] {
  const diff: string[] = []
  for (const k of ['name', 'card', 'phone', 'department'] as const) if (stores(rules, k) && (p[k] ?? '') !== on[k]) diff.push(k)
  if (p.role !== undefined && p.role !== on.role) diff.push('role')
  const seconds = (d: Date | undefined) => (d ? Math.floor(d.getTime() / 1000) : undefined)
  if (p.validFrom && seconds(p.validFrom) !== seconds(on.validFrom)) diff.push('valid_from')
  if (p.validTo && seconds(p.validTo) !== seconds(on.validTo)) diff.push('valid_to')
  if (p.photoPath && !on.hasPhoto) diff.push('photo')
  return diff
}

/** --dry-run: each target's people list against the source's, one report row per person, nothing sent. */
async function planCopy(o: CopyOptions, source: SourcePeople, report: PeopleReport | undefined): Promise<TargetResult[]> {
  return runOnTargets(o.targets, { ...o.run, perRequest: true }, async (driver, ctx, device) => {
    const rules = (await loadDriver(device.protocol)).personRules
    const existing = new Map<string, PersonInfo>()
    for await (const p of driver.listPeople(ctx)) existing.set(p.id, { ...p, photo: undefined })
    const plan = { added: [] as string[], updated: [] as string[], unchanged: [] as string[] }
    for (const p of source.people) {
      const on = existing.get(p.id)
      const diff = on ? differences(p, on, rules) : []
      const what = !on ? 'added' : diff.length > 0 ? 'updated' : 'unchanged'
      plan[what].push(p.id)
      const note = source.noPhoto.get(p.id)
      const message = [what === 'added' ? 'would be added' : what === 'updated' ? `would be updated (${diff.join(', ')})` : 'unchanged', note].filter(Boolean).join('; ')
      report?.add(device.name, { id: p.id, name: p.name, status: 'skipped', action: what, message })
    }
    return {
      status: 'skipped',
      message: `${plan.added.length} to add, ${plan.updated.length} to update, ${plan.unchanged.length} unchanged (dry run: nothing sent)`,
      fields: { plan },
    }
  })
}

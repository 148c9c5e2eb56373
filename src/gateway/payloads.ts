import type { Person, Role } from '../types/driver.js'

/** A person as a queued command carries it: a Person with its dates as epoch ms (JSON in the queue). */
export type PersonPayload = Omit<Person, 'validFrom' | 'validTo'> & { validFrom?: number; validTo?: number }

export function toPersonPayload(p: Person): PersonPayload {
  return { ...p, validFrom: p.validFrom?.getTime(), validTo: p.validTo?.getTime() }
}

const ROLES: ReadonlySet<string> = new Set<Role>(['user', 'admin', 'blacklist'])

/** Reads a payload person back out of a queued command, tolerating anything malformed in the queue. */
export function readPersonPayload(o: Record<string, unknown>): PersonPayload {
  const s = (v: unknown) => (v === undefined || v === null ? undefined : String(v))
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined)
  return {
    id: String(o.id ?? ''),
    name: s(o.name), card: s(o.card), password: s(o.password), phone: s(o.phone), department: s(o.department),
    role: typeof o.role === 'string' && ROLES.has(o.role) ? (o.role as Role) : undefined,
    validFrom: n(o.validFrom), validTo: n(o.validTo), photoPath: s(o.photoPath), room: s(o.room), unit: s(o.unit),
  }
}

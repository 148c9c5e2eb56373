import { createReadStream, closeSync, openSync, readSync, statSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { parse } from 'csv-parse'
import { InputError, type InputProblem } from '../types/errors.js'
import { parseTime } from '../util/time.js'
import { ROLES, type Person, type PersonRules, type Role } from '../types/driver.js'

export const PEOPLE_COLUMNS = ['id', 'name', 'card', 'password', 'phone', 'department', 'role', 'valid_from', 'valid_to', 'photo', 'room', 'unit'] as const
type Column = (typeof PEOPLE_COLUMNS)[number]

const FIELD_OF: Partial<Record<Column, keyof PersonRules['maxLength']>> = {
  id: 'id', name: 'name', card: 'card', phone: 'phone', department: 'department', password: 'password', room: 'room', unit: 'unit',
}

export interface PeopleCsvOptions {
  /** Rules of every protocol among the targets: each row must pass all of them. */
  rules: readonly PersonRules[]
  /** Where relative photo paths are looked up first (else next to the CSV). */
  photosDir?: string
  /** Stop listing after this many problems (all are still counted). */
  maxProblems?: number
}

export interface PeopleCsvResult {
  people: Person[]
}

/**
 * Reads a people CSV (UTF-8, with or without BOM, header row in any order) as a stream and
 * validates every row against every target protocol's rules. Either every row is good and
 * the people are returned, or an InputError lists every problem with line and column.
 */
export async function readPeopleCsv(file: string, opts: PeopleCsvOptions): Promise<PeopleCsvResult> {
  try {
    statSync(file)
  } catch (err) {
    throw new InputError([{ file, message: `cannot read the file: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }])
  }
  // Line numbers cost a fresh info object per row (~20 MB on 100,000 rows), so the first pass goes
  // without them; only a file with problems is read again to say where each one is.
  const fast = await validatePass(file, opts, false)
  if (fast.problemCount === 0) return { people: fast.people }
  const located = await validatePass(file, opts, true)
  const { problems, problemCount } = located.problemCount > 0 ? located : fast
  if (problemCount > problems.length) problems.push({ file, message: `… and ${problemCount - problems.length} more problems` })
  throw new InputError(problems, 'fix the rows listed and run again; nothing was sent to any device')
}

async function validatePass(file: string, opts: PeopleCsvOptions, withLines: boolean) {
  const problems: InputProblem[] = []
  const max = opts.maxProblems ?? 1000
  let problemCount = 0
  const people: Person[] = []
  const firstLineOf = new Map<string, number>()
  const report = (line: number | undefined, field: string | undefined, message: string) => {
    problemCount++
    if (problems.length < max) problems.push({ file, line, field, message })
  }
  const photoBase = opts.photosDir ?? dirname(resolve(file))
  const maxPhoto = maxPhotoBytesOf(opts.rules)

  let header: string[] | undefined
  const parser = createReadStream(file).pipe(
    parse({
      bom: true,
      info: withLines,
      skip_empty_lines: true,
      relax_column_count: true,
      columns: (names: string[]) => {
        header = names.map((n) => n.trim().toLowerCase())
        checkHeader(header, report)
        return header
      },
    }),
  )
  let row = 1
  try {
    for await (const item of parser as AsyncIterable<Record<string, string> | { record: Record<string, string>; info: { lines: number } }>) {
      row++
      const { record, line } = withLines
        ? { record: (item as { record: Record<string, string> }).record, line: (item as { info: { lines: number } }).info.lines }
        : { record: item as Record<string, string>, line: row }
      const id = record.id?.trim()
      // duplicates are reported whatever else is wrong with the row
      const first = id ? firstLineOf.get(id) : undefined
      if (id && first !== undefined) report(line, 'id', `duplicate id "${id}" (first on line ${first})`)
      else if (id) firstLineOf.set(id, line)
      const person = validateRow(record, line, opts.rules, photoBase, maxPhoto, report)
      if (person && first === undefined) people.push(person)
    }
  } catch (err) {
    const e = err as { code?: string; lines?: number; message: string }
    report(e.lines, undefined, `not valid CSV: ${e.message.replace(/^Invalid [^:]*: /, '')}`)
  }
  if (!header) report(1, undefined, 'the file is empty: it needs a header row with at least an "id" column')
  if (problemCount === 0 && people.length === 0) report(undefined, undefined, 'no people in the file (only a header row)')
  return { people, problems, problemCount }
}

function checkHeader(header: string[], report: (line: number, field: string | undefined, msg: string) => void) {
  if (!header.includes('id')) report(1, 'id', 'the header has no "id" column')
  const seen = new Set<string>()
  for (const h of header) {
    if (!(PEOPLE_COLUMNS as readonly string[]).includes(h)) report(1, h, `unknown column "${h}" (known: ${PEOPLE_COLUMNS.join(', ')})`)
    if (seen.has(h)) report(1, h, `column "${h}" appears twice`)
    seen.add(h)
  }
}

function validateRow(
  record: Record<string, string>,
  line: number,
  rules: readonly PersonRules[],
  photoBase: string,
  maxPhoto: number,
  report: (line: number, field: string, msg: string) => void,
): Person | undefined {
  let ok = true
  const bad = (field: string, msg: string) => { ok = false; report(line, field, msg) }
  const get = (c: Column) => {
    const v = record[c]
    return v === undefined ? undefined : v.trim() === '' ? undefined : v.trim()
  }
  const id = get('id')
  if (!id) {
    bad('id', 'id is required')
    return undefined
  }
  const p: Person = { id }
  for (const c of ['name', 'card', 'password', 'phone', 'department', 'room', 'unit'] as const) {
    const v = get(c)
    if (v !== undefined) p[c] = v
  }
  const role = get('role')
  if (role !== undefined) {
    if ((ROLES as readonly string[]).includes(role.toLowerCase())) p.role = role.toLowerCase() as Role
    else bad('role', `role "${role}" must be one of ${ROLES.join(', ')}`)
  }
  for (const [c, key] of [['valid_from', 'validFrom'], ['valid_to', 'validTo']] as const) {
    const v = get(c)
    if (v === undefined) continue
    try {
      p[key] = parseTime(v, c)
    } catch {
      bad(c, `"${v}" is not an ISO 8601 date or date-time (e.g. 2026-12-31 or 2026-12-31T18:00:00+08:00)`)
    }
  }
  const photo = get('photo')
  const photoPath = photo === undefined ? undefined : isAbsolute(photo) ? photo : resolve(photoBase, photo)
  checkPerson({ ...p, photoPath }, rules, maxPhoto, (field, msg) => bad(field, field === 'photo' ? `${photo}: ${msg}` : msg))
  if (photoPath !== undefined && ok) p.photoPath = photoPath
  return ok ? p : undefined
}

/**
 * Checks one person against every target protocol's rules (required fields, id and field
 * patterns, lengths, the photo file): what `people import` checks per CSV row and `people copy`
 * per person read from the source, before anything is sent. `bad` gets the column and the reason.
 */
export function checkPerson(p: Person, rules: readonly PersonRules[], maxPhoto: number, bad: (field: string, message: string) => void): void {
  const id = p.id
  if (p.validFrom && p.validTo && p.validFrom > p.validTo) bad('valid_to', 'valid_to is before valid_from')
  for (const r of rules) {
    for (const f of r.required) if (!p[f]) bad(f, `${f} is required for ${r.protocol} devices`)
    if (r.idPattern && !r.idPattern.re.test(id)) bad('id', `id "${id}" is not valid for ${r.protocol} devices: ${r.idPattern.description}`)
    for (const [field, pattern] of Object.entries(r.patterns ?? {}) as [keyof NonNullable<PersonRules['patterns']>, { re: RegExp; description: string }][]) {
      const v = p[field]
      if (v !== undefined && !pattern.re.test(v)) bad(field, `${field} "${v}" is not valid for ${r.protocol} devices: ${pattern.description}`)
    }
    for (const [c, field] of Object.entries(FIELD_OF) as [Column, keyof PersonRules['maxLength']][]) {
      const limit = r.maxLength[field]
      const v = field === 'id' ? id : (p[field as keyof Person] as string | undefined)
      if (limit === undefined || v === undefined) continue
      const len = r.lengthInBytes ? Buffer.byteLength(v) : [...v].length
      if (len > limit) bad(c, `${c} is ${len} ${r.lengthInBytes ? 'bytes' : 'characters'}; ${r.protocol} devices take at most ${limit}`)
    }
  }
  if (p.photoPath !== undefined) {
    const problem = checkJpeg(p.photoPath, maxPhoto)
    if (problem) bad('photo', problem)
  }
}

/** The largest photo every one of these protocols accepts. */
export function maxPhotoBytesOf(rules: readonly PersonRules[]): number {
  return Math.min(...rules.map((r) => r.maxPhotoBytes), Number.MAX_SAFE_INTEGER)
}

/** Why a photo file is unusable, or undefined if it is a JPEG within the size limit. */
export function checkJpeg(path: string, maxBytes: number): string | undefined {
  let size: number
  try {
    const st = statSync(path)
    if (!st.isFile()) return 'not a file'
    size = st.size
  } catch {
    return 'file not found'
  }
  if (size > maxBytes) return `${Math.ceil(size / 1024)} KB is larger than the ${Math.floor(maxBytes / 1024)} KB the devices accept`
  const head = Buffer.alloc(3)
  const fd = openSync(path, 'r')
  try {
    readSync(fd, head, 0, 3, 0)
  } finally {
    closeSync(fd)
  }
  if (head[0] !== 0xff || head[1] !== 0xd8 || head[2] !== 0xff) return 'not a JPEG image'
  return undefined
}

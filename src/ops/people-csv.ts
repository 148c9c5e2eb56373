import { dirname, isAbsolute, resolve } from 'node:path'
import { parse } from 'csv-parse'
import { InputError, type InputProblem } from '../types/errors.js'
import { parseTime } from '../util/time.js'
import { checkJpeg, fsReason, openTextInput, readInputDir, type TextInput } from '../util/user-paths.js'
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
  if (opts.photosDir !== undefined) readInputDir(opts.photosDir, '--photos-dir')
  const input = await openTextInput(file)
  // Line numbers cost a fresh info object per row (~20 MB on 100,000 rows), so the first pass goes
  // without them; only a file with problems is read again to say where each one is.
  const fast = await validatePass(input, opts, false)
  if (fast.problemCount === 0) return { people: fast.people }
  const located = await validatePass(input, opts, true)
  const { problems, problemCount } = located.problemCount > 0 ? located : fast
  if (problemCount > problems.length) problems.push({ file, message: `… and ${problemCount - problems.length} more problems` })
  // the message itself says nothing was sent; a suggestion line would only repeat it
  throw new InputError(problems)
}

async function validatePass(input: TextInput, opts: PeopleCsvOptions, withLines: boolean) {
  const file = input.path
  const problems: InputProblem[] = []
  const max = opts.maxProblems ?? 1000
  let problemCount = 0
  const people: Person[] = []
  const firstLineOf = new Map<string, number>()
  const report = (line: number | undefined, field: string | undefined, message: string) => {
    problemCount++
    if (problems.length < max) problems.push({ file, line, field, message })
  }
  // a piped CSV (`<(make-csv)`) has no folder of its own: its photos are relative to the current one
  const photoBase = opts.photosDir ?? (input.piped ? process.cwd() : dirname(resolve(file)))
  const maxPhoto = maxPhotoBytesOf(opts.rules)

  let header: string[] | undefined
  const source = input.open()
  const parser = source.pipe(
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
  // a read error (the file vanished, an I/O error) ends the parse instead of crashing the process
  source.once('error', (err) => parser.destroy(err))
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
    const e = err as { code?: string; lines?: number; message: string; syscall?: string }
    report(e.lines, undefined, e.syscall ? `cannot read the file: ${fsReason(err)}` : `not valid CSV: ${e.message.replace(/^Invalid [^:]*: /, '')}`)
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

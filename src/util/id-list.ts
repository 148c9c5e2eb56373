import { parse } from 'csv-parse/sync'
import { InputError, type InputProblem } from '../types/errors.js'
import { readTextInput } from './user-paths.js'

/**
 * A CSV whose `id` column lists people (`people delete --from`, `serve --authorize`); other
 * columns are ignored. Returns the distinct ids in file order. A header row without ids is an
 * error unless `allowNone` (an allow-list may be empty on purpose).
 */
export function readIdList(file: string, flag: string, opts: { allowNone?: boolean } = {}): string[] {
  const text = readTextInput(file, flag)
  let header: string[] = []
  let rows: { record: Record<string, string>; info: { lines: number } }[]
  try {
    rows = parse(text, {
      bom: true,
      info: true,
      skip_empty_lines: true,
      relax_column_count: true,
      columns: (names: string[]) => (header = names.map((c) => c.trim().toLowerCase())),
    }) as never
  } catch (err) {
    throw new InputError([{ file, flag, line: (err as { lines?: number }).lines, message: `not valid CSV: ${(err as Error).message}` }])
  }
  if (!header.includes('id')) throw new InputError([{ file, flag, line: 1, message: 'the header has no "id" column' }])
  if (rows.length === 0 && !opts.allowNone) throw new InputError([{ file, flag, message: 'no ids: the file has only a header row' }])
  const problems: InputProblem[] = rows.flatMap(({ record, info }) => (record.id?.trim() ? [] : [{ file, flag, line: info.lines, field: 'id', message: 'id is empty' }]))
  if (problems.length > 0) throw new InputError(problems)
  return [...new Set(rows.map(({ record }) => record.id.trim()))]
}

// Checks an exported records file without loading it whole: how many records it holds, and that no
// record id occurs twice. Formats: `ndjson` (doorctl rows: record_id), `raw` (the floor's raw
// SignObjects: id), `csv` (doorctl rows with a header naming record_id).
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { parse } from 'csv-parse/sync'

/** → { count, unique, duplicates: first few repeated ids, bad: lines that could not be read } */
export async function checkRecords(path, format) {
  const seen = new Set()
  const duplicates = []
  let count = 0
  let bad = 0
  let idColumn = -1
  let header = format === 'csv'
  const lines = createInterface({ input: createReadStream(path, { highWaterMark: 1 << 20 }), crlfDelay: Infinity })
  for await (const line of lines) {
    if (line === '') continue
    let id
    if (format === 'csv') {
      // the rows of a bench device are plain; a quoted line goes through csv-parse
      const fields = line.includes('"') ? (parse(line, { relax_quotes: false })[0] ?? []) : line.split(',')
      if (header) {
        header = false
        idColumn = fields.indexOf('record_id')
        if (idColumn < 0) throw new Error(`${path}: the CSV header has no record_id column: ${line.slice(0, 200)}`)
        continue
      }
      id = fields[idColumn]
    } else {
      try {
        const o = JSON.parse(line)
        id = format === 'raw' ? o.id : o.record_id
      } catch {
        id = undefined
      }
    }
    if (id === undefined || id === '') {
      bad++
      continue
    }
    count++
    const key = String(id)
    if (seen.has(key)) {
      if (duplicates.length < 5) duplicates.push(key)
    } else seen.add(key)
  }
  return { count, unique: seen.size, duplicates, bad }
}

// Floor for `people import --dry-run`: parse the same CSV with csv-parse, streaming, and count the
// rows; no validation, nothing kept. usage: node bench/floor-validate.js FILE.csv → {"rows":N}
import { createReadStream } from 'node:fs'
import { parse } from 'csv-parse'

const file = process.argv[2]
let rows = 0
for await (const _ of createReadStream(file).pipe(parse({ bom: true, columns: true, skip_empty_lines: true }))) rows++
process.stdout.write(JSON.stringify({ rows }) + '\n')

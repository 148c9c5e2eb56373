// Floor for `people import`: the least a client can do to add the same people. Reads the CSV
// (the bench's own: a header and plain comma-separated rows, no quoting), then POSTs every person
// to /api/user one at a time with global fetch, signing each request, and checks each answer.
// The body is the UserObject doorctl sends for such a row (openapi codec personToUserObject).
// usage: node bench/floor-import.js URL PASSWORD FILE.csv   → prints {"sent":N,"ok":K,"failed":F}
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'

const [url, password, file] = process.argv.slice(2)
if (!url || password === undefined || !file) {
  process.stderr.write('usage: node bench/floor-import.js URL PASSWORD FILE.csv\n')
  process.exit(2)
}

const signed = () => {
  const ts = String(Date.now())
  return `timestamp=${ts}&sign=${createHash('md5').update(`${ts}#${password}`).digest('hex')}`
}

const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '')
const cols = lines[0].split(',')
let ok = 0
let failed = 0
let firstFailure
for (let i = 1; i < lines.length; i++) {
  const v = lines[i].split(',')
  const row = Object.fromEntries(cols.map((c, k) => [c, v[k] ?? '']))
  const user = { userId: row.id, userType: 1, icNumber: row.card, jobNumber: '', mobile: row.phone, name: row.name, remark: '', department: row.department }
  const res = await fetch(`${url}/api/user?${signed()}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json; charset=utf-8' },
    body: JSON.stringify(user),
  })
  const body = await res.json()
  if (body.code === 200) ok++
  else {
    failed++
    firstFailure ??= `${row.id}: ${body.code} ${body.message} ${body.desc}`
  }
}
process.stdout.write(JSON.stringify({ sent: lines.length - 1, ok, failed, firstFailure }) + '\n')
process.exitCode = failed > 0 ? 1 : 0

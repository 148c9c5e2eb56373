// Floor for `records pull`: the plain script a user would write instead — a `fetch` pager that
// writes NDJSON. Pages the same endpoint with global fetch, 1000 a page, one page at a time
// (startTime=0, endTime=now in seconds, page 1..totalPage), and writes every record as one JSON
// line (JSON.stringify of the raw SignObject) through a write stream, waiting for 'drain'.
// usage: node bench/floor-pull.js URL PASSWORD OUTPUT   → prints {"count":N,"pages":P} on stdout
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { once } from 'node:events'

const [url, password, output] = process.argv.slice(2)
if (!url || password === undefined || !output) {
  process.stderr.write('usage: node bench/floor-pull.js URL PASSWORD OUTPUT\n')
  process.exit(2)
}

const signed = () => {
  const ts = String(Date.now())
  return `timestamp=${ts}&sign=${createHash('md5').update(`${ts}#${password}`).digest('hex')}`
}

const out = createWriteStream(output)
const endTime = Math.floor(Date.now() / 1000)
let count = 0
let pages = 0
let totalPage = 1
for (let page = 1; page <= totalPage; page++) {
  const res = await fetch(`${url}/api/record?${signed()}&page=${page}&size=1000&startTime=0&endTime=${endTime}`)
  const body = await res.json()
  if (body.code !== 200) throw new Error(`page ${page}: code ${body.code} ${body.message} ${body.desc}`)
  pages++
  totalPage = body.data.totalPage
  for (const rec of body.data.data) {
    count++
    if (!out.write(JSON.stringify(rec) + '\n')) await once(out, 'drain')
  }
}
out.end()
await once(out, 'close')
process.stdout.write(JSON.stringify({ count, pages }) + '\n')

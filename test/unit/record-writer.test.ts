/** records pull's output side: RecordWriter writes a batch of rows as one chunk, in every format. */
import { PassThrough } from 'node:stream'
import { parse } from 'csv-parse/sync'
import { stringify } from 'csv-stringify/sync'
import { describe, expect, it } from 'vitest'
import { RecordWriter, type RecordRow } from '../../src/ops/record-writer.js'

function collect(): { out: PassThrough; text: () => string } {
  const out = new PassThrough()
  const chunks: Buffer[] = []
  out.on('data', (c: Buffer) => chunks.push(c))
  return { out, text: () => Buffer.concat(chunks).toString('utf8') }
}

const rows = (from: number, n: number): RecordRow[] =>
  Array.from({ length: n }, (_, i) => ({ device: 'd', record_id: String(from + i), name: i % 2 ? 'Zoë, "Z"' : '王伟', mask: i % 3 === 0, similarity: null }))

describe('RecordWriter', () => {
  const columns = ['device', 'record_id', 'name', 'mask', 'similarity']

  it('CSV in batches is the same text as all rows stringified at once: one header, quoting, booleans', async () => {
    const { out, text } = collect()
    const w = new RecordWriter(out, 'csv', columns)
    await w.begin()
    await w.writeBatch(rows(1, 3))
    await w.writeBatch([])
    await w.writeBatch(rows(4, 2))
    await w.write(rows(6, 1)[0]!)
    await w.finish()
    const all = [...rows(1, 3), ...rows(4, 2), ...rows(6, 1)]
    expect(text()).toBe(stringify(all, { header: true, columns, cast: { boolean: (v) => (v ? 'true' : 'false') } }))
    expect(w.count).toBe(6)
    expect((parse(text(), { columns: true }) as Record<string, string>[]).map((r) => r.name)).toEqual(all.map((r) => r.name))
  })

  it('an empty CSV export is the header alone', async () => {
    const { out, text } = collect()
    const w = new RecordWriter(out, 'csv', columns)
    await w.finish()
    expect(text()).toBe('device,record_id,name,mask,similarity\n')
  })

  it('NDJSON: one line per row; JSON: one array, also embedded after a prefix', async () => {
    const nd = collect()
    const w1 = new RecordWriter(nd.out, 'ndjson', columns)
    await w1.writeBatch(rows(1, 2))
    await w1.writeBatch(rows(3, 1))
    await w1.finish()
    expect(nd.text().split('\n').filter(Boolean).map((l) => JSON.parse(l).record_id)).toEqual(['1', '2', '3'])
    const js = collect()
    const w2 = new RecordWriter(js.out, 'json', columns)
    await w2.begin()
    await w2.writeBatch(rows(1, 2))
    await w2.writeBatch(rows(3, 2))
    await w2.finish()
    expect((JSON.parse(js.text()) as RecordRow[]).map((r) => r.record_id)).toEqual(['1', '2', '3', '4'])
    const emb = collect()
    const w3 = new RecordWriter(emb.out, 'json', columns)
    await w3.begin('{"records":[')
    await w3.finish('\n]}')
    expect(JSON.parse(emb.text())).toEqual({ records: [] })
  })
})

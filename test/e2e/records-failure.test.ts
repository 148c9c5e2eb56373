/**
 * `records pull` when a device fails half way (built binary): the pages before the failing one are
 * written, their --since last cursor committed, the device reported failed (exit 1), and the next
 * run continues right after them. The device is a small /api/record server on 127.0.0.1 that pages
 * as the openapi document does (newest first, within [startTime, endTime]) and fails chosen pages.
 */
import { createServer, type Server } from 'node:http'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { parse } from 'csv-parse/sync'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { doorctl, tempDir } from '../helpers.js'

describe('records pull when a device fails half way', () => {
  const N = 3500
  const T = Math.floor(Date.now() / 1000) - 10_000
  let server: Server
  /** Record pages (by number) answered with HTTP 500 instead. */
  let failing = new Set<number>()
  const home = tempDir()
  const work = tempDir('doorctl-work-')

  beforeAll(async () => {
    server = createServer((req, res) => {
      const url = new URL(req.url!, 'http://127.0.0.1')
      const q = url.searchParams
      const page = Number(q.get('page'))
      if (url.pathname !== '/api/record') return void res.writeHead(404).end()
      if (failing.has(page)) return void res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error')
      const start = Number(q.get('startTime'))
      const end = Number(q.get('endTime'))
      const size = Number(q.get('size'))
      const sel: Record<string, unknown>[] = []
      for (let id = N; id >= 1; id--) {
        const signTime = T + id
        if (signTime >= start && signTime <= end) sel.push({ id, signTime, userId: `U${id % 7}`, name: 'n', type: 1, inputType: 1 })
      }
      const data = sel.slice((page - 1) * size, page * size)
      const body = { code: 200, message: 'OK', desc: '', data: { total: sel.length, pageNum: page, size: data.length, pageSize: size, totalPage: Math.ceil(sel.length / size), data } }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as AddressInfo).port
    const r = await doorctl(['device', 'add', 'door', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(port)], { home: home.path })
    expect(r.code, r.stderr).toBe(0)
  })
  afterAll(async () => {
    await new Promise((r) => server.close(r))
    home.cleanup()
    work.cleanup()
  })

  const pull = (name: string) => doorctl(['records', 'pull', 'door', '--since', 'last', '--output', join(work.path, name), '--json'], { home: home.path })
  const ids = (name: string): number[] => (parse(readFileSync(join(work.path, name)), { columns: true }) as { record_id: string }[]).map((r) => Number(r.record_id))

  it('keeps the pages before the failing one, and the next --since last run continues after them', async () => {
    // the older seconds are walked from the last page: 4 (ids 1–499), 3 (500–1499), then 2 fails
    failing = new Set([2])
    const first = await pull('first.csv')
    expect(first.code, first.stdout + first.stderr).toBe(1)
    const doc = first.json()
    expect(doc.results[0]).toMatchObject({ device: 'door', ok: false, status: 'failed' })
    expect(doc.results[0].message).toMatch(/HTTP 500.*\(after 1499 records, which were exported\)/)
    expect(doc.total).toBe(1499)
    expect(ids('first.csv')).toEqual(Array.from({ length: 1499 }, (_, i) => i + 1))

    failing = new Set()
    const second = await pull('second.csv')
    expect(second.code, second.stdout + second.stderr).toBe(0)
    expect(ids('second.csv')).toEqual(Array.from({ length: N - 1499 }, (_, i) => 1500 + i))

    const third = await pull('third.csv')
    expect(third.json().total).toBe(0)
    expect(readFileSync(join(work.path, 'third.csv'), 'utf8').split('\n')[0]).toMatch(/^device,record_id,time,/)
  })
})

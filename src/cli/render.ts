import Table from 'cli-table3'
import type { TargetResult } from '../ops/run.js'

/** A table for a terminal, tab-separated lines (with a header) for pipes. Always to stdout. */
export function renderTable(headers: string[], rows: (string | number | boolean | undefined | null)[][], tty = !!process.stdout.isTTY): void {
  const cell = (v: string | number | boolean | undefined | null) => (v === undefined || v === null ? '' : String(v))
  if (tty) {
    const table = new Table({ head: headers, style: { head: ['bold'], border: [] } })
    for (const r of rows) table.push(r.map(cell))
    process.stdout.write(table.toString() + '\n')
    return
  }
  process.stdout.write(headers.join('\t') + '\n')
  for (const r of rows) process.stdout.write(r.map((v) => cell(v).replace(/[\t\n]/g, ' ')).join('\t') + '\n')
}

export function renderResults(results: TargetResult[], opts: { tty: boolean; columns?: string[] }): void {
  const extra = opts.columns ?? []
  renderTable(
    ['DEVICE', 'PROTOCOL', 'STATUS', ...extra.map((c) => c.toUpperCase()), 'MESSAGE'],
    results.map((r) => [r.device, r.protocol, r.status, ...extra.map((c) => r[c] as string), r.message + (r.suggestion && !r.ok ? ` (try: ${r.suggestion})` : '')]),
    opts.tty,
  )
}

import Table from 'cli-table3'
import type { TargetResult } from '../ops/run.js'
import type { StatusDocument } from '../types/status.js'

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

/** `doorctl status` for humans: each gateway's summary, its protocols, silent devices and problems. */
export function renderStatus(doc: StatusDocument, line: (s: string) => void, tty = !!process.stdout.isTTY): void {
  if (doc.gateways.length === 0) {
    line(doc.store ? `no gateway is working on the store ${doc.store} (start one with \`doorctl serve --store …\`)` : 'no gateway is running for this DOORCTL_HOME (start one with `doorctl serve`)')
    return
  }
  if (doc.store) line(`store ${doc.store}: ${doc.gateways.length} gateway${doc.gateways.length === 1 ? '' : 's'}; each one's figures are the whole site's`)
  for (const g of doc.gateways) {
    const ports = Object.entries(g.ports).map(([k, v]) => `${k.replace(/_port$/, '')} ${v}`).join(', ')
    line(`gateway ${g.id ? `${g.id.slice(0, 8)} ` : ''}pid ${g.pid} on ${g.host} (${g.mode}), up ${duration(g.uptime_seconds)}; listening on ${g.bind}: ${ports}`)
    line(`devices ${g.devices.online} online${g.devices_here !== undefined ? ` (${g.devices_here} calling this gateway)` : ''}, ${g.devices.offline} offline of ${g.devices.total}; queued commands ${g.queue_depth.total}; records in the last hour ${g.records_last_hour}; discovered ${g.discovered_devices}`)
    const protocols = Object.keys({ ...g.devices.by_protocol, ...g.queue_depth.by_protocol }).sort()
    if (protocols.length > 0) {
      renderTable(['PROTOCOL', 'ONLINE', 'OFFLINE', 'QUEUED'], protocols.map((p) => [p, g.devices.by_protocol[p]?.online ?? 0, g.devices.by_protocol[p]?.offline ?? 0, g.queue_depth.by_protocol[p] ?? 0]), tty)
    }
    if (g.silent.length > 0) {
      line(`silent (quiet for more than three of their usual intervals): ${g.silent.length}`)
      renderTable(['DEVICE', 'PROTOCOL', 'LAST SEEN', 'SILENT FOR', 'USUAL INTERVAL'], g.silent.map((s) => [s.device, s.protocol, s.last_seen, duration(s.silent_seconds), `${s.interval_seconds}s`]), tty)
    }
    for (const p of g.problems) line(`problem: ${p}`)
  }
}

function duration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`
}

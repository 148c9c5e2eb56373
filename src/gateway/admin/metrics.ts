import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import { COMMAND_STATUS, type GatewayMonitor } from '../status.js'

/**
 * The gateway's Prometheus metrics, in a registry of its own. Gauges are computed when scraped
 * (collect callbacks over the monitor, refreshed first); counters are fed by the gateway's hooks
 * (a command finished, a record spooled, a device's request answered) and so count what this
 * gateway did, while the gauges on a shared store show the whole site.
 */
export function createMetrics(monitor: GatewayMonitor): Registry {
  const register = new Registry()
  collectDefaultMetrics({ register })
  const gw = monitor.gateway

  new Gauge({
    name: 'doorctl_devices',
    help: 'Devices of the inventory by protocol and state (online|offline)',
    labelNames: ['protocol', 'state'],
    registers: [register],
    collect() {
      this.reset()
      for (const [protocol, n] of Object.entries(monitor.deviceCounts())) {
        this.set({ protocol, state: 'online' }, n.online)
        this.set({ protocol, state: 'offline' }, n.offline)
      }
    },
  })
  new Gauge({
    name: 'doorctl_queue_depth',
    help: 'Commands queued or delivered and not yet final, by protocol',
    labelNames: ['protocol'],
    registers: [register],
    collect() {
      this.reset()
      const depth: Record<string, number> = {}
      for (const d of gw.devices()) depth[d.protocol] = 0
      for (const c of monitor.figures.openCommandCounts()) depth[c.protocol] = (depth[c.protocol] ?? 0) + c.count
      for (const [protocol, n] of Object.entries(depth)) this.set({ protocol }, n)
    },
  })
  new Gauge({
    name: 'doorctl_discovered_devices',
    help: 'Devices not in the inventory that called the gateway',
    registers: [register],
    collect() {
      this.set(gw.discoveredSoFar().length)
    },
  })
  const commands = new Counter({
    name: 'doorctl_commands_total',
    help: 'Commands finished, by protocol, kind and status (ok|failed|timeout|unknown)',
    labelNames: ['protocol', 'kind', 'status'],
    registers: [register],
  })
  const records = new Counter({
    name: 'doorctl_records_total',
    help: 'New access records spooled, by protocol',
    labelNames: ['protocol'],
    registers: [register],
  })
  const requests = new Counter({
    name: 'doorctl_device_requests_total',
    help: "Devices' HTTP requests answered, by protocol and outcome (ok|error)",
    labelNames: ['protocol', 'outcome'],
    registers: [register],
  })
  const duration = new Histogram({
    name: 'doorctl_device_request_duration_seconds',
    help: "Time to answer a device's HTTP request, durable writes included",
    labelNames: ['protocol'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [register],
  })
  const refused = new Counter({
    name: 'doorctl_refused_total',
    help: 'Device requests, datagrams or broker connections refused, by protocol and reason (allow-from|anonymous|credentials|acl)',
    labelNames: ['protocol', 'reason'],
    registers: [register],
  })
  gw.onRefused((r) => refused.inc({ protocol: r.protocol, reason: r.reason }))
  gw.observe({
    commandFinished: (c) => commands.inc({ protocol: c.protocol, kind: c.kind, status: COMMAND_STATUS[c.state] }),
    recordSpooled: (protocol) => records.inc({ protocol }),
    requestHandled: (protocol, outcome, seconds) => {
      requests.inc({ protocol, outcome })
      duration.observe({ protocol }, seconds)
    },
  })
  return register
}

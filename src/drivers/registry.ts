import type { DriverModule, Protocol } from './types.js'

// Drivers are imported lazily: a command touching only openapi devices never loads ws/mqtt code.
const loaders: Record<Protocol, () => Promise<DriverModule>> = {
  openapi: () => import('./openapi/index.js'),
  httpv2: () => import('./httpv2/index.js'),
  wsjson: () => import('./pending.js').then((m) => m.pendingDriver('wsjson')),
  udp: () => import('./pending.js').then((m) => m.pendingDriver('udp')),
  best: () => import('./pending.js').then((m) => m.pendingDriver('best')),
}

const cache = new Map<Protocol, Promise<DriverModule>>()

export function loadDriver(protocol: Protocol): Promise<DriverModule> {
  let m = cache.get(protocol)
  if (!m) {
    m = loaders[protocol]()
    cache.set(protocol, m)
  }
  return m
}

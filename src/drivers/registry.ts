import type { Protocol } from '../types/driver.js'
import type { DriverModule } from '../types/driver-module.js'

// Drivers are imported lazily: a command touching only openapi devices never loads ws/mqtt code.
// A protocol whose driver is not part of this build is served by the "pending" driver, which
// says so for every operation (status unsupported) instead of failing the whole run.
async function load(protocol: Protocol): Promise<DriverModule> {
  try {
    return (await import(`./${protocol}/index.js`)) as DriverModule
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND' || !String((err as Error).message).includes(`/${protocol}/index.js`)) throw err
    return (await import('./pending.js')).pendingDriver(protocol)
  }
}

const cache = new Map<Protocol, Promise<DriverModule>>()

export function loadDriver(protocol: Protocol): Promise<DriverModule> {
  let m = cache.get(protocol)
  if (!m) {
    m = load(protocol)
    cache.set(protocol, m)
  }
  return m
}

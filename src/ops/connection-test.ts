/**
 * "Does this door work?" right after it was added. A device doorctl calls (openapi direct mode)
 * is asked who it is: an answer means reachable and the signature accepted, and names the model
 * and firmware. A push-style device must call the gateway (serve, or a temporary listener opened
 * for the test) within the time given.
 */
import { DoorctlError } from '../types/errors.js'
import { contextFor, raceAbort } from './run.js'
import { loadDriver } from '../drivers/registry.js'
import type { DeviceEntry } from '../types/driver.js'
import type { DriverEnv } from '../types/driver-module.js'

export interface ConnectionTest {
  ok: boolean
  message: string
  suggestion?: string
  model?: string
  firmware?: string
  /** push-style: where the device called from */
  address?: string
}

export interface ConnectionTestOptions {
  timeoutMs: number
  signal: AbortSignal
  /** How often a push-style device's presence is looked at. */
  pollMs?: number
}

export async function testConnection(device: DeviceEntry, env: DriverEnv, opts: ConnectionTestOptions): Promise<ConnectionTest> {
  const driver = (await loadDriver(device.protocol)).createDriver(device, env)
  try {
    if (driver.probe) {
      const ctx = contextFor(device, { signal: opts.signal, timeoutMs: opts.timeoutMs }, env.log)
      try {
        const who = await raceAbort(driver.probe(ctx), ctx.signal)
        return { ok: true, message: `reachable, signature accepted; model ${who.model || 'not reported'}, firmware ${who.firmware || 'not reported'}`, ...who }
      } catch (err) {
        return { ok: false, message: err instanceof Error ? err.message : String(err), suggestion: err instanceof DoorctlError ? err.suggestion : undefined }
      } finally {
        ctx.dispose()
      }
    }
    return await awaitCall(device, env, opts)
  } finally {
    await driver.close().catch(() => {})
  }
}

async function awaitCall(device: DeviceEntry, env: DriverEnv, opts: ConnectionTestOptions): Promise<ConnectionTest> {
  if (!env.gateway) throw new Error('no gateway available to reach push-style devices')
  const since = Date.now()
  const gateway = await env.gateway()
  const deadline = since + opts.timeoutMs
  for (;;) {
    const seen = (await gateway.presence()).find((p) => p.device === device.name)
    if (seen?.lastSeen && Date.parse(seen.lastSeen) >= since) {
      return { ok: true, message: `${device.name} called the gateway from ${seen.address || 'an unknown address'} at ${seen.lastSeen}`, address: seen.address }
    }
    if (Date.now() >= deadline || opts.signal.aborted) break
    await new Promise((r) => setTimeout(r, Math.min(opts.pollMs ?? 250, Math.max(0, deadline - Date.now()))))
  }
  return {
    ok: false,
    message: `${device.name} did not call the gateway within ${Math.round(opts.timeoutMs / 1000)}s`,
    suggestion: 'check that the device points at this gateway (README: "Pointing a device at the gateway") and that its identity matches what was added; `doorctl device list --discovered` shows devices that called but did not match',
  }
}

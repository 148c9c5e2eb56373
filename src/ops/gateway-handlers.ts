import { PROTOCOLS, type Protocol } from '../types/driver.js'
import type { ProtocolHandler } from '../types/gateway.js'

/**
 * Every protocol's gateway side (`src/drivers/<protocol>/gateway.ts`, exporting `handler` or
 * `handlers`), loaded when a gateway starts. openapi's gateway side is its platform mode.
 */
export async function loadHandlers(only?: ReadonlySet<Protocol>): Promise<ProtocolHandler[]> {
  const mods = await Promise.all(
    PROTOCOLS.filter((p) => !only || only.has(p)).map(async (p) => {
      try {
        return (await import(`../drivers/${p}/gateway.js`)) as { handler?: ProtocolHandler; handlers?: ProtocolHandler[] }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes(`/${p}/gateway.js`)) return {}
        throw err
      }
    }),
  )
  return mods.flatMap((m) => m.handlers ?? (m.handler ? [m.handler] : []))
}

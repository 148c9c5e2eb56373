import type { ProtocolHandler } from './types.js'

/** Every protocol's gateway side, loaded when a gateway starts. */
export async function loadHandlers(): Promise<ProtocolHandler[]> {
  const mods = await Promise.all([import('../drivers/httpv2/gateway.js')])
  return mods.map((m) => m.handler)
}

/**
 * Times doorctl prints use the records' rendering (ISO 8601 with the offset, never "Z"): here the
 * presence `device list` shows when no gateway runs (read from the saved gateway state).
 */
import { afterAll, describe, expect, it } from 'vitest'
import { readPresence } from '../../src/gateway/presence.js'
import { GatewayStore } from '../../src/store/gateway-store.js'
import { tempDir } from '../helpers.js'

const ISO_WITH_OFFSET = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/

describe('presence as last saved', () => {
  const home = tempDir('doorctl-presence-')
  afterAll(() => home.cleanup())

  it('last seen is rendered with the offset, in the zone doorctl runs in', async () => {
    const at = Date.UTC(2026, 10, 24, 1, 2, 3, 456)
    const store = new GatewayStore(home.path)
    store.savePresence([{ device: 'door-1', protocol: 'httpv2', lastSeen: at, address: '127.0.0.1:5000', info: {} }])
    store.close()
    const tz = process.env.TZ
    try {
      process.env.TZ = 'Asia/Shanghai'
      const { running, presence } = await readPresence(home.path)
      expect(running).toBe(false)
      expect(presence[0]!.lastSeen).toBe('2026-11-24T09:02:03+08:00')
      expect(presence[0]!.lastSeen).toMatch(ISO_WITH_OFFSET)
    } finally {
      if (tz === undefined) delete process.env.TZ
      else process.env.TZ = tz
    }
  })
})

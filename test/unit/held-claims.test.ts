/**
 * ctx.durable on a shared store (one in-process Gateway on a throw-away PostgreSQL): it resolves
 * once the writes made in it are committed and rejects when they fail; and over held connections
 * (wsjson, best-w, udp datagrams) a command whose claim is lost never reaches the device — the
 * store here loses every claim, as if another gateway always took the command first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHandler as wsjsonHandler } from '../../src/drivers/wsjson/gateway.js'
import { createHandler as bestHandler } from '../../src/drivers/best/gateway.js'
import { createHandler as udpHandler } from '../../src/drivers/udp/gateway.js'
import { Gateway } from '../../src/gateway/gateway.js'
import { PostgresStore } from '../../src/store/postgres-store.js'
import type { Logger } from '../../src/types/driver.js'
import type { SpoolRecord } from '../../src/types/gateway.js'
import { createWsjsonSimulator, type WsjsonSimulator } from '../../src/simulators/wsjson/index.js'
import { createBestSimulator, type BestSimulator } from '../../src/simulators/best/index.js'
import { createUdpSimulator, type UdpSimulator } from '../../src/simulators/udp/index.js'
import { doorctl, freePort, freeUdpPort, tempDir, until } from '../helpers.js'
import { pgMissing, startPostgres, type TestPostgres } from '../pg.js'

const missing = pgMissing()
const quiet: Logger = { debug: () => {}, info: () => {}, notice: () => {}, warn: () => {} }
const record = (recordId: string): SpoolRecord => ({ device: 'w1', recordId, time: Date.now(), userId: '7', name: 'Ana', type: 'employee', result: 'granted', direction: 'in', method: 'face', photo: Buffer.from('jpeg') })
const BEST = { product: '5d9b11e1a3f448ae81f9f920e976d852', secret: 'factory-secret-1', brokerKey: 'aabbcc' }

describe.skipIf(missing)(`held connections on a shared store${missing ? ` (cannot run: ${missing})` : ''}`, () => {
  let pg: TestPostgres
  let url: string
  let store: PostgresStore
  let other: PostgresStore
  let gw: Gateway
  const claims = new Map<string, number>()
  const home = tempDir('doorctl-held-')
  const sims: { w?: WsjsonSimulator; b?: BestSimulator; u?: UdpSimulator } = {}

  beforeAll(async () => {
    pg = await startPostgres()
    url = pg.url('held')
    for (const args of [
      ['w1', '--protocol', 'wsjson', '--sn', 'HELD-W1'],
      ['b1', '--protocol', 'best', '--sn', 'HELDB1', '--transport', 'ws', '--product-id', BEST.product, '--device-secret', BEST.secret, '--broker-key', BEST.brokerKey],
      ['u1', '--protocol', 'udp', '--community', '9', '--code', '101'],
    ]) {
      const r = await doorctl(['device', 'add', ...args, '--store', url], { home: home.path })
      expect(r.code, r.stderr).toBe(0)
    }
    store = await PostgresStore.open({ url, pollMs: 50 })
    other = await PostgresStore.open({ url, pollMs: 50 })
    // every claim is lost: another gateway always took the command first
    store.commands.claim = async (device) => {
      claims.set(device, (claims.get(device) ?? 0) + 1)
      return undefined
    }
    const [httpPort, udpPort] = [await freePort(), await freeUdpPort()]
    gw = new Gateway({
      home: home.path, log: quiet, settings: { httpPort, udpPort, bind: '127.0.0.1' },
      handlers: [wsjsonHandler({ heartbeatSeconds: 1 }), bestHandler(), udpHandler({ resendMs: 100 })],
      shared: { store, leaseMs: 60_000, flushMs: 100 },
    })
    await gw.start()
    sims.w = createWsjsonSimulator({ url: `ws://127.0.0.1:${httpPort}/wsjson`, sn: 'HELD-W1', reconnectMs: 100 })
    sims.b = createBestSimulator({ server: `http://127.0.0.1:${httpPort}`, sn: 'HELDB1', transport: 'ws', productId: BEST.product, deviceSecret: BEST.secret, brokerKey: BEST.brokerKey, heartbeatMs: 1000, reconnectMs: 200 })
    sims.u = createUdpSimulator({ server: '127.0.0.1', udpPort, httpUrl: `http://127.0.0.1:${httpPort}`, communityId: '9', deviceCode: '101', intervalMs: 200 })
    await Promise.all([sims.w.start(), sims.b.start(), sims.u.start()])
  }, 90_000)

  afterAll(async () => {
    await Promise.all([sims.w?.stop(), sims.b?.stop(), sims.u?.stop()])
    await gw?.stop()
    await store?.close()
    await other?.close()
    pg?.destroy()
    home.cleanup()
  }, 60_000)

  it('ctx.durable resolves once the record is committed (with its photo), and rejects while the store is down', async () => {
    await gw.ctx.durable(() => gw.ctx.spool(record('d-1')))
    const [stored] = await other.records.after('w1', 0, 10)
    expect(stored).toMatchObject({ recordId: 'd-1', hasPhoto: true })
    pg.stop()
    try {
      await expect(gw.ctx.durable(() => gw.ctx.spool(record('d-2')))).rejects.toThrow()
      await expect(gw.ctx.durable(() => gw.ctx.setState('w1', 'note', 1))).rejects.toThrow()
    } finally {
      pg.start()
    }
    await until(async () => gw.ctx.durable(() => gw.ctx.spool(record('d-2'))).then(() => true, () => false), 30_000, 'the store back')
    expect((await other.records.after('w1', 0, 10)).map((r) => r.recordId)).toEqual(['d-1', 'd-2'])
    // a value, and a write that throws, come back through it too
    expect(await gw.ctx.durable(() => 42)).toBe(42)
    await expect(gw.ctx.durable(() => { throw new Error('bad input') })).rejects.toThrow('bad input')
  }, 60_000)

  it('a command whose claim is lost is not sent over a held connection (wsjson, best-w, udp), and stays with whoever claimed it', async () => {
    const expiresAt = Date.now() + 60_000
    const cmds = await other.commands.enqueue([
      { device: 'w1', protocol: 'wsjson', kind: 'listPeople', payload: {}, expiresAt },
      { device: 'b1', protocol: 'best', kind: 'reboot', payload: {}, expiresAt },
      { device: 'u1', protocol: 'udp', kind: 'open', payload: { mode: 'pulse' }, expiresAt },
    ])
    // each protocol claims, and tries again after a pause: a frame sent by mistake after the first try would be there by now
    await until(() => ['w1', 'b1', 'u1'].every((d) => (claims.get(d) ?? 0) >= 2), 30_000, `two claims of each device's command: ${JSON.stringify([...claims])}`)
    expect(sims.w!.events.commands).toEqual({})
    expect(sims.b!.events.reboots).toBe(0)
    expect(sims.u!.events.unlocks).toEqual([])
    expect(sims.u!.events.commandsReceived).toBe(0)
    for (const c of cmds) expect((await other.commands.get(c.id))?.state).toBe('queued')
  }, 60_000)
})

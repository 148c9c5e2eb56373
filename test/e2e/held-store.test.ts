/**
 * Records over held connections on a PostgreSQL store (issue 11): `serve` (the built binary) on a
 * throw-away cluster that is stopped while a wsjson device (WebSocket events) and a best-w device
 * (WebSocket verify logs and photos) upload. Nothing is acknowledged while it cannot be stored;
 * the devices send again, and once the store is back every record is stored, and exported, once.
 * (best-m takes the same path in the gateway, uploads.ts, through the MQTT relay: not run here.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createWsjsonSimulator, type WsjsonSimulator } from '../../src/simulators/wsjson/index.js'
import { createBestSimulator, type BestSimulator } from '../../src/simulators/best/index.js'
import { doorctl, FIXTURES, freePort, freeUdpPort, startDoorctl, tempDir, until } from '../helpers.js'
import { pgMissing, startPostgres, type TestPostgres } from '../pg.js'

const missing = pgMissing()
const BEST = { product: '5d9b11e1a3f448ae81f9f920e976d852', secret: 'factory-secret-1', brokerKey: 'aabbcc' }
const face = readFileSync(join(FIXTURES, 'face.jpg'))

describe.skipIf(missing)(`records over held connections while the PostgreSQL store is down${missing ? ` (cannot run: ${missing})` : ''}`, () => {
  let pg: TestPostgres
  let url: string
  const home = tempDir('doorctl-held-serve-')
  const cli = tempDir('doorctl-held-cli-')
  let serve: ReturnType<typeof startDoorctl> | undefined
  let w: WsjsonSimulator
  let b: BestSimulator

  const run = (args: string[]) => doorctl([...args, '--store', url], { home: cli.path })
  /** `records pull DEVICE --since last` as ndjson rows. */
  async function pull(device: string): Promise<{ record_id: string; photo?: string }[]> {
    const r = await run(['records', 'pull', device, '--since', 'last', '--format', 'ndjson'])
    expect(r.code, r.stderr).toBe(0)
    return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))
  }

  beforeAll(async () => {
    pg = await startPostgres()
    url = pg.url('held')
    for (const args of [
      ['w1', '--protocol', 'wsjson', '--sn', 'HELD-W1'],
      ['b1', '--protocol', 'best', '--sn', 'HELDB1', '--transport', 'ws', '--product-id', BEST.product, '--device-secret', BEST.secret, '--broker-key', BEST.brokerKey],
    ]) {
      const r = await run(['device', 'add', ...args])
      expect(r.code, r.stderr).toBe(0)
    }
    const http = await freePort()
    serve = startDoorctl(['serve', '--http-port', String(http), '--udp-port', String(await freeUdpPort()), '--mqtt-port', '0', '--bind', '127.0.0.1', '--store', url, '--json'], { home: home.path })
    await until(() => serve!.out.stdout.includes('"ok":true'), 30_000, `serve: ${serve!.out.stderr}`)
    w = createWsjsonSimulator({ url: `ws://127.0.0.1:${http}/wsjson`, sn: 'HELD-W1', heartbeatMs: 500, reconnectMs: 100, retryRefusedEventsMs: 200 })
    b = createBestSimulator({ server: `http://127.0.0.1:${http}`, sn: 'HELDB1', transport: 'ws', productId: BEST.product, deviceSecret: BEST.secret, brokerKey: BEST.brokerKey, heartbeatMs: 1000, reconnectMs: 200, requestTimeoutMs: 5000 })
    await Promise.all([w.start(), b.start()])
  }, 90_000)

  afterAll(async () => {
    await Promise.all([w?.stop(), b?.stop()])
    serve?.child.kill('SIGTERM')
    await serve?.exited
    pg?.destroy()
    home.cleanup()
    cli.cleanup()
  }, 60_000)

  it('wsjson: events are not acknowledged while the store is down; sent again, each is stored once', async () => {
    const first = await w.accessEvent({ userId: '7' })
    expect((await pull('w1')).map((r) => r.record_id)).toEqual([String(first.eventid)])
    pg.stop()
    const acked: string[] = []
    let sent: Promise<Record<string, unknown>[]>
    try {
      sent = Promise.all([0, 1, 2].map((i) => w.accessEvent({ userId: String(10 + i), img: face }).then((e) => {
        acked.push(String(e.eventid))
        return e
      })))
      // the first is answered with an error and sent again, over and over, while the store is down
      await until(() => w.events.eventsRefused >= 3, 30_000, 'events refused while the store is down')
      expect(acked).toEqual([])
    } finally {
      pg.start()
    }
    const events = await sent!
    expect(acked).toHaveLength(3)
    const rows = await pull('w1')
    expect(rows.map((r) => r.record_id)).toEqual(events.map((e) => String(e.eventid)))
    for (const r of rows) expect(Buffer.from(r.photo ?? '', 'base64')).toEqual(face)
    expect(serve!.out.stderr).toContain('wsjson could not store an event; the device will send it again')
  }, 120_000)

  it('best-w: a verify log and its photo are refused while the store is down; sent again, stored once with the photo', async () => {
    pg.stop()
    try {
      await expect(b.verifyLog({ pin: '7', photo: face, logId: 'L-1' })).rejects.toThrow(/verifyLog answered/)
    } finally {
      pg.start()
    }
    // the device sends it again until it is acknowledged (log, then photo), and once more after that
    await until(() => b.verifyLog({ pin: '7', photo: face, logId: 'L-1' }).then(() => true, () => false), 60_000, 'the log acknowledged once the store is back')
    await b.verifyLog({ pin: '7', photo: face, logId: 'L-1' })
    const rows = await pull('b1')
    expect(rows.map((r) => r.record_id)).toEqual(['L-1'])
    expect(Buffer.from(rows[0].photo ?? '', 'base64')).toEqual(face)
    expect((await pull('b1'))).toEqual([])
  }, 120_000)
})

/**
 * One-shot record collection from push-style doors with no serve running: `records pull` starts
 * a temporary listener, takes each door's uploads until it is drained, and returns (built
 * binary; simulated httpv2, wsjson and udp doors on 127.0.0.1 that were calling all along).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'csv-parse/sync'
import { createHttpv2Simulator, type Httpv2Simulator } from '../../src/simulators/httpv2/index.js'
import { createWsjsonSimulator, type WsjsonSimulator } from '../../src/simulators/wsjson/index.js'
import { createUdpSimulator, type UdpSimulator } from '../../src/simulators/udp/index.js'
import { doorctl, freePort, freeUdpPort, startDoorctl, tempDir, until } from '../helpers.js'

/** Device heartbeat intervals (ms): short, so a drained door shows quickly. wsjson's is the gateway's to give (whole seconds). */
const HTTPV2_MS = 500
const WSJSON_S = 1
/** The udp intercom heartbeats when the test says (its own interval is an hour), so its record surely comes between two heartbeats. */
const UDP_MS = 300
const SLOWEST_MS = Math.max(HTTPV2_MS, UDP_MS, WSJSON_S * 1000)

describe('records pull from push-style doors, no serve: each door collected until drained', () => {
  const home = tempDir('doorctl-collect-')
  let httpPort: number
  let listen: string[]
  const env = { DOORCTL_WSJSON_HEARTBEAT_S: String(WSJSON_S) }
  let doors: Httpv2Simulator[] = []
  let lobby: WsjsonSimulator
  let gate: UdpSimulator
  let lobbyEvents: Promise<unknown>[] = []

  const add = async (args: string[]) => {
    const r = await doorctl(['device', 'add', ...args], { home: home.path })
    expect(r.code, r.stderr).toBe(0)
  }
  /** One udp heartbeat the listener heard (sent again while unanswered: nothing listens before the pull starts). */
  const gateCalls = async () => {
    const events = gate.events as { lastHeartackResult?: string }
    events.lastHeartackResult = undefined
    for (;;) {
      await gate.heartbeat()
      try {
        return await until(() => events.lastHeartackResult === '0', 1000, 'a heartack')
      } catch { /* not heard: again */ }
    }
  }
  /** The gate heartbeating every UDP_MS while `running` lasts. */
  const gateBeats = async (running: Promise<unknown>) => {
    let done = false
    void running.finally(() => { done = true })
    while (!done) {
      await gate.heartbeat()
      await new Promise((r) => setTimeout(r, UDP_MS))
    }
  }
  const rows = (file: string) => parse(readFileSync(file), { columns: true }) as Record<string, string>[]

  beforeAll(async () => {
    httpPort = await freePort()
    const udpPort = await freeUdpPort()
    listen = ['--http-port', String(httpPort), '--udp-port', String(udpPort), '--mqtt-port', '0', '--bind', '127.0.0.1']
    await add(['door-1', '--protocol', 'httpv2', '--sn', 'FC-COLLECT0001', '--tag', 'live'])
    await add(['door-2', '--protocol', 'httpv2', '--sn', 'FC-COLLECT0002', '--tag', 'live'])
    await add(['lobby', '--protocol', 'wsjson', '--sn', 'WS-COLLECT1', '--tag', 'live'])
    await add(['gate', '--protocol', 'udp', '--community', '777777', '--code', '1', '--tag', 'live'])
    // the doors call a port nobody listens on yet, holding what they have (httpv2: 20 records each; wsjson: 5 events)
    doors = ['FC-COLLECT0001', 'FC-COLLECT0002'].map((sn) =>
      createHttpv2Simulator({ server: `http://127.0.0.1:${httpPort}`, sn, intervalMs: HTTPV2_MS, records: 20, requestTimeoutMs: 500, retryDelayMs: 100 }))
    for (const d of doors) d.start()
    lobby = createWsjsonSimulator({ url: `ws://127.0.0.1:${httpPort}/wsjson`, sn: 'WS-COLLECT1', heartbeatMs: 500, reconnectMs: 100 })
    void lobby.start()
    lobbyEvents = Array.from({ length: 5 }, () => lobby.accessEvent({ userId: '7' }))
    gate = createUdpSimulator({ server: '127.0.0.1', udpPort, httpUrl: `http://127.0.0.1:${httpPort}`, communityId: '777777', deviceCode: '1', intervalMs: 3_600_000, requestTimeoutMs: 2000 })
    await gate.start()
  })
  afterAll(async () => {
    await Promise.all([...doors.map((d) => d.stop()), lobby?.stop(), gate?.stop()])
    home.cleanup()
  })

  it('every record once; the command returns within a heartbeat interval of the last door draining', async () => {
    const out = join(home.path, 'first.csv')
    const pull = startDoorctl(['records', 'pull', '--tag', 'live', '--since', 'last', '--timeout', '60s', '--output', out, '--json', ...listen], { home: home.path, env })
    // when each door's last record was taken (the doors' own view)
    const lastRecordAt: number[] = []
    const doorsDone = doors.map((d) => until(() => d.acknowledgedRecords().length === 20, 30_000, `${d.sn}'s 20 records`).then(() => lastRecordAt.push(Date.now())))
    const lobbyDone = Promise.all(lobbyEvents).then(() => lastRecordAt.push(Date.now()))
    // a udp intercom holds nothing (it calls /unlockCallback as it happens): someone comes to the gate
    // between two heartbeats the listener heard; a third heartbeat with nothing new in between drains it
    await gateCalls()
    await gate.accessEvent({ phone: '13500000777', type: 4, result: 0 })
    lastRecordAt.push(Date.now())
    await gateCalls()
    void gateBeats(pull.exited)
    await Promise.all([...doorsDone, lobbyDone])
    const code = await pull.exited
    const returnedAt = Date.now()
    expect(code, pull.out.stdout + pull.out.stderr).toBe(0)

    const result = JSON.parse(pull.out.stdout)
    expect(Object.fromEntries(result.results.map((r: { device: string; count: number; status: string }) => [r.device, [r.status, r.count]])))
      .toEqual({ 'door-1': ['ok', 20], 'door-2': ['ok', 20], lobby: ['ok', 5], gate: ['ok', 1] })
    expect(result).toMatchObject({ ok: true, total: 46 })
    const recs = rows(out)
    expect(recs).toHaveLength(46)
    expect(new Set(recs.map((r) => `${r.device}/${r.record_id}`)).size).toBe(46)
    expect(recs.filter((r) => r.device === 'gate')[0]).toMatchObject({ user_id: '13500000777', result: 'granted' })
    // drained = a heartbeat interval without anything new; the command then returns within one more
    // (plus the export and shutdown), far before --timeout
    expect(returnedAt - Math.max(...lastRecordAt)).toBeLessThan(2 * SLOWEST_MS + 3000)
  })

  it('a second --since last exports nothing (and returns once every door called and had nothing new)', async () => {
    const out = join(home.path, 'second.csv')
    const pull = doorctl(['records', 'pull', '--tag', 'live', '--since', 'last', '--timeout', '60s', '--output', out, '--json', ...listen], { home: home.path, env })
    await gateBeats(pull)
    const r = await pull
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json()).toMatchObject({ ok: true, total: 0 })
    expect(r.json().results.map((x: { status: string }) => x.status)).toEqual(['ok', 'ok', 'ok', 'ok'])
    expect(rows(out)).toHaveLength(0)
  })

  it('--repost: an httpv2 door uploads all it holds again; the pull waits for it, and nothing is exported twice', async () => {
    const before = doors[1].events.recordUploads
    const pull = doorctl(['records', 'pull', 'door-2', '--since', 'last', '--repost', '--timeout', '60s', '--output', join(home.path, 'repost.csv'), '--json', ...listen], { home: home.path, env })
    const r = await pull
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(doors[1].events.recordUploads - before).toBeGreaterThanOrEqual(20)
    expect(r.json()).toMatchObject({ ok: true, total: 0 })
  })

  it('a door that never calls: timeout, exit 1; what the others uploaded is exported, exactly once', async () => {
    await add(['ghost', '--protocol', 'httpv2', '--sn', 'FC-NEVERCALLS'])
    const fresh = [doors[0].addRecord(), doors[0].addRecord(), doors[0].addRecord()]
    const out = join(home.path, 'third.csv')
    const pull = doorctl(['records', 'pull', '--all', '--since', 'last', '--timeout', '10s', '--output', out, '--json', ...listen], { home: home.path, env })
    await gateBeats(pull)
    const r = await pull
    expect(r.code, r.stdout + r.stderr).toBe(1)
    const res = r.json()
    expect(res.ok).toBe(false)
    const by = Object.fromEntries(res.results.map((x: { device: string }) => [x.device, x]))
    expect(by.ghost).toMatchObject({ ok: false, status: 'timeout', count: 0 })
    expect(by.ghost.message).toMatch(/did not call/)
    expect(by['door-1']).toMatchObject({ ok: true, status: 'ok', count: 3 })
    for (const d of ['door-2', 'lobby', 'gate']) expect(by[d]).toMatchObject({ ok: true, count: 0 })
    expect(rows(out).map((x) => x.record_id).sort()).toEqual([...fresh].sort())

    const pullAgain = doorctl(['records', 'pull', '--tag', 'live', '--since', 'last', '--timeout', '60s', '--output', join(home.path, 'fourth.csv'), '--json', ...listen], { home: home.path, env })
    await gateBeats(pullAgain)
    const again = await pullAgain
    expect(again.code, again.stdout + again.stderr).toBe(0)
    expect(again.json().total).toBe(0)
  })

  it('with a bad --timeout nothing is started (exit 2)', async () => {
    const r = await doorctl(['records', 'pull', '--tag', 'live', '--since', 'last', '--timeout', 'soon', '--output', join(home.path, 'never.csv'), '--json', ...listen], { home: home.path, env })
    expect(r.code).toBe(2)
    expect(r.json().error.message).toMatch(/timeout/)
    expect(existsSync(join(home.path, 'never.csv'))).toBe(false)
  })

  it('records watch with no serve: its temporary listener (on the listener flags) streams new records', async () => {
    const watch = startDoorctl(['records', 'watch', 'door-1', ...listen], { home: home.path, env })
    try {
      await until(() => watch.out.stderr.includes('temporary gateway listening'), 20_000, 'the listener')
      const id = doors[0].addRecord()
      await until(() => watch.out.stdout.includes('\n'), 20_000, 'a watched record')
      expect(JSON.parse(watch.out.stdout.split('\n')[0])).toMatchObject({ device: 'door-1', record_id: id })
    } finally {
      watch.child.kill('SIGINT')
      expect(await watch.exited).toBe(130)
    }
  })
})

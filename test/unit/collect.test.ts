/**
 * Record collection for one-shot pulls (gateway/collect.ts): when a push-style device counts as
 * drained, what a timeout says, the gateway feeding it, httpv2's idle keepalive, and a control
 * channel client that leaves without reading its answer.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Collector } from '../../src/gateway/collect.js'
import { Gateway } from '../../src/gateway/gateway.js'
import { ControlClient, ControlServer, controlSocketPath } from '../../src/gateway/control.js'
import { keepaliveMeansIdle, parseWorkSettings } from '../../src/drivers/httpv2/codec.js'
import { Inventory } from '../../src/store/inventory.js'
import { TimeoutError } from '../../src/types/errors.js'
import { silentLogger, type DeviceEntry } from '../../src/types/driver.js'
import type { SpoolRecord } from '../../src/types/gateway.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const forever = { timeoutMs: 60_000, signal: new AbortController().signal }
const settled = async (p: Promise<unknown>) => Promise.race([p.then(() => true, () => true), new Promise((r) => setImmediate(() => r(false)))])

describe('Collector: drained = a heartbeat with nothing new since the previous one', () => {
  it('a door with nothing to upload is drained at its second heartbeat', async () => {
    const c = new Collector()
    const wait = c.wait('door', forever)
    c.heartbeat('door', false)
    expect(await settled(wait)).toBe(false)
    c.heartbeat('door', false)
    expect(await wait).toEqual({ records: 0 })
  })

  it('records between two heartbeats keep it open; the next quiet interval drains it', async () => {
    const c = new Collector()
    const wait = c.wait('door', forever)
    c.heartbeat('door', false)
    c.record('door', true)
    c.record('door', true)
    c.heartbeat('door', false)
    expect(await settled(wait)).toBe(false)
    c.record('door', true)
    c.heartbeat('door', false)
    expect(await settled(wait)).toBe(false)
    c.heartbeat('door', false)
    expect(await wait).toEqual({ records: 3 })
  })

  it('a heartbeat the protocol knows is idle drains at once; other devices are not affected', async () => {
    const c = new Collector()
    const a = c.wait('a', forever)
    const b = c.wait('b', forever)
    c.record('a', true)
    c.heartbeat('a', true)
    expect(await a).toEqual({ records: 1 })
    expect(await settled(b)).toBe(false)
    c.heartbeat('b', false)
    c.heartbeat('b', false)
    expect(await b).toEqual({ records: 0 })
  })

  it('only what happens after the wait began counts', async () => {
    const c = new Collector()
    c.heartbeat('door', false)
    c.record('door', true)
    const wait = c.wait('door', forever)
    c.heartbeat('door', false)
    expect(await settled(wait)).toBe(false)
    c.heartbeat('door', false)
    expect(await wait).toEqual({ records: 0 })
  })

  it('timeout: a door that never called, and one still uploading, say which', async () => {
    const c = new Collector()
    const silent = c.wait('ghost', { timeoutMs: 30, signal: forever.signal })
    const busy = c.wait('busy', { timeoutMs: 30, signal: forever.signal })
    c.heartbeat('busy', false)
    c.record('busy', true)
    await expect(silent).rejects.toThrow(TimeoutError)
    await expect(silent).rejects.toThrow(/ghost did not call the gateway within 0.03s/)
    await expect(busy).rejects.toThrow(/busy was still uploading records/)
  })

  it('an interrupt ends the wait with its reason', async () => {
    const c = new Collector()
    const ac = new AbortController()
    const wait = c.wait('door', { timeoutMs: 60_000, signal: ac.signal })
    ac.abort(new Error('interrupted'))
    await expect(wait).rejects.toThrow('interrupted')
    await expect(c.wait('door', { timeoutMs: 60_000, signal: ac.signal })).rejects.toThrow('interrupted')
  })
})

describe('the gateway feeds the collector', () => {
  function home(devices: DeviceEntry[]): string {
    const h = mkdtempSync(join(tmpdir(), 'doorctl-collect-'))
    cleanups.push(() => rmSync(h, { recursive: true, force: true }))
    new Inventory(h).save(devices)
    return h
  }
  const door: DeviceEntry = { name: 'door', protocol: 'httpv2', tags: [], sn: 'SN1' }
  const record = (id: string): SpoolRecord => ({
    device: 'door', recordId: id, time: Date.now(), userId: '1', name: 'A', type: 'employee', result: 'granted', direction: 'in', method: 'face', extras: {},
  })

  it('heartbeats and new records (not duplicates) decide; the wait ends with the count', async () => {
    const gw = new Gateway({ home: home([door]), log: silentLogger, handlers: [] })
    cleanups.push(() => gw.stop())
    const wait = gw.collect(door, forever)
    gw.ctx.heartbeat(door)
    expect(gw.ctx.spool(record('1'))).toBe(true)
    expect(gw.ctx.spool(record('1'))).toBe(false)
    gw.ctx.heartbeat(door)
    expect(await settled(wait)).toBe(false)
    // a re-sent record is no new record, but the device is still sending: not drained yet
    gw.ctx.spool(record('1'))
    gw.ctx.heartbeat(door)
    expect(await settled(wait)).toBe(false)
    gw.ctx.heartbeat(door)
    expect(await wait).toEqual({ records: 1 })
  })
})

describe('httpv2: a keepalive after a whole idle interval means the device holds nothing more', () => {
  it('keepaliveMeansIdle', () => {
    expect(keepaliveMeansIdle(10_000, undefined, 5000)).toBe(false)
    expect(keepaliveMeansIdle(10_000, 4000, undefined)).toBe(false)
    // 调用流程: a keepalive on time in the middle of uploads follows the last record closely
    expect(keepaliveMeansIdle(10_000, 9_950, 5000)).toBe(false)
    expect(keepaliveMeansIdle(10_000, 5000, 5000)).toBe(true)
  })

  it('the interval comes from the work settings (HTTPClient_KeepaliveTime, else KeepaliveTime, seconds)', () => {
    expect(parseWorkSettings({ KeepaliveTime: 30, HTTPClient_KeepaliveTime: 20 }).keepaliveMs).toBe(20_000)
    expect(parseWorkSettings({ KeepaliveTime: 30 }).keepaliveMs).toBe(30_000)
    expect(parseWorkSettings({ HTTPClient_KeepaliveTime: 'soon' }).keepaliveMs).toBeUndefined()
    expect(parseWorkSettings({ HTTPClient_KeepaliveTime: 0 }).keepaliveMs).toBeUndefined()
  })
})

describe('control channel', () => {
  it('a client that leaves without reading its answer does not take the gateway down', async () => {
    const h = mkdtempSync(join(tmpdir(), 'doorctl-collect-'))
    cleanups.push(() => rmSync(h, { recursive: true, force: true }))
    const gw = new Gateway({ home: h, log: silentLogger, handlers: [] })
    const control = new ControlServer(gw, h, silentLogger, 'serve')
    expect(await control.start()).toBe(true)
    cleanups.push(async () => {
      await control.stop()
      await gw.stop()
    })
    for (let i = 0; i < 20; i++) {
      const s = createConnection(controlSocketPath(h))
      await new Promise<void>((r) => s.once('connect', () => r()))
      s.write(JSON.stringify({ id: 1, method: 'hello' }) + '\n')
      s.destroy()
    }
    const client = (await ControlClient.connect(h))!
    cleanups.push(() => client.close())
    expect(await client.call('hello')).toMatchObject({ mode: 'serve' })
  })
})

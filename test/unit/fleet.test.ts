/**
 * Fleet operations (issue 9, item 2), the parts below the CLI: --concurrency bounds work on
 * devices but not their idle waits; one shared AbortSignal and a thousand devices raise no
 * listener warning; the gateway queues a batch in one transaction and keeps waiters by command
 * id; the control channel takes batches and waits (and still the one-command calls of older
 * clients); a client of an older gateway falls back to one call per command. Writes made for
 * HTTP answers share one commit (group commit), and nobody hears of them before it.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, describe, expect, it } from 'vitest'
import { Inventory } from '../../src/store/inventory.js'
// the built module: runOnTargets loads drivers with import(`./${protocol}/index.js`), which vite cannot resolve to .ts sources
import { runOnTargets } from '../../dist/src/ops/run.js'
import { silentLogger, type DeviceEntry, type OperationContext } from '../../src/types/driver.js'
import { openGateway } from '../../src/ops/gateway-client.js'
import type { GatewayHandle } from '../../src/types/gateway.js'
import { PushDriver, type PushCapabilities } from '../../src/gateway/push-driver.js'
import { ControlClient, ControlServer, controlSocketPath, type SubmitAnswer } from '../../src/gateway/control.js'
import { Gateway } from '../../src/gateway/gateway.js'
import { GatewayStore } from '../../src/store/gateway-store.js'
import type { ProtocolHandler, QueuedCommand } from '../../src/types/gateway.js'

const homes: string[] = []
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
  for (const h of homes.splice(0)) rmSync(h, { recursive: true, force: true })
})

function home(devices: DeviceEntry[] = []): string {
  const h = mkdtempSync(join(tmpdir(), 'doorctl-fleet-'))
  homes.push(h)
  if (devices.length) new Inventory(h).save(devices)
  return h
}

async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

const door = (name: string): DeviceEntry => ({ name, protocol: 'httpv2', sn: `SN-${name}`, tags: [] })

describe('runOnTargets', () => {
  const direct = (n: number): DeviceEntry[] => Array.from({ length: n }, (_, i) => ({ name: `d${i}`, protocol: 'openapi', host: '127.0.0.1', port: 9, tags: [] }))

  it('--concurrency bounds the work on devices, not their idle waits: all wait at once; no listener warning', async () => {
    const warnings: Error[] = []
    const onWarning = (w: Error) => warnings.push(w)
    process.on('warning', onWarning)
    cleanups.push(() => { process.off('warning', onWarning) })
    let busy = 0
    let maxBusy = 0
    let waiting = 0
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const work = async () => {
      maxBusy = Math.max(maxBusy, ++busy)
      await new Promise((r) => setImmediate(r))
      busy--
    }
    const devices = direct(60)
    const run = runOnTargets(devices, { concurrency: 3, timeoutMs: 20_000, signal: new AbortController().signal, env: { home: home(), log: silentLogger } }, async (_driver, ctx) => {
      await work()
      await ctx.idle!(async () => {
        waiting++
        await gate
      })
      await work()
      return { message: 'done' }
    })
    // every device waits at the same time, although only 3 may work at once
    await until(() => waiting === devices.length, 5000, 'every device to wait')
    expect(maxBusy).toBe(3)
    release()
    const results = await run
    expect(results.map((r) => r.status)).toEqual(devices.map(() => 'ok'))
    expect(results.map((r) => r.device)).toEqual(devices.map((d) => d.name))
    expect(maxBusy).toBe(3)
    await new Promise((r) => setImmediate(r))
    expect(warnings.map((w) => w.name)).toEqual([])
  })

  it('work that does not wait keeps its slot; a device that times out while waiting leaks no slot', async () => {
    let busy = 0
    let maxBusy = 0
    let calls = 0
    const devices = direct(12)
    const results = await runOnTargets(devices, { concurrency: 2, timeoutMs: 50, signal: new AbortController().signal, env: { home: home(), log: silentLogger } }, async (_driver, ctx) => {
      const n = calls++
      maxBusy = Math.max(maxBusy, ++busy)
      await new Promise((r) => setImmediate(r))
      busy--
      // the first four wait past their deadline (50 ms), and only give up when their signal says so
      if (n < 4) await ctx.idle!(() => new Promise((_r, reject) => ctx.signal.addEventListener('abort', () => setTimeout(() => reject(ctx.signal.reason), 20))))
      return { message: 'done' }
    })
    expect(maxBusy).toBe(2)
    expect(results.filter((r) => r.status === 'timeout')).toHaveLength(4)
    expect(results.filter((r) => r.status === 'ok')).toHaveLength(8)
  })
})

describe('push driver', () => {
  const caps: PushCapabilities = { protocol: 'httpv2', kinds: new Set(['reboot', 'upsertPeople']), configSections: [] }

  /** A gateway handle that notes each call, and whether it came while the device's slot was given back. */
  function recorder() {
    const calls: string[] = []
    let idle = false
    const final = (id: number): QueuedCommand => ({ id, device: 'a', protocol: 'httpv2', kind: 'reboot', payload: {}, state: 'acknowledged', createdAt: 0, expiresAt: 0, result: { message: 'ok' } })
    const handle: GatewayHandle = {
      mode: 'serve',
      async submit(_d, _k, _p, opts) {
        calls.push(`submit wait=${opts.wait} idle=${idle}`)
        return opts.wait ? final(1) : { ...final(1), state: 'queued' }
      },
      async wait(id) {
        calls.push(`wait idle=${idle}`)
        return final(id)
      },
      presence: async () => [],
      discovered: async () => [],
      async close() {},
    }
    const ctx: OperationContext = {
      signal: new AbortController().signal, timeoutMs: 30_000, log: silentLogger, wait: true,
      async idle(work) {
        idle = true
        try {
          return await work()
        } finally {
          idle = false
        }
      },
    }
    const driver = new PushDriver(door('a'), { home: home(), log: silentLogger, gateway: async () => handle }, caps)
    return { calls, ctx, driver }
  }

  it('a small command is queued and waited for without a slot (with every other device\'s)', async () => {
    const { calls, ctx, driver } = recorder()
    await driver.reboot(ctx)
    expect(calls).toEqual(['submit wait=true idle=true'])
  })

  it('a big payload (people) is queued within the slot, so --concurrency bounds the memory in flight; only the wait is idle', async () => {
    const { calls, ctx, driver } = recorder()
    const people = Array.from({ length: 2000 }, (_, i) => ({ id: String(1000 + i), name: `Person number ${i}`, department: 'Facilities' }))
    const outcomes = []
    for await (const o of driver.upsertPeople(people, ctx)) outcomes.push(o)
    expect(outcomes).toHaveLength(2000)
    expect(calls).toEqual(['submit wait=false idle=false', 'wait idle=true'])
  })
})

describe('gateway: batches and waiters', () => {
  it('submitMany queues in one transaction, in order; waitFor and watch resolve when final, at once if already final', async () => {
    const h = home([door('a'), door('b')])
    const gw = new Gateway({ home: h, log: silentLogger, handlers: [] })
    cleanups.push(() => gw.stop())
    const cmds = gw.submitMany([
      { device: door('a'), kind: 'reboot', payload: {}, timeoutMs: 60_000 },
      { device: door('b'), kind: 'syncTime', payload: { epochMs: 1 }, timeoutMs: 60_000 },
    ])
    expect(cmds.map((c) => [c.device, c.kind, c.state])).toEqual([['a', 'reboot', 'queued'], ['b', 'syncTime', 'queued']])
    expect(cmds[1].id).toBe(cmds[0].id + 1)
    expect(cmds[0].createdAt).toBe(cmds[1].createdAt)
    expect(gw.command(cmds[1].id)).toEqual(cmds[1])
    const seen: QueuedCommand[] = []
    const stop = gw.watch(cmds[1].id, (c) => seen.push(c))
    stop()
    const waited = gw.waitFor(cmds[0].id)
    gw.ctx.finish(cmds[0].id, 'acknowledged', { message: 'rebooting' })
    expect((await waited).state).toBe('acknowledged')
    gw.ctx.finish(cmds[1].id, 'failed', { message: 'no' })
    expect(seen).toEqual([])
    expect((await gw.waitFor(cmds[1].id)).state).toBe('failed')
    const aborted = new AbortController()
    const third = gw.submit(door('a'), 'reboot', {}, 60_000)
    const p = gw.waitFor(third.id, aborted.signal)
    aborted.abort(new Error('gave up'))
    await expect(p).rejects.toThrow('gave up')
  })
})

describe('group commit', () => {
  /** What another process sees: only committed rows. */
  const seenFrom = (h: string, id: number) => {
    const other = new GatewayStore(h, { readonly: true })
    try {
      return other.command(id)?.state
    } finally {
      other.close()
    }
  }

  it('grouped writes share one transaction, committed at the end of the turn; a write of another kind commits them first', async () => {
    const h = home()
    const store = new GatewayStore(h)
    cleanups.push(() => store.close())
    const [a, b, c] = store.enqueueMany(['a', 'b', 'c'].map((d) => ({ device: d, protocol: 'httpv2' as const, kind: 'reboot' as const, payload: {}, expiresAt: Date.now() + 60_000 })))
    const after: string[] = []
    store.grouped(() => store.delivered(a.id))
    store.grouped(() => store.delivered(b.id))
    store.afterCommit(() => after.push(seenFrom(h, b.id) ?? 'none'))
    // this connection reads its own writes; another one sees nothing yet, and nobody was told
    expect(store.command(a.id)?.state).toBe('delivered')
    expect([seenFrom(h, a.id), seenFrom(h, b.id)]).toEqual(['queued', 'queued'])
    expect(after).toEqual([])
    await store.committed()
    expect([seenFrom(h, a.id), seenFrom(h, b.id)]).toEqual(['delivered', 'delivered'])
    expect(after).toEqual(['delivered'])
    // an ungrouped write while a group is open: the group is committed first, then the write on its own
    store.grouped(() => store.delivered(c.id))
    store.finish(a.id, 'acknowledged', { message: 'done' })
    expect([seenFrom(h, c.id), seenFrom(h, a.id)]).toEqual(['delivered', 'acknowledged'])
    await store.committed()
  })

  it('a protocol route\'s writes are on disk before its answer, and before anyone waiting for the command hears of it', async () => {
    const h = home([door('a')])
    let stamp = 0
    const handler: ProtocolHandler = {
      protocol: 'httpv2',
      kinds: new Set(['reboot']),
      routes: (ctx) => [{
        method: 'POST', path: '/take/{id}',
        handle: (req) => {
          const id = Number(req.params.id)
          ctx.delivered(id)
          ctx.finish(id, 'acknowledged', { message: 'taken' })
          // still in the open group: nobody else sees it yet
          stamp = seenFrom(h, id) === 'queued' ? 1 : -1
          return { json: { ok: true } }
        },
      }],
    }
    const gw = new Gateway({ home: h, log: silentLogger, handlers: [handler], settings: { httpPort: 0, bind: '127.0.0.1' } })
    await gw.start()
    cleanups.push(() => gw.stop())
    const cmd = gw.submit(door('a'), 'reboot', {}, 60_000)
    const heard = gw.waitFor(cmd.id).then((c) => ({ state: c.state, onDisk: seenFrom(h, cmd.id) }))
    const res = await fetch(`http://127.0.0.1:${gw.httpPort}/take/${cmd.id}`, { method: 'POST' })
    // the answer came after the commit
    expect(seenFrom(h, cmd.id)).toBe('acknowledged')
    expect(await res.json()).toEqual({ ok: true })
    expect(stamp).toBe(1)
    expect(await heard).toEqual({ state: 'acknowledged', onDisk: 'acknowledged' })
    // outside an HTTP request (a WebSocket, a timer) a write commits at once
    const next = gw.submit(door('a'), 'reboot', {}, 60_000)
    gw.ctx.delivered(next.id)
    expect(seenFrom(h, next.id)).toBe('delivered')
  })
})

describe('control channel', () => {
  async function started(devices: DeviceEntry[]) {
    const h = home(devices)
    const gw = new Gateway({ home: h, log: silentLogger, handlers: [] })
    const control = new ControlServer(gw, h, silentLogger, 'serve')
    expect(await control.start()).toBe(true)
    cleanups.push(async () => {
      await control.stop()
      await gw.stop()
    })
    const client = (await ControlClient.connect(h))!
    cleanups.push(() => client.close())
    return { h, gw, control, client }
  }

  it('a batch is queued in one transaction; an unknown device gets its own error; wait answers when final', async () => {
    const { gw, client } = await started([door('a'), door('b')])
    expect(await client.call<{ batch?: boolean }>('hello')).toMatchObject({ mode: 'serve', batch: true })
    const answers = await client.call<SubmitAnswer[]>('submit', {
      commands: [
        { device: 'a', kind: 'reboot', payload: {}, timeoutMs: 60_000 },
        { device: 'ghost', kind: 'reboot', payload: {}, timeoutMs: 60_000 },
        { device: 'b', kind: 'reboot', payload: {}, timeoutMs: 60_000 },
      ],
    })
    expect(answers[1]).toEqual({ error: 'unknown device ghost' })
    const [a, b] = [answers[0], answers[2]] as QueuedCommand[]
    expect([a.device, b.device, a.state, b.state]).toEqual(['a', 'b', 'queued', 'queued'])
    expect(a.createdAt).toBe(b.createdAt)
    const waitA = client.call<QueuedCommand>('wait', { id: a.id })
    gw.ctx.finish(a.id, 'acknowledged', { message: 'rebooting' })
    expect(await waitA).toMatchObject({ id: a.id, state: 'acknowledged' })
  })

  it('the one-command submit of older clients still works (waited for in the call, or not with wait false)', async () => {
    const { gw, client } = await started([door('a')])
    const queued = await client.call<QueuedCommand>('submit', { device: 'a', kind: 'reboot', payload: {}, timeoutMs: 60_000, wait: false })
    expect(queued.state).toBe('queued')
    const waited = client.call<QueuedCommand>('submit', { device: 'a', kind: 'open', payload: { mode: 'pulse' }, timeoutMs: 60_000 })
    await until(() => gw.store.pending('a').length === 2, 5000, 'the second command')
    gw.ctx.finish(gw.store.pending('a')[1].id, 'acknowledged', { message: 'opened' })
    expect((await waited).state).toBe('acknowledged')
    await expect(client.call('submit', { device: 'ghost', kind: 'reboot', payload: {}, timeoutMs: 1000 })).rejects.toThrow('unknown device ghost')
  })

  it('a client that goes away ends its waits: the temporary gateway is idle again', async () => {
    const { client, control } = await started([door('a')])
    const [a] = await client.call<SubmitAnswer[]>('submit', { commands: [{ device: 'a', kind: 'reboot', payload: {}, timeoutMs: 60_000 }] })
    void client.call('wait', { id: (a as QueuedCommand).id }).catch(() => undefined)
    await until(() => control.active === 1, 5000, 'the wait to arrive')
    client.close()
    await control.idle()
    expect(control.active).toBe(0)
  })

  it('a client of a gateway from before batches sends one submit per command, waited for in that call', async () => {
    const h = home([door('a')])
    const calls: { method: string; params?: Record<string, unknown> }[] = []
    const old: Server = createServer((socket) => {
      createInterface({ input: socket }).on('line', (line) => {
        const req = JSON.parse(line) as { id: number; method: string; params?: Record<string, unknown> }
        calls.push({ method: req.method, params: req.params })
        const result = req.method === 'hello' ? { pid: 1, httpPort: 8090, mode: 'serve' } : { id: 7, device: 'a', state: 'acknowledged', result: { message: 'rebooting' } }
        // (an older gateway answers `command` with the command as it is now)
        socket.write(JSON.stringify({ id: req.id, result }) + '\n')
      })
    })
    await new Promise<void>((r) => old.listen(controlSocketPath(h), () => r()))
    cleanups.push(() => new Promise<void>((r) => old.close(() => r())))
    const handle = await openGateway(h, {}, silentLogger)
    cleanups.push(() => handle.close())
    const cmd = await handle.submit(door('a'), 'reboot', {}, { timeoutMs: 30_000, wait: true, signal: new AbortController().signal })
    expect(cmd).toMatchObject({ id: 7, state: 'acknowledged' })
    expect(handle.mode).toBe('serve')
    expect(calls.map((c) => c.method)).toEqual(['hello', 'submit'])
    expect(calls[1].params).toMatchObject({ device: 'a', kind: 'reboot', wait: true })
    // no wait method there: how the command is doing is asked instead
    expect(await handle.wait(7, new AbortController().signal)).toMatchObject({ id: 7, state: 'acknowledged' })
    expect(calls.map((c) => c.method)).toEqual(['hello', 'submit', 'command'])
  })
})

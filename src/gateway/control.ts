import { chmodSync, existsSync, unlinkSync } from 'node:fs'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { Inventory } from '../store/inventory.js'
import type { Logger } from '../types/driver.js'
import type { Gateway, Submission } from './gateway.js'
import { GatewayMonitor } from './status.js'
import type { CommandKind, QueuedCommand } from '../types/gateway.js'

/**
 * The local control channel: newline-delimited JSON over a Unix socket inside DOORCTL_HOME
 * (a 0700 directory; the socket itself 0600), so only the same user can queue commands.
 */
export function controlSocketPath(home: string): string {
  return join(home, 'gateway.sock')
}

interface Request {
  id: number
  method: 'hello' | 'submit' | 'wait' | 'command' | 'presence' | 'discovered' | 'status'
  params?: Record<string, unknown>
}

/** One command of a `submit` batch, as a client sends it. */
export interface SubmitItem {
  device: string
  kind: CommandKind
  payload: Record<string, unknown>
  timeoutMs: number
}

/** A `submit` batch's answer, in the order of the batch: the queued command (its payload left out), or why it was not queued. */
export type SubmitAnswer = QueuedCommand | { error: string }

/** What `hello` answers; `batch`: this gateway takes `submit` batches and `wait` (older ones took one command per call). */
export interface Hello {
  pid: number
  httpPort: number
  mode: 'serve' | 'temporary'
  batch?: boolean
}

export class ControlServer {
  private server?: Server
  private readonly sockets = new Set<Socket>()
  /** Requests still waiting on a device (a temporary gateway stays up for them). */
  active = 0
  private idleWaiters: (() => void)[] = []
  private monitorValue?: GatewayMonitor

  constructor(private readonly gateway: Gateway, private readonly home: string, private readonly log: Logger, private readonly mode: 'serve' | 'temporary') {}

  /** Binds the socket; false if another live gateway already owns it. */
  async start(): Promise<boolean> {
    const path = controlSocketPath(this.home)
    if (existsSync(path)) {
      if (await isAlive(path)) return false
      try { unlinkSync(path) } catch { /* raced with another starter */ }
    }
    this.server = createServer((s) => this.accept(s))
    const ok = await new Promise<boolean>((resolve, reject) => {
      this.server!.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(false) : reject(err)))
      this.server!.listen(path, () => resolve(true))
    })
    if (ok) chmodSync(path, 0o600)
    return ok
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()))
  }

  /** What the gateway says about itself (`doorctl status`, the admin listener); made on first use. */
  monitor(): GatewayMonitor {
    if (!this.monitorValue) {
      this.monitorValue = new GatewayMonitor(this.gateway, this.mode)
      this.monitorValue.addProblems(() => this.problems())
    }
    return this.monitorValue
  }

  /** The control socket closed under a running gateway; empty while it listens. */
  problems(): string[] {
    return this.server?.listening ? [] : [`control socket ${controlSocketPath(this.home)} is closed`]
  }

  /** Resolves when no joined client waits on anything any more. */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket)
    // the client's waits end when it goes away (one entry per wait, no listener per wait)
    const waits = new Set<(err: Error) => void>()
    socket.on('close', () => {
      this.sockets.delete(socket)
      for (const end of [...waits]) end(new Error('client went away'))
    })
    socket.on('error', () => {})
    const lines = createInterface({ input: socket })
    // readline passes its input's errors on (ECONNRESET from a client that left without reading its answer): 'close' cleans up
    lines.on('error', () => {})
    lines.on('line', (line) => {
      let req: Request
      try {
        req = JSON.parse(line) as Request
      } catch {
        socket.write(JSON.stringify({ id: null, error: { message: 'bad request' } }) + '\n')
        return
      }
      this.active++
      this.dispatch(req, waits)
        .then((result) => socket.write(JSON.stringify({ id: req.id, result }) + '\n'))
        .catch((err: Error) => socket.write(JSON.stringify({ id: req.id, error: { message: err.message } }) + '\n'))
        .finally(() => {
          this.active--
          if (this.active === 0) for (const w of this.idleWaiters.splice(0)) w()
        })
    })
  }

  private async dispatch(req: Request, waits: Set<(err: Error) => void>): Promise<unknown> {
    const p = req.params ?? {}
    switch (req.method) {
      case 'hello':
        return { pid: process.pid, httpPort: this.gateway.httpPort, mode: this.mode, batch: true } satisfies Hello
      case 'presence':
        return this.gateway.presence()
      case 'discovered':
        return this.gateway.discoveredDevices()
      case 'status':
        return this.monitor().status()
      case 'command':
        return this.gateway.command(Number(p.id)) ?? null
      case 'submit': {
        if (Array.isArray(p.commands)) return this.submitBatch(p.commands as SubmitItem[])
        // a client from before batches: one command, waited for in the same call unless wait is false
        const [answer] = this.submitBatch([p as unknown as SubmitItem])
        if ('error' in answer) throw new Error(answer.error)
        return p.wait === false ? answer : this.waitFinal(answer.id, waits)
      }
      case 'wait':
        return withoutPayload(await this.waitFinal(Number(p.id), waits))
      default:
        throw new Error(`unknown method ${String(req.method)}`)
    }
  }

  /** Queues a batch in one transaction; a device no longer in the inventory gets an error, the others are queued. */
  private submitBatch(items: readonly SubmitItem[]): SubmitAnswer[] {
    const devices = new Map(new Inventory(this.home).all().map((d) => [d.name, d]))
    const accepted: Submission[] = []
    const answers: (SubmitAnswer | number)[] = items.map((it) => {
      const device = devices.get(String(it.device))
      if (!device) return { error: `unknown device ${String(it.device)}` }
      accepted.push({ device, kind: it.kind, payload: it.payload ?? {}, timeoutMs: Number(it.timeoutMs) })
      return accepted.length - 1
    })
    const queued = accepted.length > 0 ? this.gateway.submitMany(accepted) : []
    if (queued.length > 0) this.log.info('queued from control channel', { commands: queued.length, first: queued[0].id, kinds: [...new Set(queued.map((c) => c.kind))].join(',') })
    return answers.map((a) => (typeof a === 'number' ? withoutPayload(queued[a]) : a))
  }

  /** The command once final; rejected if the client goes away first. */
  private waitFinal(id: number, waits: Set<(err: Error) => void>): Promise<QueuedCommand> {
    return new Promise((resolve, reject) => {
      let settled = false
      const end = (err: Error) => {
        waits.delete(end)
        stop()
        reject(err)
      }
      const stop = this.gateway.watch(id, (c) => {
        settled = true
        waits.delete(end)
        resolve(c)
      })
      if (!settled) waits.add(end)
    })
  }
}

/** Batch and wait answers leave the payload out: the client sent it, and a people list a thousand times over is not worth sending back. */
function withoutPayload(c: QueuedCommand): QueuedCommand {
  return { ...c, payload: {} }
}

function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path)
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

/** A client of a running gateway's control channel. */
export class ControlClient {
  private nextId = 1
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>()

  private constructor(private readonly socket: Socket) {
    socket.on('error', () => {})
    // a gateway gone mid-answer: 'close' rejects what waits, nothing else may throw
    createInterface({ input: socket }).on('error', () => {}).on('line', (line) => {
      let msg: { id: number; result?: unknown; error?: { message: string } }
      try {
        msg = JSON.parse(line)
      } catch {
        return
      }
      const w = this.waiting.get(msg.id)
      if (!w) return
      this.waiting.delete(msg.id)
      if (msg.error) w.reject(new Error(msg.error.message))
      else w.resolve(msg.result)
    })
    // ECONNRESET when the gateway stops mid-call: without a handler it would crash the client; 'close' follows and rejects the calls
    socket.on('error', () => {})
    socket.on('close', () => {
      for (const w of this.waiting.values()) w.reject(new Error('the gateway closed the control channel'))
      this.waiting.clear()
    })
  }

  static connect(home: string): Promise<ControlClient | undefined> {
    const path = controlSocketPath(home)
    if (!existsSync(path)) return Promise.resolve(undefined)
    return new Promise((resolve) => {
      const s = createConnection(path)
      s.once('connect', () => resolve(new ControlClient(s)))
      s.once('error', () => resolve(undefined))
    })
  }

  call<T>(method: Request['method'], params?: Record<string, unknown>): Promise<T> {
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.socket.write(JSON.stringify({ id, method, params }) + '\n')
    })
  }

  close(): void {
    this.socket.destroy()
  }
}

export type { QueuedCommand }

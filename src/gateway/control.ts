import { chmodSync, existsSync, unlinkSync } from 'node:fs'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { Inventory } from '../store/inventory.js'
import type { Logger } from '../types/driver.js'
import type { Gateway } from './gateway.js'
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
  method: 'hello' | 'submit' | 'command' | 'presence' | 'discovered'
  params?: Record<string, unknown>
}

export class ControlServer {
  private server?: Server
  private readonly sockets = new Set<Socket>()
  /** Requests still waiting on a device (a temporary gateway stays up for them). */
  active = 0
  private idleWaiters: (() => void)[] = []

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

  /** Resolves when no joined client waits on anything any more. */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket)
    const abort = new AbortController()
    socket.on('close', () => {
      this.sockets.delete(socket)
      abort.abort(new Error('client went away'))
    })
    socket.on('error', () => {})
    const lines = createInterface({ input: socket })
    lines.on('line', (line) => {
      let req: Request
      try {
        req = JSON.parse(line) as Request
      } catch {
        socket.write(JSON.stringify({ id: null, error: { message: 'bad request' } }) + '\n')
        return
      }
      this.active++
      this.dispatch(req, abort.signal)
        .then((result) => socket.write(JSON.stringify({ id: req.id, result }) + '\n'))
        .catch((err: Error) => socket.write(JSON.stringify({ id: req.id, error: { message: err.message } }) + '\n'))
        .finally(() => {
          this.active--
          if (this.active === 0) for (const w of this.idleWaiters.splice(0)) w()
        })
    })
  }

  private async dispatch(req: Request, signal: AbortSignal): Promise<unknown> {
    const p = req.params ?? {}
    switch (req.method) {
      case 'hello':
        return { pid: process.pid, httpPort: this.gateway.httpPort, mode: this.mode }
      case 'presence':
        return this.gateway.presence()
      case 'discovered':
        return this.gateway.discoveredDevices()
      case 'command':
        return this.gateway.command(Number(p.id)) ?? null
      case 'submit': {
        const device = new Inventory(this.home).get(String(p.device))
        if (!device) throw new Error(`unknown device ${String(p.device)}`)
        const cmd = this.gateway.submit(device, p.kind as CommandKind, (p.payload ?? {}) as Record<string, unknown>, Number(p.timeoutMs))
        this.log.info('queued from control channel', { device: device.name, kind: String(p.kind), id: cmd.id })
        if (p.wait === false) return cmd
        return this.gateway.waitFor(cmd.id, signal)
      }
      default:
        throw new Error(`unknown method ${String(req.method)}`)
    }
  }
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
    createInterface({ input: socket }).on('line', (line) => {
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

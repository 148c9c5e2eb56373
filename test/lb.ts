import { createServer, connect, type Server, type Socket } from 'node:net'

/**
 * A load balancer in miniature for the multi-gateway tests: a TCP forwarder on 127.0.0.1 whose
 * target can be switched (a gateway died: new connections go to the other), and which can cut the
 * connections it carries (what a dead machine's sockets do).
 */
export async function startForwarder(target: number): Promise<{ port: number; target(port: number): void; cut(): void; close(): Promise<void> }> {
  let to = target
  const open = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = connect(to, '127.0.0.1')
    open.add(client).add(upstream)
    const end = () => { client.destroy(); upstream.destroy(); open.delete(client); open.delete(upstream) }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as { port: number }).port
  return {
    port,
    target: (p) => { to = p },
    cut: () => { for (const s of open) s.destroy() },
    close: () => new Promise<void>((r) => { for (const s of open) s.destroy(); server.close(() => r()) }),
  }
}

/**
 * The gateway locked down (issue 12, items 3-5): TLS end to end for httpv2, wsjson and best-m (the
 * real `doorctl serve --tls-cert/--tls-key`, simulators run as `doorctl simulate … --ca`), the
 * embedded broker's authentication and per-serial ACL, source pinning (--allow-from), and bad
 * TLS files as usage errors. Certificates are made here with Debian's openssl (CN/SAN 127.0.0.1,
 * localhost only); everything on loopback, random ports.
 */
import { execFileSync } from 'node:child_process'
import { request as httpRequest } from 'node:http'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, type MqttClient } from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { bestSign } from '../../src/simulators/best/index.js'
import { doorctl, freePort, startDoorctl, tempDir, until } from '../helpers.js'

const PRODUCT = '5d9b11e1a3f448ae81f9f920e976d852'
const SECRET = 'factory-secret-1'
const BROKER_KEY = 'aabbcc'

const work = tempDir('doorctl-tls-')
const CERT = join(work.path, 'gateway.crt')
const KEY = join(work.path, 'gateway.key')
const OTHER_KEY = join(work.path, 'other.key')

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

beforeAll(() => {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', KEY, '-out', CERT, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'])
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', OTHER_KEY])
})
afterAll(() => work.cleanup())

type Proc = ReturnType<typeof startDoorctl>
const procs: Proc[] = []
const homes: ReturnType<typeof tempDir>[] = []
afterEach(async () => {
  for (const p of procs.splice(0).reverse()) {
    p.child.kill('SIGTERM')
    await p.exited
  }
  for (const h of homes.splice(0)) h.cleanup()
})

function home() {
  const h = tempDir('doorctl-tls-home-')
  homes.push(h)
  return h.path
}

/** `doorctl serve --json` with TLS on random ports; resolves with its ready line. */
async function serve(dir: string, extra: string[] = []): Promise<{ http_port: number; tls: boolean; mqtt_url?: string; proc: Proc }> {
  const args = ['serve', '--json', '--bind', '127.0.0.1', '--http-port', '0', '--udp-port', '0', '--tls-cert', CERT, '--tls-key', KEY, ...extra]
  const proc = startDoorctl(args, { home: dir })
  procs.push(proc)
  await until(() => proc.out.stdout.includes('\n') || proc.child.exitCode !== null, 20_000, 'the ready line')
  expect(proc.child.exitCode, proc.out.stderr).toBe(null)
  return { ...JSON.parse(proc.out.stdout.split('\n')[0]), proc }
}

/** A `doorctl simulate …` process (the real binary). */
function simulate(dir: string, args: string[]): Proc {
  const p = startDoorctl(['simulate', ...args], { home: dir })
  procs.push(p)
  return p
}

async function add(dir: string, args: string[]): Promise<void> {
  const r = await doorctl(['device', 'add', ...args], { home: dir })
  expect(r.code, r.stderr).toBe(0)
}

/** A signed getBrokerServer (best.txt 3.1) over HTTPS, trusting the test certificate. */
async function brokerUrl(port: number, sn: string): Promise<string> {
  const { Agent, fetch } = await import('undici')
  const nonce = Math.random().toString(16).slice(2)
  const timestamp = String(Date.now())
  const q = new URLSearchParams({ sn, type: 'best-m', nonce, timestamp, sign: bestSign(sn, nonce, timestamp, BROKER_KEY) })
  const agent = new Agent({ connect: { ca: readFileSync(CERT) } })
  try {
    const r = await fetch(`https://127.0.0.1:${port}/v3/device/getBrokerServer?${q}`, { dispatcher: agent })
    const body = (await r.json()) as { code: string; payload?: { results?: { url?: string } } }
    expect(body.code).toBe('00000000')
    return body.payload!.results!.url!
  } finally {
    await agent.close()
  }
}

/** Connects an MQTT client; resolves with it, or rejects with the broker's refusal. */
function mqttClient(url: string, opts: { clientId?: string; username?: string; password?: string } = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = connect(url, { ca: readFileSync(CERT), reconnectPeriod: 0, connectTimeout: 5000, ...opts })
    c.once('connect', () => resolve(c))
    c.once('error', (err) => {
      c.end(true)
      reject(err)
    })
  })
}

describe('TLS end to end (serve --tls-cert/--tls-key, simulators with --ca)', () => {
  it('httpv2: keepalives over HTTPS; a reboot is delivered', async () => {
    const dir = home()
    await add(dir, ['door-1', '--protocol', 'httpv2', '--sn', 'TLS-H-00000001'])
    const gw = await serve(dir)
    expect(gw.tls).toBe(true)
    simulate(dir, ['httpv2', '--server', `https://127.0.0.1:${gw.http_port}`, '--sn-prefix', 'TLS-H-', '--interval', '100', '--ca', CERT])
    const r = await doorctl(['device', 'reboot', 'door-1', '--json', '--timeout', '20s'], { home: dir })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json().results[0]).toMatchObject({ device: 'door-1', status: 'ok' })
  })

  it('wsjson: the device registers over WSS; device info is its register message', async () => {
    const dir = home()
    await add(dir, ['door-1', '--protocol', 'wsjson', '--sn', 'TLS-W-00000001'])
    const gw = await serve(dir)
    simulate(dir, ['wsjson', '--server', `wss://127.0.0.1:${gw.http_port}/wsjson`, '--sn-prefix', 'TLS-W-', '--heartbeat', '500', '--reconnect', '100', '--ca', CERT])
    const r = await doorctl(['device', 'info', 'door-1', '--json', '--timeout', '20s'], { home: dir })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json().results[0].info).toMatchObject({ sn: 'TLS-W-00000001' })
  })

  it('best-m: getBrokerServer over HTTPS answers mqtts:// with credentials; the device logs in over MQTTS; a reboot is delivered', async () => {
    const dir = home()
    await add(dir, ['door-1', '--protocol', 'best', '--sn', 'TLSM00000001', '--transport', 'mqtt', '--product-id', PRODUCT, '--device-secret', SECRET, '--broker-key', BROKER_KEY])
    // no --mqtt-port: a best-m device in the inventory starts the broker (port 0 keeps parallel runs apart)
    const gw = await serve(dir, ['--mqtt-port', '0'])
    expect(gw.mqtt_url).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/)
    const url = await brokerUrl(gw.http_port, 'TLSM00000001')
    expect(url).toMatch(/^mqtts:\/\/TLSM00000001:[\w-]{32}@127\.0\.0\.1:\d+$/)
    // the device password is a secret: never in the gateway's output
    expect(gw.proc.out.stderr + gw.proc.out.stdout).not.toContain(new URL(url).password)
    simulate(dir, ['best', '--server', `https://127.0.0.1:${gw.http_port}`, '--transport', 'mqtt', '--sn-prefix', 'TLSM', '--product-id', PRODUCT,
      '--device-secret', SECRET, '--broker-key', BROKER_KEY, '--heartbeat', '1000', '--reconnect', '200', '--ca', CERT])
    const r = await doorctl(['device', 'reboot', 'door-1', '--json', '--timeout', '20s'], { home: dir })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json().results[0]).toMatchObject({ device: 'door-1', status: 'ok' })
  })

  it('best-w: getBrokerServer answers wss://; the device logs in over WSS', async () => {
    const dir = home()
    await add(dir, ['door-1', '--protocol', 'best', '--sn', 'TLSW00000001', '--transport', 'ws', '--product-id', PRODUCT, '--device-secret', SECRET, '--broker-key', BROKER_KEY])
    const gw = await serve(dir)
    // no best-m device and no --mqtt-port: no broker is started
    expect(gw.mqtt_url).toBeUndefined()
    const sim = simulate(dir, ['best', '--server', `https://127.0.0.1:${gw.http_port}`, '--transport', 'ws', '--sn-prefix', 'TLSW', '--product-id', PRODUCT,
      '--device-secret', SECRET, '--broker-key', BROKER_KEY, '--heartbeat', '1000', '--reconnect', '200', '--ca', CERT, '--verbose'])
    const r = await doorctl(['device', 'sync-time', 'door-1', '--json', '--timeout', '20s'], { home: dir })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(sim.out.stderr).toMatch(/connected to wss:\/\/127\.0\.0\.1:\d+\/best/)
  })

  it('plain HTTP to the TLS port gets no answer from a route', async () => {
    const dir = home()
    const gw = await serve(dir)
    const status = await new Promise<number | string>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: gw.http_port, path: '/Device/Keepalive', method: 'POST' }, (res) => resolve(res.statusCode ?? 0))
      req.on('error', (e) => resolve((e as NodeJS.ErrnoException).code ?? e.message))
      req.end('{}')
    })
    expect(status === 400 || typeof status === 'string').toBe(true)
  })
})

describe('the embedded MQTT broker: no anonymous clients, each device in its own topics', () => {
  it('refuses anonymous and wrong-password clients; a device cannot subscribe or publish to another serial\'s topics', async () => {
    const dir = home()
    for (const [name, sn] of [['door-a', 'ACLA00000001'], ['door-b', 'ACLB00000001']]) {
      await add(dir, [name, '--protocol', 'best', '--sn', sn, '--transport', 'mqtt', '--product-id', PRODUCT, '--device-secret', SECRET, '--broker-key', BROKER_KEY])
    }
    const gw = await serve(dir, ['--mqtt-port', '0'])
    const plain = gw.mqtt_url!
    await expect(mqttClient(plain)).rejects.toThrow(/not authorized/i)
    await expect(mqttClient(plain, { clientId: 'ACLB00000001', username: 'ACLB00000001', password: 'guessed' })).rejects.toThrow(/bad user ?name or password/i)
    await expect(mqttClient(plain, { clientId: 'x', username: 'doorctl-gateway', password: 'guessed' })).rejects.toThrow(/bad user ?name or password/i)

    const a = await mqttClient(await brokerUrl(gw.http_port, 'ACLA00000001'), { clientId: 'ACLA00000001' })
    try {
      // its own topics: granted
      expect((await a.subscribeAsync('best/ACLA00000001/down', { qos: 1 }))[0].qos).toBe(1)
      // another serial's, or wildcards reaching past its own: refused (SUBACK 0x80, which mqtt.js turns into an error)
      for (const filter of ['best/ACLB00000001/down', 'best/+/down', '#', '$share/g/best/+/up']) {
        await expect(a.subscribeAsync(filter, { qos: 1 }), filter).rejects.toThrow(/subscribe error/i)
      }
      // publishing as another serial: the broker drops the connection
      const closed = new Promise<void>((r) => a.once('close', () => r()))
      a.publish('best/ACLB00000001/up', '{"funcId":"dev.heartbeat","mid":"spoof"}', { qos: 1 })
      await closed
    } finally {
      a.end(true)
    }
    await until(() => gw.proc.out.stderr.includes('mqtt publish refused') && gw.proc.out.stderr.includes('mqtt subscribe refused'), 5000, 'the refusals logged')
    expect(gw.proc.out.stderr).toContain('mqtt anonymous client refused')
  })
})

describe('source pinning (device add --allow-from)', () => {
  it('validates the ranges, stores them (device show, devices.csv), and refuses a pinned serial from another address', async () => {
    const dir = home()
    const bad = await doorctl(['device', 'add', 'door-x', '--protocol', 'httpv2', '--sn', 'X1', '--allow-from', '10.0.0.0/33', '--json'], { home: dir })
    expect(bad.code).toBe(2)
    expect(bad.stdout + bad.stderr).toMatch(/allow-from.*10\.0\.0\.0\/33|10\.0\.0\.0\/33.*prefix/)
    expect((await doorctl(['device', 'add', 'door-y', '--protocol', 'httpv2', '--sn', 'Y1', '--allow-from', 'not-an-ip'], { home: dir })).code).toBe(2)

    await add(dir, ['door-1', '--protocol', 'httpv2', '--sn', 'PIN-1', '--allow-from', '127.0.0.1/32,fd00::/8', '--allow-from', '192.0.2.0/24'])
    const show = await doorctl(['device', 'show', 'door-1', '--json'], { home: dir })
    expect(show.json().device.allowFrom).toEqual(['127.0.0.1/32', 'fd00::/8', '192.0.2.0/24'])
    const csv = join(work.path, 'devices.csv')
    writeFileSync(csv, 'name,protocol,sn,allow_from\ndoor-2,httpv2,PIN-2,127.0.0.1\ndoor-3,httpv2,OPEN-3,\n')
    const imported = await doorctl(['device', 'import', csv, '--json'], { home: dir })
    expect(imported.code, imported.stdout + imported.stderr).toBe(0)
    expect((await doorctl(['device', 'show', 'door-2', '--json'], { home: dir })).json().device.allowFrom).toEqual(['127.0.0.1/32'])
    writeFileSync(csv, 'name,protocol,sn,allow_from\ndoor-4,httpv2,PIN-4,300.1.1.1\n')
    expect((await doorctl(['device', 'import', csv, '--json'], { home: dir })).code).toBe(2)

    const gw = await serve(dir)
    const port = gw.http_port
    // TLS is on: talk to it over https with the test CA
    const { Agent, fetch } = await import('undici')
    const send = async (sn: string, localAddress: string) => {
      const agent = new Agent({ connect: { ca: readFileSync(CERT) }, localAddress })
      try {
        const r = await fetch(`https://127.0.0.1:${port}/Device/Keepalive`, { method: 'POST', body: JSON.stringify({ SN: sn }), headers: { 'content-type': 'application/json' }, dispatcher: agent })
        return (await r.json()) as { Success?: number }
      } finally {
        await agent.close()
      }
    }
    expect((await send('PIN-1', '127.0.0.1')).Success).not.toBe(401)
    // the same serial from 127.0.0.2: refused as httpv2 refuses (Success 401), logged, not "discovered"
    for (let i = 0; i < 3; i++) expect((await send('PIN-1', '127.0.0.2')).Success).toBe(401)
    expect((await send('OPEN-3', '127.0.0.2')).Success).not.toBe(401)
    await until(() => gw.proc.out.stderr.includes('refused: the device called from an address'), 5000, 'the refusal logged')
    const lines = gw.proc.out.stderr.split('\n').filter((l) => l.includes('refused: the device called from an address'))
    expect(lines).toHaveLength(1) // rate-limited: three refusals, one line
    expect(lines[0]).toContain('127.0.0.2')
    const list = await doorctl(['device', 'list', '--discovered', '--json'], { home: dir })
    expect(JSON.stringify(list.json())).not.toContain('PIN-1')
    // the admin listener speaks HTTPS with the same certificate, and counts every refusal
    const adminPort = (gw as unknown as { admin_port: number }).admin_port
    expect(adminPort).toBeGreaterThan(0)
    const agent = new Agent({ connect: { ca: readFileSync(CERT) } })
    try {
      const metrics = await (await fetch(`https://127.0.0.1:${adminPort}/metrics`, { dispatcher: agent })).text()
      expect(metrics).toMatch(/^doorctl_refused_total\{protocol="httpv2",reason="allow-from"\} 3$/m)
    } finally {
      await agent.close()
    }
  })
})

describe('bad TLS files are usage errors (exit 2, naming the file), before anything is sent', () => {
  it('serve and a one-shot command', async () => {
    const dir = home()
    await add(dir, ['door-1', '--protocol', 'httpv2', '--sn', 'BAD-1'])
    const garbage = join(work.path, 'garbage.pem')
    writeFileSync(garbage, 'not a certificate\n')
    const missing = join(work.path, 'missing.pem')
    const cases: [string[], string][] = [
      [['--tls-cert', missing, '--tls-key', KEY], missing],
      [['--tls-cert', garbage, '--tls-key', KEY], garbage],
      [['--tls-cert', CERT, '--tls-key', garbage], garbage],
      [['--tls-cert', CERT, '--tls-key', OTHER_KEY], OTHER_KEY],
      [['--tls-cert', CERT], '--tls-key'],
    ]
    // a line of the key's PEM body: it must never appear in an error
    const keyLine = readFileSync(OTHER_KEY, 'utf8').split('\n')[1]
    for (const [flags, named] of cases) {
      const r = await doorctl(['serve', '--json', '--bind', '127.0.0.1', '--http-port', '0', '--udp-port', '0', ...flags], { home: dir })
      expect(r.code, flags.join(' ')).toBe(2)
      expect(r.stdout + r.stderr, flags.join(' ')).toContain(named)
      expect(r.stdout + r.stderr).not.toContain(keyLine)
    }
    const oneShot = await doorctl(['device', 'reboot', 'door-1', '--json', '--timeout', '5s', '--http-port', '0', '--tls-cert', garbage, '--tls-key', KEY], { home: dir })
    expect(oneShot.code).toBe(2)
    expect(oneShot.stdout + oneShot.stderr).toContain(garbage)
    // the same through `doorctl config set` (stored as absolute paths)
    expect((await doorctl(['config', 'set', 'tls-cert', garbage], { home: dir })).code).toBe(0)
    expect((await doorctl(['config', 'set', 'tls-key', KEY], { home: dir })).code).toBe(0)
    const fromConfig = await doorctl(['device', 'reboot', 'door-1', '--json', '--timeout', '5s', '--http-port', '0'], { home: dir })
    expect(fromConfig.code).toBe(2)
    expect(fromConfig.stdout + fromConfig.stderr).toContain(garbage)
    const simBad = await doorctl(['simulate', 'httpv2', '--server', 'https://127.0.0.1:1', '--ca', garbage], { home: dir })
    expect(simBad.code).toBe(2)
    expect(simBad.stderr).toContain(garbage)
  })
})

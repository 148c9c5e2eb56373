/**
 * The best gateway's MQTT link (src/drivers/best/broker.ts) and its probe for shared
 * subscriptions (issue 9, item 4): a broker of --mqtt-url that does not route `$share/…` filters
 * (a plain aedes broker, started here) gets plain subscriptions and a warning that only one
 * gateway may use it; one that does (Debian's mosquitto, when installed; the embedded broker)
 * keeps the shared ones. Either way every device message reaches the gateway once, and the probe
 * itself never reaches it. Everything on 127.0.0.1, random ports.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Aedes } from 'aedes'
import { connect } from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { openBroker, type BrokerLink } from '../../src/drivers/best/broker.js'
import { loadBrokerSecret, withCredentials } from '../../src/drivers/best/broker-auth.js'
import { TOPICS } from '../../src/drivers/best/codec.js'
import type { Logger } from '../../src/types/driver.js'
import { DEFAULT_SETTINGS } from '../../src/types/gateway.js'

const MOSQUITTO = '/usr/sbin/mosquitto'
const hasMosquitto = existsSync(MOSQUITTO)
if (!hasMosquitto) console.warn(`best-broker: ${MOSQUITTO} is not installed, so the probe against mosquitto is skipped; install Debian's mosquitto package to run it`)

async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

/** A plain aedes broker: `$share/…` filters are taken literally, so they match nothing. */
async function plainAedes(): Promise<{ url: string; close(): Promise<void> }> {
  const broker = await Aedes.createBroker()
  const server: Server = createServer((s) => broker.handle(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as { port: number }).port
  return {
    url: `mqtt://127.0.0.1:${port}`,
    async close() {
      server.close()
      await new Promise<void>((r) => broker.close(() => r()))
    },
  }
}

const links: BrokerLink[] = []
const home = mkdtempSync(join(tmpdir(), 'doorctl-broker-'))
afterEach(async () => {
  for (const l of links.splice(0)) await l.close()
})
afterAll(() => rmSync(home, { recursive: true, force: true }))

/** The gateway's link (the best gateway's subscriptions), with what it hears and warns. */
async function link(mqttUrl?: string) {
  const heard: { topic: string; payload: string }[] = []
  const warnings: string[] = []
  const log: Logger = { debug() {}, info() {}, notice() {}, warn: (m) => warnings.push(m) }
  const l = await openBroker({
    settings: { ...DEFAULT_SETTINGS, bind: '127.0.0.1', mqttPort: 0, mqttUrl },
    home,
    log,
    clientId: `doorctl-test${Math.random().toString(16).slice(2, 8)}`,
    subscriptions: [TOPICS.sharedUp],
    onMessage: (topic, payload) => heard.push({ topic, payload: payload.toString() }),
    sharedProbeMs: 500,
  })
  links.push(l)
  return { l, heard, warnings }
}

/** A device's message on its up topic, through another client of the same broker. */
async function publishUp(url: string, sn: string, text: string): Promise<void> {
  const c = connect(url, { clientId: sn, reconnectPeriod: 0 })
  await new Promise<void>((r, j) => { c.once('connect', () => r()); c.once('error', j) })
  await c.publishAsync(TOPICS.up(sn), text, { qos: 1 })
  await c.endAsync()
}

describe('shared-subscription probe of a --mqtt-url broker', () => {
  it('a plain aedes broker: plain subscriptions, a warning that only one gateway may use it, in the ready line too', async () => {
    const aedes = await plainAedes()
    try {
      const { l, heard, warnings } = await link(aedes.url)
      expect(l.sharedSubscriptions).toBe(false)
      expect(l.bound).toEqual({ mqtt_url: aedes.url, mqtt_shared_subscriptions: false })
      expect(l.warnings).toHaveLength(1)
      expect(l.warnings[0]).toContain('does not route shared subscriptions')
      expect(l.warnings[0]).toContain('only one gateway may use this broker')
      expect(warnings).toEqual(l.warnings)
      await publishUp(aedes.url, 'SN1', 'hello')
      await until(() => heard.length === 1, 5000, 'the device message')
      expect(heard).toEqual([{ topic: 'best/SN1/up', payload: 'hello' }])
    } finally {
      await aedes.close()
    }
  })

  it('the embedded broker routes shared subscriptions: nothing to probe, nothing to warn', async () => {
    const { l, heard } = await link()
    expect(l.sharedSubscriptions).toBe(true)
    expect(l.bound.mqtt_shared_subscriptions).toBe(true)
    expect(l.warnings).toEqual([])
    await publishUp(withCredentials(String(l.bound.mqtt_url), 'SN2', loadBrokerSecret(home).devicePassword('SN2')), 'SN2', 'hi')
    await until(() => heard.length === 1, 5000, 'the device message')
    expect(heard[0].topic).toBe('best/SN2/up')
  })

  describe.skipIf(!hasMosquitto)('Debian\'s mosquitto', () => {
    let mosquitto: ChildProcess
    let url = ''
    const conf = mkdtempSync(join(tmpdir(), 'doorctl-mosq-'))
    beforeAll(async () => {
      const port = await freePort()
      writeFileSync(join(conf, 'mosquitto.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`)
      mosquitto = spawn(MOSQUITTO, ['-c', join(conf, 'mosquitto.conf')], { stdio: 'ignore' })
      url = `mqtt://127.0.0.1:${port}`
      let up = false
      const end = Date.now() + 10_000
      while (!up && Date.now() < end) {
        up = await new Promise<boolean>((r) => {
          const c = connect(url, { reconnectPeriod: 0, connectTimeout: 1000 })
          c.once('connect', () => { c.end(); r(true) })
          c.once('error', () => { c.end(); r(false) })
        })
        if (!up) await new Promise((r) => setTimeout(r, 100))
      }
      expect(up).toBe(true)
    })
    afterAll(() => {
      mosquitto.kill('SIGTERM')
      rmSync(conf, { recursive: true, force: true })
    })

    it('routes them: the shared subscription stays, no warning; a device message is heard once', async () => {
      const { l, heard, warnings } = await link(url)
      expect(l.sharedSubscriptions).toBe(true)
      expect(l.bound).toEqual({ mqtt_url: url, mqtt_shared_subscriptions: true })
      expect(l.warnings).toEqual([])
      expect(warnings).toEqual([])
      await publishUp(url, 'SN3', 'once')
      await until(() => heard.length === 1, 5000, 'the device message')
      expect(heard).toEqual([{ topic: 'best/SN3/up', payload: 'once' }])
    })
  })
})

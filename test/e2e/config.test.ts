import { afterAll, describe, expect, it } from 'vitest'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { createHttpv2Simulator } from '../../src/simulators/httpv2/index.js'
import { doorctl, freePort, tempDir } from '../helpers.js'

describe('doorctl config (listener defaults)', () => {
  const home = tempDir()
  afterAll(() => home.cleanup())
  const run = (args: string[]) => doorctl(args, { home: home.path })

  it('sets, shows and unsets settings; refuses bad keys and values with exit 2', async () => {
    expect((await run(['config', 'set', 'http-port', '18090', '--json'])).json()).toMatchObject({ ok: true, key: 'http-port', value: 18090 })
    expect((await run(['config', 'get', 'http-port', '--json'])).json().settings).toEqual({ 'http-port': 18090 })
    expect(statSync(join(home.path, 'settings.json')).mode & 0o777).toBe(0o600)
    expect((await run(['config', 'set', 'http-port', 'eighty', '--json'])).code).toBe(2)
    expect((await run(['config', 'set', 'colour', 'blue', '--json'])).code).toBe(2)
    expect((await run(['config', 'set', 'mqtt-url', 'http://x', '--json'])).code).toBe(2)
    expect((await run(['config', 'unset', 'http-port', '--json'])).code).toBe(0)
    expect((await run(['config', 'get', '--json'])).json().settings['http-port']).toBeNull()
  })

  it('a one-shot command listens on the configured port when no flag is given', async () => {
    const port = await freePort()
    await run(['config', 'set', 'http-port', String(port)])
    await run(['config', 'set', 'bind', '127.0.0.1'])
    await run(['device', 'add', 'd1', '--protocol', 'httpv2', '--sn', 'FC-8200H00000042'])
    const sim = createHttpv2Simulator({ server: `http://127.0.0.1:${port}`, sn: 'FC-8200H00000042', intervalMs: 100, requestTimeoutMs: 500 })
    sim.start()
    try {
      const r = await run(['device', 'reboot', 'd1', '--json', '--timeout', '20s'])
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expect(sim.events.reboots).toBe(1)
    } finally {
      await sim.stop()
    }
  })
})

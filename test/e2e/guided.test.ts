import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startOpenapiSimulator, type OpenapiSimulator } from '../../src/simulators/openapi/index.js'
import { createHttpv2Simulator, type Httpv2Simulator } from '../../src/simulators/httpv2/index.js'
import { doorctl, freePort, startDoorctl, tempDir, until } from '../helpers.js'
import { KEY, hasScript, terminal } from '../terminal.js'

/** The inventory as stored (secrets in clear), to check what a guided run saved. */
function stored(home: string): Record<string, Record<string, unknown>> {
  return JSON.parse(readFileSync(join(home, 'inventory.json'), 'utf8')).devices
}

describe('guided setup on a terminal (pseudo-terminal, answers typed)', () => {
  let sim: OpenapiSimulator
  beforeAll(async () => {
    sim = await startOpenapiSimulator({ port: 0, wsPort: 0, password: 's3cret' })
  })
  afterAll(async () => sim?.close())

  it.skipIf(!hasScript)('device add asks name, protocol and only openapi\'s fields, masks the password, and tests the connection', async () => {
    const home = tempDir()
    try {
      const t = terminal(['device', 'add'], { home: home.path })
      await t.expect('Name for the device')
      t.type(`front${KEY.enter}`)
      await t.expect('Protocol')
      t.type(KEY.enter) // openapi, the first choice
      await t.expect('How doorctl reaches it')
      t.type(KEY.enter) // direct
      await t.expect('Device address')
      t.type(`127.0.0.1${KEY.enter}`)
      await t.expect('HTTP API port')
      t.type(`${String(sim.httpPort)}${KEY.enter}`)
      await t.expect('Device password')
      t.type(`s3cret${KEY.enter}`)
      await t.expect('Tags')
      t.type(`hq lobby${KEY.enter}`)
      await t.expect('added front (openapi)')
      await t.expect('Test the connection now?')
      t.type(`y${KEY.enter}`)
      await t.expect('connection test: ok: reachable, signature accepted; model OPENAPI-SIM-FACE, firmware SIM-1.0.0')
      expect(await t.exited).toBe(0)
      // the password was typed masked; only the sn-less protocols' fields were asked
      expect(t.output).not.toContain('s3cret')
      expect(t.output).toContain('******')
      expect(t.output).not.toMatch(/Serial number|communityId/)
      expect(stored(home.path).front).toMatchObject({ protocol: 'openapi', host: '127.0.0.1', port: sim.httpPort, password: 's3cret', tags: ['hq', 'lobby'], mode: 'direct' })
    } finally {
      home.cleanup()
    }
  })

  it.skipIf(!hasScript)('a push-style device: only what the flags did not give is asked; the test waits for the device to call the gateway', async () => {
    const home = tempDir()
    const port = await freePort()
    const sn = 'FC-8200H00000201'
    const sim2: Httpv2Simulator = createHttpv2Simulator({ server: `http://127.0.0.1:${port}`, sn, intervalMs: 100, requestTimeoutMs: 500 })
    sim2.start()
    try {
      const t = terminal(['device', 'add', 'lobby', '--tag', 'hq', '--http-port', String(port), '--udp-port', '0', '--mqtt-port', '0', '--bind', '127.0.0.1'], { home: home.path })
      await t.expect('Protocol')
      t.type('httpv2')
      await t.expect('face terminal polling the gateway') // the choice moved to httpv2
      t.type(KEY.enter)
      await t.expect('Serial number (SN) the device reports')
      t.type(`${sn}${KEY.enter}`)
      await t.expect('Test the connection now?')
      t.type(KEY.enter) // yes is the default
      await t.expect(/connection test: ok: lobby called the gateway from 127\.0\.0\.1:\d+/)
      expect(await t.exited).toBe(0)
      expect(t.output).not.toMatch(/Name for the device|Tags/)
      expect(stored(home.path).lobby).toMatchObject({ protocol: 'httpv2', sn, tags: ['hq'] })
    } finally {
      await sim2.stop()
      home.cleanup()
    }
  })

  it('without a terminal, or with --json, nothing is asked: exit 2 naming what is missing; --test works there too', async () => {
    const home = tempDir()
    try {
      const none = await doorctl(['device', 'add'], { home: home.path })
      expect(none.code).toBe(2)
      expect(none.stderr).toMatch(/NAME/)
      expect(none.stderr).toMatch(/--protocol/)
      const noSn = await doorctl(['device', 'add', 'lobby', '--protocol', 'httpv2', '--json'], { home: home.path })
      expect(noSn.code).toBe(2)
      expect(noSn.json().error.problems).toEqual([expect.objectContaining({ field: '--sn' })])
      const adopt = await doorctl(['device', 'adopt', '--json'], { home: home.path })
      expect(adopt.code).toBe(0) // nothing discovered: nothing to ask
      expect(adopt.json()).toMatchObject({ ok: true, added: [] })
      // a wrong password: the device is added, the test says why it failed (exit 1)
      const wrong = await doorctl(['device', 'add', 'front', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(sim.httpPort), '--password-stdin', '--test', '--json'], { home: home.path, input: 'nope\n' })
      expect(wrong.code).toBe(1)
      expect(wrong.json()).toMatchObject({ ok: false, device: { name: 'front', password: '********' }, test: { ok: false } })
      expect(wrong.json().test.message).toMatch(/password/)
      expect(wrong.stdout).not.toContain('nope')
      expect(Object.keys(stored(home.path))).toEqual(['front'])
    } finally {
      home.cleanup()
    }
  })
})

describe('device adopt: discovered devices picked from a list', () => {
  const home = tempDir()
  const sns = ['FC-8200H00000301', 'FC-8200H00000302', 'FC-8200H00000303']
  let sims: Httpv2Simulator[] = []
  let serve: ReturnType<typeof startDoorctl>

  beforeAll(async () => {
    const port = await freePort()
    serve = startDoorctl(['serve', '--http-port', String(port), '--udp-port', '0', '--mqtt-port', '0', '--bind', '127.0.0.1', '--json'], { home: home.path })
    await until(() => serve.out.stdout.includes('"ok":true'), 20_000, 'serve to start')
    sims = sns.map((sn) => createHttpv2Simulator({ server: `http://127.0.0.1:${port}`, sn, intervalMs: 100, requestTimeoutMs: 500 }))
    for (const s of sims) s.start()
    await until(async () => (await doorctl(['device', 'list', '--discovered', '--json'], { home: home.path })).json().discovered.length === 3, 20_000, 'three discovered devices')
  })
  afterAll(async () => {
    await Promise.all(sims.map((s) => s.stop()))
    serve.child.kill('SIGTERM')
    await serve.exited
    home.cleanup()
  })

  it('without a terminal: exit 2 naming the flags of device add', async () => {
    const r = await doorctl(['device', 'adopt'], { home: home.path })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/3 discovered devices/)
    expect(r.stderr).toMatch(/device add NAME --protocol P --sn SN/)
  })

  it.skipIf(!hasScript)('lists them, adds the ones picked with a name each, and the gateway serves them at once', async () => {
    const t = terminal(['device', 'adopt'], { home: home.path })
    await t.expect('Devices to add')
    t.type(KEY.space + KEY.down + KEY.space + KEY.enter) // the first two of the list
    const named: Record<string, string> = {}
    for (const name of ['east', 'west']) {
      const sn = (await t.expect(/Name for httpv2 (FC-\w+)/))[1]!
      named[name] = sn
      t.type(`${name}${KEY.enter}`)
      await t.expect(`✔ Name for httpv2 ${sn} ${name}`)
    }
    await t.expect('Tags for these devices')
    t.type(`floor-1${KEY.enter}`)
    await t.expect('added east (httpv2), west (httpv2)')
    expect(await t.exited).toBe(0)
    const inv = stored(home.path)
    expect(inv.east).toMatchObject({ protocol: 'httpv2', sn: named.east, tags: ['floor-1'] })
    expect(inv.west).toMatchObject({ protocol: 'httpv2', sn: named.west, tags: ['floor-1'] })
    expect(named.east).not.toBe(named.west)
    // the running gateway takes them as known devices from their next keepalive
    await until(async () => {
      const list = (await doorctl(['device', 'list', '--json'], { home: home.path })).json().devices as { name: string; online: boolean | null }[]
      return list.filter((d) => d.online === true).length === 2
    }, 20_000, 'the adopted devices online')
    // one is left to adopt; a name already taken is refused at the prompt
    const again = terminal(['device', 'adopt'], { home: home.path })
    await again.expect('Devices to add')
    again.type(KEY.space + KEY.enter)
    await again.expect('Name for httpv2')
    again.type(`east${KEY.enter}`)
    await again.expect('"east" is already a device name')
    again.type(`-2${KEY.enter}`) // the answer stays, to be corrected
    await again.expect('Tags for these devices')
    again.type(KEY.enter)
    await again.expect('added east-2 (httpv2)')
    expect(await again.exited).toBe(0)
    expect(Object.keys(stored(home.path)).sort()).toEqual(['east', 'east-2', 'west'])
  })
})

describe('config apply on a terminal shows the plan and asks', () => {
  const home = tempDir()
  let sim: OpenapiSimulator
  let site: string
  beforeAll(async () => {
    sim = await startOpenapiSimulator({ port: 0, wsPort: 0 })
    expect((await doorctl(['device', 'add', 'door-1', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(sim.httpPort)], { home: home.path })).code).toBe(0)
    site = join(home.path, 'site.csv')
    writeFileSync(site, 'device,section,key,value\ndoor-1,smartface,faceThre,6\ndoor-1,perpara,unlockOuttime,5\n')
  })
  afterAll(async () => {
    await sim?.close()
    home.cleanup()
  })

  it.skipIf(!hasScript)('no → exit 2 and nothing written; yes → applied', async () => {
    const writes = () => sim.deviceRequests.filter((r) => r.path.endsWith('cfg')).length
    const no = terminal(['device', 'config', 'apply', site], { home: home.path })
    await no.expect('smartface.faceThre: 5 → 6')
    await no.expect('Apply 1 change to 1 device?')
    no.type(`n${KEY.enter}`)
    expect(await no.exited).toBe(2)
    expect(writes()).toBe(0)

    const yes = terminal(['device', 'config', 'apply', site], { home: home.path })
    await yes.expect('Apply 1 change to 1 device?')
    yes.type(`y${KEY.enter}`)
    await yes.expect(/door-1\W+openapi\W+ok\W+changed smartface\.faceThre: 5 → 6/)
    expect(await yes.exited).toBe(0)
    expect(writes()).toBe(1)
    expect(sim.device.smartface.faceThre).toBe(6)
  })
})

/**
 * Choosing the store (issue 11): --store, DOORCTL_STORE, `config set store`; the inventory of a
 * shared PostgreSQL store seen from any DOORCTL_HOME; wrong stores refused with exit 2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { doorctl, freePort, tempDir } from '../helpers.js'
import { pgMissing, startPostgres, type TestPostgres } from '../pg.js'

const missing = pgMissing()

describe('bad --store URLs are usage errors naming the place, never the password', () => {
  const home = tempDir()
  afterAll(() => home.cleanup())

  it('an unknown scheme, an unreachable host', async () => {
    const scheme = await doorctl(['device', 'list', '--store', 'mysql://u:hunter2@db.example/x', '--json'], { home: home.path })
    expect(scheme.code).toBe(2)
    expect(scheme.stdout).toContain('mysql')
    expect(scheme.stdout + scheme.stderr).not.toContain('hunter2')

    const port = await freePort()
    const down = await doorctl(['device', 'add', 'd1', '--protocol', 'httpv2', '--sn', 'X1', '--store', `postgres://u:hunter2@127.0.0.1:${port}/db`, '--json'], { home: home.path })
    expect(down.code, down.stdout + down.stderr).toBe(2)
    expect(down.json().error.message).toContain(`127.0.0.1:${port}`)
    expect(down.stdout + down.stderr).not.toContain('hunter2')
    // nothing half-written: the default store is untouched
    const list = await doorctl(['device', 'list', '--json'], { home: home.path })
    expect(list.json().devices).toEqual([])
  })

  it('config set store refuses what is not a postgres URL, and never shows the password', async () => {
    const bad = await doorctl(['config', 'set', 'store', 'file:///tmp/x', '--json'], { home: home.path })
    expect(bad.code).toBe(2)
    const port = await freePort()
    const set = await doorctl(['config', 'set', 'store', `postgres://u:hunter2@127.0.0.1:${port}/db`, '--json'], { home: home.path })
    expect(set.code, set.stderr).toBe(0)
    const get = await doorctl(['config', 'get', 'store', '--json'], { home: home.path })
    expect(get.json().settings.store).toContain(`127.0.0.1:${port}`)
    expect(get.stdout + set.stdout).not.toContain('hunter2')
    // the configured store is used (and is down): exit 2 naming it; unset makes the default come back
    const down = await doorctl(['device', 'list', '--json'], { home: home.path })
    expect(down.code).toBe(2)
    expect((await doorctl(['config', 'unset', 'store'], { home: home.path })).code).toBe(0)
    expect((await doorctl(['device', 'list', '--json'], { home: home.path })).code).toBe(0)
  })
})

describe.skipIf(missing)(`one inventory on PostgreSQL, seen from every machine${missing ? ` (cannot run: ${missing})` : ''}`, () => {
  let pg: TestPostgres
  const laptop = tempDir()
  const server = tempDir()
  beforeAll(async () => { pg = await startPostgres() }, 60_000)
  afterAll(() => { pg?.destroy(); laptop.cleanup(); server.cleanup() })

  it('device add on one home, list/show/remove on another (flag, variable, setting); secrets masked', async () => {
    const url = pg.url('inv')
    const add = await doorctl(['device', 'add', 'gate-1', '--protocol', 'best', '--sn', 'B1', '--transport', 'mqtt', '--device-secret', 's3cret-key', '--store', url, '--json'], { home: laptop.path })
    expect(add.code, add.stdout + add.stderr).toBe(0)
    expect(add.stdout).not.toContain('s3cret-key')
    const imp = await doorctl(['device', 'add', 'door-2', '--protocol', 'httpv2', '--sn', 'H2', '--tag', 'hq', '--json'], { home: laptop.path, env: { DOORCTL_STORE: url } })
    expect(imp.code, imp.stderr).toBe(0)

    expect((await doorctl(['config', 'set', 'store', url], { home: server.path })).code).toBe(0)
    const list = await doorctl(['device', 'list', '--json'], { home: server.path })
    expect(list.code, list.stderr).toBe(0)
    expect(list.json().devices.map((d: { name: string }) => d.name)).toEqual(['door-2', 'gate-1'])
    const show = await doorctl(['device', 'show', 'gate-1', '--json'], { home: server.path })
    expect(show.stdout).not.toContain('s3cret-key')
    // the flag wins over the setting: the laptop's own (empty) SQLite inventory
    const local = await doorctl(['device', 'list', '--json', '--store', ''], { home: server.path })
    expect(local.json().devices).toEqual([])

    expect((await doorctl(['device', 'remove', 'door-2'], { home: server.path })).code).toBe(0)
    const after = await doorctl(['device', 'list', '--json', '--store', url], { home: laptop.path })
    expect(after.json().devices.map((d: { name: string }) => d.name)).toEqual(['gate-1'])
    // a one-shot command with no gateway on the store says so (exit 1), and queues nothing
    const reboot = await doorctl(['device', 'reboot', 'gate-1', '--store', url, '--json'], { home: laptop.path })
    expect(reboot.code).toBe(1)
    expect(reboot.stdout).toContain('no gateway is running')
  }, 60_000)
})

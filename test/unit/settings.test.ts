import { afterAll, describe, expect, it } from 'vitest'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { InputError } from '../../src/types/errors.js'
import type { DeviceDriver, DeviceEntry, OperationContext } from '../../src/types/driver.js'
import { settingsSchema as openapiSchema, settingsSchemaFor } from '../../src/drivers/openapi/index.js'
import { settingsSchema as httpv2Schema } from '../../src/drivers/httpv2/rules.js'
import { OPTION_KEYS, settingsSchema as bestSchema } from '../../src/drivers/best/rules.js'
import { reportedOptions } from '../../src/drivers/best/codec.js'
import { settingsSchema as udpSchema } from '../../src/drivers/udp/rules.js'
import { settingValues as udpSettingValues } from '../../src/drivers/udp/codec.js'
import { desiredState, readSettingsCsv, type DoorSettings } from '../../src/ops/settings-file.js'
import { applyDoor, planDoor, planOutcome, settingRows } from '../../src/ops/settings-plan.js'
import { adoptionInput } from '../../src/ops/adopt.js'
import type { SettingsSchema } from '../../src/types/settings.js'
import { parseSettingValue, reportedValue, sameSettingValue, settingText } from '../../src/util/setting-values.js'
import { silentLogger } from '../../src/types/driver.js'
import { tempDir } from '../helpers.js'

const dir = tempDir('doorctl-settings-')
afterAll(() => dir.cleanup())
let n = 0
function csv(text: string): string {
  const file = join(dir.path, `s${++n}.csv`)
  writeFileSync(file, text)
  return file
}

const dev = (name: string, protocol: DeviceEntry['protocol'], tags: string[] = [], extra: Partial<DeviceEntry> = {}): DeviceEntry => ({ name, protocol, tags, ...extra })
const inventory = [
  dev('door-1', 'openapi', ['site', 'lobby'], { host: '127.0.0.1' }),
  dev('door-2', 'openapi', ['site', 'lobby'], { host: '127.0.0.2' }),
  dev('h2', 'httpv2', ['site'], { sn: 'FC-1' }),
  dev('ws', 'wsjson', ['site'], { sn: 'W-1' }),
  dev('plat', 'openapi', [], { deviceId: '9', mode: 'platform' }),
]
const schemas: Record<string, SettingsSchema> = { openapi: openapiSchema, httpv2: httpv2Schema, wsjson: { sections: {} }, best: bestSchema, udp: udpSchema }
const schemaOf = (d: DeviceEntry) => (d.protocol === 'openapi' ? settingsSchemaFor(d) : schemas[d.protocol]!)

function problemsOf(f: () => unknown): { line?: number; field?: string; message: string }[] {
  try {
    f()
  } catch (err) {
    expect(err).toBeInstanceOf(InputError)
    return (err as InputError).problems
  }
  throw new Error('expected an InputError')
}

describe('setting values', () => {
  it('types file text as the document does, with ranges', () => {
    expect(parseSettingValue({ type: 'integer', min: 0, max: 10 }, ' 7 ')).toEqual({ value: 7 })
    expect(parseSettingValue({ type: 'integer', min: 0, max: 10 }, '11')).toEqual({ error: 'must be between 0 and 10, got 11' })
    expect(parseSettingValue({ type: 'integer' }, '5.5')).toMatchObject({ error: expect.stringContaining('an integer') })
    expect(parseSettingValue({ type: 'integer', min: 0, max: 1 }, 'yes')).toMatchObject({ error: expect.stringContaining('0 or 1') })
    expect(parseSettingValue({ type: 'number', min: 37, max: 37.5 }, '37.3')).toEqual({ value: 37.3 })
    expect(parseSettingValue({ type: 'number' }, '')).toMatchObject({ error: expect.stringContaining('a number') })
    expect(parseSettingValue({ type: 'string' }, '')).toEqual({ value: '' })
    expect(parseSettingValue({ type: 'array' }, '[{"Num":1}]')).toEqual({ value: [{ Num: 1 }] })
    expect(parseSettingValue({ type: 'object' }, '[1]')).toMatchObject({ error: expect.stringContaining('JSON object') })
    expect(parseSettingValue({ type: 'string', pattern: { re: /^\d+$/, description: 'digits' } }, 'a')).toMatchObject({ error: 'must be digits, got "a"' })
  })

  it('reads reported values in the setting type (best reports strings) and compares objects by content', () => {
    expect(reportedValue({ type: 'integer' }, '50')).toBe(50)
    expect(reportedValue({ type: 'integer', min: 0, max: 1 }, 7)).toBe(7)
    expect(reportedValue({ type: 'string' }, 12)).toBe('12')
    expect(reportedValue({ type: 'integer' }, 'loud')).toBeUndefined()
    expect(reportedValue({ type: 'string' }, undefined)).toBeUndefined()
    expect(sameSettingValue({ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 })).toBe(true)
    expect(sameSettingValue(1, '1')).toBe(false)
    expect(settingText({ Week1: '' })).toBe('{"Week1":""}')
    expect(settingText(37.3)).toBe('37.3')
  })
})

describe('settings file', () => {
  it('reads the four columns in any order, with BOM, and refuses other shapes with line numbers', () => {
    const rows = readSettingsCsv(csv('\uFEFFKey,device,value,section\nfaceThre,door-1,6,smartface\n'))
    expect(rows).toEqual([{ line: 2, device: 'door-1', section: 'smartface', key: 'faceThre', value: '6' }])
    expect(problemsOf(() => readSettingsCsv(csv('device,section,key\n')))).toEqual([expect.objectContaining({ line: 1, field: 'value' })])
    expect(problemsOf(() => readSettingsCsv(csv('device,section,key,value,extra\n*,a,b,c,d\n')))).toEqual([expect.objectContaining({ line: 1, field: 'extra' })])
    expect(problemsOf(() => readSettingsCsv(csv('device,section,key,value\n')))[0]!.message).toMatch(/no settings/)
    expect(problemsOf(() => readSettingsCsv(csv('device,section,key,value\n,smartface,faceThre,1\ndoor-1,,x,1\n'))).map((p) => [p.line, p.field])).toEqual([[2, 'device'], [3, 'section']])
    expect(problemsOf(() => readSettingsCsv(join(dir.path, 'missing.csv')))[0]!.message).toMatch(/no such file/)
  })

  it('name wins over tag over *, and a later row over an earlier one of the same kind', () => {
    const rows = readSettingsCsv(csv([
      'device,section,key,value',
      'door-1,smartface,faceThre,9', // line 2: name
      '*,smartface,faceThre,3',
      'tag:site,smartface,faceThre,5',
      'tag:lobby,smartface,faceThre,6', // a later tag row wins over the earlier one
      '*,smartface,FACEINTERVAL,10', // keys match case-insensitively, sent in the document's spelling
    ].join('\n')))
    const { doors, untouched } = desiredState('f.csv', rows, { inventory, schemaOf })
    const byName = Object.fromEntries(doors.map((d) => [d.device.name, d.settings.map((s) => [s.section, s.key, s.value, s.line])]))
    expect(byName['door-1']).toEqual([['smartface', 'faceThre', 9, 2], ['smartface', 'faceInterval', 10, 6]])
    expect(byName['door-2']).toEqual([['smartface', 'faceThre', 6, 5], ['smartface', 'faceInterval', 10, 6]])
    // `*` and tag rows apply where the section exists: not to httpv2, wsjson or a platform-mode openapi device
    expect(Object.keys(byName).sort()).toEqual(['door-1', 'door-2'])
    expect(untouched).toEqual([])
  })

  it('every problem with its line: unknown device, tag, section, key; wrong type; out of range; one door\'s own key on many', () => {
    const rows = readSettingsCsv(csv([
      'device,section,key,value',
      'nobody,smartface,faceThre,5',
      'tag:nope,smartface,faceThre,5',
      'door-1,alarm,FireAlarm,1',
      'door-1,smartface,loudness,5',
      'door-1,smartface,faceThre,high',
      'door-1,smartface,faceThre,11',
      'tag:site,network,ipAddress,127.0.0.9',
      'h2,system,TimeZone,5.5',
      '*,nosuch,x,1',
      'door-1,smartface,constructor,1', // not a key, whatever objects inherit
    ].join('\n')))
    const problems = problemsOf(() => desiredState('f.csv', rows, { inventory, schemaOf }))
    expect(problems.map((p) => [p.line, p.field])).toEqual([
      [2, 'device'], [3, 'device'], [4, 'section'], [5, 'key'], [6, 'value'], [7, 'value'], [8, 'device'], [8, 'key'], [9, 'value'], [10, 'section'], [11, 'key'],
    ])
    expect(problems[0]!.message).toMatch(/unknown device "nobody"/)
    expect(problems[2]!.message).toMatch(/door-1 \(openapi\) has no settings section "alarm"/)
    expect(problems[3]!.message).toMatch(/no smartface setting "loudness"/)
    expect(problems[5]!.message).toMatch(/between 0 and 10/)
    expect(problems[6]!.message).toMatch(/each door's own/)
    // the tag also reaches an httpv2 door, whose network section has no such key
    expect(problems[7]!.message).toMatch(/httpv2 devices have no network setting "ipAddress"/)
  })

  it('targets limit the doors planned; a target no row reaches is reported, not an error', () => {
    const rows = readSettingsCsv(csv('device,section,key,value\n*,smartface,faceThre,4\n'))
    const { doors, untouched } = desiredState('f.csv', rows, { inventory, schemaOf, targets: [inventory[1]!, inventory[2]!] })
    expect(doors.map((d) => d.device.name)).toEqual(['door-2'])
    expect(untouched.map((d) => d.name)).toEqual(['h2'])
    // a per-door key on a row naming its door is fine
    const own = readSettingsCsv(csv('device,section,key,value\ndoor-1,network,ipAddress,127.0.0.9\n'))
    expect(desiredState('f.csv', own, { inventory, schemaOf }).doors[0]!.settings[0]!.value).toBe('127.0.0.9')
    expect(problemsOf(() => desiredState('f.csv', rows, { inventory, schemaOf, targets: [inventory[3]!] }))[0]!.message).toMatch(/no row of the file applies/)
  })

  it('a secret value is not repeated in a problem', () => {
    const schema: SettingsSchema = { sections: { s: { pin: { type: 'string', secret: true, pattern: { re: /^\d{4}$/, description: '4 digits' } } } } }
    const rows = readSettingsCsv(csv('device,section,key,value\ndoor-1,s,pin,hunter2\n'))
    const problems = problemsOf(() => desiredState('f.csv', rows, { inventory, schemaOf: () => schema }))
    expect(problems[0]!.message).not.toContain('hunter2')
  })
})

/** A driver whose settings live in memory, counting what it is asked. */
function fakeDriver(state: Record<string, Record<string, unknown>>, opts: { oneRead?: boolean; refuse?: string } = {}) {
  const calls = { reads: [] as string[], writes: [] as [string, Record<string, unknown>][] }
  const driver = {
    protocol: 'openapi',
    configSections: () => Object.keys(state),
    async getConfig(section: string) {
      calls.reads.push(section)
      return { ...state[section] }
    },
    async setConfig(section: string, values: Record<string, unknown>) {
      calls.writes.push([section, values])
      for (const [k, v] of Object.entries(values)) {
        if (k === opts.refuse) continue
        const target = section === 'json' ? Object.values(state).find((s) => k in s)! : state[section]!
        target[k] = v
      }
      return { message: 'set' }
    },
    ...(opts.oneRead
      ? { async readConfig(sections: readonly string[]) { calls.reads.push(sections.join('+')); return Object.fromEntries(sections.map((s) => [s, { ...state[s] }])) } }
      : {}),
  } as unknown as DeviceDriver
  return { driver, calls }
}

const ctx: OperationContext = { signal: new AbortController().signal, timeoutMs: 1000, log: silentLogger }

function door(schema: SettingsSchema, settings: [string, string, unknown][]): DoorSettings {
  return { device: dev('d', 'openapi'), schema, settings: settings.map(([section, key, value], i) => ({ section, key, value, spec: schema.sections[section]![key]!, line: i + 2 })) }
}

describe('plan and apply one door', () => {
  const schema: SettingsSchema = {
    sections: {
      a: { x: { type: 'integer' }, y: { type: 'integer' }, secret: { type: 'string', secret: true } },
      b: { z: { type: 'string' }, hidden: { type: 'string', readable: false } },
    },
  }

  it('sends only what differs, one write per section, reads it back; a second apply sends nothing', async () => {
    const state = { a: { x: 1, y: 2, secret: '' }, b: { z: 'same' } }
    const { driver, calls } = fakeDriver(state)
    const want = door(schema, [['a', 'x', 5], ['a', 'y', 2], ['b', 'z', 'same']])
    const plan = await planDoor(driver, want, ctx)
    expect(plan.changes.map((c) => [c.key, c.current, c.value, c.known])).toEqual([['x', 1, 5, true]])
    expect(planOutcome(plan).fields).toMatchObject({ in_line: false, unchanged: ['a.y', 'b.z'] })
    const r = await applyDoor(driver, plan, ctx)
    expect(r).toMatchObject({ status: 'ok', fields: { changed: [{ section: 'a', key: 'x', from: 1, to: 5 }] } })
    expect(calls.writes).toEqual([['a', { x: 5 }]])
    const again = await planDoor(driver, want, ctx)
    expect(again.changes).toEqual([])
    expect(await applyDoor(driver, again, ctx)).toMatchObject({ status: 'unchanged' })
    expect(calls.writes).toHaveLength(1)
  })

  it('unknown current values (secrets, unreported keys) are always sent and never shown', async () => {
    const state = { a: { x: 1, y: 2, secret: '(set)' }, b: { z: 'q' } }
    const { driver, calls } = fakeDriver(state)
    const plan = await planDoor(driver, door(schema, [['a', 'secret', 'p4ss'], ['b', 'hidden', 'h']]), ctx)
    expect(plan.changes.every((c) => !c.known)).toBe(true)
    // an unreadable-only plan reads nothing
    expect(calls.reads).toEqual([])
    expect(JSON.stringify(planOutcome(plan))).not.toContain('p4ss')
    const r = await applyDoor(driver, plan, ctx)
    expect(r.status).toBe('ok')
    expect(JSON.stringify(r)).not.toContain('p4ss')
    expect(r.fields?.not_read_back).toEqual(['a.secret', 'b.hidden'])
  })

  it('a protocol that takes every section in one write gets one; one answer reads every section', async () => {
    const state = { a: { x: 1, y: 2, secret: '' }, b: { z: 'old' } }
    const { driver, calls } = fakeDriver(state, { oneRead: true })
    const plan = await planDoor(driver, door({ ...schema, writeAllAs: 'json' }, [['a', 'x', 3], ['b', 'z', 'new']]), ctx)
    expect(calls.reads).toEqual(['a+b'])
    await applyDoor(driver, plan, ctx)
    expect(calls.writes).toEqual([['json', { x: 3, z: 'new' }]])
  })

  it('a value the device did not take is reported as failed with what it kept', async () => {
    const { driver } = fakeDriver({ a: { x: 1, y: 2, secret: '' }, b: { z: 'q' } }, { refuse: 'y' })
    const plan = await planDoor(driver, door(schema, [['a', 'x', 3], ['a', 'y', 9]]), ctx)
    const r = await applyDoor(driver, plan, ctx)
    expect(r.status).toBe('failed')
    expect(r.message).toMatch(/a\.y is 2, not 9/)
    expect(r.fields?.refused).toEqual(['a.y'])
  })

  it('exports readable keys in table order, without secrets or the clock', () => {
    const out = settingRows('golden', httpv2Schema, {
      system: { Volume: 6, SystemTime: 1718421632, MenuPassword: '(set)', TimeZone: 8, Unlisted: 1 },
      access: { TimeGroups: [{ Num: 1 }] },
    })
    // the table's order: section access before system; in system the clock is left out
    expect(out.rows).toEqual([
      ['golden', 'access', 'TimeGroups', '[{"Num":1}]'],
      ['golden', 'system', 'TimeZone', '8'],
      ['golden', 'system', 'Volume', '6'],
    ])
    expect(out.secrets).toContain('system.MenuPassword')
  })
})

describe('protocol tables', () => {
  it('every protocol with settings has a table; openapi platform mode has none', () => {
    expect(Object.keys(openapiSchema.sections)).toEqual(['network', 'smartface', 'perpara'])
    expect(settingsSchemaFor(dev('p', 'openapi', [], { deviceId: '1', mode: 'platform' })).sections).toEqual({})
    expect(httpv2Schema.writeAllAs).toBe('json')
    expect(httpv2Schema.sections.system!.MenuPassword!.secret).toBe(true)
    expect(Object.keys(udpSchema.sections.device!)).toEqual(['communityId', 'deviceCode'])
    expect(OPTION_KEYS).toContain('meetRoomName')
    expect(OPTION_KEYS).toContain('volume')
  })

  it('best: the options a dev.report carries', () => {
    expect(reportedOptions({ fwVer: 'x', volume: '50', voiceOn: '1', qrCodeSupport: '0' })).toEqual({ volume: '50', voiceOn: '1' })
  })

  it('udp: deviceCode goes out as doorcodeNew; identities without "/" or spaces', () => {
    expect(udpSettingValues('device', { deviceCode: '7', communityId: 12 })).toEqual({ doorcodeNew: '7', communityId: '12', extra: {} })
    expect(udpSettingValues('device', { deviceCode: 'a/b' })).toMatchObject({ error: expect.stringContaining('without "/"') })
  })

  it('adopting: each protocol\'s identity becomes the fields device add takes', () => {
    expect(adoptionInput({ protocol: 'udp', identity: '12/3', address: '', info: {} })).toEqual({ protocol: 'udp', community: '12', code: '3' })
    expect(adoptionInput({ protocol: 'best', identity: 'B1', address: 'mqtt:B1', info: {} })).toEqual({ protocol: 'best', sn: 'B1', transport: 'mqtt' })
    expect(adoptionInput({ protocol: 'best', identity: 'B1', address: '127.0.0.1:5', info: {} })).toMatchObject({ transport: 'ws' })
    expect(adoptionInput({ protocol: 'openapi', identity: '77', address: '', info: {} })).toEqual({ protocol: 'openapi', deviceId: '77', mode: 'platform' })
    expect(adoptionInput({ protocol: 'httpv2', identity: 'FC-1', address: '', info: {} })).toEqual({ protocol: 'httpv2', sn: 'FC-1' })
  })
})

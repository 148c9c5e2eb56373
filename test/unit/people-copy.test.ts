import { describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { differences, personFrom } from '../../src/ops/people-copy.js'
import { checkPerson } from '../../src/ops/people-csv.js'
import { readDevicesCsv } from '../../src/ops/devices-csv.js'
import { personRules as httpv2Rules } from '../../src/drivers/httpv2/rules.js'
import { personRules as openapiRules } from '../../src/drivers/openapi/codec.js'
import type { PersonInfo } from '../../src/types/driver.js'

const info = (over: Partial<PersonInfo> = {}): PersonInfo => ({ id: '7', name: 'Ann', card: '123', phone: '555', department: 'Ops', role: 'user', hasPhoto: false, ...over })

describe('people copy: a listed person as one to send, and what differs on a target', () => {
  it('personFrom keeps what the list has, drops empty fields and the photo bytes', () => {
    const from = new Date('2026-01-01T00:00:00Z')
    expect(personFrom(info({ department: '', role: '', validFrom: from, photo: Buffer.from('x') }), '/tmp/p.jpg')).toEqual({
      id: '7', name: 'Ann', card: '123', phone: '555', validFrom: from, photoPath: '/tmp/p.jpg',
    })
  })

  it('differences compares only the fields the target protocol stores (httpv2 has no phone)', () => {
    const p = personFrom(info({ phone: '999' }))
    expect(differences(p, info(), openapiRules)).toEqual(['phone'])
    expect(differences(p, info(), httpv2Rules)).toEqual([])
    expect(differences({ ...p, name: 'Anne', photoPath: '/x.jpg' }, info({ hasPhoto: false }), httpv2Rules)).toEqual(['name', 'photo'])
    expect(differences({ ...p, photoPath: '/x.jpg' }, info({ phone: '999', hasPhoto: true }), openapiRules)).toEqual([])
    expect(differences({ ...p, validTo: new Date('2027-01-01T00:00:00Z') }, info({ phone: '999' }), openapiRules)).toEqual(['valid_to'])
  })

  it('checkPerson applies every target protocol, as people import does per row', () => {
    const problems: string[] = []
    checkPerson({ id: 'E7', name: 'V', card: 'A-1' }, [openapiRules, httpv2Rules], 400 * 1024, (f, m) => problems.push(`${f}: ${m}`))
    expect(problems.some((m) => /^id: .*httpv2/.test(m))).toBe(true)
    expect(problems.some((m) => /^card: .*httpv2/.test(m))).toBe(true)
    expect(problems.some((m) => /openapi/.test(m))).toBe(false)
    const none: string[] = []
    checkPerson({ id: '7', name: 'V', card: '1' }, [openapiRules, httpv2Rules], 400 * 1024, (f, m) => none.push(m))
    expect(none).toEqual([])
  })
})

describe('devices.csv tz column', () => {
  it('valid IANA zones are stored canonical; a bad one is a problem naming line and column', () => {
    const dir = mkdtempSync(join(tmpdir(), 'doorctl-tz-'))
    try {
      const good = join(dir, 'good.csv')
      writeFileSync(good, 'name,protocol,sn,tz\na,httpv2,FC-1,asia/tokyo\nb,httpv2,FC-2,\n')
      expect(readDevicesCsv(good).map((d) => [d.name, d.tz])).toEqual([['a', 'Asia/Tokyo'], ['b', undefined]])
      const bad = join(dir, 'bad.csv')
      writeFileSync(bad, 'name,protocol,sn,tz\na,httpv2,FC-1,Asia/Tokio\n')
      let err: { problems?: { line?: number; field?: string; message: string }[] } = {}
      try { readDevicesCsv(bad) } catch (e) { err = e as typeof err }
      expect(err.problems).toEqual([expect.objectContaining({ line: 2, field: 'tz', message: expect.stringMatching(/Asia\/Tokio.*IANA/) })])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

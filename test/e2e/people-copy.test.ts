import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'csv-parse/sync'
import { startOpenapiSimulator, type OpenapiSimulator } from '../../src/simulators/openapi/index.js'
import { createHttpv2Simulator, type Httpv2Simulator } from '../../src/simulators/httpv2/index.js'
import { FIXTURES, doorctl, freePort, tempDir } from '../helpers.js'

const face = readFileSync(join(FIXTURES, 'face.jpg'))
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex')

/** The five people the source holds (three with a photo), and one more that httpv2 cannot take (a letter in its id). */
const PEOPLE = 'id,name,card,phone,department,role,photo\n' +
  '101,张伟,5001,13800000001,Sales,user,face.jpg\n' +
  '102,Maria,5002,,Ops,admin,face.jpg\n' +
  '103,Lee,5003,,,user,\n' +
  '104,Olu,5004,,,user,face.jpg\n' +
  '105,Kim,,,,blacklist,\n' +
  'E7,Visitor,5007,,,user,\n'

describe('people copy across protocols (built binary, simulated devices on 127.0.0.1)', () => {
  const home = tempDir()
  const work = tempDir('doorctl-copy-')
  let src: OpenapiSimulator
  let dst: OpenapiSimulator
  let h2: Httpv2Simulator
  let listen: string[]
  const run = (args: string[]) => doorctl([...args, ...listen], { home: home.path })
  const plain = (args: string[]) => doorctl(args, { home: home.path })

  beforeAll(async () => {
    src = await startOpenapiSimulator({ port: 0, wsPort: 0 })
    dst = await startOpenapiSimulator({ port: 0, wsPort: 0 })
    const port = await freePort()
    listen = ['--http-port', String(port), '--udp-port', '0', '--mqtt-port', '0', '--bind', '127.0.0.1']
    h2 = createHttpv2Simulator({ server: `http://127.0.0.1:${port}`, sn: 'FC-8200H00000101', intervalMs: 100, requestTimeoutMs: 500, retryDelayMs: 100 })
    h2.start()
    for (const [name, sim] of [['src', src], ['dst', dst]] as const) {
      const r = await plain(['device', 'add', name, '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(sim.httpPort), '--ws-port', String(sim.wsPort)])
      expect(r.code, r.stderr).toBe(0)
    }
    const r = await plain(['device', 'add', 'h2', '--protocol', 'httpv2', '--sn', 'FC-8200H00000101', '--tag', 'new'])
    expect(r.code, r.stderr).toBe(0)
    writeFileSync(join(work.path, 'face.jpg'), face)
    writeFileSync(join(work.path, 'people.csv'), PEOPLE)
    const imp = await run(['people', 'import', join(work.path, 'people.csv'), 'src', '--json'])
    expect(imp.code, imp.stdout + imp.stderr).toBe(0)
    expect(src.users().size).toBe(6)
  }, 120_000)
  afterAll(async () => {
    await h2?.stop()
    await src?.close()
    await dst?.close()
    home.cleanup()
    work.cleanup()
  }, 120_000)

  it('a person one target cannot take: exit 2 naming them, nothing sent to any target', async () => {
    const requests = dst.requestCount
    const r = await run(['people', 'copy', 'src', 'dst', 'h2', '--json', '--timeout', '20s'])
    expect(r.code, r.stdout + r.stderr).toBe(2)
    const problems = r.json().error.problems as { field: string; message: string }[]
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatchObject({ field: 'id' })
    expect(problems[0].message).toMatch(/person E7: .*httpv2/)
    expect(dst.requestCount).toBe(requests)
    expect(dst.users().size).toBe(0)
    expect(h2.people().size).toBe(0)
    expect(h2.events.peoplePushes).toBe(0)
  }, 120_000)

  it('bad usage: unknown --id, no target but the source, a bad report path: exit 2, nothing sent', async () => {
    const [unknown, self, badReport] = await Promise.all([
      run(['people', 'copy', 'src', 'dst', '--id', '999', '--json']),
      run(['people', 'copy', 'src', 'src', '--json']),
      run(['people', 'copy', 'src', 'dst', '--id', '101', '--report', join(work.path, 'people.csv', 'r.csv'), '--json']),
    ])
    expect(unknown.code, unknown.stdout).toBe(2)
    expect(unknown.json().error.message).toMatch(/no person with id 999/)
    expect(self.code, self.stdout).toBe(2)
    expect(badReport.code, badReport.stdout).toBe(2)
    expect(dst.users().size).toBe(0)
  }, 120_000)

  const five = ['--id', '101', '--id', '102', '--id', '103', '--id', '104', '--id', '105']

  it('--dry-run reads the targets and says every one would be added, sending nothing', async () => {
    const report = join(work.path, 'dry.csv')
    const r = await run(['people', 'copy', 'src', 'dst', '--tag', 'new', ...five, '--dry-run', '--report', report, '--json', '--timeout', '20s'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const doc = r.json()
    expect(doc).toMatchObject({ ok: true, dry_run: true, people: 5, photos: 3 })
    for (const t of doc.results) {
      expect([...t.plan.added].sort()).toEqual(['101', '102', '103', '104', '105'])
      expect(t.plan).toMatchObject({ updated: [], unchanged: [] })
    }
    const rows = parse(readFileSync(report), { columns: true }) as Record<string, string>[]
    expect(rows).toHaveLength(10)
    expect(new Set(rows.map((x) => x.message))).toEqual(new Set(['would be added']))
    expect(dst.users().size).toBe(0)
    expect(h2.people().size).toBe(0)
  }, 120_000)

  it('openapi (5 people, 3 photos) → openapi + httpv2: ids, names, cards and photos arrive; one report row per person per target', async () => {
    const report = join(work.path, 'copy.csv')
    const r = await run(['people', 'copy', 'src', 'dst', 'h2', ...five, '--report', report, '--json', '--timeout', '30s'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json()).toMatchObject({ ok: true, source: 'src', people: 5, photos: 3, without_photo: 0 })

    const onDst = dst.users()
    expect([...onDst.keys()].sort()).toEqual(['101', '102', '103', '104', '105'])
    expect(onDst.get('101')).toMatchObject({ name: '张伟', icNumber: '5001', mobile: '13800000001', department: 'Sales' })
    expect(onDst.get('105')).toMatchObject({ name: 'Kim', userType: 3 })
    const photos = [...onDst.values()].filter((u) => typeof u.photo === 'string' && u.photo !== '')
    expect(photos.map((u) => u.userId).sort()).toEqual(['101', '102', '104'])
    for (const u of photos) expect(Buffer.from(String(u.photo), 'base64').equals(face)).toBe(true)

    const onH2 = h2.people()
    expect([...onH2.keys()].sort()).toEqual(['101', '102', '103', '104', '105'])
    expect(onH2.get('101')).toMatchObject({ Name: '张伟', CardNum: '5001' })
    expect(onH2.get('103')).toMatchObject({ Name: 'Lee', CardNum: '5003' })
    const h2Photos = [...onH2.entries()].filter(([, d]) => d.PhotoMD5).map(([id, d]) => [id, String(d.PhotoMD5).toLowerCase()])
    expect(h2Photos.sort()).toEqual([['101', md5(face)], ['102', md5(face)], ['104', md5(face)]])

    const rows = parse(readFileSync(report), { columns: true }) as Record<string, string>[]
    expect(rows.map((x) => `${x.device}:${x.id}:${x.status}`).sort()).toEqual(
      ['dst', 'h2'].flatMap((d) => ['101', '102', '103', '104', '105'].map((id) => `${d}:${id}:ok`)).sort(),
    )
  }, 120_000)

  it('--dry-run after the copy: unchanged, and a change on the source shows as an update', async () => {
    writeFileSync(join(work.path, 'rename.csv'), 'id,name,card\n103,Lee Min,5003\n')
    const imp = await run(['people', 'import', join(work.path, 'rename.csv'), 'src', '--json'])
    expect(imp.code, imp.stdout + imp.stderr).toBe(0)
    const r = await run(['people', 'copy', 'src', 'dst', 'h2', ...five, '--dry-run', '--json', '--timeout', '20s'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    for (const t of r.json().results) {
      expect(t.plan.added).toEqual([])
      expect(t.plan.updated, JSON.stringify(t)).toEqual(['103'])
      expect([...t.plan.unchanged].sort()).toEqual(['101', '102', '104', '105'])
    }
    expect(dst.users().get('103')).toMatchObject({ name: 'Lee' })
  }, 120_000)

  it('httpv2 → openapi: httpv2 lists only say who has a face, so those people are copied without it, and the report says so', async () => {
    const report = join(work.path, 'from-h2.csv')
    const r = await run(['people', 'copy', 'h2', 'dst', '--id', '101', '--id', '103', '--report', report, '--json', '--timeout', '30s'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json()).toMatchObject({ ok: true, source: 'h2', people: 2, photos: 0, without_photo: 1 })
    const rows = parse(readFileSync(report), { columns: true }) as Record<string, string>[]
    expect(rows.find((x) => x.id === '101')).toMatchObject({ device: 'dst', status: 'ok', message: expect.stringMatching(/photo not copied: httpv2 people lists do not carry photos/) })
    expect(rows.find((x) => x.id === '103')?.message).not.toMatch(/photo/)
    expect(dst.users().get('101')).toMatchObject({ name: '张伟', icNumber: '5001' })
  }, 120_000)
})

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import { chmodSync, chownSync, copyFileSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startOpenapiSimulator, type OpenapiSimulator } from '../../src/simulators/openapi/index.js'
import { FIXTURES, binFor, doorctl, removeStagedBins, tempDir, type RunAs } from '../helpers.js'

/**
 * Every file or folder a user names, tried with what goes wrong in the field: missing, a folder
 * for a file (or a file for a folder), unreadable, empty, binary, a symlink loop; and every file
 * doorctl writes, with a path that cannot be written. Each → exit 2, one line on stderr (one
 * JSON document with --json), no stack trace, and not one request to the simulated device.
 *
 * Permission cases need an unprivileged user: root reads mode-000 files. When the tests run as
 * root (as here and in CI), every doorctl child runs as `nobody` (uid 65534) with a
 * DOORCTL_HOME that user owns.
 */
const as: RunAs | undefined = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined

const home = tempDir('doorctl-inputs-home-')
const work = tempDir('doorctl-inputs-')
const at = (name: string) => join(work.path, name)
const run = (args: string[]) => doorctl(args, { home: home.path, as })

let sim: OpenapiSimulator

beforeAll(async () => {
  if (as) chownSync(home.path, as.uid, as.gid)
  chmodSync(work.path, 0o755)
  copyFileSync(join(FIXTURES, 'face.jpg'), at('face.jpg'))
  mkdirSync(at('a-folder'))
  writeFileSync(at('a-file'), 'just a file\n')
  writeFileSync(at('unreadable.csv'), 'id,name\n1,Ann\n', { mode: 0o000 })
  copyFileSync(join(FIXTURES, 'face.jpg'), at('unreadable.jpg'))
  chmodSync(at('unreadable.jpg'), 0o000)
  writeFileSync(at('empty.csv'), '')
  writeFileSync(at('empty.jpg'), '')
  copyFileSync(join(FIXTURES, 'face.jpg'), at('binary.csv'))
  writeFileSync(at('text.jpg'), 'a text file, not a photo\n')
  symlinkSync('loop', at('loop'))
  mkdirSync(at('unreadable-folder'), { mode: 0o000 })
  mkdirSync(at('empty-folder'))
  mkdirSync(at('read-only-folder'), { mode: 0o555 })
  mkdirSync(at('faces'))
  copyFileSync(join(FIXTURES, 'face.jpg'), at('faces/1001.jpg'))
  writeFileSync(at('people.csv'), 'id,name,photo\n1001,Ann,face.jpg\n')
  for (const photo of ['unreadable.jpg', 'a-folder', 'loop', 'empty.jpg']) writeFileSync(at(`row-${photo}.csv`), `id,name,photo\n1001,Ann,${photo}\n`)

  sim = await startOpenapiSimulator({ port: 0, wsPort: 0 })
  const added = await run(['device', 'add', 'door-1', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(sim.httpPort), '--ws-port', String(sim.wsPort), '--json'])
  expect(added.code, added.stderr).toBe(0)
})

afterAll(async () => {
  await sim?.close()
  for (const d of ['unreadable-folder', 'read-only-folder']) chmodSync(at(d), 0o755)
  home.cleanup()
  work.cleanup()
  removeStagedBins()
})

interface Case {
  name: string
  args: () => string[]
  /** The reason the one error line gives. */
  says: RegExp
}

/** The six ways a file to read goes wrong, for a command that reads `path`. */
function badFiles(what: string, args: (path: string) => string[], binary = 'binary.csv', binarySays = /not a text file/): Case[] {
  return [
    { name: `${what}: missing`, args: () => args(at('missing.csv')), says: /no such file/ },
    { name: `${what}: a folder`, args: () => args(at('a-folder')), says: /is a folder, not a file/ },
    { name: `${what}: unreadable (mode 000)`, args: () => args(at('unreadable.csv')), says: /permission denied/ },
    { name: `${what}: empty`, args: () => args(at('empty.csv')), says: /the file is empty/ },
    { name: `${what}: binary`, args: () => args(at(binary)), says: binarySays },
    { name: `${what}: a symlink loop`, args: () => args(at('loop')), says: /symbolic link loop/ },
  ]
}

/** The ways a folder to read goes wrong. */
function badFolders(what: string, args: (path: string) => string[], emptySays: RegExp): Case[] {
  return [
    { name: `${what}: missing`, args: () => args(at('missing-folder')), says: /no such folder/ },
    { name: `${what}: a file`, args: () => args(at('a-file')), says: /not a folder/ },
    { name: `${what}: unreadable (mode 000)`, args: () => args(at('unreadable-folder')), says: /permission denied/ },
    { name: `${what}: empty`, args: () => args(at('empty-folder')), says: emptySays },
    { name: `${what}: a symlink loop`, args: () => args(at('loop')), says: /symbolic link loop/ },
  ]
}

/** The ways a file to write goes wrong: a folder, a path under a file, an unwritable folder, a loop. */
function badOutputs(what: string, args: (path: string) => string[], folderOk = false): Case[] {
  return [
    ...(folderOk ? [] : [{ name: `${what}: a folder`, args: () => args(at('a-folder')), says: /is a folder/ }]),
    { name: `${what}: under a regular file`, args: () => args(at('a-file/out/x.jpg')), says: /a part of the path is a file/ },
    { name: `${what}: in an unwritable folder`, args: () => args(at('read-only-folder/x.jpg')), says: /permission denied/ },
    { name: `${what}: a symlink loop`, args: () => args(at('loop')), says: /symbolic link loop/ },
  ]
}

const serveArgs = ['--http-port', '0', '--udp-port', '0', '--mqtt-port', '0', '--bind', '127.0.0.1']

const cases: Case[] = [
  ...badFiles('people import FILE.csv', (p) => ['people', 'import', p, 'door-1']),
  ...badFiles('device import FILE.csv', (p) => ['device', 'import', p]),
  ...badFiles('people delete --from', (p) => ['people', 'delete', 'door-1', '--from', p]),
  ...badFiles('serve --authorize', (p) => ['serve', '--authorize', p, ...serveArgs]),
  ...badFiles('face enroll --photo', (p) => ['face', 'enroll', 'door-1', '--id', '1001', '--photo', p], 'text.jpg', /not a JPEG/).map((c) =>
    c.name.endsWith('unreadable (mode 000)') ? { ...c, args: () => ['face', 'enroll', 'door-1', '--id', '1001', '--photo', at('unreadable.jpg')] }
    : c.name.endsWith('empty') ? { ...c, args: () => ['face', 'enroll', 'door-1', '--id', '1001', '--photo', at('empty.jpg')] }
    : c,
  ),
  ...badFolders('face enroll --dir', (p) => ['face', 'enroll', 'door-1', '--dir', p], /no \.jpg files/),
  ...badFolders('people import --photos-dir', (p) => ['people', 'import', at('people.csv'), 'door-1', '--photos-dir', p], /face\.jpg: no such file/),
  { name: 'a photo in the CSV: unreadable', args: () => ['people', 'import', at('row-unreadable.jpg.csv'), 'door-1'], says: /unreadable\.jpg: permission denied/ },
  { name: 'a photo in the CSV: a folder', args: () => ['people', 'import', at('row-a-folder.csv'), 'door-1'], says: /a-folder: is a folder/ },
  { name: 'a photo in the CSV: a symlink loop', args: () => ['people', 'import', at('row-loop.csv'), 'door-1'], says: /loop: a symbolic link loop/ },
  { name: 'a photo in the CSV: empty', args: () => ['people', 'import', at('row-empty.jpg.csv'), 'door-1'], says: /empty\.jpg: the file is empty/ },
  ...badOutputs('people import --report', (p) => ['people', 'import', at('people.csv'), 'door-1', '--report', p]),
  ...badOutputs('people delete --report', (p) => ['people', 'delete', 'door-1', '--id', '1001', '--report', p]),
  ...badOutputs('face enroll --report', (p) => ['face', 'enroll', 'door-1', '--dir', at('faces'), '--report', p]),
  ...badOutputs('records pull --output', (p) => ['records', 'pull', 'door-1', '--output', p]),
  ...badOutputs('records pull --photos', (p) => ['records', 'pull', 'door-1', '--output', at('records.csv'), '--photos', p.replace(/x\.jpg$/, 'photos')], true),
  { name: 'records pull --photos: a file', args: () => ['records', 'pull', 'door-1', '--output', at('records.csv'), '--photos', at('a-file')], says: /not a folder/ },
  ...badOutputs('device snapshot --output', (p) => ['device', 'snapshot', 'door-1', '--output', p], true),
  ...badOutputs('serve --log-file', (p) => ['serve', '--log-file', p, ...serveArgs]),
]

describe('every file input fails cleanly: exit 2, one line, nothing sent', () => {
  // --json for every case (one document, exit 2, a one-line message and no suggestion line: what a
  // human sees is exactly that one line); the human rendering itself for a few cases below
  it.each(cases)('$name', async ({ args, says }) => {
    const before = sim.requestCount
    const r = await run([...args(), '--json'])
    expect(r.code, r.stderr).toBe(2)
    const doc = r.json()
    expect(doc.ok).toBe(false)
    expect(doc.error.message).toMatch(says)
    expect(doc.error.message).not.toContain('\n')
    expect(doc.error.suggestion).toBeUndefined()
    expect(r.stderr).toBe('')
    expect(sim.requestCount).toBe(before)
  })

  it.each([
    'people import FILE.csv: a folder',
    'serve --authorize: binary',
    'face enroll --dir: unreadable (mode 000)',
    'a photo in the CSV: unreadable',
    'people import --report: a folder',
    'records pull --output: in an unwritable folder',
    'serve --log-file: a symlink loop',
  ])('%s, without --json: one line on stderr, no stack trace', async (name) => {
    const { args, says } = cases.find((c) => c.name === name)!
    const before = sim.requestCount
    const r = await run(args())
    expect(r.code, r.stderr).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr.trimEnd().split('\n'), r.stderr).toEqual([expect.stringMatching(/^Error: /)])
    expect(r.stderr).toMatch(says)
    expect(sim.requestCount).toBe(before)
  })

  it('saved nothing: the inventory still holds one device, no temp or output file was left', async () => {
    const list = await run(['device', 'list', '--json'])
    expect(list.json().devices.map((d: { name: string }) => d.name)).toEqual(['door-1'])
    expect(readdirSync(work.path).filter((n) => n.includes('.tmp-') || n === 'records.csv' || n === 'x.jpg')).toEqual([])
    expect(readdirSync(at('a-folder'))).toEqual([])
  })
})

describe('a pipe is a valid input', () => {
  const bash = (script: string) => doorctl(['-c', script], { home: home.path, as, command: 'bash' })
  const doorctlCmd = `'${process.execPath}' '${binFor(as)}'`

  it('people import <(make-csv) reads the stream (a /dev/fd path)', async () => {
    const r = await bash(`exec ${doorctlCmd} people import <(printf 'id,name\\n7001,Pipe Person\\n7002,Second Person\\n') door-1 --json`)
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json().people).toBe(2)
    expect(sim.users().get('7001')).toBeTruthy()
    expect(sim.users().get('7002')).toBeTruthy()
  })

  it('people import FIFO reads the stream, photos relative to the current folder', async () => {
    const fifo = at('people.fifo')
    execFileSync('mkfifo', ['-m', '0644', fifo])
    const running = doorctl(['people', 'import', fifo, 'door-1', '--json'], { home: home.path, as, cwd: work.path })
    await writeFile(fifo, 'id,name,photo\n7003,Fifo Person,face.jpg\n')
    const r = await running
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(sim.users().get('7003')).toBeTruthy()
  })

  it('an invalid piped CSV is refused with its line numbers, nothing sent', async () => {
    const before = sim.requestCount
    const r = await bash(`exec ${doorctlCmd} people import <(printf 'id,name\\n7004,A\\n7004,B\\n') door-1 --json`)
    expect(r.code).toBe(2)
    expect(r.json().error.problems).toEqual([expect.objectContaining({ line: 3, field: 'id' })])
    expect(sim.requestCount).toBe(before)
  })

  it('an empty pipe is an empty file', async () => {
    const r = await bash(`exec ${doorctlCmd} people import <(true) door-1 --json`)
    expect(r.code).toBe(2)
    expect(r.json().error.message).toMatch(/the file is empty/)
  })

  it('people delete --from <(…) and device import <(…) read the stream too', async () => {
    const del = await bash(`exec ${doorctlCmd} people delete door-1 --from <(printf 'id\\n7001\\n7002\\n7003\\n') --json`)
    expect(del.code, del.stdout + del.stderr).toBe(0)
    expect(['7001', '7002', '7003'].filter((id) => sim.users().has(id))).toEqual([])
    const imp = await bash(`exec ${doorctlCmd} device import <(printf 'name,protocol,sn\\npiped-door,httpv2,FC-PIPE0001\\n') --json`)
    expect(imp.code, imp.stdout + imp.stderr).toBe(0)
    expect(imp.json().added).toEqual(['piped-door'])
    expect((await run(['device', 'remove', 'piped-door', '--json'])).code).toBe(0)
  })
})

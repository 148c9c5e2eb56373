import { afterAll, describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import { closeSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { text } from 'node:stream/consumers'
import { InputError, UsageError } from '../../src/types/errors.js'
import { readIdList } from '../../src/util/id-list.js'
import { checkJpeg, fsReason, openOutputTemp, openTextInput, prepareOutputDir, prepareOutputFile, readInputDir, readTextInput } from '../../src/util/user-paths.js'
import { FIXTURES, tempDir } from '../helpers.js'

describe('user paths: one way to check what the user names', () => {
  const dir = tempDir()
  const at = (name: string) => join(dir.path, name)
  writeFileSync(at('ok.csv'), 'id,name\n1,Ann\n')
  writeFileSync(at('gbk.csv'), Buffer.from([0x69, 0x64, 0x0a, 0xd5, 0xc5, 0xce, 0xb0, 0x0a]))
  writeFileSync(at('utf16.csv'), Buffer.from('\ufeffid\n1\n', 'utf16le'))
  writeFileSync(at('a-file'), 'x')
  mkdirSync(at('folder'))
  symlinkSync('loop', at('loop'))
  afterAll(() => dir.cleanup())

  it('names the reason in words, not errno codes', () => {
    expect(fsReason(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe('no such file')
    expect(fsReason(Object.assign(new Error('x'), { code: 'ENOENT' }), 'folder')).toBe('no such folder')
    expect(fsReason(Object.assign(new Error('x'), { code: 'ELOOP' }))).toBe('a symbolic link loop')
    expect(fsReason(Object.assign(new Error('x'), { code: 'EWEIRD' }))).toBe('EWEIRD')
  })

  it('text inputs: refuses what is not UTF-8 text, with the flag and the path in one line', () => {
    expect(readTextInput(at('ok.csv'))).toBe('id,name\n1,Ann\n')
    const gbk = (() => { try { readTextInput(at('gbk.csv'), '--from') } catch (e) { return e } })() as InputError
    expect(gbk).toBeInstanceOf(InputError)
    expect(gbk.message).toBe(`--from ${at('gbk.csv')}: not UTF-8 text; save it as CSV UTF-8 (nothing was sent or saved)`)
    expect(gbk.problems).toEqual([{ file: at('gbk.csv'), flag: '--from', message: 'not UTF-8 text; save it as CSV UTF-8' }])
    expect(() => readTextInput(at('utf16.csv'))).toThrow(/binary data/)
    expect(() => readTextInput(at('folder'))).toThrow(/is a folder, not a file/)
    expect(() => readTextInput(at('loop'))).toThrow(/symbolic link loop/)
    expect(() => readTextInput(at('a-file/below'))).toThrow(/a part of the path is a file/)
  })

  it('a piped input is read once and can be opened again (two validation passes)', async () => {
    const file = await openTextInput(at('ok.csv'))
    expect(file.piped).toBe(false)
    expect(await text(file.open())).toBe('id,name\n1,Ann\n')
    execFileSync('mkfifo', [at('fifo')])
    const [piped] = await Promise.all([openTextInput(at('fifo')), writeFile(at('fifo'), 'id\n42\n')])
    expect(piped.piped).toBe(true)
    expect(await text(piped.open())).toBe('id\n42\n')
    expect(await text(piped.open())).toBe('id\n42\n')
    // /dev/null is a character device: read as a stream, and empty
    await expect(openTextInput('/dev/null')).rejects.toThrow(/the file is empty/)
  })

  it('folders to read: must exist, be folders, be listable', () => {
    expect(readInputDir(dir.path, '--dir')).toContain('ok.csv')
    expect(() => readInputDir(at('a-file'), '--dir')).toThrow(/--dir .*a-file: not a folder/)
    expect(() => readInputDir(at('nope'), '--dir')).toThrow(/no such folder/)
  })

  it('photos: a reason for each way a photo is unusable', () => {
    const face = join(FIXTURES, 'face.jpg')
    expect(checkJpeg(face, 400 * 1024)).toBeUndefined()
    expect(checkJpeg(face, 10)).toMatch(/larger than/)
    expect(checkJpeg(at('ok.csv'), 400 * 1024)).toBe('not a JPEG image')
    expect(checkJpeg(at('folder'), 400 * 1024)).toBe('is a folder, not a file')
    expect(checkJpeg(at('loop'), 400 * 1024)).toBe('a symbolic link loop')
    expect(checkJpeg(at('missing.jpg'), 400 * 1024)).toBe('no such file')
    expect(checkJpeg('/dev/null', 400 * 1024)).toBe('not a regular file')
  })

  it('outputs: created folders, refused folders, devices and paths under files (usage errors, exit 2)', () => {
    expect(prepareOutputFile(at('new/deeper/out.csv'), '--output')).toBe(at('new/deeper/out.csv'))
    expect(() => prepareOutputFile(at('folder'), '--report')).toThrow(UsageError)
    expect(() => prepareOutputFile(at('folder'), '--report')).toThrow(`--report ${at('folder')}: is a folder; name a file in it; nothing was sent`)
    expect(() => prepareOutputFile(at('a-file/x.csv'), '--report')).toThrow(/a part of the path is a file/)
    expect(() => prepareOutputFile(at('a-file/sub/x.csv'), '--report')).toThrow(/a part of the path is a file/)
    // an atomic output replaces its target: never /dev/null; an appended log may go there
    expect(() => prepareOutputFile('/dev/null', '--output')).toThrow(/not a regular file/)
    expect(prepareOutputFile('/dev/null', '--log-file', { append: true })).toBe('/dev/null')
    expect(prepareOutputDir(at('photos/today'), '--photos')).toBe(at('photos/today'))
    expect(() => prepareOutputDir(at('a-file'), '--photos')).toThrow(/not a folder/)
    const { target, temp, fd } = openOutputTemp(at('report.csv'), '--report')
    expect(target).toBe(at('report.csv'))
    expect(temp.startsWith(at('.report.csv.tmp-'))).toBe(true)
    expect(fd).toBeGreaterThan(2)
    closeSync(fd)
  })

  it('id lists: the id column, distinct, in file order; a header-only list only where allowed', () => {
    writeFileSync(at('ids.csv'), '\ufeffName,ID\nAnn,7\nBob,8\nAnn again,7\n')
    expect(readIdList(at('ids.csv'), '--from')).toEqual(['7', '8'])
    writeFileSync(at('header.csv'), 'id\n')
    expect(() => readIdList(at('header.csv'), '--from')).toThrow(/only a header row/)
    expect(readIdList(at('header.csv'), '--authorize', { allowNone: true })).toEqual([])
    writeFileSync(at('noid.csv'), 'name\nAnn\n')
    expect(() => readIdList(at('noid.csv'), '--authorize', { allowNone: true })).toThrow(/no "id" column/)
    writeFileSync(at('blank.csv'), 'id,name\n7,Ann\n,Bob\n')
    const err = (() => { try { readIdList(at('blank.csv'), '--from') } catch (e) { return e } })() as InputError
    expect(err.problems).toEqual([{ file: at('blank.csv'), flag: '--from', line: 3, field: 'id', message: 'id is empty' }])
  })
})

/**
 * The files and folders a user names on the command line (a CSV, `--from`, `--photo`, `--dir`,
 * `--report`, `--output`, …), checked one way before anything is sent to a device: a path that
 * cannot be used is an exit-2 error naming the path and why, in one line.
 */
import { accessSync, closeSync, constants, createReadStream, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, type Stats } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { Readable } from 'node:stream'
import { tempPathFor } from './atomic-file.js'
import { InputError, UsageError } from '../types/errors.js'

const REASONS: Record<string, string> = {
  ENOENT: 'no such file',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EEXIST: 'a part of the path is a file, not a folder',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ELOOP: 'a symbolic link loop',
  EISDIR: 'is a folder, not a file',
  ENAMETOOLONG: 'the name is too long',
  EROFS: 'the file system is read-only',
}

/** Why a file operation failed, in words (`ENOENT` → "no such file"); the code itself when unknown. */
export function fsReason(err: unknown, what: 'file' | 'folder' = 'file'): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code === 'ENOENT') return `no such ${what}`
  if (code !== undefined && code in REASONS) return REASONS[code]
  return code ?? String(err)
}

/** The first bytes are enough to tell a text file from a photo or an archive given by mistake. */
const HEAD_BYTES = 64 * 1024

/** A text input (CSV) that can be read again and again; a pipe was read into memory once. */
export interface TextInput {
  /** The path as the user gave it. */
  readonly path: string
  /** A pipe (`<(make-csv)`, a FIFO, /dev/stdin): its content came from a stream, not a file on disk. */
  readonly piped: boolean
  /** A fresh stream of the whole content. */
  open(): Readable
}

/** Opens a text (CSV) input: a readable regular file or a pipe, not empty, UTF-8 text. */
export async function openTextInput(path: string, flag?: string): Promise<TextInput> {
  if (isRegularInput(path, flag)) {
    checkText(readHead(path, flag), path, flag)
    return { path, piped: false, open: () => createReadStream(path) }
  }
  const data = await readFile(path).catch((err: unknown) => {
    throw inputProblem(path, flag, fsReason(err))
  })
  checkText(data.subarray(0, HEAD_BYTES), path, flag)
  return { path, piped: true, open: () => Readable.from([data]) }
}

/** Reads a whole small text input (devices.csv, an id list) synchronously, with the checks of openTextInput. */
export function readTextInput(path: string, flag?: string): string {
  isRegularInput(path, flag)
  let data: Buffer
  try {
    data = readFileSync(path)
  } catch (err) {
    throw inputProblem(path, flag, fsReason(err))
  }
  checkText(data.subarray(0, HEAD_BYTES), path, flag)
  return data.toString('utf8')
}

/** The entries of a folder the user named (`--dir`, `--photos-dir`): it exists, is a folder, can be listed. */
export function readInputDir(path: string, flag: string): string[] {
  const st = statInput(path, flag, 'folder')
  if (!st.isDirectory()) throw inputProblem(path, flag, 'not a folder')
  try {
    return readdirSync(path)
  } catch (err) {
    throw inputProblem(path, flag, fsReason(err, 'folder'))
  }
}

/** Why a photo file is unusable (a plain reason), or undefined if it is a JPEG within the size limit. */
export function checkJpeg(path: string, maxBytes: number): string | undefined {
  let st: Stats
  try {
    st = statSync(path)
  } catch (err) {
    return fsReason(err)
  }
  if (st.isDirectory()) return 'is a folder, not a file'
  if (!st.isFile()) return 'not a regular file'
  if (st.size === 0) return 'the file is empty'
  if (st.size > maxBytes) return `${Math.ceil(st.size / 1024)} KB is larger than the ${Math.floor(maxBytes / 1024)} KB the devices accept`
  let head: Buffer
  try {
    head = readHeadOf(path, 3)
  } catch (err) {
    return fsReason(err)
  }
  if (head[0] !== 0xff || head[1] !== 0xd8 || head[2] !== 0xff) return 'not a JPEG image'
  return undefined
}

/**
 * A file doorctl will write (`--report`, `--output`, `--log-file`), checked before anything is
 * sent: not a folder, its folder exists (created if missing) and is writable. Atomic outputs
 * (temp file + rename) must be regular files; `append` also takes a pipe or device. Returns the
 * absolute path.
 */
export function prepareOutputFile(path: string, flag: string, opts: { append?: boolean } = {}): string {
  const target = resolve(path)
  let st: Stats | undefined
  try {
    st = statSync(target)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw outputProblem(path, flag, fsReason(err))
  }
  if (st?.isDirectory()) throw outputProblem(path, flag, 'is a folder; name a file in it')
  if (st && !st.isFile() && !opts.append) throw outputProblem(path, flag, 'not a regular file (it is replaced when complete)')
  writableFolder(dirname(target), path, flag)
  if (st && opts.append) {
    try {
      accessSync(target, constants.W_OK)
    } catch (err) {
      throw outputProblem(path, flag, fsReason(err))
    }
  }
  return target
}

/** prepareOutputFile, then a temp file opened beside it, to be renamed over it when complete. */
export function openOutputTemp(path: string, flag: string): { target: string; temp: string; fd: number } {
  const target = prepareOutputFile(path, flag)
  const temp = tempPathFor(target)
  try {
    return { target, temp, fd: openSync(temp, 'w', 0o644) }
  } catch (err) {
    throw outputProblem(path, flag, fsReason(err))
  }
}

/** A folder doorctl will write files into (`--photos`, `--output DIR/`): created if missing, writable. */
export function prepareOutputDir(path: string, flag: string): string {
  const target = resolve(path)
  try {
    if (!statSync(target).isDirectory()) throw outputProblem(path, flag, 'not a folder')
  } catch (err) {
    if (err instanceof UsageError) throw err
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw outputProblem(path, flag, fsReason(err, 'folder'))
  }
  writableFolder(target, path, flag)
  return target
}

function writableFolder(dir: string, path: string, flag: string): void {
  try {
    mkdirSync(dir, { recursive: true })
  } catch (err) {
    throw outputProblem(path, flag, `cannot create the folder ${dir}: ${fsReason(err, 'folder')}`)
  }
  try {
    accessSync(dir, constants.W_OK | constants.X_OK)
  } catch (err) {
    throw outputProblem(path, flag, dir === resolve(path) ? fsReason(err, 'folder') : `the folder ${dir}: ${fsReason(err, 'folder')}`)
  }
}

function statInput(path: string, flag: string | undefined, what: 'file' | 'folder'): Stats {
  try {
    return statSync(path)
  } catch (err) {
    throw inputProblem(path, flag, fsReason(err, what))
  }
}

/** True for a regular file, false for a pipe or character device (read once, as a stream); refuses the rest. */
function isRegularInput(path: string, flag: string | undefined): boolean {
  const st = statInput(path, flag, 'file')
  if (st.isDirectory()) throw inputProblem(path, flag, 'is a folder, not a file')
  if (st.isFile()) return true
  if (st.isFIFO() || st.isCharacterDevice()) return false
  throw inputProblem(path, flag, 'not a regular file or a pipe')
}

function readHead(path: string, flag: string | undefined): Buffer {
  try {
    return readHeadOf(path, HEAD_BYTES)
  } catch (err) {
    throw inputProblem(path, flag, fsReason(err))
  }
}

function readHeadOf(path: string, bytes: number): Buffer {
  const fd = openSync(path, 'r')
  try {
    const buf = Buffer.alloc(bytes)
    return buf.subarray(0, readSync(fd, buf, 0, bytes, 0))
  } finally {
    closeSync(fd)
  }
}

/** Refuses an empty input, and one that is not UTF-8 text (a photo, a spreadsheet, UTF-16 or GBK text). */
function checkText(head: Buffer, path: string, flag: string | undefined): void {
  if (head.length === 0) throw inputProblem(path, flag, 'the file is empty')
  if (head.includes(0)) throw inputProblem(path, flag, 'not a text file (it holds binary data); save it as CSV UTF-8')
  try {
    // stream: a multi-byte character cut at the end of the head is not an error
    new TextDecoder('utf-8', { fatal: true }).decode(head, { stream: true })
  } catch {
    throw inputProblem(path, flag, 'not UTF-8 text; save it as CSV UTF-8')
  }
}

function inputProblem(path: string, flag: string | undefined, message: string): InputError {
  return new InputError([flag ? { file: path, flag, message } : { file: path, message }])
}

function outputProblem(path: string, flag: string, message: string): UsageError {
  return new UsageError(`${flag} ${path}: ${message}; nothing was sent`)
}

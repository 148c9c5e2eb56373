import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { open, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'

/** A unique temp path beside `target`, so the final rename stays on one filesystem. */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`)
}

/** fsync a directory so a rename inside it survives a power cut (no-op where unsupported). */
export function fsyncDir(dir: string): void {
  let fd: number | undefined
  try {
    fd = openSync(dir, 'r')
    fsyncSync(fd)
  } catch {
    // some platforms/filesystems cannot fsync a directory; the rename is still atomic
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** Durable state: write temp file, fsync, rename over the target, fsync the directory. */
export function writeFileAtomicSync(target: string, data: string | Buffer, mode = 0o600): void {
  const tmp = tempPathFor(target)
  const fd = openSync(tmp, 'w', mode)
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data
    let off = 0
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off)
    fsyncSync(fd)
  } catch (err) {
    closeSync(fd)
    try { unlinkSync(tmp) } catch { /* already gone */ }
    throw err
  }
  closeSync(fd)
  renameSync(tmp, target)
  fsyncDir(dirname(target))
}

export async function writeFileAtomic(target: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const tmp = tempPathFor(target)
  const fh = await open(tmp, 'w', mode)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } catch (err) {
    await fh.close()
    await unlink(tmp).catch(() => {})
    throw err
  }
  await fh.close()
  await rename(tmp, target)
  fsyncDir(dirname(target))
}

import { chmodSync, closeSync, fsyncSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fsyncDir, tempPathFor } from '../util/atomic-file.js'

/**
 * A secret kept in DOORCTL_HOME (mode 0600), made by `make` the first time it is asked for.
 * Created atomically and exclusively: two processes starting at once end up with the same one
 * (the second one's link fails and it reads the first one's file).
 */
export function loadOrCreateSecret(home: string, name: string, make: () => string): string {
  const file = join(home, name)
  try {
    const text = readFileSync(file, 'utf8').trim()
    // a copy brought from another gateway may have come with looser rights
    chmodSync(file, 0o600)
    return text
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const tmp = tempPathFor(file)
  const fd = openSync(tmp, 'wx', 0o600)
  try {
    writeSync(fd, `${make()}\n`)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  try {
    linkSync(tmp, file)
    fsyncDir(dirname(file))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  } finally {
    unlinkSync(tmp)
  }
  return readFileSync(file, 'utf8').trim()
}

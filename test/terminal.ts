import { spawn, spawnSync } from 'node:child_process'
import { BIN, ROOT, until } from './helpers.js'

const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>78]|\r/g
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

/** util-linux `script` (Debian: bsdutils, essential) gives the tests a pseudo-terminal. */
export const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0
if (!hasScript) console.warn('terminal tests: `script` (util-linux) is not installed, so the tests driven through a pseudo-terminal are skipped; install bsdutils/util-linux to run them')

export const KEY = { enter: '\r', down: '\x1b[B', up: '\x1b[A', space: ' ', ctrlC: '\x03' } as const

/**
 * Runs the built `doorctl` in a pseudo-terminal (util-linux `script`), so stdin, stdout and stderr
 * are a TTY as for a human: `expect` waits for text on the screen, `type` sends keys.
 */
export function terminal(args: string[], opts: { home: string; env?: Record<string, string> }) {
  const command = [process.execPath, BIN, ...args].map(quote).join(' ')
  const child = spawn('script', ['-qfec', command, '/dev/null'], {
    cwd: ROOT,
    env: { ...process.env, DOORCTL_HOME: opts.home, NO_COLOR: '1', TERM: 'dumb', COLUMNS: '160', LINES: '50', ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let raw = ''
  let cursor = 0
  child.stdout.setEncoding('utf8').on('data', (d: string) => (raw += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (raw += d))
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  const screen = () => raw.replace(ANSI, '')
  return {
    get output() {
      return screen()
    },
    /** Waits until `text` appears after what earlier expects matched; returns the match. */
    async expect(text: string | RegExp, ms = 20_000): Promise<RegExpMatchArray> {
      const re = typeof text === 'string' ? new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : text
      let found: RegExpMatchArray | null = null
      const find = () => {
        found = screen().slice(cursor).match(re)
        if (!found) return false
        cursor += found.index! + found[0].length
        return true
      }
      try {
        await until(find, ms, `"${String(text)}" on the terminal`)
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- terminal so far:\n${screen()}`)
      }
      return found!
    },
    type(keys: string): void {
      child.stdin.write(keys)
    },
    exited,
    kill(): void {
      child.kill('SIGKILL')
    },
  }
}

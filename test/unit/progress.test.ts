import { describe, expect, it } from 'vitest'
import { clearLine, cursorTo, moveCursor } from 'node:readline'
import { Writable } from 'node:stream'
import { ProgressCounts, TerminalProgress, formatDuration } from '../../src/cli/progress.js'
import { until } from '../helpers.js'

/** A clock the test moves by hand. */
function clock(start = 1_000_000) {
  let now = start
  return { now: () => now, tick: (ms: number) => (now += ms) }
}

describe('progress counts (what the line says)', () => {
  it('one device with a known total: bar, done/total, rate, ETA', () => {
    const c = clock()
    const p = new ProgressCounts({ label: 'importing', unit: 'people', devices: 1 }, c.now)
    p.begin('door-1')
    p.begin('door-1', 1500)
    p.advance('door-1', 750)
    c.tick(2000)
    expect(p.line({ bar: true })).toBe(`importing ${'█'.repeat(10)}${'░'.repeat(10)} 750/1500 people · 375/s · ETA 2.0s`)
    expect(p.line({ bar: false })).toBe('importing 750/1500 people · 375/s · ETA 2.0s')
    p.advance('door-1', 750)
    p.end('door-1', true)
    expect(p.summary()).toBe('importing 1500 people in 2.0s · 750/s')
  })

  it('several devices, totals unknown (records): counts per active device, devices done, failures', () => {
    const c = clock()
    const p = new ProgressCounts({ label: 'pulling', unit: 'records', devices: 3 }, c.now)
    for (const d of ['door-1', 'door-2', 'door-3']) p.begin(d)
    p.advance('door-1', 500)
    p.advance('door-2', 700)
    p.advance('door-3', 300)
    p.end('door-1', true)
    p.end('door-1', true) // a second end changes nothing
    p.end('door-3', false)
    c.tick(1500)
    expect(p.line({ bar: true })).toBe('pulling 1500 records · 1000/s · devices 2/3 · 1 failed · door-2 700')
    expect(p.summary()).toBe('pulling 1500 records on 3 devices in 1.5s · 1000/s · 1 device failed')
    expect(p.anyFailed).toBe(true)
  })

  it('devices not started yet are expected to have as many items as those started', () => {
    const c = clock()
    const p = new ProgressCounts({ label: 'importing', unit: 'people', devices: 4 }, c.now)
    p.begin('a', 100)
    p.begin('b', 100)
    p.advance('a', 50)
    expect(p.line({ bar: false })).toBe('importing 50/400 people · devices 0/4 · a 50/100, b 0/100')
  })

  it('operations without items count devices; a single device is only a spinner', () => {
    const c = clock()
    const p = new ProgressCounts({ label: 'rebooting', devices: 10 }, c.now)
    for (let i = 0; i < 10; i++) p.begin(`door-${i}`)
    for (let i = 0; i < 4; i++) p.end(`door-${i}`, true)
    c.tick(2000)
    expect(p.line({ bar: true })).toBe(`rebooting ${'█'.repeat(8)}${'░'.repeat(12)} 4/10 devices · 2.0/s · ETA 3.0s`)
    expect(p.counted).toBe(true)
    expect(new ProgressCounts({ label: 'opening', devices: 1 }).counted).toBe(false)
  })

  it('a fleet: the line names a few active devices and fits the width', () => {
    const p = new ProgressCounts({ label: 'importing', unit: 'people', devices: 1000 }, clock().now)
    for (let i = 0; i < 256; i++) p.begin(`door-${i}`, 1500)
    const line = p.line({ bar: true, width: 97 })
    expect(line.length).toBeLessThanOrEqual(97)
    // whole device counts only: what does not fit is counted in "+N more"
    expect(line).toMatch(/ · door-0 0\/1500(, door-\d+ 0\/1500)*, \+\d+ more$/)
    expect(line).not.toContain('…')
    expect(p.line({ bar: false })).toMatch(/door-7 0\/1500, \+248 more$/)
  })

  it('durations read naturally', () => {
    expect(formatDuration(0.42)).toBe('0.4s')
    expect(formatDuration(42)).toBe('42s')
    expect(formatDuration(125)).toBe('2m05s')
    expect(formatDuration(3 * 3600 + 7 * 60)).toBe('3h07m')
  })
})

/** Enough of a terminal for ora: a width, a TTY flag, cursor control; everything written is kept. */
class FakeTerminal extends Writable {
  isTTY = true
  output = ''
  constructor(public columns: number) {
    super({ write: (chunk, _enc, done) => { this.output += String(chunk); done() } })
  }
  cursorTo(x: number) { return cursorTo(this, x) }
  moveCursor(dx: number, dy: number) { return moveCursor(this, dx, dy) }
  clearLine(dir: -1 | 0 | 1) { return clearLine(this, dir) }
}

describe('progress on a terminal', () => {
  it('no width: plain lines only when something moved, then the summary; no cursor control', async () => {
    const term = new FakeTerminal(0)
    const p = await TerminalProgress.start({ label: 'importing', unit: 'people', devices: 1 }, term as unknown as NodeJS.WriteStream, 20)
    p.begin('door-1', 3)
    p.advance('door-1')
    await until(() => term.output.includes('importing 1/3 people'), 5000, 'a plain line')
    const lines = term.output
    await new Promise((r) => setTimeout(r, 100))
    expect(term.output).toBe(lines) // nothing moved: nothing printed
    p.advance('door-1', 2)
    p.end('door-1', true)
    p.stop(true)
    expect(term.output).toMatch(/importing 3 people in [\d.]+s/)
    expect(term.output).not.toMatch(/\x1b/)
  })

  it('a spinner line that switches to plain lines when the terminal is resized to no width', async () => {
    const term = new FakeTerminal(80)
    const p = await TerminalProgress.start({ label: 'pulling', unit: 'records', devices: 2 }, term as unknown as NodeJS.WriteStream, 20)
    p.begin('door-1')
    p.advance('door-1', 5)
    await until(() => term.output.includes('pulling 5 records'), 5000, 'a spinner frame with counts')
    expect(term.output).toMatch(/\x1b\[/)
    term.columns = 0
    term.emit('resize')
    const before = term.output.length
    p.advance('door-1', 5)
    await until(() => term.output.slice(before).includes('pulling 10 records'), 5000, 'a plain line after the resize')
    expect(term.output.slice(before)).not.toMatch(/\x1b\[\d*[AK]/)
    p.end('door-1', true)
    p.end('door-2', false)
    p.stop(true)
    expect(term.output.slice(before)).toMatch(/pulling 10 records on 2 devices in [\d.]+s · [\d.]+\/s · 1 device failed\n$/)
  })

  it('a bare spinner leaves nothing behind; a failed run persists no summary', async () => {
    const term = new FakeTerminal(80)
    const spin = await TerminalProgress.start({ label: 'reading people', devices: 0 }, term as unknown as NodeJS.WriteStream)
    spin.stop(true)
    expect(term.output).toMatch(/reading people/)
    expect(term.output).not.toMatch(/✔|devices/)
    const quiet = new FakeTerminal(0)
    const failed = await TerminalProgress.start({ label: 'importing', unit: 'people', devices: 1 }, quiet as unknown as NodeJS.WriteStream)
    failed.stop(false)
    expect(quiet.output).toBe('')
  })
})

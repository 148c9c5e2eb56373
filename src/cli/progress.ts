import type { Ora } from 'ora'
import type { ProgressListener } from '../types/progress.js'

/** What a progress display is about. */
export interface ProgressOptions {
  /** What is being done, e.g. "importing". */
  label: string
  /** What the counted items are ("people", "records", "faces"); without it only devices are counted. */
  unit?: string
  /** How many devices the work covers (0: a plain spinner, nothing counted). */
  devices: number
}

interface DeviceCounts {
  done: number
  total?: number
  finished: boolean
}

const BAR_WIDTH = 20
/** Active devices named on the line at most (a fleet of 1,000 would never fit). */
const MAX_DEVICES_SHOWN = 8

/** The counts of one operation and their rendering as one line. Pure: the clock is injected. */
export class ProgressCounts implements ProgressListener {
  private readonly perDevice = new Map<string, DeviceCounts>()
  private readonly startedAt: number
  private items = 0
  private finished = 0
  private failed = 0
  /** Bumped on every change, so a plain-lines display prints only when something moved. */
  version = 0

  constructor(
    readonly opts: ProgressOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now()
  }

  /** Worth a counts line (and a final summary), not just a spinner. */
  get counted(): boolean {
    return this.opts.unit !== undefined || this.opts.devices > 1
  }

  get anyFailed(): boolean {
    return this.failed > 0
  }

  begin(device: string, total?: number): void {
    const d = this.perDevice.get(device)
    if (!d) this.perDevice.set(device, { done: 0, total, finished: false })
    else if (total !== undefined) d.total = total
    this.version++
  }

  advance(device: string, count = 1): void {
    this.entry(device).done += count
    this.items += count
    this.version++
  }

  end(device: string, ok: boolean): void {
    const d = this.entry(device)
    if (d.finished) return
    d.finished = true
    this.finished++
    if (!ok) this.failed++
    this.version++
  }

  /** The live line: label, bar, done/total, rate, ETA, devices, the active devices' own counts; cut to `width`. */
  line(opts: { width?: number; bar: boolean }): string {
    const { unit, devices } = this.opts
    const seconds = (this.now() - this.startedAt) / 1000
    const done = unit ? this.items : this.finished
    const total = unit ? this.itemTotal() : devices
    const head = [this.opts.label]
    if (opts.bar && total) head.push(bar(done / total))
    head.push(`${total === undefined ? done : `${done}/${total}`} ${unit ?? 'devices'}`)
    const parts = [head.join(' ')]
    const rate = seconds >= 1 ? done / seconds : 0
    if (rate > 0) parts.push(`${formatRate(rate)}/s`)
    if (rate > 0 && total !== undefined && total > done) parts.push(`ETA ${formatDuration((total - done) / rate)}`)
    if (unit && devices > 1) parts.push(`devices ${this.finished}/${devices}`)
    if (this.failed > 0) parts.push(`${this.failed} failed`)
    if (unit && devices > 1) {
      const active = [...this.perDevice].filter(([, d]) => !d.finished)
      const counts = active.map(([name, d]) => `${name} ${d.total === undefined ? d.done : `${d.done}/${d.total}`}`)
      // whole device counts only, as many as fit; the rest is "+N more" rather than a count cut in half
      const head = parts.join(' · ')
      const withDevices = (n: number): string => {
        const shown = counts.slice(0, n)
        if (counts.length > n) shown.push(`+${counts.length - n} more`)
        return shown.length > 0 ? `${head} · ${shown.join(', ')}` : head
      }
      let n = Math.min(counts.length, MAX_DEVICES_SHOWN)
      while (n > 0 && opts.width !== undefined && withDevices(n).length > opts.width) n--
      return cut(withDevices(n), opts.width)
    }
    return cut(parts.join(' · '), opts.width)
  }

  /** The closing line: what was done, how long it took, how fast. */
  summary(): string {
    const { unit, devices, label } = this.opts
    const seconds = (this.now() - this.startedAt) / 1000
    const done = unit ? this.items : this.finished
    const total = unit ? this.itemTotal() : devices
    const where = unit && devices > 1 ? ` on ${devices} devices` : ''
    const rate = seconds > 0 && done > 0 ? ` · ${formatRate(done / seconds)}/s` : ''
    const failed = this.failed > 0 ? ` · ${this.failed} device${this.failed === 1 ? '' : 's'} failed` : ''
    return `${label} ${total === undefined || total === done ? done : `${done}/${total}`} ${unit ?? 'devices'}${where} in ${formatDuration(seconds)}${rate}${failed}`
  }

  /** Items expected overall: known once every started device said how many it has (devices not started yet are assumed alike). */
  private itemTotal(): number | undefined {
    if (this.perDevice.size === 0) return undefined
    let sum = 0
    for (const d of this.perDevice.values()) {
      if (d.total === undefined) return undefined
      sum += d.total
    }
    const notStarted = Math.max(0, this.opts.devices - this.perDevice.size)
    return Math.round(sum + (notStarted * sum) / this.perDevice.size)
  }

  private entry(device: string): DeviceCounts {
    let d = this.perDevice.get(device)
    if (!d) this.perDevice.set(device, (d = { done: 0, finished: false }))
    return d
  }
}

/**
 * Progress on stderr for a human at a terminal: an ora spinner whose text is the counts line,
 * refreshed ten times a second. A terminal that reports no width (a pseudo-terminal without a
 * size, `docker exec -t`) gets plain lines instead, at most one a second, because cursor-up/erase
 * sequences computed from a width of 0 never end. Feed it through the ProgressListener methods.
 */
export class TerminalProgress implements ProgressListener {
  readonly counts: ProgressCounts
  private spinner?: Ora
  private timer?: NodeJS.Timeout
  private printedVersion = -1

  private constructor(
    opts: ProgressOptions,
    private readonly stream: NodeJS.WriteStream,
    private readonly linesEveryMs: number,
  ) {
    this.counts = new ProgressCounts(opts)
  }

  static async start(opts: ProgressOptions, stream: NodeJS.WriteStream = process.stderr, linesEveryMs = 1000): Promise<TerminalProgress> {
    const p = new TerminalProgress(opts, stream, linesEveryMs)
    if (hasWidth(stream)) await p.startSpinner()
    else p.startLines()
    return p
  }

  begin(device: string, total?: number): void {
    this.counts.begin(device, total)
  }

  advance(device: string, count?: number): void {
    this.counts.advance(device, count)
  }

  end(device: string, ok: boolean): void {
    this.counts.end(device, ok)
  }

  /** Stops; with `persist`, the summary stays on screen (only for counted work: a bare spinner just goes). */
  stop(persist: boolean): void {
    clearInterval(this.timer)
    this.stream.off('resize', this.onResize)
    const summary = persist && this.counts.counted ? this.counts.summary() : undefined
    if (this.spinner) {
      if (!summary) this.spinner.stop()
      else if (this.counts.anyFailed) this.spinner.warn(summary)
      else this.spinner.succeed(summary)
    } else if (summary) {
      this.stream.write(summary + '\n')
    }
  }

  private async startSpinner(): Promise<void> {
    const { default: ora } = await import('ora')
    // discardStdin off: typing during a run must not switch the terminal to raw mode
    this.spinner = ora({ stream: this.stream, isEnabled: true, discardStdin: false, text: this.spinnerText() }).start()
    this.timer = setInterval(() => {
      if (this.spinner) this.spinner.text = this.spinnerText()
    }, 100).unref()
    this.stream.on('resize', this.onResize)
  }

  private startLines(): void {
    if (!this.counts.counted) return
    this.timer = setInterval(() => {
      if (this.counts.version === this.printedVersion) return
      this.printedVersion = this.counts.version
      this.stream.write(this.counts.line({ bar: false }) + '\n')
    }, this.linesEveryMs).unref()
  }

  private spinnerText(): string {
    // the spinner's frame and a space take two columns; one more keeps the line from wrapping
    const width = Math.max(10, (this.stream.columns ?? 80) - 3)
    return this.counts.counted ? this.counts.line({ width, bar: true }) : cut(this.counts.opts.label, width)
  }

  /** A terminal resized to no width: switch to plain lines before the spinner renders again. */
  private readonly onResize = () => {
    if (hasWidth(this.stream) || !this.spinner) return
    clearInterval(this.timer)
    this.spinner.stop()
    this.spinner = undefined
    this.stream.off('resize', this.onResize)
    this.startLines()
  }
}

function hasWidth(stream: NodeJS.WriteStream): boolean {
  return (stream.columns ?? 0) > 0 && process.env.TERM !== 'dumb'
}

function bar(fraction: number): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * BAR_WIDTH)
  return '█'.repeat(filled) + '░'.repeat(BAR_WIDTH - filled)
}

function cut(text: string, width: number | undefined): string {
  return width === undefined || text.length <= width ? text : text.slice(0, Math.max(0, width - 1)) + '…'
}

export function formatRate(perSecond: number): string {
  return perSecond >= 10 ? String(Math.round(perSecond)) : perSecond.toFixed(1)
}

export function formatDuration(seconds: number): string {
  if (seconds < 10) return `${seconds.toFixed(1)}s`
  if (seconds < 60) return `${Math.round(seconds)}s`
  const s = Math.round(seconds)
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

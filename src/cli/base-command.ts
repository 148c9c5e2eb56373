import { Command, Interfaces } from '@oclif/core'
import { DoorctlError, InputError, UsageError } from '../types/errors.js'
import { resolveHome } from '../store/home.js'
import { Inventory, type DeviceBook } from '../store/inventory.js'
import type { Store } from '../store/interface.js'
import { storeFlag } from './flags.js'
import { resolveTargets } from '../ops/targets.js'
import { Settings, type SettingKey } from '../store/settings.js'
import { parseDuration } from '../util/time.js'
import { runOnTargets, type Outcome, type RunOptions, type TargetResult } from '../ops/run.js'
import type { DeviceDriver, DeviceEntry, Logger, OperationContext } from '../types/driver.js'
import type { DriverEnv } from '../types/driver-module.js'
import { stderrLogger } from './logger.js'
import { loadTls } from '../gateway/tls.js'
import { renderResults } from './render.js'
import type { GatewayHandle } from '../types/gateway.js'
import type { ProgressListener } from '../types/progress.js'
import type { ProgressOptions } from './progress.js'

/** Listener flags as parsed (CLI.md "Listener settings"). */
export interface ListenerFlagValues {
  'http-port'?: number
  'udp-port'?: number
  bind?: string
  'mqtt-url'?: string
  'mqtt-port'?: number
  'tls-cert'?: string
  'tls-key'?: string
}

/**
 * The one base command: owns --json (one JSON document on stdout, nothing else there), exit
 * codes (0 all ok, 1 a device failed, 2 bad usage or input, 130 Ctrl-C), spinners and prompts
 * only on a real TTY, and target resolution.
 */
export abstract class DoorctlCommand extends Command {
  static override enableJsonFlag = true
  static override baseFlags = { ...storeFlag }
  /** Commands that never touch the store (config, simulators) do not open it: a wrong URL can still be unset. */
  protected static usesStore = true

  protected abortController = new AbortController()
  /** Long-running commands (serve) treat SIGINT/SIGTERM as their normal, successful end. */
  protected stopIsSuccess = false
  private interrupted = false
  private _home?: string
  private _inventory?: DeviceBook
  private _store?: Store
  private _storeUrl?: string | null
  private _log?: Logger

  protected get signal(): AbortSignal {
    return this.abortController.signal
  }

  protected get home(): string {
    return (this._home ??= resolveHome())
  }

  protected get inventory(): DeviceBook {
    return (this._inventory ??= new Inventory(this.home))
  }

  /** --store, else DOORCTL_STORE, else `doorctl config set store`; undefined: SQLite in DOORCTL_HOME. */
  protected get storeUrl(): string | undefined {
    if (this._storeUrl === undefined) {
      const argv = this.argv
      let flag: string | undefined
      for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--store') flag = argv[i + 1]
        else if (argv[i].startsWith('--store=')) flag = argv[i].slice('--store='.length)
      }
      const env = process.env.DOORCTL_STORE
      const url = flag ?? (env && env.trim() !== '' ? env : undefined) ?? (new Settings(this.home).get('store') as string | undefined)
      this._storeUrl = url?.trim() ? url.trim() : null
    }
    return this._storeUrl ?? undefined
  }

  /** The shared store (only when one is chosen): opened once, closed when the command ends. */
  protected async sharedStore(): Promise<Store | undefined> {
    if (!this.storeUrl) return undefined
    if (!this._store) {
      const { openStore } = await import('../store/open.js')
      this._store = await openStore({ url: this.storeUrl, home: this.home, log: this.log_ })
    }
    return this._store
  }

  protected get log_(): Logger {
    return (this._log ??= stderrLogger({ verbose: this.argv.includes('--verbose') || this.argv.includes('-v'), debug: !!process.env.DOORCTL_DEBUG }))
  }

  protected get env_(): DriverEnv {
    return this.driverEnv({})
  }

  private gatewayHandle?: Promise<GatewayHandle>

  /** What drivers get: DOORCTL_HOME, a stderr logger, and the gateway (started or joined on first use). */
  /** Listener settings: flag (or its DOORCTL_* variable) first, then `doorctl config set`, then the built-in default. */
  protected listenerSettings(flags: ListenerFlagValues) {
    const saved = new Settings(this.home)
    const pick = <T>(flag: T | undefined, key: SettingKey) => (flag !== undefined ? flag : (saved.get(key) as T | undefined))
    const settings = {
      httpPort: pick(flags['http-port'], 'http-port'),
      udpPort: pick(flags['udp-port'], 'udp-port'),
      bind: pick(flags.bind, 'bind'),
      mqttUrl: pick(flags['mqtt-url'], 'mqtt-url'),
      mqttPort: pick(flags['mqtt-port'], 'mqtt-port'),
      tlsCert: pick(flags['tls-cert'], 'tls-cert'),
      tlsKey: pick(flags['tls-key'], 'tls-key'),
    }
    // bad TLS files are a usage error before anything is sent (the listener itself starts later, on first use)
    loadTls(settings.tlsCert, settings.tlsKey)
    return settings
  }

  protected driverEnv(flags: ListenerFlagValues): DriverEnv {
    // read now, so that bad listener settings (TLS files) stop the command before any device is sent anything
    const settings = this.listenerSettings(flags)
    return {
      home: this.home,
      log: this.log_,
      records: this._store?.records,
      gateway: () =>
        (this.gatewayHandle ??= this.sharedStore().then(async (store) => {
          // a shared store: queue in it for the gateways on it; else the gateway of this DOORCTL_HOME
          if (store) return (await import('../ops/store-handle.js')).openStoreHandle(store, this.log_)
          return (await import('../ops/gateway-client.js')).openGateway(this.home, settings, this.log_)
        })),
    }
  }

  /** The one JSON document: coloured on a terminal (oclif), else written as it is — oclif's tokenizer costs ~60 ms on a thousand results. */
  override logJson(json: unknown): void {
    if (process.stdout.isTTY) return super.logJson(json)
    process.stdout.write(JSON.stringify(json, null, 2) + '\n')
  }

  /** Humans on a terminal get colours, tables and spinners; scripts get plain lines. */
  protected get interactive(): boolean {
    return !this.jsonEnabled() && !!process.stdout.isTTY
  }

  override async init(): Promise<void> {
    await super.init()
    // a shared store's inventory is read once, before anything resolves targets
    if ((this.constructor as typeof DoorctlCommand).usesStore && this.storeUrl) {
      const store = (await this.sharedStore())!
      const { StoreInventory } = await import('../store/store-inventory.js')
      this._inventory = await StoreInventory.load(store)
    }
    process.once('SIGINT', this.onInterrupt)
    process.once('SIGTERM', this.onInterrupt)
  }

  private readonly onInterrupt = () => {
    this.interrupted = !this.stopIsSuccess
    this.abortController.abort(new DoorctlError('interrupted', { code: 'interrupted', exitCode: 1 }))
    // a second Ctrl-C, or a stuck clean-up, ends it at once
    process.once('SIGINT', () => process.exit(130))
    setTimeout(() => process.exit(this.stopIsSuccess ? 1 : 130), this.stopIsSuccess ? 15_000 : 5000).unref()
  }

  override async finally(err: Error | undefined): Promise<void> {
    const gateway = this.gatewayHandle && (await this.gatewayHandle.catch(() => undefined))
    await gateway?.close()
    await this._store?.close().catch(() => {})
    process.removeListener('SIGINT', this.onInterrupt)
    process.removeListener('SIGTERM', this.onInterrupt)
    if (this.interrupted) process.exitCode = 130
    await super.finally(err)
  }

  override async catch(err: Error & { oclif?: { exit?: number }; code?: string }): Promise<void> {
    if (err.code === 'EEXIT') throw err
    // Ctrl-C at a prompt (@inquirer/prompts)
    if (err.name === 'ExitPromptError') this.interrupted = true
    const exit = this.interrupted ? 130 : err instanceof DoorctlError ? err.exitCode : (err.oclif?.exit ?? 1)
    process.exitCode = exit
    const suggestion = err instanceof DoorctlError ? err.suggestion : undefined
    if (this.jsonEnabled()) {
      const error: Record<string, unknown> = { code: err instanceof DoorctlError ? err.code : exit === 2 ? 'usage' : 'error', message: err.message }
      if (suggestion) error.suggestion = suggestion
      if (err instanceof InputError) error.problems = err.problems
      this.logJson({ ok: false, error })
      return
    }
    process.stderr.write(`Error: ${err.message}\n`)
    if (suggestion) process.stderr.write(`Try: ${suggestion}\n`)
    if (!(err instanceof DoorctlError) && exit !== 2 && process.env.DOORCTL_DEBUG && err.stack) process.stderr.write(err.stack + '\n')
  }

  protected timeoutMs(flags: { timeout?: string }): number {
    return parseDuration(flags.timeout ?? '30s')
  }

  protected targets(names: string[], flags: { all?: boolean; tag?: string[] }): DeviceEntry[] {
    return resolveTargets(this.inventory, { names, all: flags.all, tags: flags.tag })
  }

  /** Targets when some are given; undefined when none are (a settings file then selects its own). */
  protected optionalTargets(names: string[], flags: { all?: boolean; tag?: string[] }): DeviceEntry[] | undefined {
    return names.length === 0 && !flags.all && (flags.tag ?? []).length === 0 ? undefined : this.targets(names, flags)
  }

  /** Can a human be asked here? Prompts need a terminal on stdin and no --json. */
  protected get canPrompt(): boolean {
    return !!process.stdin.isTTY && !this.jsonEnabled()
  }

  /** Refuses (exit 2, naming the flag) when a confirmation will be needed and nobody can give it. */
  protected requireConfirmable(what: string, flag: string, assumeYes: boolean): void {
    if (!assumeYes && !this.canPrompt) throw new UsageError(`${what} needs confirmation`, `pass ${flag} to confirm without a prompt`)
  }

  /** Asks only a human at a terminal; otherwise the missing answer is a usage error naming the flag. */
  protected async confirm(question: string, flag: string, assumeYes: boolean): Promise<void> {
    if (assumeYes) return
    this.requireConfirmable(question, flag, assumeYes)
    const { confirm } = await import('@inquirer/prompts')
    const yes = await confirm({ message: question, default: false }, { output: process.stderr })
    if (!yes) throw new UsageError('cancelled', `pass ${flag} to confirm without a prompt`)
  }

  /** A yes/no question for a human at a terminal (callers check canPrompt first). */
  protected async ask(question: string, dflt = true): Promise<boolean> {
    const { confirm } = await import('@inquirer/prompts')
    return confirm({ message: question, default: dflt }, { output: process.stderr })
  }

  /** A spinner on stderr for humans at a terminal; silent otherwise. */
  protected async spin<T>(text: string, work: () => Promise<T>): Promise<T> {
    return this.withProgress({ label: text, devices: 0 }, () => work())
  }

  /**
   * Live counts on stderr for a human at a terminal (done/total, rate, ETA, per device), fed by
   * the library through `progress`; with --json or without a terminal there is none (undefined).
   */
  protected async withProgress<T>(opts: ProgressOptions, work: (progress: ProgressListener | undefined) => Promise<T>): Promise<T> {
    if (this.jsonEnabled() || !process.stderr.isTTY) return work(undefined)
    const { TerminalProgress } = await import('./progress.js')
    const progress = await TerminalProgress.start(opts)
    let done = false
    try {
      const result = await work(progress)
      done = true
      return result
    } finally {
      progress.stop(done)
    }
  }

  /** Resolves targets (exit 2 before anything is sent if one is unknown), runs `op` on each, renders. */
  protected async operate(
    targets: string[] | DeviceEntry[],
    flags: { all?: boolean; tag?: string[]; concurrency: number; timeout?: string; 'no-wait'?: boolean } & ListenerFlagValues,
    label: string,
    op: (driver: DeviceDriver, ctx: OperationContext, device: DeviceEntry) => Promise<Outcome>,
    columns?: string[],
  ) {
    const devices = typeof targets[0] === 'object' ? (targets as DeviceEntry[]) : this.targets(targets as string[], flags)
    const results = await this.withProgress({ label, devices: devices.length }, (progress) => runOnTargets(devices, { ...this.runOptions(flags), progress }, op))
    return this.finish(results, undefined, columns)
  }

  protected runOptions(flags: { concurrency: number; timeout?: string; 'no-wait'?: boolean } & ListenerFlagValues): RunOptions {
    return { concurrency: flags.concurrency, timeoutMs: this.timeoutMs(flags), signal: this.signal, env: this.driverEnv(flags), wait: !flags['no-wait'] }
  }

  /** Config sections any of these devices' protocols has (to refuse an unknown one before sending anything). */
  protected async configSectionsOf(devices: DeviceEntry[]): Promise<Set<string>> {
    const { loadDriver } = await import('../drivers/registry.js')
    const sections = new Set<string>()
    for (const d of devices) {
      const driver = (await loadDriver(d.protocol)).createDriver(d, this.env_)
      for (const s of driver.configSections()) sections.add(s)
      await driver.close()
    }
    return sections
  }

  /** Renders per-device results, sets exit code 1 if any did not succeed, returns the JSON document. */
  protected finish<T extends Record<string, unknown>>(results: TargetResult[], extra?: T, columns?: string[]): { ok: boolean; results: TargetResult[] } & T {
    const ok = results.every((r) => r.ok)
    if (!ok) process.exitCode = 1
    if (!this.jsonEnabled()) renderResults(results, { tty: !!process.stdout.isTTY, columns })
    return { ok, results, ...(extra ?? ({} as T)) }
  }
}

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof DoorctlCommand)['baseFlags'] & T['flags']>

import { Flags } from '@oclif/core'
import { createWriteStream } from 'node:fs'
import { DoorctlCommand } from '../src/cli/base-command.js'
import { adminFlags, listenerFlags } from '../src/cli/flags.js'
import { adminAccess } from '../src/gateway/admin/token.js'
import { UsageError } from '../src/types/errors.js'
import { isoWithOffsetMs } from '../src/util/time.js'
import { startGateway } from '../src/ops/gateway-client.js'
import { prepareOutputFile } from '../src/util/user-paths.js'
import type { Logger } from '../src/types/driver.js'

export default class Serve extends DoorctlCommand {
  static override description = `Run the gateway that push-style devices (httpv2, udp, wsjson, best, openapi platform mode) call.
Keeps a durable command queue and record spool in DOORCTL_HOME; other doorctl commands queue through it while it runs.`
  static override examples = [
    'doorctl serve --http-port 8090 --authorize allowed-users.csv',
    'doorctl serve --bind 127.0.0.1 --http-port 0 --json   # prints the chosen port',
    'doorctl serve --admin-bind 0.0.0.0 --admin-token-file /etc/doorctl/admin-token   # status page for the LAN',
  ]
  static override flags = {
    ...listenerFlags,
    ...adminFlags,
    authorize: Flags.string({ description: 'online authorization: allow, deny, or a CSV with an id column of allowed users', default: 'deny' }),
    'log-file': Flags.string({ description: 'append log lines here instead of stderr' }),
    'offline-after': Flags.string({ description: 'a device silent this long is shown offline', default: '90s' }),
    lease: Flags.string({ description: 'shared store: this gateway counts as dead this long after its last renewal', default: '15s', helpGroup: 'STORE' }),
    verbose: Flags.boolean({ char: 'v', description: 'log every command and record' }),
  }
  protected override stopIsSuccess = true

  async run() {
    const { flags } = await this.parse(Serve)
    const log = flags['log-file'] ? fileLogger(flags['log-file'], flags.verbose) : this.log_
    // refused (exit 2) before anything listens
    const access = flags['no-admin'] ? undefined : adminAccess(flags['admin-bind'], flags['admin-token-file'])
    if (access?.created) log.notice(`a new admin token was written to ${flags['admin-token-file']} (mode 0600)`)
    const store = await this.sharedStore()
    const started = await startGateway(
      {
        home: this.home,
        log,
        admin: access && { port: flags['admin-port'], bind: flags['admin-bind'], token: access.token },
        shared: store && { store, leaseMs: this.timeoutMs({ timeout: flags.lease }), flushMs: 1000 },
        settings: { ...this.listenerSettings(flags), authorize: flags.authorize, offlineAfterMs: this.timeoutMs({ timeout: flags['offline-after'] }) },
      },
      'serve',
    )
    if (!started) throw new UsageError('a gateway is already running for this DOORCTL_HOME', 'stop it first (or point DOORCTL_HOME elsewhere)')
    const { gateway, control } = started
    const warnings = gateway.warnings()
    const ready = { ok: true, pid: process.pid, http_port: gateway.httpPort, bind: gateway.settings.bind, tls: gateway.tls !== undefined, ...gateway.bound, ...(access && { admin_bind: flags['admin-bind'] }), authorize: flags.authorize, store: store?.description ?? 'sqlite', gateway_id: gateway.shared?.id, warnings }
    if (this.jsonEnabled()) process.stdout.write(JSON.stringify(ready) + '\n')
    else this.log(`doorctl gateway listening on ${gateway.describe()} (pid ${process.pid}); ${access ? `status page ${started.admin?.scheme ?? 'http'}://${hostPort(flags['admin-bind'], gateway.bound.admin_port)}/; ` : ''}Ctrl-C to stop${warnings.map((w) => `. Warning: ${w}`).join('')}`)
    await new Promise<void>((resolve) => this.signal.addEventListener('abort', () => resolve(), { once: true }))
    log.notice('stopping: finishing requests in flight')
    await started.admin?.stop()
    started.monitor?.stopReporting()
    await control?.stop()
    await gateway.stop()
    return undefined
  }
}

function hostPort(host: string, port: unknown): string {
  return `${host.includes(':') ? `[${host}]` : host}:${String(port)}`
}

function fileLogger(path: string, verbose: boolean): Logger {
  const out = createWriteStream(prepareOutputFile(path, '--log-file', { append: true }), { flags: 'a', mode: 0o600 })
  const line = (level: string, msg: string, fields?: Record<string, unknown>) =>
    out.write(JSON.stringify({ time: isoWithOffsetMs(new Date()), level, msg, ...fields }) + '\n')
  return {
    debug: (m, f) => { if (verbose) line('debug', m, f) },
    info: (m, f) => line('info', m, f),
    notice: (m, f) => line('info', m, f),
    warn: (m, f) => line('warn', m, f),
  }
}

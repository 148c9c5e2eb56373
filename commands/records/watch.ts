import { DoorctlCommand } from '../../src/cli/base-command.js'
import { renderZoneFlags, targetFlags } from '../../src/cli/flags.js'
import { parseTimeZone } from '../../src/util/time.js'
import { recordRow } from '../../src/ops/record-writer.js'
import { errorResult, mapPool } from '../../src/ops/run.js'
import { loadDriver } from '../../src/drivers/registry.js'

export default class RecordsWatch extends DoorctlCommand {
  static override description = 'Print live access records as NDJSON lines until interrupted'
  static override examples = [
    'doorctl records watch door-1',
    'doorctl records watch --all | jq .name',
    { description: 'Push-style doors with no serve running: a temporary listener on these ports takes their records meanwhile', command: 'doorctl records watch --tag lobby --http-port 8090 --udp-port 7998' },
    'doorctl records watch --all --utc',
  ]
  static override strict = false
  // the output is NDJSON already: one JSON document per record, streamed
  static override enableJsonFlag = false
  static override flags = { ...targetFlags, ...renderZoneFlags }

  async run() {
    const { argv, flags } = await this.parse(RecordsWatch)
    const zone = flags.utc ? 'UTC' : flags.tz !== undefined ? parseTimeZone(flags.tz, '--tz') : undefined
    const devices = this.targets(argv as string[], flags)
    const timeoutMs = this.timeoutMs(flags)
    const env = this.driverEnv(flags)
    // every device is watched at once: --concurrency does not cap a live stream
    const results = await mapPool(devices, devices.length, async (device) => {
      const driver = (await loadDriver(device.protocol)).createDriver(device, env)
      let count = 0
      try {
        for await (const r of driver.watchRecords({ signal: this.signal, timeoutMs, log: this.log_ })) {
          process.stdout.write(JSON.stringify(recordRow(device.name, r, r.photo ? r.photo.toString('base64') : '', zone ?? device.tz)) + '\n')
          count++
        }
        return { device: device.name, protocol: device.protocol, ok: true, status: 'ok' as const, message: `${count} records`, count }
      } catch (err) {
        if (this.signal.aborted) return { device: device.name, protocol: device.protocol, ok: true, status: 'ok' as const, message: `${count} records`, count }
        const r = errorResult(err)
        process.stderr.write(`${device.name}: ${r.status}: ${r.message}\n`)
        return { device: device.name, protocol: device.protocol, ...r, count }
      } finally {
        await driver.close().catch(() => {})
      }
    })
    if (results.some((r) => !r.ok)) process.exitCode = 1
    return undefined
  }
}

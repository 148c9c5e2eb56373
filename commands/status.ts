import { DoorctlCommand } from '../src/cli/base-command.js'
import { renderStatus } from '../src/cli/render.js'
import { readStatus, readStoreStatus } from '../src/ops/status.js'

export default class Status extends DoorctlCommand {
  static override description = `Show the gateway running for this DOORCTL_HOME: pid, uptime, ports, devices online and offline per protocol, queue depth, records in the last hour, silent devices.
With a shared store (--store, DOORCTL_STORE, config set store): every gateway working on it, from any machine, as each reported itself in the last few seconds.
Exit 0 when a gateway is up, 1 when none is (for cron jobs and monitoring checks).`
  static override examples = ['doorctl status', 'doorctl status --json | jq .gateways[0].devices', 'doorctl status --store postgres://doorctl@127.0.0.1:5432/doorctl']

  async run() {
    await this.parse(Status)
    const store = await this.sharedStore()
    const doc = store ? await readStoreStatus(store) : await readStatus(this.home)
    if (!doc.ok) process.exitCode = 1
    if (!this.jsonEnabled()) renderStatus(doc, (line) => this.log(line))
    return doc
  }
}

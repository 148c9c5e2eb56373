import { Args } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { Settings, showSetting } from '../../src/store/settings.js'

export default class ConfigSet extends DoorctlCommand {
  protected static override usesStore = false
  static override description = "Set one of doorctl's defaults (flags and DOORCTL_* variables still win)"
  static override examples = ['doorctl config set http-port 8090', 'doorctl config set mqtt-url mqtt://127.0.0.1:1883', 'doorctl config set tls-cert /etc/doorctl/gateway.crt', 'doorctl config set store postgres://doorctl@127.0.0.1:5432/doorctl']
  static override args = { key: Args.string({ required: true, description: 'http-port, udp-port, bind, mqtt-url, mqtt-port, tls-cert, tls-key, store' }), value: Args.string({ required: true }) }

  async run() {
    const { args } = await this.parse(ConfigSet)
    const key = Settings.assertKey(args.key)
    const value = showSetting(key, new Settings(this.home).set(key, args.value))
    if (!this.jsonEnabled()) this.log(`${key} = ${value}`)
    return { ok: true, key, value }
  }
}

import { Args } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { renderTable } from '../../src/cli/render.js'
import { SETTING_KEYS, Settings, showSetting } from '../../src/store/settings.js'

export default class ConfigGet extends DoorctlCommand {
  protected static override usesStore = false
  static override description = "Show doorctl's defaults (one KEY, or all)"
  static override examples = ['doorctl config get', 'doorctl config get http-port --json']
  static override args = { key: Args.string({ description: 'a setting name' }) }

  async run() {
    const { args } = await this.parse(ConfigGet)
    const settings = new Settings(this.home)
    const keys = args.key ? [Settings.assertKey(args.key)] : (Object.keys(SETTING_KEYS) as (keyof typeof SETTING_KEYS)[])
    const values = Object.fromEntries(keys.map((k) => { const v = settings.get(k); return [k, v === undefined ? null : showSetting(k, v)] }))
    if (!this.jsonEnabled()) renderTable(['KEY', 'VALUE', 'MEANING'], keys.map((k) => [k, values[k] ?? '(default)', SETTING_KEYS[k].description]))
    return { ok: true, settings: values }
  }
}

import { Args } from '@oclif/core'
import { DoorctlCommand } from '../../src/cli/base-command.js'
import { Settings } from '../../src/store/settings.js'

export default class ConfigUnset extends DoorctlCommand {
  protected static override usesStore = false
  static override description = 'Go back to the built-in default for a setting'
  static override examples = ['doorctl config unset mqtt-url']
  static override args = { key: Args.string({ required: true }) }

  async run() {
    const { args } = await this.parse(ConfigUnset)
    const key = Settings.assertKey(args.key)
    new Settings(this.home).unset(key)
    if (!this.jsonEnabled()) this.log(`${key} unset`)
    return { ok: true, key }
  }
}

/**
 * A device's own settings as its vendor document gives them: sections of keys, each with a type
 * and, where the document states one, a range. Each protocol's driver module exposes one such
 * table; planning and applying a settings file (src/ops) reads only these tables, so it is the
 * same code for every protocol.
 */

/** How a value is written in a settings file and checked before anything is sent. */
export type SettingType = 'integer' | 'number' | 'string' | 'object' | 'array'

export interface SettingSpec {
  type: SettingType
  /** Inclusive bounds of a number, as the document gives them. */
  min?: number
  max?: number
  /** What a text value must look like (checked before anything is sent). */
  pattern?: { re: RegExp; description: string }
  /** false: the device never reports the value, so the plan cannot know it and apply always sends it. */
  readable?: boolean
  /** A password or key: never printed or exported; its current value is never known. */
  secret?: boolean
  /** Unique to one door (an address, a device code): a `*` or `tag:` row may not give it to several doors. */
  perDevice?: boolean
  /** Changes by itself (a clock): left out of exports, which would otherwise set it back. */
  volatile?: boolean
}

export type SettingsSection = Readonly<Record<string, SettingSpec>>

export interface SettingsSchema {
  sections: Readonly<Record<string, SettingsSection>>
  /**
   * The section name under which one write may carry keys of every section (httpv2: a
   * DownloadWorkSetting answer takes any writable parameter). Absent: one write per section.
   */
  writeAllAs?: string
  /** false: the value the device acknowledged cannot be read back right after the write. Default true. */
  readBack?: boolean
}

/** Can the plan know the device's current value? */
export function isReadable(spec: SettingSpec): boolean {
  return spec.readable !== false && spec.secret !== true
}

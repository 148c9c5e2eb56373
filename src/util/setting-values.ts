/**
 * Setting values between their three forms: the text of a settings file cell, the typed value
 * sent to a device, and what a device reports (best reports every value as a string,
 * AMBIGUITIES best #10; others report numbers as numbers).
 */
import type { SettingSpec } from '../types/settings.js'

const INTEGER_RE = /^[-+]?\d+$/
const NUMBER_RE = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/

function typeWords(spec: SettingSpec): string {
  switch (spec.type) {
    case 'integer':
      return spec.min === 0 && spec.max === 1 ? '0 or 1' : 'an integer'
    case 'number':
      return 'a number'
    case 'string':
      return 'text'
    case 'object':
      return 'a JSON object ({...})'
    case 'array':
      return 'a JSON array ([...])'
  }
}

function rangeProblem(spec: SettingSpec, n: number): string | undefined {
  const low = spec.min !== undefined && n < spec.min
  const high = spec.max !== undefined && n > spec.max
  if (!low && !high) return undefined
  if (spec.min !== undefined && spec.max !== undefined) return `must be between ${spec.min} and ${spec.max}`
  return spec.min !== undefined ? `must be at least ${spec.min}` : `must be at most ${spec.max}`
}

/** A value as given (file text, or already typed): the typed value, or why it cannot be one. */
export function parseSettingValue(spec: SettingSpec, given: unknown): { value: unknown } | { error: string } {
  const shown = typeof given === 'string' ? `"${given}"` : JSON.stringify(given)
  if (spec.type === 'integer' || spec.type === 'number') {
    const text = typeof given === 'number' ? String(given) : typeof given === 'boolean' ? (given ? '1' : '0') : typeof given === 'string' ? given.trim() : ''
    const re = spec.type === 'integer' ? INTEGER_RE : NUMBER_RE
    const n = Number(text)
    if (!re.test(text) || !Number.isFinite(n)) return { error: `must be ${typeWords(spec)}, got ${shown}` }
    const range = rangeProblem(spec, n)
    return range ? { error: `${range}, got ${text}` } : { value: n }
  }
  if (spec.type === 'string') {
    if (given !== null && typeof given === 'object') return { error: `must be ${typeWords(spec)}, got ${shown}` }
    const text = given === undefined || given === null ? '' : String(given)
    if (spec.pattern && !spec.pattern.re.test(text)) return { error: `must be ${spec.pattern.description}, got ${shown}` }
    return { value: text }
  }
  let parsed = given
  if (typeof given === 'string') {
    try {
      parsed = JSON.parse(given)
    } catch {
      return { error: `must be ${typeWords(spec)}, got ${shown}` }
    }
  }
  const isArray = Array.isArray(parsed)
  const isObject = parsed !== null && typeof parsed === 'object' && !isArray
  if (spec.type === 'array' ? !isArray : !isObject) return { error: `must be ${typeWords(spec)}, got ${shown}` }
  return { value: parsed }
}

/** A value as a device reported it, in the spec's type; undefined when it cannot be read as one. */
export function reportedValue(spec: SettingSpec, raw: unknown): unknown {
  if (raw === undefined || raw === null) return undefined
  if (spec.type === 'string') return typeof raw === 'object' ? undefined : String(raw)
  // a device's number is taken whatever its range: the plan shows it and sets it right
  const r = parseSettingValue({ type: spec.type }, raw)
  return 'value' in r ? r.value : undefined
}

/** Key order does not make two objects different. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`
  }
  return JSON.stringify(v)
}

export function sameSettingValue(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b)
}

/** The text of a value in a settings file (and for humans): JSON for objects and arrays. */
export function settingText(v: unknown): string {
  if (v === undefined || v === null) return ''
  return typeof v === 'object' ? JSON.stringify(v) : String(v)
}

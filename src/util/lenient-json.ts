/** JSON as devices send it: a BOM, or trailing commas before } or ] (several vendor examples have them). */
export function parseLenientJson(text: string): unknown {
  const t = text.replace(/^\uFEFF/, '').trim()
  try {
    return JSON.parse(t)
  } catch {
    return JSON.parse(t.replace(/,\s*([}\]])/g, '$1'))
  }
}

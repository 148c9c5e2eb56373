/** What the udp document defines (paths, states, codes), its lenient JSON, and the helpers every part of the simulated device uses. */
import { randomBytes } from 'node:crypto'

// ---------------------------------------------------------------------------------------------
// Document constants.

/** HTTP paths as the document names them (sections 2–6). */
export const UDP_PATHS = {
  oneLock: '/oneLock',
  unlockCallback: '/unlockCallback',
  addUpload: '/addUpload',
  updateImage: '/updateImage',
  authImage: '/authImage',
} as const

/** Section 5/6 state values. */
export const FACE_STATE = { added: '10', modified: '20', deleted: '30', invalid: '40', valid: '50' } as const

/** Sections 7–9 ack `type`: 0 成功, 1 参数无效, 2 无权限. */
export const ACK_TYPE = { ok: '0', invalid: '1', denied: '2' } as const

/** Section 3 `type` (开锁类型). */
export const UNLOCK_TYPE = {
  qrCode: 0, miniProgram: 1, card: 2, oneTimePassword: 3, face: 4, extension: 5, propertyCentre: 6, fingerprint: 7, publicPassword: 8, phoneCall: 14,
} as const

/** Sections 2–6: `code` "0000" is success. */
export const CODE_OK = '0000'

export const COMMANDS = new Set(['unlock', 'setting', 'reboot'])
/** How many executed command ids are remembered for duplicate detection. */
export const SEEN_IDS = 1024

// ---------------------------------------------------------------------------------------------
// Lenient JSON (the document's own examples are not JSON).

export interface ParsedMessage {
  /** The object, a later duplicate key overriding an earlier one (as JSON.parse does). */
  value: Record<string, unknown>
  /** Every key/value in order, duplicates included (section 8 lists `communityId` twice, AMB udp #9). */
  entries: [string, unknown][]
}

/**
 * Parses JSON and the document's broken forms: `"id","1"` pairs (AMB udp #2), `,,` and a key
 * missing its opening quote (the updateImage example, AMB udp #3), curly quotes, unquoted keys,
 * `//` comments and a missing comma (the authImage answer example, section 6), trailing commas.
 * Returns undefined when the text is not an object even under these rules.
 */
export function parseLenientJson(text: string): ParsedMessage | undefined {
  try {
    const p = new LenientParser(text)
    const v = p.parseTop()
    if (!v) return undefined
    return v
  } catch {
    return undefined
  }
}

const OPEN_QUOTES = new Set(['"', '\u201c', '\u201d'])
const CLOSE_QUOTES = new Set(['"', '\u201d', '\u201c'])
const BARE_STOP = new Set([':', ',', '{', '}', '[', ']', '"', '\u201c', '\u201d'])

class LenientParser {
  private i = 0
  constructor(private readonly s: string) {}

  parseTop(): ParsedMessage | undefined {
    this.ws()
    if (this.s[this.i] !== '{') return undefined
    const m = this.object()
    this.ws()
    if (this.i < this.s.length) throw new Error('trailing text')
    return m
  }

  private ws(): void {
    for (;;) {
      while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++
      if (this.s.startsWith('//', this.i)) {
        const nl = this.s.indexOf('\n', this.i)
        this.i = nl < 0 ? this.s.length : nl + 1
      } else if (this.s.startsWith('/*', this.i)) {
        const end = this.s.indexOf('*/', this.i + 2)
        this.i = end < 0 ? this.s.length : end + 2
      } else return
    }
  }

  private object(): ParsedMessage {
    this.i++ // {
    const entries: [string, unknown][] = []
    for (;;) {
      this.ws()
      const c = this.s[this.i]
      if (c === undefined) throw new Error('unterminated object')
      if (c === ',') { this.i++; continue } // `,,` and trailing commas
      if (c === '}') { this.i++; break }
      const key = OPEN_QUOTES.has(c) ? this.string() : this.bare()
      this.ws()
      if (this.s[this.i] === '"') { this.i++; this.ws() } // `message":` — key missing its opening quote
      const sep = this.s[this.i]
      if (sep !== ':' && sep !== ',') throw new Error(`expected : after key ${key}`)
      this.i++ // `:` or the document's `,` (AMB udp #2)
      entries.push([key, this.value()])
      this.ws()
      const after = this.s[this.i]
      if (after === ',') { this.i++; continue }
      if (after === '}') { this.i++; break }
      if (after === undefined) throw new Error('unterminated object')
      // no comma: section 6's answer example has `message:””    //提示语` then `data:{}` on the next line
    }
    const value: Record<string, unknown> = {}
    for (const [k, v] of entries) value[k] = v
    return { value, entries }
  }

  private value(): unknown {
    this.ws()
    const c = this.s[this.i]
    if (c === undefined) throw new Error('missing value')
    if (c === '{') return this.object().value
    if (c === '[') {
      this.i++
      const out: unknown[] = []
      for (;;) {
        this.ws()
        const d = this.s[this.i]
        if (d === undefined) throw new Error('unterminated array')
        if (d === ',') { this.i++; continue }
        if (d === ']') { this.i++; return out }
        out.push(this.value())
      }
    }
    if (OPEN_QUOTES.has(c)) return this.string()
    const word = this.bare()
    if (word === 'null') return null
    if (word === 'true') return true
    if (word === 'false') return false
    if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(word)) return Number(word)
    return word
  }

  private bare(): string {
    const start = this.i
    while (this.i < this.s.length && !BARE_STOP.has(this.s[this.i]!) && !/\s/.test(this.s[this.i]!) && !this.s.startsWith('//', this.i)) this.i++
    if (this.i === start) throw new Error('unexpected character')
    return this.s.slice(start, this.i)
  }

  private string(): string {
    this.i++ // opening quote
    let out = ''
    for (;;) {
      const c = this.s[this.i]
      if (c === undefined) throw new Error('unterminated string')
      if (CLOSE_QUOTES.has(c)) { this.i++; return out }
      if (c === '\\') {
        const e = this.s[this.i + 1]
        this.i += 2
        switch (e) {
          case 'n': out += '\n'; break
          case 'r': out += '\r'; break
          case 't': out += '\t'; break
          case 'b': out += '\b'; break
          case 'f': out += '\f'; break
          case 'u': out += String.fromCharCode(parseInt(this.s.slice(this.i, this.i + 4), 16)); this.i += 4; break
          default: out += e ?? ''
        }
        continue
      }
      out += c
      this.i++
    }
  }
}

/**
 * Serialises an outgoing datagram. With `brokenId`, `id` is written the document's way,
 * `"id","1"`, last (sections 7–9 examples, AMB udp #2); otherwise plain JSON.
 */
export function encodeMessage(msg: Record<string, unknown>, brokenId = false): string {
  if (!brokenId || !('id' in msg)) return JSON.stringify(msg)
  const { id, ...rest } = msg
  const head = JSON.stringify(rest).slice(0, -1)
  return `${head}${head.length > 1 ? ',' : ''}"id",${JSON.stringify(id)}}`
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

export const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined)
export const errMsg = (e: unknown): string => {
  if (!(e instanceof Error)) return String(e)
  const cause = (e as { cause?: unknown }).cause
  return cause instanceof Error ? `${e.message}: ${cause.message}` : e.message // fetch's "fetch failed" hides the reason in cause
}

/** A minimal valid baseline JPEG (8x8 grey); `comment` goes into a COM segment (e.g. the NOFACE marker). */
export function makeJpeg(comment?: string): Buffer {
  const b: number[] = [0xff, 0xd8]
  b.push(0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00) // APP0 JFIF
  if (comment !== undefined) {
    const c = Buffer.from(comment, 'latin1').subarray(0, 60000)
    b.push(0xff, 0xfe, (c.length + 2) >> 8, (c.length + 2) & 0xff, ...c) // COM
  }
  b.push(0xff, 0xdb, 0x00, 0x43, 0x00, ...new Array<number>(64).fill(1)) // DQT
  b.push(0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00) // SOF0
  b.push(0xff, 0xc4, 0x00, 0x14, 0x00, 1, ...new Array<number>(15).fill(0), 0x00) // DHT DC
  b.push(0xff, 0xc4, 0x00, 0x14, 0x10, 1, ...new Array<number>(15).fill(0), 0x00) // DHT AC
  b.push(0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00) // SOS
  b.push(0x3f, 0xff, 0xd9)
  return Buffer.from(b)
}

export const isJpeg = (b: Buffer): boolean => b.length >= 4 && b[0] === 0xff && b[1] === 0xd8

export interface Part { name: string; data: string | Buffer; filename?: string; contentType?: string }

/** multipart/form-data by hand (CRLF, one boundary); sections 4 and 6 say only "multipart/form-data文件流格式". */
export function buildMultipart(parts: Part[]): { body: Buffer; contentType: string } {
  const boundary = `----doorctlUdpSim${randomBytes(12).toString('hex')}`
  const chunks: Buffer[] = []
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}\r\n`
    if (p.contentType) head += `Content-Type: ${p.contentType}\r\n`
    chunks.push(Buffer.from(head + '\r\n', 'utf8'), typeof p.data === 'string' ? Buffer.from(p.data, 'utf8') : p.data, Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` }
}

export class HttpStatusError extends Error {
  constructor(readonly status: number, message: string) {
    super(message)
  }
}

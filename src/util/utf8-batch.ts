/**
 * Many strings encoded one after the other into one Buffer, to be written with a single write.
 *
 * Why not join them first: V8 builds a string of more than ~128 KB (a page of output rows) in its
 * large-object space, which costs several times what the same text in small strings does (most
 * of it fresh memory, page by page), and one non-ASCII character makes the whole joined string
 * two bytes a character. Encoding each small string straight into the buffer avoids both.
 */
export class Utf8Batch {
  private buf: Buffer
  private used = 0

  /** `reuse`: a buffer to fill first (one whose earlier contents are no longer needed). */
  constructor(expectedBytes = 64 * 1024, reuse?: Buffer) {
    this.buf = reuse && reuse.length >= expectedBytes ? reuse : Buffer.allocUnsafe(Math.max(1024, expectedBytes))
  }

  get byteLength(): number {
    return this.used
  }

  add(text: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit; counted exactly only when that may not fit
    const room = this.buf.length - this.used
    if (room < text.length * 3 && room < Buffer.byteLength(text)) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + text.length * 3))
      this.buf.copy(bigger, 0, 0, this.used)
      this.buf = bigger
    }
    this.used += this.buf.write(text, this.used, 'utf8')
  }

  /** The bytes added so far (a view of `buffer`); the batch must not be used afterwards. */
  take(): Buffer {
    return this.buf.subarray(0, this.used)
  }

  /** The whole buffer the bytes are in, to reuse once they are written. */
  get buffer(): Buffer {
    return this.buf
  }
}

/**
 * Counts a long operation reports while it works, per device (people sent, records exported,
 * devices done). Library code calls these; only the CLI decides whether and how to show them,
 * so nothing here ever writes to the terminal.
 */
export interface ProgressListener {
  /** Work on `device` starts; `total` items when known in advance (people to send), else unknown (records). */
  begin(device: string, total?: number): void
  /** `count` more items (default 1) are done on `device`. */
  advance(device: string, count?: number): void
  /** `device` is finished: `ok` false when it failed, timed out or does not support the operation. */
  end(device: string, ok: boolean): void
}

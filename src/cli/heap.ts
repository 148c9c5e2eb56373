import { setFlagsFromString } from 'node:v8'

/**
 * For a command that streams a large volume through a small live heap (records pull): V8 lets the
 * old generation grow to up to four times what is live before a full collection, which with a
 * pull's steady stream of short-lived garbage is ~60 MB of peak memory holding nothing. Twice what
 * is live costs no measurable CPU here (bench/RESULTS.md, pull).
 */
export function boundHeapGrowth(): void {
  setFlagsFromString('--heap-growing-percent=100')
}

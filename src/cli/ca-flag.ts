import { readFileSync } from 'node:fs'
import { Flags } from '@oclif/core'

/** `simulate … --ca F`: the simulated devices trust this CA (or self-signed certificate) for https://, wss:// and mqtts://. */
export const caFlag = {
  ca: Flags.string({ description: 'PEM file of a CA (or a self-signed certificate) to trust for https://, wss:// and mqtts:// servers' }),
}

/** The PEM text of --ca; unreadable or not a certificate → `fail` (exit 2, naming the file). */
export function readCa(file: string | undefined, fail: (message: string) => never): string | undefined {
  if (file === undefined) return undefined
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    return fail(`--ca ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) return fail(`--ca ${file}: not a PEM certificate`)
  return text
}

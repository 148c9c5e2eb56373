import { UsageError } from '../types/errors.js'

/** Reads a secret piped on stdin (`--password-stdin`); refuses a terminal so nothing is echoed. */
export async function readSecretFromStdin(flag: string): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError(`${flag} reads from a pipe, not a terminal`, `echo "$PASSWORD" | doorctl … ${flag}`)
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  const secret = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
  if (secret === '') throw new UsageError(`${flag}: standard input was empty`, 'pipe the password in, e.g. doorctl device add … --password-stdin < password.txt')
  return secret
}

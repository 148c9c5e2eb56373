import { readFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import { UsageError } from '../types/errors.js'
import type { TlsMaterial } from '../types/gateway.js'

function readPem(file: string, flag: string): Buffer {
  try {
    return readFileSync(file)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err)
    throw new UsageError(`${flag} ${file}: cannot read it (${code})`, `pass a readable PEM file to ${flag}`)
  }
}

/**
 * Reads and checks the TLS files before anything listens or is sent (a bad file is a usage error,
 * exit 2, naming the file); undefined when neither is set. The key is a secret: never logged.
 */
export function loadTls(certFile: string | undefined, keyFile: string | undefined): TlsMaterial | undefined {
  if (!certFile && !keyFile) return undefined
  if (!certFile || !keyFile) throw new UsageError('--tls-cert and --tls-key go together', 'pass both (PEM certificate chain and its private key), or neither')
  const cert = readPem(certFile, '--tls-cert')
  const key = readPem(keyFile, '--tls-key')
  try {
    createSecureContext({ cert })
  } catch (err) {
    throw new UsageError(`--tls-cert ${certFile}: not a PEM certificate (${(err as Error).message})`, 'pass the certificate chain in PEM form (-----BEGIN CERTIFICATE-----)')
  }
  try {
    createSecureContext({ key })
  } catch {
    // the parser's message could quote key material: say only what is wrong
    throw new UsageError(`--tls-key ${keyFile}: not a PEM private key`, 'pass an unencrypted private key in PEM form (-----BEGIN PRIVATE KEY-----)')
  }
  try {
    createSecureContext({ cert, key })
  } catch {
    throw new UsageError(`--tls-key ${keyFile} does not belong to the certificate in ${certFile}`, 'pass the key the certificate was issued for')
  }
  return { cert, key }
}

#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8'

// oclif's own engine check loads the whole semver package (~20 ms of every start): check here instead.
if (Number(process.versions.node.split('.')[0]) < 20) {
  process.stderr.write(`doorctl needs Node.js 20 or newer (this is ${process.version})\n`)
  process.exit(1)
}
process.env.OCLIF_DISABLE_ENGINE_WARNING ??= '1'
// undici's HTTP parser (llhttp) is WebAssembly. After the first requests V8 compiles it again with
// its optimising compiler, which briefly takes ~35 MB and ~0.3 s of CPU — a third of a records
// pull's peak memory — for code that only reads status lines and headers: the baseline is enough.
setFlagsFromString('--liftoff-only')
const { execute } = await import('@oclif/core')

await execute({ dir: import.meta.url })

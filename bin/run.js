#!/usr/bin/env node
// oclif's own engine check loads the whole semver package (~20 ms of every start): check here instead.
if (Number(process.versions.node.split('.')[0]) < 20) {
  process.stderr.write(`doorctl needs Node.js 20 or newer (this is ${process.version})\n`)
  process.exit(1)
}
process.env.OCLIF_DISABLE_ENGINE_WARNING ??= '1'
const { execute } = await import('@oclif/core')

await execute({ dir: import.meta.url })

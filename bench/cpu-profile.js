// Summary of a V8 CPU profile (`node --cpu-prof`): where the wall time of a run went, by self time.
// Areas: idle (the event loop waiting: for the device, for the disk), garbage collection, doorctl's
// own code (dist/src), undici, other dependencies, node's own JavaScript, and native work (no
// script: writes, string decoding, JSON, ...).
//   node bench/cpu-profile.js FILE.cpuprofile   → prints the summary as JSON
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

function areaOf(fn, url) {
  if (fn === '(idle)') return 'idle'
  if (fn === '(garbage collector)') return 'garbage collector'
  if (fn === '(program)') return 'V8 / node (program)'
  if (url.includes('/node_modules/undici/')) return 'undici'
  if (url.includes('/node_modules/csv-stringify/')) return 'csv-stringify'
  if (url.includes('/node_modules/')) return 'other dependencies'
  if (url.includes('/dist/src/') || url.includes('/dist/commands/')) return 'doorctl (dist/)'
  if (url.startsWith('node:')) return 'node (JavaScript)'
  if (url === '') return 'native (no script)'
  return 'other'
}

export function summarizeProfile(path, top = 12) {
  const p = JSON.parse(readFileSync(path, 'utf8'))
  const nodes = new Map(p.nodes.map((n) => [n.id, n]))
  const self = new Map()
  let total = 0
  for (let i = 0; i < p.samples.length; i++) {
    const d = p.timeDeltas[i] ?? 0
    total += d
    const cf = nodes.get(p.samples[i]).callFrame
    const fn = cf.functionName || '(anonymous)'
    const where = cf.url === '' ? '' : `${cf.url.replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, 'dist/').replace(/^file:\/\//, '')}:${cf.lineNumber + 1}`
    const key = `${fn}\t${where}`
    const e = self.get(key) ?? { fn, where, area: areaOf(fn, cf.url), us: 0 }
    e.us += d
    self.set(key, e)
  }
  const areas = new Map()
  for (const e of self.values()) areas.set(e.area, (areas.get(e.area) ?? 0) + e.us)
  const ms = (us) => Math.round(us / 1000)
  return {
    totalMs: ms(total),
    areas: [...areas].sort((a, b) => b[1] - a[1]).map(([area, us]) => ({ area, ms: ms(us), share: us / total })),
    top: [...self.values()].sort((a, b) => b.us - a.us).slice(0, top).map((e) => ({ fn: e.fn, where: e.where, area: e.area, ms: ms(e.us), share: e.us / total })),
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!process.argv[2]) {
    process.stderr.write('usage: node bench/cpu-profile.js FILE.cpuprofile\n')
    process.exit(2)
  }
  process.stdout.write(JSON.stringify(summarizeProfile(process.argv[2]), null, 2) + '\n')
}

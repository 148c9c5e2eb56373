// 12. copy: `people copy` from one openapi device to another, N people each with a 60 KB photo,
// against `people import` of the same people and photos from a CSV into a fresh device (the
// floor: the same writes, with the photos already on disk). The copy reads the source's list
// (10 a page, photos inline), writes each photo to a temp file and sends them as the import does;
// peak RSS shows the photos do not all sit in memory (N × 60 KB would be ~N/17 MB).
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export async function benchCopy(h) {
  const n = h.sizes.copyPeople
  const face = readFileSync(join(h.root, 'test', 'fixtures', 'face.jpg'))
  // a 60 KB JPEG: a comment segment (FF FE, length) after SOI; the simulator still sees a face
  const pad = randomBytes(60 * 1024)
  const com = Buffer.concat([Buffer.from([0xff, 0xfe, (pad.length + 2) >> 8, (pad.length + 2) & 0xff]), pad])
  const photo = join(h.work, 'copy-face.jpg')
  writeFileSync(photo, Buffer.concat([face.subarray(0, 2), com, face.subarray(2)]))
  const csv = join(h.work, 'copy-people.csv')
  const rows = ['id,name,card,photo']
  for (let k = 1; k <= n; k++) rows.push(`c${k},Person ${k},${10_000_000 + k},${photo}`)
  writeFileSync(csv, rows.join('\n') + '\n')

  const runs = []
  const errors = []
  const one = async (side, round) => {
    const dst = await h.startSim({})
    const src = side === 'copy' ? await h.startSim({}) : undefined
    const run = { side, round }
    try {
      const home = await h.freshHome(dst.port)
      const env = { DOORCTL_HOME: home }
      if (src) {
        const add = await h.runNode([h.run, 'device', 'add', 'src', '--protocol', 'openapi', '--host', '127.0.0.1', '--port', String(src.port), '--password-stdin'], { env, input: h.password + '\n' })
        if (h.failure(add)) throw new Error(`device add src: ${h.failure(add)}`)
        const fill = await h.runNode([h.run, 'people', 'import', csv, 'src', '--json'], { env })
        if (h.failure(fill)) throw new Error(`filling the source: ${h.failure(fill)}`)
      }
      const args = side === 'copy' ? ['people', 'copy', 'src', 'bench', '--json', '--timeout', '120s'] : ['people', 'import', csv, 'bench', '--json', '--timeout', '120s']
      const r = await h.runNode([h.run, ...args], { env, rss: true })
      const st = await dst.stats()
      Object.assign(run, { ms: r.ms, rssKB: r.rssKB, users: st.users })
      const bad = h.failure(r)
      if (bad) run.error = bad
      else if (st.users !== n) run.error = `the target has ${st.users} users, expected ${n}`
    } catch (err) {
      run.error = String(err instanceof Error ? err.message : err)
    } finally {
      await dst.close()
      await src?.close()
    }
    if (run.error) errors.push(`${side} run ${round + 1}: ${run.error}`)
    h.log(`copy ${side} run ${round + 1}: ${((run.ms ?? 0) / 1000).toFixed(1)} s, ${run.users} users, ${((run.rssKB ?? 0) / 1024).toFixed(0)} MB${run.error ? ` — ${run.error}` : ''}`)
    runs.push(run)
  }
  await one('copy', 0)
  await one('import', 0)
  await one('import', 1)
  await one('copy', 1)
  const best = (side) => runs.filter((r) => r.side === side && !r.error).sort((a, b) => a.ms - b.ms)[0]
  const c = best('copy')
  const i = best('import')
  const peak = (side) => Math.max(0, ...runs.filter((r) => r.side === side && r.rssKB).map((r) => r.rssKB))
  return { people: n, photoKB: 60, runs, ratio: c && i ? c.ms / i.ms : undefined, copyRssKB: peak('copy'), importRssKB: peak('import'), errors }
}

export function renderCopy(e, { f1, f2, table, stamp }) {
  const r = e.result
  return [
    '## 12. copy',
    stamp(e),
    `\`people copy\` of ${r.people} people, each with a ${r.photoKB} KB photo, from one simulated openapi device to a fresh one, against \`people import\` of the same people and photo files into a fresh device (same writes; the copy also reads the source's list, 10 a page with photos inline, and writes each photo to a temp file).`,
    table(['run', '#', 'wall s', 'users on target', 'peak RSS MB', 'check'], r.runs.map((x) => [x.side, String(x.round + 1), f2((x.ms ?? 0) / 1000), String(x.users ?? ''), f1(x.rssKB / 1024), x.error ? `**FAILED**: ${x.error}` : 'ok'])),
    table(['measure', 'value'], [
      ['wall time, best of 2 (copy / import)', f2(r.ratio)],
      ['peak RSS MB copy / import', `${f1(r.copyRssKB / 1024)} / ${f1(r.importRssKB / 1024)}`],
      ['all photos in memory would be', `${f1((r.people * r.photoKB) / 1024)} MB`],
    ]),
  ].join('\n\n')
}

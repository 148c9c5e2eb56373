// Writes a people CSV for the benchmarks: id,name,card,phone,department; ids p00001…, no photos,
// a mix of Latin and Chinese names (every third row Chinese), deterministic.
// usage: node bench/gen-people.js COUNT OUTPUT   (also importable: writePeopleCsv(count, path))
import { createWriteStream } from 'node:fs'
import { once } from 'node:events'
import { pathToFileURL } from 'node:url'

const LATIN_FIRST = ['Alice', 'Bob', 'Carol', 'David', 'Emma', 'Frank', 'Grace', 'Henry', 'Ivy', 'Jack', 'Karen', 'Leo']
const LATIN_LAST = ['Smith', 'Jones', 'Brown', 'Taylor', 'Wilson', 'Martin', 'Lee', 'Walker', 'Hall', 'Young']
const CN_SURNAME = ['王', '李', '张', '刘', '陈', '杨', '黄', '赵', '吴', '周']
const CN_GIVEN = ['伟', '芳', '娜', '敏', '静', '丽', '强', '磊', '军', '洋']
const DEPARTMENTS = ['R&D', 'Sales', '行政部', 'Finance', '生产部']

export function personRow(k) {
  const id = `p${String(k).padStart(5, '0')}`
  const name = k % 3 === 0
    ? CN_SURNAME[k % 10] + CN_GIVEN[(k * 7) % 10] + (k % 2 === 1 ? CN_GIVEN[(k * 3) % 10] : '')
    : `${LATIN_FIRST[k % LATIN_FIRST.length]} ${LATIN_LAST[(k * 7) % LATIN_LAST.length]}`
  const card = String(10_000_000 + k)
  const phone = `138${String(k).padStart(8, '0')}`
  const department = DEPARTMENTS[k % DEPARTMENTS.length]
  return { id, name, card, phone, department }
}

export async function writePeopleCsv(count, path) {
  const out = createWriteStream(path)
  out.write('id,name,card,phone,department\n')
  for (let k = 1; k <= count; k++) {
    const r = personRow(k)
    if (!out.write(`${r.id},${r.name},${r.card},${r.phone},${r.department}\n`)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'close')
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await writePeopleCsv(Number(process.argv[2]), process.argv[3])
}

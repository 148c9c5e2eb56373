import { execFile } from 'node:child_process'
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT, tempDir } from '../helpers.js'

// the CLI, as `npm run lint:deps` runs it
const DEPCRUISE = join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs')

interface Violation {
  rule: { name: string }
  from: string
  to: string
  cycle?: { name: string }[]
}

/** The layer rules of .dependency-cruiser.cjs, applied to `dirs` under `cwd`: every violation, one line each. */
function cruise(cwd: string, dirs: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [DEPCRUISE, ...dirs, '--config', join(ROOT, '.dependency-cruiser.cjs'), '--output-type', 'json'],
      { cwd, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        // exit code = number of errors; the JSON report is complete either way
        let report: { summary: { violations: Violation[] } }
        try {
          report = JSON.parse(stdout)
        } catch {
          reject(new Error(`dependency-cruiser gave no report (${err?.message ?? 'no error'}):\n${stderr}`))
          return
        }
        resolve(
          report.summary.violations.map((v) =>
            `${v.rule.name}: ${v.from} -> ${v.to}${v.cycle ? ` (cycle: ${v.cycle.map((c) => c.name).join(' -> ')})` : ''}`,
          ),
        )
      },
    )
  })
}

describe('imports flow one way', () => {
  it('src and commands break no layer rule and have no cycle', async () => {
    expect(await cruise(ROOT, ['src', 'commands'])).toEqual([])
  })

  it('the rules catch a cycle, an upward import, a foreign protocol and a simulator using a driver', async () => {
    const dir = tempDir('doorctl-layers-')
    try {
      const put = (file: string, text: string) => {
        mkdirSync(dirname(join(dir.path, file)), { recursive: true })
        writeFileSync(join(dir.path, file), text)
      }
      copyFileSync(join(ROOT, 'tsconfig.json'), join(dir.path, 'tsconfig.json'))
      put('src/types/vocabulary.ts', "import type { Op } from '../ops/op.js'\nexport type V = Op | 1\n")
      put('src/ops/op.ts', "import type { V } from '../types/vocabulary.js'\nexport type Op = V | 2\n")
      put('src/drivers/alpha/codec.ts', "import { beta } from '../beta/codec.js'\nexport const alpha = beta\n")
      put('src/drivers/beta/codec.ts', 'export const beta = 1\n')
      put('src/simulators/alpha/device.ts', "import { alpha } from '../../drivers/alpha/codec.js'\nexport const device = alpha\n")
      const violations = await cruise(dir.path, ['src'])
      expect(violations).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^no-circular: src\/(types\/vocabulary|ops\/op)\.ts/),
          'layer-types: src/types/vocabulary.ts -> src/ops/op.ts',
          'driver-own-folder: src/drivers/alpha/codec.ts -> src/drivers/beta/codec.ts',
          'simulators-independent: src/simulators/alpha/device.ts -> src/drivers/alpha/codec.ts',
        ]),
      )
      // the downward imports of the same files are fine
      expect(violations.filter((v) => v.startsWith('layer-ops'))).toEqual([])
    } finally {
      dir.cleanup()
    }
  })
})

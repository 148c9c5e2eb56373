#!/usr/bin/env node
// Development entry: oclif development mode (more debug output, source maps); runs dist/ after `npm run build`.
import { execute } from '@oclif/core'

await execute({ development: true, dir: import.meta.url })

import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // @oclif/test captures output itself; vitest's own console interception would swallow it.
    disableConsoleIntercept: true,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // every serve a test starts picks a free admin port (the default 8091 is one per machine)
    env: { DOORCTL_ADMIN_PORT: '0' },
  },
})

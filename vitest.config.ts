import { defineConfig } from 'vitest/config'

// Tests import the workspace packages from source through the `uplink-source` export
// condition, so `pnpm test` needs no build first.
export default defineConfig({
  resolve: { conditions: ['uplink-source'] },
  ssr: { resolve: { conditions: ['uplink-source'] } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // The interop suite has its own command and config (vitest.interop.config.ts).
    exclude: ['test/interop/**', '**/node_modules/**'],
    globalSetup: ['test/provision/unit.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
  },
})

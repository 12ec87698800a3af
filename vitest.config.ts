import { configDefaults, defineConfig } from 'vitest/config'

// Tests import the workspace packages from source through the `uplink-source` export
// condition, so `pnpm test` needs no build first.
const OUTBOX_SUITES = [
  'packages/store-sqlite/test/sqlite-outbox.test.ts',
  'packages/store-sqlite/test/contract.test.ts',
  'packages/store-sqlite/test/driver.test.ts',
  'test/store-*.test.ts',
]

export default defineConfig({
  resolve: { conditions: ['uplink-source'] },
  ssr: { resolve: { conditions: ['uplink-source'] } },
  test: {
    // The interop suite has its own command and config (vitest.interop.config.ts).
    globalSetup: ['test/provision/unit.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        // Everything, with the SQLite driver `auto` picks: better-sqlite3 on Node, bun:sqlite on Bun.
        test: {
          name: 'default',
          include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
          // Setting exclude replaces vitest's own (node_modules and the like): keep it.
          exclude: [...configDefaults.exclude, 'test/packaging/**', 'test/interop/**'],
        },
      },
      {
        extends: true,
        // The outbox suites again on Node's built-in SQLite (child processes inherit the env).
        test: {
          name: 'node-sqlite',
          include: OUTBOX_SUITES,
          env: { UPLINK_TEST_DRIVER: 'node:sqlite' },
        },
      },
      {
        extends: true,
        // pnpm test:packaging: the packed tarballs installed outside the workspace (slow, registry).
        test: {
          name: 'packaging',
          include: ['test/packaging/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 200_000,
        },
      },
    ],
  },
})

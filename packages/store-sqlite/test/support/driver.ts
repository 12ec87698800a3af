import type { SqliteDriver } from '../../src/driver.js'

/**
 * The SQLite driver a run of the outbox suites tests: the vitest project `node-sqlite` sets
 * UPLINK_TEST_DRIVER (child processes inherit it); otherwise what `auto` picks on this runtime.
 */
export const TEST_DRIVER = (process.env.UPLINK_TEST_DRIVER ?? 'auto') as SqliteDriver | 'auto'

/** What `info().driver` must say, so a run meant for one driver cannot pass on another. */
export const EXPECTED_DRIVER: SqliteDriver =
  TEST_DRIVER !== 'auto' ? TEST_DRIVER : process.versions.bun ? 'bun:sqlite' : 'better-sqlite3'

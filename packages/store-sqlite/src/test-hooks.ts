/**
 * Switches for tests only, deliberately not exported from the package's entry point (a test
 * imports this file by its path): the power-loss test runs an outbox that is unsafe on purpose,
 * to show that its filesystem catches one. Set before the outbox is built; read when it opens.
 */
export const testHooks: {
  /** Replaces the synchronous pragma the durability setting picks (use with durability normal). */
  synchronous?: 'OFF'
  /** Checkpoints once the WAL has this many pages (SQLite's default 1000), to cut inside many. */
  walAutocheckpoint?: number
} = {}

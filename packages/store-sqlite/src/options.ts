import { type Clock, checkKeys, type KeyTree, systemClock, UplinkError } from '@uplink/client'
import { DRIVERS, type SqliteDriver } from './driver.js'

export interface SqliteOutboxOptions {
  /** The database file; created if absent. One outbox per file at a time (OUTBOX_LOCKED). */
  path: string
  /** Default 1 000 000. */
  maxMessages?: number
  /** Topic plus payload bytes; default 256 MiB. */
  maxBytes?: number
  /**
   * drop-oldest (default): make room by dropping the oldest telemetry, then (for an arriving
   * alarm) the oldest alarm. reject: refuse the new message with OUTBOX_FULL.
   */
  overflow?: 'drop-oldest' | 'reject'
  /**
   * full (default): a message whose publish() resolved survives power loss (WAL, synchronous
   * FULL). normal: it survives the process dying; the last commits may be lost with the power.
   */
  durability?: 'full' | 'normal'
  /** Publishes that arrive together are committed in one transaction, so they share one fsync. */
  groupCommit?: {
    /** Most messages in one transaction; default 2 000. */
    maxBatch?: number
    /**
     * How long the first publish of a batch waits for company, in ms; default 0: only those that
     * arrive before the event loop turns. More waits longer for fewer, larger commits.
     */
    maxDelayMs?: number
  }
  /** A hard cap on the file, in SQLite pages (4 KiB): past it, publishes get OUTBOX_DISK_FULL. */
  maxPageCount?: number
  /**
   * Memory, in bytes, for keeping copies of the newest messages this process stored, so that
   * draining them after an outage does not read them back from disk (reading is about a third
   * of the drain's cost). Default 16 MiB; 0 reads everything back. The file stays the truth:
   * after a restart, or past this budget, messages come from disk.
   */
  cacheBytes?: number
  /**
   * Space held aside in `<path>-reserve` while there is room, given up when deleting
   * acknowledged messages meets a full disk, so that those deletes (which make the room) can
   * always commit. Default 64 KiB; 0 holds none.
   */
  reserveBytes?: number
  /**
   * The SQLite binding. auto (default): bun:sqlite on Bun; on Node better-sqlite3 if it is
   * installed and loads, else Node's built-in node:sqlite (Node 22.13 and later).
   */
  driver?: SqliteDriver | 'auto'
  /**
   * Where the batched deletes' and `groupCommit.maxDelayMs`'s timers come from; default the
   * system clock. Tests pass the client's ManualClock.
   */
  clock?: Clock
}

export const SQLITE_DEFAULTS = {
  driver: 'auto' as SqliteDriver | 'auto',
  maxMessages: 1_000_000,
  maxBytes: 256 * 2 ** 20,
  overflow: 'drop-oldest' as const,
  durability: 'full' as const,
  groupCommit: { maxBatch: 2_000, maxDelayMs: 0 },
  cacheBytes: 16 * 2 ** 20,
  reserveBytes: 64 * 1024,
  clock: systemClock as Clock,
}

export interface ResolvedSqliteOptions {
  path: string
  maxMessages: number
  maxBytes: number
  overflow: 'drop-oldest' | 'reject'
  durability: 'full' | 'normal'
  maxBatch: number
  maxDelayMs: number
  maxPageCount: number | undefined
  cacheBytes: number
  reserveBytes: number
  driver: SqliteDriver | 'auto'
  clock: Clock
}

function fail(field: string, why: string): never {
  throw new UplinkError('INVALID_OPTIONS', `sqliteOutbox: ${field} ${why}`, { details: { field } })
}

function int(value: unknown, field: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    fail(field, `must be a whole number from ${min} to ${max}`)
  }
  return value
}

/** Every option name: a misspelt one is refused with the name meant, not ignored. */
const KEYS: KeyTree = {
  path: true,
  maxMessages: true,
  maxBytes: true,
  overflow: true,
  durability: true,
  groupCommit: { maxBatch: true, maxDelayMs: true },
  maxPageCount: true,
  cacheBytes: true,
  reserveBytes: true,
  driver: true,
  clock: true,
} satisfies Record<keyof Required<SqliteOutboxOptions>, true | KeyTree>

export function resolveSqliteOptions(input: SqliteOutboxOptions): ResolvedSqliteOptions {
  if (typeof input !== 'object' || input === null) fail('options', 'must be an object')
  checkKeys(input, KEYS, 'sqliteOutbox')
  if (typeof input.path !== 'string' || input.path.length === 0) fail('path', 'must be a file path')
  if (input.path === ':memory:' || input.path.startsWith('file:')) {
    fail('path', 'must be a plain file path: an in-memory database survives nothing')
  }
  // SQLite would stop at the NUL and open a file with a shorter name than the one asked for.
  if (input.path.includes('\u0000')) fail('path', 'must not contain NUL')
  const overflow = input.overflow ?? SQLITE_DEFAULTS.overflow
  if (overflow !== 'drop-oldest' && overflow !== 'reject') {
    fail('overflow', "must be 'drop-oldest' or 'reject'")
  }
  const durability = input.durability ?? SQLITE_DEFAULTS.durability
  if (durability !== 'full' && durability !== 'normal') {
    fail('durability', "must be 'full' or 'normal'")
  }
  const driver = input.driver ?? SQLITE_DEFAULTS.driver
  if (driver !== 'auto' && !DRIVERS.includes(driver)) {
    fail('driver', `must be 'auto' or one of ${DRIVERS.map((d) => `'${d}'`).join(', ')}`)
  }
  const clock = input.clock ?? SQLITE_DEFAULTS.clock
  if (
    typeof clock !== 'object' ||
    clock === null ||
    typeof clock.now !== 'function' ||
    typeof clock.setTimeout !== 'function' ||
    typeof clock.clearTimeout !== 'function'
  ) {
    fail('clock', 'must be a Clock (now, setTimeout, clearTimeout)')
  }
  const group = input.groupCommit ?? {}
  if (typeof group !== 'object' || group === null) fail('groupCommit', 'must be an object')
  const { maxBatch, maxDelayMs } = SQLITE_DEFAULTS.groupCommit
  return {
    path: input.path,
    maxMessages: int(input.maxMessages, 'maxMessages', SQLITE_DEFAULTS.maxMessages, 1, 2 ** 40),
    maxBytes: int(input.maxBytes, 'maxBytes', SQLITE_DEFAULTS.maxBytes, 1, 2 ** 50),
    overflow,
    durability,
    maxBatch: int(group.maxBatch, 'groupCommit.maxBatch', maxBatch, 1, 1_000_000),
    maxDelayMs: int(group.maxDelayMs, 'groupCommit.maxDelayMs', maxDelayMs, 0, 10_000),
    maxPageCount:
      input.maxPageCount === undefined
        ? undefined
        : int(input.maxPageCount, 'maxPageCount', 0, 16, 2 ** 31),
    cacheBytes: int(input.cacheBytes, 'cacheBytes', SQLITE_DEFAULTS.cacheBytes, 0, 2 ** 40),
    reserveBytes: int(input.reserveBytes, 'reserveBytes', SQLITE_DEFAULTS.reserveBytes, 0, 2 ** 30),
    driver,
    clock,
  }
}

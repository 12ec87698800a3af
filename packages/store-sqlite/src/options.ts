import { UplinkError } from '@uplink/client'

export interface SqliteOutboxOptions {
  /** The database file; created if absent. One outbox per file at a time. */
  path: string
  /** Default 1 000 000. */
  maxMessages?: number
  /** Topic plus payload bytes; default 256 MiB. */
  maxBytes?: number
  /** drop-oldest (default): telemetry first, then for an arriving alarm the oldest alarm. reject: OUTBOX_FULL. */
  overflow?: 'drop-oldest' | 'reject'
  /** full (default): survives power loss. normal: survives a process crash, faster. */
  durability?: 'full' | 'normal'
  /** Most messages in one group-commit transaction; default 1 000. */
  batchSize?: number
  /** Hard cap on the file, in SQLite pages (4 KiB): past it, publishes fail OUTBOX_DISK_FULL. */
  maxPageCount?: number
}

export const SQLITE_DEFAULTS = {
  maxMessages: 1_000_000,
  maxBytes: 256 * 2 ** 20,
  overflow: 'drop-oldest' as const,
  durability: 'full' as const,
  batchSize: 1_000,
}

export type ResolvedSqliteOptions = Required<Omit<SqliteOutboxOptions, 'maxPageCount'>> & {
  maxPageCount?: number | undefined
}

function fail(field: string, why: string): never {
  throw new UplinkError('INVALID_OPTIONS', `sqliteOutbox: ${field} ${why}`, { details: { field } })
}

function positiveInt(value: unknown, field: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    fail(field, 'must be a positive whole number')
  }
  return value
}

export function resolveSqliteOptions(input: SqliteOutboxOptions): ResolvedSqliteOptions {
  if (typeof input !== 'object' || input === null) fail('options', 'must be an object')
  if (typeof input.path !== 'string' || input.path.length === 0) fail('path', 'must be a file path')
  if (input.path === ':memory:')
    fail('path', 'must be a file: an in-memory database survives nothing')
  const overflow = input.overflow ?? SQLITE_DEFAULTS.overflow
  if (overflow !== 'drop-oldest' && overflow !== 'reject') {
    fail('overflow', "must be 'drop-oldest' or 'reject'")
  }
  const durability = input.durability ?? SQLITE_DEFAULTS.durability
  if (durability !== 'full' && durability !== 'normal')
    fail('durability', "must be 'full' or 'normal'")
  return {
    path: input.path,
    maxMessages: positiveInt(input.maxMessages, 'maxMessages', SQLITE_DEFAULTS.maxMessages),
    maxBytes: positiveInt(input.maxBytes, 'maxBytes', SQLITE_DEFAULTS.maxBytes),
    overflow,
    durability,
    batchSize: positiveInt(input.batchSize, 'batchSize', SQLITE_DEFAULTS.batchSize),
    maxPageCount:
      input.maxPageCount === undefined
        ? undefined
        : positiveInt(input.maxPageCount, 'maxPageCount', 0),
  }
}

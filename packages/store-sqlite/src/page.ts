import type { SqliteDriver } from './driver.js'
import { ALARM, type PriorityCode, type Row } from './row.js'
import type { Statements } from './statements.js'

/**
 * Reading the drain's next rows in one SQLite value per kind, not one JS value per column per
 * row. A row read the plain way is nine values built by the driver, its payload a Buffer with a
 * backing store of its own: about 2-3 µs a row, the largest share of what draining a backlog
 * after a restart costs beyond the client's own work (bench/outbox). Here SQLite concatenates a
 * page's payloads into one blob and its other columns into one JSON text; the rows are built
 * from those, each payload a view of the page's blob.
 *
 * One blob holds a page's payloads, so a page must stay below SQLite's longest value
 * (SQLITE_MAX_LENGTH, 10^9 bytes unless the build lowers it). The ledger keeps all that is
 * stored under `maxBytes`, so an outbox allowed less than PAGED_MAX_BYTES can never exceed it;
 * one allowed more reads row by row (the `after` statements), as before. The statements are in
 * statements.ts (`pages`).
 */
export const PAGED_MAX_BYTES = 512 * 2 ** 20

/**
 * Where reading a page whole pays. Measured on Node 24 (a 20 000-row backlog, pages of 256,
 * fastest and median of 15 to 21 passes, µs a row): better-sqlite3 1.99/3.07 row by row and
 * 1.25/2.12 whole; node:sqlite 1.31/1.84 and 1.55/1.86; bun:sqlite 0.71/1.41 and 1.48/2.08.
 * Only better-sqlite3 builds its values dearly enough (a Buffer of its own per BLOB) for the
 * JSON to cost less.
 */
export const readsPagesWhole = (driver: SqliteDriver): boolean => driver === 'better-sqlite3'

/** A stored row as the JSON half of a page holds it: its payload's length, not its bytes. */
type Packed = [
  id: number,
  topic: string,
  length: number,
  qos: number,
  retain: number,
  enqueuedAt: number,
  expiresAt: number | null,
  size: number,
]

/**
 * Up to `limit` rows of `priority` with `after < id < before`, in id order; undefined if SQLite could
 * not build the page, or fed its aggregates in another order (the caller then reads row by row).
 * Both aggregates see the rows in one pass, so they agree with each other whatever the order; the
 * order itself is the subquery's, which SQLite keeps in practice but does not promise, and an
 * aggregate's own ORDER BY (SQLite 3.44) sorts every row again: it doubled the query's cost.
 * Checking is cheaper.
 */
export function readPage(
  pages: NonNullable<Statements['pages']>,
  priority: PriorityCode,
  after: number,
  before: number,
  limit: number,
): Row[] | undefined {
  const stmt = priority === ALARM ? pages.alarms : pages.telemetry
  let json: string
  let blob: Uint8Array | null
  try {
    ;[json, blob] = stmt.values(after, before, limit)[0] as [string, Uint8Array | null]
  } catch {
    // A page SQLite cannot build as one value (SQLITE_TOOBIG: a file that holds more than the
    // `maxBytes` it is now opened with). Row by row it reads; a fault of the file itself shows
    // there, and is reported there.
    return undefined
  }
  const packed = JSON.parse(json) as Packed[]
  // No rows, or only empty payloads: SQLite gives no blob, or an empty one.
  const bytes = blob ?? new Uint8Array(0)
  const payloads = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const rows = new Array<Row>(packed.length)
  let at = 0
  let last = after
  for (let i = 0; i < packed.length; i++) {
    const [id, topic, length, qos, retain, enqueuedAt, expiresAt, size] = packed[i] as Packed
    if (id <= last) return undefined
    last = id
    rows[i] = [
      id,
      priority,
      topic,
      payloads.subarray(at, at + length),
      qos,
      retain,
      enqueuedAt,
      expiresAt,
      size,
    ]
    at += length
  }
  return rows
}

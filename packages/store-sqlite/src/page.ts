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

/** Up to `limit` rows of `priority` with ids above `after`, in id order. */
export function readPage(
  pages: NonNullable<Statements['pages']>,
  priority: PriorityCode,
  after: number,
  limit: number,
): Row[] {
  const stmt = priority === ALARM ? pages.alarms : pages.telemetry
  const [json, blob] = stmt.values(after, limit)[0] as [string, Uint8Array | null]
  const packed = JSON.parse(json) as Packed[]
  // No rows, or only empty payloads: SQLite gives no blob, or an empty one.
  const bytes = blob ?? new Uint8Array(0)
  const payloads = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const rows = new Array<Row>(packed.length)
  let at = 0
  for (let i = 0; i < packed.length; i++) {
    const [id, topic, length, qos, retain, enqueuedAt, expiresAt, size] = packed[i] as Packed
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

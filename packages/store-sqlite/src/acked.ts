import type { Row } from './row.js'
import type { Statements } from './statements.js'

/** A run of consecutive ids, every one acknowledged, whose rows are still in the file. */
export interface AckedRange {
  readonly lo: number
  readonly hi: number
  /** Rows and bytes (topic plus payload) of the run, for the totals. */
  readonly rows: number
  readonly bytes: number
}

/** Above every id: the open end of a read between ranges. */
export const NO_BOUND = Number.MAX_SAFE_INTEGER

/** Reads rows of one priority with `after < id < before`, in id order, at most `limit`. */
export type ReadBetween = (after: number, before: number, limit: number) => Row[]

/**
 * Ranges kept at most: past it the oldest are deleted. Runs break where a row left on its own
 * (an alarm acknowledged apart from the telemetry around it, a dropped or expired row), so this
 * stays small; a read looks past each range in its way with one more query.
 */
export const MAX_RANGES = 64
/** What acknowledged rows may keep of the outbox's bounds before the oldest are deleted. */
export const KEEP_FRACTION = 1 / 8

/** The ranges and their totals as one value: what a rolled-back transaction puts back. */
export interface AckedState {
  ranges: readonly AckedRange[]
  rows: number
  bytes: number
}

/**
 * Acknowledged messages marked by range in the `acked` table instead of deleted. Deleting a row
 * rewrites its page into the WAL and, at the checkpoint, into the file again: 1.5-2.5 µs a row
 * here, most of what a drain after a restart spends beyond raw MQTT.js's work (bench/outbox),
 * and twice the backlog's bytes written to the flash of a gateway. Emptying the whole table
 * (`DELETE FROM messages` without a WHERE, SQLite's truncate) hands its pages to the freelist
 * without rewriting them. So an acknowledged run is one row in `acked`, its messages stay where
 * they are, and once nothing else is left the table is emptied in one statement. Past
 * KEEP_FRACTION of `maxMessages` or `maxBytes`, or MAX_RANGES, the oldest ranges are deleted
 * row by row, as every acknowledgement once was; a full disk deletes them all.
 *
 * Reads pass over the ranges (`live`); the totals count only what is not in one. Every change
 * replaces `state` whole, so the ledger's transaction can put it back on a rollback.
 */
export class AckedRanges {
  state: AckedState = { ranges: [], rows: 0, bytes: 0 }

  constructor(
    private readonly sql: Statements,
    /** Rows and bytes the ranges may hold before the oldest go. */
    private readonly keep: { rows: number; bytes: number },
  ) {}

  /** The ranges a file holds, with their rows counted by SQLite. */
  load(): void {
    const ranges = (this.sql.ackedRanges.values() as number[][]).map(
      ([lo, hi, rows, bytes]): AckedRange => ({
        lo: Number(lo),
        hi: Number(hi),
        rows: Number(rows),
        bytes: Number(bytes),
      }),
    )
    this.state = totalled(ranges)
  }

  get rows(): number {
    return this.state.rows
  }

  get bytes(): number {
    return this.state.bytes
  }

  /** The highest id a range holds, or 0. */
  get last(): number {
    const { ranges } = this.state
    return ranges.length > 0 ? (ranges[ranges.length - 1] as AckedRange).hi : 0
  }

  /** Whether `id` is in a range: acknowledged already. */
  has(id: number): boolean {
    const r = this.state.ranges[this.firstEndingAfter(id - 1)]
    return r !== undefined && r.lo <= id
  }

  /**
   * Up to `limit` rows after `after` that no range holds, in id order. Between ranges it reads
   * with an upper bound, so a range's rows are never read; with no range ahead that is one read.
   */
  live(after: number, limit: number, read: ReadBetween): Row[] {
    const { ranges } = this.state
    if (ranges.length === 0) return read(after, NO_BOUND, limit)
    let rows: Row[] = []
    for (let i = this.firstEndingAfter(after); ; i++) {
      const r = ranges[i]
      if (r && r.lo <= after + 1) {
        after = r.hi
        continue
      }
      const got = read(after, r ? r.lo : NO_BOUND, limit - rows.length)
      rows = rows.length === 0 ? got : rows.concat(got)
      if (rows.length >= limit || !r) return rows
      after = r.hi
    }
  }

  /**
   * Marks `lo..hi` (consecutive ids, each acknowledged and stored, none in a range) as a range of
   * `rows` rows and `bytes` bytes, joined to a range it touches; inside a transaction.
   */
  add(lo: number, hi: number, rows: number, bytes: number): void {
    const { sql } = this
    const ranges = this.state.ranges.slice()
    const at = this.firstEndingAfter(lo)
    const before = ranges[at - 1]
    const after = ranges[at]
    const joinsBefore = before !== undefined && before.hi + 1 === lo
    const joinsAfter = after !== undefined && hi + 1 === after.lo
    let range: AckedRange = { lo, hi, rows, bytes }
    if (joinsBefore) range = joined(before, range)
    if (joinsAfter) range = joined(range, after)
    // One row for the joined range: the one before grows, or a new one takes the one after's place.
    if (joinsAfter) sql.ackedDrop.run(after.lo)
    if (joinsBefore) sql.ackedGrow.run(range.hi, before.lo)
    else sql.ackedInsert.run(range.lo, range.hi)
    ranges.splice(joinsBefore ? at - 1 : at, Number(joinsBefore) + Number(joinsAfter), range)
    this.state = { ranges, rows: this.state.rows + rows, bytes: this.state.bytes + bytes }
  }

  /**
   * Lets go of kept rows, inside a transaction: every one if nothing else is stored (`live` is 0:
   * the table is emptied in one statement, once SQLite's count agrees), or `all`; else the oldest
   * ranges while the ranges hold more than they may, down to half of it. Returns false if
   * deleting found other than the rows counted: the caller counts its totals again.
   */
  release(live: number, all: boolean): boolean {
    const { sql, state, keep } = this
    if (state.rows === 0) return true
    if (live === 0 && Number((sql.countRows.get() as { n: number }).n) === state.rows) {
      sql.clear.run()
      sql.ackedClear.run()
      this.state = totalled([])
      return true
    }
    const over = (s: AckedState, share: number) =>
      s.rows > keep.rows * share ||
      s.bytes > keep.bytes * share ||
      s.ranges.length > MAX_RANGES * share
    if (!all && !over(state, 1)) return true
    let exact = true
    let ranges = state.ranges
    while (ranges.length > 0 && (all || over(totalled(ranges), 0.5))) {
      const oldest = ranges[0] as AckedRange
      if (sql.removeRange.run(oldest.lo, oldest.hi).changes !== oldest.rows) exact = false
      sql.ackedDrop.run(oldest.lo)
      ranges = ranges.slice(1)
    }
    this.state = totalled(ranges)
    return exact
  }

  /** The index of the first range whose `hi` is above `id`, or the number of ranges. */
  private firstEndingAfter(id: number): number {
    const { ranges } = this.state
    let lo = 0
    let hi = ranges.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((ranges[mid] as AckedRange).hi > id) hi = mid
      else lo = mid + 1
    }
    return lo
  }
}

const joined = (a: AckedRange, b: AckedRange): AckedRange => ({
  lo: a.lo,
  hi: b.hi,
  rows: a.rows + b.rows,
  bytes: a.bytes + b.bytes,
})

function totalled(ranges: readonly AckedRange[]): AckedState {
  let rows = 0
  let bytes = 0
  for (const r of ranges) {
    rows += r.rows
    bytes += r.bytes
  }
  return { ranges, rows, bytes }
}

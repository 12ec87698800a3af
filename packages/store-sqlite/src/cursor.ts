import type { OutboxEntry } from '@uplink/client'
import type { ReadBetween } from './acked.js'
import type { Ledger } from './ledger.js'
import { readPage } from './page.js'
import type { Removals } from './removals.js'
import { ALARM, COL, type PriorityCode, type Row, TELEMETRY, toEntry } from './row.js'
import type { RowCaches } from './row-cache.js'
import { rowsBetween, type Statements } from './statements.js'

/** Where the drain is: the last row looked at, in drain order (alarms first, then by id). */
interface Position {
  priority: PriorityCode
  id: number
}
const START: Position = { priority: ALARM, id: 0 }
/**
 * Rows read ahead of the drain cursor at a time: a query costs about what twenty of its rows do,
 * so a long page halves what reading a backlog back from disk costs beyond the rows themselves;
 * READ_AHEAD_BYTES keeps a page of large messages to a few hundred KiB all the same.
 */
export const READ_AHEAD = { rows: 256, minRows: 8, bytes: 256 * 1024 }

/** Rows a read-ahead page holds, from the average stored message. */
export function pageRows(ledger: Pick<Ledger, 'messages' | 'bytes'>): number {
  const average = ledger.messages > 0 ? ledger.bytes / ledger.messages : 0
  const fit = average > 0 ? Math.floor(READ_AHEAD.bytes / average) : READ_AHEAD.rows
  return Math.max(READ_AHEAD.minRows, Math.min(READ_AHEAD.rows, fit))
}

/**
 * The drain cursor, and which messages are out. The drainer asks for the next messages on every
 * acknowledgement; reading from the head each time would walk the whole window again. So `take`
 * resumes after the last row it looked at, which is sound while every live row behind the cursor
 * is out or acknowledged. That holds until messages are released (their connection closed) or
 * an alarm arrives behind a telemetry cursor: then the drain starts again from the head, passing
 * over what is still out.
 */
export class DrainCursor {
  private cursor: Position = START
  // Rows after the cursor, read ahead in one query: a query per acknowledgement costs several
  // times what its row does. `readTo` is where the next read starts; rows from the cursor up to
  // it are exactly `ahead` from `aheadAt` on.
  private ahead: Row[] = []
  private aheadAt = 0
  private readTo: Position = START
  /** Every row handed out and not yet acknowledged, released or dropped, with its size. */
  private readonly out = new Map<number, number>()
  /** Reads from the file, by priority code: a page whole where the driver pays for it. */
  private readonly read: readonly [ReadBetween, ReadBetween]

  constructor(
    sql: Statements,
    private readonly caches: RowCaches,
    private readonly removals: Removals,
    private readonly ledger: Ledger,
  ) {
    const { pages } = sql
    const reader = (priority: PriorityCode): ReadBetween => {
      const byRow = rowsBetween(sql, priority)
      if (!pages) return byRow
      return (after, before, limit) =>
        readPage(pages, priority, after, before, limit) ?? byRow(after, before, limit)
    }
    this.read = [reader(ALARM), reader(TELEMETRY)]
  }

  /**
   * Up to `limit` rows not out, in drain order, now out; the expired ones it met go to
   * `expired` instead (not out: the caller deletes them).
   */
  take(limit: number, now: number, expired: Row[]): OutboxEntry[] {
    const batch: OutboxEntry[] = []
    const { out, removals } = this
    // From the head, the rows out come first: read past them in one query.
    let extra = this.cursor === START ? out.size + removals.size : 0
    try {
      this.scan(batch, limit, now, expired, extra)
    } catch (err) {
      // Nothing of a failed read was handed out: it goes again, from the head.
      this.release(batch.map((e) => e.id))
      throw err
    }
    return batch
  }

  private scan(batch: OutboxEntry[], limit: number, now: number, expired: Row[], extra: number) {
    const { out, removals } = this
    // The cursor moves once, to the last row looked at: no position object built per row. A read
    // that throws leaves it where it was, so what this scan passed is looked at again.
    let last: Row | undefined
    while (batch.length < limit) {
      if (this.aheadAt >= this.ahead.length) {
        if (!this.readAhead(limit - batch.length + extra)) break
        extra = 0
      }
      const row = this.ahead[this.aheadAt++] as Row
      last = row
      const id = row[COL.id]
      if (removals.has(id) || out.has(id)) continue
      const expiresAt = row[COL.expiresAt]
      if (expiresAt !== null && expiresAt <= now) expired.push(row)
      else {
        out.set(id, row[COL.size])
        batch.push(toEntry(row))
      }
    }
    if (last) this.cursor = { priority: last[COL.priority] as PriorityCode, id: last[COL.id] }
  }

  /** Back into the drain: they come again from the head, before what follows them. */
  release(ids: Iterable<number>): void {
    let any = false
    for (const id of ids) if (this.out.delete(id)) any = true
    if (any) this.rewind()
  }

  /**
   * No longer out (acknowledged or dropped); its size if it was out. An acknowledged id may be
   * among the rows read ahead (a late PUBACK after a release): once deleted it must not be
   * handed out from there. They are in id order and of one priority, so an id within their span
   * may be among them: read again rather than search.
   */
  settle(id: number): number | undefined {
    const size = this.out.get(id)
    this.out.delete(id)
    const first = this.ahead[this.aheadAt]
    if (first && id >= first[COL.id] && id <= (this.ahead[this.ahead.length - 1] as Row)[COL.id]) {
      this.forgetAhead()
    }
    return size
  }

  /** A dropped row leaves the drain: not out any more, and perhaps read ahead. */
  dropped(id: number): void {
    this.out.delete(id)
  }

  /** A row was stored: an alarm drains before any telemetry, so look again if the drain is there. */
  stored(priority: PriorityCode): void {
    if (priority !== ALARM) return
    // Before the cursor: start again; before the telemetry read ahead of it: read again.
    if (this.cursor.priority === TELEMETRY) this.rewind()
    else if (this.readTo.priority === TELEMETRY) this.forgetAhead()
  }

  /** Rows read ahead may have been deleted: read them again. */
  forgetAhead(): void {
    this.ahead = []
    this.aheadAt = 0
    this.readTo = this.cursor
  }

  /** Start the drain again from the head. */
  rewind(): void {
    this.cursor = START
    this.forgetAhead()
  }

  /** Reads the next rows after `readTo` into `ahead`; false at the end of the queue. */
  private readAhead(want: number): boolean {
    for (;;) {
      const n = Math.max(want, pageRows(this.ledger))
      const from = this.readTo
      const alarms = from.priority === ALARM
      const cache = this.caches.of(from.priority)
      const rows = cache.covers(from.id)
        ? cache.after(from.id, n)
        : this.ledger.acked.live(from.id, n, this.read[from.priority])
      const last = rows[rows.length - 1]
      if (last) this.readTo = { priority: last[COL.priority] as PriorityCode, id: last[COL.id] }
      // Fewer than asked: that was the last of the alarms. Telemetry follows, from its start.
      if (alarms && rows.length < n) this.readTo = { priority: TELEMETRY, id: 0 }
      if (rows.length > 0) {
        this.ahead = rows
        this.aheadAt = 0
        return true
      }
      if (!alarms) return false
    }
  }
}

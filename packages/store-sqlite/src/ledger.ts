import type { AckedRanges } from './acked.js'
import type { Database } from './driver.js'
import type { Totals } from './statements.js'

/**
 * The running totals of what is committed, kept in memory by every transaction, and the
 * transactions themselves: a failed one rolls back and puts the totals back as they were, and
 * the acknowledged ranges with them.
 */
export class Ledger {
  messages: number
  bytes: number
  // Ids come from this counter, not from SQLite, which would reuse the highest id once the table
  // empties: a late PUBACK for an old id must never delete a new message. Across a restart
  // nothing is in flight, so continuing after the highest stored id is enough.
  nextId: number
  // No telemetry row has an id at or below this: overflow's search for the oldest starts here.
  // Sound because new rows always get higher ids, so the oldest telemetry only moves forward.
  telemetryFloor = 0
  /** Transactions committed since open: group commit shows as far fewer than messages. */
  transactions = 0

  constructor(
    private readonly db: Database,
    /** The file's `synchronous` level (see open.ts), restored after a relaxed commit. */
    private readonly synchronous: string,
    totals: Totals,
    /** The acknowledged rows still in the file, which the totals leave out. */
    readonly acked: AckedRanges,
  ) {
    this.messages = totals.n
    this.bytes = totals.bytes
    this.nextId = totals.last + 1
  }

  /** The committed counts again, from SQLite: after a delete removed fewer rows than expected. */
  recount(totals: Totals): void {
    this.messages = totals.n
    this.bytes = totals.bytes
  }

  /**
   * Runs `fn` in one transaction; on failure rolls back and restores the totals. `durable: false`
   * commits without an fsync: for deletes, which at worst come back after a power loss as
   * duplicates, never as losses. The next durable commit syncs them along with itself.
   */
  transaction<T>(fn: () => T, durable: boolean): T {
    const { messages, bytes, nextId, telemetryFloor } = this
    const acked = this.acked.state
    const relax = !durable && this.synchronous === 'FULL'
    if (relax) this.db.exec('PRAGMA synchronous = NORMAL')
    this.db.exec('BEGIN IMMEDIATE')
    try {
      const result = fn()
      this.db.exec('COMMIT')
      this.transactions++
      return result
    } catch (err) {
      try {
        this.db.exec('ROLLBACK')
      } catch {
        // SQLite may already have rolled back (e.g. on SQLITE_FULL).
      }
      Object.assign(this, { messages, bytes, nextId, telemetryFloor })
      this.acked.state = acked
      throw err
    } finally {
      if (relax) this.db.exec(`PRAGMA synchronous = ${this.synchronous}`)
    }
  }
}

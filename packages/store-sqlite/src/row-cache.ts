import { ALARM, COL, type Row, TELEMETRY } from './row.js'

export type { Row } from './row.js'

/** What a cached row costs beyond its topic and payload bytes: the array, the Buffer object. */
const ROW_OVERHEAD = 160

/**
 * The newest rows of one priority that this process committed, kept in memory up to a byte
 * budget so that the drain does not read them back from disk: reading a row costs several
 * microseconds (one JS value built per column), about as much as MQTT.js takes to publish it.
 *
 * The invariant the drain relies on: every stored row of this priority with an id above `floor`
 * is here. Rows only ever join at the top (ids grow), the budget evicts from the bottom, and a
 * deleted row is marked gone and let go once it reaches the bottom, so the cached ids stay one
 * unbroken stretch of the queue. Rows older than `floor` (from before a restart, or evicted) are
 * read from SQLite.
 */
export class RowCache {
  private rows: Array<Row | undefined> = []
  private at = 0
  private bytes = 0
  private readonly gone = new Set<number>()

  constructor(
    private readonly budget: number,
    /** Every row of this priority with a higher id is cached. */
    public floor: number,
  ) {}

  /** With no budget nothing is kept, and the caller need not build rows to `add`. */
  get keeps(): boolean {
    return this.budget > 0
  }

  /** Is every row after `id` here? Then `after()` answers instead of a query. */
  covers(id: number): boolean {
    return this.keeps && id >= this.floor
  }

  /** A committed row, newer than every row added before. */
  add(row: Row): void {
    this.rows.push(row)
    this.bytes += row[COL.size] + ROW_OVERHEAD
    while (this.bytes > this.budget) this.letGo()
  }

  /** A committed delete; ids of rows not here (the other priority, or below the floor) are ignored. */
  delete(id: number): void {
    if (id <= this.floor || this.at >= this.rows.length) return
    // Acknowledgements come mostly in order: the bottom row, let go at once without a search.
    if ((this.rows[this.at] as Row)[COL.id] !== id) {
      const i = this.search(id - 1)
      if (i >= this.rows.length || (this.rows[i] as Row)[COL.id] !== id) return
      this.gone.add(id)
      return
    }
    this.letGo()
    while (this.at < this.rows.length && this.gone.has((this.rows[this.at] as Row)[COL.id])) {
      this.letGo()
    }
  }

  /** Up to `limit` rows with ids above `id`, in id order; `covers(id)` must hold. */
  after(id: number, limit: number): Row[] {
    const out: Row[] = []
    for (let i = this.search(id); i < this.rows.length && out.length < limit; i++) {
      const row = this.rows[i] as Row
      if (!this.gone.has(row[COL.id])) out.push(row)
    }
    return out
  }

  /** Drops the bottom row and raises the floor past it. */
  private letGo(): void {
    const row = this.rows[this.at] as Row
    this.rows[this.at++] = undefined
    this.bytes -= row[COL.size] + ROW_OVERHEAD
    this.gone.delete(row[COL.id])
    this.floor = row[COL.id]
    // Reclaim the emptied front of the array once it is most of it: amortised O(1) per row.
    if (this.at > 1024 && this.at * 2 > this.rows.length) {
      this.rows = this.rows.slice(this.at)
      this.at = 0
    }
  }

  /** Index of the first row with an id above `id`. */
  private search(id: number): number {
    let lo = this.at
    let hi = this.rows.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.rows[mid] as Row)[COL.id] <= id) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/**
 * One cache per priority, so that each stays one unbroken stretch of its queue. Alarms are few:
 * an eighth of the budget is theirs.
 */
export class RowCaches {
  readonly byPriority: readonly [alarm: RowCache, telemetry: RowCache]

  constructor(budget: number, floor: number) {
    const alarms = Math.floor(budget / 8)
    this.byPriority = [new RowCache(alarms, floor), new RowCache(budget - alarms, floor)]
  }

  of(priority: number): RowCache {
    return this.byPriority[priority === ALARM ? ALARM : TELEMETRY]
  }

  /** A committed delete, of either priority. */
  delete(id: number): void {
    this.byPriority[ALARM].delete(id)
    this.byPriority[TELEMETRY].delete(id)
  }
}

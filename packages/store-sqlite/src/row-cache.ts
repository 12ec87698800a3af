import { ALARM, COL, type Row, TELEMETRY } from './row.js'

export type { Row } from './row.js'

/**
 * What a cached row costs beyond its topic and payload bytes: its slots in a chunk's columns
 * (five numbers, two bytes, a string reference, a payload end).
 */
const ROW_OVERHEAD = 64

/** Rows, and payload bytes, a chunk holds at most (a larger payload gets a chunk to itself). */
const CHUNK_ROWS = 1024
const CHUNK_BYTES = 256 * 1024

/**
 * Consecutive cached rows of one priority, as columns: the payloads copied into one buffer, the
 * numbers into typed arrays. A row kept as an array with its own Buffer is three or four objects
 * the collector must trace and move for as long as it stays cached; a chunk is a dozen for a
 * thousand rows. Rows are built again, as arrays, when the drain reads them.
 */
class Chunk {
  readonly ids: Float64Array
  readonly topics: string[] = []
  readonly payloads: Buffer
  /** Where each row's payload ends in `payloads` (it starts where the one before ends). */
  readonly ends: Float64Array
  readonly qos: Uint8Array
  readonly retain: Uint8Array
  readonly enqueuedAt: Float64Array
  /** NaN for none. */
  readonly expiresAt: Float64Array
  readonly sizes: Float64Array
  /** Rows held. */
  length = 0
  /** Rows below this index were let go. */
  at = 0

  constructor(
    readonly priority: number,
    rows: number,
    bytes: number,
  ) {
    this.ids = new Float64Array(rows)
    this.ends = new Float64Array(rows)
    this.qos = new Uint8Array(rows)
    this.retain = new Uint8Array(rows)
    this.enqueuedAt = new Float64Array(rows)
    this.expiresAt = new Float64Array(rows)
    this.sizes = new Float64Array(rows)
    this.payloads = Buffer.allocUnsafeSlow(bytes)
  }

  /** Copies `row` in; false if it does not fit. */
  push(row: Row): boolean {
    const i = this.length
    const payload = row[COL.payload]
    const start = i === 0 ? 0 : (this.ends[i - 1] as number)
    if (i === this.ids.length || start + payload.byteLength > this.payloads.length) return false
    // A copy: the caller may reuse its buffer once publish() resolved.
    this.payloads.set(payload, start)
    this.ends[i] = start + payload.byteLength
    this.ids[i] = row[COL.id]
    this.topics.push(row[COL.topic])
    this.qos[i] = row[COL.qos]
    this.retain[i] = row[COL.retain]
    this.enqueuedAt[i] = row[COL.enqueuedAt]
    this.expiresAt[i] = row[COL.expiresAt] ?? Number.NaN
    this.sizes[i] = row[COL.size]
    this.length++
    return true
  }

  get last(): number {
    return this.ids[this.length - 1] as number
  }

  /** Row `i` as the drain reads it; its payload a view of this chunk's copy. */
  row(i: number): Row {
    const expiresAt = this.expiresAt[i] as number
    const start = i === 0 ? 0 : (this.ends[i - 1] as number)
    return [
      this.ids[i] as number,
      this.priority,
      this.topics[i] as string,
      this.payloads.subarray(start, this.ends[i]),
      this.qos[i] as number,
      this.retain[i] as number,
      this.enqueuedAt[i] as number,
      Number.isNaN(expiresAt) ? null : expiresAt,
      this.sizes[i] as number,
    ]
  }

  /** Index of the first row from `at` on with an id above `id`. */
  search(id: number): number {
    let lo = this.at
    let hi = this.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.ids[mid] as number) <= id) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/**
 * The newest rows of one priority that this process committed, kept in memory up to a byte
 * budget so that the drain does not read them back from disk: reading a row costs a few
 * microseconds (one JS value built per column), a good part of what MQTT.js takes to publish it.
 *
 * The invariant the drain relies on: every stored row of this priority with an id above `floor`
 * is here. Rows only ever join at the top (ids grow), the budget evicts from the bottom, and a
 * deleted row is marked gone and let go once it reaches the bottom, so the cached ids stay one
 * unbroken stretch of the queue. Rows older than `floor` (from before a restart, or evicted) are
 * read from SQLite.
 */
export class RowCache {
  private chunks: Chunk[] = []
  /** Chunks below this index were let go. */
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

  /** A committed row, newer than every row added before; its payload is copied. */
  add(row: Row): void {
    const { chunks, budget } = this
    if (!this.keeps) {
      this.floor = row[COL.id]
      return
    }
    let top = chunks.length > this.at ? chunks[chunks.length - 1] : undefined
    if (!top?.push(row)) {
      const rows = Math.max(1, Math.min(CHUNK_ROWS, Math.ceil(budget / ROW_OVERHEAD)))
      const bytes = Math.max(Math.min(CHUNK_BYTES, budget), row[COL.payload].byteLength)
      top = new Chunk(row[COL.priority], rows, bytes)
      top.push(row)
      chunks.push(top)
    }
    this.bytes += row[COL.size] + ROW_OVERHEAD
    while (this.bytes > budget) this.letGo()
  }

  /** A committed delete; ids of rows not here (the other priority, or below the floor) are ignored. */
  delete(id: number): void {
    const bottom = this.chunks[this.at]
    if (id <= this.floor || !bottom) return
    // Acknowledgements come mostly in order: the bottom row, let go at once without a search.
    if (bottom.ids[bottom.at] !== id) {
      const found = this.find(id)
      if (found) this.gone.add(id)
      return
    }
    this.letGo()
    for (let c = this.chunks[this.at]; c && this.gone.has(c.ids[c.at] as number); ) {
      this.letGo()
      c = this.chunks[this.at]
    }
  }

  /** Up to `limit` rows with ids above `id`, in id order; `covers(id)` must hold. */
  after(id: number, limit: number): Row[] {
    const out: Row[] = []
    const { chunks, gone } = this
    for (let c = this.chunkAfter(id); c < chunks.length && out.length < limit; c++) {
      const chunk = chunks[c] as Chunk
      for (let i = chunk.search(id); i < chunk.length && out.length < limit; i++) {
        if (!gone.has(chunk.ids[i] as number)) out.push(chunk.row(i))
      }
    }
    return out
  }

  /** Is `id` among the rows here? */
  private find(id: number): boolean {
    const chunk = this.chunks[this.chunkAfter(id - 1)]
    return chunk?.ids[chunk.search(id - 1)] === id
  }

  /** Drops the bottom row and raises the floor past it. */
  private letGo(): void {
    const chunk = this.chunks[this.at] as Chunk
    const i = chunk.at++
    const id = chunk.ids[i] as number
    this.bytes -= (chunk.sizes[i] as number) + ROW_OVERHEAD
    this.gone.delete(id)
    this.floor = id
    if (chunk.at < chunk.length) return
    this.chunks[this.at++] = undefined as unknown as Chunk
    // Reclaim the emptied front of the array once it is most of it: amortised O(1) per chunk.
    if (this.at > 64 && this.at * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.at)
      this.at = 0
    }
  }

  /** Index of the first chunk whose last row has an id above `id`. */
  private chunkAfter(id: number): number {
    let lo = this.at
    let hi = this.chunks.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.chunks[mid] as Chunk).last <= id) lo = mid + 1
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

import type { Clock } from '@uplink/client'
import type { Ledger } from './ledger.js'
import type { RowCaches } from './row-cache.js'
import { countTotals, type Statements } from './statements.js'

/** Acknowledged ids are deleted together once this many wait, or after REMOVAL_DELAY_MS. */
export const REMOVAL_BATCH = 512
export const REMOVAL_DELAY_MS = 20

/**
 * Acknowledged ids awaiting their batched delete. Deletes are not urgent (one lost in a crash
 * means a duplicate, never a loss): they ride along with the next group commit, or go on their
 * own once REMOVAL_BATCH wait or REMOVAL_DELAY_MS passed. Their sizes, when known, let stats()
 * count them as gone at once.
 */
export class Removals {
  private readonly waiting = new Map<number, number | undefined>()
  /** Messages and bytes of the waiting ids whose size is known. */
  messages = 0
  bytes = 0
  private timer: unknown

  constructor(
    private readonly sql: Statements,
    private readonly ledger: Ledger,
    private readonly caches: RowCaches,
    private readonly clock: Clock,
    /** Deletes what waits, in its own transaction. */
    private readonly apply: () => void,
  ) {}

  get size(): number {
    return this.waiting.size
  }

  has(id: number): boolean {
    return this.waiting.has(id)
  }

  /** An acknowledged id, with its size if it is known; false if it already waits. */
  add(id: number, size: number | undefined): boolean {
    if (this.waiting.has(id)) return false
    this.waiting.set(id, size)
    if (size !== undefined) {
      this.messages++
      this.bytes += size
    }
    if (this.waiting.size >= REMOVAL_BATCH) this.apply()
    else this.timer ??= this.clock.setTimeout(this.apply, REMOVAL_DELAY_MS)
    return true
  }

  /** The timer is not needed: what waits is being deleted now. */
  cancelTimer(): void {
    this.clock.clearTimeout(this.timer)
    this.timer = undefined
  }

  /** Deletes the waiting rows; inside a transaction. Returns the ids it took. */
  deleteAll(): number[] {
    const { sql, ledger, waiting } = this
    const ids = [...waiting.keys()].sort((a, b) => a - b)
    let recount = false
    for (let i = 0; i < ids.length; ) {
      // Acknowledgements come mostly in order, so most ids form runs: a run whose sizes are all
      // known goes in one range delete instead of one statement and one b-tree search per row.
      let end = i
      let runBytes = 0
      for (let size = waiting.get(ids[end] as number); size !== undefined; ) {
        runBytes += size
        end++
        if (ids[end] !== (ids[end - 1] as number) + 1) break
        size = waiting.get(ids[end] as number)
      }
      if (end - i >= 2) {
        const { changes } = sql.removeRange.run(ids[i], ids[end - 1])
        // A row handed out is deleted only here, so the whole run is there; if not, count again.
        if (changes !== end - i) recount = true
        ledger.messages -= changes
        ledger.bytes -= runBytes
        i = end
        continue
      }
      const row = sql.remove.get(ids[i]) as { size: number } | undefined
      if (row) {
        ledger.messages--
        ledger.bytes -= row.size
      }
      i++
    }
    if (recount) ledger.recount(countTotals(sql))
    return ids
  }

  /** The deletes of `ids` are committed. */
  settle(ids: number[]): void {
    for (const id of ids) {
      this.caches.delete(id)
      const size = this.waiting.get(id)
      if (size !== undefined) {
        this.messages--
        this.bytes -= size
      }
      this.waiting.delete(id)
    }
  }
}

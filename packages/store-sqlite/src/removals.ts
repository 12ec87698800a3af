import type { Clock } from '@uplink/client'
import type { Ledger } from './ledger.js'
import type { RowCaches } from './row-cache.js'
import { countTotals, type Statements } from './statements.js'

/** Acknowledged ids are deleted together once this many wait, or after REMOVAL_DELAY_MS. */
export const REMOVAL_BATCH = 512
export const REMOVAL_DELAY_MS = 20

/**
 * Acknowledged ids awaiting their batched delete (mostly a mark, acked.ts). Deletes are not
 * urgent (one lost in a crash means a duplicate, never a loss): they ride along with the next
 * group commit, or go on their own once REMOVAL_BATCH wait or REMOVAL_DELAY_MS passed. Their
 * sizes, when known, let stats() count them as gone at once.
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

  /**
   * Lets go of the waiting rows, inside a transaction; returns the ids it took. A run of
   * consecutive ids whose sizes are known (rows handed out, which nothing else deletes) is marked
   * acknowledged as one range (acked.ts), the others deleted one by one; then kept rows go as
   * the ranges' bounds say. `everything`: after a full disk, delete every kept row now, these too.
   */
  deleteAll(everything = false): number[] {
    const { sql, ledger, waiting } = this
    const { acked } = ledger
    const ids = [...waiting.keys()].sort((a, b) => a - b)
    for (let i = 0; i < ids.length; ) {
      // Acknowledgements come mostly in order, so most ids form runs.
      let end = i
      let runBytes = 0
      for (let size = waiting.get(ids[end] as number); size !== undefined; ) {
        runBytes += size
        end++
        if (ids[end] !== (ids[end - 1] as number) + 1) break
        size = waiting.get(ids[end] as number)
      }
      if (end > i) {
        acked.add(ids[i] as number, ids[end - 1] as number, end - i, runBytes)
        ledger.messages -= end - i
        ledger.bytes -= runBytes
        i = end
        continue
      }
      // Not handed out by this drain (a late acknowledgement after a release, say): it may be
      // gone already, or in a range.
      const id = ids[i] as number
      const row = acked.has(id) ? undefined : (sql.remove.get(id) as { size: number } | undefined)
      if (row) {
        ledger.messages--
        ledger.bytes -= row.size
      }
      i++
    }
    if (!acked.release(ledger.messages, everything)) ledger.recount(countTotals(sql, acked))
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

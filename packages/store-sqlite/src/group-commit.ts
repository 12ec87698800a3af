import {
  type Clock,
  type OutboxEntry,
  type OutboxInput,
  type Priority,
  UplinkError,
} from '@uplink/client'
import type { DrainCursor } from './cursor.js'
import { isFull, translate } from './failures.js'
import type { Ledger } from './ledger.js'
import type { ResolvedSqliteOptions } from './options.js'
import type { Removals } from './removals.js'
import { ALARM, COL, PRIORITY, type Row, TELEMETRY, WIDTH } from './row.js'
import type { RowCaches } from './row-cache.js'
import type { Space } from './space.js'
import { INSERT_ROWS, rowsBetween, type Statements } from './statements.js'

export interface Pending {
  input: OutboxInput
  now: number
  size: number
  resolve(entry: OutboxEntry): void
  reject(err: UplinkError): void
}

/** What the group commit works with: the outbox's parts. */
export interface CommitParts {
  o: ResolvedSqliteOptions
  clock: Clock
  sql: Statements
  ledger: Ledger
  caches: RowCaches
  cursor: DrainCursor
  removals: Removals
  space: Space
  /** A full disk: delete the acknowledged rows kept in the file, so a store can try again. */
  freeKept(): void
  /** Rows overflow dropped, once their commit is done. */
  dropped(rows: Row[]): void
  closed(): boolean
}

/** What one transaction of a group commit did, applied once it has committed. */
interface Written {
  outcomes: Array<OutboxEntry | UplinkError>
  drops: Row[]
  /** The new rows, for the cache (which copies their payloads). */
  added: Row[]
  /** The acknowledged ids deleted along with it. */
  removed: number[]
}

/** Parameters of accepted rows not yet inserted, INSERT_ROWS at a time. */
class Inserts {
  // One array, its size fixed, filled in place and used again: none grown or built per statement.
  private readonly params: unknown[] = new Array(INSERT_ROWS * WIDTH)
  private filled = 0

  constructor(private readonly sql: Statements) {}

  push(
    id: number,
    priority: number,
    topic: string,
    payload: Uint8Array,
    qos: number,
    retain: number,
    enqueuedAt: number,
    expiresAt: number | null,
    size: number,
  ): void {
    // Positional, in COLUMNS order: no array built per row.
    const { params } = this
    let at = this.filled
    params[at++] = id
    params[at++] = priority
    params[at++] = topic
    params[at++] = payload
    params[at++] = qos
    params[at++] = retain
    params[at++] = enqueuedAt
    params[at++] = expiresAt
    params[at++] = size
    this.filled = at
    if (at === params.length) {
      this.sql.insertMany.run(...params)
      this.filled = 0
    }
  }

  /** Inserts the rows held, one statement each. */
  flush(): void {
    const { params, filled } = this
    for (let at = 0; at < filled; at += WIDTH) {
      this.sql.insert.run(...params.slice(at, at + WIDTH))
    }
    this.filled = 0
  }
}

/**
 * Publishes that arrive together share one transaction and so one fsync: they wait for the event
 * loop to turn (or `groupCommit.maxDelayMs` on the clock), then go in batches of at most
 * `groupCommit.maxBatch`. Acknowledged deletes waiting then go in the same transaction, first,
 * and the bounds are kept inside it: overflow drops the oldest telemetry (or, for an arriving
 * alarm, the oldest alarm), or the reject policy refuses what does not fit.
 */
export class GroupCommit {
  private pending: Pending[] = []
  private timer: unknown
  private queued = false

  constructor(private readonly parts: CommitParts) {}

  add(p: Pending): void {
    this.pending.push(p)
    const { maxDelayMs, maxBatch } = this.parts.o
    if (this.queued) return
    if (maxDelayMs > 0 && this.pending.length < maxBatch) {
      // Held open: its publishes are awaited, and a process must not exit with them unstored.
      this.timer ??= this.parts.clock.setTimeout(this.flush, maxDelayMs, true)
      return
    }
    // Everything that arrives before the event loop turns shares this commit and its fsync.
    this.queued = true
    setImmediate(this.flush)
  }

  readonly flush = (): void => {
    this.queued = false
    this.parts.clock.clearTimeout(this.timer)
    this.timer = undefined
    if (this.parts.closed()) return
    const { maxBatch } = this.parts.o
    // A drop listener may publish while this runs: its messages land in the fresh `pending`.
    while (this.pending.length > 0) {
      const all = this.pending
      this.pending = []
      if (all.length <= maxBatch) this.commit(all)
      else
        for (let at = 0; at < all.length; at += maxBatch) this.commit(all.slice(at, at + maxBatch))
    }
  }

  /** At close, after the last flush: no timer is left behind. */
  cancel(): void {
    this.parts.clock.clearTimeout(this.timer)
    this.timer = undefined
  }

  private commit(batch: Pending[]): void {
    const { o, ledger, space, caches, removals, cursor } = this.parts
    let written: Written
    try {
      written = space.withRoom(
        () => ledger.transaction(() => this.write(batch), true),
        isFull,
        false,
        this.parts.freeKept,
      )
    } catch (err) {
      const error = translate(err, o.path, 'storing messages')
      for (const p of batch) p.reject(error)
      return
    }
    for (const row of written.added) caches.of(row[COL.priority]).add(row)
    removals.settle(written.removed)
    for (const row of written.drops) caches.delete(row[COL.id])
    // A dropped row may have been read ahead; read again rather than search.
    if (written.drops.length > 0) cursor.forgetAhead()
    this.parts.dropped(written.drops)
    for (let i = 0; i < batch.length; i++) {
      const outcome = written.outcomes[i] as OutboxEntry | UplinkError
      const p = batch[i] as Pending
      // Every outcome is an entry or an UplinkError: Error's own check, not UplinkError's
      // brand lookup (Symbol.hasInstance) on every entry.
      if (outcome instanceof Error) p.reject(outcome)
      else p.resolve(outcome)
    }
  }

  /** One transaction's work; a second try after a full disk starts from nothing. */
  private write(batch: Pending[]): Written {
    const { o, ledger, caches, cursor, removals, sql } = this.parts
    // Acknowledged rows go first, in the same commit: they free room before the bounds below.
    const written: Written = { outcomes: [], drops: [], added: [], removed: removals.deleteAll() }
    const inserts = new Inserts(sql)
    for (const { input, now, size } of batch) {
      // The oldest telemetry may be among the held rows: insert them before looking for it.
      if (this.over(size)) {
        inserts.flush()
        this.makeRoom(input.priority, size, written.drops)
      }
      if (this.over(size)) {
        written.outcomes.push(
          new UplinkError(
            'OUTBOX_FULL',
            o.overflow === 'reject'
              ? `outbox is full (${ledger.messages} messages, ${ledger.bytes} bytes)`
              : 'outbox is full of alarms; telemetry never displaces an alarm',
          ),
        )
        continue
      }
      const priority = PRIORITY[input.priority]
      const id = ledger.nextId++
      const retain = input.retain ? 1 : 0
      const expiresAt = input.expiresAt ?? null
      inserts.push(
        id,
        priority,
        input.topic,
        input.payload,
        input.qos,
        retain,
        now,
        expiresAt,
        size,
      )
      // The cache copies the payload once the commit is done, before publish() resolves.
      if (caches.of(priority).keeps) {
        written.added.push([
          id,
          priority,
          input.topic,
          input.payload,
          input.qos,
          retain,
          now,
          expiresAt,
          size,
        ])
      }
      ledger.messages++
      ledger.bytes += size
      cursor.stored(priority)
      // Spelled out, not spread: one object shape, and several times faster to build.
      written.outcomes.push({
        id,
        topic: input.topic,
        payload: input.payload,
        qos: input.qos,
        retain: input.retain,
        priority: input.priority,
        expiresAt: input.expiresAt,
        enqueuedAt: now,
      })
    }
    inserts.flush()
    return written
  }

  private over(size: number): boolean {
    const { o, ledger } = this.parts
    return ledger.messages + 1 > o.maxMessages || ledger.bytes + size > o.maxBytes
  }

  /**
   * Drops the oldest rows the overflow policy allows until `size` more fits; none at all when
   * even dropping every one it allows would not make room (telemetry beside a full outbox of
   * alarms). Chosen first, dropped after: dropping until none was left and then refusing the
   * message anyway lost the stored telemetry and the new message both.
   */
  private makeRoom(arriving: Priority, size: number, drops: Row[]): void {
    const { o, ledger, sql } = this.parts
    if (o.overflow === 'reject') return
    const { acked } = ledger
    const victims: Row[] = []
    let { messages, bytes, telemetryFloor } = ledger
    let alarmFloor = 0
    while (messages + 1 > o.maxMessages || bytes + size > o.maxBytes) {
      // Telemetry goes first; only an arriving alarm may displace an older alarm.
      let row = acked.live(telemetryFloor, 1, rowsBetween(sql, TELEMETRY))[0]
      if (row) telemetryFloor = row[COL.id]
      else if (arriving === 'alarm') {
        row = acked.live(alarmFloor, 1, rowsBetween(sql, ALARM))[0]
        if (row) alarmFloor = row[COL.id]
      }
      if (!row) return
      victims.push(row)
      messages--
      bytes -= row[COL.size]
    }
    for (const row of victims) {
      const id = row[COL.id]
      sql.remove.run(id)
      ledger.messages--
      ledger.bytes -= row[COL.size]
      if (row[COL.priority] === TELEMETRY) ledger.telemetryFloor = id
      drops.push(row)
    }
  }
}

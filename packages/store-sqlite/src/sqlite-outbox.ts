import {
  type DropReason,
  entrySize,
  type Outbox,
  type OutboxEntry,
  type OutboxListener,
  type OutboxStats,
  UplinkError,
} from '@uplink/client'
import { AckedRanges, KEEP_FRACTION } from './acked.js'
import { DrainCursor } from './cursor.js'
import { runtime, type SqliteDriver, selectDriver } from './driver.js'
import { isFull, translate } from './failures.js'
import { GroupCommit } from './group-commit.js'
import { Ledger } from './ledger.js'
import { openOutboxFile, synchronousLevel } from './open.js'
import { resolveSqliteOptions, type SqliteOutboxOptions } from './options.js'
import { PAGED_MAX_BYTES, readsPagesWhole } from './page.js'
import { Removals } from './removals.js'
import { ALARM, COL, type Row, TELEMETRY, toEntry } from './row.js'
import { RowCaches } from './row-cache.js'
import { Space } from './space.js'
import { countTotals, prepareStatements, rowsBetween } from './statements.js'

/** Rows `head()` reads at a time. */
const HEAD_READ = 64

export interface SqliteOutboxInfo {
  /** Transactions committed since open: group commit shows as far fewer than messages. */
  transactions: number
  /** The runtime. */
  runtime: 'bun' | 'node'
  /** The SQLite binding in use (see the `driver` option). */
  driver: SqliteDriver
  /** Where a corrupt or foreign file found at the path was moved, if one was. */
  movedAside: string | undefined
}

export interface SqliteOutbox extends Outbox {
  readonly path: string
  /** Facts for tests and operators. */
  info(): SqliteOutboxInfo
}

/**
 * An outbox in SQLite. `enqueue()` resolves once the message is committed (WAL, synchronous FULL
 * by default); publishes that arrive together share one transaction (group commit); acknowledged
 * messages are deleted in batches; running totals live in memory. A corrupt or foreign file is
 * moved aside and a fresh outbox created, reported through the listener; a second opener of the
 * same file gets OUTBOX_LOCKED.
 *
 * The parts, one file each: opening and recovery (open.ts), the totals and transactions
 * (ledger.ts), group commit (group-commit.ts), the drain cursor and what is out (cursor.ts),
 * batched deletes (removals.ts), acknowledged rows marked instead of deleted (acked.ts), disk
 * space (space.ts), the rows in memory (row-cache.ts), reading a page of the backlog in one
 * value (page.ts).
 */
export function sqliteOutbox(options: SqliteOutboxOptions): SqliteOutbox {
  const o = resolveSqliteOptions(options)
  const { clock } = o
  const driver = selectDriver(o.driver)
  const { db, movedAside, startupErrors } = openOutboxFile(driver, o)
  const space = new Space(db, o.path, o.reserveBytes, clock)
  // After a restart: hand back the WAL the last run left, then take the reserve if there is room.
  space.reclaim()
  space.ensureReserve()
  // Pages read whole where that pays (the driver) and a page's payloads fit one SQLite value.
  const sql = prepareStatements(db, readsPagesWhole(driver.name) && o.maxBytes < PAGED_MAX_BYTES)
  // Acknowledged rows still in the file, and the totals of the rest; loaded once, then kept by
  // every transaction.
  const keep = { rows: o.maxMessages * KEEP_FRACTION, bytes: o.maxBytes * KEEP_FRACTION }
  const acked = new AckedRanges(sql, keep)
  acked.load()
  const ledger = new Ledger(db, synchronousLevel(o), countTotals(sql, acked), acked)
  // Rows this process commits, so that the drain rarely reads them back.
  const caches = new RowCaches(o.cacheBytes, ledger.nextId - 1)
  const dropped: Record<DropReason, number> = { overflow: 0, expired: 0 }
  let listener: OutboxListener | undefined
  let closed = false

  const report = (err: UplinkError) => {
    if (!listener) {
      startupErrors.push(err)
      return
    }
    try {
      listener.error(err)
    } catch {}
  }
  const drop = (rows: Row[], reason: DropReason) => {
    for (const row of rows) {
      dropped[reason]++
      cursor.dropped(row[COL.id])
      try {
        listener?.drop(toEntry(row), reason)
      } catch {
        // A listener's bug must not undo a committed transaction's bookkeeping.
      }
    }
  }

  /** `everything`: the disk is full, so the acknowledged rows kept in the file go now too. */
  const applyRemovals = (everything = false) => {
    removals.cancelTimer()
    if (closed || (removals.size === 0 && !(everything && acked.rows > 0))) return
    try {
      const write = () => ledger.transaction(() => removals.deleteAll(everything), false)
      removals.settle(space.withRoom(write, isFull, true))
    } catch (err) {
      // The rows stay, to be deleted with the next commit; at worst sent again after a restart.
      report(translate(err, o.path, 'deleting acknowledged messages'))
      return
    }
    if (ledger.messages === 0) space.drained()
  }
  const removals = new Removals(sql, ledger, caches, clock, () => applyRemovals())
  const cursor = new DrainCursor(sql, caches, removals, ledger)
  const commits = new GroupCommit({
    o,
    clock,
    sql,
    ledger,
    caches,
    cursor,
    removals,
    space,
    freeKept: () => applyRemovals(true),
    dropped: (rows) => drop(rows, 'overflow'),
    closed: () => closed,
  })

  const expire = (rows: Row[]) => {
    const write = () =>
      ledger.transaction(() => {
        for (const row of rows) {
          if (sql.remove.get(row[COL.id])) {
            ledger.messages--
            ledger.bytes -= row[COL.size]
          }
        }
      }, false)
    try {
      space.withRoom(write, isFull, true)
    } catch (err) {
      // They stay, behind the cursor: start from the head next time, so they expire again.
      cursor.rewind()
      report(translate(err, o.path, 'deleting expired messages'))
      return
    }
    for (const row of rows) caches.delete(row[COL.id])
    drop(rows, 'expired')
  }

  return {
    path: o.path,
    info: () => ({
      transactions: ledger.transactions,
      runtime,
      driver: driver.name,
      movedAside,
    }),

    enqueue(input, now) {
      if (closed) return Promise.reject(new UplinkError('OUTBOX_CLOSED', 'the outbox is closed'))
      const size = entrySize(input)
      if (size > o.maxBytes) {
        return Promise.reject(
          new UplinkError('OUTBOX_FULL', `message of ${size} bytes exceeds the outbox's maxBytes`),
        )
      }
      return new Promise<OutboxEntry>((resolve, reject) =>
        commits.add({ input, now, size, resolve, reject }),
      )
    },

    take(limit, now) {
      if (closed || limit <= 0) return []
      const expired: Row[] = []
      let batch: OutboxEntry[]
      try {
        batch = cursor.take(limit, now, expired)
      } catch (err) {
        throw translate(err, o.path, 'reading messages')
      }
      if (expired.length > 0) expire(expired)
      return batch
    },

    ack(id) {
      if (closed || removals.has(id)) return
      removals.add(id, cursor.settle(id))
    },

    release(ids) {
      if (!closed) cursor.release(ids)
    },

    head() {
      if (closed) return undefined
      try {
        // Past the acknowledged rows waiting for their delete: at most REMOVAL_BATCH, so a few
        // reads; those marked acknowledged are not read at all.
        for (const priority of [ALARM, TELEMETRY] as const) {
          const read = rowsBetween(sql, priority)
          for (let after = 0; ; ) {
            const rows = acked.live(after, HEAD_READ, read)
            for (const row of rows) if (!removals.has(row[COL.id])) return toEntry(row)
            const last = rows[rows.length - 1]
            if (!last || rows.length < HEAD_READ) break
            after = last[COL.id]
          }
        }
        return undefined
      } catch (err) {
        throw translate(err, o.path, 'reading messages')
      }
    },

    stats: (): OutboxStats => ({
      messages: ledger.messages - removals.messages,
      bytes: ledger.bytes - removals.bytes,
      dropped: { ...dropped },
    }),

    setListener(l) {
      listener = l
      for (const err of startupErrors.splice(0)) report(err)
    },

    async close() {
      if (closed) return
      commits.flush()
      applyRemovals()
      closed = true
      commits.cancel()
      db.close()
    },
  }
}

import { existsSync, renameSync } from 'node:fs'
import {
  type DropReason,
  entrySize,
  type Outbox,
  type OutboxEntry,
  type OutboxInput,
  type OutboxListener,
  type OutboxStats,
  type Priority,
  type Qos,
  UplinkError,
  type UplinkErrorCode,
} from '@uplink/client'
import { type Database, runtime, type SqliteDriver, selectDriver, sqliteCode } from './driver.js'
import {
  type ResolvedSqliteOptions,
  resolveSqliteOptions,
  type SqliteOutboxOptions,
} from './options.js'
import { type Row, RowCache } from './row-cache.js'
import { inspect, migrate } from './schema.js'
import { autocheckpointPages, Space } from './space.js'
import { testHooks } from './test-hooks.js'

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

interface Pending {
  input: OutboxInput
  now: number
  size: number
  resolve(entry: OutboxEntry): void
  reject(err: UplinkError): void
}

const ALARM = 0
const TELEMETRY = 1
const PRIORITY: Record<Priority, number> = { alarm: ALARM, telemetry: TELEMETRY }
/** Acknowledged ids are deleted together once this many wait, or after REMOVAL_DELAY_MS. */
const REMOVAL_BATCH = 512
const REMOVAL_DELAY_MS = 20

/** Where the drain is: the last row looked at, in drain order (alarms first, then by id). */
interface Position {
  priority: number
  id: number
}
const START: Position = { priority: ALARM, id: 0 }
/** Rows read ahead of the drain cursor at a time. */
const READ_AHEAD = 64

const COLUMNS = 'id, priority, topic, payload, qos, retain, enqueued_at, expires_at, size'
const INSERT = `INSERT INTO messages (${COLUMNS}) VALUES`
const ROW = '(?, ?, ?, ?, ?, ?, ?, ?, ?)'
/** Rows per INSERT statement in a group commit: one call into SQLite instead of 32. */
const INSERT_ROWS = 32

function toEntry([
  id,
  priority,
  topic,
  payload,
  qos,
  retain,
  enqueuedAt,
  expiresAt,
]: Row): OutboxEntry {
  return {
    id,
    topic,
    payload,
    qos: qos as Qos,
    retain: retain === 1,
    priority: priority === ALARM ? 'alarm' : 'telemetry',
    enqueuedAt,
    expiresAt: expiresAt ?? undefined,
  }
}

/** Thrown inside open() when the file is SQLite but not an outbox this code can use. */
class NotOurs extends Error {}

/** Renames the file and its WAL companions out of the way; returns the new name. */
function moveAside(path: string): string {
  const aside = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`
  for (const suffix of ['', '-wal', '-shm', '-journal']) {
    if (existsSync(path + suffix)) renameSync(path + suffix, aside + suffix)
  }
  return aside
}

/** The WAL file is cut back to this after a checkpoint: a big group commit does not stay claimed. */
const JOURNAL_SIZE_LIMIT = 4 * 2 ** 20

function configure(db: Database, o: ResolvedSqliteOptions): void {
  // EXCLUSIVE locking: the first transaction takes the file's lock and keeps it until close, so a
  // second process (or a second outbox in this one) gets SQLITE_BUSY at once, and the OS drops
  // the lock when a process dies, so a crash never leaves a stale lock. It also lets WAL run
  // without the shared-memory file.
  db.exec('PRAGMA locking_mode = EXCLUSIVE')
  db.exec('BEGIN EXCLUSIVE')
  db.exec('COMMIT')
  if (String(db.pragma('journal_mode = WAL')).toLowerCase() !== 'wal') {
    throw new UplinkError('OUTBOX_ERROR', 'SQLite refused WAL journal mode')
  }
  const synchronous = testHooks.synchronous ?? (o.durability === 'full' ? 'FULL' : 'NORMAL')
  db.exec(`PRAGMA synchronous = ${synchronous}`)
  db.exec(`PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT}`)
  const pageSize = Number(db.pragma('page_size'))
  const checkpointPages = testHooks.walAutocheckpoint ?? autocheckpointPages(o.path, pageSize)
  db.exec(`PRAGMA wal_autocheckpoint = ${checkpointPages}`)
  if (o.maxPageCount !== undefined) db.pragma(`max_page_count = ${o.maxPageCount}`)
  // Reads the whole file once: corruption found now is moved aside, not met mid-drain.
  const check = String(db.pragma('quick_check'))
  if (check !== 'ok') throw new UplinkError('OUTBOX_CORRUPT', `quick_check: ${check}`)
  const state = inspect(db)
  if (state === 'foreign') throw new NotOurs('not an Uplink outbox')
  if (state === 'newer') throw new NotOurs('written by a newer Uplink (schema version too high)')
  // Only possible before the first table: pages freed by deletes can then go back to the volume.
  if (state === 'fresh') db.exec('PRAGMA auto_vacuum = INCREMENTAL')
  migrate(db)
}

/** An SQLite failure as the UplinkError a caller can act on. */
function translate(err: unknown, path: string, doing: string): UplinkError {
  if (err instanceof UplinkError) return err
  const code = sqliteCode(err)
  const text = err instanceof Error ? err.message : String(err)
  const as: UplinkErrorCode =
    code === 'SQLITE_FULL'
      ? 'OUTBOX_DISK_FULL'
      : code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB'
        ? 'OUTBOX_CORRUPT'
        : 'OUTBOX_ERROR'
  const message =
    as === 'OUTBOX_DISK_FULL'
      ? `no space left for ${path} while ${doing}; nothing stored was lost`
      : `${doing} in ${path} failed: ${text}`
  return new UplinkError(as, message, { cause: err })
}

/**
 * An outbox in SQLite. `enqueue()` resolves once the message is committed (WAL, synchronous FULL
 * by default); publishes that arrive together share one transaction (group commit); acknowledged
 * messages are deleted in batches; running totals live in memory. A corrupt or foreign file is
 * moved aside and a fresh outbox created, reported through the listener; a second opener of the
 * same file gets OUTBOX_LOCKED.
 */
export function sqliteOutbox(options: SqliteOutboxOptions): SqliteOutbox {
  const o = resolveSqliteOptions(options)
  const driver = selectDriver(o.driver)
  // Reported once a listener is set: the client sets it after the outbox is built.
  const startupErrors: UplinkError[] = []
  let movedAside: string | undefined

  const open = (): Database => {
    let db: Database | undefined
    try {
      db = driver.open(o.path)
      configure(db, o)
      return db
    } catch (err) {
      const code = sqliteCode(err)
      const corrupt =
        err instanceof NotOurs ||
        code === 'SQLITE_NOTADB' ||
        code === 'SQLITE_CORRUPT' ||
        (err instanceof UplinkError && err.code === 'OUTBOX_CORRUPT')
      // Never a crash loop: keep the bad file for a person to look at, and start afresh. Moved
      // before closing, because closing would delete a WAL that SQLite could not make sense of;
      // closed whatever happens, so that a failed open leaves no handle on the volume.
      let aside: string | undefined
      try {
        if (corrupt && !movedAside) aside = moveAside(o.path)
      } catch (moveError) {
        try {
          db?.close()
        } catch {}
        const why = moveError instanceof Error ? moveError.message : String(moveError)
        throw new UplinkError(
          'OUTBOX_CORRUPT',
          `${o.path} is not a usable outbox (${(err as Error).message}) and cannot be moved aside (${why}); move or delete it`,
          { cause: moveError, details: { path: o.path } },
        )
      }
      try {
        db?.close()
      } catch {}
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
        throw new UplinkError('OUTBOX_LOCKED', `${o.path} is open in another outbox or process`, {
          cause: err,
        })
      }
      if (!aside) throw translate(err, o.path, 'opening')
      movedAside = aside
      startupErrors.push(
        new UplinkError(
          'OUTBOX_CORRUPT',
          `${o.path} was not a usable outbox (${(err as Error).message}); moved to ${movedAside} and started empty`,
          { cause: err, details: { movedTo: movedAside } },
        ),
      )
      return open()
    }
  }

  const db = open()
  const isFull = (err: unknown) => sqliteCode(err) === 'SQLITE_FULL'
  const space = new Space(db, o.path, o.reserveBytes)
  // After a restart: hand back the WAL the last run left, then take the reserve if there is room.
  space.reclaim()
  space.ensureReserve()
  const sql = {
    insert: db.prepare(`${INSERT} ${ROW}`),
    insertMany: db.prepare(`${INSERT} ${Array(INSERT_ROWS).fill(ROW).join(', ')}`),
    // The literal priorities matter: SQLite uses the partial alarm index only for `priority = 0`.
    alarmsAfter: db.prepare(
      `SELECT ${COLUMNS} FROM messages WHERE priority = 0 AND id > ? ORDER BY id LIMIT ?`,
    ),
    telemetryAfter: db.prepare(
      `SELECT ${COLUMNS} FROM messages WHERE priority = 1 AND id > ? ORDER BY id LIMIT ?`,
    ),
    remove: db.prepare('DELETE FROM messages WHERE id = ? RETURNING size'),
    removeRange: db.prepare('DELETE FROM messages WHERE id BETWEEN ? AND ?'),
    totals: db.prepare(
      'SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes, coalesce(max(id), 0) AS last FROM messages',
    ),
  }

  // Totals of what is committed; loaded once, then kept by every transaction.
  const totals = sql.totals.get() as { n: number; bytes: number; last: number }
  let messages = Number(totals.n)
  let bytes = Number(totals.bytes)
  // Ids come from this counter, not from SQLite, which would reuse the highest id once the table
  // empties: a late PUBACK for an old id must never delete a new message. Across a restart
  // nothing is in flight, so continuing after the highest stored id is enough.
  let nextId = Number(totals.last) + 1
  // No telemetry row has an id at or below this: overflow's search for the oldest starts here.
  // Sound because new rows always get higher ids, so the oldest telemetry only moves forward.
  let telemetryFloor = 0
  // Rows this process committed, by priority, so that the drain rarely reads them back. Alarms
  // are few: an eighth of the budget is theirs.
  const cached = [
    new RowCache(Math.floor(o.cacheBytes / 8), nextId - 1),
    new RowCache(o.cacheBytes - Math.floor(o.cacheBytes / 8), nextId - 1),
  ] as const
  const uncache = (id: number) => {
    cached[ALARM].delete(id)
    cached[TELEMETRY].delete(id)
  }

  const dropped: Record<DropReason, number> = { overflow: 0, expired: 0 }
  let listener: OutboxListener | undefined
  let transactions = 0
  let closed = false
  let flushTimer: ReturnType<typeof setTimeout> | undefined
  let flushQueued = false
  let pending: Pending[] = []

  // Acknowledged ids awaiting their batched delete, with their sizes when known, so that stats()
  // counts them as gone at once.
  const removals = new Map<number, number | undefined>()
  let removingMessages = 0
  let removingBytes = 0
  let removalTimer: ReturnType<typeof setTimeout> | undefined

  // The drain cursor. The drainer asks for "the next messages, leaving out those in flight" on
  // every acknowledgement; reading from the head each time would walk the whole window again. So
  // peek resumes after the last row it looked at, as long as every live row behind the cursor is
  // still in flight (in `skip`) or acknowledged. `handedOut` is the set to check: every row peek
  // returned or passed as in flight, until it is removed. After a reconnect (nothing in flight)
  // or when an alarm arrives behind a telemetry cursor, peek starts again from the head.
  let cursor: Position = START
  // Rows after the cursor, read ahead in one query: a query per acknowledgement costs several
  // times what its row does. `readTo` is where the next read starts; rows from the cursor up to
  // it are exactly `ahead` from `aheadAt` on.
  let ahead: Row[] = []
  let aheadAt = 0
  let readTo: Position = START
  const handedOut = new Map<number, number>()
  const forgetAhead = () => {
    ahead = []
    aheadAt = 0
    readTo = cursor
  }
  const rewind = () => {
    cursor = START
    forgetAhead()
  }
  /** Reads the next rows after `readTo` into `ahead`; false at the end of the queue. */
  const readAhead = (want: number): boolean => {
    for (;;) {
      const n = Math.max(want, READ_AHEAD)
      const alarms = readTo.priority === ALARM
      const cache = cached[readTo.priority as 0 | 1]
      const rows = cache.covers(readTo.id)
        ? cache.after(readTo.id, n)
        : ((alarms ? sql.alarmsAfter : sql.telemetryAfter).values(readTo.id, n) as Row[])
      const last = rows[rows.length - 1]
      if (last) readTo = { priority: last[1], id: last[0] }
      // Fewer than asked: that was the last of the alarms. Telemetry follows, from its start.
      if (alarms && rows.length < n) readTo = { priority: TELEMETRY, id: 0 }
      if (rows.length > 0) {
        ahead = rows
        aheadAt = 0
        return true
      }
      if (!alarms) return false
    }
  }

  const report = (err: UplinkError) => {
    if (!listener) {
      startupErrors.push(err)
      return
    }
    try {
      listener.error(err)
    } catch {}
  }
  const drop = (row: Row, reason: DropReason) => {
    dropped[reason]++
    handedOut.delete(row[0])
    try {
      listener?.drop(toEntry(row), reason)
    } catch {
      // A listener's bug must not undo a committed transaction's bookkeeping.
    }
  }

  /**
   * Runs `fn` in one transaction; on failure rolls back and restores the totals. `durable: false`
   * commits without an fsync: for deletes, which at worst come back after a power loss as
   * duplicates, never as losses. The next durable commit syncs them along with itself.
   */
  const transaction = <T>(fn: () => T, durable: boolean): T => {
    const before = { messages, bytes, nextId, telemetryFloor }
    const relax = !durable && o.durability === 'full'
    if (relax) db.exec('PRAGMA synchronous = NORMAL')
    db.exec('BEGIN IMMEDIATE')
    try {
      const result = fn()
      db.exec('COMMIT')
      transactions++
      return result
    } catch (err) {
      try {
        db.exec('ROLLBACK')
      } catch {
        // SQLite may already have rolled back (e.g. on SQLITE_FULL).
      }
      ;({ messages, bytes, nextId, telemetryFloor } = before)
      throw err
    } finally {
      if (relax) db.exec('PRAGMA synchronous = FULL')
    }
  }

  /** Deletes the acknowledged rows; inside a transaction. Returns the ids it took. */
  const deleteRemovals = (): number[] => {
    const ids = [...removals.keys()].sort((a, b) => a - b)
    let recount = false
    for (let i = 0; i < ids.length; ) {
      // Acknowledgements come mostly in order, so most ids form runs: a run whose sizes are all
      // known goes in one range delete instead of one statement and one b-tree search per row.
      let end = i
      let runBytes = 0
      for (let size = removals.get(ids[end] as number); size !== undefined; ) {
        runBytes += size
        end++
        if (ids[end] !== (ids[end - 1] as number) + 1) break
        size = removals.get(ids[end] as number)
      }
      if (end - i >= 2) {
        const { changes } = sql.removeRange.run(ids[i], ids[end - 1])
        // A row handed out is deleted only here, so the whole run is there; if not, count again.
        if (changes !== end - i) recount = true
        messages -= changes
        bytes -= runBytes
        i = end
        continue
      }
      const row = sql.remove.get(ids[i]) as { size: number } | undefined
      if (row) {
        messages--
        bytes -= row.size
      }
      i++
    }
    if (recount) {
      const t = sql.totals.get() as { n: number; bytes: number }
      messages = t.n
      bytes = t.bytes
    }
    return ids
  }
  const settleRemovals = (ids: number[]) => {
    for (const id of ids) {
      uncache(id)
      const size = removals.get(id)
      if (size !== undefined) {
        removingMessages--
        removingBytes -= size
      }
      removals.delete(id)
    }
  }
  const applyRemovals = () => {
    clearTimeout(removalTimer)
    removalTimer = undefined
    if (removals.size === 0 || closed) return
    try {
      settleRemovals(space.withRoom(() => transaction(deleteRemovals, false), isFull, true))
    } catch (err) {
      // The rows stay, to be deleted with the next commit; at worst sent again after a restart.
      report(translate(err, o.path, 'deleting acknowledged messages'))
      return
    }
    if (messages === 0) space.drained()
  }

  /** The oldest row overflow may drop to make room for `arriving`, or none. */
  const victim = (arriving: Priority): Row | undefined => {
    const telemetry = sql.telemetryAfter.values(telemetryFloor, 1)[0] as Row | undefined
    if (telemetry) return telemetry
    return arriving === 'alarm' ? (sql.alarmsAfter.values(0, 1)[0] as Row | undefined) : undefined
  }

  const commit = (batch: Pending[]) => {
    const outcomes: Array<OutboxEntry | UplinkError> = []
    const drops: Row[] = []
    const added: Row[] = []
    let removed: number[] = []
    const write = () =>
      transaction(() => {
        // A second try after a full disk starts from nothing.
        outcomes.length = 0
        drops.length = 0
        added.length = 0
        // Acknowledged rows go first, in the same commit: they free room before the bounds below.
        removed = deleteRemovals()
        // Parameters of accepted rows not yet inserted, INSERT_ROWS at a time.
        let params: unknown[] = []
        const insertHeld = () => {
          for (let at = 0; at < params.length; at += 9) sql.insert.run(...params.slice(at, at + 9))
          params = []
        }
        for (const { input, now, size } of batch) {
          const over = () => messages + 1 > o.maxMessages || bytes + size > o.maxBytes
          // The oldest telemetry may be among the held rows: insert them before looking for it.
          if (over()) insertHeld()
          while (over()) {
            const row = o.overflow === 'reject' ? undefined : victim(input.priority)
            if (!row) break
            const [id, priority, , , , , , , rowSize] = row
            sql.remove.run(id)
            messages--
            bytes -= rowSize
            if (priority === TELEMETRY) telemetryFloor = id
            drops.push(row)
          }
          if (over()) {
            outcomes.push(
              new UplinkError(
                'OUTBOX_FULL',
                o.overflow === 'reject'
                  ? `outbox is full (${messages} messages, ${bytes} bytes)`
                  : 'outbox is full of alarms; telemetry never displaces an alarm',
              ),
            )
            continue
          }
          const priority = PRIORITY[input.priority]
          const id = nextId++
          const retain = input.retain ? 1 : 0
          const expiresAt = input.expiresAt ?? null
          params.push(
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
          // The cache keeps its own copy: the caller may reuse its buffer once publish() resolved.
          if (cached[priority as 0 | 1].keeps) {
            const copy = Buffer.from(input.payload)
            added.push([id, priority, input.topic, copy, input.qos, retain, now, expiresAt, size])
          }
          if (params.length === INSERT_ROWS * 9) {
            sql.insertMany.run(...params)
            params = []
          }
          messages++
          bytes += size
          // An alarm drains before any telemetry: before the cursor (start again) or before the
          // telemetry read ahead of it (read again).
          if (priority === ALARM && cursor.priority === TELEMETRY) rewind()
          else if (priority === ALARM && readTo.priority === TELEMETRY) forgetAhead()
          // Spelled out, not spread: one object shape, and several times faster to build.
          outcomes.push({
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
        insertHeld()
      }, true)
    try {
      space.withRoom(write, isFull, false)
    } catch (err) {
      const error = translate(err, o.path, 'storing messages')
      for (const p of batch) p.reject(error)
      return
    }
    for (const row of added) cached[row[1] as 0 | 1].add(row)
    settleRemovals(removed)
    for (const row of drops) uncache(row[0])
    // A dropped row may have been read ahead; read again rather than search.
    if (drops.length > 0) forgetAhead()
    for (const row of drops) drop(row, 'overflow')
    for (let i = 0; i < batch.length; i++) {
      const outcome = outcomes[i] as OutboxEntry | UplinkError
      const p = batch[i] as Pending
      if (outcome instanceof UplinkError) p.reject(outcome)
      else p.resolve(outcome)
    }
  }

  const flush = () => {
    flushQueued = false
    clearTimeout(flushTimer)
    flushTimer = undefined
    if (closed) return
    // A drop listener may publish while this runs: its messages land in the fresh `pending`.
    while (pending.length > 0) {
      const all = pending
      pending = []
      if (all.length <= o.maxBatch) commit(all)
      else
        for (let at = 0; at < all.length; at += o.maxBatch) commit(all.slice(at, at + o.maxBatch))
    }
  }
  const schedule = () => {
    if (flushQueued) return
    if (o.maxDelayMs > 0 && pending.length < o.maxBatch) {
      flushTimer ??= setTimeout(flush, o.maxDelayMs)
      return
    }
    // Everything that arrives before the event loop turns shares this commit and its fsync.
    flushQueued = true
    setImmediate(flush)
  }

  const expire = (rows: Row[]) => {
    const write = () =>
      transaction(() => {
        for (const row of rows) {
          if (sql.remove.get(row[0])) {
            messages--
            bytes -= row[8]
          }
        }
      }, false)
    try {
      space.withRoom(write, isFull, true)
    } catch (err) {
      // They stay, behind the cursor: start from the head next time, so they expire again.
      rewind()
      report(translate(err, o.path, 'deleting expired messages'))
      return
    }
    for (const row of rows) {
      uncache(row[0])
      drop(row, 'expired')
    }
  }

  return {
    path: o.path,
    info: () => ({ transactions, runtime, driver: driver.name, movedAside }),

    enqueue(input, now) {
      if (closed) return Promise.reject(new UplinkError('OUTBOX_CLOSED', 'the outbox is closed'))
      const size = entrySize(input)
      if (size > o.maxBytes) {
        return Promise.reject(
          new UplinkError('OUTBOX_FULL', `message of ${size} bytes exceeds the outbox's maxBytes`),
        )
      }
      return new Promise((resolve, reject) => {
        pending.push({ input, now, size, resolve, reject })
        schedule()
      })
    },

    peek(limit, skip, now) {
      if (closed || limit <= 0) return []
      for (const id of handedOut.keys()) {
        if (!skip.has(id) && !removals.has(id)) {
          rewind()
          break
        }
      }
      const out: OutboxEntry[] = []
      const expired: Row[] = []
      // After a rewind the rows in flight come first: read past them in one query.
      let extra = cursor === START ? skip.size + removals.size : 0
      try {
        while (out.length < limit) {
          if (aheadAt >= ahead.length) {
            if (!readAhead(limit - out.length + extra)) break
            extra = 0
          }
          const row = ahead[aheadAt++] as Row
          const [id, priority, , , , , , expiresAt, size] = row
          cursor = { priority, id }
          if (removals.has(id)) continue
          if (skip.has(id)) handedOut.set(id, size)
          else if (expiresAt !== null && expiresAt <= now) expired.push(row)
          else {
            handedOut.set(id, size)
            out.push(toEntry(row))
          }
        }
      } catch (err) {
        throw translate(err, o.path, 'reading messages')
      }
      if (expired.length > 0) expire(expired)
      return out
    },

    remove(id) {
      if (closed || removals.has(id)) return
      const size = handedOut.get(id)
      handedOut.delete(id)
      removals.set(id, size)
      // Acknowledged before peek got to it (a late PUBACK after a rewind, say): once deleted it
      // must not be handed out from the rows read ahead. They are in id order and of one
      // priority, so an id within their span may be among them: read again rather than search.
      const first = ahead[aheadAt]
      if (first && id >= first[0] && id <= (ahead[ahead.length - 1] as Row)[0]) forgetAhead()
      if (size !== undefined) {
        removingMessages++
        removingBytes += size
      }
      // Deletes are not urgent (one lost in a crash means a duplicate, never a loss): they ride
      // along with the next group commit, or go on their own once enough wait or a moment passed.
      if (removals.size >= REMOVAL_BATCH) applyRemovals()
      else removalTimer ??= setTimeout(applyRemovals, REMOVAL_DELAY_MS)
    },

    stats: (): OutboxStats => ({
      messages: messages - removingMessages,
      bytes: bytes - removingBytes,
      dropped: { ...dropped },
    }),

    setListener(l) {
      listener = l
      for (const err of startupErrors.splice(0)) report(err)
    },

    async close() {
      if (closed) return
      flush()
      applyRemovals()
      closed = true
      clearTimeout(flushTimer)
      db.close()
    },
  }
}

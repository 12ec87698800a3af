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
} from '@uplink/client'
import { type Database, openDatabase, runtime, type Statement, sqliteCode } from './driver.js'
import { resolveSqliteOptions, type SqliteOutboxOptions } from './options.js'
import { inspect, migrate } from './schema.js'

export interface SqliteOutbox extends Outbox {
  readonly path: string
  /** Facts for tests and operators: transactions committed, the binding, a file moved aside. */
  info(): { transactions: number; runtime: 'bun' | 'node'; movedAside: string | undefined }
}

interface Row {
  id: number
  priority: number
  topic: string
  payload: Uint8Array
  qos: number
  retain: number
  enqueued_at: number
  expires_at: number | null
  size: number
}

interface Pending {
  input: OutboxInput
  now: number
  resolve(entry: OutboxEntry): void
  reject(err: UplinkError): void
}

const PRIORITY: Record<Priority, number> = { alarm: 0, telemetry: 1 }
/** Acknowledged ids deleted together: at this many, or after this long. */
const REMOVAL_BATCH = 512
const REMOVAL_DELAY_MS = 25

function toEntry(row: Row): OutboxEntry {
  return {
    id: Number(row.id),
    topic: row.topic,
    payload: row.payload,
    qos: row.qos as Qos,
    retain: row.retain === 1,
    priority: row.priority === 0 ? 'alarm' : 'telemetry',
    enqueuedAt: Number(row.enqueued_at),
    expiresAt: row.expires_at === null ? undefined : Number(row.expires_at),
  }
}

/** Thrown inside open() when the file is SQLite but not an outbox this code can use. */
class NotOurs extends Error {}

/** Renames the file and its WAL companions out of the way; returns the new name. */
function moveAside(path: string): string {
  const aside = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(path + suffix)) renameSync(path + suffix, aside + suffix)
  }
  return aside
}

function configure(db: Database, durability: 'full' | 'normal', maxPageCount?: number): void {
  // EXCLUSIVE locking: the lock is taken by the first transaction below and held until close,
  // so a second process (or a second outbox in this one) gets SQLITE_BUSY at once. The OS drops
  // the lock when a process dies, so a crash never leaves a stale lock behind. In this mode WAL
  // needs no shared-memory file.
  db.exec('PRAGMA locking_mode = EXCLUSIVE')
  db.exec('BEGIN EXCLUSIVE')
  db.exec('COMMIT')
  if (String(db.pragma('journal_mode = WAL')).toLowerCase() !== 'wal') {
    throw new UplinkError('OUTBOX_ERROR', 'SQLite refused WAL journal mode')
  }
  // FULL: a commit is on disk before publish() resolves, across power loss. NORMAL: a commit
  // survives the process dying; the last few may be lost with the power.
  db.exec(`PRAGMA synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`)
  if (maxPageCount !== undefined) db.pragma(`max_page_count = ${maxPageCount}`)
  const check = String(db.pragma('quick_check'))
  if (check !== 'ok') throw new UplinkError('OUTBOX_CORRUPT', `quick_check: ${check}`)
  const state = inspect(db)
  if (state === 'foreign') throw new NotOurs('not an Uplink outbox')
  if (state === 'newer') throw new NotOurs('written by a newer Uplink (schema version too high)')
  migrate(db)
}

/**
 * An outbox in SQLite: `enqueue()` resolves once the message is committed (WAL, synchronous FULL
 * by default), publishes that arrive in the same tick share one transaction (group commit), and
 * acknowledged messages are deleted in batches. A corrupt or foreign file is moved aside and a
 * fresh outbox created, reported through the listener; a second opener gets OUTBOX_LOCKED.
 */
export function sqliteOutbox(options: SqliteOutboxOptions): SqliteOutbox {
  const o = resolveSqliteOptions(options)
  const startupErrors: UplinkError[] = []
  let movedAside: string | undefined

  const open = (): Database => {
    let db: Database | undefined
    try {
      db = openDatabase(o.path)
      configure(db, o.durability, o.maxPageCount)
      return db
    } catch (err) {
      db?.close()
      const code = sqliteCode(err)
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
        throw new UplinkError('OUTBOX_LOCKED', `${o.path} is open in another outbox or process`, {
          cause: err,
        })
      }
      const corrupt =
        err instanceof NotOurs ||
        code === 'SQLITE_NOTADB' ||
        code === 'SQLITE_CORRUPT' ||
        (err instanceof UplinkError && err.code === 'OUTBOX_CORRUPT')
      if (!corrupt || movedAside) {
        throw new UplinkError('OUTBOX_ERROR', `cannot open ${o.path}: ${(err as Error).message}`, {
          cause: err,
        })
      }
      // Never a crash loop: keep the bad file for a person to look at, start afresh.
      movedAside = moveAside(o.path)
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
  const sql = {
    insert: db.prepare(
      `INSERT INTO messages (id, priority, topic, payload, qos, retain, enqueued_at, expires_at, size)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    oldest: db.prepare('SELECT * FROM messages WHERE priority = ? ORDER BY id LIMIT 1'),
    drain: db.prepare('SELECT * FROM messages ORDER BY priority, id LIMIT ?'),
    drainAfter: db.prepare(
      'SELECT * FROM messages WHERE (priority, id) > (?, ?) ORDER BY priority, id LIMIT ?',
    ),
    remove: db.prepare('DELETE FROM messages WHERE id = ? RETURNING size'),
    totals: db.prepare(
      'SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes, coalesce(max(id), 0) AS last FROM messages',
    ),
  } satisfies Record<string, Statement>

  const totals = sql.totals.get() as { n: number; bytes: number; last: number }
  let messages = Number(totals.n)
  let bytes = Number(totals.bytes)
  let nextId = Number(totals.last) + 1

  const dropped: Record<DropReason, number> = { overflow: 0, expired: 0 }
  let listener: OutboxListener | undefined
  let transactions = 0
  let closed = false
  let scheduled = false
  let pending: Pending[] = []
  const removals = new Set<number>()
  let removalTimer: ReturnType<typeof setTimeout> | undefined

  // The drain cursor. The drainer asks for "the next messages, leaving out those in flight" once
  // per acknowledgement; reading from the head each time would walk past the whole window. So
  // peek remembers where it stopped, and resumes there as long as every message it handed out
  // before that point is still in flight or acknowledged (otherwise, e.g. after a reconnect, it
  // starts again from the head). An arriving alarm sorts before the cursor: start again too.
  let cursor: { priority: number; id: number } | undefined
  const handedOut = new Set<number>()
  const forgetCursor = () => {
    cursor = undefined
    handedOut.clear()
  }

  const report = (err: UplinkError) => {
    if (listener) listener.error(err)
    else startupErrors.push(err)
  }
  const drop = (entry: OutboxEntry, reason: DropReason) => {
    dropped[reason]++
    try {
      listener?.drop(entry, reason)
    } catch {
      // A listener's bug must not undo a committed transaction's bookkeeping.
    }
  }

  /** Runs `fn` in one transaction; on failure rolls back and puts the totals back. */
  const transaction = <T>(fn: () => T): T => {
    const before = { messages, bytes, nextId }
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
      messages = before.messages
      bytes = before.bytes
      nextId = before.nextId
      throw err
    }
  }

  const applyRemovals = () => {
    if (removals.size === 0) return
    const ids = [...removals]
    try {
      transaction(() => {
        for (const id of ids) {
          const row = sql.remove.get(id) as { size: number } | undefined
          if (row) {
            messages--
            bytes -= Number(row.size)
          }
        }
      })
      for (const id of ids) removals.delete(id)
    } catch (err) {
      // The rows stay; at worst they are sent again after a restart (at least once).
      report(
        new UplinkError('OUTBOX_ERROR', `deleting acknowledged messages failed`, { cause: err }),
      )
    }
  }

  const commit = (batch: Pending[]) => {
    const outcomes: Array<OutboxEntry | UplinkError> = []
    const drops: OutboxEntry[] = []
    try {
      transaction(() => {
        for (const { input, now } of batch) {
          const size = entrySize(input)
          const full = () => messages + 1 > o.maxMessages || bytes + size > o.maxBytes
          let refusal: UplinkError | undefined
          if (size > o.maxBytes) {
            refusal = new UplinkError(
              'OUTBOX_FULL',
              `message of ${size} bytes exceeds the outbox's maxBytes`,
            )
          }
          while (!refusal && full()) {
            const victim =
              o.overflow === 'reject'
                ? undefined
                : ((sql.oldest.get(PRIORITY.telemetry) as Row | undefined) ??
                  (input.priority === 'alarm'
                    ? (sql.oldest.get(PRIORITY.alarm) as Row | undefined)
                    : undefined))
            if (!victim) {
              refusal = new UplinkError(
                'OUTBOX_FULL',
                o.overflow === 'reject'
                  ? `outbox is full (${messages} messages, ${bytes} bytes)`
                  : 'outbox is full of alarms; telemetry never displaces an alarm',
              )
              break
            }
            sql.remove.get(victim.id)
            messages--
            bytes -= Number(victim.size)
            drops.push(toEntry(victim))
          }
          if (refusal) {
            outcomes.push(refusal)
            continue
          }
          const id = nextId++
          sql.insert.run(
            id,
            PRIORITY[input.priority],
            input.topic,
            input.payload,
            input.qos,
            input.retain ? 1 : 0,
            now,
            input.expiresAt ?? null,
            size,
          )
          messages++
          bytes += size
          if (input.priority === 'alarm') forgetCursor()
          outcomes.push({ ...input, id, enqueuedAt: now })
        }
      })
    } catch (err) {
      const code = sqliteCode(err)
      const error =
        code === 'SQLITE_FULL'
          ? new UplinkError(
              'OUTBOX_DISK_FULL',
              `no space left for ${o.path}; nothing stored was lost`,
              {
                cause: err,
              },
            )
          : new UplinkError('OUTBOX_ERROR', `storing failed: ${(err as Error).message}`, {
              cause: err,
            })
      for (const p of batch) p.reject(error)
      return
    }
    for (const victim of drops) drop(victim, 'overflow')
    batch.forEach((p, i) => {
      const outcome = outcomes[i] as OutboxEntry | UplinkError
      if (outcome instanceof UplinkError) p.reject(outcome)
      else p.resolve(outcome)
    })
  }

  const flush = () => {
    scheduled = false
    // Deletes first: acknowledged messages free room before new ones are checked against bounds.
    if (pending.length > 0 || removals.size >= REMOVAL_BATCH) applyRemovals()
    while (pending.length > 0) {
      const batch = pending.slice(0, o.batchSize)
      pending = pending.slice(o.batchSize)
      commit(batch)
    }
  }
  const schedule = () => {
    if (scheduled) return
    scheduled = true
    // Everything that arrives before the event loop turns shares one transaction: one fsync.
    setImmediate(flush)
  }

  return {
    path: o.path,
    info: () => ({ transactions, runtime, movedAside }),
    enqueue(input, now) {
      if (closed) return Promise.reject(new UplinkError('OUTBOX_CLOSED', 'the outbox is closed'))
      return new Promise((resolve, reject) => {
        pending.push({ input, now, resolve, reject })
        schedule()
      })
    },
    peek(limit, skip, now) {
      if (closed) return []
      for (const id of handedOut) {
        if (!skip.has(id) && !removals.has(id)) {
          forgetCursor()
          break
        }
      }
      const out: OutboxEntry[] = []
      // Expired rows are deleted as they are met; go round again so they do not hide live ones.
      for (let round = 0; round < 100 && out.length === 0; round++) {
        const rows = (
          cursor
            ? sql.drainAfter.all(cursor.priority, cursor.id, limit)
            : sql.drain.all(limit + skip.size + removals.size)
        ) as Row[]
        const expired: Row[] = []
        for (const row of rows) {
          if (out.length >= limit) break
          const id = Number(row.id)
          cursor = { priority: row.priority, id }
          if (skip.has(id) || removals.has(id)) continue
          handedOut.add(id)
          if (row.expires_at !== null && Number(row.expires_at) <= now) expired.push(row)
          else out.push(toEntry(row))
        }
        if (expired.length === 0) break
        try {
          transaction(() => {
            for (const row of expired) {
              if (sql.remove.get(row.id)) {
                messages--
                bytes -= Number(row.size)
              }
            }
          })
          for (const row of expired) drop(toEntry(row), 'expired')
        } catch (err) {
          report(
            new UplinkError('OUTBOX_ERROR', 'deleting expired messages failed', { cause: err }),
          )
          break
        }
      }
      return out
    },
    remove(id) {
      if (closed) return
      removals.add(id)
      handedOut.delete(id)
      // Deletes are not urgent (one lost in a crash means one duplicate, never a loss), so they
      // ride along with the next group commit, or go on their own after a short wait.
      if (removals.size >= REMOVAL_BATCH) schedule()
      else if (!removalTimer) {
        removalTimer = setTimeout(() => {
          removalTimer = undefined
          if (!closed) applyRemovals()
        }, REMOVAL_DELAY_MS)
        removalTimer.unref?.()
      }
    },
    stats: (): OutboxStats => ({
      messages: messages - removals.size,
      bytes,
      dropped: { ...dropped },
    }),
    setListener(l) {
      listener = l
      for (const err of startupErrors.splice(0)) l.error(err)
    },
    async close() {
      if (closed) return
      clearTimeout(removalTimer)
      flush()
      applyRemovals()
      closed = true
      db.close()
    },
  }
}

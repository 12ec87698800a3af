import { existsSync, renameSync } from 'node:fs'
import { UplinkError } from '@uplink/client'
import { type Database, sqliteCode } from './driver.js'
import { translate } from './failures.js'
import type { ResolvedSqliteOptions } from './options.js'
import { inspect, migrate } from './schema.js'
import { autocheckpointPages } from './space.js'
import { testHooks } from './test-hooks.js'

/** Thrown inside open when the file is SQLite but not an outbox this code can use. */
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

/** Takes the file's lock for good: see `configure`. */
function lock(db: Database): void {
  // EXCLUSIVE locking: the first transaction takes the file's lock and keeps it until close, so a
  // second process (or a second outbox in this one) gets SQLITE_BUSY at once, and the OS drops
  // the lock when a process dies, so a crash never leaves a stale lock. It also lets WAL run
  // without the shared-memory file.
  db.exec('PRAGMA locking_mode = EXCLUSIVE')
  db.exec('BEGIN EXCLUSIVE')
  db.exec('COMMIT')
}

/**
 * How far a commit waits for the disk: FULL (an fsync per commit) for durability full, NORMAL
 * otherwise (OFF only in the power-loss test, through its hook). Every place that sets
 * `synchronous` asks here, so one answer holds for the file.
 */
export function synchronousLevel(o: ResolvedSqliteOptions): 'FULL' | 'NORMAL' | 'OFF' {
  return testHooks.synchronous ?? (o.durability === 'full' ? 'FULL' : 'NORMAL')
}

/** The connection's pragmas: journal, durability, WAL bounds, the page cap. */
function pragmas(db: Database, o: ResolvedSqliteOptions): void {
  if (String(db.pragma('journal_mode = WAL')).toLowerCase() !== 'wal') {
    throw new UplinkError('OUTBOX_ERROR', 'SQLite refused WAL journal mode')
  }
  db.exec(`PRAGMA synchronous = ${synchronousLevel(o)}`)
  db.exec(`PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT}`)
  const pageSize = Number(db.pragma('page_size'))
  const checkpointPages = testHooks.walAutocheckpoint ?? autocheckpointPages(o.path, pageSize)
  db.exec(`PRAGMA wal_autocheckpoint = ${checkpointPages}`)
  if (o.maxPageCount !== undefined) db.pragma(`max_page_count = ${o.maxPageCount}`)
}

/** Checks the file and brings its schema up to date; throws NotOurs for a file to move aside. */
function prepareSchema(db: Database): void {
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

function configure(db: Database, o: ResolvedSqliteOptions): void {
  lock(db)
  pragmas(db, o)
  prepareSchema(db)
}

export interface Opened {
  db: Database
  /** Where a corrupt or foreign file found at the path was moved, if one was. */
  movedAside: string | undefined
  /** What the listener is told once it is set (the client sets it after the outbox is built). */
  startupErrors: UplinkError[]
}

const isCorrupt = (err: unknown): boolean => {
  const code = sqliteCode(err)
  return (
    err instanceof NotOurs ||
    code === 'SQLITE_NOTADB' ||
    code === 'SQLITE_CORRUPT' ||
    (err instanceof UplinkError && err.code === 'OUTBOX_CORRUPT')
  )
}

const closeQuietly = (db: Database | undefined) => {
  try {
    db?.close()
  } catch {}
}

/**
 * Opens the outbox file, locked, configured and migrated. A corrupt or foreign file is moved
 * aside (once) and a fresh outbox created in its place; a file open elsewhere is OUTBOX_LOCKED.
 */
export function openOutboxFile(
  driver: { open(path: string): Database },
  o: ResolvedSqliteOptions,
): Opened {
  let movedAside: string | undefined
  const startupErrors: UplinkError[] = []
  for (;;) {
    let db: Database | undefined
    try {
      db = driver.open(o.path)
      configure(db, o)
      return { db, movedAside, startupErrors }
    } catch (err) {
      const code = sqliteCode(err)
      // Never a crash loop: keep the bad file for a person to look at, and start afresh. Moved
      // before closing, because closing would delete a WAL that SQLite could not make sense of;
      // closed whatever happens, so that a failed open leaves no handle on the volume.
      let aside: string | undefined
      try {
        if (isCorrupt(err) && !movedAside) aside = moveAside(o.path)
      } catch (moveError) {
        closeQuietly(db)
        const why = moveError instanceof Error ? moveError.message : String(moveError)
        throw new UplinkError(
          'OUTBOX_CORRUPT',
          `${o.path} is not a usable outbox (${(err as Error).message}) and cannot be moved aside (${why}); move or delete it`,
          { cause: moveError, details: { path: o.path } },
        )
      }
      closeQuietly(db)
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
          `${o.path} was not a usable outbox (${(err as Error).message}); moved to ${aside} and started empty`,
          { cause: err, details: { movedTo: aside } },
        ),
      )
    }
  }
}

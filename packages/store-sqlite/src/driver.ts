import { createRequire } from 'node:module'
import { UplinkError } from '@uplink/client'

/**
 * The little of SQLite the outbox needs, so one implementation runs on better-sqlite3, Node's
 * built-in node:sqlite and Bun's bun:sqlite. All three are synchronous and take positional
 * parameters; this is the one place that knows how each differs.
 */
export interface Statement {
  run(...params: unknown[]): { changes: number }
  all(...params: unknown[]): unknown[]
  get(...params: unknown[]): unknown
  /** Rows as arrays in column order: no object with named keys built per row, so cheaper. */
  values(...params: unknown[]): unknown[][]
}

export interface Database {
  exec(sql: string): void
  prepare(sql: string): Statement
  /** One PRAGMA's first value; the statement is let go at once (it runs every drain). */
  pragma(sql: string): unknown
  /** Statements made by prepare() and held until close(): a count that must not grow by itself. */
  held(): number
  close(): void
}

/** The SQLite bindings the outbox runs on. */
export const DRIVERS = ['better-sqlite3', 'node:sqlite', 'bun:sqlite'] as const
export type SqliteDriver = (typeof DRIVERS)[number]

/** Which runtime this is: Bun, or Node. */
export const runtime: 'bun' | 'node' = typeof process.versions.bun === 'string' ? 'bun' : 'node'

// Loaded lazily and by name, so Node never sees bun:sqlite and Bun never loads the native addon.
const load = createRequire(import.meta.url)

interface RawStatement {
  run(...params: unknown[]): { changes: number | bigint }
  all(...params: unknown[]): unknown[]
  get(...params: unknown[]): unknown
}

interface RawDatabase {
  exec(sql: string): void
  close(): void
}

type Opener = (path: string) => Database

/** A PRAGMA's first value, for the bindings that have no pragma() of their own. */
const firstValue = (row: unknown): unknown =>
  row ? Object.values(row as Record<string, unknown>)[0] : undefined

function bunSqlite(): Opener {
  interface BunStatement extends RawStatement {
    values(...params: unknown[]): unknown[][]
    finalize(): void
  }
  const { Database: BunDatabase } = load('bun:sqlite') as {
    Database: new (
      path: string,
      options?: { create?: boolean },
    ) => RawDatabase & { prepare(sql: string): BunStatement }
  }
  return (path) => {
    const db = new BunDatabase(path, { create: true })
    // bun:sqlite closes with sqlite3_close_v2, which keeps the connection (and its EXCLUSIVE
    // lock) alive until every statement is finalized: finalize them all on close.
    const statements: BunStatement[] = []
    const prepare = (sql: string): BunStatement => {
      const stmt = db.prepare(sql)
      statements.push(stmt)
      return stmt
    }
    return {
      exec: (sql) => db.exec(sql),
      prepare: (sql) => {
        const stmt = prepare(sql)
        return {
          run: (...p) => stmt.run(...p) as { changes: number },
          all: (...p) => stmt.all(...p),
          // bun:sqlite answers null where the others answer undefined.
          get: (...p) => stmt.get(...p) ?? undefined,
          values: (...p) => stmt.values(...p),
        }
      },
      // Finalized here, not kept for close(): Space.reclaim runs pragmas each time the outbox
      // drains, and kept they were a statement each, for as long as the process ran.
      pragma: (sql) => {
        const stmt = db.prepare(`PRAGMA ${sql}`)
        try {
          return firstValue(stmt.get())
        } finally {
          stmt.finalize()
        }
      },
      held: () => statements.length,
      close: () => {
        for (const stmt of statements.splice(0)) stmt.finalize()
        db.close()
      },
    }
  }
}

function betterSqlite3(): Opener {
  interface BetterStatement extends RawStatement {
    raw(toggle: boolean): BetterStatement
  }
  const BetterDatabase = load('better-sqlite3') as new (
    path: string,
    options?: { timeout?: number },
  ) => RawDatabase & {
    prepare(sql: string): BetterStatement
    pragma(sql: string, options?: { simple?: boolean }): unknown
  }
  // The addon itself loads on the first open: try it now, so a missing or foreign binary (no
  // prebuilt one for this platform) falls through to node:sqlite instead of failing every open.
  new BetterDatabase(':memory:').close()
  return (path) => {
    // timeout 0: a second process must hear "locked" at once, not after a 5 s busy wait.
    const db = new BetterDatabase(path, { timeout: 0 })
    let prepared = 0
    return {
      exec: (sql) => db.exec(sql),
      prepare: (sql) => {
        const stmt = db.prepare(sql)
        prepared++
        // better-sqlite3 switches a whole statement to arrays: a second one, prepared when needed.
        let raw: BetterStatement | undefined
        return {
          run: stmt.run.bind(stmt) as Statement['run'],
          all: stmt.all.bind(stmt),
          get: stmt.get.bind(stmt),
          values: (...p) => {
            raw ??= db.prepare(sql).raw(true)
            return raw.all(...p) as unknown[][]
          },
        }
      },
      pragma: (sql) => db.pragma(sql, { simple: true }),
      held: () => prepared,
      close: () => db.close(),
    }
  }
}

function nodeSqlite(): Opener {
  interface NodeStatement extends RawStatement {
    // Node 22.16 / 24.0 and later; before, values() builds arrays from the row objects.
    setReturnArrays?(enabled: boolean): void
  }
  // Throws ERR_UNKNOWN_BUILTIN_MODULE on a Node without it (before 22.13 without a flag).
  const { DatabaseSync } = load('node:sqlite') as {
    DatabaseSync: new (
      path: string,
      options?: { timeout?: number },
    ) => RawDatabase & { prepare(sql: string): NodeStatement }
  }
  return (path) => {
    // timeout 0 (also its default): a second process hears "locked" at once.
    const db = new DatabaseSync(path, { timeout: 0 })
    let prepared = 0
    return {
      exec: (sql) => db.exec(sql),
      prepare: (sql) => {
        const stmt = db.prepare(sql)
        prepared++
        let arrays: ((...p: unknown[]) => unknown[][]) | undefined
        const toArrays = (): ((...p: unknown[]) => unknown[][]) => {
          const second = db.prepare(sql)
          if (second.setReturnArrays) {
            second.setReturnArrays(true)
            return (...p) => second.all(...p) as unknown[][]
          }
          return (...p) => second.all(...p).map((row) => Object.values(row as object))
        }
        return {
          // A number: bigints only with setReadBigInts, which the outbox never sets.
          run: (...p) => stmt.run(...p) as { changes: number },
          all: (...p) => stmt.all(...p),
          get: (...p) => stmt.get(...p),
          values: (...p) => {
            arrays ??= toArrays()
            return arrays(...p)
          },
        }
      },
      pragma: (sql) => firstValue(db.prepare(`PRAGMA ${sql}`).get()),
      held: () => prepared,
      // DatabaseSync finalizes its statements on close, so the lock goes with it.
      close: () => db.close(),
    }
  }
}

const OPENERS: Record<SqliteDriver, () => Opener> = {
  'bun:sqlite': bunSqlite,
  'better-sqlite3': betterSqlite3,
  'node:sqlite': nodeSqlite,
}

/** What `driver: 'auto'` tries, in order, on this runtime. */
export const AUTO_ORDER: readonly SqliteDriver[] =
  runtime === 'bun' ? ['bun:sqlite'] : ['better-sqlite3', 'node:sqlite']

const loaded = new Map<SqliteDriver, Opener>()

/**
 * The driver for `choice`, loaded once per process: 'auto' takes the first of AUTO_ORDER that
 * loads (better-sqlite3, absent or without a binary for this platform, falls through to
 * node:sqlite). Throws OUTBOX_ERROR naming what it tried and why each failed.
 */
export function selectDriver(choice: SqliteDriver | 'auto'): { name: SqliteDriver; open: Opener } {
  const candidates = choice === 'auto' ? AUTO_ORDER : [choice]
  const failures: string[] = []
  let cause: unknown
  for (const name of candidates) {
    const ready = loaded.get(name)
    if (ready) return { name, open: ready }
    try {
      const open = OPENERS[name]()
      loaded.set(name, open)
      return { name, open }
    } catch (err) {
      cause ??= err
      failures.push(`${name}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`)
    }
  }
  throw new UplinkError(
    'OUTBOX_ERROR',
    `no SQLite driver loads on this runtime (${failures.join('; ')}); on Node install better-sqlite3 or use Node 22.13 or later`,
    { cause, details: { tried: [...candidates] } },
  )
}

/** The SQLite result code of an error from any binding ('SQLITE_BUSY', ...), if any. */
export function sqliteCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; errcode?: unknown; message?: unknown }
  if (typeof e?.code === 'string' && e.code.startsWith('SQLITE_')) return e.code
  // node:sqlite: code ERR_SQLITE_ERROR, the (extended) SQLite result code as a number.
  if (typeof e?.errcode === 'number') {
    const primary = PRIMARY_CODES[e.errcode & 0xff]
    if (primary) return primary
  }
  const text = String(e?.message ?? '')
  if (/database is locked|busy/i.test(text)) return 'SQLITE_BUSY'
  if (/not a database|file is encrypted/i.test(text)) return 'SQLITE_NOTADB'
  if (/malformed|corrupt/i.test(text)) return 'SQLITE_CORRUPT'
  if (/database or disk is full/i.test(text)) return 'SQLITE_FULL'
  return undefined
}

/** The primary result codes the outbox acts on (sqlite3.h). */
const PRIMARY_CODES: Record<number, string> = {
  5: 'SQLITE_BUSY',
  6: 'SQLITE_LOCKED',
  11: 'SQLITE_CORRUPT',
  13: 'SQLITE_FULL',
  26: 'SQLITE_NOTADB',
}

/** Opens (creating) the file at `path` with the chosen driver. */
export function openDatabase(path: string, choice: SqliteDriver | 'auto' = 'auto'): Database {
  return selectDriver(choice).open(path)
}

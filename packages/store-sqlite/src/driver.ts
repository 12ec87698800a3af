import { createRequire } from 'node:module'

/**
 * The little of SQLite the outbox needs, so one implementation runs on better-sqlite3 (Node) and
 * bun:sqlite (Bun). Both are synchronous; both take positional parameters.
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
  /** One PRAGMA's first value. */
  pragma(sql: string): unknown
  close(): void
}

/** Which SQLite binding this runtime has: Bun's own, or better-sqlite3 on Node. */
export const runtime: 'bun' | 'node' = typeof process.versions.bun === 'string' ? 'bun' : 'node'

// Loaded lazily and by name, so Node never sees bun:sqlite and Bun never loads the native addon.
const load = createRequire(import.meta.url)

interface BunStatement {
  run(...params: unknown[]): { changes: number }
  all(...params: unknown[]): unknown[]
  get(...params: unknown[]): unknown
  values(...params: unknown[]): unknown[][]
  finalize(): void
}

interface BetterStatement {
  run(...params: unknown[]): { changes: number }
  all(...params: unknown[]): unknown[]
  get(...params: unknown[]): unknown
  raw(toggle: boolean): BetterStatement
}

export function openDatabase(path: string): Database {
  if (runtime === 'bun') {
    const { Database: BunDatabase } = load('bun:sqlite') as {
      Database: new (
        path: string,
        options?: { create?: boolean },
      ) => {
        exec(sql: string): void
        prepare(sql: string): BunStatement
        close(): void
      }
    }
    const db = new BunDatabase(path, { create: true })
    // bun:sqlite closes with sqlite3_close_v2, which keeps the connection (and its EXCLUSIVE
    // lock) alive until every statement is finalized: finalize them all on close.
    const statements: BunStatement[] = []
    const track = (stmt: BunStatement): BunStatement => {
      statements.push(stmt)
      return stmt
    }
    return {
      exec: (sql) => db.exec(sql),
      prepare: (sql) => {
        const stmt = track(db.prepare(sql))
        return {
          run: (...p) => stmt.run(...p),
          all: (...p) => stmt.all(...p),
          // bun:sqlite answers null where better-sqlite3 answers undefined.
          get: (...p) => stmt.get(...p) ?? undefined,
          values: (...p) => stmt.values(...p),
        }
      },
      pragma: (sql) => {
        const row = track(db.prepare(`PRAGMA ${sql}`)).get() as Record<string, unknown> | null
        return row ? Object.values(row)[0] : undefined
      },
      close: () => {
        for (const stmt of statements.splice(0)) stmt.finalize()
        db.close()
      },
    }
  }
  const BetterSqlite3 = load('better-sqlite3') as new (
    path: string,
    options?: { timeout?: number },
  ) => {
    exec(sql: string): void
    prepare(sql: string): BetterStatement
    pragma(sql: string, options?: { simple?: boolean }): unknown
    close(): void
  }
  // timeout 0: a second process must hear "locked" at once, not after a 5 s busy wait.
  const db = new BetterSqlite3(path, { timeout: 0 })
  return {
    exec: (sql) => db.exec(sql),
    prepare: (sql) => {
      const stmt = db.prepare(sql)
      // better-sqlite3 switches a whole statement to arrays: a second one, prepared when needed.
      let raw: BetterStatement | undefined
      return {
        run: stmt.run.bind(stmt),
        all: stmt.all.bind(stmt),
        get: stmt.get.bind(stmt),
        values: (...p) => {
          raw ??= db.prepare(sql).raw(true)
          return raw.all(...p) as unknown[][]
        },
      }
    },
    pragma: (sql) => db.pragma(sql, { simple: true }),
    close: () => db.close(),
  }
}

/** The SQLite result code of an error from either binding ('SQLITE_BUSY', ...), if any. */
export function sqliteCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; message?: unknown }
  if (typeof e?.code === 'string' && e.code.startsWith('SQLITE_')) return e.code
  const text = String(e?.message ?? '')
  if (/database is locked|busy/i.test(text)) return 'SQLITE_BUSY'
  if (/not a database|file is encrypted/i.test(text)) return 'SQLITE_NOTADB'
  if (/malformed|corrupt/i.test(text)) return 'SQLITE_CORRUPT'
  if (/database or disk is full/i.test(text)) return 'SQLITE_FULL'
  return undefined
}

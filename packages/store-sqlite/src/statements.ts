import type { Database, Statement } from './driver.js'
import { COLUMNS, WIDTH } from './row.js'

const INSERT = `INSERT INTO messages (${COLUMNS}) VALUES`
const ROW = `(${Array(WIDTH).fill('?').join(', ')})`
/** Rows per INSERT statement in a group commit: one call into SQLite instead of 32. */
export const INSERT_ROWS = 32

export interface Statements {
  insert: Statement
  insertMany: Statement
  alarmsAfter: Statement
  telemetryAfter: Statement
  remove: Statement
  removeRange: Statement
  totals: Statement
}

export interface Totals {
  n: number
  bytes: number
  last: number
}

export function prepareStatements(db: Database): Statements {
  return {
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
}

/** What the file holds, counted by SQLite. */
export const countTotals = (sql: Statements): Totals => {
  const t = sql.totals.get() as Totals
  return { n: Number(t.n), bytes: Number(t.bytes), last: Number(t.last) }
}

import type { AckedRanges, ReadBetween } from './acked.js'
import type { Database, Statement } from './driver.js'
import { ALARM, COLUMNS, type PriorityCode, type Row, WIDTH } from './row.js'

const INSERT = `INSERT INTO messages (${COLUMNS}) VALUES`
const ROW = `(${Array(WIDTH).fill('?').join(', ')})`
/** Rows per INSERT statement in a group commit: one call into SQLite instead of 32. */
export const INSERT_ROWS = 32

export interface Statements {
  insert: Statement
  insertMany: Statement
  alarmsAfter: Statement
  telemetryAfter: Statement
  /**
   * The same rows as the two above, a page in one JSON text and one blob (see page.ts); absent
   * where the outbox does not read pages whole, or on a SQLite too old for them (a driver built
   * against an old system library): the drain then reads row by row.
   */
  pages: { alarms: Statement; telemetry: Statement } | undefined
  remove: Statement
  removeRange: Statement
  totals: Statement
  /** Every row, acknowledged or not: checked before the table is emptied (acked.ts). */
  countRows: Statement
  /** The whole table at once: SQLite's truncate, which does not rewrite the pages it frees. */
  clear: Statement
  /** The `acked` table's ranges, each with its rows and bytes counted, in id order. */
  ackedRanges: Statement
  ackedInsert: Statement
  ackedGrow: Statement
  ackedDrop: Statement
  ackedClear: Statement
}

export interface Totals {
  n: number
  bytes: number
  last: number
}

// A page of the drain in one JSON text and one blob (page.ts says why, and how their order is
// checked). group_concat's TEXT is the blobs' bytes unchanged only in a UTF-8 database: SQLite's
// default, which every outbox this code created has; preparePages checks, for a file that came
// to it empty from elsewhere.
export const pageSql = (priority: 0 | 1) => `SELECT
  json_group_array(json_array(id, topic, length(payload), qos, retain, enqueued_at, expires_at, size)),
  CAST(group_concat(payload, '') AS BLOB)
  FROM (SELECT ${COLUMNS} FROM messages WHERE priority = ${priority} AND id > ? AND id < ? ORDER BY id LIMIT ?)`

function preparePages(db: Database): Statements['pages'] {
  if (String(db.pragma('encoding')) !== 'UTF-8') return undefined
  try {
    return { alarms: db.prepare(pageSql(0)), telemetry: db.prepare(pageSql(1)) }
  } catch {
    return undefined
  }
}

/** `wholePages`: prepare the page statements too (see page.ts for where they pay and are sound). */
export function prepareStatements(db: Database, wholePages: boolean): Statements {
  return {
    insert: db.prepare(`${INSERT} ${ROW}`),
    insertMany: db.prepare(`${INSERT} ${Array(INSERT_ROWS).fill(ROW).join(', ')}`),
    // The literal priorities matter: SQLite uses the partial alarm index only for `priority = 0`.
    // The upper bound is where the next acknowledged range starts (acked.ts).
    alarmsAfter: db.prepare(
      `SELECT ${COLUMNS} FROM messages WHERE priority = 0 AND id > ? AND id < ? ORDER BY id LIMIT ?`,
    ),
    telemetryAfter: db.prepare(
      `SELECT ${COLUMNS} FROM messages WHERE priority = 1 AND id > ? AND id < ? ORDER BY id LIMIT ?`,
    ),
    pages: wholePages ? preparePages(db) : undefined,
    remove: db.prepare('DELETE FROM messages WHERE id = ? RETURNING size'),
    removeRange: db.prepare('DELETE FROM messages WHERE id BETWEEN ? AND ?'),
    totals: db.prepare(
      'SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes, coalesce(max(id), 0) AS last FROM messages',
    ),
    countRows: db.prepare('SELECT count(*) AS n FROM messages'),
    clear: db.prepare('DELETE FROM messages'),
    ackedRanges: db.prepare(
      `SELECT a.lo, a.hi, count(m.id), coalesce(sum(m.size), 0)
       FROM acked a LEFT JOIN messages m ON m.id BETWEEN a.lo AND a.hi
       GROUP BY a.lo ORDER BY a.lo`,
    ),
    ackedInsert: db.prepare('INSERT INTO acked (lo, hi) VALUES (?, ?)'),
    ackedGrow: db.prepare('UPDATE acked SET hi = ? WHERE lo = ?'),
    ackedDrop: db.prepare('DELETE FROM acked WHERE lo = ?'),
    ackedClear: db.prepare('DELETE FROM acked'),
  }
}

/** Rows of `priority` with `after < id < before`, row by row. */
export const rowsBetween =
  (sql: Statements, priority: PriorityCode): ReadBetween =>
  (after, before, limit) =>
    (priority === ALARM ? sql.alarmsAfter : sql.telemetryAfter).values(
      after,
      before,
      limit,
    ) as Row[]

/**
 * What the file holds, counted by SQLite: the messages not acknowledged (`acked`'s ranges set
 * apart), and the highest id stored or marked.
 */
export const countTotals = (sql: Statements, acked: AckedRanges): Totals => {
  const t = sql.totals.get() as Totals
  return {
    n: Number(t.n) - acked.rows,
    bytes: Number(t.bytes) - acked.bytes,
    last: Math.max(Number(t.last), acked.last),
  }
}

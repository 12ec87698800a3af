import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { NO_BOUND } from '../src/acked.js'
import { type Database, openDatabase } from '../src/driver.js'
import { readPage } from '../src/page.js'
import { COLUMNS } from '../src/row.js'
import { migrate } from '../src/schema.js'
import { pageSql } from '../src/statements.js'
import { TEST_DRIVER } from './support/driver.js'

const dirs: string[] = []
const dbs: Database[] = []
afterEach(() => {
  for (const db of dbs.splice(0)) db.close()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/** A real outbox table holding telemetry rows 1..n. */
function table(n: number): Database {
  const dir = mkdtempSync(join(tmpdir(), 'uplink-page-'))
  dirs.push(dir)
  const db = openDatabase(join(dir, 'outbox.db'), TEST_DRIVER)
  dbs.push(db)
  migrate(db)
  const insert = db.prepare(
    `INSERT INTO messages (${COLUMNS}) VALUES (?, 1, ?, ?, 1, 0, 0, NULL, 9)`,
  )
  for (let id = 1; id <= n; id++) insert.run(id, `t/${id}`, new Uint8Array([id]))
  return db
}

/** The telemetry page statement statements.ts prepares, its subquery in the order given. */
const pageIn = (db: Database, order: 'ASC' | 'DESC') => {
  const sql = pageSql(1)
  expect(sql).toContain('ORDER BY id LIMIT')
  const stmt = db.prepare(sql.replace('ORDER BY id LIMIT', `ORDER BY id ${order} LIMIT`))
  return { alarms: stmt, telemetry: stmt }
}

describe('reading a page in one value', () => {
  it('builds the rows in id order, each payload its own bytes of the page blob', () => {
    const db = table(5)
    const rows = readPage(pageIn(db, 'ASC'), 1, 1, NO_BOUND, 3)
    expect(rows?.map((r) => [r[0], r[2], [...r[3]]])).toEqual([
      [2, 't/2', [2]],
      [3, 't/3', [3]],
      [4, 't/4', [4]],
    ])
  })

  it('gives up on a page SQLite aggregated out of id order, so the caller reads row by row', () => {
    const db = table(5)
    expect(readPage(pageIn(db, 'DESC'), 1, 0, NO_BOUND, 5)).toBeUndefined()
  })

  it('stops below its upper bound, where an acknowledged range starts', () => {
    const db = table(6)
    expect(readPage(pageIn(db, 'ASC'), 1, 1, 5, 10)?.map((r) => r[0])).toEqual([2, 3, 4])
  })

  it('an empty page is no rows', () => {
    const db = table(2)
    expect(readPage(pageIn(db, 'ASC'), 1, 2, NO_BOUND, 10)).toEqual([])
  })

  it('gives way to the row-by-row read when SQLite cannot build the page (here its LIMIT is not a number)', () => {
    const db = table(3)
    expect(readPage(pageIn(db, 'ASC'), 1, 0, NO_BOUND, 'many' as unknown as number)).toBeUndefined()
  })
})

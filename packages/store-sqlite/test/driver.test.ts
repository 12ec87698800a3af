// The driver seam on the runtime this runs on (Node in `pnpm test`, Bun in `pnpm test:bun`).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { UplinkError } from '@uplink/client'
import { afterEach, describe, expect, it } from 'vitest'
import { AUTO_ORDER, type Database, openDatabase, selectDriver, sqliteCode } from '../src/driver.js'
import { sqliteOutbox } from '../src/index.js'
import { TEST_DRIVER } from './support/driver.js'

const dirs: string[] = []
const dbs: Database[] = []
afterEach(() => {
  for (const db of dbs.splice(0)) db.close()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})
const tempPath = () => {
  const dir = mkdtempSync(join(tmpdir(), 'uplink-driver-'))
  dirs.push(dir)
  return join(dir, 'x.db')
}
const thrown = (fn: () => unknown): UplinkError => {
  try {
    fn()
  } catch (err) {
    return err as UplinkError
  }
  throw new Error('did not throw')
}
describe('SQLite driver selection', () => {
  it('auto takes the first driver of this runtime that loads: bun:sqlite on Bun, better-sqlite3 on Node', () => {
    expect(selectDriver('auto').name).toBe(AUTO_ORDER[0])
    expect(AUTO_ORDER[0]).toBe(process.versions.bun ? 'bun:sqlite' : 'better-sqlite3')
  })

  it('an unknown driver name is INVALID_OPTIONS naming the field', () => {
    const err = thrown(() => sqliteOutbox({ path: tempPath(), driver: 'sqlite3' as never }))
    expect(err.code).toBe('INVALID_OPTIONS')
    expect(err.details).toEqual({ field: 'driver' })
  })
})

describe('sqliteCode on errors of the driver under test', () => {
  it('a file that is not a database is SQLITE_NOTADB', () => {
    const path = tempPath()
    writeFileSync(
      path,
      'this is not a database, it is just long enough to have a header '.repeat(8),
    )
    const err = thrown(() => {
      const db = openDatabase(path, TEST_DRIVER)
      dbs.push(db)
      db.pragma('quick_check')
    })
    expect(sqliteCode(err)).toBe('SQLITE_NOTADB')
  })

  it('pragma() holds no statement once it has answered: a drain that runs pragmas for hours holds what it prepared, no more', () => {
    const db = openDatabase(tempPath(), TEST_DRIVER)
    dbs.push(db)
    const select = db.prepare('SELECT 1')
    const before = db.held()
    for (let i = 0; i < 100; i++) expect(db.pragma('auto_vacuum')).toBe(0)
    expect(db.held()).toBe(before)
    expect(select.get()).toBeDefined()
  })

  it('a second connection to an exclusively locked file is SQLITE_BUSY', () => {
    const path = tempPath()
    const first = openDatabase(path, TEST_DRIVER)
    dbs.push(first)
    first.exec('PRAGMA locking_mode = EXCLUSIVE')
    first.exec('BEGIN EXCLUSIVE')
    first.exec('COMMIT')
    const second = openDatabase(path, TEST_DRIVER)
    dbs.push(second)
    expect(sqliteCode(thrown(() => second.exec('BEGIN EXCLUSIVE')))).toBe('SQLITE_BUSY')
  })
})

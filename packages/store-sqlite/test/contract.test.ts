// The Outbox contract on the SQLite outbox, on the driver this run is for (see
// sqlite-outbox.test.ts): better-sqlite3 and node:sqlite under `pnpm test`, bun:sqlite under
// `pnpm test:bun`.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ManualClock } from '@uplink/client'
import { afterEach } from 'vitest'
import { outboxContract } from '../../client/test/support/outbox-contract.js'
import { type SqliteOutbox, sqliteOutbox } from '../src/index.js'
import { TEST_DRIVER } from './support/driver.js'

const clock = new ManualClock()
const opened: SqliteOutbox[] = []
const dirs: string[] = []
afterEach(async () => {
  for (const box of opened.splice(0)) await box.close()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

for (const cacheBytes of [0, undefined]) {
  outboxContract(`sqliteOutbox (${TEST_DRIVER}, ${cacheBytes === 0 ? 'no cache' : 'cached'})`, {
    open(bounds) {
      const dir = mkdtempSync(join(tmpdir(), 'uplink-contract-'))
      dirs.push(dir)
      const box = sqliteOutbox({
        ...bounds,
        path: join(dir, 'outbox.db'),
        driver: TEST_DRIVER,
        clock,
        cacheBytes,
        durability: 'normal',
      })
      opened.push(box)
      return box
    },
    // Past the batched deletes' timer.
    settle: () => clock.advance(100),
  })
}

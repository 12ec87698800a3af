/**
 * pnpm bench:outbox:writes [--messages N] [--dir DIR] [--drivers LIST]
 *
 * What draining a backlog after a restart writes to the disk, per message, beside what the
 * backlog takes on disk: a gateway's flash wears with every byte written. The outbox is filled,
 * closed and opened again, then drained by taking 32 messages at a time and acknowledging them,
 * with no broker, so that every byte the process writes is the store's (/proc/self/io, so Linux
 * only: write_bytes, what reached the block layer, and wchar, what went through write()). DIR
 * must be on a real filesystem for write_bytes to mean anything (default: the system's temp
 * directory; tmpfs counts nothing there).
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { type SqliteDriver, sqliteOutbox } from '@uplink/store-sqlite'
import { input } from './workload.js'

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    dir: { type: 'string', default: tmpdir() },
    drivers: {
      type: 'string',
      default: process.versions.bun ? 'bun:sqlite' : 'better-sqlite3,node:sqlite',
    },
  },
})
const N = Number(values.messages)

function io(): { wchar: number; writeBytes: number } {
  const fields = new Map(
    readFileSync('/proc/self/io', 'utf8')
      .trim()
      .split('\n')
      .map((line) => line.split(': ') as [string, string]),
  )
  return { wchar: Number(fields.get('wchar')), writeBytes: Number(fields.get('write_bytes')) }
}

for (const driver of values.drivers.split(',') as SqliteDriver[]) {
  const dir = mkdtempSync(join(values.dir, 'uplink-outbox-writes-'))
  try {
    const path = join(dir, 'outbox.db')
    const filled = sqliteOutbox({ path, driver })
    await Promise.all(Array.from({ length: N }, (_, i) => filled.enqueue(input(i), Date.now())))
    await filled.close()
    const stored = statSync(path).size
    const box = sqliteOutbox({ path, driver })
    const before = io()
    let drained = 0
    for (;;) {
      const batch = await box.take(32, Date.now())
      if (batch.length === 0) break
      for (const e of batch) box.ack(e.id)
      drained += batch.length
      // As acknowledgements arrive: the event loop turns between windows.
      await new Promise((r) => setImmediate(r))
    }
    await box.close()
    const after = io()
    const per = (bytes: number) => `${Math.round(bytes / drained)} B/message`
    console.log(
      `${driver}: drained ${drained} after a restart; written ${per(after.writeBytes - before.writeBytes)} ` +
        `(write() ${per(after.wchar - before.wchar)}); the backlog on disk ${per(stored)}`,
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * pnpm bench:outbox:profile [--path drain|enqueue] [--driver better-sqlite3|node:sqlite|bun:sqlite]
 *                           [--messages N] [--out FILE]
 *
 * A CPU profile of one of the two paths bench:outbox sets targets for, and of nothing else: the
 * profiler (node:inspector) runs only while it is measured, so filling the outbox and starting
 * the broker stay out of it. drain: a filled outbox closed and opened again (every row read from
 * disk), drained by the client to a testkit broker; enqueue: durable enqueues, 2 000
 * outstanding. Writes FILE (default outbox-PATH.cpuprofile) for Chrome DevTools or speedscope.
 * Node only: Bun has no inspector session API.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createUplink, DEFAULTS } from '@uplink/client'
import { type SqliteDriver, sqliteOutbox } from '@uplink/store-sqlite'
import { startBroker } from '@uplink/testkit'
import { input, keepOutstanding } from './workload.js'

const { values } = parseArgs({
  options: {
    path: { type: 'string', default: 'drain' },
    driver: { type: 'string', default: 'better-sqlite3' },
    messages: { type: 'string', default: '100000' },
    out: { type: 'string' },
  },
})
const driver = values.driver as SqliteDriver
const N = Number(values.messages)
const out = values.out ?? `outbox-${values.path}.cpuprofile`
const dir = mkdtempSync(join(tmpdir(), 'uplink-outbox-profile-'))
const file = join(dir, 'outbox.db')

const session = new Session()
session.connect()
await session.post('Profiler.enable')
// 0.2 ms: fine enough to see a row's decoding, coarse enough not to slow the drain much.
await session.post('Profiler.setSamplingInterval', { interval: 200 })

/** Profiles `work`, which returns how many messages it moved; prints their rate. */
async function profiled(work: () => Promise<number>): Promise<void> {
  await session.post('Profiler.start')
  const t0 = performance.now()
  const n = await work()
  const seconds = (performance.now() - t0) / 1000
  const { profile } = await session.post('Profiler.stop')
  writeFileSync(out, JSON.stringify(profile))
  console.log(`${values.path}, ${driver}: ${Math.round(n / seconds)} msg/s; wrote ${out}`)
}

try {
  if (values.path === 'drain') {
    const filled = sqliteOutbox({ path: file, driver })
    await Promise.all(Array.from({ length: N }, (_, i) => filled.enqueue(input(i), Date.now())))
    await filled.close()
    const box = sqliteOutbox({ path: file, driver })
    const broker = await startBroker()
    const uplink = createUplink({
      clientId: 'bench-outbox-profile',
      endpoints: [broker.url],
      outbox: box,
      inflightWindow: DEFAULTS.inflightWindow,
    })
    await profiled(async () => {
      await uplink.start()
      // Bounded: a drain that stalls ends the profile after a minute.
      for (const t0 = performance.now(); box.stats().messages > 0; ) {
        if (performance.now() - t0 > 60_000) break
        await new Promise((r) => setTimeout(r, 2))
      }
      return N - box.stats().messages
    })
    await uplink.stop()
    await broker.stop()
  } else if (values.path === 'enqueue') {
    const box = sqliteOutbox({ path: file, driver, maxMessages: N + 1, maxBytes: 2 ** 40 })
    await profiled(() => keepOutstanding(box, N, 2_000, 60_000))
    await box.close()
  } else {
    throw new Error(`--path: ${values.path} is not drain or enqueue`)
  }
} finally {
  session.disconnect()
  rmSync(dir, { recursive: true, force: true })
}

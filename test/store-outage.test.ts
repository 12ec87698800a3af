import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createUplink } from '@uplink/client'
import { sqliteOutbox } from '@uplink/store-sqlite'
import { startBroker, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

describe('SQLite outbox through a broker outage', () => {
  it('publishes through the primary dying; the secondary receives everything, in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uplink-outage-'))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const primary = await startBroker({ host: '127.0.0.1' })
    const secondary = await startBroker({ host: '127.0.0.2' })
    cleanup.push(() => secondary.stop())
    const uplink = createUplink({
      clientId: 'gw-outage',
      endpoints: [primary.url, secondary.url],
      failoverAfter: 1,
      backoff: { initialMs: 50, maxMs: 200 },
      outbox: sqliteOutbox({ path: join(dir, 'outbox.db') }),
    })
    cleanup.push(() => uplink.stop())
    await uplink.start()
    const total = 600
    let published = 0
    const publishing = (async () => {
      for (; published < total; published++) {
        await uplink.publish('telemetry/gw-outage', JSON.stringify({ seq: published }), { qos: 1 })
        if (published % 20 === 0) await new Promise((r) => setTimeout(r, 5))
      }
    })()
    await waitFor(() => primary.publishes.length >= 150, 'traffic on the primary')
    await primary.kill()
    await publishing
    const seqs = (list: typeof primary.publishes) =>
      list.map((p) => JSON.parse(p.payload.toString()).seq as number)
    await waitFor(
      () => {
        const got = new Set([...seqs(primary.publishes), ...seqs(secondary.publishes)])
        return got.size === total
      },
      'every message delivered',
      15_000,
    )
    expect(secondary.publishes.length).toBeGreaterThan(0)
    // In order: first occurrences across the primary then the secondary are 0, 1, 2, ...
    const seen = new Set<number>()
    const order: number[] = []
    for (const s of [...seqs(primary.publishes), ...seqs(secondary.publishes)]) {
      if (!seen.has(s)) {
        seen.add(s)
        order.push(s)
      }
    }
    expect(order).toEqual(Array.from({ length: total }, (_, i) => i))
    expect(uplink.stats()).toMatchObject({ endpoint: secondary.url })
    await waitFor(() => uplink.stats().outbox.messages === 0, 'the outbox emptied')
  }, 30_000)
})

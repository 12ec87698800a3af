import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createUplink, type UplinkError } from '@uplink/client'
import { sqliteOutbox } from '@uplink/store-sqlite'
import { type ReceivedPublish, startBroker, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

const seqs = (list: ReceivedPublish[]) =>
  list.map((p) => JSON.parse(p.payload.toString()).seq as number)

/** Sequence numbers in the order a broker first saw them. */
function firstSeen(list: number[]): number[] {
  const seen = new Set<number>()
  return list.filter((s) => !seen.has(s) && seen.add(s))
}

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
    const errors: UplinkError[] = []
    uplink.on('error', (err) => errors.push(err))
    let publishedWhileDown = 0
    // The second half waits for the primary to be dead, so it is published through the outage
    // however fast the first half drained.
    let primaryKilled = () => {}
    const primaryDead = new Promise<void>((resolve) => {
      primaryKilled = resolve
    })
    let down = false
    uplink.on('disconnect', () => {
      down = true
      // The only disconnect is the primary dying: the second half of the publishes starts now,
      // before any reconnect can have happened.
      primaryKilled()
    })
    uplink.on('connect', () => {
      down = false
    })
    cleanup.push(() => uplink.stop())
    await uplink.start()

    const total = 600
    let published = 0
    const publishing = (async () => {
      for (; published < total; published++) {
        if (published === total / 2) await primaryDead
        // Resolves once stored: the broker being gone makes no difference to the caller.
        await uplink.publish('telemetry/gw-outage', JSON.stringify({ seq: published }), { qos: 1 })
        if (down) publishedWhileDown++
        if (published % 20 === 0) await new Promise((r) => setTimeout(r, 5))
      }
    })()
    await waitFor(() => primary.publishes.length >= 150, 'traffic on the primary')
    await primary.kill()
    await publishing
    await waitFor(
      () => new Set([...seqs(primary.publishes), ...seqs(secondary.publishes)]).size === total,
      'every message delivered',
      15_000,
    )

    // The primary saw a prefix; the secondary saw everything from the oldest message the primary
    // had not acknowledged (re-sent: at least once) to the last, each first seen in order.
    const onPrimary = firstSeen(seqs(primary.publishes))
    const onSecondary = firstSeen(seqs(secondary.publishes))
    expect(onPrimary).toEqual(Array.from({ length: onPrimary.length }, (_, i) => i))
    const from = onSecondary[0] as number
    expect(from).toBeLessThanOrEqual(onPrimary.length)
    expect(onSecondary).toEqual(Array.from({ length: total - from }, (_, i) => from + i))
    expect(uplink.stats()).toMatchObject({ endpoint: secondary.url })
    await waitFor(() => uplink.stats().outbox.messages === 0, 'the outbox emptied')
    expect(errors).toEqual([])
    // Not a formality: publishes went on while no broker was connected.
    expect(publishedWhileDown).toBeGreaterThan(0)
  }, 30_000)
})

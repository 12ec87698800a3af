import { startBroker, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import {
  createUplink,
  ManualClock,
  memoryOutbox,
  type Outbox,
  type OutboxEntry,
  type UplinkError,
} from '../src/index.js'
import { nextEvent } from './support/events.js'

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

/**
 * A user's own outbox that reads asynchronously, as one over a network store would: the memory
 * outbox underneath, its first take held until the test settles it.
 */
function heldFirstTake(box: Outbox) {
  let settle: { resolve(): void; reject(err: Error): void } | undefined
  let onStarted = () => {}
  const started = new Promise<void>((resolve) => (onStarted = resolve))
  let takes = 0
  const outbox: Outbox = {
    enqueue: (input, now) => box.enqueue(input, now),
    take(limit, now) {
      if (takes++ > 0) return Promise.resolve(box.take(limit, now))
      return new Promise<OutboxEntry[]>((resolve, reject) => {
        settle = { resolve: () => resolve(box.take(limit, now)), reject }
        onStarted()
      })
    },
    ack: (id) => box.ack(id),
    release: (ids) => box.release(ids),
    head: () => box.head(),
    stats: () => box.stats(),
    setListener: (listener) => box.setListener(listener),
    close: () => box.close(),
  }
  return {
    outbox,
    started,
    get takes() {
      return takes
    },
    resolve: () => settle?.resolve(),
    reject: (err: Error) => settle?.reject(err),
  }
}

describe('an asynchronous outbox', () => {
  it('a batch it hands out after stop() began goes back to it, unsent, rather than out on a link being closed', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const box = memoryOutbox()
    const held = heldFirstTake(box)
    const uplink = createUplink({
      clientId: 'gw-async-stop',
      endpoints: [broker.url],
      clock: new ManualClock(0),
      outbox: held.outbox,
    })
    cleanup.push(() => uplink.stop())
    await uplink.publish('late/1', 'x', { qos: 1 })
    await uplink.start()
    await held.started
    // The take ends within the same turn as the stop, while its connection is still open.
    const stopped = uplink.stop()
    held.resolve()
    await stopped
    expect(broker.publishes).toEqual([])
    // Not left out of the drain either: the next take hands it out.
    expect((await box.take(10, 0)).map((e) => e.topic)).toEqual(['late/1'])
  })

  it('a take it rejects is reported, and what was published while it ran is still sent', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const held = heldFirstTake(memoryOutbox())
    const uplink = createUplink({
      clientId: 'gw-async-reject',
      endpoints: [broker.url],
      clock: new ManualClock(0),
      outbox: held.outbox,
    })
    cleanup.push(() => uplink.stop())
    const failed = nextEvent(uplink, 'error', (err: UplinkError) => err.code === 'OUTBOX_ERROR')
    await uplink.start()
    await held.started
    // Enqueued while the first take runs: its notification waits for that take to end.
    await uplink.publish('during/1', 'x', { qos: 1 })
    held.reject(new Error('store unreachable'))
    expect((await failed).message).toContain('reading the outbox')
    await waitFor(() => broker.publishes.length === 1, 'the message published during the take')
    expect(broker.publishes.map((p) => p.topic)).toEqual(['during/1'])
    expect(held.takes).toBeGreaterThan(1)
  })
})

import { describe, expect, it } from 'vitest'
import { memoryOutbox } from '../src/memory-outbox.js'
import type { DropReason, OutboxEntry, OutboxInput, Priority } from '../src/outbox.js'
import { outboxContract } from './support/outbox-contract.js'

const msg = (n: number, priority: Priority = 'telemetry', expiresAt?: number): OutboxInput => ({
  topic: `t/${n}`,
  payload: Buffer.from(`m${n}`),
  qos: 1,
  retain: false,
  priority,
  expiresAt,
})

describe('memoryOutbox options', () => {
  it.each([
    [{ maxMessages: 0 }, 'memoryOutbox.maxMessages must be an integer from 1'],
    [{ maxBytes: Number.NaN }, 'memoryOutbox.maxBytes must be an integer from 1'],
    [{ overflow: 'rejects' }, "memoryOutbox.overflow must be 'drop-oldest' or 'reject'"],
    [
      { maxMessage: 5 },
      'memoryOutbox.maxMessage is not an option; did you mean memoryOutbox.maxMessages?',
    ],
  ])('%o is INVALID_OPTIONS: %s', (options, message) => {
    expect(() => memoryOutbox(options as never)).toThrow(
      expect.objectContaining({
        code: 'INVALID_OPTIONS',
        message: expect.stringContaining(message),
      }),
    )
  })
})

describe('memoryOutbox', () => {
  it('drains alarms first, then FIFO, never handing out a message that is out', async () => {
    const box = memoryOutbox()
    const entries = []
    for (const m of [msg(1), msg(2, 'alarm'), msg(3), msg(4, 'alarm')])
      entries.push(await box.enqueue(m, 0))
    const order = (await box.take(10, 0)).map((e) => e.topic)
    expect(order).toEqual(['t/2', 't/4', 't/1', 't/3'])
    box.release(entries.map((e) => e.id))
    await box.take(2, 0)
    expect((await box.take(2, 0)).map((e) => e.topic)).toEqual(['t/1', 't/3'])
  })

  it('removes only what is acknowledged and keeps ids increasing', async () => {
    const box = memoryOutbox()
    const a = await box.enqueue(msg(1), 0)
    const b = await box.enqueue(msg(2), 0)
    expect(b.id).toBeGreaterThan(a.id)
    await box.ack(a.id)
    await box.ack(999)
    expect(box.stats().messages).toBe(1)
    expect(box.stats().bytes).toBe(5)
  })

  it('drops the oldest telemetry before any alarm on overflow, and reports each drop', async () => {
    const drops: Array<[string, DropReason]> = []
    const box = memoryOutbox({ maxMessages: 3 })
    box.setListener({ drop: (e: OutboxEntry, r) => drops.push([e.topic, r]), error: () => {} })
    for (const m of [msg(1, 'alarm'), msg(2), msg(3), msg(4), msg(5, 'alarm'), msg(6, 'alarm')])
      await box.enqueue(m, 0)
    expect(drops).toEqual([
      ['t/2', 'overflow'],
      ['t/3', 'overflow'],
      ['t/4', 'overflow'],
    ])
    expect((await box.take(10, 0)).map((e) => e.topic)).toEqual(['t/1', 't/5', 't/6'])
    await box.enqueue(msg(7, 'alarm'), 0)
    expect(drops.at(-1)).toEqual(['t/1', 'overflow'])
    expect(box.stats().dropped.overflow).toBe(4)
  })

  it('bounds bytes too, and rejects under the reject policy without storing', async () => {
    const box = memoryOutbox({ maxBytes: 10, overflow: 'reject' })
    await box.enqueue(msg(1), 0)
    await box.enqueue(msg(2), 0)
    await expect(box.enqueue(msg(3), 0)).rejects.toMatchObject({ code: 'OUTBOX_FULL' })
    expect(box.stats().messages).toBe(2)
  })

  it('drops expired messages at drain and counts them', async () => {
    const box = memoryOutbox()
    const drops: string[] = []
    box.setListener({ drop: (e) => drops.push(e.topic), error: () => {} })
    await box.enqueue(msg(1, 'telemetry', 1_000), 0)
    await box.enqueue(msg(2), 0)
    const first = await box.take(10, 999)
    expect(first.length).toBe(2)
    box.release(first.map((e) => e.id))
    expect((await box.take(10, 1_000)).map((e) => e.topic)).toEqual(['t/2'])
    expect(drops).toEqual(['t/1'])
    expect(box.stats().dropped.expired).toBe(1)
  })

  it('emptied by acks (its queues let go), it takes new messages in order and keeps its counts', async () => {
    const box = memoryOutbox({ maxMessages: 1 })
    await box.enqueue(msg(1), 0)
    await box.enqueue(msg(2), 0) // overflow: t/1 dropped
    await box.enqueue(msg(3, 'alarm'), 0) // overflow: t/2 dropped
    const [alarm] = await box.take(10, 0)
    await box.ack((alarm as OutboxEntry).id)
    expect(box.stats()).toEqual({ messages: 0, bytes: 0, dropped: { overflow: 2, expired: 0 } })
    expect(await box.head()).toBeUndefined()
    expect(await box.take(10, 0)).toEqual([])
    await box.enqueue(msg(4, 'telemetry', 5), 0)
    expect((await box.head())?.topic).toBe('t/4')
    // Taken, released (the set of what is out let go), taken again: still there, in order.
    const out = await box.take(10, 0)
    box.release(out.map((e) => e.id))
    box.release([12345])
    expect((await box.take(10, 0)).map((e) => e.topic)).toEqual(['t/4'])
    box.release(out.map((e) => e.id))
    expect(await box.take(10, 10)).toEqual([])
    expect(box.stats()).toEqual({ messages: 0, bytes: 0, dropped: { overflow: 2, expired: 1 } })
    await box.enqueue(msg(5), 10)
    expect((await box.take(10, 10)).map((e) => e.topic)).toEqual(['t/5'])
  })

  it('refuses work once closed', async () => {
    const box = memoryOutbox()
    await box.close()
    await expect(box.enqueue(msg(1), 0)).rejects.toMatchObject({ code: 'OUTBOX_CLOSED' })
  })
})

outboxContract('memoryOutbox', { open: (bounds) => memoryOutbox(bounds), settle: async () => {} })

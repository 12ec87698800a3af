// The Outbox contract, as one suite every outbox runs: the memory outbox here
// (memory-outbox.test.ts), the SQLite one on each driver (store-sqlite's contract.test.ts).
import { describe, expect, it } from 'vitest'
import type { MemoryOutboxOptions } from '../../src/memory-outbox.js'
import type { DropReason, Outbox, OutboxEntry, OutboxInput, Priority } from '../../src/outbox.js'

export interface ContractSubject {
  /** A fresh, empty outbox with these bounds. */
  open(bounds?: MemoryOutboxOptions): Outbox
  /** Lets what the outbox does later (batched deletes) happen. */
  settle(): Promise<void>
}

const msg = (n: number, priority: Priority = 'telemetry', expiresAt?: number): OutboxInput => ({
  topic: `t/${n}`,
  payload: new TextEncoder().encode(`m${n}`),
  qos: 1,
  retain: false,
  priority,
  expiresAt,
})
const seqOf = (e: OutboxEntry) => Number(e.topic.slice(2))

export function outboxContract(name: string, subject: ContractSubject): void {
  const take = async (box: Outbox, limit: number, now = 0) =>
    (await box.take(limit, now)).map(seqOf)
  const store = async (box: Outbox, ...inputs: OutboxInput[]) => {
    const entries: OutboxEntry[] = []
    for (const input of inputs) entries.push(await box.enqueue(input, 0))
    return entries
  }
  const listen = (box: Outbox) => {
    const drops: Array<[number, DropReason]> = []
    box.setListener({ drop: (e, reason) => drops.push([seqOf(e), reason]), error: () => {} })
    return drops
  }

  describe(`the Outbox contract: ${name}`, () => {
    it('hands out in drain order, alarms first, and each message once while it is out', async () => {
      const box = subject.open()
      await store(box, msg(1), msg(2, 'alarm'), msg(3), msg(4, 'alarm'), msg(5))
      expect(await take(box, 3)).toEqual([2, 4, 1])
      expect(await take(box, 3)).toEqual([3, 5])
      expect(await take(box, 3)).toEqual([])
      await store(box, msg(6))
      expect(await take(box, 3)).toEqual([6])
    })

    it('release puts messages back: they come again in drain order, before the rest', async () => {
      const box = subject.open()
      const [a, b, c] = await store(box, msg(1), msg(2), msg(3), msg(4), msg(5))
      expect(await take(box, 3)).toEqual([1, 2, 3])
      box.release([c?.id as number, a?.id as number])
      expect(await take(box, 10)).toEqual([1, 3, 4, 5])
      // 2 is still out (its connection has not closed): not handed out until released.
      expect(await take(box, 10)).toEqual([])
      box.release([b?.id as number])
      expect(await take(box, 10)).toEqual([2])
    })

    it('ack deletes a message for good, counted gone at once; unknown ids and repeats are ignored', async () => {
      const box = subject.open()
      const entries = await store(box, msg(1), msg(2), msg(3))
      const ids = entries.map((e) => e.id)
      expect(await take(box, 10)).toEqual([1, 2, 3])
      await box.ack(ids[1] as number)
      await box.ack(ids[1] as number)
      await box.ack(99_999)
      expect(box.stats()).toMatchObject({ messages: 2, bytes: 2 * (3 + 2) })
      box.release(ids)
      expect(await take(box, 10)).toEqual([1, 3])
      await subject.settle()
      expect(box.stats()).toMatchObject({ messages: 2, bytes: 2 * (3 + 2) })
    })

    it('a late acknowledgement after a release deletes the message before it goes again', async () => {
      const box = subject.open()
      const entries = await store(box, msg(1), msg(2), msg(3))
      expect(await take(box, 10)).toEqual([1, 2, 3])
      box.release(entries.map((e) => e.id))
      await box.ack(entries[1]?.id as number)
      expect(await take(box, 10)).toEqual([1, 3])
    })

    it('head shows the first message in drain order, out or not, without handing it out', async () => {
      const box = subject.open()
      expect(await box.head()).toBeUndefined()
      const [a, b] = await store(box, msg(1), msg(2, 'alarm'), msg(3))
      expect((await box.head())?.topic).toBe('t/2')
      expect(await take(box, 1)).toEqual([2])
      expect((await box.head())?.topic).toBe('t/2')
      // Acknowledged: gone from the head at once, before its batched delete.
      await box.ack(b?.id as number)
      expect((await box.head())?.topic).toBe('t/1')
      expect(await take(box, 10)).toEqual([1, 3])
      await box.ack(a?.id as number)
      await subject.settle()
      expect((await box.head())?.topic).toBe('t/3')
    })

    it('drops expired messages at take, reports and counts them; they are not out', async () => {
      const box = subject.open()
      const drops = listen(box)
      await store(box, msg(1, 'telemetry', 1_000), msg(2), msg(3, 'alarm', 500))
      expect(await take(box, 10, 500)).toEqual([1, 2])
      expect(drops).toEqual([[3, 'expired']])
      expect(box.stats()).toMatchObject({ messages: 2, dropped: { overflow: 0, expired: 1 } })
    })

    it('overflow drops the oldest telemetry before any alarm, even one that is out', async () => {
      const box = subject.open({ maxMessages: 3 })
      const drops = listen(box)
      const [alarm, first] = await store(box, msg(1, 'alarm'), msg(2), msg(3))
      expect(await take(box, 2)).toEqual([1, 2])
      await store(box, msg(4), msg(5))
      expect(drops).toEqual([
        [2, 'overflow'],
        [3, 'overflow'],
      ])
      // The dropped message's connection closes: it is gone, not handed out again.
      box.release([alarm?.id as number, first?.id as number])
      expect(await take(box, 10)).toEqual([1, 4, 5])
      expect(box.stats()).toMatchObject({ messages: 3, dropped: { overflow: 2, expired: 0 } })
    })

    it('telemetry that cannot fit beside the alarms is refused with OUTBOX_FULL, and no stored message is dropped for it', async () => {
      const box = subject.open({ maxBytes: 100 })
      const drops = listen(box)
      // Sizes are topic plus payload: 't/1' and 57 bytes is 60.
      const sized = (n: number, bytes: number, priority: Priority = 'telemetry') => ({
        ...msg(n, priority),
        payload: new Uint8Array(bytes - 3),
      })
      await store(box, sized(1, 60, 'alarm'), sized(2, 30))
      // 50 more bytes: only 40 beside the alarm, whatever telemetry goes.
      await expect(box.enqueue(sized(3, 50), 0)).rejects.toMatchObject({ code: 'OUTBOX_FULL' })
      expect(drops).toEqual([])
      expect(box.stats()).toMatchObject({ messages: 2, bytes: 90, dropped: { overflow: 0 } })
      // One that fits once the telemetry goes still makes its room.
      await store(box, sized(4, 40))
      expect(drops).toEqual([[2, 'overflow']])
      expect(await take(box, 10)).toEqual([1, 4])
    })

    it('the reject policy refuses with OUTBOX_FULL and stores nothing more', async () => {
      const box = subject.open({ maxMessages: 2, overflow: 'reject' })
      await store(box, msg(1), msg(2))
      await expect(box.enqueue(msg(3, 'alarm'), 0)).rejects.toMatchObject({ code: 'OUTBOX_FULL' })
      expect(await take(box, 10)).toEqual([1, 2])
      expect(box.stats()).toMatchObject({ messages: 2, dropped: { overflow: 0, expired: 0 } })
    })

    it('keeps its own copy of a payload: the caller may reuse its buffer once enqueue resolved', async () => {
      const box = subject.open()
      const payload = new TextEncoder().encode('temperature=21')
      await box.enqueue({ ...msg(1), payload }, 0)
      payload.fill(0x58)
      const [entry] = await box.take(1, 0)
      expect(new TextDecoder().decode(entry?.payload)).toBe('temperature=21')
    })

    it('once closed refuses new messages with OUTBOX_CLOSED', async () => {
      const box = subject.open()
      await store(box, msg(1))
      await box.close()
      await expect(box.enqueue(msg(2), 0)).rejects.toMatchObject({ code: 'OUTBOX_CLOSED' })
    })
  })
}

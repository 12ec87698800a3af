// One file for every driver: `pnpm test` runs it on Node with better-sqlite3 and again with
// node:sqlite (vitest project node-sqlite), `pnpm test:bun` on Bun (bun --bun vitest) with
// bun:sqlite.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  ManualClock,
  memoryOutbox,
  type Outbox,
  type OutboxEntry,
  type OutboxInput,
  type UplinkError,
} from '@uplink/client'
import { runScript, type ScriptProcess, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { openDatabase } from '../src/driver.js'
import { type SqliteOutbox, type SqliteOutboxOptions, sqliteOutbox } from '../src/index.js'
import { readsPagesWhole } from '../src/page.js'
import { APPLICATION_ID, MIGRATIONS } from '../src/schema.js'
import { EXPECTED_DRIVER, TEST_DRIVER } from './support/driver.js'

const msg = (
  n: number,
  priority: 'alarm' | 'telemetry' = 'telemetry',
  extra: Partial<OutboxInput> = {},
): OutboxInput => ({
  topic: `t/${n}`,
  payload: new TextEncoder().encode(`payload-${n}`),
  qos: 1,
  retain: false,
  priority,
  ...extra,
})

const seqOf = (e: OutboxEntry) => Number(e.topic.slice(2))
const tick = () => new Promise((r) => setTimeout(r, 0))
/** The outboxes' clock: their batched deletes wait on it, not on real time. */
const clock = new ManualClock()

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../../..')

/** Runs `test/fixtures/<name>` in a second process of this runtime. */
const runFixture = (name: string, args: string[]) =>
  runScript(fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url)), args, { cwd: REPO })

const dirs: string[] = []
const open: SqliteOutbox[] = []
const children: ScriptProcess[] = []
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL')
  for (const box of open.splice(0)) await box.close()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})
const tempPath = () => {
  const dir = mkdtempSync(join(tmpdir(), 'uplink-outbox-'))
  dirs.push(dir)
  return join(dir, 'outbox.db')
}
const outbox = (options: Partial<SqliteOutboxOptions> = {}) => {
  const box = sqliteOutbox({
    driver: TEST_DRIVER,
    clock,
    ...options,
    path: options.path ?? tempPath(),
  })
  open.push(box)
  return box
}
const closeOne = async (box: SqliteOutbox) => {
  open.splice(open.indexOf(box), 1)
  await box.close()
}
const listen = (box: SqliteOutbox) => {
  const drops: Array<[number, string]> = []
  const errors: UplinkError[] = []
  box.setListener({
    drop: (e, reason) => drops.push([seqOf(e), reason]),
    error: (e) => errors.push(e),
  })
  return { drops, errors }
}
const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn()
  } catch (err) {
    return (err as UplinkError).code
  }
  return undefined
}
const fill = (box: SqliteOutbox, from: number, to: number, priority?: 'alarm') =>
  Promise.all(
    Array.from({ length: to - from + 1 }, (_, i) => box.enqueue(msg(from + i, priority), 0)),
  )

describe('sqliteOutbox: storing and draining', () => {
  it('stores in order, drains alarms first, removes on ack, and survives a reopen', async () => {
    const path = tempPath()
    const box = outbox({ path })
    const entries = await Promise.all(
      [msg(1), msg(2, 'alarm'), msg(3), msg(4, 'alarm')].map((m) => box.enqueue(m, 1_000)),
    )
    expect(entries.map((e) => e.id)).toEqual([1, 2, 3, 4])
    expect(entries[0]).toMatchObject({ topic: 't/1', qos: 1, retain: false, enqueuedAt: 1_000 })
    expect(box.take(10, 0)).toHaveLength(4)
    // 2 stays out, the others go back.
    box.release([4, 1, 3])
    expect((await box.take(10, 0)).map(seqOf)).toEqual([4, 1, 3])
    await box.ack(4)
    box.release([1, 2, 3])
    expect((await box.take(10, 0)).map(seqOf)).toEqual([2, 1, 3])
    expect(box.stats()).toMatchObject({ messages: 3 })
    await closeOne(box)

    const again = outbox({ path })
    const drained = await again.take(10, 0)
    expect(drained.map(seqOf)).toEqual([2, 1, 3])
    expect(new TextDecoder().decode(drained[1]?.payload)).toBe('payload-1')
    expect(drained[0]).toMatchObject({ priority: 'alarm', qos: 1, retain: false })
    expect(again.stats()).toMatchObject({ messages: 3, bytes: 3 * (3 + 9) })
    for (const e of drained) await again.ack(e.id)
    expect(again.stats()).toMatchObject({ messages: 0, bytes: 0 })
    // Ids keep growing after the table empties: a late acknowledgement of an old id must never
    // delete a new message. (4 was acknowledged before the reopen and kept in the file, marked:
    // the ids went on after it.)
    await clock.advance(60)
    expect((await again.enqueue(msg(5), 0)).id).toBe(5)
    again.ack(1)
    expect((await again.take(10, 0)).map(seqOf)).toEqual([5])
  })

  it('keeps every field of a message', async () => {
    const path = tempPath()
    const box = outbox({ path })
    const payload = new Uint8Array([0, 255, 1, 254])
    await box.enqueue(
      { topic: 'a/ü', payload, qos: 2, retain: true, priority: 'alarm', expiresAt: 9e12 },
      42,
    )
    await box.enqueue({ ...msg(2), qos: 0 }, 43)
    await closeOne(box)
    const [a, b] = outbox({ path }).take(10, 0) as OutboxEntry[]
    expect(a).toMatchObject({
      id: 1,
      topic: 'a/ü',
      qos: 2,
      retain: true,
      priority: 'alarm',
      expiresAt: 9e12,
      enqueuedAt: 42,
    })
    expect([...(a?.payload ?? [])]).toEqual([0, 255, 1, 254])
    expect(b).toMatchObject({ qos: 0, retain: false, expiresAt: undefined, enqueuedAt: 43 })
  })

  it('after a restart, a page read in one SQLite value gives back every byte and field the row-by-row read does', async () => {
    const path = tempPath()
    const first = outbox({ path })
    const everyByte = Uint8Array.from({ length: 256 }, (_, i) => i)
    // Not UTF-8: an overlong sequence, a lone surrogate's encoding, 0xff; SQLite passes the
    // payloads through group_concat as text, which must not touch them.
    const notUtf8 = new Uint8Array([0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xff, 0x00, 0xfe])
    const large = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7) & 0xff)
    const inputs: OutboxInput[] = [
      { topic: 'a/"quoted"\\back', payload: everyByte, qos: 2, retain: true, priority: 'alarm' },
      {
        topic: 'a/ü/😀',
        payload: new Uint8Array(0),
        qos: 0,
        retain: false,
        priority: 'alarm',
        expiresAt: 9e12,
      },
      { topic: 't/1', payload: notUtf8, qos: 1, retain: false, priority: 'telemetry' },
      { topic: 't/2', payload: new Uint8Array(0), qos: 1, retain: true, priority: 'telemetry' },
      {
        topic: 't/3',
        payload: large,
        qos: 1,
        retain: false,
        priority: 'telemetry',
        expiresAt: 1.5e12 + 0.5,
      },
      {
        topic: 't/[]{},:',
        payload: everyByte.subarray(250),
        qos: 2,
        retain: false,
        priority: 'telemetry',
      },
    ]
    for (const [i, m] of inputs.entries()) await first.enqueue(m, 1_000 + i)
    await closeOne(first)
    const drain = async (options: Partial<SqliteOutboxOptions>) => {
      const box = outbox({ path, ...options })
      const got = box.take(10, 0) as OutboxEntry[]
      await closeOne(box)
      return got
    }
    const paged = await drain({})
    // Past the bound where a page could outgrow SQLite's longest value: read row by row.
    const byRow = await drain({ maxBytes: 2 ** 40 })
    const plain = (entries: OutboxEntry[]) =>
      entries.map((e) => ({ ...e, payload: [...e.payload] }))
    expect(plain(paged)).toEqual(plain(byRow))
    expect(plain(paged)).toEqual(
      inputs.map((m, i) => ({
        id: i + 1,
        topic: m.topic,
        payload: [...m.payload],
        qos: m.qos,
        retain: m.retain,
        priority: m.priority,
        enqueuedAt: 1_000 + i,
        expiresAt: m.expiresAt,
      })),
    )
    // What makes it cheaper, on the driver where it pays: one page's payloads are views of one
    // buffer, not one each.
    const telemetry = paged.filter((e) => e.priority === 'telemetry')
    const shared = new Set(telemetry.map((e) => e.payload.buffer)).size === 1
    expect(shared).toBe(readsPagesWhole(EXPECTED_DRIVER))
  })

  it('drains like the client: a window in flight, acks, then everything again after a reconnect', async () => {
    const box = outbox()
    await fill(box, 1, 10)
    const inFlight = new Set<number>()
    const take = (n: number) => {
      const got = box.take(n, 0) as OutboxEntry[]
      for (const e of got) inFlight.add(e.id)
      return got.map(seqOf)
    }
    expect(take(3)).toEqual([1, 2, 3])
    expect(take(3)).toEqual([4, 5, 6])
    // Acks out of order: each frees a slot, the next message follows.
    for (const id of [2, 5]) {
      inFlight.delete(id)
      box.ack(id)
    }
    expect(take(2)).toEqual([7, 8])
    // The connection drops: nothing is in flight, unacknowledged messages go again from the oldest.
    box.release(inFlight)
    inFlight.clear()
    expect(take(4)).toEqual([1, 3, 4, 6])
    // An alarm jumps the queue even though telemetry is being drained.
    await box.enqueue(msg(11, 'alarm'), 0)
    expect(take(2)).toEqual([11, 7])
    expect(take(5)).toEqual([8, 9, 10])
    expect(take(5)).toEqual([])
    await box.enqueue(msg(12), 0)
    expect(take(5)).toEqual([12])
  })

  it('after a restart, a backlog of several read-ahead pages drains whole and in order', async () => {
    const path = tempPath()
    const first = outbox({ path })
    await fill(first, 1, 700)
    await closeOne(first)
    const box = outbox({ path })
    const seen: number[] = []
    for (
      let got = box.take(7, 0) as OutboxEntry[];
      got.length > 0;
      got = box.take(7, 0) as OutboxEntry[]
    ) {
      for (const e of got) {
        seen.push(seqOf(e))
        box.ack(e.id)
      }
    }
    expect(seen).toEqual(Array.from({ length: 700 }, (_, i) => i + 1))
  })

  it('an alarm arriving mid-drain goes before telemetry already read ahead', async () => {
    const box = outbox()
    await box.enqueue(msg(1, 'alarm'), 0)
    await box.enqueue(msg(2, 'alarm'), 0)
    await box.enqueue(msg(3), 0)
    expect((await box.take(1, 0)).map(seqOf)).toEqual([1])
    await box.enqueue(msg(4, 'alarm'), 0)
    expect((await box.take(5, 0)).map(seqOf)).toEqual([2, 4, 3])
  })

  it('never hands out a message acknowledged while it waited in the rows read ahead', async () => {
    const box = outbox()
    const entries = await fill(box, 1, 5)
    expect((await box.take(1, 0)).map(seqOf)).toEqual([1])
    // Acknowledged without having been handed out (a late PUBACK from before a reconnect), and
    // deleted before take gets to it.
    box.ack(entries[2]?.id as number)
    await clock.advance(60)
    expect((await box.take(10, 0)).map(seqOf)).toEqual([2, 4, 5])
  })

  it('never hands out a message dropped while it waited in the rows read ahead', async () => {
    const box = outbox({ maxMessages: 5 })
    await fill(box, 1, 5)
    expect((await box.take(1, 0)).map(seqOf)).toEqual([1])
    // 6 and 7 push out 1 (in flight) and 2 (read ahead).
    await fill(box, 6, 7)
    expect((await box.take(10, 0)).map(seqOf)).toEqual([3, 4, 5, 6, 7])
  })

  // cacheBytes: 0 reads every row back from SQLite; 2 000 keeps a handful of rows in memory, so
  // the drain crosses between disk and cache all the time; the default keeps everything.
  it.each([
    ['no cache', 0],
    ['a cache of a few rows', 2_000],
    ['the default cache', undefined],
  ])(
    'drains exactly as the in-memory reference outbox does, through acks, drops, expiry and reconnects (%s)',
    async (_, cacheBytes) => {
      // A seeded generator: the same run every time; UPLINK_TEST_SEED=n tries another.
      let seed = Number(process.env.UPLINK_TEST_SEED ?? 0x2545f491)
      const random = () => {
        seed ^= seed << 13
        seed ^= seed >>> 17
        seed ^= seed << 5
        return (seed >>> 0) / 2 ** 32
      }
      const bounds = { maxMessages: 60, maxBytes: 60 * 14 }
      const sides: Array<{ box: Outbox; inFlight: Set<number>; log: string[] }> = [
        { box: memoryOutbox(bounds), inFlight: new Set(), log: [] },
        {
          box: outbox({ ...bounds, durability: 'normal', cacheBytes }),
          inFlight: new Set(),
          log: [],
        },
      ]
      for (const side of sides) {
        side.box.setListener({
          drop: (e, reason) => side.log.push(`drop ${e.id} ${reason}`),
          error: (e) => side.log.push(`error ${e.code}`),
        })
      }
      let now = 1_000
      let n = 0
      for (let step = 0; step < 1_500; step++) {
        const r = random()
        if (r < 0.3) {
          // A burst of publishes, some alarms, some with a time to live.
          const burst = Array.from({ length: 1 + Math.floor(random() * 8) }, () => {
            n++
            return msg(n, random() < 0.15 ? 'alarm' : 'telemetry', {
              expiresAt: random() < 0.2 ? now + Math.floor(random() * 400) : undefined,
            })
          })
          for (const side of sides) {
            const results = await Promise.allSettled(burst.map((m) => side.box.enqueue(m, now)))
            side.log.push(
              results.map((x) => (x.status === 'fulfilled' ? x.value.id : 'full')).join(','),
            )
          }
        } else if (r < 0.75) {
          const limit = 1 + Math.floor(random() * 6)
          for (const side of sides) {
            const got = await side.box.take(limit, now)
            for (const e of got) side.inFlight.add(e.id)
            side.log.push(`take ${got.map((e) => e.id).join(',')}`)
          }
        } else if (r < 0.95) {
          // Acknowledgements, in any order.
          const acks = Math.floor(random() * 4)
          const picks = Array.from({ length: acks }, () => random())
          for (const side of sides) {
            const ids = [...side.inFlight]
            for (const p of picks) {
              const id = ids.splice(Math.floor(p * ids.length), 1)[0]
              if (id === undefined) continue
              side.inFlight.delete(id)
              await side.box.ack(id)
            }
          }
        } else if (r < 0.98) {
          // A reconnect: what was in flight goes back.
          for (const side of sides) {
            side.box.release(side.inFlight)
            side.inFlight.clear()
          }
        } else {
          // Let the batched deletes happen.
          await clock.advance(30)
        }
        now += Math.floor(random() * 20)
        const [a, b] = sides as [(typeof sides)[0], (typeof sides)[0]]
        expect(b.log).toEqual(a.log)
        expect(b.box.stats()).toEqual(a.box.stats())
      }
      expect(sides[1]?.log.some((l) => l.includes('overflow'))).toBe(true)
      expect(sides[1]?.log.some((l) => l.includes('expired'))).toBe(true)
    },
    60_000,
  )

  it.each([
    ['no cache', 0],
    ['the default cache', undefined],
  ])(
    'after a reconnect, sends again exactly the unacknowledged, acks settled out of order (%s)',
    async (_, cacheBytes) => {
      const box = outbox({ cacheBytes })
      await fill(box, 1, 8)
      expect((await box.take(6, 0)).map(seqOf)).toEqual([1, 2, 3, 4, 5, 6])
      for (const id of [3, 5]) box.ack(id)
      // The deletes are done with the next commit.
      await box.enqueue(msg(9), 0)
      box.release([1, 2, 4, 6])
      expect((await box.take(10, 0)).map(seqOf)).toEqual([1, 2, 4, 6, 7, 8, 9])
      for (const id of [1, 2]) box.ack(id)
      await clock.advance(60)
      box.release([4, 6, 7, 8, 9])
      expect((await box.take(10, 0)).map(seqOf)).toEqual([4, 6, 7, 8, 9])
      expect(box.stats()).toMatchObject({ messages: 5 })
    },
  )

  it('sends what was stored even if the caller reuses its buffer afterwards', async () => {
    const box = outbox()
    const payload = new TextEncoder().encode('original')
    await box.enqueue({ ...msg(1), payload }, 0)
    payload.fill(0)
    const [entry] = await box.take(1, 0)
    expect(new TextDecoder().decode(entry?.payload)).toBe('original')
  })

  it('hands out a released message again, and one still out only once released', async () => {
    const box = outbox()
    await fill(box, 1, 4)
    expect((await box.take(2, 0)).map(seqOf)).toEqual([1, 2])
    // 1's connection closed; 2's (a connection left by a move) has not yet.
    box.release([1])
    expect((await box.take(10, 0)).map(seqOf)).toEqual([1, 3, 4])
    box.release([2])
    expect((await box.take(10, 0)).map(seqOf)).toEqual([2])
  })

  it('drops expired messages at drain, counts them, and does not let them hide live ones', async () => {
    const box = outbox()
    const { drops } = listen(box)
    await box.enqueue(msg(1, 'telemetry', { expiresAt: 5_000 }), 0)
    await box.enqueue(msg(2), 0)
    await box.enqueue(msg(3, 'alarm', { expiresAt: 10_000 }), 0)
    expect((await box.take(10, 4_999)).map(seqOf)).toEqual([3, 1, 2])
    box.release([3, 1, 2])
    expect((await box.take(10, 10_000)).map(seqOf)).toEqual([2])
    expect(drops).toEqual([
      [3, 'expired'],
      [1, 'expired'],
    ])
    expect(box.stats()).toMatchObject({ messages: 1, dropped: { overflow: 0, expired: 2 } })

    const many = outbox()
    await Promise.all(
      Array.from({ length: 300 }, (_, i) => many.enqueue(msg(i, 'telemetry', { expiresAt: 1 }), 0)),
    )
    await many.enqueue(msg(1_000), 0)
    expect((await many.take(1, 2)).map(seqOf)).toEqual([1_000])
    expect(many.stats()).toMatchObject({ messages: 1, dropped: { expired: 300 } })
  })
})

describe('sqliteOutbox: group commit and batched deletes', () => {
  it('stores a mixed burst in order, ids consecutive, alarms draining first', async () => {
    const box = outbox()
    const entries = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        box.enqueue(msg(i, i % 7 === 0 ? 'alarm' : 'telemetry'), 0),
      ),
    )
    expect(entries.map((e) => e.id)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1))
    const order = (await box.take(100, 0)).map(seqOf)
    const alarms = Array.from({ length: 100 }, (_, i) => i).filter((i) => i % 7 === 0)
    const telemetry = Array.from({ length: 100 }, (_, i) => i).filter((i) => i % 7 !== 0)
    expect(order).toEqual([...alarms, ...telemetry])
  })

  it('commits publishes that arrive together in one transaction', async () => {
    const box = outbox()
    const before = box.info().transactions
    await fill(box, 1, 500)
    expect(box.info().transactions - before).toBe(1)
    expect(box.stats().messages).toBe(500)
    // Publishes that arrive one at a time are committed one at a time.
    for (let i = 0; i < 3; i++) await box.enqueue(msg(600 + i), 0)
    expect(box.info().transactions - before).toBe(4)
  })

  it('splits a large burst into batches of groupCommit.maxBatch', async () => {
    const box = outbox({ groupCommit: { maxBatch: 100 } })
    const before = box.info().transactions
    const entries = await fill(box, 1, 250)
    expect(box.info().transactions - before).toBe(3)
    expect(entries.map((e) => e.id)).toEqual(Array.from({ length: 250 }, (_, i) => i + 1))
  })

  it('with groupCommit.maxDelayMs, waits that long to gather publishes from separate ticks', async () => {
    const box = outbox({ groupCommit: { maxDelayMs: 200 } })
    const before = box.info().transactions
    const stored: Array<Promise<OutboxEntry>> = []
    for (let i = 0; i < 5; i++) {
      stored.push(box.enqueue(msg(i), 0))
      await tick()
    }
    expect(box.info().transactions - before).toBe(0)
    await clock.advance(200)
    expect((await Promise.all(stored)).map((e) => e.id)).toEqual([1, 2, 3, 4, 5])
    expect(box.info().transactions - before).toBe(1)
  })

  it('deletes acknowledged messages in batches, and counts them gone at once', async () => {
    const path = tempPath()
    const box = outbox({ path })
    const entries = await fill(box, 1, 300)
    box.take(290, 0)
    const before = box.info().transactions
    // Acknowledged out of order and with gaps, plus ids never handed out or never stored.
    const acked = entries.slice(0, 200).filter((_, i) => i % 50 !== 7)
    for (const e of [...acked].reverse()) box.ack(e.id)
    box.ack(295)
    box.ack(99_999)
    const sizeOf = (list: OutboxEntry[]) =>
      list.reduce((sum, e) => sum + e.topic.length + e.payload.length, 0)
    // Counted gone at once: all but 295, which was never handed out so its size is not known.
    expect(box.stats()).toMatchObject({
      messages: 300 - acked.length,
      bytes: sizeOf(entries) - sizeOf(acked),
    })
    await clock.advance(100)
    expect(box.info().transactions - before).toBe(1)
    const left = entries.filter((e) => !acked.includes(e) && e.id !== 295)
    expect(box.stats()).toEqual({
      messages: left.length,
      bytes: sizeOf(left),
      dropped: { overflow: 0, expired: 0 },
    })
    // Deletes waiting when publishes arrive share their commit.
    box.ack(entries[200]?.id as number)
    await box.enqueue(msg(301), 0)
    expect(box.info().transactions - before).toBe(2)
    const stats = box.stats()
    await closeOne(box)
    // The running totals agree with what a reopen counts in the file.
    expect(outbox({ path }).stats()).toEqual(stats)
  })

  it('deletes still waiting at close are done by close', async () => {
    const path = tempPath()
    const box = outbox({ path })
    const [a] = await fill(box, 1, 2)
    box.ack(a?.id as number)
    await closeOne(box)
    expect((await outbox({ path }).take(10, 0)).map(seqOf)).toEqual([2])
  })
})

/** What the file holds once closed: every row's id, and the acknowledged ranges. */
function inFile(path: string) {
  const db = openDatabase(path, TEST_DRIVER)
  try {
    const rows = db.prepare('SELECT id FROM messages ORDER BY id').values() as number[][]
    const ranges = db.prepare('SELECT lo, hi FROM acked ORDER BY lo').values() as number[][]
    return { ids: rows.map(([id]) => Number(id)), ranges: ranges.map((r) => r.map(Number)) }
  } finally {
    db.close()
  }
}

/** Acknowledges `taken.slice(from, to)` for each span, each batch committed before the next. */
async function ackInBatches(
  box: SqliteOutbox,
  taken: OutboxEntry[],
  spans: Array<[number, number]>,
) {
  for (const [from, to] of spans) {
    for (const e of taken.slice(from, to)) box.ack(e.id)
    await clock.advance(60)
  }
}

describe('sqliteOutbox: acknowledged messages marked, not deleted', () => {
  it('marks an acknowledged run as one range and keeps its rows, which a reopen neither counts nor hands out', async () => {
    const path = tempPath()
    const box = outbox({ path })
    await fill(box, 1, 10)
    for (const e of (await box.take(10, 0)).slice(0, 6)) box.ack(e.id)
    await clock.advance(60)
    await closeOne(box)
    expect(inFile(path)).toEqual({ ids: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], ranges: [[1, 6]] })

    const again = outbox({ path })
    expect(again.stats()).toMatchObject({ messages: 4, bytes: 3 * (3 + 9) + (4 + 10) })
    expect(seqOf(again.head() as OutboxEntry)).toBe(7)
    expect((await again.take(10, 0)).map(seqOf)).toEqual([7, 8, 9, 10])
    expect((await again.enqueue(msg(11), 0)).id).toBe(11)
  })

  it('empties the table in one statement once only acknowledged rows are left', async () => {
    const path = tempPath()
    const box = outbox({ path })
    await fill(box, 1, 300)
    // In three batches, so the ranges join: 1-100, then 201-300, then 101-200 between them.
    const taken = await box.take(300, 0)
    await ackInBatches(box, taken, [
      [0, 100],
      [200, 300],
      [100, 200],
    ])
    expect(box.stats()).toMatchObject({ messages: 0, bytes: 0 })
    await closeOne(box)
    expect(inFile(path)).toEqual({ ids: [], ranges: [] })
  })

  it('joins ranges that touch, on either side, into one', async () => {
    const path = tempPath()
    const box = outbox({ path })
    await fill(box, 1, 10)
    const taken = await box.take(10, 0)
    await ackInBatches(box, taken, [
      [0, 3],
      [6, 9],
      [3, 6],
    ])
    await closeOne(box)
    expect(inFile(path).ranges).toEqual([[1, 9]])
  })

  it('after a release the drain starts again from the head and passes over every range', async () => {
    const box = outbox()
    await fill(box, 1, 12)
    const taken = await box.take(12, 0)
    for (const e of taken.filter((e) => [1, 2, 3, 6, 7, 11].includes(seqOf(e)))) box.ack(e.id)
    await clock.advance(60)
    box.release(taken.map((e) => e.id))
    expect((await box.take(12, 0)).map(seqOf)).toEqual([4, 5, 8, 9, 10, 12])
  })

  it('an acknowledgement of a marked message again changes no count', async () => {
    const box = outbox()
    await fill(box, 1, 5)
    for (const e of await box.take(3, 0)) box.ack(e.id)
    await clock.advance(60)
    const stats = box.stats()
    box.ack(1)
    box.ack(2)
    await clock.advance(60)
    expect(box.stats()).toEqual(stats)
    expect((await box.take(10, 0)).map(seqOf)).toEqual([4, 5])
  })

  it('overflow drops the oldest message not acknowledged, never a marked one', async () => {
    // 40 lets five acknowledged rows stay in the file (an eighth): 1 and 2 do.
    const box = outbox({ maxMessages: 40 })
    const { drops } = listen(box)
    await fill(box, 1, 40)
    for (const e of await box.take(2, 0)) box.ack(e.id)
    await clock.advance(60)
    await fill(box, 41, 43)
    expect(drops).toEqual([[3, 'overflow']])
    expect(box.stats().messages).toBe(40)
    expect((await box.take(100, 0)).map(seqOf)).toEqual(Array.from({ length: 40 }, (_, i) => i + 4))
  })

  it('past an eighth of maxMessages the acknowledged rows are deleted', async () => {
    const path = tempPath()
    const box = outbox({ path, maxMessages: 80 })
    await fill(box, 1, 60)
    for (const e of await box.take(59, 0)) box.ack(e.id)
    await clock.advance(60)
    await closeOne(box)
    expect(inFile(path)).toEqual({ ids: [60], ranges: [] })
  })

  it('on a full disk the acknowledged rows kept in the file make room for a publish', async () => {
    const path = tempPath()
    const box = outbox({ path, maxPageCount: 40 })
    const big = (n: number) => ({ ...msg(n), payload: new Uint8Array(2_000).fill(n % 256) })
    let stored = 0
    for (let n = 0; n < 1_000; n++) {
      try {
        await box.enqueue(big(n), 0)
        stored++
      } catch (err) {
        expect((err as UplinkError).code).toBe('OUTBOX_DISK_FULL')
        break
      }
    }
    // Marked and committed before the publish that needs their room.
    for (const e of await box.take(5, 0)) box.ack(e.id)
    await clock.advance(60)
    await box.enqueue(big(9_999), 0)
    await closeOne(box)
    expect(inFile(path).ranges).toEqual([])
    expect(outbox({ path }).stats().messages).toBe(stored - 5 + 1)
  })
})

describe('sqliteOutbox: bounds', () => {
  it('on overflow drops the oldest telemetry before any alarm and reports each drop', async () => {
    const box = outbox({ maxMessages: 3 })
    const { drops } = listen(box)
    for (const m of [msg(1, 'alarm'), msg(2), msg(3), msg(4), msg(5, 'alarm'), msg(6, 'alarm')]) {
      await box.enqueue(m, 0)
    }
    expect(drops).toEqual([
      [2, 'overflow'],
      [3, 'overflow'],
      [4, 'overflow'],
    ])
    // Only alarms are left: telemetry may not displace one, an alarm displaces the oldest alarm.
    await expect(box.enqueue(msg(7), 0)).rejects.toMatchObject({ code: 'OUTBOX_FULL' })
    await box.enqueue(msg(8, 'alarm'), 0)
    expect((await box.take(10, 0)).map(seqOf)).toEqual([5, 6, 8])
    expect(box.stats()).toMatchObject({ messages: 3, dropped: { overflow: 4, expired: 0 } })
  })

  it('drops the oldest within one group commit too', async () => {
    const box = outbox({ maxMessages: 100 })
    const { drops } = listen(box)
    await fill(box, 1, 250)
    expect(drops).toHaveLength(150)
    expect(drops[0]).toEqual([1, 'overflow'])
    expect((await box.take(1_000, 0)).map(seqOf)).toEqual(
      Array.from({ length: 100 }, (_, i) => 151 + i),
    )
  })

  it('bounds bytes as well as messages', async () => {
    const box = outbox({ maxBytes: 40 })
    for (let i = 1; i <= 5; i++) await box.enqueue(msg(i), 0)
    // Each message is 12 bytes: three fit in 40.
    expect((await box.take(10, 0)).map(seqOf)).toEqual([3, 4, 5])
    expect(box.stats()).toMatchObject({ messages: 3, bytes: 36 })
    await expect(box.enqueue({ ...msg(9), payload: new Uint8Array(100) }, 0)).rejects.toMatchObject(
      { code: 'OUTBOX_FULL' },
    )
    expect(box.stats()).toMatchObject({ messages: 3, bytes: 36 })
  })

  it('the reject policy refuses the overflowing part of one group commit', async () => {
    const box = outbox({ maxMessages: 40, overflow: 'reject' })
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => box.enqueue(msg(i + 1), 0)),
    )
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(40)
    expect(results.slice(40).every((r) => r.status === 'rejected')).toBe(true)
    expect((await box.take(100, 0)).map(seqOf)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1))
  })

  it('the reject policy refuses new messages and keeps what is stored', async () => {
    const box = outbox({ maxMessages: 2, overflow: 'reject' })
    const { drops } = listen(box)
    await box.enqueue(msg(1), 0)
    await box.enqueue(msg(2), 0)
    await expect(box.enqueue(msg(3, 'alarm'), 0)).rejects.toMatchObject({ code: 'OUTBOX_FULL' })
    expect((await box.take(10, 0)).map(seqOf)).toEqual([1, 2])
    expect(drops).toEqual([])
    // Acknowledged messages make room.
    box.ack(1)
    await box.enqueue(msg(4), 0)
  })

  it('a full disk rejects new publishes with OUTBOX_DISK_FULL and keeps what is stored', async () => {
    const path = tempPath()
    const box = outbox({ path, maxPageCount: 40 })
    const big = (n: number) => ({ ...msg(n), payload: new Uint8Array(2_000).fill(n % 256) })
    let stored = 0
    let error: UplinkError | undefined
    for (let n = 0; n < 1_000 && !error; n++) {
      try {
        await box.enqueue(big(n), 0)
        stored++
      } catch (err) {
        error = err as UplinkError
      }
    }
    expect(error?.code).toBe('OUTBOX_DISK_FULL')
    expect(stored).toBeGreaterThan(0)
    expect(box.stats().messages).toBe(stored)
    // A whole batch that does not fit is refused; what was stored before is untouched.
    await expect(fill(box, 2_000, 2_010)).rejects.toMatchObject({ code: 'OUTBOX_DISK_FULL' })
    const all = await box.take(10_000, 0)
    expect(all.length).toBe(stored)
    box.release(all.map((e) => e.id))
    // Room comes back once acknowledged messages are deleted.
    for (const e of await box.take(5, 0)) box.ack(e.id)
    await box.enqueue(msg(9_999), 0)
    await closeOne(box)
    expect(outbox({ path }).stats().messages).toBe(stored - 5 + 1)
  })
})

describe('sqliteOutbox: files', () => {
  it('migrates a file from schema version 1, keeping its messages', async () => {
    const path = tempPath()
    const db = openDatabase(path, TEST_DRIVER)
    db.exec(MIGRATIONS[0] as string)
    db.exec('PRAGMA user_version = 1')
    db.exec(`PRAGMA application_id = ${APPLICATION_ID}`)
    db.prepare(
      'INSERT INTO messages (priority, topic, payload, qos, retain, enqueued_at, expires_at, size) VALUES (1, ?, ?, 1, 0, 7, NULL, 5)',
    ).run('old/1', new Uint8Array([1, 2]))
    db.close()

    const box = outbox({ path })
    expect((await box.take(10, 0)).map((e) => [e.topic, e.enqueuedAt])).toEqual([['old/1', 7]])
    expect((await box.enqueue(msg(2), 0)).id).toBe(2)
    await closeOne(box)
    const check = openDatabase(path, TEST_DRIVER)
    expect(Number(check.pragma('user_version'))).toBe(MIGRATIONS.length)
    const indexes = check
      .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'")
      .all()
    expect(indexes).toEqual([{ name: 'messages_alarms' }])
    check.close()
  })

  it('migrates a file from schema version 2 (the two-column drain index)', async () => {
    const path = tempPath()
    const db = openDatabase(path, TEST_DRIVER)
    for (const step of MIGRATIONS.slice(0, 2)) db.exec(step)
    db.exec('PRAGMA user_version = 2')
    db.exec(`PRAGMA application_id = ${APPLICATION_ID}`)
    const insert = db.prepare(
      'INSERT INTO messages (priority, topic, payload, qos, retain, enqueued_at, expires_at, size) VALUES (?, ?, ?, 1, 0, 0, NULL, 3)',
    )
    insert.run(1, 't/1', new Uint8Array(1))
    insert.run(0, 't/2', new Uint8Array(1))
    db.close()
    const box = outbox({ path })
    expect((await box.take(10, 0)).map(seqOf)).toEqual([2, 1])
    expect(box.stats()).toMatchObject({ messages: 2, bytes: 6 })
  })

  it('migrates a file from schema version 3 (acknowledged messages deleted), adding the ranges', async () => {
    const path = tempPath()
    const db = openDatabase(path, TEST_DRIVER)
    for (const step of MIGRATIONS.slice(0, 3)) db.exec(step)
    db.exec('PRAGMA user_version = 3')
    db.exec(`PRAGMA application_id = ${APPLICATION_ID}`)
    const insert = db.prepare(
      'INSERT INTO messages (id, priority, topic, payload, qos, retain, enqueued_at, expires_at, size) VALUES (?, 1, ?, ?, 1, 0, 0, NULL, 4)',
    )
    for (const id of [1, 2, 3]) insert.run(id, `t/${id}`, new Uint8Array(1))
    db.close()
    const box = outbox({ path })
    expect(box.stats()).toMatchObject({ messages: 3, bytes: 12 })
    for (const e of await box.take(2, 0)) box.ack(e.id)
    await closeOne(box)
    expect(inFile(path)).toEqual({ ids: [1, 2, 3], ranges: [[1, 2]] })
  })

  it('moves a corrupt file aside, with its WAL, starts afresh and says so once listened to', async () => {
    const path = tempPath()
    const garbage = 'this is not a database '.repeat(200)
    writeFileSync(path, garbage)
    writeFileSync(`${path}-wal`, 'stale wal')
    const box = outbox({ path })
    const { errors } = listen(box)
    expect(errors.map((e) => e.code)).toEqual(['OUTBOX_CORRUPT'])
    const aside = box.info().movedAside as string
    expect(aside.startsWith(`${path}.corrupt-`)).toBe(true)
    expect(errors[0]?.details).toEqual({ movedTo: aside })
    expect(readFileSync(aside, 'utf8')).toBe(garbage)
    expect(readFileSync(`${aside}-wal`, 'utf8')).toBe('stale wal')
    await box.enqueue(msg(1), 0)
    expect(box.stats().messages).toBe(1)
  })

  it('moves aside a file whose pages are damaged', async () => {
    const path = tempPath()
    const box = outbox({ path })
    await fill(box, 1, 2_000)
    await closeOne(box)
    const bytes = readFileSync(path)
    // Page 1 (the header) stays valid; the b-tree pages after it are overwritten.
    bytes.fill(0xa5, 4096 * 2, 4096 * 6)
    writeFileSync(path, bytes)
    const again = outbox({ path })
    const { errors } = listen(again)
    expect(errors.map((e) => e.code)).toEqual(['OUTBOX_CORRUPT'])
    expect(again.stats().messages).toBe(0)
  })

  it('moves a foreign SQLite file aside', async () => {
    const path = tempPath()
    const db = openDatabase(path, TEST_DRIVER)
    db.exec("CREATE TABLE customers (name TEXT); INSERT INTO customers VALUES ('x')")
    db.close()
    const box = outbox({ path })
    const { errors } = listen(box)
    expect(errors[0]?.code).toBe('OUTBOX_CORRUPT')
    expect(readdirSync(dirname(path)).some((f) => f.startsWith('outbox.db.corrupt-'))).toBe(true)
    expect(box.stats().messages).toBe(0)
  })

  it('moves aside an outbox written by a newer schema version', async () => {
    const path = tempPath()
    const db = openDatabase(path, TEST_DRIVER)
    db.exec(`PRAGMA application_id = ${APPLICATION_ID}`)
    db.exec(`PRAGMA user_version = ${MIGRATIONS.length + 1}`)
    db.exec('CREATE TABLE future (x)')
    db.close()
    const box = outbox({ path })
    const { errors } = listen(box)
    expect(errors[0]?.message).toContain('newer')
    expect(existsSync(box.info().movedAside as string)).toBe(true)
  })

  it('a second outbox on the same file in this process gets OUTBOX_LOCKED', async () => {
    const path = tempPath()
    const first = outbox({ path })
    await first.enqueue(msg(1), 0)
    expect(codeOf(() => outbox({ path }))).toBe('OUTBOX_LOCKED')
    // The refused opener must not have touched the file: the first one carries on.
    await first.enqueue(msg(2), 0)
    await closeOne(first)
    expect(outbox({ path }).stats().messages).toBe(2)
  })

  it('a second process gets OUTBOX_LOCKED; once that process is killed the file opens', async () => {
    const path = tempPath()
    const child = runFixture('hold-outbox.ts', [path])
    children.push(child)
    await waitFor(() => child.lines.length > 0, 'the child to open the outbox', 20_000)
    expect(child.lines).toEqual(['ready'])
    expect(codeOf(() => outbox({ path }))).toBe('OUTBOX_LOCKED')
    // A process that dies holding the file leaves no stale lock behind.
    child.kill('SIGKILL')
    await child.closed
    const box = outbox({ path })
    expect((await box.take(10, 0)).map((e) => e.topic)).toEqual(['t/child'])

    const third = runFixture('hold-outbox.ts', [path])
    children.push(third)
    await waitFor(() => third.lines.length > 0, 'the third process', 20_000)
    expect(third.lines).toEqual(['OUTBOX_LOCKED'])
  }, 30_000)
})

describe('sqliteOutbox: options and lifecycle', () => {
  it('validates its options by name', () => {
    const bad: Array<[string, unknown]> = [
      ['path', { path: '' }],
      ['path', { path: ':memory:' }],
      ['maxMessages', { path: 'x', maxMessages: 0 }],
      ['maxBytes', { path: 'x', maxBytes: 1.5 }],
      ['overflow', { path: 'x', overflow: 'drop-newest' }],
      ['durability', { path: 'x', durability: 'none' }],
      ['groupCommit.maxBatch', { path: 'x', groupCommit: { maxBatch: 0 } }],
      ['groupCommit.maxDelayMs', { path: 'x', groupCommit: { maxDelayMs: -1 } }],
      ['maxPageCount', { path: 'x', maxPageCount: 'big' }],
      ['cacheBytes', { path: 'x', cacheBytes: -1 }],
    ]
    for (const [field, options] of bad) {
      let error: UplinkError | undefined
      try {
        sqliteOutbox(options as SqliteOutboxOptions)
      } catch (err) {
        error = err as UplinkError
      }
      expect(error?.code).toBe('INVALID_OPTIONS')
      expect(error?.message).toContain(field)
      expect(error?.details).toEqual({ field })
    }
  })

  it('a path in a missing directory is OUTBOX_ERROR naming the path', () => {
    const path = join(dirname(tempPath()), 'no-such-dir', 'outbox.db')
    let error: UplinkError | undefined
    try {
      outbox({ path })
    } catch (err) {
      error = err as UplinkError
    }
    expect(error?.code).toBe('OUTBOX_ERROR')
    expect(error?.message).toContain(path)
  })

  it('durability normal stores and reopens the same way', async () => {
    const path = tempPath()
    const box = outbox({ path, durability: 'normal' })
    await fill(box, 1, 100)
    box.ack(1)
    await closeOne(box)
    expect(outbox({ path, durability: 'full' }).stats().messages).toBe(99)
  })

  it('refuses work once closed, after committing what was pending', async () => {
    const path = tempPath()
    const box = outbox({ path, durability: 'normal' })
    const pending = box.enqueue(msg(1), 0)
    await closeOne(box)
    await box.close()
    expect((await pending).id).toBe(1)
    await expect(box.enqueue(msg(2), 0)).rejects.toMatchObject({ code: 'OUTBOX_CLOSED' })
    expect(box.take(10, 0)).toEqual([])
    box.ack(1)
    expect(outbox({ path }).stats().messages).toBe(1)
  })

  it('runs on the driver this run is for, on this runtime', () => {
    expect(outbox().info().driver).toBe(EXPECTED_DRIVER)
    expect(outbox().info().runtime).toBe(process.versions.bun ? 'bun' : 'node')
    // pnpm test:bun says which runtime it meant, so workers falling back to Node cannot pass.
    if (process.env.UPLINK_TEST_RUNTIME) {
      expect(outbox().info().runtime).toBe(process.env.UPLINK_TEST_RUNTIME)
    }
  })
})

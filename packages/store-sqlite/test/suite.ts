import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { OutboxEntry, OutboxInput, UplinkError } from '@uplink/client'
import { openDatabase } from '../src/driver.js'
import { type SqliteOutbox, type SqliteOutboxOptions, sqliteOutbox } from '../src/index.js'
import { APPLICATION_ID, MIGRATIONS } from '../src/schema.js'

/**
 * The SQLite outbox's suite, written once against the few test functions vitest and bun:test
 * share, so the same assertions run on better-sqlite3 (Node) and bun:sqlite (Bun).
 */
export interface TestApi {
  describe(name: string, fn: () => void): void
  it(name: string, fn: () => Promise<void> | void): void
  afterEach(fn: () => Promise<void> | void): void
  expect: (value: unknown) => any
}

const msg = (
  n: number,
  priority: 'alarm' | 'telemetry' = 'telemetry',
  extra = {},
): OutboxInput => ({
  topic: `t/${n}`,
  payload: new TextEncoder().encode(`payload-${n}`),
  qos: 1,
  retain: false,
  priority,
  ...extra,
})

const seqOf = (e: OutboxEntry) => Number(e.topic.slice(2))

export function defineOutboxSuite({ describe, it, afterEach, expect }: TestApi): void {
  const dirs: string[] = []
  const open: SqliteOutbox[] = []
  afterEach(async () => {
    for (const box of open.splice(0)) await box.close()
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
  })
  const tempPath = () => {
    const dir = mkdtempSync(join(tmpdir(), 'uplink-outbox-'))
    dirs.push(dir)
    return join(dir, 'outbox.db')
  }
  const outbox = (options: Partial<SqliteOutboxOptions> & { path?: string } = {}) => {
    const box = sqliteOutbox({ path: options.path ?? tempPath(), ...options })
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

  describe('sqliteOutbox', () => {
    it('stores in order, drains alarms first, removes on ack, and survives a reopen', async () => {
      const path = tempPath()
      const box = outbox({ path })
      const entries = await Promise.all(
        [msg(1), msg(2, 'alarm'), msg(3), msg(4, 'alarm')].map((m) => box.enqueue(m, 1_000)),
      )
      expect(entries.map((e) => e.id)).toEqual([1, 2, 3, 4])
      expect(entries[0]).toMatchObject({ topic: 't/1', qos: 1, retain: false, enqueuedAt: 1_000 })
      expect(box.peek(10, new Set(), 0)).toHaveLength(4)
      expect((await box.peek(10, new Set([2]), 0)).map(seqOf)).toEqual([4, 1, 3])
      await box.remove(4)
      expect((await box.peek(10, new Set(), 0)).map(seqOf)).toEqual([2, 1, 3])
      expect(box.stats()).toMatchObject({ messages: 3 })
      await closeOne(box)

      const again = outbox({ path })
      const drained = await again.peek(10, new Set(), 0)
      expect(drained.map(seqOf)).toEqual([2, 1, 3])
      expect(new TextDecoder().decode(drained[1]?.payload)).toBe('payload-1')
      expect(again.stats()).toMatchObject({ messages: 3, bytes: 3 * (3 + 9) })
      // Ids keep growing after the table empties: a late acknowledgement of an old id must never
      // delete a new message.
      for (const e of drained) await again.remove(e.id)
      await new Promise((r) => setTimeout(r, 60))
      expect(again.stats().messages).toBe(0)
      expect((await again.enqueue(msg(5), 0)).id).toBe(4)
      await again.remove(1)
      expect((await again.peek(10, new Set(), 0)).map(seqOf)).toEqual([5])
    })

    it('commits publishes that arrive together in one transaction (group commit)', async () => {
      const box = outbox()
      const before = box.info().transactions
      await Promise.all(Array.from({ length: 500 }, (_, i) => box.enqueue(msg(i), 0)))
      expect(box.info().transactions - before).toBe(1)
      expect(box.stats().messages).toBe(500)
    })

    it('splits a large burst into batches of batchSize', async () => {
      const box = outbox({ batchSize: 100 })
      const before = box.info().transactions
      await Promise.all(Array.from({ length: 250 }, (_, i) => box.enqueue(msg(i), 0)))
      expect(box.info().transactions - before).toBe(3)
    })

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
      expect((await box.peek(10, new Set(), 0)).map(seqOf)).toEqual([5, 6, 8])
      expect(box.stats().dropped).toEqual({ overflow: 4, expired: 0 })
    })

    it('bounds bytes as well as messages', async () => {
      const box = outbox({ maxBytes: 40 })
      for (let i = 1; i <= 5; i++) await box.enqueue(msg(i), 0)
      // Each message is 12 bytes: three fit in 40.
      expect((await box.peek(10, new Set(), 0)).map(seqOf)).toEqual([3, 4, 5])
      expect(box.stats()).toMatchObject({ messages: 3, bytes: 36 })
      await expect(
        box.enqueue({ ...msg(9), payload: new Uint8Array(100) }, 0),
      ).rejects.toMatchObject({ code: 'OUTBOX_FULL' })
    })

    it('the reject policy refuses new messages and keeps what is stored', async () => {
      const box = outbox({ maxMessages: 2, overflow: 'reject' })
      await box.enqueue(msg(1), 0)
      await box.enqueue(msg(2), 0)
      await expect(box.enqueue(msg(3), 0)).rejects.toMatchObject({ code: 'OUTBOX_FULL' })
      expect((await box.peek(10, new Set(), 0)).map(seqOf)).toEqual([1, 2])
    })

    it('drops expired messages at drain and counts them', async () => {
      const box = outbox()
      const { drops } = listen(box)
      await box.enqueue(msg(1, 'telemetry', { expiresAt: 5_000 }), 0)
      await box.enqueue(msg(2), 0)
      await box.enqueue(msg(3, 'alarm', { expiresAt: 10_000 }), 0)
      expect((await box.peek(10, new Set(), 4_999)).map(seqOf)).toEqual([3, 1, 2])
      expect((await box.peek(10, new Set(), 10_000)).map(seqOf)).toEqual([2])
      expect(drops).toEqual([
        [3, 'expired'],
        [1, 'expired'],
      ])
      expect(box.stats()).toMatchObject({ messages: 1, dropped: { overflow: 0, expired: 2 } })
    })

    it('migrates a file from an older schema version, keeping its messages', async () => {
      const path = tempPath()
      const db = openDatabase(path)
      db.exec(MIGRATIONS[0] as string)
      db.exec('PRAGMA user_version = 1')
      db.exec(`PRAGMA application_id = ${APPLICATION_ID}`)
      db.prepare(
        'INSERT INTO messages (id, priority, topic, payload, qos, retain, enqueued_at, expires_at, size) VALUES (3, 1, ?, ?, 1, 0, 7, NULL, 5)',
      ).run('old/1', new Uint8Array([1, 2]))
      db.close()

      const box = outbox({ path })
      expect((await box.peek(10, new Set(), 0)).map((e) => [e.topic, e.enqueuedAt])).toEqual([
        ['old/1', 7],
      ])
      await closeOne(box)
      const check = openDatabase(path)
      expect(Number(check.pragma('user_version'))).toBe(MIGRATIONS.length)
      expect(
        check.prepare("SELECT name FROM sqlite_master WHERE name = 'messages_drain'").get(),
      ).toBeTruthy()
      check.close()
    })

    it('moves a corrupt file aside, starts afresh and says so', async () => {
      const path = tempPath()
      const garbage = 'this is not a database '.repeat(200)
      writeFileSync(path, garbage)
      const box = outbox({ path })
      const { errors } = listen(box)
      expect(errors.map((e) => e.code)).toEqual(['OUTBOX_CORRUPT'])
      const aside = box.info().movedAside as string
      expect(aside.startsWith(`${path}.corrupt-`)).toBe(true)
      expect(readFileSync(aside, 'utf8')).toBe(garbage)
      await box.enqueue(msg(1), 0)
      expect(box.stats().messages).toBe(1)
    })

    it('moves a foreign SQLite file aside', async () => {
      const path = tempPath()
      const db = openDatabase(path)
      db.exec('CREATE TABLE customers (name TEXT); INSERT INTO customers VALUES (1)')
      db.close()
      const box = outbox({ path })
      const { errors } = listen(box)
      expect(errors[0]?.code).toBe('OUTBOX_CORRUPT')
      const dir = path.slice(0, path.lastIndexOf('/'))
      expect(readdirSync(dir).some((f) => f.startsWith('outbox.db.corrupt-'))).toBe(true)
      expect(box.stats().messages).toBe(0)
    })

    it('a full disk rejects new publishes with OUTBOX_DISK_FULL and keeps what is stored', async () => {
      const box = outbox({ maxPageCount: 40 })
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
      expect((await box.peek(10_000, new Set(), 0)).length).toBe(stored)
      // Room comes back once acknowledged messages are deleted.
      for (const e of await box.peek(5, new Set(), 0)) await box.remove(e.id)
      await new Promise((r) => setTimeout(r, 60))
      await box.enqueue(msg(9_999), 0)
    })

    it('a second opener of the same file gets OUTBOX_LOCKED', async () => {
      const path = tempPath()
      const first = outbox({ path })
      await first.enqueue(msg(1), 0)
      let error: UplinkError | undefined
      try {
        outbox({ path })
      } catch (err) {
        error = err as UplinkError
      }
      expect(error?.code).toBe('OUTBOX_LOCKED')
      await closeOne(first)
      expect(outbox({ path }).stats().messages).toBe(1)
    })

    it('validates its options by name', () => {
      const bad: Array<[string, unknown]> = [
        ['path', { path: '' }],
        ['maxMessages', { path: 'x', maxMessages: 0 }],
        ['maxBytes', { path: 'x', maxBytes: 1.5 }],
        ['overflow', { path: 'x', overflow: 'drop-newest' }],
        ['durability', { path: 'x', durability: 'none' }],
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
      }
    })

    it('refuses work once closed, after committing what was pending', async () => {
      const path = tempPath()
      const box = outbox({ path, durability: 'normal' })
      const pending = box.enqueue(msg(1), 0)
      await closeOne(box)
      expect((await pending).id).toBe(1)
      await expect(box.enqueue(msg(2), 0)).rejects.toMatchObject({ code: 'OUTBOX_CLOSED' })
      expect(outbox({ path }).stats().messages).toBe(1)
    })
  })
}

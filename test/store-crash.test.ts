import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBroker, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { TEST_DRIVER } from '../packages/store-sqlite/test/support/driver.js'
import { runFixture } from './support/child.js'
import { firstSeen } from './support/seqs.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'uplink-crash-'))
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

describe('SQLite outbox across SIGKILL', () => {
  it('delivers every message whose publish() resolved, in order, after repeated kills', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const path = join(tempDir(), 'outbox.db')
    const acked: number[] = []
    const rounds = 4
    // Seeded, so a failing run can be replayed with UPLINK_TEST_SEED; where the kill lands in the
    // child's commit cycle is still up to the scheduler, which is the point.
    let seed = Number(process.env.UPLINK_TEST_SEED ?? 20_261_123)
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
      return seed / 2 ** 31
    }
    for (let round = 0; round < rounds; round++) {
      // Each round its own range of sequence numbers, so a seq never means two messages.
      const child = runFixture('publisher.ts', [
        path,
        broker.url,
        String(round * 1_000_000),
        'publish',
      ])
      cleanup.push(() => void child.kill('SIGKILL'))
      // Kill at a different moment each round: after 50 to 400 acknowledged publishes, and then
      // up to 20 ms more, so the kill falls anywhere in a commit, an fsync or a batch of deletes.
      const killAfter = 50 + Math.floor(random() * 350)
      // Generous: on a loaded machine, starting Node with tsx alone can take seconds.
      await waitFor(
        () => child.lines.length >= killAfter,
        `round ${round}: ${killAfter} acks`,
        60_000,
      )
      await new Promise((r) => setTimeout(r, Math.floor(random() * 20)))
      child.kill('SIGKILL')
      await child.closed
      for (const line of child.lines) if (line.startsWith('ack ')) acked.push(Number(line.slice(4)))
    }
    const drain = runFixture('publisher.ts', [path, broker.url, '0', 'drain'])
    cleanup.push(() => void drain.kill('SIGKILL'))
    expect(await drain.closed).toBe(0)
    expect(drain.lines).toContain('drained 0')

    const delivered = firstSeen(
      broker.publishes.filter((p) => p.topic === 'telemetry/gw-crash').map((p) => p.payload),
    )
    const deliveredSet = new Set(delivered)
    const missing = acked.filter((s) => !deliveredSet.has(s))
    expect(acked.length).toBeGreaterThan(rounds * 50 - 1)
    expect(missing).toEqual([])
    // In order: the broker first saw them in publish order (seqs grow within and across rounds).
    expect(delivered).toEqual([...delivered].sort((a, b) => a - b))
  }, 300_000)

  it('a second process opening the same outbox gets OUTBOX_LOCKED', async () => {
    const path = join(tempDir(), 'outbox.db')
    const { sqliteOutbox } = await import('@uplink/store-sqlite')
    const box = sqliteOutbox({ path, driver: TEST_DRIVER })
    cleanup.push(() => box.close())
    const child = runFixture('open-outbox.ts', [path])
    await child.closed
    expect(child.lines).toEqual(['OUTBOX_LOCKED'])
    await box.close()
    const again = runFixture('open-outbox.ts', [path])
    await again.closed
    expect(again.lines).toEqual(['opened'])
  }, 60_000)

  it('a publish waiting for its group commit (maxDelayMs) keeps the process alive until it is stored', async () => {
    const path = join(tempDir(), 'outbox.db')
    const child = runFixture('delayed-commit.ts', [path])
    // An unref'd commit timer let Node exit first (code 13: a top-level await never settled).
    expect(await child.closed).toBe(0)
    expect(child.lines).toEqual(['stored'])
    const { sqliteOutbox } = await import('@uplink/store-sqlite')
    const box = sqliteOutbox({ path, driver: TEST_DRIVER })
    cleanup.push(() => box.close())
    expect(box.stats().messages).toBe(1)
  }, 60_000)
})

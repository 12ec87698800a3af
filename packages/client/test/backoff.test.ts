import { describe, expect, it } from 'vitest'
import { BackoffLadder, type BackoffPolicy, backoffDelay } from '../src/backoff.js'

const policy = (jitter: BackoffPolicy['jitter']): BackoffPolicy => ({
  initialMs: 1_000,
  maxMs: 60_000,
  jitter,
})

describe('backoffDelay', () => {
  it('starts at initialMs and doubles up to maxMs without jitter', () => {
    const delays = Array.from({ length: 9 }, (_, i) =>
      backoffDelay(i + 1, policy('none'), () => 0.5),
    )
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000])
  })

  it('is zero before the first failure (reconnect at once)', () => {
    expect(backoffDelay(0, policy('none'), () => 0.5)).toBe(0)
  })

  it('stays capped and finite at attempt 10 000 in every mode', () => {
    for (const mode of ['none', 'full', 'equal', 'decorrelated'] as const) {
      const d = backoffDelay(10_000, policy(mode), () => 0.999999, 60_000)
      expect(Number.isFinite(d)).toBe(true)
      expect(d).toBeLessThanOrEqual(60_000)
      expect(d).toBeGreaterThanOrEqual(0)
    }
    expect(backoffDelay(10_000, policy('none'), Math.random)).toBe(60_000)
  })

  it('full jitter spans [0, ceiling)', () => {
    expect(backoffDelay(3, policy('full'), () => 0)).toBe(0)
    expect(backoffDelay(3, policy('full'), () => 0.5)).toBe(2_000)
    expect(backoffDelay(3, policy('full'), () => 0.999)).toBe(3_996)
  })

  it('equal jitter keeps half the ceiling as a floor', () => {
    expect(backoffDelay(3, policy('equal'), () => 0)).toBe(2_000)
    expect(backoffDelay(3, policy('equal'), () => 0.5)).toBe(3_000)
  })

  it('decorrelated jitter grows from the previous delay and stays within [initial, max]', () => {
    expect(backoffDelay(1, policy('decorrelated'), () => 0)).toBe(1_000)
    // previous 4 000: upper bound 12 000
    expect(backoffDelay(5, policy('decorrelated'), () => 0.5, 4_000)).toBe(6_500)
    expect(backoffDelay(5, policy('decorrelated'), () => 0.999, 50_000)).toBeLessThanOrEqual(60_000)
  })

  it('spreads a fleet: full jitter over 10 000 devices is roughly uniform', () => {
    let seed = 42
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
      return seed / 2 ** 31
    }
    const buckets = new Array(10).fill(0)
    for (let i = 0; i < 10_000; i++)
      buckets[Math.floor(backoffDelay(4, policy('full'), random) / 800)]++
    for (const b of buckets) expect(b).toBeGreaterThan(800)
  })
})

describe('BackoffLadder', () => {
  it('climbs one rung per failure and starts from the bottom after reset()', () => {
    const ladder = new BackoffLadder({ ...policy('none'), maxMs: 4_000 }, () => 0.5)
    expect([ladder.next(), ladder.next(), ladder.next(), ladder.next()]).toEqual([
      1_000, 2_000, 4_000, 4_000,
    ])
    expect(ladder.failures).toBe(4)
    ladder.reset()
    expect(ladder.failures).toBe(0)
    expect(ladder.next()).toBe(1_000)
  })

  it('hands decorrelated jitter its own last delay', () => {
    const ladder = new BackoffLadder(policy('decorrelated'), () => 0.99)
    const first = ladder.next()
    const second = ladder.next()
    expect(second).toBe(backoffDelay(2, policy('decorrelated'), () => 0.99, first))
    ladder.reset()
    expect(ladder.next()).toBe(first)
  })
})

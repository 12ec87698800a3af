import { describe, expect, it } from 'vitest'
import { ManualClock } from '../src/clock.js'
import { keepaliveTimer } from '../src/keepalive-timer.js'

describe('keepaliveTimer', () => {
  it('fires every interval while left alone', async () => {
    const clock = new ManualClock(0)
    const timer = keepaliveTimer(clock)
    const fired: number[] = []
    timer.set(() => fired.push(clock.now()), 1_000)
    await clock.advance(3_500)
    expect(fired).toEqual([1_000, 2_000, 3_000])
  })

  it('set again (a packet was sent) moves the next firing one interval past the last set', async () => {
    const clock = new ManualClock(0)
    const timer = keepaliveTimer(clock)
    const fired: number[] = []
    const tick = () => fired.push(clock.now())
    let id = timer.set(tick, 1_000)
    // Traffic every 300 ms for a while: the interval never runs out.
    for (let t = 0; t < 10; t++) {
      await clock.advance(300)
      timer.clear(id)
      id = timer.set(tick, 1_000)
    }
    expect(fired).toEqual([])
    // Then silence: it fires one interval after the last set, and keeps going.
    await clock.advance(2_000)
    expect(fired).toEqual([4_000, 5_000])
    // One real timer at a time, however often the interval was set.
    expect(clock.pending()).toBe(1)
  })

  it('a shorter interval set later fires on its own time', async () => {
    const clock = new ManualClock(0)
    const timer = keepaliveTimer(clock)
    const fired: string[] = []
    const first = timer.set(() => fired.push(`long ${clock.now()}`), 10_000)
    timer.clear(first)
    timer.set(() => fired.push(`short ${clock.now()}`), 500)
    await clock.advance(1_200)
    expect(fired).toEqual(['short 500', 'short 1000'])
  })

  it('cleared, it never fires, even though a real timer was left pending', async () => {
    const clock = new ManualClock(0)
    const timer = keepaliveTimer(clock)
    let fired = 0
    const id = timer.set(() => fired++, 1_000)
    await clock.advance(500)
    timer.clear(id)
    await clock.advance(5_000)
    expect(fired).toBe(0)
    // A stale id clears nothing.
    timer.set(() => fired++, 1_000)
    timer.clear(id)
    await clock.advance(1_000)
    expect(fired).toBe(1)
  })
})

import { describe, expect, it } from 'vitest'
import { ManualClock, sleep, within } from '../src/clock.js'

describe('ManualClock', () => {
  it('fires timers in time order, including ones scheduled by timers', async () => {
    const clock = new ManualClock(0)
    const fired: string[] = []
    clock.setTimeout(() => fired.push('b@20'), 20)
    clock.setTimeout(() => {
      fired.push('a@10')
      clock.setTimeout(() => fired.push('c@15'), 5)
    }, 10)
    await clock.advance(19)
    expect(fired).toEqual(['a@10', 'c@15'])
    await clock.advance(1)
    expect(fired).toEqual(['a@10', 'c@15', 'b@20'])
    expect(clock.now()).toBe(20)
  })

  it('sleep resolves on time and rejects at once on abort', async () => {
    const clock = new ManualClock()
    let done = false
    const p = sleep(clock, 100).then(() => {
      done = true
    })
    await clock.advance(99)
    expect(done).toBe(false)
    await clock.advance(1)
    await p
    expect(done).toBe(true)
    const ac = new AbortController()
    const q = sleep(clock, 1_000, ac.signal)
    ac.abort(new Error('stop'))
    await expect(q).rejects.toThrow('stop')
    expect(clock.pending()).toBe(0)
  })

  it('within bounds a wait', async () => {
    const clock = new ManualClock()
    const never = new Promise(() => {})
    const p = within(clock, 50, never)
    await clock.advance(50)
    expect(await p).toBe(false)
    expect(await within(clock, 50, Promise.resolve())).toBe(true)
  })
})

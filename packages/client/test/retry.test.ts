import { describe, expect, it } from 'vitest'
import { ManualClock } from '../src/clock.js'
import { UplinkError } from '../src/errors.js'
import { retry } from '../src/retry.js'

/** A function that fails `failures` times, then answers 'ok'; `calls` counts every attempt. */
function flaky(failures: number) {
  const calls: number[] = []
  const fn = async (attempt: number) => {
    calls.push(attempt)
    if (calls.length <= failures) throw new UplinkError('CONNECT_FAILED', `failure ${attempt}`)
    return 'ok'
  }
  return { fn, calls }
}

describe('retry', () => {
  it('tries again at once without a timer when there is no delay', async () => {
    const clock = new ManualClock(0)
    const { fn, calls } = flaky(2)
    expect(await retry(fn, { retries: 2, clock })).toBe('ok')
    expect(calls).toEqual([1, 2, 3])
    expect(clock.now()).toBe(0)
  })

  it('waits each delay on the injected clock, and not a tick less', async () => {
    const clock = new ManualClock(0)
    const { fn, calls } = flaky(2)
    const done = retry(fn, { retries: 5, clock, delayMs: (n) => 100 * n })
    await clock.advance(0)
    expect(calls).toHaveLength(1)
    expect(clock.nextDelay()).toBe(100)
    await clock.advance(99)
    expect(calls).toHaveLength(1)
    await clock.advance(1)
    expect(calls).toHaveLength(2)
    expect(clock.nextDelay()).toBe(200)
    await clock.advance(200)
    expect(await done).toBe('ok')
  })

  it('throws the last error once the retries are spent', async () => {
    const { fn, calls } = flaky(10)
    await expect(retry(fn, { retries: 2, clock: new ManualClock(0) })).rejects.toThrow('failure 3')
    expect(calls).toEqual([1, 2, 3])
  })

  it('stops at the first failure shouldRetry refuses, with that failure', async () => {
    const { fn, calls } = flaky(10)
    const shouldRetry = (_err: unknown, n: number) => n < 2
    await expect(retry(fn, { retries: 9, clock: new ManualClock(0), shouldRetry })).rejects.toThrow(
      'failure 2',
    )
    expect(calls).toEqual([1, 2])
  })

  it('an abort during a wait rejects at once with the signal reason and makes no more attempts', async () => {
    const clock = new ManualClock(0)
    const abort = new AbortController()
    const { fn, calls } = flaky(10)
    const done = retry(fn, { retries: 9, clock, signal: abort.signal, delayMs: () => 1_000 })
    await clock.advance(0)
    const reason = new UplinkError('STOPPED', 'stopped')
    abort.abort(reason)
    await expect(done).rejects.toBe(reason)
    await clock.advance(10_000)
    expect(calls).toEqual([1])
    expect(clock.pending()).toBe(0)
  })

  it('an aborted signal makes no attempt at all', async () => {
    const abort = new AbortController()
    abort.abort(new UplinkError('STOPPED', 'stopped'))
    const { fn, calls } = flaky(0)
    await expect(
      retry(fn, { retries: 3, clock: new ManualClock(0), signal: abort.signal }),
    ).rejects.toMatchObject({ code: 'STOPPED' })
    expect(calls).toEqual([])
  })
})

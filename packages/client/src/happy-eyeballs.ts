import { isIP } from 'node:net'
import type { Clock } from './clock.js'
import { withoutStack } from './errors.js'

/**
 * Happy Eyeballs (RFC 8305) over addresses that the resolver already found: the connection
 * logic only, with the connecting handed in, so its order and timing are tested on a manual
 * clock with scripted connectors and its sockets on loopback.
 */

/**
 * RFC 8305 section 4: IPv6 first when there is one, then the families alternate, each keeping
 * the resolver's order. So one broken family costs one attempt delay, not every address of it.
 */
export function interleave(addresses: readonly string[]): string[] {
  const v6 = addresses.filter((a) => isIP(a) === 6)
  const v4 = addresses.filter((a) => isIP(a) !== 6)
  const out: string[] = []
  for (let i = 0; i < Math.max(v6.length, v4.length); i++) {
    if (i < v6.length) out.push(v6[i] as string)
    if (i < v4.length) out.push(v4[i] as string)
  }
  return out
}

export interface RaceFailure {
  address: string
  error: unknown
}

/**
 * Every address was tried and every attempt failed; `failures` in the order they failed. Made
 * without a stack (raceFailed): it never leaves the transport, which reports the failures as an
 * UplinkError.
 */
export class RaceError extends Error {
  readonly failures: RaceFailure[]

  constructor(failures: RaceFailure[]) {
    super(`all ${failures.length} addresses failed`)
    this.failures = failures
  }
}

const raceFailed = (failures: RaceFailure[]) => withoutStack(() => new RaceError(failures))

export interface RaceOptions {
  clock: Clock
  /** RFC 8305 section 5: the next attempt starts this long after the last, if none has won. */
  attemptDelayMs: number
  /** Aborting ends every pending attempt and rejects with the signal's reason. */
  signal?: AbortSignal | undefined
}

/**
 * Connects to `addresses` in `interleave` order, starting the next attempt after
 * `attemptDelayMs` while earlier ones are still pending, or at once when one fails. The first to
 * connect wins; every other attempt is aborted, and one that connects anyway is handed to
 * `release`. It has no timeout of its own: the caller bounds the whole race with `signal`.
 */
export function race<T>(
  addresses: readonly string[],
  connectOne: (address: string, signal: AbortSignal) => Promise<T>,
  release: (value: T) => void,
  o: RaceOptions,
): Promise<{ address: string; value: T }> {
  const order = interleave(addresses)
  return new Promise((resolve, reject) => {
    const { clock, signal } = o
    if (signal?.aborted) return reject(signal.reason)
    if (order.length === 0) return reject(raceFailed([]))
    const attempts: AbortController[] = []
    const failures: RaceFailure[] = []
    let next = 0
    let pending = 0
    let done = false
    let timer: unknown
    const finish = (fn: () => void) => {
      done = true
      clock.clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      fn()
    }
    const onAbort = () => {
      finish(() => reject(signal?.reason))
      for (const a of attempts) a.abort(signal?.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    const start = () => {
      clock.clearTimeout(timer)
      if (done || next >= order.length) return
      const address = order[next++] as string
      // A lone address has no rival to abort: it runs on the race's own signal, which saves an
      // AbortController and its listener map on every attempt of a reconnect storm.
      const attempt = order.length === 1 && signal ? undefined : new AbortController()
      if (attempt) attempts.push(attempt)
      pending++
      if (next < order.length) timer = clock.setTimeout(start, o.attemptDelayMs)
      const own = attempt?.signal ?? (signal as AbortSignal)
      new Promise<T>((r) => r(connectOne(address, own))).then(
        (value) => {
          pending--
          if (done) return release(value)
          finish(() => resolve({ address, value }))
          for (const a of attempts) if (a !== attempt) a.abort()
        },
        (error) => {
          pending--
          if (done) return
          failures.push({ address, error })
          if (next < order.length) start()
          else if (pending === 0) finish(() => reject(raceFailed(failures)))
        },
      )
    }
    start()
  })
}

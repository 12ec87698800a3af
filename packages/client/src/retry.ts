import { type Clock, sleep } from './clock.js'

export interface RetryOptions {
  /** Further attempts after the first one (0: none). */
  retries: number
  /** Where the waits between attempts are timed. */
  clock: Clock
  /** Aborting ends the retries at once: a pending wait, or the next attempt, rejects with its reason. */
  signal?: AbortSignal | undefined
  /**
   * The wait before retry number `retry` (1 = the first); jitter comes from the caller's random
   * source. 0 (the default) tries again at once, without a timer.
   */
  delayMs?: ((retry: number, error: unknown) => number) | undefined
  /** Whether this failure is worth another attempt; default: every failure is. */
  shouldRetry?: ((error: unknown, retry: number) => boolean) | undefined
}

/**
 * Runs `fn` until it resolves, or until a failure is final: no retries left, `shouldRetry` says
 * no, or the signal aborted. The shape of p-retry (a function, an options object, a signal, a
 * `shouldRetry`), with time from the injected clock so a test advances it instead of sleeping.
 * The error of the last attempt is the one thrown.
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const { signal } = options
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw signal.reason
    try {
      return await fn(attempt)
    } catch (err) {
      if (signal?.aborted) throw signal.reason
      if (attempt > options.retries) throw err
      if (options.shouldRetry && !options.shouldRetry(err, attempt)) throw err
      const ms = options.delayMs?.(attempt, err) ?? 0
      if (ms > 0) await sleep(options.clock, ms, signal)
    }
  }
}

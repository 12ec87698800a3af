import type { RandomSource } from './clock.js'

export type JitterMode = 'full' | 'equal' | 'decorrelated' | 'none'

export interface BackoffPolicy {
  initialMs: number
  maxMs: number
  jitter: JitterMode
}

/**
 * The wait before reconnect attempt number `failures` (1 = the first retry after a failure).
 * Pure: the random source and, for decorrelated jitter, the previous delay come in as arguments.
 *
 * The ceiling is `initialMs * 2^(failures-1)` capped at `maxMs`; the exponent is clamped before
 * it is computed, so attempt 10 000 gives `maxMs`, not Infinity or NaN.
 *
 * - full (default): uniform in [0, ceiling) — spreads a fleet the most (AWS "full jitter").
 * - equal: ceiling/2 + uniform in [0, ceiling/2) — keeps a floor under each wait.
 * - decorrelated: uniform in [initialMs, 3 x previous), capped at maxMs.
 * - none: the ceiling itself; for tests and single devices.
 */
export function backoffDelay(
  failures: number,
  policy: BackoffPolicy,
  random: RandomSource,
  previousMs = 0,
): number {
  if (failures <= 0) return 0
  const { initialMs, maxMs } = policy
  const ceiling = exponentialCeiling(failures, initialMs, maxMs)
  switch (policy.jitter) {
    case 'none':
      return ceiling
    case 'full':
      return Math.floor(random() * ceiling)
    case 'equal':
      return Math.floor(ceiling / 2 + random() * (ceiling / 2))
    case 'decorrelated': {
      const upper = Math.max(initialMs, Math.min(maxMs, (previousMs || initialMs) * 3))
      return Math.min(maxMs, Math.floor(initialMs + random() * (upper - initialMs)))
    }
  }
}

export function exponentialCeiling(failures: number, initialMs: number, maxMs: number): number {
  // 2^31 x any sane initialMs already exceeds any sane cap; clamping keeps the math finite.
  const exponent = Math.min(failures - 1, 31)
  return Math.min(maxMs, initialMs * 2 ** exponent)
}

/**
 * The climb of one retry loop: how many failures in a row, the last delay (for decorrelated
 * jitter), and the reset once a connection proved stable. Each `next()` is one more failure.
 */
export class BackoffLadder {
  private count = 0
  private lastMs = 0

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: RandomSource,
  ) {}

  /** Failures since the last reset. */
  get failures(): number {
    return this.count
  }

  /** Records a failure and returns the wait before the next attempt. */
  next(): number {
    this.count++
    this.lastMs = backoffDelay(this.count, this.policy, this.random, this.lastMs)
    return this.lastMs
  }

  /** A fresh start: the next failure waits as the first one did. */
  reset(): void {
    this.count = 0
    this.lastMs = 0
  }
}

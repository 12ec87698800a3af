/**
 * Time enters Uplink only through a Clock, so backoff, keepalive, polling and drain windows are
 * tested by advancing a manual clock instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
  /**
   * `keepAlive`: the timer holds the host process open until it fires, for work a caller is
   * awaiting (a publish waiting for its group commit). Every other timer (backoff, polls) must
   * never keep a process alive on its own.
   */
  setTimeout(fn: () => void, ms: number, keepAlive?: boolean): unknown
  clearTimeout(handle: unknown): void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms, keepAlive) => {
    const t = setTimeout(fn, ms)
    if (!keepAlive) t.unref?.()
    return t
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
}

/** A random source in [0, 1). Injected so that jitter is reproducible in tests. */
export type RandomSource = () => number

/**
 * Resolves after `ms` on `clock`, or rejects with the signal's reason as soon as it aborts.
 * Every wait in Uplink goes through here so that `stop()` returns at once.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const onAbort = () => {
      clock.clearTimeout(handle)
      reject(signal?.reason)
    }
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

interface ManualTimer {
  id: number
  at: number
  fn: () => void
}

/**
 * A clock that moves only when told. `advance()` fires due timers in time order, including
 * timers that those timers schedule, and lets promise callbacks run between them.
 */
export class ManualClock implements Clock {
  private current: number
  private timers: ManualTimer[] = []
  private nextId = 1

  constructor(start = 0) {
    this.current = start
  }

  now(): number {
    return this.current
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const timer = { id: this.nextId++, at: this.current + Math.max(0, ms), fn }
    this.timers.push(timer)
    return timer.id
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle)
  }

  /** Number of timers waiting to fire. */
  pending(): number {
    return this.timers.length
  }

  /** Delay until the next timer fires, or undefined when none is pending. */
  nextDelay(): number | undefined {
    if (this.timers.length === 0) return undefined
    return Math.min(...this.timers.map((t) => t.at)) - this.current
  }

  async advance(ms: number): Promise<void> {
    const target = this.current + ms
    for (;;) {
      await flushMicrotasks()
      const due = this.timers
        .filter((t) => t.at <= target)
        .sort((a, b) => a.at - b.at || a.id - b.id)
      const next = due[0]
      if (!next) break
      this.timers = this.timers.filter((t) => t !== next)
      this.current = Math.max(this.current, next.at)
      next.fn()
    }
    this.current = target
    await flushMicrotasks()
  }
}

async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}

/** Waits for `promise` at most `ms` on `clock`; resolves either way (the bound is the point). */
export async function within(
  clock: Clock,
  ms: number,
  promise: Promise<unknown>,
): Promise<boolean> {
  let handle: unknown
  const timeout = new Promise<false>((resolve) => {
    handle = clock.setTimeout(() => resolve(false), ms)
  })
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timeout,
    ])
  } finally {
    clock.clearTimeout(handle)
  }
}

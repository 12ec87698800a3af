import { UplinkError } from './errors.js'

type Fn = (...args: any[]) => void
type Args<E, K extends keyof E> = E[K] extends Fn ? Parameters<E[K]> : never

interface Registration {
  fn: Fn
  context: unknown
  once: boolean
}

/**
 * A typed event emitter (eventemitter3's API: on, once, off, emit, listeners, listenerCount)
 * whose `emit` calls each listener on its own guard. A listener that throws must not end the
 * supervisor's loop, unwind MQTT.js's packet handling or skip the listeners after it: its
 * exception is reported as an `error` event with code LISTENER_ERROR, or, when an `error`
 * listener itself throws (or nobody listens for errors), as a process warning.
 */
export class GuardedEmitter<E extends { error: (err: UplinkError) => void }> {
  /** A private field: not enumerable, not in util.inspect or JSON.stringify. */
  readonly #listeners = new Map<keyof E, Registration[]>()

  on<K extends keyof E>(event: K, fn: E[K], context?: unknown): this {
    return this.add(event, fn as Fn, context, false)
  }

  addListener<K extends keyof E>(event: K, fn: E[K], context?: unknown): this {
    return this.add(event, fn as Fn, context, false)
  }

  once<K extends keyof E>(event: K, fn: E[K], context?: unknown): this {
    return this.add(event, fn as Fn, context, true)
  }

  off<K extends keyof E>(event: K, fn?: E[K], context?: unknown, once?: boolean): this {
    const list = this.#listeners.get(event)
    if (!list) return this
    const kept = list.filter(
      (r) =>
        fn !== undefined &&
        (r.fn !== fn ||
          (context !== undefined && r.context !== context) ||
          (once === true && !r.once)),
    )
    if (kept.length > 0) this.#listeners.set(event, kept)
    else this.#listeners.delete(event)
    return this
  }

  removeListener<K extends keyof E>(event: K, fn?: E[K], context?: unknown, once?: boolean): this {
    return this.off(event, fn, context, once)
  }

  removeAllListeners(event?: keyof E): this {
    if (event === undefined) this.#listeners.clear()
    else this.#listeners.delete(event)
    return this
  }

  listeners<K extends keyof E>(event: K): Array<E[K]> {
    return (this.#listeners.get(event) ?? []).map((r) => r.fn as E[K])
  }

  listenerCount(event: keyof E): number {
    return this.#listeners.get(event)?.length ?? 0
  }

  eventNames(): Array<keyof E> {
    return [...this.#listeners.keys()]
  }

  emit<K extends keyof E>(event: K, ...args: Args<E, K>): boolean {
    const list = this.#listeners.get(event)
    if (!list || list.length === 0) return false
    for (const r of list.slice()) {
      if (r.once) this.off(event, r.fn as E[K], undefined, true)
      try {
        r.fn.apply(r.context ?? this, args)
      } catch (err) {
        this.listenerThrew(event, err)
      }
    }
    return true
  }

  private add(event: keyof E, fn: Fn, context: unknown, once: boolean): this {
    if (typeof fn !== 'function') {
      throw new UplinkError(
        'INVALID_ARGUMENT',
        `the listener for '${String(event)}' must be a function`,
      )
    }
    const list = this.#listeners.get(event)
    const r = { fn, context, once }
    if (list) list.push(r)
    else this.#listeners.set(event, [r])
    return this
  }

  private listenerThrew(event: keyof E, err: unknown): void {
    const text = err instanceof Error ? err.message : String(err)
    const error = new UplinkError(
      'LISTENER_ERROR',
      `a '${String(event)}' listener threw: ${text}`,
      {
        cause: err,
        details: { event: String(event) },
      },
    )
    if (event !== 'error' && this.listenerCount('error') > 0) {
      ;(this.emit as unknown as (e: 'error', err: UplinkError) => boolean)('error', error)
      return
    }
    warn(error)
  }
}

function warn(error: UplinkError): void {
  try {
    process.emitWarning(error.message, { code: 'UPLINK_LISTENER_ERROR', type: 'UplinkWarning' })
  } catch {
    // No process warnings on this runtime: nothing else is left to tell.
  }
}

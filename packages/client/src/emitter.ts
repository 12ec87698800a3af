import { textOf, UplinkError } from './errors.js'

type Fn = (...args: any[]) => void
type Args<E, K extends keyof E> = E[K] extends Fn ? Parameters<E[K]> : never

interface Registration {
  fn: Fn
  context: unknown
  once: boolean
}

/**
 * A listener as stored: a bare function for the common case (no context, not once), and an
 * event with one listener holds it without an array. A fleet-sized process runs thousands of
 * clients with a handful of listeners each, and a registration object plus an array per event
 * was a measurable share of a device's memory.
 */
type Entry = Fn | Registration
type Stored = Entry | Entry[]

function registration(e: Entry): Registration {
  return typeof e === 'function' ? { fn: e, context: undefined, once: false } : e
}

function entries(stored: Stored | undefined): readonly Entry[] {
  if (stored === undefined) return []
  return Array.isArray(stored) ? stored : [stored]
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
  readonly #listeners = new Map<keyof E, Stored>()

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
    const stored = this.#listeners.get(event)
    if (stored === undefined) return this
    const kept = entries(stored).filter((e) => {
      const r = registration(e)
      return (
        fn !== undefined &&
        (r.fn !== fn ||
          (context !== undefined && r.context !== context) ||
          (once === true && !r.once))
      )
    })
    if (kept.length > 1) this.#listeners.set(event, kept)
    else if (kept.length === 1) this.#listeners.set(event, kept[0] as Entry)
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
    return entries(this.#listeners.get(event)).map((e) => registration(e).fn as E[K])
  }

  listenerCount(event: keyof E): number {
    return entries(this.#listeners.get(event)).length
  }

  eventNames(): Array<keyof E> {
    return [...this.#listeners.keys()]
  }

  emit<K extends keyof E>(event: K, ...args: Args<E, K>): boolean {
    const stored = this.#listeners.get(event)
    if (stored === undefined) return false
    if (!Array.isArray(stored)) this.call(event, stored, args)
    // A copy: a listener that adds or removes listeners does not change who hears this emit.
    else for (const e of stored.slice()) this.call(event, e, args)
    return true
  }

  private call(event: keyof E, e: Entry, args: unknown[]): void {
    const bare = typeof e === 'function'
    if (!bare && e.once) this.off(event, e.fn as E[keyof E], undefined, true)
    try {
      const result: unknown = bare ? e.apply(this, args) : e.fn.apply(e.context ?? this, args)
      onRejected(result, (err) => this.listenerThrew(event, err))
    } catch (err) {
      this.listenerThrew(event, err)
    }
  }

  private add(event: keyof E, fn: Fn, context: unknown, once: boolean): this {
    if (typeof fn !== 'function') {
      throw new UplinkError(
        'INVALID_ARGUMENT',
        `the listener for '${String(event)}' must be a function`,
      )
    }
    const entry: Entry = context === undefined && !once ? fn : { fn, context, once }
    const stored = this.#listeners.get(event)
    if (stored === undefined) this.#listeners.set(event, entry)
    else if (Array.isArray(stored)) stored.push(entry)
    else this.#listeners.set(event, [stored, entry])
    return this
  }

  private listenerThrew(event: keyof E, err: unknown): void {
    const text = textOf(err)
    const error = new UplinkError(
      'LISTENER_ERROR',
      `a '${String(event)}' listener threw: ${text}`,
      {
        cause: err,
        details: { event: String(event) },
      },
    )
    // An `error` listener that threw is not told of it again: a warning, not a loop.
    if (event === 'error') warn(error)
    else this.reportError(error)
  }

  /**
   * An error from the application's own code (a listener, a subscription handler): to its
   * `error` listeners, or with none a process warning, so that it is never lost in silence.
   */
  protected reportError(error: UplinkError): void {
    if (this.listenerCount('error') > 0)
      (this.emit as unknown as (e: 'error', err: UplinkError) => boolean)('error', error)
    else warn(error)
  }
}

/**
 * A user's function that returned a promise (an `async` listener or handler, the usual way to
 * write one): its rejection is reported like a throw. Left alone, it was an unhandled rejection,
 * which ends a Node process.
 */
export function onRejected(result: unknown, report: (err: unknown) => void): void {
  if (typeof (result as PromiseLike<unknown> | undefined)?.then !== 'function') return
  try {
    ;(result as PromiseLike<unknown>).then(undefined, (err: unknown) => {
      try {
        report(err)
      } catch {
        // A report that fails has nowhere left to go; the host process must not pay for it.
      }
    })
  } catch (err) {
    report(err)
  }
}

function warn(error: UplinkError): void {
  try {
    process.emitWarning(error.message, { code: 'UPLINK_LISTENER_ERROR', type: 'UplinkWarning' })
  } catch {
    // No process warnings on this runtime: nothing else is left to tell.
  }
}

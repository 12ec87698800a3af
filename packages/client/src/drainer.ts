import type { Clock } from './clock.js'
import { toUplinkError, type UplinkError } from './errors.js'
import type { Outbox, OutboxEntry } from './outbox.js'
import type { Connection } from './transport.js'

/**
 * Moves messages from the outbox to the current connection: in drain order, at most `window`
 * unacknowledged at a time, each removed from the outbox only once the broker acknowledged it.
 * When the connection goes, the in-flight set is forgotten and the next connection starts again
 * from the oldest message, so nothing is lost and a message may be sent twice.
 */
export class Drainer {
  private connection: Connection | undefined
  private readonly inFlight = new Set<number>()
  private scheduled = false
  private peeking = false
  private again = false
  private paused = false
  private idleWaiters: Array<() => void> = []

  constructor(
    private readonly outbox: Outbox,
    private readonly clock: Clock,
    private readonly window: number,
    private readonly protocolVersion: 4 | 5,
    private readonly onError: (err: UplinkError) => void,
  ) {}

  get inFlightCount(): number {
    return this.inFlight.size
  }

  attach(connection: Connection): void {
    this.connection = connection
    this.inFlight.clear()
    this.paused = false
    this.notify()
  }

  detach(connection: Connection): void {
    if (this.connection !== connection) return
    this.connection = undefined
    this.inFlight.clear()
    this.wakeIdle()
  }

  /** Stops sending new messages (in-flight ones still complete); for a clean stop or handover. */
  pause(): void {
    this.paused = true
  }

  /** Resolves once nothing is in flight. */
  idle(): Promise<void> {
    if (this.inFlight.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /**
   * Something was enqueued or acknowledged: look for more to send. Calls in the same turn share
   * one look, a microtask later: PUBACKs arrive many to a socket read, publishes many to a tick,
   * and one peek for all of them costs a fraction of one peek each.
   */
  notify(): void {
    if (this.scheduled) return
    this.scheduled = true
    queueMicrotask(this.refill)
  }

  private readonly refill = (): void => {
    this.scheduled = false
    if (this.peeking) {
      this.again = true
      return
    }
    try {
      this.fill()
    } catch (err) {
      this.onError(toUplinkError(err, 'OUTBOX_ERROR', 'reading the outbox'))
    }
  }

  private fill(): void {
    for (;;) {
      const connection = this.connection
      const room = this.window - this.inFlight.size
      if (!connection?.isOpen || this.paused || room <= 0) return
      const peeked = this.outbox.peek(room, this.inFlight, this.clock.now())
      if (!Array.isArray(peeked)) {
        // An asynchronous outbox: one peek at a time; what is notified meanwhile looks again.
        this.peeking = true
        peeked.then(
          (batch) => {
            this.peeking = false
            if (this.connection === connection) this.sendAll(connection, batch)
            if (batch.length > 0 || this.again) {
              this.again = false
              this.notify()
            }
          },
          (err: unknown) => {
            this.peeking = false
            this.onError(toUplinkError(err, 'OUTBOX_ERROR', 'reading the outbox'))
          },
        )
        return
      }
      this.sendAll(connection, peeked)
      // Fewer than asked for: the outbox has no more now; an enqueue or an ack notifies again.
      if (peeked.length < room) return
    }
  }

  private sendAll(connection: Connection, batch: OutboxEntry[]): void {
    for (const entry of batch) this.send(connection, entry)
  }

  private send(connection: Connection, entry: OutboxEntry): void {
    this.inFlight.add(entry.id)
    const expirySeconds =
      this.protocolVersion === 5 && entry.expiresAt !== undefined
        ? Math.max(1, Math.ceil((entry.expiresAt - this.clock.now()) / 1000))
        : undefined
    const options = { qos: entry.qos, retain: entry.retain, expirySeconds }
    connection.send(entry.topic, entry.payload, options, (err) => {
      // A failing connection: the message stays in the outbox and is sent again.
      if (err) return
      // Acknowledged by a broker: remove it even if that connection has since been replaced.
      const removed = this.remove(entry.id)
      if (removed) removed.then(() => this.acked(connection, entry.id))
      else this.acked(connection, entry.id)
    })
  }

  /** Removes an acknowledged message; a promise only when the outbox's remove is async. */
  private remove(id: number): Promise<void> | undefined {
    const fail = (err: unknown) =>
      this.onError(toUplinkError(err, 'OUTBOX_ERROR', 'removing an acknowledged message'))
    try {
      const pending = this.outbox.remove(id)
      return pending instanceof Promise ? pending.catch(fail) : undefined
    } catch (err) {
      fail(err)
      return undefined
    }
  }

  private acked(connection: Connection, id: number): void {
    if (this.connection !== connection) return
    this.inFlight.delete(id)
    if (this.inFlight.size === 0) this.wakeIdle()
    this.notify()
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const w of waiters) w()
  }
}

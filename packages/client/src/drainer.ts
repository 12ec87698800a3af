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
  private pumping = false
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

  /** Something was enqueued or acknowledged: look for more to send. */
  notify(): void {
    if (this.pumping) {
      this.again = true
      return
    }
    void this.pump()
  }

  private async pump(): Promise<void> {
    this.pumping = true
    try {
      do {
        this.again = false
        await this.fill()
      } while (this.again)
    } catch (err) {
      this.onError(toUplinkError(err, 'OUTBOX_ERROR', 'reading the outbox'))
    } finally {
      this.pumping = false
    }
  }

  private async fill(): Promise<void> {
    for (;;) {
      const connection = this.connection
      const room = this.window - this.inFlight.size
      if (!connection?.isOpen || this.paused || room <= 0) return
      const peeked = this.outbox.peek(room, this.inFlight, this.clock.now())
      // A synchronous outbox (both shipped ones) skips the microtask an await would cost per ack.
      const batch = Array.isArray(peeked) ? peeked : await peeked
      if (batch.length === 0 || this.connection !== connection) return
      for (const entry of batch) this.send(connection, entry)
    }
  }

  private send(connection: Connection, entry: OutboxEntry): void {
    this.inFlight.add(entry.id)
    const expirySeconds =
      this.protocolVersion === 5 && entry.expiresAt !== undefined
        ? Math.max(1, Math.ceil((entry.expiresAt - this.clock.now()) / 1000))
        : undefined
    connection
      .publish(entry.topic, entry.payload, { qos: entry.qos, retain: entry.retain, expirySeconds })
      .then(
        () => {
          // Acknowledged by a broker: remove it even if that connection has since been replaced.
          const removed = this.remove(entry.id)
          if (removed) return removed.then(() => this.acked(connection, entry.id))
          this.acked(connection, entry.id)
        },
        () => {
          // The connection is failing; the message stays in the outbox and is sent again.
        },
      )
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

import type { Clock } from './clock.js'
import { toUplinkError, UplinkError } from './errors.js'
import type { DeliveryDropReason, Outbox, OutboxEntry } from './outbox.js'
import type { Connection } from './transport.js'

/**
 * Moves messages from the outbox to the current connection: at most `window` unacknowledged on
 * it at a time, each acknowledged to the outbox only once a broker acknowledged it. The outbox
 * hands out messages and keeps them out of the drain; the drainer keeps which connection holds
 * which. When that connection dies its messages are released to the outbox and go again, from
 * the oldest, on the next one: a message may be sent twice, never lost. A connection left by a
 * planned move is still open and finishing its in-flight messages (make-before-break): those
 * stay held, and out of the drain, until it has closed, so the move sends none of them twice.
 *
 * A message that can never be delivered must not block the rest: one the broker refuses (an
 * MQTT 5 failure reason code) is set aside at once; one that was the oldest unacknowledged on its
 * link each time the link was closed under it, `poisonAfter` times in a row, is set aside too (a
 * broker that drops the link on a topic it will not take, a packet MQTT.js cannot encode).
 * Both are removed from the outbox, counted and reported as `drop`.
 */
export interface DrainerHooks {
  error(err: UplinkError): void
  drop(entry: OutboxEntry, reason: DeliveryDropReason, error: UplinkError): void
}

export class Drainer {
  // Private fields: a connection holds MQTT.js's client, and that the credentials.
  #connection: Connection | undefined
  /**
   * What each connection holds: sent, not yet acknowledged or released, in the order sent. Made
   * by a send and let go once nothing is held: an idle device of a fleet-sized process holds
   * no Map for nothing.
   */
  #held: Map<Connection, Map<number, OutboxEntry>> | undefined
  /**
   * Links closed in a row under a message while it was the oldest unacknowledged on them. Made
   * on the first strike: most drainers never see one.
   */
  private strikes: Map<number, number> | undefined
  /** Counters in fields, not a record: most drainers never set a message aside. */
  private refused = 0
  private undeliverable = 0
  private scheduled = false
  private taking = false
  private again = false
  private paused = false
  /** Made when first needed: only a stop waits for the drain to go idle. */
  private idleWaiters: Array<() => void> | undefined

  constructor(
    private readonly outbox: Outbox,
    private readonly clock: Clock,
    private readonly window: number,
    private readonly poisonAfter: number,
    private readonly hooks: DrainerHooks,
  ) {}

  private onError(err: UplinkError): void {
    this.hooks.error(err)
  }

  get inFlightCount(): number {
    let n = 0
    for (const held of this.#held?.values() ?? []) n += held.size
    return n
  }

  /** Messages set aside, by reason. */
  get dropped(): Record<DeliveryDropReason, number> {
    return { refused: this.refused, undeliverable: this.undeliverable }
  }

  attach(connection: Connection): void {
    this.#connection = connection
    this.paused = false
    this.notify()
  }

  /**
   * The connection no longer takes new messages. What it holds is released once it has closed:
   * at once for a dead link, after its acknowledgements (or its handover timeout) for a
   * connection ended cleanly after a move.
   */
  detach(connection: Connection): void {
    if (this.#connection === connection) this.#connection = undefined
    // A connection left open by a planned move is ended by the client: no message is to blame.
    if (!connection.isOpen) this.release(connection, true)
    else void connection.closed.then(() => this.release(connection, false))
  }

  /** Stops sending new messages (in-flight ones still complete); for a clean stop or handover. */
  pause(): void {
    this.paused = true
  }

  /** Resolves once nothing is in flight. */
  idle(): Promise<void> {
    if (!this.#held) return Promise.resolve()
    return new Promise((resolve) => (this.idleWaiters ??= []).push(resolve))
  }

  /**
   * Something was enqueued or acknowledged: look for more to send. Calls in the same turn share
   * one look, a microtask later: PUBACKs arrive many to a socket read, publishes many to a tick,
   * and one take for all of them costs a fraction of one take each.
   */
  notify(): void {
    if (this.scheduled) return
    this.scheduled = true
    queueMicrotask(this.refill)
  }

  private readonly refill = (): void => {
    this.scheduled = false
    if (this.taking) {
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
      const connection = this.#connection
      if (!connection?.isOpen || this.paused) return
      const room = this.window - (this.#held?.get(connection)?.size ?? 0)
      if (room <= 0) return
      const taken = this.outbox.take(room, this.clock.now())
      if (!Array.isArray(taken)) {
        // An asynchronous outbox: one take at a time; what is notified meanwhile looks again.
        this.taking = true
        taken.then(
          (batch) => {
            this.taking = false
            // Replaced or paused meanwhile (a stop under way waits only for what was sent before
            // it): the batch goes back, for the next connection.
            if (this.#connection === connection && connection.isOpen && !this.paused)
              this.sendAll(connection, batch)
            else this.outbox.release(batch.map((e) => e.id))
            this.takeEnded(batch.length > 0)
          },
          (err: unknown) => {
            this.taking = false
            this.onError(toUplinkError(err, 'OUTBOX_ERROR', 'reading the outbox'))
            this.takeEnded(false)
          },
        )
        return
      }
      this.sendAll(connection, taken)
      // Fewer than asked for: the outbox has no more now; an enqueue or an ack notifies again.
      if (taken.length < room) return
    }
  }

  /**
   * An asynchronous take is over: look again if it found messages (there may be more) or if
   * something was enqueued or acknowledged while it ran, failed or not; a failed take that
   * forgot those notifications left them unsent until the next publish, ack or connection.
   */
  private takeEnded(found: boolean): void {
    if (!found && !this.again) return
    this.again = false
    this.notify()
  }

  private sendAll(connection: Connection, batch: OutboxEntry[]): void {
    for (const entry of batch) this.send(connection, entry)
  }

  /**
   * What `connection` holds, looked up for every message, never kept across sends: MQTT.js calls
   * a QoS 0 message's callback inside the send, and that acknowledgement lets go of a map left
   * empty. A map kept for the rest of the batch held its QoS 1 messages out of the window's count
   * and out of the release when the link closed, so they were never sent again.
   */
  private heldBy(connection: Connection): Map<number, OutboxEntry> {
    const all = (this.#held ??= new Map())
    let held = all.get(connection)
    if (!held) {
      held = new Map()
      all.set(connection, held)
    }
    return held
  }

  private send(connection: Connection, entry: OutboxEntry): void {
    this.heldBy(connection).set(entry.id, entry)
    const { qos, retain, expiresAt } = entry
    const options =
      expiresAt === undefined ? { qos, retain } : { qos, retain, expiresAt, now: this.clock.now() }
    connection.send(entry.topic, entry.payload, options, (err) => {
      if (err?.code === 'PUBLISH_REFUSED') return this.setAside(connection, entry, 'refused', err)
      // A failing connection: the message stays in the outbox and is released with it.
      if (err) return
      // Acknowledged by a broker: remove it even if that connection has since been replaced.
      this.strikes?.delete(entry.id)
      const removed = this.remove(entry.id)
      if (removed) removed.then(() => this.acked(connection, entry.id))
      else this.acked(connection, entry.id)
    })
  }

  /** Removes a message that will never be delivered, so that the rest are. */
  private setAside(
    connection: Connection | undefined,
    entry: OutboxEntry,
    reason: DeliveryDropReason,
    error: UplinkError,
  ): void {
    this.strikes?.delete(entry.id)
    if (reason === 'refused') this.refused++
    else this.undeliverable++
    this.hooks.drop(entry, reason, error)
    const removed = this.remove(entry.id)
    if (!connection) return
    if (removed) removed.then(() => this.acked(connection, entry.id))
    else this.acked(connection, entry.id)
  }

  /** Deletes an acknowledged message; a promise only when the outbox's ack is async. */
  private remove(id: number): Promise<void> | undefined {
    const fail = (err: unknown) =>
      this.onError(toUplinkError(err, 'OUTBOX_ERROR', 'removing an acknowledged message'))
    try {
      const pending = this.outbox.ack(id)
      return pending instanceof Promise ? pending.catch(fail) : undefined
    } catch (err) {
      fail(err)
      return undefined
    }
  }

  private acked(connection: Connection, id: number): void {
    // Released meanwhile (its connection died) and perhaps sent again elsewhere: not this one's.
    const held = this.#held?.get(connection)
    if (!held?.delete(id)) return
    if (held.size === 0) this.letGo(connection)
    this.settled()
  }

  /**
   * A closed connection's unacknowledged messages go back to the outbox's drain. When the other
   * side closed it, the oldest of them takes a strike (a broker acknowledges in order, so a
   * message it will not take is the first one left unanswered) and the others start over.
   */
  private release(connection: Connection, blame: boolean): void {
    const held = this.#held?.get(connection)
    this.letGo(connection)
    if (!held) return this.settled()
    const by = connection.closedBy
    let suspect = blame && by?.code === 'CONNECTION_LOST' && !by.details?.byClient
    const back: number[] = []
    for (const [id, entry] of held) {
      if (!suspect) {
        back.push(id)
        this.strikes?.delete(id)
        continue
      }
      suspect = false
      const strikes = (this.strikes?.get(id) ?? 0) + 1
      ;(this.strikes ??= new Map()).set(id, strikes)
      if (strikes >= this.poisonAfter) {
        const error = new UplinkError(
          'PUBLISH_FAILED',
          `the link closed under the message to ${entry.topic} ${strikes} times in a row; set aside`,
          { cause: by, details: { strikes } },
        )
        this.setAside(undefined, entry, 'undeliverable', error)
      } else back.push(id)
    }
    try {
      this.outbox.release(back)
    } catch (err) {
      this.onError(toUplinkError(err, 'OUTBOX_ERROR', 'releasing unacknowledged messages'))
    }
    this.settled()
  }

  /** `connection` holds nothing any more; nor, once none does, the drainer. */
  private letGo(connection: Connection): void {
    const all = this.#held
    if (!all) return
    all.delete(connection)
    if (all.size === 0) this.#held = undefined
  }

  private settled(): void {
    if (!this.#held) this.wakeIdle()
    this.notify()
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters
    this.idleWaiters = undefined
    for (const w of waiters ?? []) w()
  }
}

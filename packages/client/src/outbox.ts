import type { UplinkError } from './errors.js'

/**
 * The Outbox is where `publish()` puts a message before anything touches the network. The
 * client resolves `publish()` once `enqueue()` resolves, so an outbox that survives power loss
 * (the SQLite one) makes `publish()` a durability promise.
 *
 * The outbox owns which messages are out: `take` hands out the next ones in drain order and they
 * stay out (never handed out twice) until `ack` deletes them or `release` puts them back, as when
 * the connection that held them has closed. The drainer only keeps which connection holds which.
 */

export type Qos = 0 | 1 | 2

/** Alarms drain before telemetry and are dropped after it. */
export type Priority = 'alarm' | 'telemetry'

export type DropReason = 'overflow' | 'expired'

/**
 * Why the drainer set a stored message aside: the broker refused it (an MQTT 5 reason code of
 * 0x80 or more on PUBACK, PUBREC or PUBCOMP), or its link was closed each time it went out.
 */
export type DeliveryDropReason = 'refused' | 'undeliverable'

export interface OutboxInput {
  topic: string
  payload: Uint8Array
  qos: Qos
  retain: boolean
  priority: Priority
  /** Absolute expiry time (ms since the epoch); absent: never expires. */
  expiresAt?: number | undefined
}

export interface OutboxEntry extends OutboxInput {
  /** Sequence number assigned by the outbox: strictly increasing in enqueue order. */
  id: number
  /** When it was accepted (ms since the epoch). */
  enqueuedAt: number
}

export interface OutboxStats {
  messages: number
  bytes: number
  dropped: Record<DropReason, number>
}

export interface OutboxListener {
  /** A stored message was discarded (never sent): overflow policy or expiry. */
  drop(entry: OutboxEntry, reason: DropReason): void
  /** Something went wrong that did not lose stored data (e.g. a corrupt file moved aside). */
  error(err: UplinkError): void
}

export interface Outbox {
  /**
   * Stores a message and resolves once it is durable by this outbox's standard. Rejects with an
   * UplinkError (`OUTBOX_FULL` under the reject policy, `OUTBOX_DISK_FULL`, `OUTBOX_CLOSED`).
   */
  enqueue(input: OutboxInput, now: number): Promise<OutboxEntry>
  /**
   * Hands out up to `limit` messages in drain order (alarms first, then by id) that are not out
   * already; they are out until acknowledged or released. Messages whose `expiresAt` is at or
   * before `now` are removed and reported to the listener as `expired` instead of handed out.
   */
  take(limit: number, now: number): Promise<OutboxEntry[]> | OutboxEntry[]
  /**
   * Deletes a message: acknowledged by a broker, or set aside by the drainer. Whether it is out
   * or not (a late acknowledgement after a release); unknown ids are ignored.
   */
  ack(id: number): Promise<void> | void
  /**
   * Puts messages that are out back into the drain (their connection closed unacknowledged):
   * the next `take` hands them out again, in drain order. Ids not out are ignored.
   */
  release(ids: Iterable<number>): void
  /**
   * The first message in drain order, out or not, without handing it out or expiring anything:
   * a look at what waits (is an alarm still unsent?).
   */
  head(): Promise<OutboxEntry | undefined> | OutboxEntry | undefined
  stats(): OutboxStats
  setListener(listener: OutboxListener): void
  close(): Promise<void>
}

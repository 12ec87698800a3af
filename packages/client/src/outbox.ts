import type { UplinkError } from './errors.js'

/**
 * The Outbox is where `publish()` puts a message before anything touches the network. The
 * client resolves `publish()` once `enqueue()` resolves, so an outbox that survives power loss
 * (the SQLite one) makes `publish()` a durability promise. The drainer reads it in drain order
 * and removes a message only once the broker has acknowledged it.
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

/** The ids `peek` leaves out: a Set, or the drainer's map of messages in flight. */
export interface IdSet {
  has(id: number): boolean
  readonly size: number
}

export interface Outbox {
  /**
   * Stores a message and resolves once it is durable by this outbox's standard. Rejects with an
   * UplinkError (`OUTBOX_FULL` under the reject policy, `OUTBOX_DISK_FULL`, `OUTBOX_CLOSED`).
   */
  enqueue(input: OutboxInput, now: number): Promise<OutboxEntry>
  /**
   * Up to `limit` messages in drain order (alarms first, then by id), leaving out the ids in
   * `skip` (those already in flight). Messages whose `expiresAt` is at or before `now` are
   * removed and reported to the listener as `expired` instead of being returned.
   */
  peek(limit: number, skip: IdSet, now: number): Promise<OutboxEntry[]> | OutboxEntry[]
  /** Deletes an acknowledged message. Unknown ids are ignored. */
  remove(id: number): Promise<void> | void
  stats(): OutboxStats
  setListener(listener: OutboxListener): void
  close(): Promise<void>
}

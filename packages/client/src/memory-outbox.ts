import { UplinkError } from './errors.js'
// A cycle (options.ts builds the default memory outbox), harmless: both read each other only
// when called, never while the modules load.
import { DEFAULTS } from './options.js'
import type {
  DropReason,
  Outbox,
  OutboxEntry,
  OutboxInput,
  OutboxListener,
  OutboxStats,
  Priority,
} from './outbox.js'

export interface MemoryOutboxOptions {
  maxMessages?: number
  maxBytes?: number
  /**
   * drop-oldest (default): make room by discarding the oldest telemetry, then (for an arriving
   * alarm) the oldest alarm. reject: refuse the new message with OUTBOX_FULL.
   */
  overflow?: 'drop-oldest' | 'reject'
}

/** What a message costs against `maxBytes`: what goes on the wire, roughly. */
export function entrySize(input: Pick<OutboxInput, 'topic' | 'payload'>): number {
  return Buffer.byteLength(input.topic) + input.payload.byteLength
}

/**
 * A bounded outbox in memory: survives outages, not restarts. Two insertion-ordered maps (alarms,
 * telemetry) give FIFO order per priority with O(1) removal of acknowledged messages; a set says
 * which are out.
 */
export function memoryOutbox(options: MemoryOutboxOptions = {}): Outbox {
  const d = DEFAULTS.memoryOutbox
  const maxMessages = options.maxMessages ?? d.maxMessages
  const maxBytes = options.maxBytes ?? d.maxBytes
  const overflow = options.overflow ?? d.overflow
  const queues: Record<Priority, Map<number, OutboxEntry>> = {
    alarm: new Map(),
    telemetry: new Map(),
  }
  /** Handed out by `take`, not yet acknowledged or released. */
  const out = new Set<number>()
  const dropped: Record<DropReason, number> = { overflow: 0, expired: 0 }
  let listener: OutboxListener | undefined
  let nextId = 1
  let bytes = 0
  let closed = false

  const count = () => queues.alarm.size + queues.telemetry.size
  const forget = (queue: Map<number, OutboxEntry>, entry: OutboxEntry) => {
    queue.delete(entry.id)
    out.delete(entry.id)
    bytes -= entrySize(entry)
  }
  const discard = (entry: OutboxEntry, reason: DropReason) => {
    forget(queues[entry.priority], entry)
    dropped[reason]++
    listener?.drop(entry, reason)
  }
  /** Telemetry goes first; only an arriving alarm may displace an older alarm. */
  const oldest = (arriving: Priority): OutboxEntry | undefined =>
    queues.telemetry.values().next().value ??
    (arriving === 'alarm' ? queues.alarm.values().next().value : undefined)

  return {
    async enqueue(input, now) {
      if (closed) throw new UplinkError('OUTBOX_CLOSED', 'the outbox is closed')
      const size = entrySize(input)
      if (size > maxBytes)
        throw new UplinkError(
          'OUTBOX_FULL',
          `message of ${size} bytes exceeds the outbox's maxBytes`,
        )
      if (count() + 1 > maxMessages || bytes + size > maxBytes) {
        if (overflow === 'reject') {
          throw new UplinkError(
            'OUTBOX_FULL',
            `outbox is full (${count()} messages, ${bytes} bytes)`,
          )
        }
        while (count() + 1 > maxMessages || bytes + size > maxBytes) {
          const victim = oldest(input.priority)
          if (!victim) {
            throw new UplinkError(
              'OUTBOX_FULL',
              'outbox is full of alarms; telemetry never displaces an alarm',
            )
          }
          discard(victim, 'overflow')
        }
      }
      const entry: OutboxEntry = { ...input, id: nextId++, enqueuedAt: now }
      queues[entry.priority].set(entry.id, entry)
      bytes += size
      return entry
    },
    take(limit, now) {
      const batch: OutboxEntry[] = []
      for (const queue of [queues.alarm, queues.telemetry]) {
        for (const entry of queue.values()) {
          if (batch.length >= limit) return batch
          if (out.has(entry.id)) continue
          if (entry.expiresAt !== undefined && entry.expiresAt <= now) discard(entry, 'expired')
          else {
            out.add(entry.id)
            batch.push(entry)
          }
        }
      }
      return batch
    },
    ack(id) {
      for (const queue of [queues.alarm, queues.telemetry]) {
        const entry = queue.get(id)
        if (entry) return forget(queue, entry)
      }
    },
    release(ids) {
      for (const id of ids) out.delete(id)
    },
    head: () => queues.alarm.values().next().value ?? queues.telemetry.values().next().value,
    stats: (): OutboxStats => ({ messages: count(), bytes, dropped: { ...dropped } }),
    setListener(l) {
      listener = l
    },
    async close() {
      closed = true
    },
  }
}

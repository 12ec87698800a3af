import { UplinkError } from './errors.js'
// A cycle (options.ts builds the default memory outbox), harmless: both read each other only
// when called, never while the modules load.
import { resolveMemoryOutboxOptions } from './options.js'
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
 * which are out. A class, not a closure per method: a gateway may run one per device, and a
 * fleet-sized process thousands (bench/storm), where a dozen closures per outbox added up.
 */
class MemoryOutbox implements Outbox {
  /** Made on the first alarm: most devices of a fleet only ever send telemetry. */
  private alarm: Map<number, OutboxEntry> | undefined
  /**
   * Made by an enqueue and let go once empty, as is `out`: a connected device's outbox is empty
   * most of the time, and an empty Map and Set are some 300 B in a fleet-sized process.
   */
  private telemetry: Map<number, OutboxEntry> | undefined
  /** Handed out by `take`, not yet acknowledged or released. */
  private out: Set<number> | undefined
  /** Counters in fields, not a record: most outboxes never drop a message. */
  private overflowed = 0
  private expired = 0
  private listener: OutboxListener | undefined
  private nextId = 1
  private bytes = 0
  /** Of `bytes`, the alarms': what telemetry can never make room in. */
  private alarmBytes = 0
  private closed = false

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
    private readonly overflow: 'drop-oldest' | 'reject',
  ) {}

  private queue(priority: Priority): Map<number, OutboxEntry> {
    if (priority === 'telemetry') {
      this.telemetry ??= new Map()
      return this.telemetry
    }
    this.alarm ??= new Map()
    return this.alarm
  }

  /** Alarms first: they are sent before any telemetry. */
  private queues(): Array<Map<number, OutboxEntry>> {
    const { alarm, telemetry } = this
    if (!alarm) return telemetry ? [telemetry] : []
    return telemetry ? [alarm, telemetry] : [alarm]
  }

  private count(): number {
    return (this.alarm?.size ?? 0) + (this.telemetry?.size ?? 0)
  }

  private forget(queue: Map<number, OutboxEntry>, entry: OutboxEntry): void {
    queue.delete(entry.id)
    if (queue.size === 0) {
      if (queue === this.telemetry) this.telemetry = undefined
      else if (queue === this.alarm) this.alarm = undefined
    }
    const out = this.out
    if (out?.delete(entry.id) && out.size === 0) this.out = undefined
    const size = entrySize(entry)
    this.bytes -= size
    if (entry.priority === 'alarm') this.alarmBytes -= size
  }

  private discard(entry: OutboxEntry, reason: DropReason): void {
    this.forget(this.queue(entry.priority), entry)
    if (reason === 'overflow') this.overflowed++
    else this.expired++
    this.listener?.drop(entry, reason)
  }

  /** Telemetry goes first; only an arriving alarm may displace an older alarm. */
  private oldest(arriving: Priority): OutboxEntry | undefined {
    return (
      this.telemetry?.values().next().value ??
      (arriving === 'alarm' ? this.alarm?.values().next().value : undefined)
    )
  }

  async enqueue(input: OutboxInput, now: number): Promise<OutboxEntry> {
    if (this.closed) throw new UplinkError('OUTBOX_CLOSED', 'the outbox is closed')
    const { maxMessages, maxBytes } = this
    const size = entrySize(input)
    if (size > maxBytes)
      throw new UplinkError('OUTBOX_FULL', `message of ${size} bytes exceeds the outbox's maxBytes`)
    if (this.count() + 1 > maxMessages || this.bytes + size > maxBytes) {
      if (this.overflow === 'reject') {
        throw new UplinkError(
          'OUTBOX_FULL',
          `outbox is full (${this.count()} messages, ${this.bytes} bytes)`,
        )
      }
      // Telemetry that would not fit beside the alarms is refused before anything is dropped:
      // dropping the stored telemetry first, and refusing it anyway, lost both.
      const alarms = this.alarm?.size ?? 0
      if (
        input.priority === 'telemetry' &&
        (alarms + 1 > maxMessages || this.alarmBytes + size > maxBytes)
      ) {
        throw new UplinkError(
          'OUTBOX_FULL',
          'outbox is full of alarms; telemetry never displaces an alarm',
        )
      }
      while (this.count() + 1 > maxMessages || this.bytes + size > maxBytes) {
        this.discard(this.oldest(input.priority) as OutboxEntry, 'overflow')
      }
    }
    // A copy: the caller may reuse its buffer once publish() resolved, as with the SQLite outbox.
    const payload = Buffer.from(input.payload)
    const entry: OutboxEntry = { ...input, payload, id: this.nextId++, enqueuedAt: now }
    this.queue(entry.priority).set(entry.id, entry)
    this.bytes += size
    if (entry.priority === 'alarm') this.alarmBytes += size
    return entry
  }

  take(limit: number, now: number): OutboxEntry[] {
    const batch: OutboxEntry[] = []
    for (const queue of this.queues()) {
      for (const entry of queue.values()) {
        if (batch.length >= limit) return batch
        if (this.out?.has(entry.id)) continue
        if (entry.expiresAt !== undefined && entry.expiresAt <= now) this.discard(entry, 'expired')
        else {
          ;(this.out ??= new Set()).add(entry.id)
          batch.push(entry)
        }
      }
    }
    return batch
  }

  ack(id: number): void {
    for (const queue of this.queues()) {
      const entry = queue.get(id)
      if (entry) return this.forget(queue, entry)
    }
  }

  release(ids: Iterable<number>): void {
    const out = this.out
    if (!out) return
    for (const id of ids) out.delete(id)
    if (out.size === 0) this.out = undefined
  }

  head(): OutboxEntry | undefined {
    return this.alarm?.values().next().value ?? this.telemetry?.values().next().value
  }

  stats(): OutboxStats {
    const dropped = { overflow: this.overflowed, expired: this.expired }
    return { messages: this.count(), bytes: this.bytes, dropped }
  }

  setListener(listener: OutboxListener): void {
    this.listener = listener
  }

  async close(): Promise<void> {
    this.closed = true
  }
}

/** Throws INVALID_OPTIONS for a bad value or an unknown key, as the client's options do. */
export function memoryOutbox(options: MemoryOutboxOptions = {}): Outbox {
  const { maxMessages, maxBytes, overflow } = resolveMemoryOutboxOptions(options)
  return new MemoryOutbox(maxMessages, maxBytes, overflow)
}

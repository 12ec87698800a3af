import { onRejected } from './emitter.js'
import type { Qos } from './outbox.js'
import { topicMatches } from './topics.js'
import type { InboundMessage } from './transport.js'

/**
 * May be `async` (a `void` return takes a promise too): a rejection is reported as
 * `LISTENER_ERROR`, like a throw.
 */
export type MessageHandler = (topic: string, payload: Buffer, message: InboundMessage) => void

interface Subscription {
  qos: Qos
  handlers: Set<MessageHandler>
}

/**
 * What the device wants to receive. Kept by Uplink, not by the broker, because the secondary
 * region has no session state: every connect without a session sends `all()` again.
 */
export class Subscriptions {
  /** Made on the first subscription: most devices of a fleet only publish. */
  private entries: Map<string, Subscription> | undefined

  /** Returns true when the broker needs a SUBSCRIBE (a new filter, or a higher QoS). */
  add(filter: string, qos: Qos, handler?: MessageHandler): boolean {
    const entries = (this.entries ??= new Map())
    const existing = entries.get(filter)
    if (existing) {
      if (handler) existing.handlers.add(handler)
      if (qos <= existing.qos) return false
      existing.qos = qos
      return true
    }
    entries.set(filter, { qos, handlers: new Set(handler ? [handler] : []) })
    return true
  }

  /** Returns true when the filter is gone and the broker needs an UNSUBSCRIBE. */
  remove(filter: string, handler?: MessageHandler): boolean {
    const existing = this.entries?.get(filter)
    if (!existing) return false
    if (handler) {
      // A handler never added to this filter leaves it as it is: removing it was no request to
      // drop a subscription made without one.
      if (!existing.handlers.delete(handler) || existing.handlers.size > 0) return false
    }
    this.entries?.delete(filter)
    return true
  }

  all(): Array<{ topic: string; qos: Qos }> {
    return [...(this.entries ?? [])].map(([topic, s]) => ({ topic, qos: s.qos }))
  }

  get size(): number {
    return this.entries?.size ?? 0
  }

  /** Whether a filter is held at QoS 2: only then can a QoS 2 message come in. */
  get anyQos2(): boolean {
    for (const s of this.entries?.values() ?? []) if (s.qos === 2) return true
    return false
  }

  /**
   * Calls every handler whose filter matched when the message arrived; a throwing handler is
   * reported, not fatal. The handlers are taken first: a handler that subscribed another (or
   * another filter) heard the very message it was handling, from a live Map and Set.
   */
  dispatch(message: InboundMessage, onError: (err: unknown) => void): void {
    if (!this.entries) return
    const due: MessageHandler[] = []
    for (const [filter, s] of this.entries)
      if (topicMatches(filter, message.topic)) for (const handler of s.handlers) due.push(handler)
    for (const handler of due) {
      try {
        onRejected(handler(message.topic, message.payload, message), onError)
      } catch (err) {
        onError(err)
      }
    }
  }
}

import type { Qos } from './outbox.js'

/** The most brokers remembered; one forgotten is treated as unknown (everything sent again). */
const MAX_BROKERS = 8
/** The most dropped filters remembered for sessions this process never saw. */
const MAX_REMOVED = 1_000

export interface FilterPlan {
  subscribe: string[]
  unsubscribe: string[]
}

/**
 * What each broker holds of this client's filters, as far as this process knows: the filters it
 * acknowledged (SUBACK) and has not since unsubscribed, by broker (endpoint and address, so that
 * one name moved to another region by DNS is two brokers). A broker that kept the session only
 * knows what it was told: a device that subscribed and unsubscribed while on another broker
 * brings those changes back with it, and a session this process never saw (a restart, a
 * forgotten broker) is told everything again. Pure bookkeeping; the client sends.
 */
export class BrokerFilters {
  private readonly held = new Map<string, Map<string, Qos>>()
  /** Filters unsubscribed in this process and not subscribed again, for unknown sessions. */
  private readonly removed = new Set<string>()

  /**
   * What to send on a new connection to `broker`: every wanted filter it does not hold at its
   * QoS, and every filter it holds (or, unknown, may hold) that is no longer wanted.
   */
  plan(
    broker: string,
    sessionPresent: boolean,
    wanted: ReadonlyArray<{ topic: string; qos: Qos }>,
  ): FilterPlan {
    const held = sessionPresent ? this.recent(broker) : this.fresh(broker)
    const subscribe = wanted
      .filter((w) => held === undefined || (held.get(w.topic) ?? -1) < w.qos)
      .map((w) => w.topic)
    const keep = new Set(wanted.map((w) => w.topic))
    const stale = held === undefined ? [...this.removed] : [...held.keys()]
    return { subscribe, unsubscribe: stale.filter((f) => !keep.has(f)) }
  }

  /** `broker` acknowledged these filters at these QoS. */
  subscribed(broker: string, filters: ReadonlyArray<{ topic: string; qos: Qos }>): void {
    const held = this.recent(broker) ?? this.fresh(broker)
    for (const f of filters) {
      held.set(f.topic, f.qos)
      this.removed.delete(f.topic)
    }
  }

  /** The application dropped `filter`: wherever it is held, it is to go. */
  dropped(filter: string): void {
    this.removed.delete(filter)
    this.removed.add(filter)
    if (this.removed.size > MAX_REMOVED)
      this.removed.delete(this.removed.values().next().value as string)
  }

  /** What `broker` holds, marked as the most recently used; undefined if unknown. */
  private recent(broker: string): Map<string, Qos> | undefined {
    const held = this.held.get(broker)
    if (held) {
      this.held.delete(broker)
      this.held.set(broker, held)
    }
    return held
  }

  /** `broker` holds nothing of ours (a new session); the least recently used beyond the bound go. */
  private fresh(broker: string): Map<string, Qos> {
    const held = new Map<string, Qos>()
    this.held.delete(broker)
    this.held.set(broker, held)
    if (this.held.size > MAX_BROKERS) this.held.delete(this.held.keys().next().value as string)
    return held
  }

  /** `broker` acknowledged the UNSUBSCRIBE of these filters. */
  unsubscribed(broker: string, filters: readonly string[]): void {
    const held = this.held.get(broker)
    for (const f of filters) held?.delete(f)
  }
}

import type { Qos } from './outbox.js'
import { Qos2Inbox } from './qos2-inbox.js'

/** The most brokers remembered; one forgotten is treated as unknown (everything sent again). */
const MAX_BROKERS = 8
/** The most dropped filters remembered for sessions this process never saw. */
const MAX_REMOVED = 1_000

export interface FilterPlan {
  subscribe: string[]
  unsubscribe: string[]
}

/** What one broker's session holds of this client. */
interface BrokerSession {
  /**
   * The filters it acknowledged (SUBACK) and has not since unsubscribed, at their QoS; undefined
   * while unknown (a session kept from before this process).
   */
  filters?: Map<string, Qos>
  /** Inbound QoS 2 messages it is to release (PUBREL); made for the first QoS 2 subscription. */
  inbox?: Qos2Inbox
}

/**
 * What each broker's session holds of this client, as far as this process knows, by broker
 * (endpoint and address, so that one name moved to another region by DNS is two brokers): the
 * filters it acknowledged, and the inbound QoS 2 messages between PUBREC and PUBREL. A broker
 * that kept the session only knows what it was told: a device that subscribed and unsubscribed
 * while on another broker brings those changes back with it, and a session this process never
 * saw (a restart, a forgotten broker) is told everything again. Bookkeeping only; the client
 * sends.
 */
export class BrokerSessions {
  private readonly sessions = new Map<string, BrokerSession>()
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
    const held = sessionPresent ? this.sessions.get(broker)?.filters : this.fresh(broker)
    const subscribe = wanted
      .filter((w) => held === undefined || (held.get(w.topic) ?? -1) < w.qos)
      .map((w) => w.topic)
    const keep = new Set(wanted.map((w) => w.topic))
    const stale = held === undefined ? [...this.removed] : [...held.keys()]
    return { subscribe, unsubscribe: stale.filter((f) => !keep.has(f)) }
  }

  /** `broker` acknowledged these filters at these QoS. */
  subscribed(broker: string, filters: ReadonlyArray<{ topic: string; qos: Qos }>): void {
    const session = this.session(broker)
    session.filters ??= new Map()
    for (const f of filters) {
      session.filters.set(f.topic, f.qos)
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

  /** The QoS 2 inbox of `broker`'s session, for a connection about to be made there. */
  inbox(broker: string): Qos2Inbox {
    const session = this.session(broker)
    session.inbox ??= new Qos2Inbox()
    return session.inbox.begin()
  }

  /** `broker`'s record, made if new, marked as the most recently used (the oldest beyond the bound go). */
  private session(broker: string): BrokerSession {
    let session = this.sessions.get(broker)
    if (session) this.sessions.delete(broker)
    else session = {}
    this.sessions.set(broker, session)
    if (this.sessions.size > MAX_BROKERS)
      this.sessions.delete(this.sessions.keys().next().value as string)
    return session
  }

  /**
   * `broker` holds nothing of ours (a new session). Its inbox forgets what earlier connections
   * received, and is not replaced: the connection that learnt of the new session was given it.
   */
  private fresh(broker: string): Map<string, Qos> {
    const session = this.session(broker)
    session.inbox?.forgetEarlier()
    session.filters = new Map()
    return session.filters
  }

  /** `broker` acknowledged the UNSUBSCRIBE of these filters. */
  unsubscribed(broker: string, filters: readonly string[]): void {
    const held = this.sessions.get(broker)?.filters
    for (const f of filters) held?.delete(f)
  }
}

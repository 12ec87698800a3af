import { inspect } from 'node:util'
import { BrokerSessions } from './broker-sessions.js'
import { within } from './clock.js'
import { ConciergePoller } from './concierge.js'
import type { Connect, Connection } from './connection.js'
import { type Directive, EpochFloor, parseDirective } from './directive.js'
import { clientResolver, type Resolver } from './dns.js'
import { Drainer, type DrainerHooks } from './drainer.js'
import { GuardedEmitter } from './emitter.js'
import { type Endpoint, parseEndpoint } from './endpoints.js'
import { toUplinkError, UplinkError } from './errors.js'
import type { UplinkEvents } from './events.js'
import {
  type PublishOptions,
  type ResolvedOptions,
  resolveOptions,
  resolvePublishOptions,
  resolveStopOptions,
  resolveSubscribeOptions,
  type UplinkOptions,
} from './options.js'
import type {
  DeliveryDropReason,
  DropReason,
  Outbox,
  OutboxEntry,
  OutboxListener,
  OutboxStats,
  Qos,
} from './outbox.js'
import type { Qos2Inbox } from './qos2-inbox.js'
import { type MessageHandler, Subscriptions } from './subscriptions.js'
import { type SessionHooks, Supervisor, type SupervisorStats } from './supervisor.js'
import { toPayload, validateFilter, validateTopic } from './topics.js'
import { openConnection } from './transport.js'

export interface UplinkStats extends SupervisorStats {
  /** The outbox's figures; `dropped` also counts what the drainer set aside. */
  outbox: Omit<OutboxStats, 'dropped'> & {
    dropped: Record<DropReason | DeliveryDropReason, number>
  }
  inFlight: number
  subscriptions: number
}

/**
 * The public facade. It validates input, owns the outbox, the subscriptions and the drainer, and
 * leaves every decision about connecting to the Supervisor.
 */
export class Uplink extends GuardedEmitter<UplinkEvents> {
  // Private fields (#), not TypeScript's `private`: they hold credentials and keys, and nothing
  // that util.inspect, JSON.stringify or a debugger's object view walks may show them.
  readonly #options: ResolvedOptions
  /** Errors found before the application could listen (a corrupt outbox moved aside). */
  #early: UplinkError[] | undefined = []
  private readonly outbox: Outbox
  private readonly subscriptions = new Subscriptions()
  /** What each broker holds of the filters; made when first needed: most devices only publish. */
  private sessions: BrokerSessions | undefined
  private readonly drainer: Drainer
  /**
   * What the client's parts call back: the supervisor (session hooks), the outbox and the
   * drainer (losses). One object with its methods on a prototype, where an object of closures
   * per part was some 400 B a client in a fleet-sized process. In the class body, so that it
   * reaches the client's private parts. Drainer errors only arise once connected, so after
   * start(), where report() emits at once as the drainer's own hook did.
   */
  static readonly #Hooks = class ClientHooks implements SessionHooks, OutboxListener, DrainerHooks {
    /** Only with a concierge: without one the supervisor has nothing to refresh. */
    beforeReconnect: (() => Promise<void>) | undefined
    refreshDueAt: (() => number) | undefined

    constructor(private readonly client: Uplink) {}

    established(connection: Connection): Promise<void> {
      return this.client.established(connection)
    }

    /** A lost and a retired connection both leave the drainer. */
    lost(connection: Connection): void {
      this.client.drainer.detach(connection)
    }

    retired(connection: Connection): void {
      this.client.drainer.detach(connection)
    }

    leaving(connection: Connection): Promise<void> {
      const client = this.client
      return client.sayOffline(connection, client.#options.failover.handoverTimeoutMs)
    }

    /** Only with a QoS 2 subscription: nothing else can bring a QoS 2 message in. */
    inbox(endpoint: Endpoint, address: string): Qos2Inbox | undefined {
      const client = this.client
      if (!client.subscriptions.anyQos2) return undefined
      return client.brokerSessions().inbox(brokerKey(endpoint.url, address))
    }

    drop(entry: OutboxEntry, reason: DropReason | DeliveryDropReason, error?: UplinkError): void {
      const client = this.client
      const { id, topic, priority } = entry
      if (!error) {
        client.emit('drop', { id, topic, priority, reason })
        return
      }
      const rc = error.details?.reasonCode
      const name = error.details?.reasonName
      client.emit('drop', {
        id,
        topic,
        priority,
        reason,
        error,
        ...(typeof rc === 'number' ? { reasonCode: rc, reasonName: String(name) } : {}),
      })
    }

    error(err: UplinkError): void {
      this.client.report(err)
    }
  }
  /**
   * Directive epochs below this are refused: one floor for the concierge and the control topic.
   * Only with either: most devices have neither.
   */
  private readonly epochs: EpochFloor | undefined
  readonly #supervisor: Supervisor
  readonly #concierge: ConciergePoller | undefined
  private started = false
  private stopped = false

  /** `resolver` and `connect` are the network seams; the real ones unless given. */
  constructor(input: UplinkOptions, resolver?: Resolver, connect: Connect = openConnection) {
    super()
    this.#options = resolveOptions(input)
    const o = this.#options
    this.outbox = o.outbox
    this.epochs = o.concierge || o.control ? new EpochFloor() : undefined
    const hooks = new Uplink.#Hooks(this)
    this.outbox.setListener(hooks)
    this.drainer = new Drainer(this.outbox, o.clock, o.inflightWindow, o.poisonAfter, hooks)
    this.#concierge =
      o.concierge &&
      new ConciergePoller(
        o.concierge,
        o.clock,
        o.random,
        {
          parse: (body, lastEpoch) => this.parseDirective(body, lastEpoch),
          directive: (d) => this.follow(d, 'concierge'),
          unchanged: (d) => this.#supervisor.recall(d.endpoint, 'concierge'),
          error: (err) => this.emit('error', err),
        },
        this.epochs as EpochFloor,
      )
    const concierge = this.#concierge
    if (concierge) {
      // Before reconnecting, a stale concierge answer is refreshed (bounded): the region may
      // have been failed over while the device was away. Unreachable: keep the current plan.
      hooks.beforeReconnect = () => concierge.refreshIfStale()
      hooks.refreshDueAt = () => concierge.staleAt()
    }
    this.#supervisor = new Supervisor(
      o,
      { resolver: resolver ?? clientResolver(o.dns), connect },
      hooks,
      this,
    )
    if (o.control) {
      const topic = o.control.topic
      this.subscriptions.add(topic, 1, (_t, payload) => this.onControl(payload))
    }
  }

  /**
   * Moves to `url` (or, without one, to the next configured endpoint), make-before-break: the
   * device stays where it is if the target cannot be reached. Manual moves skip flap damping.
   */
  async failover(url?: string): Promise<void> {
    if (this.stopped) throw new UplinkError('STOPPED', 'the client is stopped')
    const o = this.#options
    const target =
      url === undefined
        ? this.#supervisor.nextConfigured()
        : parseEndpoint(url, 'failover(url)', o.tls)
    this.#supervisor.requestMove(target, 'manual')
  }

  private onControl(payload: Buffer): void {
    try {
      const epochs = this.epochs as EpochFloor
      const directive = this.parseDirective(payload, epochs.value)
      epochs.raise(directive.epoch)
      this.follow(directive, 'control')
    } catch (err) {
      this.emit('error', toUplinkError(err, 'DIRECTIVE_INVALID', 'control message refused'))
    }
  }

  private parseDirective(raw: string | Uint8Array, lastEpoch: number | undefined): Directive {
    const { failover, tls } = this.#options
    const { allowedHosts, plaintext } = failover
    return parseDirective(raw, { allowedHosts, plaintext, lastEpoch, tls })
  }

  private follow(directive: Directive, reason: 'concierge' | 'control'): void {
    this.#supervisor.requestMove(directive.endpoint, reason)
  }

  /** Starts connecting in the background; resolves at once. Publishing works before and during. */
  async start(): Promise<void> {
    if (this.stopped) throw new UplinkError('STOPPED', 'a stopped client cannot be started again')
    this.started = true
    // What went wrong before the caller could listen is told now, when it can.
    const early = this.#early ?? []
    this.#early = undefined
    for (const err of early) this.emit('error', err)
    this.#supervisor.start()
    this.#concierge?.start()
  }

  /**
   * Stores the message in the outbox and resolves once it is stored (for the SQLite outbox: on
   * disk). It is sent in order when connected and removed only once the broker acknowledged it.
   */
  async publish(
    topic: string,
    payload: string | Uint8Array,
    options: PublishOptions = {},
  ): Promise<void> {
    if (this.stopped) throw new UplinkError('STOPPED', 'the client is stopped')
    validateTopic(topic)
    const bytes = toPayload(payload, this.#options.maxPayloadBytes)
    const { qos, retain, priority, ttlSeconds: ttl } = resolvePublishOptions(options)
    const now = this.#options.clock.now()
    await this.outbox.enqueue(
      {
        topic,
        payload: bytes,
        qos,
        retain,
        priority,
        expiresAt: ttl === undefined ? undefined : now + ttl * 1000,
      },
      now,
    )
    this.drainer.notify()
  }

  /**
   * Subscribes now if connected (resolving on SUBACK), otherwise on the next connect. The filter
   * is kept and sent again on every connect whose broker has no session for this device.
   */
  async subscribe(
    filter: string,
    handler?: MessageHandler,
    options: { qos?: Qos } = {},
  ): Promise<void> {
    if (this.stopped) throw new UplinkError('STOPPED', 'the client is stopped')
    validateFilter(filter)
    if (handler !== undefined && typeof handler !== 'function') {
      throw new UplinkError('INVALID_ARGUMENT', 'the message handler must be a function')
    }
    const { qos } = resolveSubscribeOptions(options)
    if (!this.subscriptions.add(filter, qos, handler)) return
    const connection = this.#supervisor.current
    if (connection) await this.sendSubscriptions(connection, [filter])
  }

  async unsubscribe(filter: string, handler?: MessageHandler): Promise<void> {
    if (this.stopped) throw new UplinkError('STOPPED', 'the client is stopped')
    validateFilter(filter)
    if (!this.subscriptions.remove(filter, handler)) return
    this.brokerSessions().dropped(filter)
    const connection = this.#supervisor.current
    // Offline, or not acknowledged: the next connection whose broker kept the session sends it.
    if (connection) await this.sendUnsubscribe(connection, [filter]).catch(() => {})
  }

  /**
   * Stops cleanly: stops sending new messages, waits up to `timeoutMs` for in-flight ones,
   * publishes presence offline, disconnects (so the will does not fire) and closes the outbox.
   */
  async stop(options: { timeoutMs?: number } = {}): Promise<void> {
    // Checked first: a bad argument is refused the same whether or not the client has stopped.
    const { timeoutMs } = resolveStopOptions(options)
    if (this.stopped) return
    this.stopped = true
    const { clock } = this.#options
    const connection = this.#supervisor.current
    this.#concierge?.stop()
    this.drainer.pause()
    if (connection) {
      await within(clock, timeoutMs, this.drainer.idle())
      await this.sayOffline(connection, timeoutMs)
      await connection.end(timeoutMs, clock)
    }
    await this.#supervisor.stop()
    await this.outbox
      .close()
      .catch((err) => this.emit('error', toUplinkError(err, 'OUTBOX_ERROR', 'closing the outbox')))
  }

  /**
   * Retained presence `offline` on a connection about to close cleanly (which discards the will):
   * at stop, and on the old broker after a planned move, so it does not keep saying `online` for
   * a device that is elsewhere. Bounded by `timeoutMs`; a failure only leaves it unsaid.
   */
  private async sayOffline(connection: Connection, timeoutMs: number): Promise<void> {
    const { clock, presence } = this.#options
    if (!presence || !connection.isOpen) return
    const offline = connection.publish(presence.topic, Buffer.from(presence.offline), {
      qos: presence.qos,
      retain: true,
    })
    await within(clock, timeoutMs, offline).catch(() => {})
  }

  /** An error from the outbox: held until start() while the application cannot listen yet. */
  private report(err: UplinkError): void {
    if (this.#early) this.#early.push(err)
    else this.emit('error', err)
  }

  /** What util.inspect, JSON.stringify and String() show: never options, keys or passwords. */
  [inspect.custom](): string {
    return `Uplink ${JSON.stringify(this.toJSON())}`
  }

  toJSON(): { clientId: string; state: string; endpoint: string } {
    const { state, endpoint } = this.#supervisor.stats()
    return { clientId: this.#options.clientId, state, endpoint }
  }

  override toString(): string {
    return `[Uplink ${this.#options.clientId}]`
  }

  stats(): UplinkStats {
    const outbox = this.outbox.stats()
    return {
      ...this.#supervisor.stats(),
      outbox: { ...outbox, dropped: { ...outbox.dropped, ...this.drainer.dropped } },
      inFlight: this.drainer.inFlightCount,
      subscriptions: this.subscriptions.size,
    }
  }

  get isStarted(): boolean {
    return this.started && !this.stopped
  }

  private async established(connection: Connection): Promise<void> {
    connection.onMessage((message) => {
      this.emit('message', message.topic, message.payload, message)
      this.subscriptions.dispatch(message, (err) =>
        this.reportError(
          new UplinkError('LISTENER_ERROR', `message handler for ${message.topic} threw`, {
            cause: err,
            details: { event: 'message' },
          }),
        ),
      )
    })
    const pending: Array<Promise<unknown>> = []
    if (this.subscriptions.size > 0 || this.sessions) {
      // A broker without our session (typically the other region) knows none of our filters;
      // one that kept it knows what it was told, which may be from before a move and back.
      const plan = this.brokerSessions().plan(
        brokerOf(connection),
        connection.sessionPresent,
        this.subscriptions.all(),
      )
      if (plan.unsubscribe.length) pending.push(this.sendUnsubscribe(connection, plan.unsubscribe))
      if (plan.subscribe.length) pending.push(this.sendSubscriptions(connection, plan.subscribe))
    }
    const presence = this.#options.presence
    if (presence) {
      pending.push(
        connection.publish(presence.topic, Buffer.from(presence.online), {
          qos: presence.qos,
          retain: true,
        }),
      )
    }
    this.drainer.attach(connection)
    await Promise.all(pending)
  }

  private async sendSubscriptions(connection: Connection, filters: string[]): Promise<void> {
    const wanted = this.subscriptions.all().filter((s) => filters.includes(s.topic))
    if (wanted.length === 0) return
    await connection.subscribe(wanted)
    this.brokerSessions().subscribed(brokerOf(connection), wanted)
  }

  private async sendUnsubscribe(connection: Connection, gone: string[]): Promise<void> {
    await connection.unsubscribe(gone)
    this.brokerSessions().unsubscribed(brokerOf(connection), gone)
  }

  private brokerSessions(): BrokerSessions {
    this.sessions ??= new BrokerSessions()
    return this.sessions
  }
}

/** A broker, for what it holds of a session: one name moved elsewhere by DNS is another. */
const brokerKey = (url: string, address: string) => `${url} ${address}`
const brokerOf = (connection: Connection) => brokerKey(connection.endpoint.url, connection.address)

/** Creates a client; options are validated here and a bad field throws INVALID_OPTIONS. */
export function createUplink(options: UplinkOptions): Uplink {
  return new Uplink(options)
}

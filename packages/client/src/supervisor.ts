import type { IStore } from 'mqtt'
import { AnswersSeen } from './answers-seen.js'
import { BackoffLadder } from './backoff.js'
import { within } from './clock.js'
import type { Connect, Connection, ConnectParams } from './connection.js'
import { RedirectPolicy } from './directive.js'
import type { Resolution, Resolver } from './dns.js'
import { watchDns } from './dns-watch.js'
import type { GuardedEmitter } from './emitter.js'
import { type Endpoint, EndpointPool } from './endpoints.js'
import { networkError, toUplinkError, UplinkError } from './errors.js'
import type { ConnectionState, DnsPartialEvent, FailoverReason, UplinkEvents } from './events.js'
import { DEFAULTS, type InformedBackoff, type ResolvedOptions } from './options.js'
import { retry } from './retry.js'

/** What the rest of the client does when a connection comes and goes. */
export interface SessionHooks {
  /** A new connection is up: restore subscriptions and presence, then start draining. */
  established(connection: Connection): Promise<void>
  /** The connection is gone; stop using it. */
  lost(connection: Connection): void
  /** A planned move retires this healthy connection: send nothing new on it; it ends cleanly. */
  retired(connection: Connection): void
  /** A planned move is leaving this still-open connection: last words (presence) before it ends. */
  leaving?(connection: Connection): Promise<void>
  /** Before an attempt to reconnect: a chance to refresh where to go (a stale concierge). */
  beforeReconnect?(): Promise<void>
  /** When beforeReconnect would next have something to refresh (the concierge answer goes stale). */
  refreshDueAt?(): number
  /** The session's QoS 2 inbox at this broker, for a connection about to be made there. */
  inbox?(endpoint: Endpoint, address: string): IStore | undefined
}

/** How the supervisor reaches the network: both injected, so its tests need no sockets. */
export interface Transport {
  /** Resolves a host afresh before every attempt (and for the DNS watch). */
  resolver: Resolver
  /** Opens one connection; `openConnection` (transport.ts) in the product. */
  connect: Connect
}

export interface SupervisorStats {
  state: ConnectionState
  endpoint: string
  address: string | undefined
  connectedSince: number | undefined
  attempts: number
  failovers: number
  lastError: UplinkError | undefined
  /** The latest resolution's missing family (undefined once an answer is whole again). */
  dnsPartial: DnsPartialEvent | undefined
}

/** A requested move, waiting for the loop to take it. */
interface Move {
  target: Endpoint
  reason: FailoverReason
  since: number
}

/**
 * The connection state machine and the only place that decides when to connect. It resolves the
 * current endpoint's name before every attempt (never a cached address), bounds each attempt,
 * backs off with jitter after failures, moves to the next endpoint after `failoverAfter`
 * consecutive failures, and resets the backoff only once a connection has stayed up `stableMs`.
 *
 * One loop owns the connection: offline it resolves, connects and backs off until a connection
 * is up; connected it waits for that connection to close or for a requested move to fall due.
 * A move (concierge, DNS watch, control message, manual) is a step of that loop and
 * make-before-break: the new connection is opened while the old one carries on; only once the
 * new CONNACK is in does the session move over and the old connection close cleanly after its
 * in-flight messages are acknowledged. A move that cannot connect leaves the device where it is
 * and is retried with backoff. Other callers only record requests and ring the loop's bell.
 */
export class Supervisor {
  private state: ConnectionState = 'idle'
  private readonly pool: EndpointPool
  /** Set by stop(): the reason every step under way is aborted with. */
  private stopped: UplinkError | undefined
  /**
   * Aborts the steps under way (lookups, attempts, waits for the concierge) when stop() comes.
   * Made when a step needs its signal and let go once connected, when none is under way: an
   * AbortSignal with its listener map is some 300 B, held by every connected device of a
   * fleet-sized process for nothing.
   */
  private controller: AbortController | undefined
  private readonly ladder: BackoffLadder
  /** Made on the first planned move: most devices never make one. */
  private moveLadder: BackoffLadder | undefined
  /** Made on the first redirect: most devices are never sent elsewhere. */
  private redirects: RedirectPolicy | undefined
  private loop: Promise<void> | undefined
  private connection: Connection | undefined
  private connectedSince: number | undefined
  private attempts = 0
  private failovers = 0
  private lastError: UplinkError | undefined
  /**
   * The last place the device was connected to, for failover events: two fields, not an object
   * replaced on every connect.
   */
  private previousEndpoint: string | undefined
  private previousAddress: string | undefined
  /** Why the next connection is somewhere new, when it is not a plain reconnect. */
  private nextReason: FailoverReason | undefined
  private move: Move | undefined
  /** Why the device is on the connection it holds (the reason it was adopted with). */
  private arrivedBy: FailoverReason | undefined
  /** A move is trying to reach its target (retrying while the old link lasts). */
  private migrating = false
  /** Ends the loop's current wait at once: a move was requested, or stop. */
  private bell: (() => void) | undefined
  /**
   * Connected with nothing to wait for but the connection's close or the bell, the loop parks:
   * it ends, and the close or the bell starts it again on this connection. A loop suspended in
   * an await for as long as a device is connected held its async function's frame, a promise,
   * a resolver and the await's reactions: some 700 B a device in a fleet-sized process.
   */
  private parked: Connection | undefined
  private readonly unpark = (): void => {
    const held = this.parked
    if (!held) return
    this.parked = undefined
    if (this.bell === this.unpark) this.bell = undefined
    // A microtask later, as a wait ends: whoever rang (stop(), requestMove()) goes on first.
    this.loop = Promise.resolve().then(() => this.run(held))
  }
  private stopWatch: (() => void) | undefined
  private dnsPartial: DnsPartialEvent | undefined
  /** The DNS answers of the current ladder's attempts, for informed backoff. */
  private readonly seen = new AnswersSeen()
  /** When beforeReconnect last ran: a concierge that cannot answer is not asked more often. */
  private refreshedAt = Number.NEGATIVE_INFINITY

  /** The transport's two parts, kept as fields: the object they came in is not kept. */
  private readonly resolver: Resolver
  private readonly connect: Connect

  constructor(
    private readonly options: ResolvedOptions,
    transport: Transport,
    private readonly hooks: SessionHooks,
    private readonly events: GuardedEmitter<UplinkEvents>,
  ) {
    this.resolver = transport.resolver
    this.connect = transport.connect
    this.pool = new EndpointPool(options.endpoints, options.failoverAfter)
    this.ladder = new BackoffLadder(options.backoff, options.random)
  }

  get current(): Connection | undefined {
    return this.connection?.isOpen ? this.connection : undefined
  }

  get stopping(): boolean {
    return this.stopped !== undefined
  }

  /** The signal of the steps under way; aborted from the start once stopped. */
  private get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController()
      if (this.stopped) this.controller.abort(this.stopped)
    }
    return this.controller.signal
  }

  /** Where the device is, or is trying to be. */
  get endpoint(): Endpoint {
    return this.current?.endpoint ?? this.pool.current()
  }

  /** The configured endpoint after the current one (for a manual failover without a target). */
  nextConfigured(): Endpoint {
    const list = this.pool.list()
    const i = list.findIndex((e) => e.url === this.endpoint.url)
    return list[(i + 1) % list.length] as Endpoint
  }

  start(): void {
    if (this.loop || this.stopping) return
    this.loop = this.run()
  }

  /** Ends the loop. The caller has already closed the connection cleanly if it wanted to. */
  async stop(): Promise<void> {
    this.stopped ??= new UplinkError('STOPPED', 'the client was stopped')
    this.controller?.abort(this.stopped)
    this.bell?.()
    this.stopWatch?.()
    this.connection?.destroy(new UplinkError('STOPPED', 'the client was stopped'))
    await this.loop
    this.setState('stopped')
  }

  stats(): SupervisorStats {
    return {
      state: this.state,
      endpoint: this.endpoint.url,
      address: this.current?.address,
      connectedSince: this.current ? this.connectedSince : undefined,
      attempts: this.attempts,
      failovers: this.failovers,
      lastError: this.lastError,
      dnsPartial: this.dnsPartial,
    }
  }

  /**
   * Asks to move to `target` (the same endpoint for `dns-changed`: a fresh resolution). Offline,
   * the next attempt goes there at once. Connected, the move is made before the old connection is
   * broken, and not before `minStayMs` on the current endpoint (flap damping).
   */
  requestMove(requested: Endpoint, reason: FailoverReason): void {
    if (this.stopping) return
    // A configured endpoint keeps its own certificates.
    const target = this.pool.list().find((e) => e.url === requested.url) ?? requested
    const here = this.current
    if (here && target.url === here.endpoint.url && reason !== 'dns-changed') return
    this.move = { target, reason, since: this.options.clock.now() }
    this.bell?.()
  }

  /**
   * A directive confirmed again (the concierge's unchanged answer): a device connected elsewhere
   * goes back to it, so one that fell back while the directive's endpoint was down returns once
   * it is up. Not over someone's explicit word since (a manual move, a control message, the
   * broker's redirect: those stand until the concierge says something new), nor while a move is
   * pending or under way (that would cut its backoff short). Offline, nothing: the endpoint
   * list's fallback decides, and a wait is not cut short by an answer that says nothing new.
   */
  recall(requested: Endpoint, reason: FailoverReason): void {
    if (!this.current || this.move || this.migrating) return
    const by = this.arrivedBy
    if (by === 'manual' || by === 'control' || by === 'server-redirect') return
    this.requestMove(requested, reason)
  }

  private setState(state: ConnectionState): void {
    if (state === this.state) return
    const previous = this.state
    this.state = state
    this.events.emit('state', { state, previous })
  }

  /**
   * The loop: reach a connection, hold it (moving when asked) until it is lost, recover. Started
   * again on `resumed`, the connection it parked on, when that closes or the bell rings.
   */
  private async run(resumed?: Connection): Promise<void> {
    const { clock } = this.options
    let lostAt = clock.now()
    let held = resumed
    // Caught here, not by a .catch() on the loop's promise: that is one more pending promise,
    // reaction and closure per device for as long as it runs.
    try {
      for (;;) {
        if (!held) {
          if (this.stopping) break
          const connection = await this.reach()
          if (!connection) break
          // Every step that used the signal has ended: the next step that needs one makes it.
          this.controller = undefined
          this.redirects?.reset()
          this.pool.succeeded()
          await this.adopt(connection, this.nextReason ?? 'connection-lost', lostAt)
          this.nextReason = undefined
          held = connection
        }
        // Connected: wait for the connection to close or for a requested move to fall due, and
        // make the move; `held` is the last connection, after moves. Nothing to wait for but
        // the close or the bell: park.
        while (held.isOpen && !this.stopping) {
          const wait = this.moveWait(held)
          if (wait === undefined) {
            this.park(held)
            return
          }
          if (wait === 0) {
            held = await this.migrate(held, this.move as Move)
            if (!this.stopping) this.controller = undefined
          } else await this.wait(wait, held.closed)
        }
        // Stopped while a move was handing over: the new connection came up after stop() closed
        // the old one, and nobody else would close it.
        if (this.stopped) held.destroy(this.stopped)
        const lost = held
        held = undefined
        lostAt = clock.now()
        this.stopWatch?.()
        this.hooks.lost(lost)
        if (this.stopping) break
        await this.recover(lost)
      }
    } catch (err) {
      // The loop handles its own failures; reaching here is a bug, reported rather than thrown.
      this.events.emit(
        'error',
        toUplinkError(err, 'CONNECT_FAILED', 'supervisor stopped unexpectedly'),
      )
    }
  }

  /** Ends the loop until `held` closes or the bell rings (unpark). */
  private park(held: Connection): void {
    this.parked = held
    this.bell = this.unpark
    // The run that parks has ended: its promise need not be kept.
    this.loop = PARKED
    held.onClose(this.unpark)
  }

  /** Offline: resolve, connect, back off, until a connection is up (undefined once stopped). */
  private async reach(): Promise<Connection | undefined> {
    while (!this.stopping) {
      // Before the refresh, which can wait for a concierge: the link is gone from here on.
      this.setState('resolving')
      await this.refreshBeforeAttempt()
      if (this.stopping) break
      this.aim()
      const endpoint = this.pool.current()
      try {
        this.setState('resolving')
        const { addresses, news } = await this.addresses(endpoint, this.seen)
        if (news && (await this.spreadArrival())) continue
        this.setState('connecting')
        return await this.dial(endpoint, addresses)
      } catch (err) {
        if (this.stopping) break
        const error = toUplinkError(err, 'CONNECT_FAILED')
        if (!this.followRedirect(error)) await this.backOff(error)
      }
    }
    return undefined
  }

  /** A move requested while offline: the next attempt goes there. */
  private aim(): void {
    const move = this.move
    if (!move) return
    this.move = undefined
    this.pool.moveTo(move.target)
    this.nextReason = move.reason
  }

  /** Until the pending move is due: 0 now, undefined when there is none. */
  private moveWait(connection: Connection): number | undefined {
    const move = this.move
    if (!move) return undefined
    if (connection.endpoint.url === move.target.url && move.reason !== 'dns-changed') {
      this.move = undefined
      return undefined
    }
    const { clock, failover } = this.options
    const due = move.reason === 'manual' ? 0 : (this.connectedSince ?? 0) + failover.minStayMs
    return Math.max(0, due - clock.now())
  }

  /** The connection is gone: say so, then follow a redirect or wait as the ladder says. */
  private async recover(lost: Connection): Promise<void> {
    const reason = lost.closedBy as UplinkError
    this.events.emit('disconnect', {
      endpoint: lost.endpoint.url,
      address: lost.address,
      error: reason,
    })
    if (this.followRedirect(reason)) return
    const now = this.options.clock.now()
    if (now - (this.connectedSince ?? now) >= this.options.backoff.stableMs) {
      // A connection that stayed up earns a fresh start: reconnect at once, or, with informed
      // backoff, within its arrival spread: a broker or load balancer that drops a fleet drops
      // it at one instant, and a fleet that reconnects at one instant is a stampede.
      this.lastError = reason
      this.freshLadder()
      const delayMs = this.spread()
      this.events.emit('reconnecting', {
        attempt: 0,
        delayMs,
        endpoint: this.pool.current().url,
        error: reason,
      })
      if (delayMs > 0) {
        this.setState('backing-off')
        await this.wait(delayMs)
      }
    } else {
      // It did not stay up for stableMs: keep climbing the ladder, so a broker that accepts
      // and then drops does not cause a tight loop.
      await this.backOff(reason)
    }
  }

  private async backOff(error: UplinkError): Promise<void> {
    this.lastError = error
    if (this.pool.failed()) this.nextReason = 'connection-lost'
    const delayMs = this.ladder.next()
    const endpoint = this.pool.current().url
    this.events.emit('reconnecting', { attempt: this.ladder.failures, delayMs, endpoint, error })
    this.setState('backing-off')
    // A move asked for during the wait ends it (the bell); one asked for before waits its turn,
    // so that a fleet told where to go while connecting does not retry in a burst.
    const informed = this.options.backoff.informed
    if (!informed) await this.wait(delayMs)
    else if (await this.waitInformed(delayMs, informed)) this.freshLadder()
  }

  /**
   * An attempt of a climbing ladder found a new address in its own answer (the record moved
   * while it waited): it goes there after a random 0..spreadMs, as a probe's news does. At the
   * moment a health check flips DNS, a large fleet's ladders are each a few seconds long, so
   * their own attempts alone would bring it to the new broker at fleet / few seconds, above what
   * a broker accepts; the spread is what bounds that rate, however the news was learnt. True
   * when a move asked for during the spread must be taken up first.
   */
  private async spreadArrival(): Promise<boolean> {
    if (!this.options.backoff.informed) return false
    const pending = this.move
    const delayMs = this.spread()
    if (delayMs > 0) {
      this.setState('backing-off')
      await this.wait(delayMs)
    }
    this.freshLadder()
    return this.stopping || this.move !== pending
  }

  /** A draw of informed backoff's arrival spread, 0..spreadMs; 0 without informed backoff. */
  private spread(): number {
    const informed = this.options.backoff.informed
    return informed ? Math.floor(this.options.random() * informed.spreadMs) : 0
  }

  /** A fresh start: the next failure waits as the first one did, and every address is new. */
  private freshLadder(): void {
    this.ladder.reset()
    this.seen.forget()
  }

  /**
   * The ladder's wait, informed: at each point where an attempt could have become worth making
   * (the endpoint's DNS answer has run out, the concierge's has gone stale), look, cheaply. An
   * answer that names an address no attempt of this ladder was given, or a move to another
   * endpoint, ends the wait after a random 0..spreadMs (so that a fleet that learns at one
   * instant does not arrive at one instant); anything else lets the ladder run. True when the
   * wait ended on such news: the attempt after it starts a fresh ladder. A manual move ends the
   * wait at once, as without informed backoff.
   */
  private async waitInformed(delayMs: number, informed: InformedBackoff): Promise<boolean> {
    const { clock } = this.options
    const floor = informed.minProbeIntervalMs
    const end = clock.now() + delayMs
    const pending = this.move
    // Each round waits until the next probe is due, at least `floor` after the last: bounded.
    for (;;) {
      const until = Math.min(end, this.probeDueAt(floor))
      await this.wait(Math.max(0, until - clock.now()))
      if (this.stopping || this.move !== pending) break
      if (until >= end) return false
      const news = await this.probe(floor)
      if (this.stopping || this.move !== pending) break
      if (news) break
    }
    if (this.stopping || this.move?.reason === 'manual') return false
    await this.wait(Math.min(this.spread(), Math.max(0, end - clock.now())))
    return !this.stopping
  }

  /** When the next look is due: the earlier of the DNS answer's expiry and the concierge's. */
  private probeDueAt(floor: number): number {
    const dns = this.seen.dueAt(this.pool.current().host, floor) ?? Number.POSITIVE_INFINITY
    return Math.min(dns, this.refreshDueAt(floor))
  }

  private refreshDueAt(floor: number): number {
    const due = this.hooks.refreshDueAt?.()
    return due === undefined ? Number.POSITIVE_INFINITY : Math.max(due, this.refreshedAt + floor)
  }

  /**
   * One look while backing off: a stale concierge answer is refreshed (a new endpoint arrives as
   * a move), the endpoint re-resolved once its TTL has run out. True when DNS names a new
   * address. A failed lookup changes nothing: the next look is after the floor.
   */
  private async probe(floor: number): Promise<boolean> {
    const { clock } = this.options
    if (this.refreshDueAt(floor) <= clock.now()) await this.refresh()
    const host = this.pool.current().host
    if ((this.seen.dueAt(host, floor) ?? Number.POSITIVE_INFINITY) > clock.now()) return false
    try {
      const resolution = await this.resolve(host, this.signal)
      const addresses = resolution.addresses.map((a) => a.address)
      return this.seen.probed(host, addresses, resolution.ttl, clock.now())
    } catch {
      this.seen.unanswered(clock.now())
      return false
    }
  }

  /**
   * A stale concierge answer refreshed before an attempt, waited for only briefly
   * (DEFAULTS.conciergeAttemptWaitMs; a late answer still arrives, as a move), and not again
   * within the probes' floor of the last refresh: a concierge that cannot answer is not asked
   * before every attempt of a ladder.
   */
  private async refreshBeforeAttempt(): Promise<void> {
    if (!this.hooks.beforeReconnect) return
    const { clock, backoff } = this.options
    const due = this.hooks.refreshDueAt?.()
    const floor = backoff.informed?.minProbeIntervalMs ?? 0
    if (due !== undefined && Math.max(due, this.refreshedAt + floor) > clock.now()) return
    await within(clock, DEFAULTS.conciergeAttemptWaitMs, this.refresh())
  }

  /** beforeReconnect, never failing and never holding up stop(). */
  private async refresh(): Promise<void> {
    const hook = this.hooks.beforeReconnect
    if (!hook) return
    this.refreshedAt = this.options.clock.now()
    const signal = this.signal
    let onAbort = () => {}
    const stopped = new Promise<void>((resolve) => {
      onAbort = resolve
      signal.addEventListener('abort', onAbort, { once: true })
    })
    try {
      await Promise.race([hook().catch(() => {}), stopped])
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }

  /** An MQTT 5 redirect moves the next attempt at once (a few in a row, see RedirectPolicy). */
  private followRedirect(error: UplinkError): boolean {
    let target: Endpoint | undefined
    try {
      target = this.redirectPolicy().target(error, this.endpoint)
    } catch (err) {
      this.events.emit('error', toUplinkError(err, 'DIRECTIVE_REFUSED'))
      return false
    }
    if (!target) return false
    // A redirect in CONNACK is a move too, even before any connection was up: the failover
    // event that follows must name where the device was sent from.
    const from = this.pool.current()
    const address = error.details?.address
    if (this.previousEndpoint !== from.url && typeof address === 'string') {
      this.previousEndpoint = from.url
      this.previousAddress = address
    }
    this.pool.moveTo(target)
    this.nextReason = 'server-redirect'
    return true
  }

  /**
   * Waits `ms` on the clock (undefined: no limit), until `closed` settles, or until the bell
   * rings. A plain callback cuts the wait short, not AbortSignal.any over a fresh controller: in
   * a reconnect storm this runs once per attempt, and building those signals showed up.
   */
  private wait(ms: number | undefined, closed?: Promise<unknown>): Promise<void> {
    const { clock } = this.options
    return new Promise<void>((resolve) => {
      let timer: unknown
      const done = () => {
        clock.clearTimeout(timer)
        if (this.bell === done) this.bell = undefined
        resolve()
      }
      if (ms !== undefined) timer = clock.setTimeout(done, ms)
      this.bell = done
      closed?.then(done)
    })
  }

  /** Makes `connection` the current one: events, session restore, DNS watch. */
  private async adopt(
    connection: Connection,
    reason: FailoverReason,
    since: number,
  ): Promise<void> {
    // A reconnect to the endpoint it was on keeps the reason it came there for: a blip after a
    // manual move must not hand the device back to the concierge's standing answer.
    if (this.connection?.endpoint.url !== connection.endpoint.url) this.arrivedBy = reason
    this.connection = connection
    this.connectedSince = this.options.clock.now()
    this.setState('connected')
    this.announce(connection, reason, since)
    this.events.emit('connect', {
      endpoint: connection.endpoint.url,
      address: connection.address,
      sessionPresent: connection.sessionPresent,
    })
    this.watch(connection)
    try {
      await this.hooks.established(connection)
    } catch (err) {
      // Could not restore the session (e.g. a refused subscription): report it, keep the link.
      // A link lost meanwhile failed it too, and its `disconnect` says so.
      if (connection.isOpen)
        this.events.emit('error', toUplinkError(err, 'SUBSCRIBE_FAILED', 'restoring the session'))
    }
  }

  private watch(connection: Connection): void {
    this.stopWatch?.()
    this.stopWatch = undefined
    const w = this.options.dns.watch
    if (!w || connection.endpoint.host === connection.address) return
    const watcher = watchDns({
      host: connection.endpoint.host,
      address: connection.address,
      resolver: { resolve: (host, signal) => this.resolve(host, signal) },
      clock: this.options.clock,
      minIntervalMs: w.minIntervalMs,
      maxIntervalMs: w.maxIntervalMs,
      onMoved: () => this.requestMove(connection.endpoint, 'dns-changed'),
      onError: (error) => this.events.emit('error', error),
    })
    this.stopWatch = () => watcher.stop()
  }

  /**
   * The move step: opens the target while `old` carries on. Returns the connection to hold next:
   * the new one, or `old` when the target could not be reached (retried after a backoff).
   */
  private async migrate(old: Connection, move: Move): Promise<Connection> {
    const { clock } = this.options
    this.move = undefined
    // The waits between attempts end when the old link does, on a newer request (the bell) and
    // on stop(): the loop must take over then. An attempt under way runs on.
    const cut = new AbortController()
    const ring = () => cut.abort()
    this.bell = ring
    this.migrating = true
    // Every move climbs a ladder of its own: not at the cap one given up hours before reached.
    this.moveLadder?.reset()
    void old.closed.then(ring)
    let next: Connection
    try {
      next = await retry(
        async () => {
          this.setState('migrating')
          try {
            return await this.dial(move.target, (await this.addresses(move.target)).addresses)
          } catch (err) {
            // Still where it was: connected again before anyone hears of the failure.
            if (old.isOpen) this.setState('connected')
            if (!this.stopping) this.moveFailed(move, err)
            throw err
          }
        },
        {
          retries: Number.POSITIVE_INFINITY,
          clock,
          signal: cut.signal,
          delayMs: () => this.movesLadder().next(),
          shouldRetry: () => old.isOpen,
        },
      )
    } catch {
      this.migrating = false
      if (this.stopping) return old
      if (!old.isOpen) {
        // The old link died meanwhile: the reconnect that follows aims at the target.
        this.pool.moveTo(move.target)
        this.nextReason = move.reason
      }
      return old
    } finally {
      if (this.bell === ring) this.bell = undefined
    }
    const connackAt = clock.now()
    try {
      this.pool.moveTo(move.target)
      this.hooks.retired(old)
      // Before the new connection says `online`: where both are one cluster, that has the last
      // word.
      await this.hooks.leaving?.(old)
      if (this.stopping) {
        // stop() came during the last words: the new connection was never used, and goes
        // cleanly (a DISCONNECT, so its broker drops the will), not adopted and then destroyed.
        await next.end(this.options.failover.handoverTimeoutMs, clock)
        return old
      }
      // The failover's durationMs runs to the new CONNACK, not through the old link's last words.
      await this.adopt(next, move.reason, move.since + (clock.now() - connackAt))
    } finally {
      // Only once adopted: a confirmed directive during the handover would still find the old
      // connection current, and the reason it was reached for.
      this.migrating = false
    }
    // Only now does the old connection go: in-flight messages get their acks (bounded), then a
    // clean DISCONNECT, so the old broker does not publish the will.
    await old.end(this.options.failover.handoverTimeoutMs, clock)
    return next
  }

  private redirectPolicy(): RedirectPolicy {
    const { failover } = this.options
    this.redirects ??= new RedirectPolicy(failover, failover.maxRedirects)
    return this.redirects
  }

  private movesLadder(): BackoffLadder {
    this.moveLadder ??= new BackoffLadder(this.options.backoff, this.options.random)
    return this.moveLadder
  }

  /** A move could not connect: the device stays where it is, and says why. */
  private moveFailed(move: Move, err: unknown): void {
    const error = toUplinkError(err, 'FAILOVER_FAILED')
    this.events.emit(
      'error',
      new UplinkError(
        'FAILOVER_FAILED',
        `cannot move to ${move.target.url} (${move.reason}): ${error.message}`,
        { cause: error, details: { reason: move.reason, target: move.target.url } },
      ),
    )
  }

  /**
   * The endpoint's addresses, resolved afresh; DNS_NO_ADDRESS when there are none. `seen`
   * records them as given to an attempt (a name's, not a literal's: that never changes).
   */
  private async addresses(
    endpoint: Endpoint,
    seen?: AnswersSeen,
  ): Promise<{ addresses: string[]; news: boolean }> {
    const resolution = await this.resolve(endpoint.host, this.signal)
    if (resolution.fallbackReason) {
      this.events.emit('dns-fallback', { host: endpoint.host, error: resolution.fallbackReason })
    }
    if (resolution.addresses.length === 0) {
      throw networkError('DNS_NO_ADDRESS', `${endpoint.host} has no address`)
    }
    const addresses = resolution.addresses.map((a) => a.address)
    const news =
      resolution.source !== 'literal' &&
      seen?.attempted(endpoint.host, addresses, resolution.ttl, this.options.clock.now()) === true
    return { addresses, news }
  }

  /**
   * Races the addresses (Happy Eyeballs) and speaks MQTT over the first to connect. If that one
   * fails before its CONNACK (a port that accepts and drops), the rest are raced again; a
   * CONNACK refusal is the broker's answer, not the network's. An error without
   * `details.address` had no address connect at all: every one has been tried.
   */
  private dial(endpoint: Endpoint, addresses: string[]): Promise<Connection> {
    let remaining = addresses
    return retry(
      () => {
        this.attempts++
        // Built per attempt, not kept from the start: a device would hold it for its lifetime.
        return this.connect(
          connectParams(this.options, endpoint, remaining, this.hooks),
          this.signal,
        )
      },
      {
        retries: addresses.length - 1,
        clock: this.options.clock,
        signal: this.signal,
        shouldRetry: (err) => {
          if (!(err instanceof UplinkError) || err.code === 'CONNECT_REFUSED') return false
          const failed = err.details?.address
          const rest = remaining.filter((a) => a !== failed)
          if (typeof failed !== 'string' || rest.length === 0) return false
          remaining = rest
          return true
        },
      },
    )
  }

  /**
   * Every resolution goes through here, the DNS watch's too, so that a family missing from an
   * answer is reported wherever it was seen.
   */
  private async resolve(host: string, signal: AbortSignal | undefined): Promise<Resolution> {
    const resolution = await this.resolver.resolve(host, signal)
    const partial = resolution.partial
    this.dnsPartial = partial && { host, server: resolution.server, ...partial }
    if (this.dnsPartial) this.events.emit('dns-partial', this.dnsPartial)
    return resolution
  }

  /** Emits `failover` when the device came up somewhere other than where it was. */
  private announce(connection: Connection, reason: FailoverReason, since: number): void {
    const endpoint = connection.endpoint.url
    const address = connection.address
    const from = this.previousEndpoint
    const fromAddress = this.previousAddress
    this.previousEndpoint = endpoint
    this.previousAddress = address
    if (from === undefined || fromAddress === undefined) return
    if (from === endpoint && fromAddress === address) return
    this.failovers++
    this.events.emit('failover', {
      from,
      to: endpoint,
      fromAddress,
      toAddress: address,
      reason,
      durationMs: this.options.clock.now() - since,
    })
  }
}

/** The loop's promise while it is parked: settled, as a loop that has ended. */
const PARKED: Promise<void> = Promise.resolve()

/** An attempt's connect parameters: what every attempt shares, from the options, and where. */
function connectParams(
  o: ResolvedOptions,
  endpoint: Endpoint,
  addresses: string[],
  session: Pick<SessionHooks, 'inbox'>,
): ConnectParams {
  return {
    endpoint,
    addresses,
    session,
    attemptDelayMs: o.connectAttemptDelayMs,
    clientId: o.clientId,
    username: o.username,
    password: o.password,
    protocolVersion: o.protocolVersion,
    keepalive: o.keepalive,
    clean: o.session.clean,
    sessionExpirySeconds: o.session.expirySeconds,
    will: o.presence && {
      topic: o.presence.topic,
      payload: o.presence.offline,
      qos: o.presence.qos,
      retain: true,
    },
    connectTimeoutMs: o.connectTimeoutMs,
    clock: o.clock,
  }
}

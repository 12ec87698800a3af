import type { EventEmitter } from 'eventemitter3'
import { backoffDelay } from './backoff.js'
import { parseServerReference } from './directive.js'
import type { Resolver } from './dns.js'
import { watchDns } from './dns-watch.js'
import { type Endpoint, EndpointPool } from './endpoints.js'
import { toUplinkError, UplinkError } from './errors.js'
import type { ConnectionState, FailoverReason, UplinkEvents } from './events.js'
import type { ResolvedOptions } from './options.js'
import { type Connection, openConnection } from './transport.js'

/** What the rest of the client does when a connection comes and goes. */
export interface SessionHooks {
  /** A new connection is up: restore subscriptions and presence, then start draining. */
  established(connection: Connection): Promise<void>
  /** The connection is gone (or is being replaced); stop using it. */
  lost(connection: Connection): void
  /** Before an attempt to reconnect: a chance to refresh where to go (a stale concierge). */
  beforeReconnect?(): Promise<void>
}

export interface SupervisorStats {
  state: ConnectionState
  endpoint: string
  address: string | undefined
  connectedSince: number | undefined
  attempts: number
  failovers: number
  lastError: UplinkError | undefined
}

/**
 * The connection state machine and the only place that decides when to connect. It resolves the
 * current endpoint's name before every attempt (never a cached address), bounds each attempt,
 * backs off with jitter after failures, moves to the next endpoint after `failoverAfter`
 * consecutive failures, and resets the backoff only once a connection has stayed up `stableMs`.
 *
 * Planned moves (concierge, DNS watch, control message, manual) are make-before-break: the new
 * connection is opened while the old one carries on; only once the new CONNACK is in does the
 * session (subscriptions, presence, outbox drain) move over and the old connection close
 * cleanly after its in-flight messages are acknowledged. A move that cannot connect leaves the
 * device where it is and is retried with backoff.
 */
export class Supervisor {
  private state: ConnectionState = 'idle'
  private readonly pool: EndpointPool
  private readonly abort = new AbortController()
  private loop: Promise<void> | undefined
  private connection: Connection | undefined
  private connectedSince: number | undefined
  private attempts = 0
  private failovers = 0
  private lastError: UplinkError | undefined
  /** The last place the device was connected to, for failover events. */
  private previous: { endpoint: string; address: string } | undefined
  /** Why the next connection is somewhere new, when it is not a plain reconnect. */
  private nextReason: FailoverReason | undefined
  /** Ends the current backoff wait at once: a new target to try, or stop. */
  private wake: (() => void) | undefined
  private pendingMove: { target: Endpoint; reason: FailoverReason; since: number } | undefined
  private migration: Promise<void> | undefined
  private moveFailures = 0
  private moveTimer: unknown
  private stopWatch: (() => void) | undefined

  constructor(
    private readonly options: ResolvedOptions,
    private readonly resolver: Resolver,
    private readonly hooks: SessionHooks,
    private readonly events: EventEmitter<UplinkEvents>,
  ) {
    this.pool = new EndpointPool(options.endpoints, options.failoverAfter)
  }

  get current(): Connection | undefined {
    return this.connection?.isOpen ? this.connection : undefined
  }

  get stopping(): boolean {
    return this.abort.signal.aborted
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
    this.loop = this.run().catch((err) => {
      // The loop handles its own failures; reaching here is a bug, reported rather than thrown.
      this.events.emit(
        'error',
        toUplinkError(err, 'CONNECT_FAILED', 'supervisor stopped unexpectedly'),
      )
    })
  }

  /** Ends the loop. The caller has already closed the connection cleanly if it wanted to. */
  async stop(): Promise<void> {
    this.abort.abort(new UplinkError('STOPPED', 'the client was stopped'))
    this.wake?.()
    this.options.clock.clearTimeout(this.moveTimer)
    this.stopWatch?.()
    this.connection?.destroy(new UplinkError('STOPPED', 'the client was stopped'))
    await this.migration
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
    const connection = this.current
    if (!connection) {
      this.pool.moveTo(target)
      this.nextReason = reason
      this.wake?.()
      return
    }
    if (target.url === connection.endpoint.url && reason !== 'dns-changed') return
    const { clock } = this.options
    this.pendingMove = { target, reason, since: clock.now() }
    const stayed = clock.now() - (this.connectedSince ?? 0)
    const wait = this.options.failover.minStayMs - stayed
    clock.clearTimeout(this.moveTimer)
    if (wait > 0 && reason !== 'manual') {
      this.moveTimer = clock.setTimeout(() => this.startMigration(), wait)
      return
    }
    this.startMigration()
  }

  private startMigration(): void {
    if (this.migration || !this.pendingMove || this.stopping) return
    this.migration = this.migrate().finally(() => {
      this.migration = undefined
    })
  }

  private setState(state: ConnectionState): void {
    if (state === this.state) return
    const previous = this.state
    this.state = state
    this.events.emit('state', { state, previous })
  }

  private async run(): Promise<void> {
    const { clock, random, backoff } = this.options
    const signal = this.abort.signal
    let failures = 0
    let lastDelay = 0
    let lostAt = clock.now()
    let redirects = 0
    const backOff = async (error: UplinkError) => {
      this.lastError = error
      failures++
      if (this.pool.failed()) this.nextReason = 'connection-lost'
      lastDelay = backoffDelay(failures, backoff, random, lastDelay)
      const endpoint = this.pool.current().url
      this.events.emit('reconnecting', { attempt: failures, delayMs: lastDelay, endpoint, error })
      this.setState('backing-off')
      // A plain callback cuts the wait short, not AbortSignal.any over a fresh controller: in a
      // reconnect storm this runs once per attempt, and building those signals showed up.
      await new Promise<void>((resolve) => {
        const done = () => {
          clock.clearTimeout(timer)
          this.wake = undefined
          resolve()
        }
        const timer = clock.setTimeout(done, lastDelay)
        this.wake = done
      })
    }
    /** An MQTT 5 redirect moves the next attempt at once; a few in a row, then normal backoff. */
    const followRedirect = (error: UplinkError): boolean => {
      const reference = error.details?.serverReference
      if (typeof reference !== 'string' || redirects >= 3) return false
      try {
        const target = parseServerReference(
          reference,
          this.endpoint,
          this.options.failover.allowedHosts,
        )
        redirects++
        // A redirect in CONNACK is a move too, even before any connection was up: the failover
        // event that follows must name where the device was sent from.
        const from = this.pool.current()
        const address = error.details?.address
        if (this.previous?.endpoint !== from.url && typeof address === 'string') {
          this.previous = { endpoint: from.url, address }
        }
        this.pool.moveTo(target)
        this.nextReason = 'server-redirect'
        return true
      } catch (err) {
        this.events.emit('error', toUplinkError(err, 'DIRECTIVE_REFUSED'))
        return false
      }
    }

    while (!signal.aborted) {
      if (this.hooks.beforeReconnect) await this.hooks.beforeReconnect().catch(() => {})
      if (signal.aborted) break
      const endpoint = this.pool.current()
      let connection: Connection
      try {
        connection = await this.attempt(endpoint, signal, true)
      } catch (err) {
        if (signal.aborted) break
        const error = toUplinkError(err, 'CONNECT_FAILED')
        if (followRedirect(error)) continue
        await backOff(error)
        continue
      }

      redirects = 0
      this.pool.succeeded()
      await this.adopt(connection, this.nextReason ?? 'connection-lost', lostAt)
      this.nextReason = undefined

      const lost = await this.untilLost()
      connection = lost.connection
      const reason = lost.reason
      lostAt = clock.now()
      this.stopWatch?.()
      this.hooks.lost(connection)
      if (signal.aborted) break
      this.events.emit('disconnect', {
        endpoint: connection.endpoint.url,
        address: connection.address,
        error: reason,
      })
      if (followRedirect(reason)) continue
      if (lostAt - (this.connectedSince ?? lostAt) >= backoff.stableMs) {
        // A connection that stayed up earns a fresh start: reconnect at once.
        this.lastError = reason
        failures = 0
        lastDelay = 0
        this.events.emit('reconnecting', {
          attempt: 0,
          delayMs: 0,
          endpoint: this.pool.current().url,
          error: reason,
        })
      } else {
        // It did not stay up for stableMs: keep climbing the ladder, so a broker that accepts
        // and then drops does not cause a tight loop.
        await backOff(reason)
      }
    }
  }

  /** Makes `connection` the current one: events, session restore, DNS watch. */
  private async adopt(
    connection: Connection,
    reason: FailoverReason,
    since: number,
  ): Promise<void> {
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
      this.events.emit('error', toUplinkError(err, 'SUBSCRIBE_FAILED', 'restoring the session'))
    }
  }

  /** Waits until the current connection is lost; a connection replaced by a move is not a loss. */
  private async untilLost(): Promise<{ connection: Connection; reason: UplinkError }> {
    for (;;) {
      const connection = this.connection as Connection
      const reason = await connection.closed
      if (this.migration) await this.migration
      if (this.connection === connection || !this.connection) return { connection, reason }
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
      resolver: this.resolver,
      clock: this.options.clock,
      minIntervalMs: w.minIntervalMs,
      maxIntervalMs: w.maxIntervalMs,
      onMoved: () => this.requestMove(connection.endpoint, 'dns-changed'),
    })
    this.stopWatch = () => watcher.stop()
  }

  private async migrate(): Promise<void> {
    const { clock, random, backoff } = this.options
    const move = this.pendingMove
    const old = this.current
    this.pendingMove = undefined
    if (!move || !old) return
    this.setState('migrating')
    let next: Connection
    try {
      next = await this.attempt(move.target, this.abort.signal, false)
    } catch (err) {
      if (this.stopping) return
      const error = toUplinkError(err, 'FAILOVER_FAILED')
      this.events.emit(
        'error',
        new UplinkError(
          'FAILOVER_FAILED',
          `cannot move to ${move.target.url} (${move.reason}): ${error.message}`,
          {
            cause: error,
            details: { reason: move.reason, target: move.target.url },
          },
        ),
      )
      if (!old.isOpen) {
        // The old link died meanwhile: the reconnect loop takes over, aimed at the target.
        this.pool.moveTo(move.target)
        this.nextReason = move.reason
        return
      }
      this.setState('connected')
      this.moveFailures++
      this.pendingMove ??= move
      this.moveTimer = clock.setTimeout(
        () => this.startMigration(),
        backoffDelay(this.moveFailures, backoff, random),
      )
      return
    }
    this.moveFailures = 0
    this.pool.moveTo(move.target)
    this.hooks.lost(old)
    await this.adopt(next, move.reason, move.since)
    // Only now does the old connection go: in-flight messages get their acks (bounded), then a
    // clean DISCONNECT, so the old broker does not publish the will.
    await old.end(this.options.failover.handoverTimeoutMs, clock)
  }

  /** One attempt: resolve afresh, then try each address in turn until one accepts. */
  private async attempt(
    endpoint: Endpoint,
    signal: AbortSignal,
    report: boolean,
  ): Promise<Connection> {
    if (report) this.setState('resolving')
    const resolution = await this.resolver.resolve(endpoint.host, signal)
    if (resolution.fallbackReason) {
      this.events.emit('dns-fallback', { host: endpoint.host, error: resolution.fallbackReason })
    }
    if (resolution.addresses.length === 0) {
      throw new UplinkError('DNS_NO_ADDRESS', `${endpoint.host} has no address`)
    }
    if (report) this.setState('connecting')
    let lastError: unknown
    for (const { address } of resolution.addresses) {
      this.attempts++
      try {
        return await openConnection(this.connectParams(endpoint, address), signal)
      } catch (err) {
        lastError = err
        // A CONNACK refusal is the broker's answer, not the network's: another address won't differ.
        if (signal.aborted || (err instanceof UplinkError && err.code === 'CONNECT_REFUSED')) break
      }
    }
    throw lastError
  }

  private connectParams(endpoint: Endpoint, address: string) {
    const o = this.options
    return {
      endpoint,
      address,
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

  /** Emits `failover` when the device came up somewhere other than where it was. */
  private announce(connection: Connection, reason: FailoverReason, since: number): void {
    const here = { endpoint: connection.endpoint.url, address: connection.address }
    const before = this.previous
    this.previous = here
    if (!before || (before.endpoint === here.endpoint && before.address === here.address)) return
    this.failovers++
    this.events.emit('failover', {
      from: before.endpoint,
      to: here.endpoint,
      fromAddress: before.address,
      toAddress: here.address,
      reason,
      durationMs: this.options.clock.now() - since,
    })
  }
}

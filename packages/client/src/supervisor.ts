import type EventEmitter from 'eventemitter3'
import { backoffDelay } from './backoff.js'
import { sleep } from './clock.js'
import type { Resolver } from './dns.js'
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
    this.connection?.destroy(new UplinkError('STOPPED', 'the client was stopped'))
    await this.loop
    this.setState('stopped')
  }

  stats(): SupervisorStats {
    return {
      state: this.state,
      endpoint: (this.connection?.endpoint ?? this.pool.current()).url,
      address: this.current?.address,
      connectedSince: this.current ? this.connectedSince : undefined,
      attempts: this.attempts,
      failovers: this.failovers,
      lastError: this.lastError,
    }
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
    const backOff = async (error: UplinkError) => {
      this.lastError = error
      failures++
      this.pool.failed()
      lastDelay = backoffDelay(failures, backoff, random, lastDelay)
      const endpoint = this.pool.current().url
      this.events.emit('reconnecting', { attempt: failures, delayMs: lastDelay, endpoint, error })
      this.setState('backing-off')
      await sleep(clock, lastDelay, signal).catch(() => {})
    }

    while (!signal.aborted) {
      const endpoint = this.pool.current()
      let connection: Connection
      try {
        connection = await this.attempt(endpoint, signal)
      } catch (err) {
        if (signal.aborted) break
        await backOff(toUplinkError(err, 'CONNECT_FAILED'))
        continue
      }

      this.pool.succeeded()
      this.connection = connection
      this.connectedSince = clock.now()
      this.setState('connected')
      this.announce(connection, 'connection-lost', lostAt)
      this.events.emit('connect', {
        endpoint: endpoint.url,
        address: connection.address,
        sessionPresent: connection.sessionPresent,
      })
      try {
        await this.hooks.established(connection)
      } catch (err) {
        // Could not restore the session (e.g. a refused subscription): report it, keep the link.
        this.events.emit('error', toUplinkError(err, 'SUBSCRIBE_FAILED', 'restoring the session'))
      }

      const reason = await connection.closed
      lostAt = clock.now()
      this.hooks.lost(connection)
      if (signal.aborted) break
      this.events.emit('disconnect', {
        endpoint: endpoint.url,
        address: connection.address,
        error: reason,
      })
      if (lostAt - this.connectedSince >= backoff.stableMs) {
        // A connection that stayed up earns a fresh start: reconnect at once.
        this.lastError = reason
        failures = 0
        lastDelay = 0
        this.events.emit('reconnecting', {
          attempt: 0,
          delayMs: 0,
          endpoint: endpoint.url,
          error: reason,
        })
      } else {
        // It did not stay up for stableMs: keep climbing the ladder, so a broker that accepts
        // and then drops does not cause a tight loop.
        await backOff(reason)
      }
    }
  }

  /** One attempt: resolve afresh, then try each address in turn until one accepts. */
  private async attempt(endpoint: Endpoint, signal: AbortSignal): Promise<Connection> {
    this.setState('resolving')
    const resolution = await this.resolver.resolve(endpoint.host, signal)
    if (resolution.fallbackReason) {
      this.events.emit('dns-fallback', { host: endpoint.host, error: resolution.fallbackReason })
    }
    if (resolution.addresses.length === 0) {
      throw new UplinkError('DNS_NO_ADDRESS', `${endpoint.host} has no address`)
    }
    this.setState('connecting')
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

import type { IStore } from 'mqtt'
import type { Clock } from './clock.js'
import type { Endpoint } from './endpoints.js'
import type { UplinkError } from './errors.js'
import type { Qos } from './outbox.js'

/**
 * The seam between the connection logic and the network: the supervisor is handed a `Connect`
 * and sees only `Connection`s, so its state machine runs over a scripted transport in tests and
 * over MQTT.js (transport.ts) in the product.
 */

export interface WillMessage {
  topic: string
  payload: string
  qos: Qos
  retain: boolean
}

/** What every attempt shares: computed once from the options. */
export interface SessionParams {
  /** How long an attempt to one address runs alone before the next address is tried too. */
  attemptDelayMs: number
  clientId: string
  username?: string | undefined
  password?: string | Buffer | undefined
  protocolVersion: 4 | 5
  keepalive: number
  clean: boolean
  sessionExpirySeconds: number
  will?: WillMessage | undefined
  connectTimeoutMs: number
  clock: Clock
}

export interface ConnectParams extends SessionParams {
  endpoint: Endpoint
  /** Where the session keeps what outlives one connection at a broker (its QoS 2 inbox). */
  session?: { inbox?(endpoint: Endpoint, address: string): IStore | undefined } | undefined
  /**
   * The addresses resolved for this attempt, raced (Happy Eyeballs); the TLS name stays
   * `endpoint.host` whichever wins.
   */
  addresses: string[]
}

export interface InboundMessage {
  topic: string
  payload: Buffer
  qos: Qos
  retain: boolean
}

export interface OutboundOptions {
  qos: Qos
  retain: boolean
  /** When the message expires (ms since the epoch); on MQTT 5 it goes as an expiry interval. */
  expiresAt?: number | undefined
  /** The clock's time, with `expiresAt`: the interval sent is what is left of it now. */
  now?: number | undefined
}

/** One network connection to one resolved address, accepted by the broker. */
export interface Connection {
  readonly endpoint: Endpoint
  readonly address: string
  /** The reason the connection ended; resolves exactly once. */
  readonly closed: Promise<UplinkError>
  readonly sessionPresent: boolean
  readonly isOpen: boolean
  /** Why it closed; undefined while open. */
  readonly closedBy: UplinkError | undefined
  /**
   * Calls `listener` a microtask after the connection has closed (after now, if it has): for a
   * holder that only needs waking, without the promise and reaction `closed` costs. One listener
   * at a time; a later one replaces it.
   */
  onClose(listener: () => void): void
  onMessage(handler: (message: InboundMessage) => void): void
  /** Resolves on PUBACK (QoS 1), PUBCOMP (QoS 2) or once written (QoS 0). */
  publish(topic: string, payload: Uint8Array, options: OutboundOptions): Promise<void>
  /** `publish` with a callback, for the drainer's one call per message. */
  send(
    topic: string,
    payload: Uint8Array,
    options: OutboundOptions,
    done: (err?: UplinkError) => void,
  ): void
  subscribe(filters: Array<{ topic: string; qos: Qos }>): Promise<void>
  unsubscribe(topics: string[]): Promise<void>
  /** A clean disconnect after in-flight messages (bounded by `graceMs`); the will is discarded. */
  end(graceMs: number, clock: Clock): Promise<void>
  /** Drops the connection at once, as a dead link would (the will fires). */
  destroy(reason: UplinkError): void
}

/**
 * How a connection tells it has closed, for every Connection: `closed`, a promise made only when
 * asked for (a connection held by a parked supervisor asks through `onClose` instead: a
 * promise, its resolver and a reaction were some 250 B a device in a fleet-sized process),
 * and one close listener.
 */
export abstract class ConnectionClose {
  #reason: UplinkError | undefined
  #closed: Promise<UplinkError> | undefined
  #resolve: ((reason: UplinkError) => void) | undefined
  #listener: (() => void) | undefined

  /** The reason the connection ended; resolves exactly once. */
  get closed(): Promise<UplinkError> {
    if (!this.#closed) {
      const reason = this.#reason
      this.#closed = reason
        ? Promise.resolve(reason)
        : new Promise((resolve) => {
            this.#resolve = resolve
          })
    }
    return this.#closed
  }

  get isOpen(): boolean {
    return this.#reason === undefined
  }

  /** Why it closed; undefined while open. */
  get closedBy(): UplinkError | undefined {
    return this.#reason
  }

  onClose(listener: () => void): void {
    if (this.#reason) queueMicrotask(listener)
    else this.#listener = listener
  }

  /** Records the close and tells whoever waits; false when it had closed already. */
  protected settleClose(reason: UplinkError): boolean {
    if (this.#reason) return false
    this.#reason = reason
    this.#resolve?.(reason)
    this.#resolve = undefined
    const listener = this.#listener
    this.#listener = undefined
    if (listener) queueMicrotask(listener)
    return true
  }
}

/**
 * Opens one connection and resolves once the broker accepted it; rejects with an UplinkError.
 * An error after one address connected names it (`details.address`); one without had every
 * address fail.
 */
export type Connect = (params: ConnectParams, signal: AbortSignal) => Promise<Connection>

/** `publish` over `send`: one promise per call, for the callers that want one. */
export function publishBySend(
  connection: Pick<Connection, 'send'>,
  topic: string,
  payload: Uint8Array,
  options: OutboundOptions,
): Promise<void> {
  return new Promise((resolve, reject) =>
    connection.send(topic, payload, options, (err) => (err ? reject(err) : resolve())),
  )
}

import type { Clock } from '../../src/clock.js'
import {
  type Connect,
  type Connection,
  ConnectionClose,
  type ConnectParams,
  type InboundMessage,
  type OutboundOptions,
  publishBySend,
} from '../../src/connection.js'
import type { Resolution, Resolver } from '../../src/dns.js'
import type { Endpoint } from '../../src/endpoints.js'
import { UplinkError } from '../../src/errors.js'

/**
 * The supervisor's network seams, scripted: the test decides when each connection attempt is
 * accepted or fails and when each connection closes. Not a mock of MQTT.js or of sockets: the
 * supervisor is handed a `Connect` by design, and this is one.
 */

/** A broker-accepted connection that closes when the test (or the supervisor) says so. */
export class ScriptedConnection extends ConnectionClose implements Connection {
  readonly published: Array<{ topic: string; payload: Uint8Array; options: OutboundOptions }> = []
  /** How it was closed by the client: `end` (clean DISCONNECT) or `destroy`. */
  closedWith: 'end' | 'destroy' | 'remote' | undefined

  constructor(
    readonly endpoint: Endpoint,
    readonly address: string,
    readonly sessionPresent = false,
  ) {
    super()
  }

  /** The other side closes the link (a crash, a DISCONNECT, a keepalive timeout). */
  drop(reason = new UplinkError('CONNECTION_LOST', `${this.endpoint.url} went away`)): void {
    this.close(reason, 'remote')
  }

  onMessage(_handler: (message: InboundMessage) => void): void {}

  publish(topic: string, payload: Uint8Array, options: OutboundOptions): Promise<void> {
    return publishBySend(this, topic, payload, options)
  }

  send(
    topic: string,
    payload: Uint8Array,
    options: OutboundOptions,
    done: (err?: UplinkError) => void,
  ): void {
    if (this.closedBy) return done(this.closedBy)
    this.published.push({ topic, payload, options })
    done()
  }

  async subscribe(): Promise<void> {
    if (this.closedBy) throw this.closedBy
  }

  async unsubscribe(): Promise<void> {
    if (this.closedBy) throw this.closedBy
  }

  async end(_graceMs: number, _clock: Clock): Promise<void> {
    const reason = new UplinkError('CONNECTION_LOST', 'closed by the client', {
      details: { byClient: true },
    })
    this.close(reason, 'end')
  }

  destroy(reason: UplinkError): void {
    this.close(reason, 'destroy')
  }

  private close(reason: UplinkError, how: 'end' | 'destroy' | 'remote'): void {
    if (!this.settleClose(reason)) return
    this.closedWith = how
  }
}

/** One call of `connect`, pending until the test accepts or fails it. */
export class Attempt {
  settled = false
  private resolve!: (connection: Connection) => void
  private reject!: (reason: unknown) => void
  readonly result: Promise<Connection>

  constructor(
    readonly params: ConnectParams,
    readonly signal: AbortSignal,
  ) {
    this.result = new Promise((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
    const onAbort = () => this.fail(signal.reason)
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
  }

  get url(): string {
    return this.params.endpoint.url
  }

  /** The broker accepts: a CONNACK over the first address (or `address`). */
  accept(options: { address?: string; sessionPresent?: boolean } = {}): ScriptedConnection {
    const address = options.address ?? (this.params.addresses[0] as string)
    const connection = new ScriptedConnection(
      this.params.endpoint,
      address,
      options.sessionPresent ?? false,
    )
    this.settled = true
    this.resolve(connection)
    return connection
  }

  fail(error: unknown = new UplinkError('CONNECT_FAILED', `cannot connect to ${this.url}`)): void {
    if (this.settled) return
    this.settled = true
    this.reject(error)
  }
}

/** Hands out attempts in order; the test answers them. */
export class ScriptedTransport {
  readonly attempts: Attempt[] = []

  readonly connect: Connect = (params, signal) => {
    const attempt = new Attempt(params, signal)
    this.attempts.push(attempt)
    return attempt.result
  }

  /** The attempt waiting for an answer; throws when there is none, so a test cannot hang. */
  pending(): Attempt {
    const open = this.attempts.filter((a) => !a.settled)
    if (open.length !== 1) throw new Error(`${open.length} attempts pending, expected 1`)
    return open[0] as Attempt
  }

  get pendingCount(): number {
    return this.attempts.filter((a) => !a.settled).length
  }
}

/**
 * Answers every name with fixed addresses (default 10.0.0.1, TTL 30 s), or holds the answer
 * until the test releases it, or fails while `failing` is set; an aborted lookup rejects with
 * the signal's reason, as the real one does.
 */
export class ScriptedResolver implements Resolver {
  readonly asked: string[] = []
  /** While set, every lookup rejects with it. */
  failing: UplinkError | undefined
  private readonly answers = new Map<string, { addresses: string[]; ttl: number }>()
  private held: Array<() => void> | undefined

  answer(host: string, addresses: string[], ttl = 30): void {
    this.answers.set(host, { addresses, ttl })
  }

  /** Lookups from now on wait until `release()`. */
  hold(): void {
    this.held = []
  }

  release(): void {
    const waiting = this.held ?? []
    this.held = undefined
    for (const go of waiting) go()
  }

  resolve(host: string, signal?: AbortSignal): Promise<Resolution> {
    this.asked.push(host)
    if (this.failing) return Promise.reject(this.failing)
    const answer = (): Resolution => {
      const { addresses, ttl } = this.answers.get(host) ?? { addresses: ['10.0.0.1'], ttl: 30 }
      return {
        host,
        addresses: addresses.map((address) => ({ address, family: 4, ttl })),
        ttl,
        source: 'dns',
        server: 'scripted',
      }
    }
    const held = this.held
    if (!held) return Promise.resolve(answer())
    return new Promise((resolve, reject) => {
      signal?.addEventListener('abort', () => reject(signal.reason), { once: true })
      held.push(() => resolve(answer()))
    })
  }
}

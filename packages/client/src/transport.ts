/**
 * The only file that imports MQTT.js. One `Connection` is one network connection to one resolved
 * address: the supervisor makes a new one for every attempt, so reconnect policy, stores and
 * subscriptions stay Uplink's and MQTT.js only speaks the protocol (its own reconnect is off).
 */
import net from 'node:net'
import tls from 'node:tls'
import {
  type IClientOptions,
  type IClientPublishOptions,
  type IConnackPacket,
  MqttClient,
  type Packet,
} from 'mqtt'
import type { Clock } from './clock.js'
import type { Endpoint } from './endpoints.js'
import { UplinkError } from './errors.js'
import { keepaliveTimer } from './keepalive-timer.js'
import type { Qos } from './outbox.js'
import { isFailureCode, reasonName } from './reason-codes.js'

export interface WillMessage {
  topic: string
  payload: string
  qos: Qos
  retain: boolean
}

export interface ConnectParams {
  endpoint: Endpoint
  /** The address resolved for this attempt; the TLS name stays `endpoint.host`. */
  address: string
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

export interface InboundMessage {
  topic: string
  payload: Buffer
  qos: Qos
  retain: boolean
}

export interface OutboundOptions {
  qos: Qos
  retain: boolean
  /** MQTT 5 message expiry interval, seconds. */
  expirySeconds?: number | undefined
}

/** MQTT 5 reason codes that carry a Server Reference: "use another server", "server moved". */
export const REDIRECT_REASON_CODES: ReadonlySet<number> = new Set([0x9c, 0x9d])

const TCP_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'EADDRNOTAVAIL',
  'ECONNABORTED',
])

/** Bound on messages held for a handler not yet set (a session's backlog is bounded too). */
const MAX_EARLY_MESSAGES = 10_000

export class Connection {
  /** The reason the connection ended; resolves exactly once. */
  readonly closed: Promise<UplinkError>
  private closeReason: UplinkError | undefined
  private resolveClosed!: (reason: UplinkError) => void
  private messageHandler: ((message: InboundMessage) => void) | undefined
  /**
   * Messages that came before anyone listened: a broker resuming a session sends what it queued
   * right behind the CONNACK, in the same read, before the client has set its handler.
   */
  private early: InboundMessage[] = []

  constructor(
    private readonly client: MqttClient,
    readonly connack: IConnackPacket,
    readonly endpoint: Endpoint,
    readonly address: string,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve
    })
  }

  get sessionPresent(): boolean {
    return this.connack.sessionPresent
  }

  get isOpen(): boolean {
    return this.closeReason === undefined
  }

  /** Why it closed; undefined while open. */
  get closedBy(): UplinkError | undefined {
    return this.closeReason
  }

  onMessage(handler: (message: InboundMessage) => void): void {
    this.messageHandler = handler
    const early = this.early
    this.early = []
    for (const message of early) handler(message)
  }

  /** @internal called by the transport's event wiring */
  deliver(message: InboundMessage): void {
    if (this.messageHandler) this.messageHandler(message)
    else if (this.early.length < MAX_EARLY_MESSAGES) this.early.push(message)
  }

  /** @internal */
  markClosed(reason: UplinkError): void {
    if (this.closeReason) return
    this.closeReason = reason
    this.resolveClosed(reason)
    // Flush MQTT.js's stores so callbacks of unacknowledged publishes settle instead of leaking.
    this.client.end(true)
  }

  /** Resolves on PUBACK (QoS 1), PUBCOMP (QoS 2) or once written (QoS 0). */
  publish(topic: string, payload: Uint8Array, options: OutboundOptions): Promise<void> {
    return new Promise((resolve, reject) =>
      this.send(topic, payload, options, (err) => (err ? reject(err) : resolve())),
    )
  }

  /**
   * `publish` with a callback: the drainer's path, one call per message, where a promise and its
   * reaction per message were a measurable share of the drain (see bench/outbox).
   */
  send(
    topic: string,
    payload: Uint8Array,
    options: OutboundOptions,
    done: (err?: UplinkError) => void,
  ): void {
    if (!this.isOpen) return done(this.closeReason)
    const buffer = Buffer.isBuffer(payload)
      ? payload
      : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
    // No `properties` key unless there is one: MQTT.js copies every key of these options.
    const opts: IClientPublishOptions =
      options.expirySeconds === undefined
        ? { qos: options.qos, retain: options.retain }
        : {
            qos: options.qos,
            retain: options.retain,
            properties: { messageExpiryInterval: options.expirySeconds },
          }
    this.client.publish(topic, buffer, opts, (err) => {
      if (!err) return done()
      // A PUBACK, PUBREC or PUBCOMP with a failure reason code: the broker's answer for this
      // message, not a fault of the link. MQTT.js puts the reason code in `code`.
      const rc = (err as { code?: unknown }).code
      if (isFailureCode(rc)) {
        const name = reasonName(rc)
        return done(
          new UplinkError('PUBLISH_REFUSED', `broker refused a publish to ${topic}: ${name}`, {
            cause: err,
            details: { reasonCode: rc, reasonName: name },
          }),
        )
      }
      done(
        new UplinkError('PUBLISH_FAILED', `publish to ${topic} failed: ${err.message}`, {
          cause: err,
        }),
      )
    })
  }

  /** Resolves with the granted QoS per filter; a refused filter rejects SUBSCRIBE_FAILED. */
  subscribe(filters: Array<{ topic: string; qos: Qos }>): Promise<void> {
    const map = Object.fromEntries(filters.map((f) => [f.topic, { qos: f.qos }]))
    return new Promise((resolve, reject) => {
      if (!this.isOpen) return reject(this.closeReason)
      this.client.subscribe(map, (err, granted) => {
        if (err)
          return reject(
            new UplinkError('SUBSCRIBE_FAILED', `subscribe failed: ${err.message}`, { cause: err }),
          )
        const refused = (granted ?? []).filter((g) => g.qos === 128)
        if (refused.length > 0) {
          return reject(
            new UplinkError(
              'SUBSCRIBE_FAILED',
              `broker refused ${refused.map((g) => g.topic).join(', ')}`,
            ),
          )
        }
        resolve()
      })
    })
  }

  unsubscribe(topics: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.isOpen) return reject(this.closeReason)
      this.client.unsubscribe(topics, (err) => (err ? reject(err) : resolve()))
    })
  }

  /**
   * A clean disconnect (the broker discards the will): waits for in-flight QoS 1/2 messages up
   * to `graceMs`, then sends DISCONNECT; after that it forces the socket closed.
   */
  end(graceMs: number, clock: Clock): Promise<void> {
    if (!this.isOpen) return Promise.resolve()
    const ended = () =>
      this.markClosed(
        new UplinkError('CONNECTION_LOST', 'closed by the client', { details: { byClient: true } }),
      )
    return new Promise((resolve) => {
      const timer = clock.setTimeout(() => {
        ended()
        resolve()
      }, graceMs)
      this.client.end(false, {}, () => {
        clock.clearTimeout(timer)
        ended()
        resolve()
      })
    })
  }

  /** Drops the connection at once, as a dead link would (no DISCONNECT, so the will fires). */
  destroy(reason: UplinkError): void {
    if (!this.isOpen) return
    this.markClosed(reason)
  }
}

function openSocket(params: ConnectParams): net.Socket {
  const { endpoint, address } = params
  if (!endpoint.secure) return net.connect({ host: address, port: endpoint.port })
  const t = endpoint.tls ?? {}
  return tls.connect({
    host: address,
    port: endpoint.port,
    // The certificate is checked against the endpoint's name even though the socket goes to a
    // resolved address: SNI and identity check both use the host name (an IP endpoint has no SNI).
    servername: net.isIP(endpoint.host) ? undefined : endpoint.host,
    checkServerIdentity: (_host, cert) => tls.checkServerIdentity(endpoint.host, cert),
    ca: t.ca,
    cert: t.cert,
    key: t.key,
    passphrase: t.passphrase,
    ALPNProtocols: t.alpnProtocols,
    rejectUnauthorized: true,
  })
}

function classify(err: unknown, endpoint: Endpoint, address: string, secure: boolean): UplinkError {
  const where = `${endpoint.url} (${address})`
  if (err instanceof UplinkError) return err
  const e = err as (Error & { code?: string | number }) | undefined
  if (!e) return new UplinkError('CONNECT_FAILED', `connection to ${where} closed before CONNACK`)
  if (typeof e.code === 'string' && TCP_ERROR_CODES.has(e.code)) {
    return new UplinkError('CONNECT_FAILED', `cannot connect to ${where}: ${e.code}`, { cause: e })
  }
  if (secure && typeof e.code === 'string') {
    return new UplinkError('TLS_ERROR', `TLS to ${where} failed: ${e.message}`, {
      cause: e,
      details: { tlsCode: e.code },
    })
  }
  return new UplinkError('CONNECT_FAILED', `connection to ${where} failed: ${e.message}`, {
    cause: e,
  })
}

/**
 * Opens one connection and resolves once the broker accepted it. Rejects with an UplinkError:
 * CONNECT_TIMEOUT (no CONNACK within connectTimeoutMs), CONNECT_REFUSED (CONNACK with an error;
 * `details.reasonCode`, and `details.serverReference` for an MQTT 5 redirect), TLS_ERROR or
 * CONNECT_FAILED.
 */
export function openConnection(params: ConnectParams, signal?: AbortSignal): Promise<Connection> {
  const { endpoint, address, clock } = params
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    let connection: Connection | undefined
    let lastError: unknown
    let lastConnack: IConnackPacket | undefined
    let keepaliveExpired = false
    let serverDisconnect: Packet | undefined

    const options: IClientOptions = {
      clientId: params.clientId,
      username: params.username,
      password: params.password as IClientOptions['password'],
      protocolVersion: params.protocolVersion,
      keepalive: params.keepalive,
      clean: params.clean,
      reconnectPeriod: 0,
      // Uplink's own timer bounds the attempt; MQTT.js's is a backstop only.
      connectTimeout: params.connectTimeoutMs * 2,
      resubscribe: false,
      queueQoSZero: false,
      timerVariant: keepaliveTimer(clock) as unknown as IClientOptions['timerVariant'],
      will: params.will && { ...params.will, payload: Buffer.from(params.will.payload) },
      properties:
        params.protocolVersion === 5
          ? { sessionExpiryInterval: params.sessionExpirySeconds }
          : undefined,
    }
    let socket: net.Socket | undefined
    const client = new MqttClient(() => {
      socket = openSocket(params)
      socket.on('error', (err) => {
        lastError ??= err
      })
      return socket
    }, options)

    const original = client.onKeepaliveTimeout.bind(client)
    client.onKeepaliveTimeout = () => {
      keepaliveExpired = true
      original()
    }

    const settle = (fn: () => void) => {
      clock.clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      fn()
    }
    const fail = (reason: UplinkError) => {
      settle(() => reject(reason))
      client.end(true)
      socket?.destroy()
    }
    const timer = clock.setTimeout(() => {
      fail(
        new UplinkError(
          'CONNECT_TIMEOUT',
          `no CONNACK from ${endpoint.url} (${address}) within ${params.connectTimeoutMs} ms`,
        ),
      )
    }, params.connectTimeoutMs)
    const onAbort = () => fail(signal?.reason)
    signal?.addEventListener('abort', onAbort, { once: true })

    client.on('error', (err) => {
      lastError ??= err
    })
    // Only the CONNACK matters, and only until connected: not a listener call per PUBACK after.
    const onPacket = (packet: Packet) => {
      if (packet.cmd === 'connack') lastConnack = packet
    }
    client.on('packetreceive', onPacket)
    client.on('disconnect', (packet) => {
      serverDisconnect = packet
    })
    client.on('message', (topic, payload, packet) => {
      connection?.deliver({ topic, payload, qos: packet.qos, retain: packet.retain })
    })
    client.on('connect', (connack) => {
      client.removeListener('packetreceive', onPacket)
      connection = new Connection(client, connack, endpoint, address)
      lastError = undefined
      const c = connection
      settle(() => resolve(c))
    })
    client.on('close', () => {
      if (connection) {
        connection.markClosed(closeReason(lastError, keepaliveExpired, serverDisconnect, params))
        return
      }
      const rc = lastConnack && (lastConnack.reasonCode ?? lastConnack.returnCode)
      if (lastConnack && rc) {
        const serverReference = lastConnack.properties?.serverReference
        fail(
          new UplinkError(
            'CONNECT_REFUSED',
            `${endpoint.url} refused the connection (reason code ${rc})`,
            {
              details: { reasonCode: rc, address, ...(serverReference ? { serverReference } : {}) },
            },
          ),
        )
        return
      }
      fail(classify(lastError, endpoint, address, endpoint.secure))
    })
  })
}

function closeReason(
  lastError: unknown,
  keepaliveExpired: boolean,
  serverDisconnect: Packet | undefined,
  params: ConnectParams,
): UplinkError {
  const where = `${params.endpoint.url} (${params.address})`
  if (keepaliveExpired) {
    return new UplinkError(
      'KEEPALIVE_TIMEOUT',
      `no answer from ${where} within 1.5 x keepalive (${params.keepalive} s)`,
    )
  }
  if (serverDisconnect && serverDisconnect.cmd === 'disconnect') {
    const rc = serverDisconnect.reasonCode ?? 0
    const serverReference = serverDisconnect.properties?.serverReference
    return new UplinkError(
      'CONNECTION_LOST',
      `${where} disconnected the client (reason code ${rc})`,
      {
        details: {
          reasonCode: rc,
          address: params.address,
          ...(serverReference ? { serverReference } : {}),
        },
      },
    )
  }
  const e = lastError as (Error & { code?: string }) | undefined
  return new UplinkError(
    'CONNECTION_LOST',
    `connection to ${where} lost${e ? `: ${e.code ?? e.message}` : ''}`,
    {
      cause: e,
    },
  )
}

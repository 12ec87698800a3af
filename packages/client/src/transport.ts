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
import {
  type Connection,
  ConnectionClose,
  type ConnectParams,
  type InboundMessage,
  type OutboundOptions,
  publishBySend,
} from './connection.js'
import type { Endpoint } from './endpoints.js'
import { type ConnectFailureDetails, networkError, UplinkError, withoutStack } from './errors.js'
import { RaceError, race } from './happy-eyeballs.js'
import { keepaliveTimer } from './keepalive-timer.js'
import type { Qos } from './outbox.js'
import { isFailureCode, reasonName } from './reason-codes.js'
import { MAX_TTL_SECONDS } from './topics.js'

export type {
  Connect,
  Connection,
  ConnectParams,
  InboundMessage,
  OutboundOptions,
  WillMessage,
} from './connection.js'

/**
 * The MQTT 5 message expiry interval of a message queued until `now`: what is left of its time to
 * live, at least a second. Bounded as publish() bounds a TTL, for entries stored before it did:
 * MQTT.js refuses a packet whose expiry does not fit 32 bits, on every connection.
 */
export function expiryInterval(expiresAt: number, now: number): number {
  return Math.min(MAX_TTL_SECONDS, Math.max(1, Math.ceil((expiresAt - now) / 1000)))
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

/** MQTT's DISCONNECT, normal: the same two bytes in 3.1.1 and in 5 (reason code 0 omitted). */
const DISCONNECT = Buffer.from([0xe0, 0x00])

/** A Connection over MQTT.js. */
export class MqttConnection extends ConnectionClose implements Connection {
  private messageHandler: ((message: InboundMessage) => void) | undefined
  /**
   * Messages that came before anyone listened: a broker resuming a session sends what it queued
   * right behind the CONNACK, in the same read, before the client has set its handler.
   */
  private early: InboundMessage[] | undefined

  constructor(
    private readonly client: MqttClient,
    readonly connack: IConnackPacket,
    readonly endpoint: Endpoint,
    readonly address: string,
  ) {
    super()
  }

  get sessionPresent(): boolean {
    return this.connack.sessionPresent
  }

  onMessage(handler: (message: InboundMessage) => void): void {
    this.messageHandler = handler
    const early = this.early
    this.early = undefined
    for (const message of early ?? []) handler(message)
  }

  /** @internal called by the transport's event wiring */
  deliver(message: InboundMessage): void {
    if (this.messageHandler) this.messageHandler(message)
    else {
      // Made only when needed: most connections never receive before their handler is set.
      this.early ??= []
      if (this.early.length < MAX_EARLY_MESSAGES) this.early.push(message)
    }
  }

  /** @internal */
  markClosed(reason: UplinkError): void {
    if (!this.settleClose(reason)) return
    const client = this.client
    // A connection is one MqttClient that never connects again, so whatever it still holds is
    // settled now. MQTT.js keeps a persistent session's unacknowledged QoS 1/2 publishes for a
    // resend that never comes here (it flushes them only for a clean session): the presence
    // publish of a link lost before its PUBACK kept the session restore, and with it the whole
    // reconnect loop and stop(), waiting for ever.
    const outgoing = client.outgoing
    for (const id of Object.keys(outgoing)) {
      const entry = outgoing[Number(id)]
      delete outgoing[Number(id)]
      entry?.cb?.(reason)
    }
    for (const queued of client.queue.splice(0)) queued.cb?.(reason)
    client.end(true)
    // end(true) does nothing once a graceful end(false) has begun (end() below, waiting for
    // acknowledgements that did not come in its grace): the socket stayed open, sending
    // PINGREQs and keeping the process alive.
    client.stream?.destroy()
  }

  /** Resolves on PUBACK (QoS 1), PUBCOMP (QoS 2) or once written (QoS 0). */
  publish(topic: string, payload: Uint8Array, options: OutboundOptions): Promise<void> {
    return publishBySend(this, topic, payload, options)
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
    if (!this.isOpen) return done(this.closedBy)
    const buffer = Buffer.isBuffer(payload)
      ? payload
      : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
    // No `properties` key unless there is one: MQTT.js copies every key of these options.
    const { expiresAt } = options
    const opts: IClientPublishOptions =
      expiresAt === undefined || this.client.options.protocolVersion !== 5
        ? { qos: options.qos, retain: options.retain }
        : {
            qos: options.qos,
            retain: options.retain,
            properties: {
              messageExpiryInterval: expiryInterval(expiresAt, options.now ?? expiresAt),
            },
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
      if (!this.isOpen) return reject(this.closedBy)
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
      if (!this.isOpen) return reject(this.closedBy)
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
        // MQTT.js still waits for the acknowledgements before its DISCONNECT: say it here, so
        // that the broker discards the will of a client that is leaving, then close.
        if (this.client.stream?.writable) this.client.stream.write(DISCONNECT)
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

function openSocket(endpoint: Endpoint, address: string): net.Socket {
  // A literal address, so no lookup and no `autoSelectFamily`: Node's own Happy Eyeballs races
  // the addresses of its own lookup (the OS resolver, which may serve a stale cache), not the
  // list our resolver just read from the DNS servers, and it ends at TCP, not at TLS.
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

/**
 * One racer: resolves with the socket once TCP (and, for mqtts, TLS) is up, so that a TLS
 * listener that accepts TCP and then stalls loses to one that completes. Aborted, the socket is
 * destroyed: a loser leaves no connection behind on either side.
 */
function connectSocket(
  endpoint: Endpoint,
  address: string,
  signal: AbortSignal,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = openSocket(endpoint, address)
    let pending = true
    const end = (err: unknown) => {
      if (!pending) return
      pending = false
      signal.removeEventListener('abort', onAbort)
      socket.destroy()
      reject(err)
    }
    const onAbort = () => end(signal.reason)
    const onError = (err: Error) => end(err)
    const onClose = () => end(undefined)
    signal.addEventListener('abort', onAbort, { once: true })
    socket.on('error', onError)
    socket.once('close', onClose)
    socket.once(endpoint.secure ? 'secureConnect' : 'connect', () => {
      if (!pending) return
      pending = false
      signal.removeEventListener('abort', onAbort)
      // The winner outlives the race: its listeners must not keep the race's signal and this
      // closure alive for the connection's lifetime (an AbortSignal and its listener map per
      // device, in a fleet-sized process). An error listener stays until MQTT.js adds its own,
      // so that an error meanwhile is not thrown.
      socket.removeListener('error', onError)
      socket.removeListener('close', onClose)
      socket.on('error', ignore)
      resolve(socket)
    })
  })
}

/**
 * MQTT.js's client, remembering that its keepalive ran out (the close that follows says why).
 * An override on a prototype: wrapping the method on each client was a closure and a bound
 * function per connection.
 */
class KeepaliveAwareClient extends MqttClient {
  keepaliveExpired = false

  override onKeepaliveTimeout(): void {
    this.keepaliveExpired = true
    super.onKeepaliveTimeout()
  }
}

type StoreAndSend = (packet: Packet, cb: unknown, cbStorePut: () => void) => void
interface OutgoingStore {
  put(packet: Packet, cb: (err?: Error) => void): unknown
}
const mqttPrototype = MqttClient.prototype as unknown as { _storeAndSend?: StoreAndSend }
/**
 * Is MQTT.js's `_storeAndSend` the one this file replaces? Checked once, by name: a release that
 * renames or drops it keeps its own (slower, still correct) copy; outgoing-store.test.ts fails.
 */
export const storesPacketsUncopied = typeof mqttPrototype._storeAndSend === 'function'
if (storesPacketsUncopied) {
  /*
   * MQTT.js deep-copies every QoS 1/2 PUBLISH, payload and all, into its outgoing store before
   * writing it, so that the same client could resend it after reconnecting with a topic alias
   * gone. Uplink never reconnects a client (one per connection, reconnect off, `end(true)` on
   * close) and never sets a topic alias, and what it resends comes from its own outbox: the copy
   * was a payload's bytes and about a microsecond per message for nothing (bench/outbox). The
   * store keeps the packet itself, which its PUBACK bookkeeping still looks up.
   */
  const copying = mqttPrototype._storeAndSend as StoreAndSend
  ;(KeepaliveAwareClient.prototype as unknown as { _storeAndSend: StoreAndSend })._storeAndSend =
    function (this: MqttClient & { outgoingStore: OutgoingStore }, packet, cb, cbStorePut) {
      if (packet.cmd !== 'publish' || packet.properties?.topicAlias !== undefined) {
        return copying.call(this, packet, cb, cbStorePut)
      }
      this.outgoingStore.put(packet, (err) => {
        if (err) return (cb as ((e: Error) => void) | undefined)?.(err)
        cbStorePut()
        ;(this as unknown as { _writePacket(p: Packet, c: unknown): void })._writePacket(packet, cb)
      })
    }
}

/** Holds the winner's errors until MQTT.js listens (speak() records them for the failure). */
function ignore(): void {}

/** A failed attempt's error, from what the socket or MQTT.js said (no stack: see withoutStack). */
function classify(
  err: unknown,
  endpoint: Endpoint,
  address: string,
  details?: ConnectFailureDetails,
): UplinkError {
  if (err instanceof UplinkError) return err
  const where = `${endpoint.url} (${address})`
  return withoutStack(() => {
    const e = err as (Error & { code?: string | number }) | undefined
    if (!e) {
      return new UplinkError('CONNECT_FAILED', `connection to ${where} closed before CONNACK`, {
        details,
      })
    }
    if (typeof e.code === 'string' && TCP_ERROR_CODES.has(e.code)) {
      return new UplinkError('CONNECT_FAILED', `cannot connect to ${where}: ${e.code}`, {
        cause: e,
        details,
      })
    }
    if (endpoint.secure && typeof e.code === 'string') {
      return new UplinkError('TLS_ERROR', `TLS to ${where} failed: ${e.message}`, {
        cause: e,
        details: { ...details, tlsCode: e.code },
      })
    }
    return new UplinkError('CONNECT_FAILED', `connection to ${where} failed: ${e.message}`, {
      cause: e,
      details,
    })
  })
}

/**
 * Opens one connection and resolves once the broker accepted it. The addresses are raced
 * (Happy Eyeballs, see happy-eyeballs.ts) up to a connected socket; MQTT's CONNECT then goes
 * over the winner only, as a broker must not see the same client id connect twice. Rejects with
 * an UplinkError: CONNECT_TIMEOUT (nothing connected, or no CONNACK, within connectTimeoutMs for
 * the whole), CONNECT_REFUSED (CONNACK with an error; `details.reasonCode`, and
 * `details.serverReference` for an MQTT 5 redirect), TLS_ERROR or CONNECT_FAILED. An error after
 * an address won carries it as `details.address`; one without had every address fail.
 */
export function openConnection(params: ConnectParams, signal?: AbortSignal): Promise<Connection> {
  const { endpoint, addresses, clock } = params
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    // Dropped once connected: `fail` lives as long as the connection does (the socket's close
    // listener holds it), and must not keep the race's controller alive with it.
    let racing: AbortController | undefined = new AbortController()
    const racingSignal = racing.signal
    let done = false
    let winner: { address: string; socket: net.Socket; client: MqttClient } | undefined

    const settle = (fn: () => void) => {
      if (done) return
      done = true
      clock.clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      fn()
    }
    // Once settled the connection belongs to the caller: a late timer, abort or close must not
    // end it (the attempt timer used to close every healthy link after connectTimeoutMs).
    const fail = (reason: UplinkError) => {
      if (done) return
      settle(() => reject(reason))
      racing?.abort(reason)
      winner?.client.end(true)
      winner?.socket.destroy()
    }
    const succeed = (connection: Connection) =>
      settle(() => {
        racing = undefined
        resolve(connection)
      })
    const timer = clock.setTimeout(() => {
      const ms = params.connectTimeoutMs
      fail(
        winner
          ? networkError(
              'CONNECT_TIMEOUT',
              `no CONNACK from ${endpoint.url} (${winner.address}) within ${ms} ms`,
              { details: { address: winner.address } },
            )
          : networkError(
              'CONNECT_TIMEOUT',
              `no connection to ${endpoint.url} at ${addresses.join(', ')} within ${ms} ms`,
              { details: { addresses } },
            ),
      )
    }, params.connectTimeoutMs)
    const onAbort = () => fail(signal?.reason)
    signal?.addEventListener('abort', onAbort, { once: true })

    race(
      addresses,
      (address, s) => connectSocket(endpoint, address, s),
      (socket) => socket.destroy(),
      { clock, attemptDelayMs: params.attemptDelayMs, signal: racingSignal },
    ).then(
      ({ address, value: socket }) => {
        if (done) return socket.destroy()
        winner = { address, socket, client: speak(params, address, socket, succeed, fail) }
      },
      (err) => {
        if (done) return
        const failures = err instanceof RaceError ? err.failures : []
        const last = failures[failures.length - 1]
        const error = classify(last?.error, endpoint, last?.address ?? addresses.join(', '))
        fail(
          failures.length > 1
            ? networkError(error.code, `${error.message} (and ${failures.length - 1} more)`, {
                cause: error.cause,
                details: {
                  ...error.details,
                  failures: failures.map((f) => ({
                    address: f.address,
                    code: (f.error as { code?: unknown } | undefined)?.code,
                  })),
                },
              })
            : error,
        )
      },
    )
  })
}

/**
 * MQTT.js's logger, taken from the first client and handed to every later one. Left to itself
 * each MqttClient builds its own `debug('mqttjs:client')`, which asks whether stderr is a TTY
 * (a system call) and sets up colours: Uplink makes a client per connection, and in the storm
 * bench this was a tenth of what connecting cost. One shared instance logs as each would have
 * (DEBUG=mqttjs* still works).
 */
let mqttLog: IClientOptions['log']

/**
 * What a connection logs to while MQTT.js's namespace is off (as it is unless DEBUG names it).
 * MQTT.js logs a dozen lines a message; a disabled `debug` still asks its `enabled` getter
 * each time: 3 % of a drain's profile (bench/outbox). Decided per connection, so turning
 * DEBUG=mqttjs* or `debug.enable()` on takes effect from the next one.
 */
const quiet = (): void => {}

/**
 * MQTT.js's logger while its namespace is on, the login hidden: it logs every packet it writes
 * in full (`%O`), the CONNECT packet's password with them. Made once, like the logger.
 */
let loud: ((...args: unknown[]) => void) | undefined
function hidingLogin(log: NonNullable<IClientOptions['log']>): (...args: unknown[]) => void {
  loud ??= (...args) => log(...(args.map(withoutLogin) as Parameters<typeof log>))
  return loud
}

function withoutLogin(arg: unknown): unknown {
  if (typeof arg !== 'object' || arg === null || !('password' in arg)) return arg
  return arg.password === undefined ? arg : { ...arg, password: '[hidden]' }
}

/** MQTT over the socket that won the race: CONNECT, then CONNACK or the reason there was none. */
function speak(
  params: ConnectParams,
  address: string,
  socket: net.Socket,
  resolve: (connection: Connection) => void,
  fail: (reason: UplinkError) => void,
): MqttClient {
  const { endpoint, clock, keepalive } = params
  // Until connected: the attempt's callbacks. Dropped once it is, so that the client's listeners
  // (which live as long as the connection) do not keep the whole attempt alive: its timer, its
  // race, its closures and parameters, a kilobyte per connection in a fleet-sized process.
  let attempt: { resolve: typeof resolve; fail: typeof fail } | undefined = { resolve, fail }
  let connection: MqttConnection | undefined
  let lastError: unknown
  let lastConnack: IConnackPacket | undefined
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
    log: mqttLog,
    // MQTT.js's own switch for mqtt-packet's number cache: 65 536 two-byte Buffers, built on the
    // first packet a process writes, some 7 MiB of heap and 12 MiB of RSS for as long as it
    // runs, to save one two-byte allocation per packet number. A gateway sends a few packets a
    // second. The switch is process-wide (mqtt-packet has one), which the README says.
    writeCache: false,
    // Connected below, once `log` is the one to use: the CONNECT goes out inside connect().
    manualConnect: true,
  }
  // The session's, not this connection's: a PUBREL resent after a lost link finds its message.
  const inbox = params.session?.inbox?.(endpoint, address)
  if (inbox) options.incomingStore = inbox
  socket.on('error', (err) => {
    lastError ??= err
  })
  // This one holds the errors from now on: a third listener beside MQTT.js's would grow the
  // socket's listener array to 17 slots, for as long as the connection lasts.
  socket.removeListener('error', ignore)
  // The socket is already connected: MQTT.js takes it as its stream (reconnect is off, so it
  // never asks for a second one).
  const client = new KeepaliveAwareClient(() => socket, options)
  mqttLog ??= client.log
  client.log = (mqttLog as { enabled?: boolean }).enabled ? hidingLogin(mqttLog) : quiet
  client.connect()
  // Closed between winning and now: MQTT.js saw no 'close' to report.
  if (socket.destroyed) {
    queueMicrotask(() => attempt?.fail(classify(lastError, endpoint, address, { address })))
  }

  client.on('error', (err) => {
    lastError ??= err
  })
  // Only the CONNACK matters, and only until connected: not a listener call per PUBACK after.
  // Let go once removed: the connection's listeners share this scope and would keep it.
  let onPacket: ((packet: Packet) => void) | undefined = (packet) => {
    if (packet.cmd === 'connack') lastConnack = packet
  }
  client.on('packetreceive', onPacket)
  client.on('disconnect', (packet) => {
    serverDisconnect = packet
  })
  client.on('message', (topic, payload, packet) => {
    connection?.deliver({ topic, payload, qos: packet.qos, retain: packet.retain })
  })
  // Once: MQTT.js connects only once here (reconnect is off), and the handler need not outlive it.
  client.once('connect', (connack) => {
    if (onPacket) client.removeListener('packetreceive', onPacket)
    onPacket = undefined
    connection = new MqttConnection(client, connack, endpoint, address)
    lastError = undefined
    const settled = attempt
    attempt = undefined
    settled?.resolve(connection)
  })
  client.on('close', () => {
    if (connection) {
      connection.markClosed(
        closeReason(
          lastError,
          client.keepaliveExpired,
          serverDisconnect,
          endpoint,
          keepalive,
          address,
        ),
      )
      return
    }
    const failed = attempt?.fail
    if (!failed) return
    const rc = lastConnack && (lastConnack.reasonCode ?? lastConnack.returnCode)
    if (lastConnack && rc) {
      const serverReference = lastConnack.properties?.serverReference
      failed(
        networkError(
          'CONNECT_REFUSED',
          `${endpoint.url} refused the connection (reason code ${rc})`,
          {
            details: { reasonCode: rc, address, ...(serverReference ? { serverReference } : {}) },
          },
        ),
      )
      return
    }
    failed(classify(lastError, endpoint, address, { address }))
  })
  return client
}

/** Why an open connection ended (no stack: see withoutStack). */
function closeReason(
  lastError: unknown,
  keepaliveExpired: boolean,
  serverDisconnect: Packet | undefined,
  endpoint: Endpoint,
  keepalive: number,
  address: string,
): UplinkError {
  const where = `${endpoint.url} (${address})`
  return withoutStack(() => {
    if (keepaliveExpired) {
      return new UplinkError(
        'KEEPALIVE_TIMEOUT',
        `no answer from ${where} within 1.5 x keepalive (${keepalive} s)`,
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
            address,
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
  })
}

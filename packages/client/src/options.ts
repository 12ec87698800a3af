import { createSecureContext } from 'node:tls'
import type { JitterMode } from './backoff.js'
import { type Clock, type RandomSource, systemClock } from './clock.js'
import type { ConciergeOptions } from './concierge.js'
import type { ResolverOptions } from './dns.js'
import { type Endpoint, type EndpointInput, parseEndpoint, type TlsConfig } from './endpoints.js'
import { UplinkError } from './errors.js'
import { type MemoryOutboxOptions, memoryOutbox } from './memory-outbox.js'
import { checkKeys, ENDPOINT_KEYS, type KeyTree, OPTION_KEYS } from './option-keys.js'
import type { Outbox, Priority, Qos } from './outbox.js'
import { shared } from './shared-options.js'
import { MAX_TTL_SECONDS, validateFilter, validateTopic } from './topics.js'

export interface PresenceOptions {
  /** Retained topic that says whether the device is online. */
  topic: string
  online?: string
  offline?: string
  qos?: Qos
}

export interface UplinkOptions {
  clientId: string
  /** Tried in order; a URL string or `{ url, tls }` for certificates per endpoint. */
  endpoints: Array<string | EndpointInput>
  tls?: TlsConfig
  username?: string
  password?: string | Buffer
  /** 4 = MQTT 3.1.1 (default), 5 = MQTT 5. */
  protocolVersion?: 4 | 5
  /** Seconds. A dead or half-open link is noticed within 1.5 x this. */
  keepalive?: number
  /** Bound on one attempt: TCP, TLS and CONNACK together, over all the addresses raced. */
  connectTimeoutMs?: number
  /** Happy Eyeballs: start connecting to the next address this long after the last one began. */
  connectAttemptDelayMs?: number
  backoff?: {
    initialMs?: number
    maxMs?: number
    jitter?: JitterMode
    /** A connection must stay up this long before the backoff starts again from initialMs. */
    stableMs?: number
    /**
     * Informed backoff (default on): while waiting, re-resolve the endpoint when its TTL runs out
     * (not more often than minProbeIntervalMs) and refresh a stale concierge answer; a new
     * address or endpoint ends the wait after a random 0..spreadMs and starts a fresh ladder.
     * The first reconnect after a stable connection is also spread over 0..spreadMs.
     */
    informed?: boolean | { spreadMs?: number; minProbeIntervalMs?: number }
  }
  /** Consecutive failed attempts on one endpoint before the next endpoint is tried. */
  failoverAfter?: number
  dns?: {
    /** DNS servers ('ip', 'ip:port', '[v6]:port'). Default: the system's resolvers. */
    servers?: string[]
    timeoutMs?: number
    attempts?: number
    family?: 0 | 4 | 6
    /** Asking A and AAAA: once one has answered with addresses, how long the other may take. */
    resolutionDelayMs?: number
    /** When no DNS server answers, use the operating system's lookup (reported as an event). */
    systemFallback?: boolean
    /**
     * While connected, re-resolve the host when its TTL runs out (not more often than
     * minIntervalMs) and move if the connected address has left the answer. Default off.
     */
    watch?: boolean | { minIntervalMs?: number; maxIntervalMs?: number }
  }
  /** Planned failover: which endpoint the fleet should use, asked over HTTPS. */
  concierge?: ConciergeOptions
  /** A topic on which the cloud pushes the same directive as the concierge answers. */
  control?: { topic: string }
  failover?: {
    /** Hosts a concierge directive, control message or MQTT 5 redirect may send the device to,
     * besides the configured endpoints' own: exact names and `*.example.com` patterns. */
    allowedHosts?: string[]
    /** Minimum stay on an endpoint before the next planned move (flap damping). */
    minStayMs?: number
    /** How long the old connection may take to get its in-flight messages acknowledged. */
    handoverTimeoutMs?: number
  }
  session?: {
    /** false (default): ask the broker to keep the session, so commands queue while offline. */
    clean?: boolean
    /** MQTT 5 session expiry, seconds. */
    expirySeconds?: number
  }
  outbox?: Outbox
  /** QoS 1/2 messages in flight at once while draining the outbox. */
  inflightWindow?: number
  /**
   * A stored message that was the oldest unacknowledged one each time its link was closed by the
   * other side, this many times in a row, is set aside (`drop`, reason `undeliverable`) so that
   * it cannot block the queue: a broker that drops the link on a topic it will not take.
   */
  poisonAfter?: number
  maxPayloadBytes?: number
  presence?: PresenceOptions
  /**
   * Test seams: time, and the draws of backoff jitter, the arrival spread and the concierge's
   * jitter. DNS transaction ids never come from `random`: they are crypto-random.
   */
  clock?: Clock
  random?: RandomSource
}

export interface PublishOptions {
  qos?: Qos
  retain?: boolean
  priority?: Priority
  /** Seconds the message stays worth sending; dropped at drain once it has passed. */
  ttlSeconds?: number
}

/** Informed backoff, filled in (see UplinkOptions.backoff.informed). */
export interface InformedBackoff {
  spreadMs: number
  minProbeIntervalMs: number
}

/** Every default in one place. */
export const DEFAULTS = {
  protocolVersion: 4 as 4 | 5,
  keepalive: 60,
  connectTimeoutMs: 10_000,
  backoff: {
    initialMs: 1_000,
    maxMs: 60_000,
    jitter: 'full' as JitterMode,
    stableMs: 30_000,
    /**
     * Probes follow each device's own TTL phase, so a fleet already learns of a change over one
     * TTL; the spread covers fleets that learn at one instant (one caching resolver's entry
     * expiring for all, a concierge answer): 1 s is 2 000 to 3 000 devices at the 2 to 3.3 k
     * CONNECTs/s an aedes secondary accepts in the storm bench. The floor keeps a TTL-0 record
     * from making every waiting device ask each second: 5 s, where MQTT.js asks on every 1 s retry.
     */
    informed: { spreadMs: 1_000, minProbeIntervalMs: 5_000 },
  },
  failoverAfter: 3,
  /** RFC 8305 section 5: the next address is tried this long after the last, if it is pending. */
  connectAttemptDelayMs: 250,
  dns: {
    timeoutMs: 2_000,
    attempts: 2,
    family: 0 as 0 | 4 | 6,
    systemFallback: true,
    /** RFC 8305 section 3: once one family has addresses, the other gets this long. */
    resolutionDelayMs: 50,
  },
  dnsWatch: { minIntervalMs: 10_000, maxIntervalMs: 300_000 },
  /**
   * The resolver's UDP socket to a server, shared in the process (dns-udp.ts): at most this many
   * questions on one source port, and closed after this long with nothing to wait for, so the
   * next question goes out from a fresh random port. Not options: what they trade (sockets
   * opened against how long one port is known) is the resolver's to keep, and one process
   * shares them. 32 questions are some 50 ms of a 2 000-device storm; a device on its own,
   * asking once per attempt or TTL, seldom asks twice within the idle second.
   */
  dnsSocket: { maxQueries: 32, idleMs: 1_000 },
  failover: { minStayMs: 60_000, handoverTimeoutMs: 5_000 },
  /**
   * MQTT 5 redirects followed in a row before the normal backoff applies. Not an option, and not
   * under `failover`: DEFAULTS.failover mirrors the option section (callers spread it).
   */
  maxRedirects: 3,
  session: { clean: false, expirySeconds: 3_600 },
  inflightWindow: 32,
  poisonAfter: 5,
  maxPayloadBytes: 256 * 1024,
  memoryOutbox: { maxMessages: 10_000, maxBytes: 64 * 2 ** 20, overflow: 'drop-oldest' },
  presence: { online: 'online', offline: 'offline', qos: 1 as Qos },
  publish: { qos: 1 as Qos, retain: false, priority: 'telemetry' as Priority },
  subscribe: { qos: 1 as Qos },
  /** stop(): how long in-flight messages, presence and DISCONNECT may take, each. */
  stopTimeoutMs: 2_000,
  concierge: {
    intervalMs: 300_000,
    jitter: 0.2,
    timeoutMs: 10_000,
    retries: 3,
    /**
     * Bounds on a directive's pollIntervalSeconds: a concierge (or one answer gone wrong) cannot
     * make a fleet poll it many times a second, nor set a wait past what a timer can hold (2^31
     * ms; beyond it Node fires at once).
     */
    minPollSeconds: 5,
    maxPollSeconds: 86_400,
  },
  /** A failed concierge poll: the first retry after this, doubled for each next one. */
  conciergeRetryDelayMs: 200,
  /**
   * How long an attempt to reconnect waits for the refresh of a stale concierge answer before it
   * goes where it was going: a concierge answers in well under a second, and one that does not
   * (often down with the region it serves) added up to twice its 10 s timeout to every attempt.
   * The answer still counts when it comes: a new endpoint arrives as a move.
   */
  conciergeAttemptWaitMs: 2_000,
} as const

/** The concierge defaults (also under DEFAULTS.concierge), by their earlier name. */
export const CONCIERGE_DEFAULTS = DEFAULTS.concierge

/** The concierge section with every field filled in. */
export interface ResolvedConcierge {
  url: string
  allowedHosts: string[]
  intervalMs: number
  jitter: number
  timeoutMs: number
  retries: number
  tls: TlsConfig | undefined
}

export interface ResolvedPublishOptions {
  qos: Qos
  retain: boolean
  priority: Priority
  ttlSeconds: number | undefined
}

export interface ResolvedOptions {
  clientId: string
  endpoints: readonly Endpoint[]
  /** Certificates for endpoints that a directive or redirect names. */
  tls?: TlsConfig | undefined
  username?: string | undefined
  password?: string | Buffer | undefined
  protocolVersion: 4 | 5
  keepalive: number
  connectTimeoutMs: number
  connectAttemptDelayMs: number
  backoff: {
    initialMs: number
    maxMs: number
    jitter: JitterMode
    stableMs: number
    /** Undefined: off, the ladder's delays run to their end. */
    informed: InformedBackoff | undefined
  }
  failoverAfter: number
  dns: {
    servers?: string[] | undefined
    timeoutMs: number
    attempts: number
    family: 0 | 4 | 6
    resolutionDelayMs: number
    systemFallback: boolean
    watch: { minIntervalMs: number; maxIntervalMs: number } | undefined
  }
  concierge?: ResolvedConcierge | undefined
  control?: { topic: string } | undefined
  failover: {
    allowedHosts: string[]
    /**
     * Whether a directive or redirect may name an mqtt:// endpoint: only when one configured
     * endpoint is mqtt:// already, so that a concierge or a broker's redirect cannot take a
     * device configured for TLS off it (credentials and messages in the clear).
     */
    plaintext: boolean
    minStayMs: number
    handoverTimeoutMs: number
    maxRedirects: number
  }
  session: { clean: boolean; expirySeconds: number }
  outbox: Outbox
  inflightWindow: number
  poisonAfter: number
  maxPayloadBytes: number
  presence?: Required<PresenceOptions> | undefined
  clock: Clock
  random: RandomSource
}

function validateFilterLike(topic: string): string {
  try {
    return validateFilter(topic)
  } catch {
    fail('control.topic', 'must be a valid topic filter')
  }
}

const JITTER_MODES: readonly JitterMode[] = ['full', 'equal', 'decorrelated', 'none']
const QOS: readonly Qos[] = [0, 1, 2]

function fail(field: string, must: string): never {
  throw new UplinkError('INVALID_OPTIONS', `${field} ${must}`, { details: { field } })
}

function int(value: unknown, field: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(field, `must be an integer from ${min} to ${max}`)
  }
  return value
}

function bool(value: unknown, field: string, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') fail(field, `must be true or false, not ${JSON.stringify(value)}`)
  return value
}

function str(value: unknown, field: string, fallback: string): string {
  if (value === undefined) return fallback
  if (typeof value !== 'string') fail(field, 'must be a string')
  return value
}

const OUTBOX_METHODS = [
  'enqueue',
  'take',
  'ack',
  'release',
  'head',
  'stats',
  'setListener',
  'close',
] as const

/**
 * TLS settings must be an object, and a key must open with its passphrase and match its
 * certificate now: found at the first connect instead, it would be retried for ever although
 * no retry can help.
 */
function checkTls(value: unknown, field: string): TlsConfig | undefined {
  if (value === undefined) return undefined
  const t = object(value as TlsConfig, field)
  // Types first, in words that never show the value: Node's own type error prints it (a
  // passphrase of digits, as YAML or JSON gives it, ended up in the message and its cause).
  const pem = (v: unknown) => typeof v === 'string' || ArrayBuffer.isView(v)
  if (t.ca !== undefined && !(Array.isArray(t.ca) ? t.ca.every(pem) : pem(t.ca)))
    fail(`${field}.ca`, 'must be PEM text or a Buffer, or an array of them')
  if (t.cert !== undefined && !pem(t.cert)) fail(`${field}.cert`, 'must be PEM text or a Buffer')
  if (t.key !== undefined && !pem(t.key)) fail(`${field}.key`, 'must be PEM text or a Buffer')
  if (t.passphrase !== undefined && typeof t.passphrase !== 'string')
    fail(`${field}.passphrase`, 'must be a string')
  const alpn = t.alpnProtocols
  if (alpn !== undefined && !(Array.isArray(alpn) && alpn.every((p) => typeof p === 'string')))
    fail(`${field}.alpnProtocols`, 'must be an array of strings')
  try {
    createSecureContext({ ca: t.ca, cert: t.cert, key: t.key, passphrase: t.passphrase })
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err)
    // OpenSSL on Node says "bad decrypt", BoringSSL on Bun "BAD_DECRYPT": both set this code.
    const badPassphrase =
      (err as { code?: unknown }).code === 'ERR_OSSL_BAD_DECRYPT' ||
      /bad[ _]decrypt|bad password|passphrase/i.test(text)
    const why = badPassphrase
      ? 'the private key cannot be decrypted with the passphrase'
      : 'the certificate, key or CA cannot be used'
    throw new UplinkError('TLS_ERROR', `${field}: ${why} (${text}); retrying will not help`, {
      cause: err,
      details: { field, retryable: false },
    })
  }
  return value as TlsConfig
}

function object<T>(value: T | undefined, field: string): Partial<NonNullable<T>> {
  if (value === undefined) return {}
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    fail(field, 'must be an object')
  return value as Partial<NonNullable<T>>
}

/** Validates options once, at `createUplink`, and fills in the defaults, section by section. */
export function resolveOptions(input: UplinkOptions): ResolvedOptions {
  const o = object(input, 'options') as Partial<UplinkOptions>
  checkKeys(o, OPTION_KEYS, '')
  const clientId = resolveClientId(o.clientId)
  const tls = checkTls(o.tls, 'tls')
  const endpoints = resolveEndpoints(o.endpoints, tls)
  if (o.username !== undefined && typeof o.username !== 'string')
    fail('username', 'must be a string')
  if (o.password !== undefined && typeof o.password !== 'string' && !Buffer.isBuffer(o.password)) {
    fail('password', 'must be a string or Buffer')
  }
  if (o.protocolVersion !== undefined && o.protocolVersion !== 4 && o.protocolVersion !== 5) {
    fail('protocolVersion', 'must be 4 (MQTT 3.1.1) or 5')
  }
  const f = object(o.failover, 'failover')
  const c = o.concierge === undefined ? undefined : object(o.concierge, 'concierge')
  // Where a directive may send the device: the configured endpoints, plus what the user allows.
  const allowedHosts = [
    ...new Set([
      ...endpoints.map((e) => e.host),
      ...hostList(f.allowedHosts, 'failover.allowedHosts'),
      ...hostList(c?.allowedHosts, 'concierge.allowedHosts'),
    ]),
  ]
  if (o.clock !== undefined && typeof o.clock?.setTimeout !== 'function')
    fail('clock', 'must be a Clock')
  if (o.random !== undefined && typeof o.random !== 'function') fail('random', 'must be a function')
  return {
    clientId,
    endpoints,
    tls,
    username: o.username,
    password: o.password,
    protocolVersion: o.protocolVersion ?? DEFAULTS.protocolVersion,
    keepalive: int(o.keepalive, 'keepalive', DEFAULTS.keepalive, 1, 65_535),
    connectTimeoutMs: int(
      o.connectTimeoutMs,
      'connectTimeoutMs',
      DEFAULTS.connectTimeoutMs,
      10,
      600_000,
    ),
    connectAttemptDelayMs: int(
      o.connectAttemptDelayMs,
      'connectAttemptDelayMs',
      DEFAULTS.connectAttemptDelayMs,
      10,
      60_000,
    ),
    backoff: shared('backoff', resolveBackoff(o.backoff)),
    failoverAfter: int(o.failoverAfter, 'failoverAfter', DEFAULTS.failoverAfter, 1, 1_000),
    dns: shared('dns', resolveDns(o.dns)),
    concierge: c && resolveConcierge(c as ConciergeOptions, allowedHosts),
    control: resolveControl(o.control),
    failover: shared(
      'failover',
      resolveFailover(
        f,
        allowedHosts,
        endpoints.some((e) => !e.secure),
      ),
    ),
    session: shared('session', resolveSession(o.session)),
    outbox: resolveOutbox(o.outbox),
    inflightWindow: int(o.inflightWindow, 'inflightWindow', DEFAULTS.inflightWindow, 1, 65_535),
    poisonAfter: int(o.poisonAfter, 'poisonAfter', DEFAULTS.poisonAfter, 1, 1_000),
    maxPayloadBytes: int(
      o.maxPayloadBytes,
      'maxPayloadBytes',
      DEFAULTS.maxPayloadBytes,
      1,
      268_435_455,
    ),
    presence: resolvePresence(o.presence),
    clock: o.clock ?? systemClock,
    random: o.random ?? Math.random,
  }
}

function resolveClientId(clientId: unknown): string {
  if (typeof clientId !== 'string' || clientId.length === 0) {
    fail('clientId', 'must be a non-empty string')
  }
  if (Buffer.byteLength(clientId) > 65_535) fail('clientId', 'is longer than 65535 bytes')
  if (clientId.includes('\u0000')) fail('clientId', 'must not contain NUL')
  return clientId
}

function resolveEndpoints(list: unknown, tls: TlsConfig | undefined): readonly Endpoint[] {
  if (!Array.isArray(list) || list.length === 0) {
    fail('endpoints', 'must be a non-empty array of mqtt:// or mqtts:// URLs')
  }
  const endpoints = list.map((e: string | EndpointInput, i) => {
    const field = `endpoints[${i}]`
    const own = typeof e === 'object' && e !== null
    if (own) checkKeys(e, ENDPOINT_KEYS, field)
    // Parsed before its certificates are checked: on mqtt:// they are refused whatever they hold.
    const endpoint = parseEndpoint(e, field, tls)
    if (own) checkTls(e.tls, `${field}.tls`)
    return endpoint
  })
  // Plain data when no endpoint has TLS settings (those stay each client's own, certificates and
  // all): shared by every client that names the same endpoints, as the option groups are.
  return endpoints.every((e) => e.tls === undefined) ? shared('endpoints', endpoints) : endpoints
}

function resolveBackoff(input: UplinkOptions['backoff']): ResolvedOptions['backoff'] {
  const b = object(input, 'backoff')
  const initialMs = int(b.initialMs, 'backoff.initialMs', DEFAULTS.backoff.initialMs, 1, 3_600_000)
  const maxMs = int(b.maxMs, 'backoff.maxMs', DEFAULTS.backoff.maxMs, 1, 86_400_000)
  if (maxMs < initialMs) fail('backoff.maxMs', 'must not be below backoff.initialMs')
  if (b.jitter !== undefined && !JITTER_MODES.includes(b.jitter)) {
    fail('backoff.jitter', `must be one of ${JITTER_MODES.join(', ')}`)
  }
  return {
    initialMs,
    maxMs,
    jitter: b.jitter ?? DEFAULTS.backoff.jitter,
    stableMs: int(b.stableMs, 'backoff.stableMs', DEFAULTS.backoff.stableMs, 0, 86_400_000),
    informed: resolveInformed(b.informed),
  }
}

function resolveInformed(
  input: boolean | Partial<InformedBackoff> | undefined,
): InformedBackoff | undefined {
  if (input === false) return undefined
  const { spreadMs, minProbeIntervalMs } = input === true ? {} : object(input, 'backoff.informed')
  const d = DEFAULTS.backoff.informed
  return {
    spreadMs: int(spreadMs, 'backoff.informed.spreadMs', d.spreadMs, 0, 600_000),
    minProbeIntervalMs: int(
      minProbeIntervalMs,
      'backoff.informed.minProbeIntervalMs',
      d.minProbeIntervalMs,
      100,
      86_400_000,
    ),
  }
}

function resolveDns(input: UplinkOptions['dns']): ResolvedOptions['dns'] {
  const d = object(input, 'dns')
  if (
    d.servers !== undefined &&
    (!Array.isArray(d.servers) || d.servers.some((s) => typeof s !== 'string'))
  ) {
    fail('dns.servers', 'must be an array of strings')
  }
  if (d.family !== undefined && ![0, 4, 6].includes(d.family))
    fail('dns.family', 'must be 0, 4 or 6')
  const watch =
    d.watch === true
      ? {}
      : d.watch === false || d.watch === undefined
        ? undefined
        : object(d.watch, 'dns.watch')
  return {
    servers: d.servers,
    timeoutMs: int(d.timeoutMs, 'dns.timeoutMs', DEFAULTS.dns.timeoutMs, 10, 60_000),
    attempts: int(d.attempts, 'dns.attempts', DEFAULTS.dns.attempts, 1, 10),
    family: d.family ?? DEFAULTS.dns.family,
    resolutionDelayMs: int(
      d.resolutionDelayMs,
      'dns.resolutionDelayMs',
      DEFAULTS.dns.resolutionDelayMs,
      0,
      60_000,
    ),
    systemFallback: bool(d.systemFallback, 'dns.systemFallback', DEFAULTS.dns.systemFallback),
    watch: watch && watchIntervals(watch),
  }
}

/**
 * The concierge section, every field filled in. `allowedHosts` is the whole allow-list (the
 * configured endpoints' hosts included); without it, the concierge's own.
 */
export function resolveConcierge(
  input: ConciergeOptions,
  allowedHosts = hostList(input.allowedHosts, 'concierge.allowedHosts'),
): ResolvedConcierge {
  const c = object(input, 'concierge')
  let url: URL | undefined
  try {
    url = new URL(String(c.url))
  } catch {}
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:'))
    fail('concierge.url', 'must be an https:// URL')
  if (url.username || url.password) fail('concierge.url', 'must not carry credentials')
  const d = DEFAULTS.concierge
  const j = c.jitter
  if (j !== undefined && (typeof j !== 'number' || !Number.isFinite(j) || j < 0 || j > 1))
    fail('concierge.jitter', 'must be a number from 0 to 1')
  return {
    url: url.href,
    allowedHosts,
    intervalMs: int(c.intervalMs, 'concierge.intervalMs', d.intervalMs, 1_000, 86_400_000),
    jitter: j ?? d.jitter,
    timeoutMs: int(c.timeoutMs, 'concierge.timeoutMs', d.timeoutMs, 10, 600_000),
    retries: int(c.retries, 'concierge.retries', d.retries, 0, 20),
    tls: checkTls(c.tls, 'concierge.tls'),
  }
}

function resolveControl(input: UplinkOptions['control']): ResolvedOptions['control'] {
  if (input === undefined) return undefined
  const control = object(input, 'control')
  if (typeof control.topic !== 'string' || control.topic.length === 0)
    fail('control.topic', 'must be a topic')
  return { topic: validateFilterLike(control.topic) }
}

function resolveFailover(
  f: Partial<NonNullable<UplinkOptions['failover']>>,
  allowedHosts: string[],
  plaintext: boolean,
): ResolvedOptions['failover'] {
  return {
    allowedHosts,
    plaintext,
    minStayMs: int(f.minStayMs, 'failover.minStayMs', DEFAULTS.failover.minStayMs, 0, 86_400_000),
    handoverTimeoutMs: int(
      f.handoverTimeoutMs,
      'failover.handoverTimeoutMs',
      DEFAULTS.failover.handoverTimeoutMs,
      0,
      600_000,
    ),
    maxRedirects: DEFAULTS.maxRedirects,
  }
}

function resolveSession(input: UplinkOptions['session']): ResolvedOptions['session'] {
  const s = object(input, 'session')
  return {
    clean: bool(s.clean, 'session.clean', DEFAULTS.session.clean),
    expirySeconds: int(
      s.expirySeconds,
      'session.expirySeconds',
      DEFAULTS.session.expirySeconds,
      0,
      2 ** 32 - 1,
    ),
  }
}

const MEMORY_OUTBOX_KEYS: KeyTree = {
  maxMessages: true,
  maxBytes: true,
  overflow: true,
} satisfies Record<keyof Required<MemoryOutboxOptions>, true>

/** memoryOutbox()'s options, checked like the client's (unknown keys too), every field filled. */
export function resolveMemoryOutboxOptions(
  input: MemoryOutboxOptions,
): Required<MemoryOutboxOptions> {
  const o = object(input, 'memoryOutbox')
  checkKeys(o, MEMORY_OUTBOX_KEYS, 'memoryOutbox')
  const d = DEFAULTS.memoryOutbox
  const overflow = o.overflow ?? d.overflow
  if (overflow !== 'drop-oldest' && overflow !== 'reject')
    fail('memoryOutbox.overflow', "must be 'drop-oldest' or 'reject'")
  return {
    maxMessages: int(o.maxMessages, 'memoryOutbox.maxMessages', d.maxMessages, 1, 2 ** 32 - 1),
    maxBytes: int(o.maxBytes, 'memoryOutbox.maxBytes', d.maxBytes, 1, Number.MAX_SAFE_INTEGER),
    overflow,
  }
}

/** The outbox given, checked for the interface; without one, a memory outbox. */
function resolveOutbox(input: Outbox | undefined): Outbox {
  if (input === undefined) return memoryOutbox(DEFAULTS.memoryOutbox)
  const box = input as unknown as Record<string, unknown> | null
  const missing = OUTBOX_METHODS.filter((m) => typeof box?.[m] !== 'function')
  if (typeof box !== 'object' || box === null || missing.length > 0)
    fail('outbox', `must implement the Outbox interface (missing ${missing.join(', ')})`)
  return input
}

function resolvePresence(input: PresenceOptions | undefined): ResolvedOptions['presence'] {
  if (input === undefined) return undefined
  const p = object(input, 'presence')
  try {
    validateTopic(p.topic as string)
  } catch (err) {
    fail('presence.topic', `must be a topic to publish to (${(err as Error).message})`)
  }
  if (p.qos !== undefined && !QOS.includes(p.qos)) fail('presence.qos', 'must be 0, 1 or 2')
  return {
    topic: p.topic as string,
    online: str(p.online, 'presence.online', DEFAULTS.presence.online),
    offline: str(p.offline, 'presence.offline', DEFAULTS.presence.offline),
    qos: p.qos ?? DEFAULTS.presence.qos,
  }
}

function hostList(v: unknown, field: string): string[] {
  if (v === undefined) return []
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x.length === 0))
    fail(field, 'must be an array of host names')
  return v
}

function argument(must: string): never {
  throw new UplinkError('INVALID_ARGUMENT', must)
}

/**
 * A method's options object may hold only the keys it takes: a misspelt one (`prioirty`, `ttl`)
 * stored an alarm as telemetry, or a message without its expiry, and said nothing.
 */
function argumentKeys(options: object, keys: KeyTree, what: string): void {
  try {
    checkKeys(options, keys, what)
  } catch (err) {
    throw new UplinkError('INVALID_ARGUMENT', (err as Error).message)
  }
}

const PUBLISH_KEYS: KeyTree = {
  qos: true,
  retain: true,
  priority: true,
  ttlSeconds: true,
} satisfies Record<keyof Required<PublishOptions>, true>

function qosArgument(qos: unknown): Qos {
  if (!QOS.includes(qos as Qos)) argument('qos must be 0, 1 or 2')
  return qos as Qos
}

/** createResolver's optional fields filled in: it is public, and callers may leave them out. */
export function resolveResolverOptions(
  o: ResolverOptions,
): ResolverOptions & { resolutionDelayMs: number } {
  return { ...o, resolutionDelayMs: o.resolutionDelayMs ?? DEFAULTS.dns.resolutionDelayMs }
}

/** publish()'s options, checked and filled in; `ttlSeconds` undefined means no expiry. */
export function resolvePublishOptions(options: unknown): ResolvedPublishOptions {
  if (typeof options !== 'object' || options === null) {
    argument('publish options must be an object')
  }
  argumentKeys(options, PUBLISH_KEYS, 'publish')
  const p = options as PublishOptions
  const qos = qosArgument(p.qos ?? DEFAULTS.publish.qos)
  const priority = p.priority ?? DEFAULTS.publish.priority
  if (priority !== 'alarm' && priority !== 'telemetry') {
    argument("priority must be 'alarm' or 'telemetry'")
  }
  const ttl = p.ttlSeconds
  // MQTT 5 carries the expiry in 32 bits of seconds: a longer one could never be sent.
  if (
    ttl !== undefined &&
    (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0 || ttl > MAX_TTL_SECONDS)
  ) {
    argument(`ttlSeconds must be a number above 0 and at most ${MAX_TTL_SECONDS}`)
  }
  const retain = p.retain ?? DEFAULTS.publish.retain
  if (typeof retain !== 'boolean') argument('retain must be a boolean')
  return { qos, priority, retain, ttlSeconds: ttl }
}

/** subscribe()'s options, checked and filled in. */
export function resolveSubscribeOptions(options: unknown): { qos: Qos } {
  if (typeof options !== 'object' || options === null) {
    argument('subscribe options must be an object')
  }
  argumentKeys(options, { qos: true }, 'subscribe')
  return { qos: qosArgument((options as { qos?: Qos }).qos ?? DEFAULTS.subscribe.qos) }
}

/** stop()'s options, filled in. */
export function resolveStopOptions(options: unknown): { timeoutMs: number } {
  if (typeof options !== 'object' || options === null) {
    argument('stop options must be an object')
  }
  argumentKeys(options, { timeoutMs: true }, 'stop')
  const t = (options as { timeoutMs?: unknown }).timeoutMs
  if (t === undefined) return { timeoutMs: DEFAULTS.stopTimeoutMs }
  if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) {
    argument('timeoutMs must be a number of milliseconds, 0 or more')
  }
  return { timeoutMs: t }
}

function watchIntervals(watch: { minIntervalMs?: number; maxIntervalMs?: number }) {
  const { minIntervalMs, maxIntervalMs } = DEFAULTS.dnsWatch
  const min = int(watch.minIntervalMs, 'dns.watch.minIntervalMs', minIntervalMs, 100, 86_400_000)
  const max = int(watch.maxIntervalMs, 'dns.watch.maxIntervalMs', maxIntervalMs, 100, 86_400_000)
  if (max < min) fail('dns.watch.maxIntervalMs', 'must not be below dns.watch.minIntervalMs')
  return { minIntervalMs: min, maxIntervalMs: max }
}

import { createSecureContext } from 'node:tls'
import type { JitterMode } from './backoff.js'
import { type Clock, type RandomSource, systemClock } from './clock.js'
import type { ConciergeOptions } from './concierge.js'
import { type Endpoint, type EndpointInput, parseEndpoint, type TlsConfig } from './endpoints.js'
import { UplinkError } from './errors.js'
import { checkKeys, ENDPOINT_KEYS, OPTION_KEYS } from './option-keys.js'
import type { Outbox, Priority, Qos } from './outbox.js'
import { validateFilter, validateTopic } from './topics.js'

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
  /** Test seams: time and randomness. */
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

/** Every default in one place. */
export const DEFAULTS = {
  protocolVersion: 4 as 4 | 5,
  keepalive: 60,
  connectTimeoutMs: 10_000,
  backoff: { initialMs: 1_000, maxMs: 60_000, jitter: 'full' as JitterMode, stableMs: 30_000 },
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
  failover: { minStayMs: 60_000, handoverTimeoutMs: 5_000 },
  session: { clean: false, expirySeconds: 3_600 },
  inflightWindow: 32,
  poisonAfter: 5,
  maxPayloadBytes: 256 * 1024,
  memoryOutbox: { maxMessages: 10_000, maxBytes: 64 * 2 ** 20 },
  presence: { online: 'online', offline: 'offline', qos: 1 as Qos },
  publish: { qos: 1 as Qos, retain: false, priority: 'telemetry' as Priority },
} as const

export interface ResolvedOptions {
  clientId: string
  endpoints: Endpoint[]
  /** Certificates for endpoints that a directive or redirect names. */
  tls?: TlsConfig | undefined
  username?: string | undefined
  password?: string | Buffer | undefined
  protocolVersion: 4 | 5
  keepalive: number
  connectTimeoutMs: number
  connectAttemptDelayMs: number
  backoff: { initialMs: number; maxMs: number; jitter: JitterMode; stableMs: number }
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
  concierge?: ConciergeOptions | undefined
  control?: { topic: string } | undefined
  failover: { allowedHosts: string[]; minStayMs: number; handoverTimeoutMs: number }
  session: { clean: boolean; expirySeconds: number }
  outbox?: Outbox | undefined
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

function fail(field: string, must: string): never {
  throw new UplinkError('INVALID_OPTIONS', `${field} ${must}`)
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
  try {
    createSecureContext({ ca: t.ca, cert: t.cert, key: t.key, passphrase: t.passphrase })
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err)
    const why = /bad decrypt|bad password|passphrase/i.test(text)
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

/** Validates options once, at `createUplink`, and fills in the defaults. */
export function resolveOptions(input: UplinkOptions): ResolvedOptions {
  const o = object(input, 'options') as Partial<UplinkOptions>
  checkKeys(o, OPTION_KEYS, '')
  if (typeof o.clientId !== 'string' || o.clientId.length === 0) {
    fail('clientId', 'must be a non-empty string')
  }
  if (Buffer.byteLength(o.clientId) > 65_535) fail('clientId', 'is longer than 65535 bytes')
  if (o.clientId.includes('\u0000')) fail('clientId', 'must not contain NUL')
  if (!Array.isArray(o.endpoints) || o.endpoints.length === 0) {
    fail('endpoints', 'must be a non-empty array of mqtt:// or mqtts:// URLs')
  }
  const tls = checkTls(o.tls, 'tls')
  const endpoints = o.endpoints.map((e, i) => {
    const field = `endpoints[${i}]`
    if (typeof e === 'object' && e !== null) {
      checkKeys(e, ENDPOINT_KEYS, field)
      checkTls(e.tls, `${field}.tls`)
    }
    return parseEndpoint(e, field, tls)
  })
  if (o.username !== undefined && typeof o.username !== 'string')
    fail('username', 'must be a string')
  if (o.password !== undefined && typeof o.password !== 'string' && !Buffer.isBuffer(o.password)) {
    fail('password', 'must be a string or Buffer')
  }
  if (o.protocolVersion !== undefined && o.protocolVersion !== 4 && o.protocolVersion !== 5) {
    fail('protocolVersion', 'must be 4 (MQTT 3.1.1) or 5')
  }
  const b = object(o.backoff, 'backoff')
  const initialMs = int(b.initialMs, 'backoff.initialMs', DEFAULTS.backoff.initialMs, 1, 3_600_000)
  const maxMs = int(b.maxMs, 'backoff.maxMs', DEFAULTS.backoff.maxMs, 1, 86_400_000)
  if (maxMs < initialMs) fail('backoff.maxMs', 'must not be below backoff.initialMs')
  if (b.jitter !== undefined && !JITTER_MODES.includes(b.jitter)) {
    fail('backoff.jitter', `must be one of ${JITTER_MODES.join(', ')}`)
  }
  const d = object(o.dns, 'dns')
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
  const f = object(o.failover, 'failover')
  const strings = (v: unknown, field: string): string[] => {
    if (v === undefined) return []
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x.length === 0))
      fail(field, 'must be an array of host names')
    return v
  }
  const concierge = o.concierge === undefined ? undefined : object(o.concierge, 'concierge')
  if (concierge) {
    let url: URL | undefined
    try {
      url = new URL(String(concierge.url))
    } catch {}
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:'))
      fail('concierge.url', 'must be an https:// URL')
    if (url.username || url.password) fail('concierge.url', 'must not carry credentials')
    int(concierge.intervalMs, 'concierge.intervalMs', 0, 1_000, 86_400_000)
    int(concierge.timeoutMs, 'concierge.timeoutMs', 0, 10, 600_000)
    int(concierge.retries, 'concierge.retries', 0, 0, 20)
    const j = concierge.jitter
    if (j !== undefined && (typeof j !== 'number' || !Number.isFinite(j) || j < 0 || j > 1))
      fail('concierge.jitter', 'must be a number from 0 to 1')
    checkTls(concierge.tls, 'concierge.tls')
  }
  const control = o.control === undefined ? undefined : object(o.control, 'control')
  if (control && (typeof control.topic !== 'string' || control.topic.length === 0))
    fail('control.topic', 'must be a topic')
  // Where a directive may send the device: the configured endpoints, plus what the user allows.
  const allowedHosts = [
    ...new Set([
      ...endpoints.map((e) => e.host),
      ...strings(f.allowedHosts, 'failover.allowedHosts'),
      ...strings(concierge?.allowedHosts, 'concierge.allowedHosts'),
    ]),
  ]
  const s = object(o.session, 'session')
  const p = o.presence === undefined ? undefined : object(o.presence, 'presence')
  if (p) {
    try {
      validateTopic(p.topic)
    } catch (err) {
      fail('presence.topic', `must be a topic to publish to (${(err as Error).message})`)
    }
    if (p.qos !== undefined && p.qos !== 0 && p.qos !== 1 && p.qos !== 2)
      fail('presence.qos', 'must be 0, 1 or 2')
  }
  if (o.outbox !== undefined) {
    const box = o.outbox as unknown as Record<string, unknown> | null
    const missing = OUTBOX_METHODS.filter((m) => typeof box?.[m] !== 'function')
    if (typeof box !== 'object' || box === null || missing.length > 0)
      fail('outbox', `must implement the Outbox interface (missing ${missing.join(', ')})`)
  }
  if (o.clock !== undefined && typeof o.clock?.setTimeout !== 'function')
    fail('clock', 'must be a Clock')
  if (o.random !== undefined && typeof o.random !== 'function') fail('random', 'must be a function')
  return {
    clientId: o.clientId,
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
    backoff: {
      initialMs,
      maxMs,
      jitter: b.jitter ?? DEFAULTS.backoff.jitter,
      stableMs: int(b.stableMs, 'backoff.stableMs', DEFAULTS.backoff.stableMs, 0, 86_400_000),
    },
    failoverAfter: int(o.failoverAfter, 'failoverAfter', DEFAULTS.failoverAfter, 1, 1_000),
    dns: {
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
    },
    concierge: concierge && ({ ...concierge, allowedHosts } as ConciergeOptions),
    control: control && { topic: validateFilterLike(control.topic as string) },
    failover: {
      allowedHosts,
      minStayMs: int(f.minStayMs, 'failover.minStayMs', DEFAULTS.failover.minStayMs, 0, 86_400_000),
      handoverTimeoutMs: int(
        f.handoverTimeoutMs,
        'failover.handoverTimeoutMs',
        DEFAULTS.failover.handoverTimeoutMs,
        0,
        600_000,
      ),
    },
    session: {
      clean: bool(s.clean, 'session.clean', DEFAULTS.session.clean),
      expirySeconds: int(
        s.expirySeconds,
        'session.expirySeconds',
        DEFAULTS.session.expirySeconds,
        0,
        2 ** 32 - 1,
      ),
    },
    outbox: o.outbox,
    inflightWindow: int(o.inflightWindow, 'inflightWindow', DEFAULTS.inflightWindow, 1, 65_535),
    poisonAfter: int(o.poisonAfter, 'poisonAfter', DEFAULTS.poisonAfter, 1, 1_000),
    maxPayloadBytes: int(
      o.maxPayloadBytes,
      'maxPayloadBytes',
      DEFAULTS.maxPayloadBytes,
      1,
      268_435_455,
    ),
    presence: p && {
      topic: p.topic as string,
      online: str(p.online, 'presence.online', DEFAULTS.presence.online),
      offline: str(p.offline, 'presence.offline', DEFAULTS.presence.offline),
      qos: p.qos ?? DEFAULTS.presence.qos,
    },
    clock: o.clock ?? systemClock,
    random: o.random ?? Math.random,
  }
}

function watchIntervals(watch: { minIntervalMs?: number; maxIntervalMs?: number }) {
  const { minIntervalMs, maxIntervalMs } = DEFAULTS.dnsWatch
  const min = int(watch.minIntervalMs, 'dns.watch.minIntervalMs', minIntervalMs, 100, 86_400_000)
  const max = int(watch.maxIntervalMs, 'dns.watch.maxIntervalMs', maxIntervalMs, 100, 86_400_000)
  if (max < min) fail('dns.watch.maxIntervalMs', 'must not be below dns.watch.minIntervalMs')
  return { minIntervalMs: min, maxIntervalMs: max }
}

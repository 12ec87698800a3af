import { isIP } from 'node:net'
import { type Endpoint, parseEndpoint, type TlsConfig } from './endpoints.js'
import { UplinkError } from './errors.js'

/**
 * The endpoint directive: what a concierge answers and what a control message carries.
 *
 * ```json
 * { "endpoint": "mqtts://iot-west.example.com:8883", "epoch": 42, "pollIntervalSeconds": 300 }
 * ```
 * - `endpoint`: where the device should be connected (mqtt:// or mqtts://, no credentials).
 * - `epoch`: a non-negative integer that only grows; a directive with a lower epoch than one
 *   already seen is refused, so replaying an old answer cannot roll the fleet back.
 * - `pollIntervalSeconds` (optional): when to ask the concierge again.
 */
export interface Directive {
  endpoint: Endpoint
  epoch: number
  pollIntervalSeconds?: number | undefined
}

/** Whether `host` is allowed by exact names and `*.example.com` patterns (one label deep). */
export function hostAllowed(host: string, allowedHosts: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/\.$/, '')
  return allowedHosts.some((pattern) => {
    const p = pattern.toLowerCase().replace(/\.$/, '')
    if (!p.startsWith('*.')) return p === h
    if (isIP(h)) return false
    const suffix = p.slice(1)
    // One label only, as in TLS wildcards: *.example.com covers a.example.com, not a.b.example.com.
    return (
      h.endsWith(suffix) && h.length > suffix.length && !h.slice(0, -suffix.length).includes('.')
    )
  })
}

const MAX_DIRECTIVE_BYTES = 4_096

/** Where a directive or a redirect may send the device (from the resolved `failover` options). */
export interface MoveRules {
  allowedHosts: readonly string[]
  /** Whether it may name an mqtt:// endpoint (some configured endpoint is mqtt://). */
  plaintext: boolean
}

/**
 * Parses and checks a directive. Throws DIRECTIVE_INVALID for malformed input and
 * DIRECTIVE_REFUSED for a host outside the allow-list or an epoch lower than the last one seen.
 */
export function parseDirective(
  raw: string | Uint8Array,
  rules: MoveRules & { lastEpoch: number | undefined; tls?: TlsConfig | undefined },
): Directive {
  const text = typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8')
  if (Buffer.byteLength(text) > MAX_DIRECTIVE_BYTES) {
    throw new UplinkError(
      'DIRECTIVE_INVALID',
      `directive is larger than ${MAX_DIRECTIVE_BYTES} bytes`,
    )
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new UplinkError('DIRECTIVE_INVALID', 'directive is not valid JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UplinkError('DIRECTIVE_INVALID', 'directive must be a JSON object')
  }
  const d = value as Record<string, unknown>
  if (!Number.isSafeInteger(d.epoch) || (d.epoch as number) < 0) {
    throw new UplinkError('DIRECTIVE_INVALID', 'directive.epoch must be a non-negative integer')
  }
  const poll = d.pollIntervalSeconds
  if (poll !== undefined && (typeof poll !== 'number' || !Number.isFinite(poll) || poll <= 0)) {
    throw new UplinkError(
      'DIRECTIVE_INVALID',
      'directive.pollIntervalSeconds must be a positive number',
    )
  }
  // A URL and nothing else: the `{ url, tls }` form of the options would let whoever writes a
  // directive pick the CA the device trusts, or drop its client certificate.
  if (typeof d.endpoint !== 'string') {
    throw new UplinkError(
      'DIRECTIVE_INVALID',
      'directive.endpoint must be a URL string such as mqtts://broker.example.com:8883',
    )
  }
  let endpoint: Endpoint
  try {
    endpoint = parseEndpoint(d.endpoint, 'directive.endpoint', rules.tls)
  } catch (err) {
    throw new UplinkError('DIRECTIVE_INVALID', (err as Error).message)
  }
  const epoch = d.epoch as number
  if (rules.lastEpoch !== undefined && epoch < rules.lastEpoch) {
    throw new UplinkError(
      'DIRECTIVE_REFUSED',
      `directive epoch ${epoch} is older than ${rules.lastEpoch}`,
      {
        details: { epoch, lastEpoch: rules.lastEpoch },
      },
    )
  }
  assertAllowed(endpoint, rules, 'directive')
  return { endpoint, epoch, pollIntervalSeconds: poll as number | undefined }
}

export function assertAllowed(endpoint: Endpoint, rules: MoveRules, source: string): void {
  if (!hostAllowed(endpoint.host, rules.allowedHosts)) {
    throw new UplinkError(
      'DIRECTIVE_REFUSED',
      `${source} names ${endpoint.host}, which is not in allowedHosts`,
      {
        details: { host: endpoint.host },
      },
    )
  }
  if (!endpoint.secure && !rules.plaintext) {
    throw new UplinkError(
      'DIRECTIVE_REFUSED',
      `${source} names ${endpoint.url}, without TLS, and every configured endpoint uses mqtts://`,
      { details: { host: endpoint.host } },
    )
  }
}

/**
 * An MQTT 5 Server Reference ("host", "host:port", "[v6]:port", or a URL; several separated by
 * spaces, of which the first is used) as an endpoint on the current scheme and port.
 */
export function parseServerReference(
  reference: string,
  current: Endpoint,
  rules: MoveRules,
): Endpoint {
  const first = reference.trim().split(/\s+/)[0] ?? ''
  const scheme = current.secure ? 'mqtts' : 'mqtt'
  const url = first.includes('://')
    ? first
    : /:\d+$/.test(first) && isIP(first) !== 6
      ? `${scheme}://${first}`
      : `${scheme}://${isIP(first) === 6 ? `[${first}]` : first}:${current.port}`
  let endpoint: Endpoint
  try {
    endpoint = parseEndpoint(url, 'server reference', current.tls)
  } catch (err) {
    throw new UplinkError('DIRECTIVE_INVALID', (err as Error).message)
  }
  assertAllowed(endpoint, rules, 'server redirect')
  return endpoint
}

/**
 * MQTT 5 redirects (a CONNACK refusal or a DISCONNECT naming a Server Reference) are followed at
 * once, `max` in a row; past that, or for a target outside the allow-list, the normal backoff
 * applies. A connection that is made starts the count over.
 */
export class RedirectPolicy {
  private followed = 0

  constructor(
    private readonly rules: MoveRules,
    private readonly max: number,
  ) {}

  /**
   * Where `error` sends the device from `current`, or undefined when it names no server or the
   * cap is reached. Throws DIRECTIVE_INVALID or DIRECTIVE_REFUSED for a target it may not follow.
   */
  target(error: UplinkError, current: Endpoint): Endpoint | undefined {
    const reference = error.details?.serverReference
    if (typeof reference !== 'string' || this.followed >= this.max) return undefined
    const target = parseServerReference(reference, current, this.rules)
    this.followed++
    return target
  }

  reset(): void {
    this.followed = 0
  }
}

/**
 * The highest epoch seen, whichever way a directive came (concierge or control topic): one floor
 * for both, so a replay on one channel cannot undo what the other said.
 */
export class EpochFloor {
  private highest: number | undefined

  /** Undefined until a directive was taken. */
  get value(): number | undefined {
    return this.highest
  }

  raise(epoch: number): void {
    if (this.highest === undefined || epoch > this.highest) this.highest = epoch
  }
}

import { isIP } from 'node:net'
import { UplinkError } from './errors.js'

export interface TlsConfig {
  /** CA certificates (PEM) that the broker's certificate must chain to. Default: Node's roots. */
  ca?: string | Buffer | Array<string | Buffer> | undefined
  /** Client certificate and key (PEM), for mutual TLS such as AWS IoT Core. */
  cert?: string | Buffer | undefined
  key?: string | Buffer | undefined
  passphrase?: string | undefined
  /** ALPN protocols, e.g. ['x-amzn-mqtt-ca'] for AWS IoT Core on port 443. */
  alpnProtocols?: string[] | undefined
}

export interface EndpointInput {
  url: string
  /** Certificates for this endpoint only (one per region); overrides the top-level `tls`. */
  tls?: TlsConfig | undefined
}

export interface Endpoint {
  /** Normalised `scheme://host:port`: what events and stats show. Never carries credentials. */
  url: string
  host: string
  port: number
  secure: boolean
  tls?: TlsConfig | undefined
}

const DEFAULT_PORTS = { 'mqtt:': 1883, 'mqtts:': 8883 } as const

/** A bad endpoint, with the field it came from for whoever handles the error. */
function invalid(field: string, message: string): UplinkError<'INVALID_OPTIONS'> {
  return new UplinkError('INVALID_OPTIONS', message, { details: { field } })
}

/** Parses one endpoint; `field` names it in the error (e.g. `endpoints[1]`). */
export function parseEndpoint(
  input: string | EndpointInput,
  field: string,
  tls?: TlsConfig,
): Endpoint {
  const raw = typeof input === 'string' ? input : input?.url
  if (typeof raw !== 'string' || raw.length === 0) {
    throw invalid(field, `${field} must be a URL such as mqtts://broker.example.com:8883`)
  }
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw invalid(field, `${field} is not a valid URL`)
  }
  if (url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:') {
    throw invalid(field, `${field} must use mqtt:// or mqtts://, not ${url.protocol}//`)
  }
  if (url.username || url.password) {
    // Credentials in a URL end up in logs and events; they belong in username/password.
    throw invalid(
      field,
      `${field} must not carry credentials; use the username and password options`,
    )
  }
  if ((url.pathname && url.pathname !== '/') || url.search || url.hash) {
    throw invalid(field, `${field} must be scheme://host[:port] with no path or query`)
  }
  // Without the root's dot: TLS sends the name as SNI, which has none (RFC 6066), and an
  // endpoint is one endpoint however it is spelled (a directive for `host.` is the configured
  // `host`, certificates and all).
  const host = url.hostname
    .replace(/^\[(.*)\]$/, '$1')
    .toLowerCase()
    .replace(/\.$/, '')
  if (!host) throw invalid(field, `${field} has no host`)
  const port = url.port ? Number(url.port) : DEFAULT_PORTS[url.protocol]
  if (port < 1) throw invalid(field, `${field} has port 0; name a port from 1`)
  const secure = url.protocol === 'mqtts:'
  const own = typeof input === 'string' ? undefined : input.tls
  // Certificates for a plaintext endpoint were dropped in silence: the device then spoke in the
  // clear to an endpoint its configuration meant to reach over TLS.
  if (!secure && own !== undefined)
    throw invalid(
      `${field}.tls`,
      `${field}.tls is given for an mqtt:// endpoint; TLS needs mqtts://`,
    )
  return {
    url: `${url.protocol}//${isIP(host) === 6 ? `[${host}]` : host}:${port}`,
    host,
    port,
    secure,
    tls: secure ? (own ?? tls) : undefined,
  }
}

export type EndpointSwitch = { from: Endpoint; to: Endpoint }

/**
 * Which endpoint to try next, and when to give up on one. Plain data and no I/O: the supervisor
 * reports outcomes, the pool answers. After `failoverAfter` consecutive failed attempts on the
 * current endpoint it moves to the next one in the list (wrapping around), so a region that is
 * down costs a few attempts, not a full backoff ladder.
 */
export class EndpointPool {
  private index = 0
  private failures = 0
  /** An endpoint that a directive or redirect named, outside the configured list. */
  private extra: Endpoint | undefined

  constructor(
    private readonly endpoints: readonly Endpoint[],
    private readonly failoverAfter: number,
  ) {
    if (endpoints.length === 0)
      throw new UplinkError('INVALID_OPTIONS', 'endpoints must not be empty')
  }

  current(): Endpoint {
    return this.extra ?? (this.endpoints[this.index] as Endpoint)
  }

  list(): readonly Endpoint[] {
    return this.endpoints
  }

  consecutiveFailures(): number {
    return this.failures
  }

  succeeded(): void {
    this.failures = 0
  }

  /** Records a failed attempt; returns the switch when it moves on to another endpoint. */
  failed(): EndpointSwitch | undefined {
    this.failures++
    if (this.failures < this.failoverAfter) return undefined
    const from = this.current()
    if (this.extra) this.extra = undefined
    else if (this.endpoints.length > 1) this.index = (this.index + 1) % this.endpoints.length
    else {
      this.failures = 0
      return undefined
    }
    this.failures = 0
    return { from, to: this.current() }
  }

  /** Makes `endpoint` current (a planned move); one outside the list is kept until it fails. */
  moveTo(endpoint: Endpoint): void {
    const i = this.endpoints.findIndex((e) => e.url === endpoint.url)
    if (i >= 0) {
      this.index = i
      this.extra = undefined
    } else {
      this.extra = endpoint
    }
    this.failures = 0
  }
}

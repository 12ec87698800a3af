/**
 * Every error Uplink raises or emits is an UplinkError with a stable `code`, so callers branch on
 * the code and never on message text. Messages name the field or value at fault; they never
 * carry credentials.
 */
export type UplinkErrorCode =
  // configuration and API misuse
  | 'INVALID_OPTIONS'
  | 'INVALID_TOPIC'
  | 'INVALID_PAYLOAD'
  | 'INVALID_ARGUMENT'
  | 'NOT_STARTED'
  | 'STOPPED'
  | 'LISTENER_ERROR'
  // name resolution
  | 'DNS_TIMEOUT'
  | 'DNS_NXDOMAIN'
  | 'DNS_SERVFAIL'
  | 'DNS_REFUSED'
  | 'DNS_MALFORMED'
  | 'DNS_NO_ADDRESS'
  | 'DNS_FALLBACK'
  // connection
  | 'CONNECT_TIMEOUT'
  | 'CONNECT_FAILED'
  | 'CONNECT_REFUSED'
  | 'TLS_ERROR'
  | 'KEEPALIVE_TIMEOUT'
  | 'CONNECTION_LOST'
  | 'PUBLISH_FAILED'
  | 'PUBLISH_REFUSED'
  | 'SUBSCRIBE_FAILED'
  // outbox
  | 'OUTBOX_FULL'
  | 'OUTBOX_DISK_FULL'
  | 'OUTBOX_CORRUPT'
  | 'OUTBOX_LOCKED'
  | 'OUTBOX_CLOSED'
  | 'OUTBOX_ERROR'
  // planned failover
  | 'CONCIERGE_ERROR'
  | 'DIRECTIVE_INVALID'
  | 'DIRECTIVE_REFUSED'
  | 'FAILOVER_FAILED'

/**
 * Marks an UplinkError from any copy of this package: npm may install two (a nested one for a
 * second version, or the ESM and the CommonJS build in one process), and each has its own class.
 */
const BRAND: unique symbol = Symbol.for('uplink.error') as never

export class UplinkError extends Error {
  /** `instanceof UplinkError` holds for an UplinkError from another copy too (it checks the brand). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as { [BRAND]?: unknown })[BRAND] === true
    )
  }

  override readonly name = 'UplinkError'
  readonly code: UplinkErrorCode
  /** Machine-readable facts about the failure (reason codes, server references); never secrets. */
  readonly details: Readonly<Record<string, unknown>> | undefined

  constructor(
    code: UplinkErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.details = options?.details
  }
}

// On the prototype, not each instance: no own property for util.inspect or JSON to show.
Object.defineProperty(UplinkError.prototype, BRAND, { value: true })

/** True for an UplinkError from any copy of @uplink/client, and (given `code`) with that code. */
export function isUplinkError(err: unknown, code?: UplinkErrorCode): err is UplinkError {
  return err instanceof UplinkError && (code === undefined || err.code === code)
}

/** Wraps anything thrown into an UplinkError, keeping the original as `cause`. */
export function toUplinkError(err: unknown, code: UplinkErrorCode, context?: string): UplinkError {
  if (err instanceof UplinkError) return err
  const text = err instanceof Error ? err.message : String(err)
  return new UplinkError(code, context ? `${context}: ${text}` : text, { cause: err })
}

import type { FailoverReason } from './events.js'

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

/** What one address's failure was, inside a connect error that raced several. */
export interface AddressFailure {
  address: string
  code: unknown
}

/** A connect attempt's failure: which address connected (if one did), or which were tried. */
export interface ConnectFailureDetails {
  /** The address that connected and then failed; absent when none connected at all. */
  address?: string
  addresses?: string[]
  failures?: AddressFailure[]
  /** TLS_ERROR: Node's code for the TLS failure (ERR_TLS_CERT_ALTNAME_INVALID, …). */
  tlsCode?: string
}

/** A broker's MQTT 5 answer: its reason code and, for a redirect, where to go instead. */
export interface BrokerAnswerDetails {
  reasonCode: number
  address: string
  serverReference?: string
}

/** A DNS server's failure for one name and type. */
export interface DnsFailureDetails {
  server: string
  name: string
  type?: string
  types?: string[]
  rcode?: string
  resolutionDelayMs?: number
}

export interface OutboxDetails {
  path?: string
  /** OUTBOX_CORRUPT: where the unusable file was moved aside. */
  movedTo?: string
  /** OUTBOX_ERROR: the SQLite drivers tried, none of which loads on this runtime. */
  tried?: string[]
}

/**
 * What `details` holds for each code: machine-readable facts about the failure, never secrets.
 * `undefined`: the code carries none.
 */
export interface ErrorDetails {
  INVALID_OPTIONS: { field: string; suggestion?: string }
  INVALID_TOPIC: undefined
  INVALID_PAYLOAD: undefined
  INVALID_ARGUMENT: undefined
  NOT_STARTED: undefined
  STOPPED: undefined
  LISTENER_ERROR: { event: string }
  DNS_TIMEOUT: DnsFailureDetails
  DNS_NXDOMAIN: DnsFailureDetails
  DNS_SERVFAIL: DnsFailureDetails
  DNS_REFUSED: DnsFailureDetails
  DNS_MALFORMED: DnsFailureDetails
  DNS_NO_ADDRESS: DnsFailureDetails
  /** `cause`: the code of the DNS failure that made the system's lookup step in. */
  DNS_FALLBACK: { cause: UplinkErrorCode }
  CONNECT_TIMEOUT: ConnectFailureDetails
  CONNECT_FAILED: ConnectFailureDetails
  CONNECT_REFUSED: BrokerAnswerDetails & ConnectFailureDetails
  /** A certificate or key refused at start-up (`field`, never retried) or at connect. */
  TLS_ERROR: ConnectFailureDetails & { field?: string; retryable?: false }
  KEEPALIVE_TIMEOUT: undefined
  /** `byClient`: closed by Uplink itself (a clean end), not by the link or the broker. */
  CONNECTION_LOST: Partial<BrokerAnswerDetails> & { byClient?: true }
  /** `strikes`: how many links closed under a message set aside. */
  PUBLISH_FAILED: { strikes: number }
  PUBLISH_REFUSED: { reasonCode: number; reasonName: string }
  SUBSCRIBE_FAILED: undefined
  OUTBOX_FULL: OutboxDetails
  OUTBOX_DISK_FULL: OutboxDetails
  OUTBOX_CORRUPT: OutboxDetails
  OUTBOX_LOCKED: OutboxDetails
  OUTBOX_CLOSED: OutboxDetails
  OUTBOX_ERROR: OutboxDetails
  /** `status`: the HTTP status, when the concierge answered one. */
  CONCIERGE_ERROR: { status: number }
  DIRECTIVE_INVALID: undefined
  /** A stale epoch (`epoch`, `lastEpoch`) or a host outside the allow-list (`host`). */
  DIRECTIVE_REFUSED: { epoch: number; lastEpoch: number } | { host: string }
  /** The move that failed: why it was asked for, and where to. */
  FAILOVER_FAILED: { reason: FailoverReason; target: string }
}

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (
  x: infer I,
) => void
  ? I
  : never

/** The details of an error whose code is not known: any code's fields, each optional. */
export type AnyErrorDetails = Partial<
  UnionToIntersection<Exclude<ErrorDetails[UplinkErrorCode], undefined>>
>

/** The details type of code `C`; for the whole union of codes, AnyErrorDetails. */
export type ErrorDetailsOf<C extends UplinkErrorCode> = UplinkErrorCode extends C
  ? AnyErrorDetails
  : ErrorDetails[C]

/**
 * Marks an UplinkError from any copy of this package: npm may install two (a nested one for a
 * second version, or the ESM and the CommonJS build in one process), and each has its own class.
 */
const BRAND: unique symbol = Symbol.for('uplink.error') as never

export class UplinkError<C extends UplinkErrorCode = UplinkErrorCode> extends Error {
  /** `instanceof UplinkError` holds for an UplinkError from another copy too (it checks the brand). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as { [BRAND]?: unknown })[BRAND] === true
    )
  }

  override readonly name = 'UplinkError'
  readonly code: C
  /** Machine-readable facts about the failure, typed per code (ErrorDetails); never secrets. */
  readonly details: Readonly<ErrorDetailsOf<C>> | undefined

  constructor(
    code: C,
    message: string,
    options?: { cause?: unknown; details?: ErrorDetailsOf<C> | undefined },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.details = options?.details
  }
}

// On the prototype, not each instance: no own property for util.inspect or JSON to show.
Object.defineProperty(UplinkError.prototype, BRAND, { value: true })

/**
 * Runs `make` with V8's stack capture off, for errors that report what the network did rather
 * than what a caller's code did: a stack taken in a socket callback or a microtask names only
 * Uplink's internals, and capturing one cost ~20 µs on every failed attempt of a reconnect storm
 * (the storm bench's device profile had it as the client's largest single cost). The `cause`, if
 * any, keeps Node's own error.
 */
export function withoutStack<T>(make: () => T): T {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  let made: T
  try {
    made = make()
  } finally {
    Error.stackTraceLimit = limit
  }
  // V8 still writes the header line; Bun's engine leaves no `stack` at all, and a logger that
  // prints err.stack would print "undefined". Non-enumerable, as an engine's own stack is.
  // hasOwn, not a read of `stack`: on V8 the read formats the stack, for every failed attempt.
  if (made instanceof Error && !Object.hasOwn(made, 'stack')) {
    Object.defineProperty(made, 'stack', {
      value: `${made.name}: ${made.message}`,
      writable: true,
      configurable: true,
    })
  }
  return made
}

/** An UplinkError about what the network or a server did, built without a stack (withoutStack). */
export function networkError<C extends UplinkErrorCode>(
  code: C,
  message: string,
  options?: { cause?: unknown; details?: ErrorDetailsOf<C> | undefined },
): UplinkError<C> {
  return withoutStack(() => new UplinkError(code, message, options))
}

/** True for an UplinkError from any copy of @uplink/client, and (given `code`) with that code. */
export function isUplinkError<C extends UplinkErrorCode = UplinkErrorCode>(
  err: unknown,
  code?: C,
): err is UplinkError<C> {
  return err instanceof UplinkError && (code === undefined || err.code === code)
}

/**
 * What a thrown value says, whatever it is: String() itself throws for some (an object without a
 * prototype), and a user's listener may throw anything.
 */
export function textOf(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err)
  } catch {
    return 'a value that cannot be shown as text'
  }
}

/** Wraps anything thrown into an UplinkError, keeping the original as `cause`. */
export function toUplinkError(err: unknown, code: UplinkErrorCode, context?: string): UplinkError {
  if (err instanceof UplinkError) return err
  const text = textOf(err)
  return new UplinkError(code, context ? `${context}: ${text}` : text, { cause: err })
}

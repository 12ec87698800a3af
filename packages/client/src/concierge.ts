import http from 'node:http'
import https from 'node:https'
import { type Clock, type RandomSource, sleep, within } from './clock.js'
import { type Directive, EpochFloor } from './directive.js'
import type { TlsConfig } from './endpoints.js'
import { toUplinkError, UplinkError } from './errors.js'
import { DEFAULTS, type ResolvedConcierge } from './options.js'
import { retry } from './retry.js'

export interface ConciergeOptions {
  /** HTTPS (or, for tests and closed networks, HTTP) URL that answers the directive as JSON. */
  url: string
  /**
   * Hosts a directive may name: exact names and `*.example.com` patterns, added to
   * `failover.allowedHosts` (default none: a directive may then name only those).
   */
  allowedHosts?: string[]
  /** Time between polls; a directive's pollIntervalSeconds overrides it. Default 5 min. */
  intervalMs?: number
  /** Each poll is moved by up to this fraction of the interval, so a fleet does not poll in step. */
  jitter?: number
  /** Per request. */
  timeoutMs?: number
  /** Retries of a failed poll (5xx, timeouts, network errors), with exponential delay. */
  retries?: number
  /** CA and client certificate for the concierge's TLS. */
  tls?: TlsConfig
}

/** The defaults live in options.ts with every other; this name stays for existing imports. */
export { CONCIERGE_DEFAULTS } from './options.js'

const MAX_BODY_BYTES = 64 * 1024

type Answer = { status: 200; body: string; etag: string | undefined } | { status: 304 }

/**
 * Whether a failed request may succeed if asked again: a 5xx, a 429, a timeout or a network
 * fault may; any other HTTP status, or an answer too large, will not.
 */
function retryable(err: unknown): boolean {
  if (!(err instanceof UplinkError)) return true
  if (err.code === 'DIRECTIVE_INVALID') return false
  const status = err.details?.status
  return typeof status !== 'number' || status >= 500 || status === 429
}

/** A directive's poll interval within the bounds, in ms. */
export function pollIntervalMs(seconds: number): number {
  const { minPollSeconds, maxPollSeconds } = DEFAULTS.concierge
  return Math.min(maxPollSeconds, Math.max(minPollSeconds, seconds)) * 1000
}

/**
 * One GET with If-None-Match. 4xx is final (not retried); 5xx and network faults are retried.
 * `timeoutMs` bounds the whole request on the device's clock, not only a silence: a concierge
 * that trickles its answer a byte at a time held the poll, and with it every planned move, for
 * as long as it kept doing so.
 */
function request(
  url: URL,
  etag: string | undefined,
  options: ResolvedConcierge,
  signal: AbortSignal,
  clock: Clock,
): Promise<Answer> {
  const { timeoutMs } = options
  const lib = url.protocol === 'https:' ? https : http
  const t = options.tls ?? {}
  let deadline: unknown
  const answered = new Promise<Answer>((resolve, reject) => {
    const late = () =>
      req.destroy(
        new UplinkError('CONCIERGE_ERROR', `concierge did not answer within ${timeoutMs} ms`),
      )
    const req = lib.request(
      url,
      {
        method: 'GET',
        headers: { accept: 'application/json', ...(etag ? { 'if-none-match': etag } : {}) },
        signal,
        timeout: timeoutMs,
        ...(url.protocol === 'https:'
          ? { ca: t.ca, cert: t.cert, key: t.key, passphrase: t.passphrase }
          : {}),
      },
      (res) => {
        const status = res.statusCode ?? 0
        if (status === 304) {
          res.resume()
          return resolve({ status: 304 })
        }
        if (status !== 200) {
          res.resume()
          const err = new UplinkError('CONCIERGE_ERROR', `concierge answered HTTP ${status}`, {
            details: { status },
          })
          return reject(err)
        }
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > MAX_BODY_BYTES) {
            req.destroy()
            reject(new UplinkError('DIRECTIVE_INVALID', 'concierge answer is larger than 64 KiB'))
          } else chunks.push(chunk)
        })
        res.on('end', () => {
          const tag = res.headers.etag
          resolve({
            status: 200,
            body: Buffer.concat(chunks).toString('utf8'),
            etag: typeof tag === 'string' ? tag : undefined,
          })
        })
        res.on('error', reject)
      },
    )
    req.on('timeout', late)
    req.on('error', (err) =>
      reject(toUplinkError(err, 'CONCIERGE_ERROR', 'concierge request failed')),
    )
    deadline = clock.setTimeout(late, timeoutMs)
    req.end()
  })
  return answered.finally(() => clock.clearTimeout(deadline))
}

export interface ConciergeHooks {
  /** Parses and checks an answer against the allow-list and the epoch floor (throws if refused). */
  parse(body: string, lastEpoch: number | undefined): Directive
  /** A new, valid, allowed directive. */
  directive(directive: Directive): void
  /**
   * The last directive, confirmed again by a 304 or the same answer, while it is still the
   * newest word (no control message raised the epoch past it): where the device should be.
   */
  unchanged(directive: Directive): void
  /** A poll failed after its retries, or the answer was refused: the current endpoint stays. */
  error(err: UplinkError): void
}

/**
 * Asks the concierge which endpoint is active: on a jittered interval, and on demand (before a
 * reconnect when the last answer is stale). It reports directives and never moves the device
 * itself: the supervisor decides.
 */
export class ConciergePoller {
  private readonly url: URL
  private etag: string | undefined
  /** The last directive taken: what a 304 confirms. */
  private standing: Directive | undefined
  private lastAnswerAt: number | undefined
  private intervalMs: number
  private readonly abort = new AbortController()
  private inflight: Promise<Directive | undefined> | undefined

  /** `floor`: the epoch floor shared with the control topic. */
  constructor(
    private readonly options: ResolvedConcierge,
    private readonly clock: Clock,
    private readonly random: RandomSource,
    private readonly hooks: ConciergeHooks,
    private readonly floor = new EpochFloor(),
  ) {
    this.url = new URL(options.url)
    this.intervalMs = options.intervalMs
  }

  /** Polls now, then on the interval until stopped. */
  start(): void {
    void this.loop()
  }

  stop(): void {
    this.abort.abort(new UplinkError('STOPPED', 'concierge polling stopped'))
  }

  /** No answer yet, or the last one is older than the poll interval. */
  isStale(): boolean {
    return this.clock.now() >= this.staleAt()
  }

  /** When the last answer goes stale (now, without one). */
  staleAt(): number {
    return this.lastAnswerAt === undefined ? this.clock.now() : this.lastAnswerAt + this.intervalMs
  }

  /** A poll when the last answer is stale, bounded by two request timeouts; never rejects. */
  async refreshIfStale(): Promise<void> {
    if (this.isStale()) await within(this.clock, this.options.timeoutMs * 2, this.poll())
  }

  /** One poll with retries; concurrent callers share it. Resolves undefined when nothing new. */
  poll(): Promise<Directive | undefined> {
    this.inflight ??= this.pollOnce().finally(() => {
      this.inflight = undefined
    })
    return this.inflight
  }

  private async pollOnce(): Promise<Directive | undefined> {
    const signal = this.abort.signal
    try {
      const answer = await this.requestWithRetries(signal)
      this.lastAnswerAt = this.clock.now()
      const floor = this.floor.value
      if (answer.status === 304) {
        const standing = this.standing
        if (standing && standing.epoch >= (floor ?? standing.epoch)) this.hooks.unchanged(standing)
        return undefined
      }
      const directive = this.hooks.parse(answer.body, floor)
      this.etag = answer.etag
      if (directive.pollIntervalSeconds)
        this.intervalMs = pollIntervalMs(directive.pollIntervalSeconds)
      const changed =
        directive.endpoint.url !== this.standing?.endpoint.url || directive.epoch !== floor
      this.floor.raise(directive.epoch)
      this.standing = directive
      // Said again, an answer still matters: a device that fell back from its endpoint while it
      // was down goes back once it is up, rather than staying away until the answer changes.
      if (!changed) {
        this.hooks.unchanged(directive)
        return undefined
      }
      this.hooks.directive(directive)
      return directive
    } catch (err) {
      if (!signal.aborted)
        this.hooks.error(toUplinkError(err, 'CONCIERGE_ERROR', 'concierge poll failed'))
      return undefined
    }
  }

  /**
   * One request, and on a 5xx, 429, timeout or network fault up to `retries` more, about 200 ms,
   * 400 ms, ... apart on the device's clock (a test advances it; no real timer hides in a
   * library). Each delay is spread over half to one and a half times itself, so that a fleet
   * whose concierge failed at one moment does not retry in lockstep.
   */
  private requestWithRetries(signal: AbortSignal): Promise<Answer> {
    const first = DEFAULTS.conciergeRetryDelayMs
    return retry(() => request(this.url, this.etag, this.options, signal, this.clock), {
      retries: this.options.retries,
      clock: this.clock,
      signal,
      shouldRetry: retryable,
      delayMs: (n) => first * 2 ** (n - 1) * (0.5 + this.random()),
    })
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal
    const { jitter } = this.options
    while (!signal.aborted) {
      await this.poll()
      const wait = this.intervalMs * (1 - jitter + 2 * jitter * this.random())
      await sleep(this.clock, wait, signal).catch(() => {})
    }
  }
}

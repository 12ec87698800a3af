import { UplinkError } from './errors.js'
import type { UplinkOptions } from './options.js'

/**
 * Every option name, nested as the options are, so that a misspelt key (`keepAlive`,
 * `clientID`, `backoff.initialMS`) is refused with the name meant instead of being ignored and
 * leaving the default in force. `true` marks a leaf; an object, a nested group; `endpoint` the
 * shape of one endpoint object.
 */
export type KeyTree = { readonly [key: string]: true | KeyTree }

const TLS: KeyTree = { ca: true, cert: true, key: true, passphrase: true, alpnProtocols: true }

export const OPTION_KEYS: KeyTree = {
  clientId: true,
  endpoints: true,
  tls: TLS,
  username: true,
  password: true,
  protocolVersion: true,
  keepalive: true,
  connectTimeoutMs: true,
  connectAttemptDelayMs: true,
  backoff: {
    initialMs: true,
    maxMs: true,
    jitter: true,
    stableMs: true,
    informed: { spreadMs: true, minProbeIntervalMs: true },
  },
  failoverAfter: true,
  dns: {
    servers: true,
    timeoutMs: true,
    attempts: true,
    family: true,
    resolutionDelayMs: true,
    systemFallback: true,
    watch: { minIntervalMs: true, maxIntervalMs: true },
  },
  concierge: {
    url: true,
    allowedHosts: true,
    intervalMs: true,
    jitter: true,
    timeoutMs: true,
    retries: true,
    tls: TLS,
  },
  control: { topic: true },
  failover: { allowedHosts: true, minStayMs: true, handoverTimeoutMs: true },
  session: { clean: true, expirySeconds: true },
  outbox: true,
  inflightWindow: true,
  poisonAfter: true,
  maxPayloadBytes: true,
  presence: { topic: true, online: true, offline: true, qos: true },
  clock: true,
  random: true,
} satisfies Record<keyof Required<UplinkOptions>, true | KeyTree>

export const ENDPOINT_KEYS: KeyTree = { url: true, tls: TLS }

/** Edit distance with transpositions, case-insensitive: how far a typo is from a real name. */
function distance(a: string, b: string): number {
  const x = a.toLowerCase()
  const y = b.toLowerCase()
  const d: number[][] = Array.from({ length: x.length + 1 }, (_, i) =>
    Array.from({ length: y.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  )
  const at = (i: number, j: number) => (d[i] as number[])[j] as number
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost)
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1]) {
        best = Math.min(best, at(i - 2, j - 2) + 1)
      }
      ;(d[i] as number[])[j] = best
    }
  }
  return at(x.length, y.length)
}

/** The valid name closest to `key`, if it is close enough to be what was meant. */
export function nearest(key: string, names: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const name of names) {
    const d = distance(key, name)
    if (d < bestDistance) {
      best = name
      bestDistance = d
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(key.length / 3))
    ? best
    : undefined
}

/**
 * Throws INVALID_OPTIONS for the first key of `value` (walked down the groups of `tree`) that is
 * not an option, naming it in full (`backoff.initialMS`) and the nearest valid name.
 */
export function checkKeys(value: unknown, tree: KeyTree, prefix: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return
  const names = Object.keys(tree)
  for (const key of Object.keys(value)) {
    const field = prefix ? `${prefix}.${key}` : key
    const spec = tree[key]
    if (spec === undefined) {
      const near = nearest(key, names)
      throw new UplinkError(
        'INVALID_OPTIONS',
        `${field} is not an option${near ? `; did you mean ${prefix ? `${prefix}.` : ''}${near}?` : ''}`,
        { details: { field, ...(near ? { suggestion: near } : {}) } },
      )
    }
    if (spec !== true) checkKeys((value as Record<string, unknown>)[key], spec, field)
  }
}

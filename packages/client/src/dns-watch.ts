import { isIP } from 'node:net'
import { type Clock, sleep } from './clock.js'
import type { Resolution, Resolver } from './dns.js'
import { toUplinkError, type UplinkError } from './errors.js'

export interface DnsWatchOptions {
  host: string
  /** The address the device is connected to. */
  address: string
  resolver: Resolver
  clock: Clock
  /** Never re-resolve more often than this, whatever the TTL says. */
  minIntervalMs: number
  /** Re-resolve at least this often, however long the TTL. */
  maxIntervalMs?: number | undefined
  /** The connected address has left the answer: time to move. Called once. */
  onMoved(resolution: Resolution): void
  onError?(error: UplinkError): void
}

/**
 * While connected, re-resolves `host` each time its TTL runs out and reports when the connected
 * address is no longer in the answer: a DNS failover record moved while the connection stayed
 * healthy, so nothing else would tell the device to move.
 */
export function watchDns(o: DnsWatchOptions): { stop(): void } {
  const abort = new AbortController()
  const max = o.maxIntervalMs ?? Number.POSITIVE_INFINITY
  const interval = (ttlSeconds: number) =>
    Math.max(o.minIntervalMs, Math.min(ttlSeconds * 1_000, max))

  const run = async () => {
    // The TTL of the answer that led to this connection is not passed in, and resolving at once
    // would only repeat the lookup the connect just made: the first look waits the minimum.
    let wait = o.minIntervalMs
    for (;;) {
      await sleep(o.clock, wait, abort.signal)
      let resolution: Resolution
      try {
        resolution = await o.resolver.resolve(o.host, abort.signal)
      } catch (err) {
        if (abort.signal.aborted) return
        // An empty answer (DNS_NO_ADDRESS) lands here too: more likely a broken record than a
        // failover, so it is reported and never taken as a move.
        report(toUplinkError(err, 'DNS_TIMEOUT', `watching ${o.host}`))
        wait = o.minIntervalMs
        continue
      }
      if (abort.signal.aborted) return
      wait = interval(resolution.ttl)
      // Only the DNS servers' own answer may move a healthy connection. The system fallback can
      // serve a stale cache (nscd, systemd-resolved) or a hosts-file entry that differs from the
      // failover record, and moving on that would flap between the two views.
      if (resolution.source !== 'dns' || resolution.addresses.length === 0) continue
      // A family that failed says nothing about its addresses: its absence from the answer is
      // not the connected address leaving the record (a server refusing AAAA is no failover).
      if (resolution.partial?.family === isIP(o.address)) continue
      if (!resolution.addresses.some((a) => a.address === o.address)) {
        abort.abort()
        o.onMoved(resolution)
        return
      }
    }
  }
  const report = (error: UplinkError) => {
    try {
      o.onError?.(error)
    } catch {
      // A listener's bug must not end the watch: the next move would go unnoticed.
    }
  }
  run().catch(() => {
    // The abort from stop() ends the loop with a rejection; an onMoved that throws ends it too,
    // which is right, as it has been told once.
  })
  return { stop: () => abort.abort() }
}

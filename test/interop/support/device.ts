import { createUplink, type Uplink, type UplinkOptions } from '@uplink/client'
import { startMosquitto, type TestMosquitto } from '@uplink/testkit'
import { afterEach } from 'vitest'

/** Teardown in reverse order after every test, pass or fail. */
const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
})
export function onCleanup<T extends { stop(): Promise<unknown> }>(thing: T): T {
  cleanup.push(() => thing.stop())
  return thing
}

/**
 * A device tuned for fast tests: keepalive 1 s (a dead link noticed within 1.5 s), backoff
 * 50-500 ms, one failure before the next endpoint, no flap damping. `dns.family: 4` unless a
 * test is about the families (dnsmasq REFUSEs AAAA for its local names).
 */
export function device(options: Partial<UplinkOptions> & Pick<UplinkOptions, 'endpoints'>): Uplink {
  const uplink = createUplink({
    clientId: `gw-${Math.random().toString(16).slice(2, 10)}`,
    keepalive: 1,
    connectTimeoutMs: 2_000,
    backoff: { initialMs: 50, maxMs: 500, stableMs: 1_000 },
    failoverAfter: 1,
    ...options,
    dns: { family: 4, timeoutMs: 500, systemFallback: false, ...options.dns },
    failover: { minStayMs: 0, ...options.failover },
  })
  return onCleanup(uplink)
}

/** Two regions' Mosquittos on one port, 127.0.0.1 and 127.0.0.2: one URL reaches either. */
export async function twoRegions(
  options: Parameters<typeof startMosquitto>[0] = {},
): Promise<[TestMosquitto, TestMosquitto]> {
  for (let attempt = 0; ; attempt++) {
    const a = onCleanup(await startMosquitto({ ...options, host: '127.0.0.1' }))
    try {
      const b = onCleanup(await startMosquitto({ ...options, host: '127.0.0.2', port: a.port }))
      return [a, b]
    } catch (err) {
      // The port was free on 127.0.0.1 but taken on 127.0.0.2: another pick.
      if (attempt >= 4) throw err
    }
  }
}

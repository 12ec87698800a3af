import { startDnsServer, type TestDnsServer, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../src/clock.js'
import { createResolver, type Resolution, type Resolver } from '../src/dns.js'
import { watchDns } from '../src/dns-watch.js'
import { UplinkError } from '../src/errors.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

async function setup(ttl: number) {
  const dns: TestDnsServer = await startDnsServer()
  cleanup.push(() => dns.stop())
  dns.set('iot.uplink.test', ['127.0.0.1'], ttl)
  const clock = new ManualClock(0)
  const resolver = createResolver({
    servers: [dns.server],
    timeoutMs: 200,
    attempts: 1,
    family: 4,
    systemFallback: false,
  })
  const moved: Resolution[] = []
  const errors: UplinkError[] = []
  const watcher = watchDns({
    host: 'iot.uplink.test',
    address: '127.0.0.1',
    resolver,
    clock,
    minIntervalMs: 10_000,
    maxIntervalMs: 300_000,
    onMoved: (r) => moved.push(r),
    onError: (e) => errors.push(e),
  })
  cleanup.push(() => watcher.stop())
  return { dns, clock, moved, errors, watcher }
}

/** Advances the clock and waits for the real DNS exchange it sets off. */
async function tick(clock: ManualClock, ms: number, dns: TestDnsServer, queries: number) {
  await clock.advance(ms)
  await waitFor(() => dns.queryCount >= queries, `${queries} queries`)
  // Let the answer reach the watcher before the next step.
  await new Promise((r) => setTimeout(r, 20))
}

describe('watchDns', () => {
  it('re-resolves when the TTL runs out, not before the minimum, and moves once the address leaves', async () => {
    const { dns, clock, moved } = await setup(30)
    await clock.advance(9_999)
    expect(dns.queryCount).toBe(0)
    await tick(clock, 1, dns, 1)
    expect(moved).toEqual([])
    // The answer said TTL 30 s: nothing until then.
    await clock.advance(29_999)
    expect(dns.queryCount).toBe(1)
    dns.set('iot.uplink.test', ['127.0.0.2'], 30)
    await tick(clock, 1, dns, 2)
    expect(moved).toHaveLength(1)
    expect(moved[0]?.addresses.map((a) => a.address)).toEqual(['127.0.0.2'])
    // Once moved, it stops watching.
    await clock.advance(600_000)
    expect(dns.queryCount).toBe(2)
  })

  it('a short TTL is held to minIntervalMs; the address still in the answer is no move', async () => {
    const { dns, clock, moved } = await setup(1)
    await tick(clock, 10_000, dns, 1)
    dns.set('iot.uplink.test', ['127.0.0.1', '127.0.0.2'], 1)
    await clock.advance(9_999)
    expect(dns.queryCount).toBe(1)
    await tick(clock, 1, dns, 2)
    expect(moved).toEqual([])
  })

  it('reports errors and keeps watching; an empty answer is not a move', async () => {
    const { dns, clock, moved, errors } = await setup(60)
    dns.setFault('servfail', { times: 1 })
    await tick(clock, 10_000, dns, 1)
    await waitFor(() => errors.length === 1, 'the error')
    expect(errors[0]?.code).toBe('DNS_SERVFAIL')
    dns.set('iot.uplink.test', [], 60)
    // After an error the next look comes at the minimum interval, not the TTL.
    await tick(clock, 10_000, dns, 2)
    await waitFor(() => errors.length === 2, 'the second error')
    expect(errors[1]?.code).toBe('DNS_NO_ADDRESS')
    expect(moved).toEqual([])
    dns.set('iot.uplink.test', ['127.0.0.3'], 60)
    await tick(clock, 60_000, dns, 3)
    expect(moved).toHaveLength(1)
  })

  it('a long TTL is held to maxIntervalMs', async () => {
    const { dns, clock } = await setup(86_400)
    await tick(clock, 10_000, dns, 1)
    await clock.advance(299_999)
    expect(dns.queryCount).toBe(1)
    await tick(clock, 1, dns, 2)
  })

  it('stop() during a lookup ends it with no callback', async () => {
    const { dns, clock, moved, errors, watcher } = await setup(60)
    dns.setFault('drop')
    await tick(clock, 10_000, dns, 1)
    watcher.stop()
    dns.set('iot.uplink.test', ['127.0.0.2'], 60)
    dns.setFault('none')
    // Longer than the resolver's 200 ms timeout: had the lookup gone on, it would have failed.
    await new Promise((r) => setTimeout(r, 300))
    await clock.advance(600_000)
    expect(dns.queryCount).toBe(1)
    expect(errors).toEqual([])
    expect(moved).toEqual([])
    expect(clock.pending()).toBe(0)
  })

  it('stop() ends it', async () => {
    const { dns, clock, watcher } = await setup(60)
    watcher.stop()
    await clock.advance(600_000)
    expect(dns.queryCount).toBe(0)
  })
})

describe('watchDns and the system fallback', () => {
  /** A resolver whose answers a test scripts: the fallback path needs no broken network. */
  function scripted(answers: Array<Resolution | UplinkError>): Resolver & { calls: number } {
    const r = {
      calls: 0,
      async resolve() {
        const next = answers[Math.min(r.calls++, answers.length - 1)] as Resolution | UplinkError
        if (next instanceof UplinkError) throw next
        return next
      },
    }
    return r
  }

  const at = (source: Resolution['source'], address: string, ttl = 0): Resolution => ({
    host: 'iot.uplink.test',
    addresses: [{ address, family: 4, ttl }],
    ttl,
    source,
  })

  /** Watches 127.0.0.1 through a scripted resolver, looking every second. */
  function watchScripted(answers: Array<Resolution | UplinkError>, onError?: () => void) {
    const clock = new ManualClock(0)
    const resolver = scripted(answers)
    const moved: Resolution[] = []
    const watcher = watchDns({
      host: 'iot.uplink.test',
      address: '127.0.0.1',
      resolver,
      clock,
      minIntervalMs: 1_000,
      onMoved: (r) => moved.push(r),
      onError,
    })
    cleanup.push(() => watcher.stop())
    return { clock, resolver, moved }
  }

  it('moves on a DNS answer only, never on a system one', async () => {
    const { clock, resolver, moved } = watchScripted([
      at('system', '10.9.9.9'),
      at('system', '10.9.9.9'),
      at('dns', '127.0.0.2', 30),
    ])
    await clock.advance(1_000)
    await clock.advance(1_000)
    expect(resolver.calls).toBe(2)
    expect(moved).toEqual([])
    await clock.advance(1_000)
    expect(resolver.calls).toBe(3)
    expect(moved.map((r) => r.source)).toEqual(['dns'])
  })

  it('a listener that throws does not end the watch', async () => {
    const { clock, moved } = watchScripted(
      [new UplinkError('DNS_TIMEOUT', 'timeout'), at('dns', '127.0.0.2', 30)],
      () => {
        throw new Error('listener bug')
      },
    )
    await clock.advance(1_000)
    await clock.advance(1_000)
    expect(moved).toHaveLength(1)
  })
})

describe('watchDns with one family failing', () => {
  /** Watches `address` with both families asked of a real DNS server, looking every 10 s. */
  async function watchBoth(address: string) {
    const dns = await startDnsServer()
    cleanup.push(() => dns.stop())
    dns.set('iot.uplink.test', ['127.0.0.1', '::1'], 1)
    const clock = new ManualClock(0)
    const resolutions: Resolution[] = []
    const real = createResolver({
      servers: [dns.server],
      timeoutMs: 200,
      attempts: 1,
      family: 0,
      systemFallback: false,
    })
    const moved: Resolution[] = []
    const watcher = watchDns({
      host: 'iot.uplink.test',
      address,
      resolver: {
        resolve: async (host, signal) => {
          const r = await real.resolve(host, signal)
          resolutions.push(r)
          return r
        },
      },
      clock,
      minIntervalMs: 10_000,
      onMoved: (r) => moved.push(r),
    })
    cleanup.push(() => watcher.stop())
    /** One more look, and its answer seen. */
    const look = async () => {
      const before = resolutions.length
      await clock.advance(10_000)
      await waitFor(() => resolutions.length > before, 'the next resolution')
      await new Promise((r) => setTimeout(r, 20))
    }
    return { dns, moved, resolutions, look }
  }

  it('AAAA failing never moves a device connected over IPv6, however often it looks', async () => {
    const { dns, moved, resolutions, look } = await watchBoth('::1')
    for (const fault of ['refused', 'servfail', 'drop', 'garbage'] as const) {
      dns.setFault(fault, { type: 'AAAA' })
      await look()
      expect(resolutions.at(-1)?.partial).toMatchObject({ family: 6 })
      // The connected ::1 is missing from the addresses, but only because AAAA failed.
      expect(resolutions.at(-1)?.addresses.map((a) => a.address)).toEqual(['127.0.0.1'])
    }
    expect(moved).toEqual([])
    // A whole answer without ::1 is a real move.
    dns.setFault('none')
    dns.set('iot.uplink.test', ['127.0.0.1', '::2'], 1)
    await look()
    expect(moved).toHaveLength(1)
  })

  it('AAAA failing does not hide an IPv4 move: the A answer is whole', async () => {
    const { dns, moved, look } = await watchBoth('127.0.0.1')
    dns.setFault('refused', { type: 'AAAA' })
    await look()
    expect(moved).toEqual([])
    dns.set('iot.uplink.test', ['127.0.0.2', '::1'], 1)
    await look()
    expect(moved.map((r) => r.addresses.map((a) => a.address))).toEqual([['127.0.0.2']])
  })
})

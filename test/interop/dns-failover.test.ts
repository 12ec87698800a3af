import { createResolver, createUplink, DEFAULTS, type UplinkOptions } from '@uplink/client'
import { startDnsmasq, startUnbound, waitFor } from '@uplink/testkit'
import { describe, expect, it } from 'vitest'
import { collect, delivered, publishNumbered } from './support/accounting.js'
import { device, onCleanup, twoRegions } from './support/device.js'
import { connected, drained, nextEvent } from './support/events.js'

const NAME = 'broker.site.test'

type Records = Record<string, string[]>

/** Each DNS server a gateway meets, started with `NAME` pointing at 127.0.0.1 unless told. */
const servers = {
  dnsmasq: (records: Records = { [NAME]: ['127.0.0.1'] }) => startDnsmasq({ records }),
  unbound: (records: Records = { [NAME]: ['127.0.0.1'] }) => startUnbound({ records }),
}

describe.each(Object.keys(servers) as Array<keyof typeof servers>)('DNS from %s', (kind) => {
  async function setUp(watch: boolean, options: Partial<UplinkOptions> = {}) {
    const [a, b] = await twoRegions()
    const dns = onCleanup(await servers[kind]())
    const topic = `telemetry/${kind}/${watch ? 'watch' : 'crash'}`
    const atA = onCleanup(await collect(a.url, topic))
    const atB = onCleanup(await collect(b.url, topic))
    const uplink = device({
      endpoints: [`mqtt://${NAME}:${a.port}`],
      dns: {
        servers: [dns.server],
        ...(watch ? { watch: { minIntervalMs: 200, maxIntervalMs: 1_000 } } : {}),
      },
      ...options,
    })
    await uplink.start()
    await connected(uplink)
    const traffic = publishNumbered(uplink, topic)
    await waitFor(() => atA.seqs.length >= 20, 'traffic on the primary')
    return { a, b, dns, uplink, traffic, atA, atB }
  }

  it("many clients' resolvers asking at once share the process's bounded sockets, and each gets its own name's record from the DNS server", async () => {
    // More questions than one socket's budget (32), all in flight together: the server's answers
    // come back on shared ports in whatever order it sends them, and only the id and the echoed
    // question tell them apart.
    const names = Array.from({ length: 40 }, (_, i) => `device-${i}.site.test`)
    const dns = onCleanup(
      await servers[kind](Object.fromEntries(names.map((n, i) => [n, [`127.0.1.${i + 1}`]]))),
    )
    const resolutions = await Promise.all(
      names.map((name) =>
        createResolver({
          servers: [dns.server],
          timeoutMs: 2_000,
          attempts: 2,
          family: 4,
          systemFallback: false,
        }).resolve(name),
      ),
    )
    expect(resolutions.map((r) => r.addresses.map((a) => a.address))).toEqual(
      names.map((_, i) => [`127.0.1.${i + 1}`]),
    )
    expect(new Set(resolutions.map((r) => r.source))).toEqual(new Set(['dns']))
  })

  it('after the primary Mosquitto crashes, follows the record flipped on the DNS server to the secondary and loses nothing', async () => {
    const { a, dns, uplink, traffic, atA, atB } = await setUp(false)
    const moved = nextEvent(uplink, 'connect', (e) => e.address === '127.0.0.2')
    await a.kill()
    await dns.set(NAME, ['127.0.0.2'])
    await moved
    await waitFor(() => atB.seqs.length >= 20, 'traffic on the secondary')
    traffic.stop()
    await drained(uplink)
    const result = await delivered(traffic.accepted, [atA, atB])
    expect(result.lost).toEqual([])
    expect(result.reordered).toBe(0)
    // A crash may cost the acknowledgements in flight: those go again (at least once), no more.
    expect(result.duplicates).toBeLessThanOrEqual(DEFAULTS.inflightWindow)
  })

  it("informed backoff: a device waiting out a 30 s backoff follows the record flipped on the DNS server after the answer's 1 s TTL, not the wait", async () => {
    const { a, dns, uplink, traffic, atA, atB } = await setUp(false, {
      // Not stable yet (stableMs 60 s), so the loss climbs the ladder: a flat 30 s first wait.
      backoff: {
        initialMs: 30_000,
        maxMs: 60_000,
        jitter: 'none',
        stableMs: 60_000,
        informed: { spreadMs: 200, minProbeIntervalMs: 1_000 },
      },
    })
    const waiting = nextEvent(uplink, 'reconnecting')
    await a.kill()
    expect((await waiting).delayMs).toBe(30_000)
    const moved = nextEvent(uplink, 'connect', (e) => e.address === '127.0.0.2', 15_000)
    await dns.set(NAME, ['127.0.0.2'])
    // Well inside the 30 s: the wait ended on the probe's news, after 0..200 ms of spread.
    await moved
    await waitFor(() => atB.seqs.length >= 20, 'traffic on the secondary')
    traffic.stop()
    await drained(uplink)
    expect((await delivered(traffic.accepted, [atA, atB])).lost).toEqual([])
  })

  it('informed backoff: a retry whose own lookup on the DNS server finds the flipped record goes there after the arrival spread, not at once', async () => {
    const { a, dns, uplink, traffic, atA, atB } = await setUp(false, {
      // Probes a minute apart: the 1 s retry's own lookup is what learns of the flip.
      backoff: {
        initialMs: 1_000,
        maxMs: 2_000,
        jitter: 'none',
        stableMs: 60_000,
        informed: { spreadMs: 300, minProbeIntervalMs: 60_000 },
      },
      // A spread of 150 ms. Math.random drew under 1/300 once in a few hundred runs: a spread
      // of 0 ms, with no wait to be seen, which is a correct arrival but not what this proves.
      random: () => 0.5,
    })
    const states: string[] = []
    uplink.on('state', (e) => states.push(e.state))
    const moved = nextEvent(uplink, 'connect', (e) => e.address === '127.0.0.2', 15_000)
    await a.kill()
    await dns.set(NAME, ['127.0.0.2'])
    await moved
    // Lost, the ladder's wait, then the retry: its lookup names 127.0.0.2, so it waits out the
    // spread before it connects there.
    const retry = states.lastIndexOf('resolving')
    expect(states.slice(retry)).toEqual(['resolving', 'backing-off', 'connecting', 'connected'])
    await waitFor(() => atB.seqs.length >= 20, 'traffic on the secondary')
    traffic.stop()
    await drained(uplink)
    expect((await delivered(traffic.accepted, [atA, atB])).lost).toEqual([])
  })

  it('the DNS watch moves a healthy connection when the record changes, make-before-break: nothing lost, nothing sent twice', async () => {
    const { b, dns, uplink, traffic, atA, atB } = await setUp(true)
    const moved = nextEvent(uplink, 'failover')
    await traffic.burst(200)
    await dns.set(NAME, ['127.0.0.2'])
    const event = await moved
    expect(event.reason).toBe('dns-changed')
    expect(event.toAddress).toBe('127.0.0.2')
    await waitFor(() => atB.seqs.length >= 20, 'traffic on the secondary')
    traffic.stop()
    await drained(uplink)
    const result = await delivered(traffic.accepted, [atA, atB])
    expect(result).toMatchObject({ lost: [], duplicates: 0, reordered: 0 })
    expect(uplink.stats().endpoint).toContain(String(b.port))
  })
})

describe('a device with default options', () => {
  it('connects through dnsmasq, which answers A and REFUSEs AAAA for its local name', async () => {
    const [a] = await twoRegions()
    const dns = onCleanup(await startDnsmasq({ records: { [NAME]: ['127.0.0.1'] } }))
    const uplink = onCleanup(
      createUplink({
        clientId: 'gw-defaults',
        endpoints: [`mqtt://${NAME}:${a.port}`],
        dns: { servers: [dns.server] },
      }),
    )
    const topic = 'telemetry/defaults'
    const atA = onCleanup(await collect(a.url, topic))
    await uplink.start()
    const traffic = publishNumbered(uplink, topic)
    await traffic.burst(50)
    traffic.stop()
    await connected(uplink)
    await drained(uplink)
    expect(await delivered(traffic.accepted, [atA])).toMatchObject({ lost: [], duplicates: 0 })
    expect(uplink.stats().address).toBe('127.0.0.1')
  })
})

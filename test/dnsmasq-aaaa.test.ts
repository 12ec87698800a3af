import { createResolver, createUplink, type DnsPartialEvent } from '@uplink/client'
import { startBroker, startDnsmasq, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'

/**
 * The README's scenario against a DNS server nobody here wrote: a gateway whose DNS server is
 * dnsmasq holding the broker's name as a local IPv4 record, with no upstream. dnsmasq answers A
 * and REFUSED to AAAA; with default options (dns.family 0) the device must still connect.
 */

const HOST = '127.0.0.1'
const NAME = 'broker.site.test'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

/** dnsmasq from Debian with its own configuration: one IPv4 local record, no upstream. */
async function dnsmasq() {
  const dns = await startDnsmasq({ host: HOST, records: { [NAME]: [HOST] } })
  cleanup.push(() => dns.stop())
  return dns
}

describe('dnsmasq with an IPv4 record only, no upstream', () => {
  it('answers the A record and REFUSED to AAAA', async () => {
    const { server } = await dnsmasq()
    const ask = (family: 4 | 6) =>
      createResolver({
        servers: [server],
        timeoutMs: 1_000,
        attempts: 1,
        family,
        systemFallback: false,
      })
    expect((await ask(4).resolve(NAME)).addresses).toEqual([
      { address: HOST, family: 4, ttl: expect.any(Number) },
    ])
    await expect(ask(6).resolve(NAME)).rejects.toMatchObject({ code: 'DNS_REFUSED' })
  })

  it('a device with default options connects through it, reports the refused AAAA and delivers', async () => {
    const { server } = await dnsmasq()
    const broker = await startBroker({ host: HOST })
    cleanup.push(() => broker.stop())
    const uplink = createUplink({
      clientId: 'gw-dnsmasq',
      endpoints: [`mqtt://${NAME}:${broker.port}`],
      dns: { servers: [server] },
    })
    cleanup.push(() => uplink.stop())
    const partials: DnsPartialEvent[] = []
    uplink.on('dns-partial', (e) => partials.push(e))
    for (let seq = 0; seq < 5; seq++) await uplink.publish('telemetry/gw-dnsmasq', `${seq}`)
    await uplink.start()
    await waitFor(() => broker.publishes.length === 5, 'five publishes at the broker', 10_000)
    expect(broker.publishes.map((p) => p.payload.toString())).toEqual(['0', '1', '2', '3', '4'])
    expect(uplink.stats()).toMatchObject({ state: 'connected', address: HOST })
    expect(partials[0]).toMatchObject({
      host: NAME,
      server,
      family: 6,
      error: { code: 'DNS_REFUSED' },
    })
  })
})

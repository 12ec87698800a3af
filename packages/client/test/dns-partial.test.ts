import { startBroker, startDnsServer, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink, type DnsPartialEvent } from '../src/index.js'
import { nextEvent } from './support/events.js'

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

describe('a DNS server that answers A and fails AAAA', () => {
  it('default options connect, and the missing family is an event and in stats() until the answer is whole', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const dns = await startDnsServer()
    cleanup.push(() => dns.stop())
    dns.set('broker.uplink.test', ['127.0.0.1'], 1)
    dns.setFault('refused', { type: 'AAAA' })
    const uplink = createUplink({
      clientId: 'gw-partial',
      endpoints: [`mqtt://broker.uplink.test:${broker.port}`],
      // The watch resolves again while connected: how the whole answer is seen to return.
      dns: { servers: [dns.server], watch: { minIntervalMs: 100 } },
    })
    cleanup.push(() => uplink.stop())
    const partials: DnsPartialEvent[] = []
    uplink.on('dns-partial', (e) => partials.push(e))
    await uplink.start()
    expect((await nextEvent(uplink, 'connect')).address).toBe('127.0.0.1')
    expect(partials[0]).toMatchObject({
      host: 'broker.uplink.test',
      server: dns.server,
      family: 6,
      error: { code: 'DNS_REFUSED' },
    })
    expect(uplink.stats().dnsPartial).toMatchObject({ family: 6, error: { code: 'DNS_REFUSED' } })
    // The watch sees it too, and the device stays where it is.
    await waitFor(() => partials.length >= 2, 'the watch reporting the same failure')
    dns.setFault('none')
    await waitFor(() => uplink.stats().dnsPartial === undefined, 'stats() clear once AAAA answers')
    expect(uplink.stats()).toMatchObject({ state: 'connected', failovers: 0 })
    expect(broker.connects).toHaveLength(1)
  })
})

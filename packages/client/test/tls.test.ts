import { createTestPki, startBroker, startDnsServer } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink } from '../src/index.js'
import { nextEvent } from './support/events.js'

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

describe('TLS against a resolved address', () => {
  it('checks the certificate against the endpoint name, per endpoint CA', async () => {
    const east = createTestPki()
    const west = createTestPki()
    const a = await startBroker({ tls: east.issue(['east.uplink.test']) })
    const b = await startBroker({ host: '127.0.0.2', tls: west.issue(['west.uplink.test']) })
    const dns = await startDnsServer()
    cleanup.push(
      () => a.stop(),
      () => b.stop(),
      () => dns.stop(),
    )
    dns.set('east.uplink.test', ['127.0.0.1'])
    dns.set('west.uplink.test', ['127.0.0.2'])

    const uplink = createUplink({
      clientId: 'gw-tls',
      endpoints: [
        { url: `mqtts://east.uplink.test:${a.port}`, tls: { ca: east.ca } },
        { url: `mqtts://west.uplink.test:${b.port}`, tls: { ca: west.ca } },
      ],
      dns: { servers: [dns.server] },
      failoverAfter: 1,
      backoff: { initialMs: 20, maxMs: 100 },
    })
    cleanup.push(() => uplink.stop())
    await uplink.start()
    expect(await nextEvent(uplink, 'connect')).toMatchObject({ address: '127.0.0.1' })
    const moved = nextEvent(uplink, 'connect')
    await a.kill()
    // The west broker's certificate only verifies with the west CA: per-endpoint TLS was used.
    expect(await moved).toMatchObject({
      endpoint: `mqtts://west.uplink.test:${b.port}`,
      address: '127.0.0.2',
    })
  })

  /**
   * A broker on 127.0.0.1 serving `served`, named iot.uplink.test in DNS, and a client trusting
   * `ca`: resolves with the error of its first failed attempt.
   */
  async function firstFailure(served: { key: string; cert: string }, ca: string, clientId: string) {
    const broker = await startBroker({ tls: served })
    const dns = await startDnsServer()
    cleanup.push(
      () => broker.stop(),
      () => dns.stop(),
    )
    dns.set('iot.uplink.test', ['127.0.0.1'])
    const uplink = createUplink({
      clientId,
      endpoints: [`mqtts://iot.uplink.test:${broker.port}`],
      tls: { ca },
      dns: { servers: [dns.server] },
    })
    cleanup.push(() => uplink.stop())
    const failure = nextEvent(uplink, 'reconnecting')
    await uplink.start()
    return { error: (await failure).error, broker }
  }

  it('refuses a certificate issued for another name, with a clear error', async () => {
    const pki = createTestPki()
    const { error, broker } = await firstFailure(
      pki.issue(['other.uplink.test']),
      pki.ca,
      'gw-tls-bad',
    )
    expect(error.code).toBe('TLS_ERROR')
    expect(error.message).toContain('iot.uplink.test')
    expect(error.details?.tlsCode).toBe('ERR_TLS_CERT_ALTNAME_INVALID')
    expect(broker.connectCount).toBe(0)
  })

  it('refuses a certificate from an untrusted CA', async () => {
    const trusted = createTestPki()
    const rogue = createTestPki()
    const { error, broker } = await firstFailure(
      rogue.issue(['iot.uplink.test']),
      trusted.ca,
      'gw-tls-rogue',
    )
    expect(error.code).toBe('TLS_ERROR')
    expect(broker.connectCount).toBe(0)
  })
})

import type { UplinkError } from '@uplink/client'
import {
  createTestPki,
  startDnsmasq,
  startMosquitto,
  startSniRouter,
  waitFor,
} from '@uplink/testkit'
import { beforeAll, describe, expect, it } from 'vitest'
import { collect, delivered, publishNumbered } from './support/accounting.js'
import { device, onCleanup } from './support/device.js'
import { connected, drained, nextEvent } from './support/events.js'

const NAME = 'broker.site.test'
let pki: ReturnType<typeof createTestPki>
beforeAll(() => {
  pki = createTestPki()
})

/** Mosquitto's TLS listener on 127.0.0.1, reached by name through dnsmasq. */
async function tlsBroker(certNames: string[], options: { requireCertificate?: boolean } = {}) {
  const dns = onCleanup(await startDnsmasq({ records: { [NAME]: ['127.0.0.1'] } }))
  const broker = onCleanup(
    await startMosquitto({
      tls: { ...pki.issue(certNames), ca: pki.ca, ...options },
      ...(options.requireCertificate
        ? {
            acl: [
              'user gw-acl',
              'topic write telemetry/gw-acl/#',
              'topic read cmd/gw-acl/#',
              'user collector',
              'topic read telemetry/#',
            ],
          }
        : {}),
    }),
  )
  return { dns, broker, url: `mqtts://${NAME}:${broker.port}` }
}

describe('TLS to Mosquitto at a resolved address', () => {
  it('refuses a certificate for another name with TLS_ERROR, though the address is right', async () => {
    const { dns, url } = await tlsBroker(['other.site.test'])
    const uplink = device({ endpoints: [url], tls: { ca: pki.ca }, dns: { servers: [dns.server] } })
    const error = nextEvent(uplink, 'reconnecting')
    await uplink.start()
    expect(((await error).error as UplinkError).code).toBe('TLS_ERROR')
    expect(uplink.stats().state).not.toBe('connected')
  })

  it('accepts the certificate for the endpoint name while connecting to the address DNS gave', async () => {
    const { dns, broker, url } = await tlsBroker([NAME])
    const uplink = device({ endpoints: [url], tls: { ca: pki.ca }, dns: { servers: [dns.server] } })
    const connect = nextEvent(uplink, 'connect')
    await uplink.start()
    expect(await connect).toMatchObject({ address: '127.0.0.1', endpoint: url })
    expect(broker.url).toMatch(/^mqtts:/)
  })
})

describe('client certificates and an ACL (require_certificate, use_identity_as_username)', () => {
  it('a device with its certificate publishes where the ACL lets it; what the ACL denies is not delivered and does not block the outbox', async () => {
    const { dns, broker, url } = await tlsBroker([NAME], { requireCertificate: true })
    const collector = pki.issue(['collector'], { usage: 'client' })
    const atOwn = onCleanup(
      await collect(broker.url, 'telemetry/gw-acl/data', {
        ca: pki.ca,
        ...collector,
        servername: NAME,
      }),
    )
    const atOther = onCleanup(
      await collect(broker.url, 'telemetry/gw-other/data', {
        ca: pki.ca,
        ...collector,
        servername: NAME,
      }),
    )
    const uplink = device({
      clientId: 'gw-acl',
      endpoints: [url],
      tls: { ca: pki.ca, ...pki.issue(['gw-acl'], { usage: 'client' }) },
      dns: { servers: [dns.server] },
    })
    await uplink.start()
    await connected(uplink)
    const own = publishNumbered(uplink, 'telemetry/gw-acl/data')
    const other = publishNumbered(uplink, 'telemetry/gw-other/data')
    await own.burst(50)
    await other.burst(50)
    own.stop()
    other.stop()
    await drained(uplink)
    expect(own.accepted).toHaveLength(50)
    expect(await delivered(own.accepted, [atOwn])).toMatchObject({ lost: [], duplicates: 0 })
    await waitFor(() => false, 'settle', 300).catch(() => {})
    expect(atOther.seqs).toEqual([])
  })

  it('a device without a client certificate is refused', async () => {
    const { dns, url } = await tlsBroker([NAME], { requireCertificate: true })
    const uplink = device({ endpoints: [url], tls: { ca: pki.ca }, dns: { servers: [dns.server] } })
    const failed = nextEvent(uplink, 'reconnecting')
    await uplink.start()
    const error = (await failed).error as UplinkError
    expect(['TLS_ERROR', 'CONNECTION_CLOSED', 'CONNECT_REFUSED']).toContain(error.code)
    expect(uplink.stats().state).not.toBe('connected')
  })
})

describe('behind an SNI router (nginx stream, ssl_preread), as brokers sharing one address are', () => {
  it('a host name written with the root dot reaches its broker: the name goes out as SNI without the dot', async () => {
    const { dns, broker } = await tlsBroker([NAME])
    const router = onCleanup(
      await startSniRouter({ routes: { [NAME]: { host: '127.0.0.1', port: broker.port } } }),
    )
    const uplink = device({
      endpoints: [`mqtts://${NAME}.:${router.port}`],
      tls: { ca: pki.ca },
      dns: { servers: [dns.server] },
    })
    const connect = nextEvent(uplink, 'connect')
    await uplink.start()
    expect(await connect).toMatchObject({ endpoint: `mqtts://${NAME}:${router.port}` })
  })
})

import { createTestPki, startMosquitto, startNginx, waitFor } from '@uplink/testkit'
import { describe, expect, it } from 'vitest'
import { collect, delivered, publishNumbered } from './support/accounting.js'
import { device, onCleanup } from './support/device.js'
import { connected, drained, nextEvent } from './support/events.js'

const directive = (endpoint: string, epoch: number) =>
  JSON.stringify({ endpoint, epoch, pollIntervalSeconds: 1 })

describe('a concierge that is nginx serving a static file over HTTPS', () => {
  it('moves the device when the file is rewritten, make-before-break: nothing lost, nothing sent twice; unchanged polls are 304s from nginx', async () => {
    const pki = createTestPki()
    const a = onCleanup(await startMosquitto())
    const b = onCleanup(await startMosquitto({ host: '127.0.0.2' }))
    const nginx = onCleanup(
      await startNginx({
        tls: pki.issue(['localhost'], { ips: ['127.0.0.1'] }),
        files: { 'v1/endpoint': directive(a.url, 1) },
      }),
    )
    const topic = 'telemetry/concierge'
    const atA = onCleanup(await collect(a.url, topic))
    const atB = onCleanup(await collect(b.url, topic))
    const uplink = device({
      endpoints: [a.url],
      concierge: {
        url: nginx.url('/v1/endpoint'),
        allowedHosts: ['127.0.0.2'],
        intervalMs: 1_000,
        jitter: 0,
        tls: { ca: pki.ca },
      },
    })
    await uplink.start()
    await connected(uplink)
    const traffic = publishNumbered(uplink, topic)
    // Polls of an unchanged file: nginx answers If-None-Match with 304 on its own.
    await waitFor(() => nginx.statuses().includes(304), 'a 304 from nginx', 10_000)
    expect(uplink.stats().endpoint).toBe(a.url)
    const moved = nextEvent(uplink, 'failover')
    await traffic.burst(200)
    nginx.writeFile('v1/endpoint', directive(b.url, 2))
    const event = await moved
    expect(event).toMatchObject({ reason: 'concierge', to: b.url })
    await waitFor(() => atB.seqs.length >= 20, 'traffic on the secondary')
    traffic.stop()
    await drained(uplink)
    const result = await delivered(traffic.accepted, [atA, atB])
    expect(result).toMatchObject({ lost: [], duplicates: 0, reordered: 0 })
    expect(nginx.statuses()[0]).toBe(200)
  })
})

import { createTestPki, startMosquitto, startNginx, waitFor } from '@uplink/testkit'
import { describe, expect, it } from 'vitest'
import { collect, delivered, publishNumbered } from './support/accounting.js'
import { device, onCleanup } from './support/device.js'
import { connected, drained, nextEvent } from './support/events.js'

const directive = (endpoint: string, epoch: number) =>
  JSON.stringify({ endpoint, epoch, pollIntervalSeconds: 1 })

/**
 * Mosquittos on 127.0.0.1 (a) and 127.0.0.2 (b), nginx serving the directive for `first` over
 * HTTPS, and a device configured with a alone that polls it each second.
 */
async function regions(first: 'a' | 'b') {
  const pki = createTestPki()
  const a = onCleanup(await startMosquitto())
  const b = onCleanup(await startMosquitto({ host: '127.0.0.2' }))
  const nginx = onCleanup(
    await startNginx({
      tls: pki.issue(['localhost'], { ips: ['127.0.0.1'] }),
      files: { 'v1/endpoint': directive((first === 'a' ? a : b).url, 1) },
    }),
  )
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
  return { a, b, nginx, uplink }
}

describe('a concierge that is nginx serving a static file over HTTPS', () => {
  it('moves the device when the file is rewritten, make-before-break: nothing lost, nothing sent twice; unchanged polls are 304s from nginx', async () => {
    const { a, b, nginx, uplink } = await regions('a')
    const topic = 'telemetry/concierge'
    const atA = onCleanup(await collect(a.url, topic))
    const atB = onCleanup(await collect(b.url, topic))
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

describe("nginx's 304 confirms where the device belongs", () => {
  it('brings back a device that fell back while the named Mosquitto was down, once it is up again, on 304s alone', async () => {
    const { a, b, nginx, uplink } = await regions('b')
    uplink.on('error', () => {})
    const onB = () => uplink.stats().state === 'connected' && uplink.stats().endpoint === b.url
    await uplink.start()
    await waitFor(onB, 'on b, as the concierge says', 10_000)
    const fellBack = nextEvent(uplink, 'failover', (e) => e.to === a.url)
    await b.kill()
    expect(await fellBack).toMatchObject({ reason: 'connection-lost', from: b.url })
    const served = nginx.statuses().length
    const back = nextEvent(uplink, 'failover', (e) => e.to === b.url, 20_000)
    await b.restart()
    expect(await back).toMatchObject({ reason: 'concierge', from: a.url })
    // The file never changed: nginx said 304 to every poll since the fall-back.
    const since = nginx.statuses().slice(served)
    expect(since.length).toBeGreaterThan(0)
    expect(since.every((s) => s === 304)).toBe(true)
    // And it works there: what the device publishes arrives at b.
    const topic = 'telemetry/back'
    const atB = onCleanup(await collect(b.url, topic))
    const traffic = publishNumbered(uplink, topic)
    await waitFor(() => atB.seqs.length >= 20, 'traffic on b')
    traffic.stop()
    await drained(uplink)
    expect(await delivered(traffic.accepted, [atB])).toMatchObject({ lost: [], duplicates: 0 })
  })
})

import { DEFAULTS } from '@uplink/client'
import { startFaultProxy, startMosquitto, waitFor } from '@uplink/testkit'
import mqtt from 'mqtt'
import { describe, expect, it } from 'vitest'
import { collect, delivered, publishNumbered } from './support/accounting.js'
import { device, onCleanup } from './support/device.js'
import { connected, drained, nextEvent } from './support/events.js'

describe('failures between two Mosquittos', () => {
  it('a half-open link to the primary (fault proxy, blackhole) is noticed by keepalive within 1.5 x keepalive, and the device fails over losing nothing', async () => {
    const a = onCleanup(await startMosquitto())
    const b = onCleanup(await startMosquitto({ host: '127.0.0.2' }))
    const proxy = onCleanup(await startFaultProxy(a))
    const topic = 'telemetry/half-open'
    const atA = onCleanup(await collect(a.url, topic))
    const atB = onCleanup(await collect(b.url, topic))
    const uplink = device({
      endpoints: [proxy.url(), b.url],
      keepalive: 1,
      connectTimeoutMs: 1_000,
    })
    await uplink.start()
    await connected(uplink)
    const traffic = publishNumbered(uplink, topic)
    await waitFor(() => atA.seqs.length >= 20, 'traffic on the primary')
    const lost = nextEvent(uplink, 'disconnect')
    const darkAt = Date.now()
    proxy.setMode('blackhole')
    const error = (await lost).error
    const noticedMs = Date.now() - darkAt
    expect(error?.code).toBe('KEEPALIVE_TIMEOUT')
    expect(noticedMs).toBeLessThan(1.5 * 1_000 + 500)
    await nextEvent(uplink, 'connect', (e) => e.endpoint === b.url)
    await waitFor(() => atB.seqs.length >= 20, 'traffic on the secondary')
    traffic.stop()
    await drained(uplink)
    const result = await delivered(traffic.accepted, [atA, atB])
    expect(result.lost).toEqual([])
    // Messages whose PUBACK vanished in the dark go again on the secondary: at most a window.
    expect(result.duplicates).toBeLessThanOrEqual(DEFAULTS.inflightWindow)
  })

  it('on a second Mosquitto without the session, the device subscribes again and its subscription works there', async () => {
    const a = onCleanup(await startMosquitto())
    const b = onCleanup(await startMosquitto({ host: '127.0.0.2' }))
    const uplink = device({ endpoints: [a.url, b.url], protocolVersion: 5 })
    const got: string[] = []
    await uplink.subscribe('cmd/gw-resubscribe', (_t, p) => got.push(p.toString()))
    await uplink.start()
    await nextEvent(uplink, 'connect')
    const moved = nextEvent(uplink, 'connect', (e) => e.endpoint === b.url)
    await a.kill()
    expect((await moved).sessionPresent).toBe(false)
    const cloud = await mqtt.connectAsync(b.url, { protocolVersion: 5, clientId: 'cloud-b' })
    onCleanup({ stop: () => cloud.endAsync() })
    // Until its SUBSCRIBE is in, a command would find no one: publish until one arrives.
    await waitFor(() => {
      if (got.length === 0) void cloud.publishAsync('cmd/gw-resubscribe', 'on-b', { qos: 1 })
      return got.length > 0
    }, 'a command on the secondary')
    expect(got[0]).toBe('on-b')
  })
})

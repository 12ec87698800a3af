import {
  startBroker,
  startBrokerPair,
  startDnsServer,
  startFaultProxy,
  startMosquitto,
  waitFor,
} from '@uplink/testkit'
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink, type FailoverEvent } from '../src/index.js'
import { nextEvent } from './support/events.js'
import { closedPort } from './support/net.js'

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

const fast = { initialMs: 20, maxMs: 200 }

/**
 * Two regions on one port (127.0.0.1 and 127.0.0.2) behind one DNS name, `iot.uplink.test`, that
 * points at the primary with a TTL of 1 s: what a DNS failover record looks like.
 */
async function regionsBehindOneName() {
  const [primary, secondary] = await startBrokerPair()
  const dns = await startDnsServer()
  cleanup.push(
    () => primary.stop(),
    () => secondary.stop(),
    () => dns.stop(),
  )
  dns.set('iot.uplink.test', ['127.0.0.1'], 1)
  return { primary, secondary, dns }
}

describe('DNS on every connect', () => {
  it('follows a flipped record to the other region, re-subscribes there, and loses nothing', async () => {
    const { primary, secondary, dns } = await regionsBehindOneName()

    const uplink = createUplink({
      clientId: 'gw-flip',
      endpoints: [`mqtt://iot.uplink.test:${primary.port}`],
      dns: { servers: [dns.server], timeoutMs: 300 },
      backoff: fast,
    })
    cleanup.push(() => uplink.stop())
    const commands: string[] = []
    await uplink.subscribe('cmd/gw-flip', (_t, p) => commands.push(p.toString()))
    await uplink.start()
    await nextEvent(uplink, 'connect')
    for (let i = 0; i < 10; i++) await uplink.publish('telemetry/gw-flip', `a${i}`)
    await waitFor(() => primary.publishes.length === 10, 'primary got the first batch')

    const queriesBefore = dns.queryCount
    const failover = nextEvent(uplink, 'failover')
    await primary.kill()
    for (let i = 0; i < 10; i++) await uplink.publish('telemetry/gw-flip', `b${i}`)
    dns.set('iot.uplink.test', ['127.0.0.2'], 1)

    const event = (await failover) as FailoverEvent
    expect(event).toMatchObject({
      fromAddress: '127.0.0.1',
      toAddress: '127.0.0.2',
      reason: 'connection-lost',
    })
    expect(dns.queryCount).toBeGreaterThan(queriesBefore)
    await waitFor(() => secondary.publishes.length >= 10, 'secondary got the outage batch')
    expect(
      secondary.publishes.map((p) => p.payload.toString()).filter((p) => p.startsWith('b')),
    ).toEqual(Array.from({ length: 10 }, (_, i) => `b${i}`))

    // The secondary had no session: the subscription was sent again and commands arrive.
    await waitFor(() => secondary.subscriptions('gw-flip').includes('cmd/gw-flip'), 're-subscribed')
    await secondary.publish('cmd/gw-flip', 'from-secondary', { qos: 1 })
    await waitFor(() => commands.length === 1, 'command from the secondary')
    expect(uplink.stats()).toMatchObject({ address: '127.0.0.2', failovers: 1 })
  })
})

describe('informed backoff, real sockets', () => {
  it('a device waiting out a 30 s backoff is on the secondary within TTL + spread of a DNS flip', async () => {
    const { primary, secondary, dns } = await regionsBehindOneName()
    const uplink = createUplink({
      clientId: 'gw-informed',
      endpoints: [`mqtt://iot.uplink.test:${primary.port}`],
      dns: { servers: [dns.server], timeoutMs: 300 },
      // The first wait after the crash is 30 s: only news can end it sooner.
      backoff: {
        initialMs: 30_000,
        maxMs: 60_000,
        jitter: 'none',
        informed: { spreadMs: 500, minProbeIntervalMs: 500 },
      },
    })
    cleanup.push(() => uplink.stop())
    await uplink.start()
    await nextEvent(uplink, 'connect')
    const waiting = nextEvent(uplink, 'reconnecting')
    await primary.kill()
    expect(await waiting).toMatchObject({ delayMs: 30_000 })
    const failover = nextEvent(uplink, 'failover')
    const flippedAt = Date.now()
    dns.set('iot.uplink.test', ['127.0.0.2'], 1)
    expect(await failover).toMatchObject({ toAddress: '127.0.0.2', reason: 'connection-lost' })
    // TTL 1 s + spread 0.5 s, with room for a loaded machine; the ladder alone would wait 30 s.
    expect(Date.now() - flippedAt).toBeLessThan(5_000)
    expect(uplink.stats()).toMatchObject({ address: '127.0.0.2', attempts: 2 })
  })
})

describe('several endpoints', () => {
  it('moves to the next endpoint after failoverAfter consecutive failures and says why', async () => {
    const dead = await closedPort()
    const backup = await startBroker()
    cleanup.push(() => backup.stop())
    const uplink = createUplink({
      clientId: 'gw-multi',
      endpoints: [`mqtt://127.0.0.1:${dead}`, backup.url],
      failoverAfter: 2,
      backoff: fast,
    })
    cleanup.push(() => uplink.stop())
    const tried: string[] = []
    uplink.on('reconnecting', (e) => tried.push(e.endpoint))
    await uplink.start()
    const connected = await nextEvent(uplink, 'connect')
    expect(connected.endpoint).toBe(backup.url)
    // Two failures on the first endpoint, the second retry already aimed at the backup.
    expect(tried).toEqual([`mqtt://127.0.0.1:${dead}`, backup.url])

    const failover = nextEvent(uplink, 'failover')
    await backup.kill()
    const again = await startBroker({ port: backup.port })
    cleanup.push(() => again.stop())
    await nextEvent(uplink, 'connect')
    // Same endpoint and address after a restart: a reconnect, not a failover.
    const raced = await Promise.race([
      failover.then(() => 'failover'),
      new Promise((r) => setTimeout(() => r('none'), 300)),
    ])
    expect(raced).toBe('none')
  })
})

describe('sessions on MQTT 5 (Mosquitto)', () => {
  it('re-subscribes on a broker without the session and keeps it where the session survived', async () => {
    const a = await startMosquitto()
    const b = await startMosquitto()
    // b is reached through a proxy, so that its link can be cut while b keeps the session.
    const toB = await startFaultProxy({ host: b.host, port: b.port })
    cleanup.push(
      () => a.stop(),
      () => b.stop(),
      () => toB.stop(),
    )
    const uplink = createUplink({
      clientId: 'gw-v5-session',
      endpoints: [a.url, toB.url()],
      protocolVersion: 5,
      failoverAfter: 1,
      backoff: fast,
    })
    cleanup.push(() => uplink.stop())
    const got: string[] = []
    await uplink.subscribe('cmd/gw-v5-session', (_t, p) => got.push(p.toString()))
    await uplink.start()
    const first = await nextEvent(uplink, 'connect')
    expect(first.sessionPresent).toBe(false)

    const moved = nextEvent(uplink, 'connect', (e) => e.endpoint === toB.url())
    await a.kill()
    expect((await moved).sessionPresent).toBe(false)
    const cloud = await mqtt.connectAsync(b.url, { protocolVersion: 5, clientId: 'cloud-b' })
    cleanup.push(() => cloud.endAsync())
    // Re-subscribed on b: a retained command reaches the device.
    // Retained: it reaches the device whether its SUBSCRIBE is in before or after.
    await cloud.publishAsync('cmd/gw-v5-session', 'retained', { qos: 1, retain: true })
    await waitFor(() => got.includes('retained'), 'command on the secondary')
    // A publish from the device after it: once b forwards that, b has the PUBACK for the command
    // (one stream, in order), so b will not send the command again when the session resumes.
    const synced: string[] = []
    cloud.on('message', (_t, p) => synced.push(p.toString()))
    await cloud.subscribeAsync('up/gw-v5-session', { qos: 1 })
    await uplink.publish('up/gw-v5-session', 'sync')
    await waitFor(() => synced.includes('sync'), 'the device caught up with b')
    const before = got.length

    // The link to b is cut; b keeps the session and queues a command meanwhile.
    const lost = nextEvent(uplink, 'disconnect')
    toB.setMode('reset')
    await lost
    await cloud.publishAsync('cmd/gw-v5-session', 'queued', { qos: 1 })
    const back = nextEvent(uplink, 'connect')
    toB.setMode('pass')
    expect((await back).sessionPresent).toBe(true)
    await waitFor(() => got.includes('queued'), 'the command queued by the session')
    // A round trip from the device: anything it sent on connecting (a SUBSCRIBE would be) has
    // been handled by b before this reaches the cloud, and what b sent back comes before marker.
    await uplink.publish('up/gw-v5-session', 'sync-2')
    await waitFor(() => synced.includes('sync-2'), 'the device caught up with b again')
    await cloud.publishAsync('cmd/gw-v5-session', 'marker', { qos: 1 })
    await waitFor(() => got.includes('marker'), 'a live command after the reconnect')
    // No SUBSCRIBE went on the kept session: a new one would have brought the retained command
    // again (retain handling 0), before the marker.
    expect(got.slice(before)).toEqual(['queued', 'marker'])
  })
})

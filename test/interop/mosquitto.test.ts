import { DEFAULTS, type Uplink } from '@uplink/client'
import { startMosquitto, waitFor } from '@uplink/testkit'
import mqtt from 'mqtt'
import { describe, expect, it } from 'vitest'
import { collect, delivered, publishNumbered } from './support/accounting.js'
import { device, onCleanup } from './support/device.js'
import { connected, drained, nextEvent } from './support/events.js'

/** A subscriber whose session outlives a broker restart: it misses nothing while both are down. */
const durable = (clientId: string, protocolVersion: 4 | 5 = 4) => ({
  clientId,
  clean: false,
  reconnectPeriod: 100,
  protocolVersion,
  ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 60 } } : {}),
})

async function cloud(url: string) {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: 'cloud' })
  onCleanup({ stop: () => client.endAsync() })
  return client
}

describe.each([4, 5] as const)('Mosquitto 2, MQTT %s', (protocolVersion) => {
  it('QoS 1 telemetry goes through a graceful restart on the same port (persistence on): nothing lost, resent at most one window', async () => {
    const broker = onCleanup(await startMosquitto({ persistence: true }))
    const topic = `telemetry/v${protocolVersion}/restart`
    const at = onCleanup(await collect(broker.url, topic, durable(`sub-v${protocolVersion}`)))
    const uplink = device({ endpoints: [broker.url], protocolVersion })
    await uplink.start()
    await connected(uplink)
    const traffic = publishNumbered(uplink, topic)
    await waitFor(() => at.seqs.length >= 20, 'traffic before the restart')
    await traffic.burst(100)
    const back = nextEvent(uplink, 'connect', () => true, 15_000)
    await broker.restart()
    await back
    const before = at.seqs.length
    await waitFor(() => at.seqs.length >= before + 20, 'traffic after the restart')
    traffic.stop()
    await drained(uplink)
    const result = await delivered(traffic.accepted, [at])
    expect(result.lost).toEqual([])
    expect(result.duplicates).toBeLessThanOrEqual(DEFAULTS.inflightWindow)
  })
})

describe('Mosquitto 2, shared subscriptions (MQTT 5)', () => {
  it('a handler on $share/{group}/{filter} gets the commands Mosquitto delivers through the group, with their real topics', async () => {
    const broker = onCleanup(await startMosquitto())
    const uplink = device({ endpoints: [broker.url], protocolVersion: 5 })
    await uplink.start()
    await nextEvent(uplink, 'connect')
    const got: string[] = []
    // Subscribed while connected: it resolves once Mosquitto has acknowledged the SUBSCRIBE.
    await uplink.subscribe('$share/gateways/cmd/+', (topic, p) => got.push(`${topic}=${p}`))
    const c = await cloud(broker.url)
    await c.publishAsync('cmd/reboot', 'now', { qos: 1 })
    await c.publishAsync('telemetry/x', 'not a command', { qos: 1 })
    await c.publishAsync('cmd/update', 'v2', { qos: 1 })
    await waitFor(() => got.length === 2, 'both commands')
    expect(got).toEqual(['cmd/reboot=now', 'cmd/update=v2'])
  })
})

describe('Mosquitto 2, sessions (MQTT 5, persistence on)', () => {
  it('after a crash and a restart on the same port with no session saved, the device subscribes again and gets commands', async () => {
    const broker = onCleanup(await startMosquitto({ persistence: true }))
    const uplink = device({ endpoints: [broker.url], protocolVersion: 5 })
    const got: string[] = []
    await uplink.subscribe('cmd/gw-crash', (_t, p) => got.push(p.toString()))
    await uplink.start()
    expect((await nextEvent(uplink, 'connect')).sessionPresent).toBe(false)
    await broker.kill()
    const back = nextEvent(uplink, 'connect')
    await broker.restart()
    expect((await back).sessionPresent).toBe(false)
    const c = await cloud(broker.url)
    await waitFor(() => uplink.stats().subscriptions === 1, 'subscribed')
    // The device's SUBSCRIBE follows its CONNACK: a command sent too early would find no one.
    await waitFor(() => false, 'settle', 300).catch(() => {})
    await c.publishAsync('cmd/gw-crash', 'after-crash', { qos: 1 })
    await waitFor(() => got.length === 1, 'the command')
    expect(got).toEqual(['after-crash'])
  })

  it('a session within its expiry survives a broker restart: sessionPresent, and the command queued offline arrives', async () => {
    const broker = onCleanup(await startMosquitto({ persistence: true }))
    const clientId = 'gw-session-kept'
    const first = device({ clientId, endpoints: [broker.url], protocolVersion: 5 })
    await subscribedOnline(first, broker.url, 'cmd/gw-session-kept')
    await first.stop()
    const c = await cloud(broker.url)
    await c.publishAsync('cmd/gw-session-kept', 'queued', { qos: 1 })
    await c.endAsync()
    await broker.restart()
    const again = device({ clientId, endpoints: [broker.url], protocolVersion: 5 })
    const got: string[] = []
    await again.subscribe('cmd/gw-session-kept', (_t, p) => got.push(p.toString()))
    const connect = nextEvent(again, 'connect')
    await again.start()
    expect((await connect).sessionPresent).toBe(true)
    await waitFor(() => got.length === 1, 'the queued command')
    expect(got).toEqual(['queued'])
  })

  it('a session past its expiry is gone: sessionPresent false, the queued command with it, and the device subscribes again', async () => {
    const broker = onCleanup(await startMosquitto({ persistence: true }))
    const clientId = 'gw-session-expired'
    const session = { expirySeconds: 1 }
    const first = device({ clientId, endpoints: [broker.url], protocolVersion: 5, session })
    await subscribedOnline(first, broker.url, 'cmd/gw-session-expired')
    await first.stop()
    const c = await cloud(broker.url)
    await c.publishAsync('cmd/gw-session-expired', 'stale', { qos: 1 })
    await new Promise((r) => setTimeout(r, 2_500))
    const again = device({ clientId, endpoints: [broker.url], protocolVersion: 5, session })
    const got: string[] = []
    await again.subscribe('cmd/gw-session-expired', (_t, p) => got.push(p.toString()))
    const connect = nextEvent(again, 'connect')
    await again.start()
    expect((await connect).sessionPresent).toBe(false)
    await waitFor(() => uplink_subscribed(again), 'subscribed again')
    await waitFor(() => false, 'settle', 300).catch(() => {})
    await c.publishAsync('cmd/gw-session-expired', 'fresh', { qos: 1 })
    await waitFor(() => got.length >= 1, 'the new command')
    expect(got).toEqual(['fresh'])
  })
})

/** Starts the device and proves its subscription to `topic` is live at the broker. */
async function subscribedOnline(uplink: Uplink, url: string, topic: string): Promise<void> {
  const got: string[] = []
  await uplink.subscribe(topic, (_t, p) => got.push(p.toString()))
  await uplink.start()
  await connected(uplink)
  const c = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: 'probe' })
  try {
    await waitFor(() => {
      if (got.length === 0) void c.publishAsync(topic, 'probe', { qos: 1 })
      return got.length > 0
    }, 'the subscription at the broker')
  } finally {
    await c.endAsync()
  }
}

function uplink_subscribed(uplink: { stats(): { subscriptions: number } }): boolean {
  return uplink.stats().subscriptions > 0
}

describe('Mosquitto 2, message expiry (MQTT 5)', () => {
  it('a message queued offline past its TTL is not delivered; the expiry sent for the others is cut by the time queued', async () => {
    const broker = onCleanup(await startMosquitto())
    const topic = 'telemetry/expiry'
    const at = onCleanup(await collect(broker.url, topic, { protocolVersion: 5 }))
    const uplink = device({ endpoints: [broker.url], protocolVersion: 5 })
    await uplink.start()
    await connected(uplink)
    // Offline: the broker's port is closed while the device queues.
    const proxy = await (await import('@uplink/testkit')).startFaultProxy(broker)
    onCleanup(proxy)
    await uplink.stop()
    const offline = device({ endpoints: [proxy.url()], protocolVersion: 5 })
    proxy.setMode('reset')
    await offline.start()
    const drops: string[] = []
    offline.on('drop', (e) => drops.push(e.reason))
    await offline.publish(topic, JSON.stringify({ seq: 0 }), { ttlSeconds: 1 })
    await offline.publish(topic, JSON.stringify({ seq: 1 }), { ttlSeconds: 30 })
    await new Promise((r) => setTimeout(r, 2_000))
    proxy.setMode('pass')
    await connected(offline)
    await drained(offline)
    await waitFor(() => at.seqs.length >= 1, 'the message still worth sending')
    await waitFor(() => false, 'settle', 300).catch(() => {})
    expect(at.seqs).toEqual([1])
    expect(drops).toEqual(['expired'])
    expect(at.expiry.get(1)).toBeLessThanOrEqual(28)
    expect(at.expiry.get(1)).toBeGreaterThan(0)
  })

  it('a command Mosquitto queued for the offline device past its expiry is not delivered; one within it is', async () => {
    const broker = onCleanup(await startMosquitto())
    const clientId = 'gw-expiry'
    const first = device({ clientId, endpoints: [broker.url], protocolVersion: 5 })
    await subscribedOnline(first, broker.url, 'cmd/gw-expiry')
    await first.stop()
    const c = await cloud(broker.url)
    await c.publishAsync('cmd/gw-expiry', 'short', {
      qos: 1,
      properties: { messageExpiryInterval: 1 },
    })
    await c.publishAsync('cmd/gw-expiry', 'long', {
      qos: 1,
      properties: { messageExpiryInterval: 60 },
    })
    await new Promise((r) => setTimeout(r, 2_000))
    const again = device({ clientId, endpoints: [broker.url], protocolVersion: 5 })
    const got: string[] = []
    await again.subscribe('cmd/gw-expiry', (_t, p) => got.push(p.toString()))
    await again.start()
    await waitFor(() => got.length >= 1, 'the command within its expiry')
    await waitFor(() => false, 'settle', 300).catch(() => {})
    expect(got).toEqual(['long'])
  })
})

describe('Mosquitto 2, a session kept while the device was elsewhere (MQTT 3.1.1, clean false)', () => {
  it('back on the first broker after a move: the filter subscribed meanwhile is delivered, the one dropped meanwhile is not', async () => {
    const a = onCleanup(await startMosquitto())
    const b = onCleanup(await startMosquitto())
    const uplink = device({ endpoints: [a.url, b.url] })
    const got: string[] = []
    await uplink.subscribe('x/#', (t) => got.push(t))
    await uplink.start()
    await connected(uplink)
    await uplink.failover(b.url)
    await waitFor(() => uplink.stats().endpoint === b.url, 'on b')
    await connected(uplink)
    await uplink.subscribe('y/#', (t) => got.push(t))
    await uplink.unsubscribe('x/#')
    const back = nextEvent(uplink, 'connect', (e) => e.endpoint === a.url)
    await uplink.failover(a.url)
    expect((await back).sessionPresent).toBe(true)
    const c = await cloud(a.url)
    // Until the device's SUBSCRIBE has reached a (it follows the CONNACK), probes are lost.
    for (let i = 0; i < 50 && !got.some((t) => t.startsWith('y/probe')); i++) {
      await c.publishAsync(`y/probe${i}`, 'p', { qos: 1 })
      await waitFor(() => got.some((t) => t.startsWith('y/probe')), 'a probe', 100).catch(() => {})
    }
    // x/1 before y/last, from one publisher at one QoS: had a kept x/#, x/1 came first.
    await c.publishAsync('x/1', 'stale', { qos: 1 })
    await c.publishAsync('y/last', 'fresh', { qos: 1 })
    await waitFor(() => got.includes('y/last'), 'y/last')
    expect(got.filter((t) => t.startsWith('x/'))).toEqual([])
  })
})

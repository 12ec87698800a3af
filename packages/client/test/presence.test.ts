import { startBroker, startFaultProxy, waitFor } from '@uplink/testkit'
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink } from '../src/index.js'
import { nextEvent } from './support/events.js'

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

describe('presence', () => {
  it('is online (retained) on connect, offline by will when the link dies, offline on a clean stop', async () => {
    const broker = await startBroker()
    const proxy = await startFaultProxy({ host: broker.host, port: broker.port })
    cleanup.push(
      () => broker.stop(),
      () => proxy.stop(),
    )
    const watcher = await mqtt.connectAsync(broker.url, { clientId: 'watcher' })
    cleanup.push(() => watcher.endAsync())
    const seen: string[] = []
    watcher.on('message', (_t, p) => seen.push(p.toString()))
    await watcher.subscribeAsync('status/gw-p', { qos: 1 })

    const uplink = createUplink({
      clientId: 'gw-p',
      endpoints: [proxy.url()],
      presence: { topic: 'status/gw-p' },
      backoff: { initialMs: 20, maxMs: 100 },
    })
    cleanup.push(() => uplink.stop())
    await uplink.start()
    await waitFor(() => seen.length === 1, 'online')
    expect(seen).toEqual(['online'])

    // The link dies without DISCONNECT: the broker publishes the will.
    const back = nextEvent(uplink, 'connect')
    proxy.setMode('reset')
    await waitFor(() => seen.includes('offline'), 'will message')
    proxy.setMode('pass')
    await back
    await waitFor(() => seen.length === 3, 'online again')
    expect(seen).toEqual(['online', 'offline', 'online'])

    await uplink.stop()
    await waitFor(() => seen.length === 4, 'offline on stop')
    expect(seen.at(-1)).toBe('offline')
    await waitFor(
      () => broker.disconnects.some((d) => d.clientId === 'gw-p' && d.clean),
      'clean disconnect',
    )

    // Retained: a newcomer learns the last state.
    const late = await mqtt.connectAsync(broker.url, { clientId: 'late' })
    cleanup.push(() => late.endAsync())
    const retained = new Promise<string>((r) => late.once('message', (_t, p) => r(p.toString())))
    await late.subscribeAsync('status/gw-p')
    expect(await retained).toBe('offline')
  })
})

/** A broker that never acknowledges QoS 1 publishes to `held(topic)`: they stay in flight. */
async function withholding(held: (topic: string) => boolean) {
  const broker = await startBroker()
  cleanup.push(() => broker.stop())
  const unacked: string[] = []
  const authorize = broker.aedes.authorizePublish
  broker.aedes.authorizePublish = function (client, packet, callback) {
    if (packet.qos === 1 && held(packet.topic)) {
      unacked.push(packet.topic)
      return
    }
    authorize.call(this, client, packet, callback)
  }
  return { broker, unacked }
}

describe('a link lost or ended with publishes unacknowledged (persistent session)', () => {
  it('lost before the presence PUBACK: the device reconnects (the session restore waited for ever), with no error for the restore', async () => {
    const { broker, unacked } = await withholding((t) => t === 'status/gw-w')
    const uplink = createUplink({
      clientId: 'gw-w',
      endpoints: [broker.url],
      presence: { topic: 'status/gw-w' },
      backoff: { initialMs: 20, maxMs: 100 },
    })
    cleanup.push(() => uplink.stop())
    const errors: string[] = []
    uplink.on('error', (e) => errors.push(e.code))
    await uplink.start()
    await waitFor(() => unacked.length === 1, 'presence in flight')
    const back = nextEvent(uplink, 'connect', () => true, 5_000)
    broker.dropClient('gw-w')
    await back
    expect(uplink.stats().state).toBe('connected')
    expect(errors).toEqual([])
    await uplink.stop({ timeoutMs: 200 })
    expect(uplink.stats().state).toBe('stopped')
  })

  it('stop() whose grace runs out before the PUBACKs closes the socket, with a DISCONNECT (it stayed open, sending PINGREQs)', async () => {
    const { broker, unacked } = await withholding((t) => t.startsWith('hold/'))
    const uplink = createUplink({ clientId: 'gw-s', endpoints: [broker.url], keepalive: 1 })
    cleanup.push(() => uplink.stop())
    await uplink.start()
    await nextEvent(uplink, 'connect')
    await uplink.publish('hold/t', 'x', { qos: 1 })
    await waitFor(() => unacked.length === 1, 'the publish in flight')
    await uplink.stop({ timeoutMs: 200 })
    await waitFor(
      () => broker.disconnects.some((d) => d.clientId === 'gw-s'),
      'the broker sees it go',
    )
    // A DISCONNECT before the close: the broker discards the will of a client that is leaving.
    expect(broker.disconnects.filter((d) => d.clientId === 'gw-s')).toMatchObject([{ clean: true }])
    expect(broker.clientIds()).not.toContain('gw-s')
  })
})

import { startBroker, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink, ManualClock } from '../src/index.js'
import { nextEvent } from './support/events.js'

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

describe('QoS 0 and QoS 1 in one drain', () => {
  it('a QoS 0 message MQTT.js reports written at once does not orphan the QoS 1 messages sent behind it: the window holds, and they go again after the link drops', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    // aedes writes a QoS 1 PUBACK once authorizePublish calls back: held, none is acknowledged.
    let holding = true
    const unacked: string[] = []
    const authorize = broker.aedes.authorizePublish
    broker.aedes.authorizePublish = function (client, packet, callback) {
      if (holding && packet.qos === 1) {
        unacked.push(packet.topic)
        return
      }
      authorize.call(this, client, packet, callback)
    }
    const clock = new ManualClock(0)
    const uplink = createUplink({
      clientId: 'gw-mixed-qos',
      endpoints: [broker.url],
      clock,
      inflightWindow: 2,
      backoff: { jitter: 'none' },
    })
    cleanup.push(() => uplink.stop())
    // Queued before the first connection, so the first take is one batch with the QoS 0 at its
    // head: its callback runs inside the send, before the QoS 1 behind it is sent.
    await uplink.publish('mixed/0', 'q0', { qos: 0 })
    for (let i = 1; i <= 3; i++) await uplink.publish(`mixed/${i}`, `q1-${i}`, { qos: 1 })
    await uplink.start()
    await waitFor(() => unacked.length >= 2, 'the window of QoS 1 on the wire')
    const reconnecting = nextEvent(uplink, 'reconnecting')
    for (const id of broker.clientIds()) broker.dropClient(id)
    // Two unacknowledged at most: the QoS 0's acknowledgement did not make room for more.
    expect(unacked).toEqual(['mixed/1', 'mixed/2'])
    holding = false
    await clock.advance((await reconnecting).delayMs)
    // Both went back to the outbox with the link, and are sent again, in order, before the third.
    await waitFor(
      () => broker.publishes.filter((p) => p.topic !== 'mixed/0').length >= 3,
      'every QoS 1 message at the broker',
    )
    expect(broker.publishes.map((p) => p.topic)).toEqual([
      'mixed/0',
      'mixed/1',
      'mixed/2',
      'mixed/3',
    ])
    await waitFor(() => uplink.stats().inFlight === 0, 'every message acknowledged')
  })
})

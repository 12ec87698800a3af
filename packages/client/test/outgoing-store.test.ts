import { startBroker } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import type { Connection } from '../src/connection.js'
import { UplinkError } from '../src/errors.js'
import { storesPacketsUncopied } from '../src/transport.js'
import { connectTo, mqttClientOf } from './support/connection.js'

/**
 * MQTT.js keeps every unacknowledged QoS 1/2 PUBLISH in its outgoing store, to resend if the same
 * client reconnects; on its own it stores a deep copy, payload and all. Uplink never reconnects a
 * client and resends from its outbox, so the transport has it keep the packet it was given.
 */

const cleanup: Array<() => Promise<unknown> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

interface Stored {
  messageId: number
  payload: Buffer
  qos: number
}
/** What MQTT.js's outgoing store holds now (its own Map: the store has no listing call). */
const inStore = (connection: Connection): Stored[] => {
  const client = mqttClientOf<{ outgoingStore: { _inflights: Map<number, Stored> } }>(connection)
  return [...client.outgoingStore._inflights.values()]
}

describe('the outgoing store', () => {
  it('holds the very packet sent, not a copy of it and its payload, until the broker acknowledges it', async () => {
    expect(storesPacketsUncopied).toBe(true)
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const connection = await connectTo(broker.port, 'gw-outgoing-store')
    cleanup.push(() => connection.destroy(new UplinkError('CONNECTION_LOST', 'test over')))
    const one = Buffer.from('qos 1 payload')
    const two = Buffer.from('qos 2 payload')
    const acked: Array<UplinkError | undefined> = []
    const done = new Promise<void>((resolve) => {
      const settle = (err?: UplinkError) => {
        acked.push(err)
        if (acked.length === 2) resolve()
      }
      connection.send('t/one', one, { qos: 1, retain: false }, settle)
      connection.send('t/two', two, { qos: 2, retain: false }, settle)
    })
    // The broker cannot have answered yet: both wait in the store, as the objects given.
    const stored = inStore(connection)
    expect(stored.map((p) => p.qos).sort()).toEqual([1, 2])
    expect(stored.find((p) => p.qos === 1)?.payload).toBe(one)
    expect(stored.find((p) => p.qos === 2)?.payload).toBe(two)
    await done
    expect(acked).toEqual([undefined, undefined])
    expect(inStore(connection)).toEqual([])
    const received = broker.publishes.map((p) => [p.topic, Buffer.from(p.payload).toString()])
    expect(received.sort()).toEqual([
      ['t/one', 'qos 1 payload'],
      ['t/two', 'qos 2 payload'],
    ])
  })
})

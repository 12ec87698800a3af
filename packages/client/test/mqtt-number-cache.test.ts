import { createRequire } from 'node:module'
import { startBroker } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { UplinkError } from '../src/errors.js'
import { connectTo } from './support/connection.js'

/** The mqtt-packet that MQTT.js itself writes its packets with. */
const fromMqtt = createRequire(createRequire(import.meta.url).resolve('mqtt'))
const packets = fromMqtt('mqtt-packet') as { writeToStream: { cacheNumbers: boolean } }
const numbers = fromMqtt('mqtt-packet/numbers') as { cache: Record<number, Buffer> }

const cleanup: Array<() => Promise<unknown> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

describe("mqtt-packet's number cache", () => {
  it('is never built by a connection that connects and publishes (65 536 Buffers, 7 MiB of heap a process)', async () => {
    // MQTT.js's default, as in a process that has made no Uplink connection yet.
    packets.writeToStream.cacheNumbers = true
    expect(Object.keys(numbers.cache)).toHaveLength(0)
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const connection = await connectTo(broker.port, 'gw-number-cache')
    cleanup.push(() => connection.destroy(new UplinkError('CONNECTION_LOST', 'test over')))
    await connection.publish('t/cache', Buffer.from('x'), { qos: 1, retain: false })
    expect(packets.writeToStream.cacheNumbers).toBe(false)
    expect(Object.keys(numbers.cache)).toHaveLength(0)
  })
})

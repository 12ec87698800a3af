import { DEFAULTS } from '@uplink/client'
import { startMosquitto, startRabbitMq, type TestRabbitMq, waitFor } from '@uplink/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { collect, delivered, publishNumbered } from './support/accounting.js'
import { device, onCleanup } from './support/device.js'
import { connected, drained, nextEvent } from './support/events.js'

// One node for the file: it takes 10-15 s to boot here (Erlang VM, Mnesia, the MQTT plugin).
let rabbit: TestRabbitMq
beforeAll(async () => {
  rabbit = await startRabbitMq()
}, 60_000)
afterAll(async () => {
  await rabbit?.stop()
})

describe('RabbitMQ MQTT plugin (MQTT 3.1.1) as a second broker implementation', () => {
  it('takes QoS 1 telemetry from the device: all delivered once, in order', async () => {
    const topic = 'telemetry/rabbit/once'
    const at = onCleanup(await collect(rabbit.url, topic))
    const uplink = device({ endpoints: [rabbit.url] })
    await uplink.start()
    await connected(uplink)
    const traffic = publishNumbered(uplink, topic)
    await traffic.burst(200)
    traffic.stop()
    await drained(uplink)
    expect(await delivered(traffic.accepted, [at])).toMatchObject({
      lost: [],
      duplicates: 0,
      reordered: 0,
    })
  })

  // Last in the file: it kills the node.
  it('when the RabbitMQ node crashes, the device fails over to Mosquitto and loses nothing', async () => {
    const b = onCleanup(await startMosquitto({ host: '127.0.0.2' }))
    const topic = 'telemetry/rabbit/crash'
    const atA = onCleanup(await collect(rabbit.url, topic))
    const atB = onCleanup(await collect(b.url, topic))
    const uplink = device({ endpoints: [rabbit.url, b.url] })
    await uplink.start()
    await connected(uplink)
    const traffic = publishNumbered(uplink, topic)
    await waitFor(() => atA.seqs.length >= 20, 'traffic on RabbitMQ')
    const moved = nextEvent(uplink, 'connect', (e) => e.endpoint === b.url)
    await rabbit.kill()
    await moved
    await waitFor(() => atB.seqs.length >= 20, 'traffic on Mosquitto')
    traffic.stop()
    await drained(uplink)
    const result = await delivered(traffic.accepted, [atA, atB])
    expect(result.lost).toEqual([])
    expect(result.duplicates).toBeLessThanOrEqual(DEFAULTS.inflightWindow)
  })
})

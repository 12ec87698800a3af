import { startBroker } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { UplinkError } from '../src/errors.js'
import { createUplink } from '../src/index.js'
import { connectTo, mqttClientOf } from './support/connection.js'
import { nextEvent } from './support/events.js'
import { captureDebugLines, debug } from './support/mqtt-debug.js'

const cleanup: Array<() => Promise<unknown> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

describe("MQTT.js's logger", () => {
  it('is made once for every connection of the process, not once per connection', async () => {
    const made: string[] = []
    const init = debug.init
    debug.init = (instance) => {
      made.push(instance.namespace)
      init?.(instance)
    }
    cleanup.push(() => {
      debug.init = init
    })
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    for (const id of ['gw-log-1', 'gw-log-2', 'gw-log-3']) {
      const uplink = createUplink({ clientId: id, endpoints: [broker.url] })
      cleanup.push(() => uplink.stop())
      await uplink.start()
      await nextEvent(uplink, 'connect')
    }
    expect(made.filter((n) => n === 'mqttjs:client')).toHaveLength(1)
  })

  it('costs nothing while its namespace is off, and logs through debug from the next connection once it is on', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const lines = captureDebugLines((undo) => cleanup.push(undo))
    const off = await connectTo(broker.port, 'gw-log-off')
    cleanup.push(() => off.destroy(new UplinkError('CONNECTION_LOST', 'test over')))
    await off.publish('t/off', Buffer.from('x'), { qos: 1, retain: false })
    // Not the `debug` instance (which would still ask `enabled` a dozen times a message).
    expect(mqttClientOf<{ log: { namespace?: string } }>(off).log.namespace).toBeUndefined()
    expect(lines).toEqual([])

    debug.enable('mqttjs:client')
    const on = await connectTo(broker.port, 'gw-log-on')
    cleanup.push(() => on.destroy(new UplinkError('CONNECTION_LOST', 'test over')))
    await on.publish('t/on', Buffer.from('x'), { qos: 1, retain: false })
    expect(lines.some((l) => l.includes('mqttjs:client') && l.includes('publish'))).toBe(true)
  })
})

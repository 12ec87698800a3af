import { createRequire } from 'node:module'
import { startBroker } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink } from '../src/index.js'
import { nextEvent } from './support/events.js'

const cleanup: Array<() => Promise<unknown> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

// The `debug` that MQTT.js itself requires, so that its instances can be counted as they are made.
const fromMqtt = createRequire(createRequire(import.meta.url).resolve('mqtt'))
const debug = fromMqtt('debug') as { init?: (instance: { namespace: string }) => void }

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
})

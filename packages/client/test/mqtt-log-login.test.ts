import { startBroker } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink } from '../src/index.js'
import { nextEvent } from './support/events.js'
import { captureDebugLines, debug } from './support/mqtt-debug.js'

const cleanup: Array<() => Promise<unknown> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

// Alone in its file, so that the first connection here is the process's first: the one whose
// client makes MQTT.js's logger.
describe("MQTT.js's log with its namespace on", () => {
  it('shows the CONNECT packets of the first connection and of the next, each with its password hidden', async () => {
    const lines = captureDebugLines((undo) => cleanup.push(undo))
    debug.enable('mqttjs:client')
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const password = 'log-secret-4471'
    for (const clientId of ['gw-log-login-1', 'gw-log-login-2']) {
      const uplink = createUplink({ clientId, endpoints: [broker.url], username: 'gw', password })
      cleanup.push(() => uplink.stop())
      await uplink.start()
      await nextEvent(uplink, 'connect')
    }
    const connects = lines.filter((l) => l.includes('_writePacket') && l.includes("cmd: 'connect'"))
    expect(connects).toHaveLength(2)
    for (const line of connects) expect(line).toContain("password: '[hidden]'")
    expect(lines.filter((l) => l.includes(password))).toEqual([])
  })
})

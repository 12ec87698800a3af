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

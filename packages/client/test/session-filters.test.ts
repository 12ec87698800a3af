import { startBroker, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink } from '../src/index.js'
import { nextEvent } from './support/events.js'

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

async function brokers() {
  const a = await startBroker()
  const b = await startBroker()
  cleanup.push(
    () => a.stop(),
    () => b.stop(),
  )
  return { a, b }
}

const connectedTo = (uplink: ReturnType<typeof createUplink>, url: string) =>
  waitFor(
    () => uplink.stats().state === 'connected' && uplink.stats().endpoint === url,
    `connected to ${url}`,
  )

describe('filters on a broker that kept the session (aedes, persistent sessions)', () => {
  it('back on a broker after a move away: what was subscribed and unsubscribed meanwhile reaches it (it kept the old filters)', async () => {
    const { a, b } = await brokers()
    const uplink = createUplink({ clientId: 'gw-sf', endpoints: [a.url, b.url] })
    cleanup.push(() => uplink.stop())
    const got: string[] = []
    await uplink.subscribe('x/#', (t) => got.push(t))
    await uplink.start()
    await waitFor(() => a.subscriptions('gw-sf').includes('x/#'), 'x/# at a')
    await uplink.failover(b.url)
    await waitFor(() => b.subscriptions('gw-sf').includes('x/#'), 'x/# at b')
    await uplink.subscribe('y/#', (t) => got.push(t))
    await uplink.unsubscribe('x/#')
    const back = nextEvent(uplink, 'connect', (e) => e.endpoint === a.url)
    await uplink.failover(a.url)
    expect((await back).sessionPresent).toBe(true)
    await connectedTo(uplink, a.url)
    await waitFor(() => a.subscriptions('gw-sf').includes('y/#'), 'y/# at a')
    await waitFor(() => !a.subscriptions('gw-sf').includes('x/#'), 'x/# gone from a')
    await a.publish('x/1', 'stale', { qos: 1 })
    await a.publish('y/1', 'fresh', { qos: 1 })
    await waitFor(() => got.length > 0, 'a delivery')
    expect(got).toEqual(['y/1'])
  })

  it('a session this process never saw (a restart with other filters): every filter is sent, and delivered', async () => {
    const { a } = await brokers()
    const before = createUplink({ clientId: 'gw-sr', endpoints: [a.url] })
    await before.subscribe('old/#')
    await before.start()
    await waitFor(() => a.subscriptions('gw-sr').includes('old/#'), 'old/# at a')
    await before.stop()
    const after = createUplink({ clientId: 'gw-sr', endpoints: [a.url] })
    cleanup.push(() => after.stop())
    const got: string[] = []
    await after.subscribe('new/#', (t) => got.push(t))
    const connected = nextEvent(after, 'connect')
    await after.start()
    expect((await connected).sessionPresent).toBe(true)
    await waitFor(() => a.subscriptions('gw-sr').includes('new/#'), 'new/# at a')
    await a.publish('new/1', 'x', { qos: 1 })
    await waitFor(() => got.length === 1, 'the delivery')
    expect(got).toEqual(['new/1'])
  })
})

import { startBroker, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink, type UplinkError, type UplinkEvents } from '../src/index.js'
import { nextEvent } from './support/events.js'

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

/** The process warnings emitted from now until the test's cleanup. */
function processWarnings(): Error[] {
  const warnings: Error[] = []
  const onWarning = (w: Error) => warnings.push(w)
  process.on('warning', onWarning)
  cleanup.push(async () => process.off('warning', onWarning))
  return warnings
}

const fast = { initialMs: 10, maxMs: 50 }

describe('a throwing listener does not kill the client', () => {
  it.each<keyof UplinkEvents>(['state', 'connect', 'disconnect', 'reconnecting'])(
    "a '%s' listener that throws is reported as LISTENER_ERROR and the client reconnects",
    async (event) => {
      const broker = await startBroker()
      cleanup.push(() => broker.stop())
      const uplink = createUplink({
        clientId: `gw-throw-${event}`,
        endpoints: [broker.url],
        backoff: fast,
      })
      cleanup.push(() => uplink.stop())
      const errors: UplinkError[] = []
      uplink.on('error', (e) => errors.push(e))
      uplink.on(event, () => {
        throw new Error(`bug in a ${event} listener`)
      })
      let after = 0
      uplink.on(event, () => after++)
      await uplink.start()
      await nextEvent(uplink, 'connect')
      // Twice over: the loop survives each throw and is still deciding.
      for (let round = 0; round < 2; round++) {
        const back = nextEvent(uplink, 'connect')
        broker.dropClient(`gw-throw-${event}`)
        await back
      }
      await waitFor(() => uplink.stats().state === 'connected', 'connected again')
      expect(errors.some((e) => e.code === 'CONNECT_FAILED')).toBe(false)
      const reported = errors.filter((e) => e.code === 'LISTENER_ERROR')
      expect(reported.length).toBeGreaterThan(0)
      expect(reported[0]).toMatchObject({ details: { event } })
      // The listener after the throwing one was still called every time.
      expect(after).toBeGreaterThanOrEqual(reported.length)
      await uplink.publish('telemetry/x', 'still works')
      await waitFor(() => broker.publishes.length === 1, 'publish after the throws')
    },
  )

  it("a throwing 'message' listener, subscription handler and 'error' listener do not crash the process", async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const uplink = createUplink({ clientId: 'gw-throw-message', endpoints: [broker.url] })
    cleanup.push(() => uplink.stop())
    const warnings = processWarnings()
    const uncaught: unknown[] = []
    const onUncaught = (err: unknown) => uncaught.push(err)
    process.on('uncaughtException', onUncaught)
    cleanup.push(async () => process.off('uncaughtException', onUncaught))

    const got: string[] = []
    uplink.on('message', () => {
      throw new Error('bug in a message listener')
    })
    uplink.on('error', () => {
      throw new Error('bug in the error listener')
    })
    await uplink.subscribe('cmd/#', (_t, p) => {
      got.push(p.toString())
      throw new Error('bug in a handler')
    })
    await uplink.start()
    await nextEvent(uplink, 'connect')
    await waitFor(() => broker.subscriptions('gw-throw-message').includes('cmd/#'), 'subscribed')
    await broker.publish('cmd/a', 'one', { qos: 1 })
    await broker.publish('cmd/a', 'two', { qos: 1 })
    await waitFor(() => got.length === 2, 'both commands reached the handler')
    await waitFor(() => warnings.length >= 4, 'warnings for the error listener that threw')
    expect(
      warnings.every((w) => (w as Error & { code?: string }).code === 'UPLINK_LISTENER_ERROR'),
    ).toBe(true)
    expect(warnings.map((w) => w.message)).toContain(
      "a 'error' listener threw: bug in the error listener",
    )
    expect(uncaught).toEqual([])
    expect(uplink.stats().state).toBe('connected')
  })

  it('a subscription handler that throws with no error listener is a process warning, not lost in silence', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const uplink = createUplink({ clientId: 'gw-throw-alone', endpoints: [broker.url] })
    cleanup.push(() => uplink.stop())
    const warnings = processWarnings()
    await uplink.subscribe('cmd/#', () => {
      throw new Error('bug in a lone handler')
    })
    await uplink.start()
    await nextEvent(uplink, 'connect')
    await waitFor(() => broker.subscriptions('gw-throw-alone').includes('cmd/#'), 'subscribed')
    await broker.publish('cmd/a', 'one', { qos: 1 })
    await waitFor(() => warnings.length >= 1, 'the warning')
    expect(warnings.map((w) => [(w as Error & { code?: string }).code, w.message])).toEqual([
      ['UPLINK_LISTENER_ERROR', 'message handler for cmd/a threw'],
    ])
    expect(uplink.stats().state).toBe('connected')
  })

  it("an async 'connect' listener and an async subscription handler that reject are reported as LISTENER_ERROR, with no unhandled rejection", async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    cleanup.push(async () => process.off('unhandledRejection', onUnhandled))
    const uplink = createUplink({ clientId: 'gw-async-listener', endpoints: [broker.url] })
    cleanup.push(() => uplink.stop())
    const errors: UplinkError[] = []
    uplink.on('error', (e) => errors.push(e))
    uplink.on('connect', async () => {
      throw new Error('bug in an async connect listener')
    })
    await uplink.subscribe('cmd/#', async () => {
      throw new Error('bug in an async handler')
    })
    await uplink.start()
    await nextEvent(uplink, 'connect')
    await waitFor(() => broker.subscriptions('gw-async-listener').includes('cmd/#'), 'subscribed')
    await broker.publish('cmd/a', 'one', { qos: 1 })
    await waitFor(() => errors.length >= 2, 'both rejections reported')
    expect(errors.map((e) => [e.code, (e.cause as Error).message]).sort()).toEqual([
      ['LISTENER_ERROR', 'bug in an async connect listener'],
      ['LISTENER_ERROR', 'bug in an async handler'],
    ])
    expect(unhandled).toEqual([])
    expect(uplink.stats().state).toBe('connected')
  })

  it('a listener that throws a value String() cannot show (an object without a prototype) is reported, and the client reconnects', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const uplink = createUplink({
      clientId: 'gw-throw-odd',
      endpoints: [broker.url],
      backoff: fast,
    })
    cleanup.push(() => uplink.stop())
    const errors: UplinkError[] = []
    uplink.on('error', (e) => errors.push(e))
    uplink.on('state', ({ state }) => {
      if (state === 'backing-off') throw Object.create(null)
    })
    await uplink.start()
    await nextEvent(uplink, 'connect')
    const back = nextEvent(uplink, 'connect')
    broker.dropClient('gw-throw-odd')
    await back
    expect(errors.map((e) => e.message)).toContain(
      "a 'state' listener threw: a value that cannot be shown as text",
    )
    expect(errors.some((e) => e.code !== 'LISTENER_ERROR' && e.code !== 'CONNECTION_LOST')).toBe(
      false,
    )
  })
})

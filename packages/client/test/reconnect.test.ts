import { startBroker, startDnsServer, startFaultProxy, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink, ManualClock, type Uplink, type UplinkError } from '../src/index.js'
import { nextEvent } from './support/events.js'
import { closedPort } from './support/net.js'

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

/** Starts `uplink` and lets `n` attempts fail, each wait advanced on `clock`; their delays. */
async function failedAttempts(uplink: Uplink, clock: ManualClock, n: number): Promise<number[]> {
  const delays: number[] = []
  uplink.on('reconnecting', (e) => delays.push(e.delayMs))
  await uplink.start()
  for (let i = 0; i < n; i++) {
    await waitFor(() => delays.length === i + 1, `attempt ${i + 1}`)
    await clock.advance(delays[i] as number)
  }
  return delays
}

describe('backoff end to end (injected clock and random source, real refused connections)', () => {
  it('waits 1 s, 2 s, 4 s ... and never more than maxMs', async () => {
    const port = await closedPort()
    const clock = new ManualClock(0)
    const uplink = createUplink({
      clientId: 'gw-backoff',
      endpoints: [`mqtt://127.0.0.1:${port}`],
      clock,
      backoff: { jitter: 'none', maxMs: 8_000 },
    })
    cleanup.push(() => uplink.stop())
    const delays: number[] = []
    const codes: string[] = []
    uplink.on('reconnecting', (e) => {
      delays.push(e.delayMs)
      codes.push(e.error.code)
    })
    await uplink.start()
    for (let i = 0; i < 7; i++) {
      await waitFor(() => delays.length === i + 1, `attempt ${i + 1} to fail`)
      expect(uplink.stats().state).toBe('backing-off')
      // One tick short of the delay, no new attempt has been made.
      await clock.advance((delays[i] as number) - 1)
      expect(uplink.stats().attempts).toBe(i + 1)
      await clock.advance(1)
    }
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 8_000, 8_000, 8_000])
    expect(new Set(codes)).toEqual(new Set(['CONNECT_FAILED']))
  })

  it('applies full jitter from the injected random source', async () => {
    const port = await closedPort()
    const clock = new ManualClock(0)
    const uplink = createUplink({
      clientId: 'gw-jitter',
      endpoints: [`mqtt://127.0.0.1:${port}`],
      clock,
      random: () => 0.25,
    })
    cleanup.push(() => uplink.stop())
    const delays = await failedAttempts(uplink, clock, 4)
    expect(delays).toEqual([250, 500, 1_000, 2_000])
  })

  it('asks DNS with crypto-random transaction ids, not with the injected random source that times its backoff', async () => {
    const port = await closedPort()
    const dns = await startDnsServer()
    cleanup.push(() => dns.stop())
    dns.set('broker.uplink.test', ['127.0.0.1'])
    const clock = new ManualClock(0)
    const uplink = createUplink({
      clientId: 'gw-dns-ids',
      endpoints: [`mqtt://broker.uplink.test:${port}`],
      dns: { servers: [dns.server], family: 4, systemFallback: false },
      clock,
      // The same draw every time: ids taken from it would all be 0x8000.
      random: () => 0.5,
      backoff: { jitter: 'none', informed: false },
    })
    cleanup.push(() => uplink.stop())
    await failedAttempts(uplink, clock, 4)
    const ids = dns.queries.filter((q) => q.name === 'broker.uplink.test').map((q) => q.id)
    expect(ids.length).toBeGreaterThanOrEqual(4)
    // Four independent 16-bit draws all alike: one chance in 2^48.
    expect(new Set(ids).size).toBeGreaterThan(1)
  })

  it('keeps climbing when a broker accepts then drops, and starts afresh (within the spread) after a stable period', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    let dropping = true
    broker.aedes.on('clientReady', (client) => {
      if (dropping) setImmediate(() => client.close())
    })
    const clock = new ManualClock(0)
    const uplink = createUplink({
      clientId: 'gw-flappy',
      endpoints: [broker.url],
      clock,
      random: () => 0.25,
      backoff: { jitter: 'none', stableMs: 30_000 },
    })
    cleanup.push(() => uplink.stop())
    const delays: number[] = []
    uplink.on('reconnecting', (e) => delays.push(e.delayMs))
    await uplink.start()
    await waitFor(() => delays.length === 1, 'first drop')
    await clock.advance(delays[0] as number)
    await waitFor(() => delays.length === 2, 'second drop')
    await clock.advance(delays[1] as number)
    await waitFor(() => delays.length === 3, 'third drop')
    expect(delays).toEqual([1_000, 2_000, 4_000])

    dropping = false
    await clock.advance(4_000)
    await waitFor(() => uplink.stats().state === 'connected', 'a connection that stays')
    await clock.advance(30_000)
    // The reconnect that follows is dropped again and climbs on: look only at the first delay.
    dropping = true
    for (const c of broker.clientIds()) broker.dropClient(c)
    await waitFor(() => delays.length >= 4, 'drop after a stable period')
    // A connection that stayed up 30 s earns a fresh start: a reconnect within the arrival
    // spread (0.25 x 1 000 ms), not the next rung.
    expect(delays[3]).toBe(250)
  })

  it("a lost link's and a refused attempt's errors carry no stack frames, Node's error kept as their cause", async () => {
    const broker = await startBroker()
    const clock = new ManualClock(0)
    const uplink = createUplink({
      clientId: 'gw-stackless',
      endpoints: [broker.url],
      clock,
      backoff: { jitter: 'none' },
    })
    cleanup.push(() => uplink.stop())
    const errors: UplinkError[] = []
    const delays: number[] = []
    uplink.on('reconnecting', (e) => {
      errors.push(e.error)
      delays.push(e.delayMs)
    })
    const limit = Error.stackTraceLimit
    await uplink.start()
    await waitFor(() => uplink.stats().state === 'connected', 'connected')
    await broker.stop()
    await waitFor(() => errors.length === 1, 'the link lost')
    await clock.advance(delays[0] as number)
    await waitFor(() => errors.length === 2, 'the next attempt refused')
    expect(errors.map((e) => e.code)).toEqual(['CONNECTION_LOST', 'CONNECT_FAILED'])
    for (const e of errors) {
      // Only the message line (on Bun too, whose engine would leave none): nothing was captured
      // in the socket callback they came from, and nothing enumerable was added.
      expect(String(e.stack).split('\n')).toEqual([`UplinkError: ${e.message}`])
      expect(Object.keys(e)).not.toContain('stack')
    }
    expect((errors[1]?.cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED')
    expect(String((errors[1]?.cause as Error).stack)).toContain('\n')
    expect(Error.stackTraceLimit).toBe(limit)
  })

  it('bounds each attempt by connectTimeoutMs when no CONNACK comes', async () => {
    const broker = await startBroker()
    const proxy = await startFaultProxy({ host: broker.host, port: broker.port })
    cleanup.push(
      () => broker.stop(),
      () => proxy.stop(),
    )
    proxy.setMode('blackhole')
    const clock = new ManualClock(0)
    const uplink = createUplink({
      clientId: 'gw-connack',
      endpoints: [proxy.url()],
      clock,
      connectTimeoutMs: 5_000,
    })
    cleanup.push(() => uplink.stop())
    const failure = nextEvent(uplink, 'reconnecting')
    await uplink.start()
    await waitFor(() => proxy.connectionCount === 1, 'the attempt reaching the proxy')
    await clock.advance(4_999)
    expect(uplink.stats().state).toBe('connecting')
    await clock.advance(1)
    expect((await failure).error.code).toBe('CONNECT_TIMEOUT')
  })
})

describe('keepalive', () => {
  it('detects a half-open link within 1.5 x keepalive, then reconnects', async () => {
    const broker = await startBroker()
    const proxy = await startFaultProxy({ host: broker.host, port: broker.port })
    cleanup.push(
      () => broker.stop(),
      () => proxy.stop(),
    )
    const clock = new ManualClock(0)
    const uplink = createUplink({
      clientId: 'gw-ka',
      endpoints: [proxy.url()],
      keepalive: 2,
      clock,
    })
    cleanup.push(() => uplink.stop())
    await uplink.start()
    await nextEvent(uplink, 'connect')

    // A healthy link survives many keepalive periods: each PINGREQ gets its PINGRESP.
    for (let i = 0; i < 6; i++) {
      await clock.advance(1_000)
      await new Promise((r) => setTimeout(r, 30))
    }
    expect(uplink.stats().state).toBe('connected')

    // Now the link goes half-open: bytes vanish both ways, no FIN, no RST.
    const lost = nextEvent(uplink, 'disconnect')
    proxy.setMode('blackhole')
    const t0 = clock.now()
    await clock.advance(2_999)
    expect(uplink.stats().state).toBe('connected')
    await clock.advance(1_000)
    const error = (await lost).error as UplinkError
    expect(error.code).toBe('KEEPALIVE_TIMEOUT')
    expect(clock.now() - t0).toBeLessThanOrEqual(1.5 * 2_000 + 1_000)

    proxy.setMode('pass')
    const back = nextEvent(uplink, 'connect')
    for (let i = 0; i < 5 && uplink.stats().state !== 'connected'; i++) {
      await clock.advance(2_000)
      await new Promise((r) => setTimeout(r, 50))
    }
    await back
  })
})

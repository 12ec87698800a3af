import http from 'node:http'
import { startConcierge, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../src/clock.js'
import { ConciergePoller } from '../src/concierge.js'
import { EpochFloor, parseDirective } from '../src/directive.js'
import type { UplinkError } from '../src/errors.js'
import { resolveConcierge } from '../src/options.js'

const cleanup: Array<() => Promise<unknown> | unknown> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

/**
 * The requests of these tests time out this far away on the clock: a timer due exactly this far
 * away (the clock stands still while a test waits) is a request's deadline.
 */
const TIMEOUT_MS = 600_000
/** One timer waits on the clock, and it is not a request's deadline: no request is in flight. */
const onlyWaiting = (clock: ManualClock) =>
  clock.pending() === 1 && clock.nextDelay() !== TIMEOUT_MS

/**
 * A poller on the manual clock against a real concierge answering `body`, with `random` always
 * `r`; what it reports is kept.
 */
async function poller(body: object, retries: number, r: number) {
  const concierge = await startConcierge({ body })
  const clock = new ManualClock(0)
  const directives: string[] = []
  const unchanged: string[] = []
  const errors: UplinkError[] = []
  const floor = new EpochFloor()
  const poller = new ConciergePoller(
    resolveConcierge({
      url: concierge.url,
      allowedHosts: ['127.0.0.2'],
      retries,
      jitter: 0,
      timeoutMs: TIMEOUT_MS,
    }),
    clock,
    () => r,
    {
      parse: (body, lastEpoch) =>
        parseDirective(body, { allowedHosts: ['127.0.0.2'], plaintext: true, lastEpoch }),
      directive: (d) => directives.push(d.endpoint.url),
      unchanged: (d) => unchanged.push(`${d.endpoint.url} ${d.epoch}`),
      error: (e) => errors.push(e),
    },
    floor,
  )
  cleanup.push(
    () => poller.stop(),
    () => concierge.stop(),
  )
  return { concierge, clock, poller, directives, unchanged, errors, floor }
}

const setup = (retries: number) =>
  poller({ endpoint: 'mqtt://127.0.0.2:1883', epoch: 1 }, retries, 0.5)

describe('ConciergePoller retries', () => {
  it('retries a failing poll 200 ms, then 400 ms later on the device clock, and takes the answer', async () => {
    const { concierge, clock, poller, directives, errors } = await setup(3)
    concierge.setFault('500')
    const polled = poller.poll()
    // The 500 came back and the retry waits on the injected clock, not on a real timer.
    await waitFor(() => onlyWaiting(clock), 'the first retry scheduled')
    expect(concierge.requestCount).toBe(1)
    await clock.advance(199)
    expect(concierge.requestCount).toBe(1)
    await clock.advance(1)
    await waitFor(() => concierge.requestCount === 2, 'the first retry')
    await waitFor(() => onlyWaiting(clock), 'the second retry scheduled')
    concierge.setFault('none')
    await clock.advance(399)
    expect(concierge.requestCount).toBe(2)
    await clock.advance(1)
    await waitFor(() => concierge.requestCount === 3, 'the second retry')
    expect((await polled)?.endpoint.url).toBe('mqtt://127.0.0.2:1883')
    expect(directives).toEqual(['mqtt://127.0.0.2:1883'])
    expect(errors).toEqual([])
  })

  it('gives up after `retries` and reports CONCIERGE_ERROR; a 4xx is not retried', async () => {
    const { concierge, clock, poller, errors } = await setup(1)
    concierge.setFault('500')
    const polled = poller.poll()
    await waitFor(() => onlyWaiting(clock), 'the retry scheduled')
    await clock.advance(200)
    expect(await polled).toBeUndefined()
    expect(concierge.requestCount).toBe(2)
    expect(errors.map((e) => [e.code, e.details?.status])).toEqual([['CONCIERGE_ERROR', 500]])

    // The testkit concierge answers 404 for an unknown path.
    const { concierge: other, poller: wrongPath, errors: refused } = await setupAt('/nope')
    expect(await wrongPath.poll()).toBeUndefined()
    expect(other.requestCount).toBe(1)
    expect(refused.map((e) => [e.code, e.details?.status])).toEqual([['CONCIERGE_ERROR', 404]])
  })
})

async function setupAt(path: string) {
  const concierge = await startConcierge({ body: {} })
  const errors: UplinkError[] = []
  const poller = new ConciergePoller(
    resolveConcierge({
      url: concierge.url.replace('/v1/endpoint', path),
      allowedHosts: [],
      retries: 3,
    }),
    new ManualClock(0),
    () => 0.5,
    {
      parse: () => ({}) as never,
      directive: () => {},
      unchanged: () => {},
      error: (e) => errors.push(e),
    },
  )
  cleanup.push(
    () => poller.stop(),
    () => concierge.stop(),
  )
  return { concierge, poller, errors }
}

describe('the concierge cannot make a fleet hammer it', () => {
  async function polling(pollIntervalSeconds: number) {
    const endpoint = 'mqtt://127.0.0.2:1883'
    const {
      concierge,
      clock,
      poller: p,
    } = await poller({ endpoint, epoch: 1, pollIntervalSeconds }, 0, 0.5)
    p.start()
    await waitFor(() => concierge.requestCount === 1 && onlyWaiting(clock), 'first poll done')
    return { concierge, clock }
  }

  it.each([
    [0.001, 5_000],
    [1e7, 86_400_000],
  ])(
    'a directive pollIntervalSeconds of %d polls again after %d ms, not sooner',
    async (seconds, ms) => {
      const { concierge, clock } = await polling(seconds)
      expect(clock.nextDelay()).toBe(ms)
      await clock.advance(ms - 1)
      expect(concierge.requestCount).toBe(1)
      await clock.advance(1)
      await waitFor(() => concierge.requestCount === 2, 'the next poll at the bound')
    },
  )

  it('spreads its retries: with random 0.9 the first retry waits 280 ms, not 200', async () => {
    const {
      concierge,
      clock,
      poller: p,
    } = await poller({ endpoint: 'mqtt://127.0.0.2:1883', epoch: 1 }, 2, 0.9)
    concierge.setFault('500')
    const polled = p.poll()
    await waitFor(() => onlyWaiting(clock), 'the first retry scheduled')
    expect(clock.nextDelay()).toBe(280)
    await clock.advance(279)
    expect(concierge.requestCount).toBe(1)
    await clock.advance(1)
    await waitFor(() => concierge.requestCount === 2, 'the first retry, spread')
    concierge.setFault('none')
    await waitFor(() => onlyWaiting(clock), 'the second retry scheduled')
    expect(clock.nextDelay()).toBe(560)
    await clock.advance(559)
    expect(concierge.requestCount).toBe(2)
    await clock.advance(1)
    await polled
    expect(concierge.requestCount).toBe(3)
  })
})

describe('an answer said again', () => {
  it('is confirmed, by a 304 or by the same body, as long as no newer epoch has passed it', async () => {
    const said = await poller({ endpoint: 'mqtt://127.0.0.2:1883', epoch: 3 }, 0, 0.5)
    const { concierge, directives, unchanged, floor } = said
    expect((await said.poller.poll())?.endpoint.url).toBe('mqtt://127.0.0.2:1883')
    // The same ETag: a 304, confirming the directive the poller holds.
    expect(await said.poller.poll()).toBeUndefined()
    expect(concierge.requests.at(-1)?.status).toBe(304)
    // The same answer in a new body (another ETag): a 200 saying nothing new.
    concierge.setBody({ epoch: 3, endpoint: 'mqtt://127.0.0.2:1883' })
    expect(await said.poller.poll()).toBeUndefined()
    expect(concierge.requests.at(-1)?.status).toBe(200)
    expect(directives).toEqual(['mqtt://127.0.0.2:1883'])
    expect(unchanged).toEqual(['mqtt://127.0.0.2:1883 3', 'mqtt://127.0.0.2:1883 3'])
    // A control message moved the floor past it: a 304 no longer confirms the old word.
    floor.raise(4)
    expect(await said.poller.poll()).toBeUndefined()
    expect(concierge.requests.at(-1)?.status).toBe(304)
    expect(unchanged).toHaveLength(2)
  })
})

describe('one epoch floor for the concierge and the control topic', () => {
  it('an epoch raised elsewhere (a control message) refuses an older concierge answer, and a newer one raises it', async () => {
    const concierge = await startConcierge({
      body: { endpoint: 'mqtt://127.0.0.2:1883', epoch: 9 },
    })
    const floor = new EpochFloor()
    const directives: number[] = []
    const errors: UplinkError[] = []
    const poller = new ConciergePoller(
      resolveConcierge({ url: concierge.url, allowedHosts: ['127.0.0.2'], retries: 0 }),
      new ManualClock(0),
      () => 0.5,
      {
        parse: (body, lastEpoch) =>
          parseDirective(body, { allowedHosts: ['127.0.0.2'], plaintext: true, lastEpoch }),
        directive: (d) => directives.push(d.epoch),
        unchanged: () => {},
        error: (e) => errors.push(e),
      },
      floor,
    )
    cleanup.push(
      () => poller.stop(),
      () => concierge.stop(),
    )
    floor.raise(10)
    expect(await poller.poll()).toBeUndefined()
    expect(errors).toMatchObject([
      { code: 'DIRECTIVE_REFUSED', details: { epoch: 9, lastEpoch: 10 } },
    ])
    concierge.setBody({ endpoint: 'mqtt://127.0.0.2:1883', epoch: 12 })
    expect((await poller.poll())?.epoch).toBe(12)
    expect(floor.value).toBe(12)
    expect(directives).toEqual([12])
  })
})

describe('a concierge that answers slowly', () => {
  it('is cut off timeoutMs after the request on the device clock, although bytes keep coming, and the poll reports it', async () => {
    // Headers at once, then one byte of the body every 50 ms: never silent for long enough for
    // a socket's idle timeout. Bounded: 200 bytes, then the socket is closed.
    const trickles = new Set<NodeJS.Timeout>()
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      let sent = 0
      const timer = setInterval(() => {
        if (sent++ >= 200 || res.destroyed) {
          clearInterval(timer)
          res.destroy()
        } else res.write(' ')
      }, 50)
      trickles.add(timer)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanup.push(() => {
      for (const t of trickles) clearInterval(t)
      server.closeAllConnections()
      return new Promise((resolve) => server.close(resolve))
    })
    const { port } = server.address() as { port: number }
    const clock = new ManualClock(0)
    const errors: UplinkError[] = []
    const poller = new ConciergePoller(
      resolveConcierge({
        url: `http://127.0.0.1:${port}/v1/endpoint`,
        allowedHosts: [],
        retries: 0,
        timeoutMs: 1_000,
      }),
      clock,
      () => 0.5,
      {
        parse: () => ({}) as never,
        directive: () => {},
        unchanged: () => {},
        error: (e) => errors.push(e),
      },
    )
    cleanup.push(() => poller.stop())
    const polled = poller.poll()
    await waitFor(() => trickles.size === 1, 'the concierge answering')
    await clock.advance(999)
    expect(errors).toEqual([])
    await clock.advance(1)
    expect(await polled).toBeUndefined()
    expect(errors.map((e) => e.message)).toEqual(['concierge did not answer within 1000 ms'])
  })
})

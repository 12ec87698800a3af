import {
  startBroker,
  startBrokerPair,
  startConcierge,
  startDnsServer,
  startFaultProxy,
  startMosquitto,
  startRedirector,
  waitFor,
} from '@uplink/testkit'
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import {
  createUplink,
  type FailoverEvent,
  type Uplink,
  type UplinkError,
  type UplinkOptions,
} from '../src/index.js'
import { nextEvent } from './support/events.js'
import { closedPort } from './support/net.js'
import { missing, sequences, startTraffic } from './support/traffic.js'

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

async function twoRegions() {
  const a = await startBroker({ host: '127.0.0.1' })
  const b = await startBroker({ host: '127.0.0.2' })
  cleanup.push(
    () => a.stop(),
    () => b.stop(),
  )
  return { a, b }
}

function client(options: Partial<UplinkOptions> & Pick<UplinkOptions, 'endpoints'>): Uplink {
  const uplink = createUplink({
    clientId: 'gw-planned',
    backoff: { initialMs: 50, maxMs: 500 },
    ...options,
    // After `...options`, so that a test's own `failover` adds to these instead of replacing them.
    failover: { minStayMs: 0, allowedHosts: ['127.0.0.2'], ...options.failover },
  } as UplinkOptions)
  cleanup.push(() => uplink.stop())
  return uplink
}

/** A concierge polled each second, exactly (no jitter), that may name 127.0.0.2. */
const polled = (url: string, extra: Partial<NonNullable<UplinkOptions['concierge']>> = {}) => ({
  url,
  allowedHosts: ['127.0.0.2'],
  intervalMs: 1_000,
  jitter: 0,
  ...extra,
})

/** Runs traffic through a move and checks: on `to`, nothing lost, a clean goodbye to `from`. */
let moves = 0

async function expectCleanMove(
  uplink: Uplink,
  from: Awaited<ReturnType<typeof twoRegions>>['a'],
  to: Awaited<ReturnType<typeof twoRegions>>['b'],
  trigger: () => unknown,
  reason: FailoverEvent['reason'],
) {
  // A topic of its own per move: a test may move back and forth between the same two brokers.
  const topic = `telemetry/gw-planned/${++moves}`
  const traffic = startTraffic(uplink, topic)
  await waitFor(() => from.publishes.length >= 20, 'traffic on the first broker')
  // A burst just before the move, so that the old connection has messages in flight when the
  // new one takes over: they finish there and must not be sent again on the new one.
  const burstTopic = `${topic}/burst`
  const burst = Array.from({ length: 300 }, (_, n) =>
    uplink.publish(burstTopic, JSON.stringify({ seq: n })).then(() => n),
  )
  const moved = nextEvent(uplink, 'failover')
  await trigger()
  const event = (await moved) as FailoverEvent
  expect(event.reason).toBe(reason)
  expect(event.to).toBe(uplink.stats().endpoint)
  await waitFor(() => sequences(to.publishes, topic).length >= 20, 'traffic on the second broker')
  traffic.stop()
  await waitFor(() => uplink.stats().outbox.messages === 0, 'outbox drained')
  const delivered = [...sequences(from.publishes, topic), ...sequences(to.publishes, topic)]
  expect(missing(traffic.accepted, delivered)).toEqual([])
  const burstDelivered = [
    ...sequences(from.publishes, burstTopic),
    ...sequences(to.publishes, burstTopic),
  ]
  expect(missing(await Promise.all(burst), burstDelivered)).toEqual([])
  // Make-before-break sends nothing twice: each message reached exactly one broker, once.
  const all = [...delivered, ...burstDelivered.map((n) => `burst ${n}`)]
  expect(all.length).toBe(new Set(all).size)
  await waitFor(
    () => from.disconnects.some((d) => d.clientId === 'gw-planned'),
    'old connection closed',
  )
  expect(from.disconnects.filter((d) => d.clientId === 'gw-planned').every((d) => d.clean)).toBe(
    true,
  )
  expect(uplink.stats().address).toBe(to.host)
}

describe('planned failover signals', () => {
  it('concierge: a new directive moves a healthy device, make-before-break', async () => {
    const { a, b } = await twoRegions()
    const concierge = await startConcierge({ body: { endpoint: a.url, epoch: 1 } })
    cleanup.push(() => concierge.stop())
    const uplink = client({
      endpoints: [a.url],
      concierge: polled(concierge.url),
    })
    await uplink.start()
    await nextEvent(uplink, 'connect')
    await expectCleanMove(
      uplink,
      a,
      b,
      () => concierge.setBody({ endpoint: b.url, epoch: 2 }),
      'concierge',
    )
    // Unchanged answers come back as 304 Not Modified.
    await waitFor(() => concierge.requests.some((r) => r.status === 304), 'a 304 answer')
    // Failback to the primary is the same move the other way.
    await expectCleanMove(
      uplink,
      b,
      a,
      () => concierge.setBody({ endpoint: a.url, epoch: 3 }),
      'concierge',
    )
  })

  it('DNS watch: the connected address leaving the record moves the device', async () => {
    const [a, b] = await startBrokerPair()
    const dns = await startDnsServer()
    cleanup.push(
      () => a.stop(),
      () => b.stop(),
      () => dns.stop(),
    )
    dns.set('iot.uplink.test', ['127.0.0.1'], 1)
    const uplink = client({
      endpoints: [`mqtt://iot.uplink.test:${a.port}`],
      dns: { servers: [dns.server], timeoutMs: 300, watch: { minIntervalMs: 200 } },
    })
    await uplink.start()
    await nextEvent(uplink, 'connect')
    await expectCleanMove(
      uplink,
      a,
      b,
      () => dns.set('iot.uplink.test', ['127.0.0.2'], 1),
      'dns-changed',
    )
  })

  it('control message: a directive pushed on the control topic moves the device', async () => {
    const { a, b } = await twoRegions()
    const uplink = client({ endpoints: [a.url], control: { topic: 'ctl/gw-planned' } })
    await uplink.start()
    await nextEvent(uplink, 'connect')
    await waitFor(
      () => a.subscriptions('gw-planned').includes('ctl/gw-planned'),
      'control subscription',
    )
    await expectCleanMove(
      uplink,
      a,
      b,
      () => a.publish('ctl/gw-planned', JSON.stringify({ endpoint: b.url, epoch: 3 }), { qos: 1 }),
      'control',
    )
  })

  it('manual: failover(url) moves at once', async () => {
    const { a, b } = await twoRegions()
    const uplink = client({ endpoints: [a.url, b.url], failover: { minStayMs: 60_000 } })
    await uplink.start()
    await nextEvent(uplink, 'connect')
    await expectCleanMove(uplink, a, b, () => uplink.failover(), 'manual')
  })

  it('MQTT 5 redirect in CONNACK sends the device to the Server Reference', async () => {
    const target = await startMosquitto()
    const redirector = await startRedirector({
      mode: 'connack',
      serverReference: `127.0.0.1:${target.port}`,
    })
    cleanup.push(
      () => target.stop(),
      () => redirector.stop(),
    )
    const uplink = client({ endpoints: [redirector.url], protocolVersion: 5 })
    const moved = nextEvent(uplink, 'failover')
    await uplink.start()
    expect(await moved).toMatchObject({ reason: 'server-redirect', to: target.url })
    expect(redirector.connects).toBe(1)
  })

  it('MQTT 5 DISCONNECT with a redirect moves a connected device', async () => {
    const target = await startMosquitto()
    const redirector = await startRedirector({
      mode: 'disconnect',
      serverReference: `127.0.0.1:${target.port}`,
    })
    cleanup.push(
      () => target.stop(),
      () => redirector.stop(),
    )
    // An independent subscriber on the target counts what arrives there.
    const watcher = await mqtt.connectAsync(target.url, { clientId: 'watcher', reconnectPeriod: 0 })
    cleanup.push(() => watcher.endAsync())
    const onTarget: Array<{ topic: string; payload: Buffer }> = []
    watcher.on('message', (topic, payload) => onTarget.push({ topic, payload }))
    await watcher.subscribeAsync('telemetry/#', { qos: 1 })
    const uplink = client({ endpoints: [redirector.url], protocolVersion: 5 })
    await uplink.start()
    await nextEvent(uplink, 'connect')
    const topic = 'telemetry/gw-planned'
    const traffic = startTraffic(uplink, topic)
    await waitFor(() => redirector.publishes.length >= 20, 'traffic on the redirecting server')
    const moved = nextEvent(uplink, 'failover')
    redirector.redirectAll()
    expect(await moved).toMatchObject({ reason: 'server-redirect', to: target.url })
    await waitFor(() => sequences(onTarget, topic).length >= 20, 'traffic on the target')
    traffic.stop()
    await waitFor(() => uplink.stats().outbox.messages === 0, 'outbox drained')
    await waitFor(
      () =>
        missing(traffic.accepted, [
          ...sequences(redirector.publishes, topic),
          ...sequences(onTarget, topic),
        ]).length === 0,
      'every accepted message delivered',
    )
  })
})

describe("the concierge's answer, said again", () => {
  /** A device the concierge sends to `b`, behind a proxy that can fail it, with `a` configured. */
  async function standing() {
    const { a, b } = await twoRegions()
    const toB = await startFaultProxy({ host: b.host, port: b.port }, { host: '127.0.0.2' })
    const concierge = await startConcierge({ body: { endpoint: toB.url(), epoch: 1 } })
    cleanup.push(
      () => toB.stop(),
      () => concierge.stop(),
    )
    const uplink = client({
      endpoints: [a.url],
      failoverAfter: 2,
      concierge: polled(concierge.url),
    })
    const moves: FailoverEvent[] = []
    uplink.on('failover', (e) => moves.push(e))
    uplink.on('error', () => {})
    await uplink.start()
    await waitFor(
      () => uplink.stats().endpoint === toB.url() && uplink.stats().state === 'connected',
      'on b, as the concierge says',
    )
    return { a, toB, concierge, uplink, moves }
  }

  it('brings back a device that fell back while the named endpoint was down, once it is up', async () => {
    const { a, toB, concierge, uplink, moves } = await standing()
    toB.setMode('reset')
    await waitFor(
      () => uplink.stats().endpoint === a.url && uplink.stats().state === 'connected',
      'fallen back to a',
    )
    toB.setMode('pass')
    const back = nextEvent(uplink, 'failover', (e) => e.to === toB.url(), 15_000)
    // The answer has not changed: only 304s bring it back.
    const served = concierge.requestCount
    const event = await back
    expect(event).toMatchObject({ reason: 'concierge', from: a.url })
    expect(concierge.requests.slice(served).every((r) => r.status === 304)).toBe(true)
    expect(uplink.stats()).toMatchObject({ state: 'connected', endpoint: toB.url() })
    // Back there by a make-before-break move: a clean goodbye to a.
    await waitFor(() => a.disconnects.some((d) => d.clientId === 'gw-planned'), 'a left')
    expect(a.disconnects.filter((d) => d.clientId === 'gw-planned').every((d) => d.clean)).toBe(
      true,
    )
    expect(moves.map((m) => m.reason)).toEqual(['connection-lost', 'concierge'])
  })

  it("does not undo a manual move: the user's word stands until the answer changes", async () => {
    const { a, concierge, uplink, moves } = await standing()
    await uplink.failover(a.url)
    await waitFor(
      () => uplink.stats().endpoint === a.url && uplink.stats().state === 'connected',
      'on a',
    )
    const served = concierge.requestCount
    await waitFor(
      () => concierge.requests.slice(served).filter((r) => r.status === 304).length >= 3,
      'three 304s',
    )
    expect(uplink.stats()).toMatchObject({ state: 'connected', endpoint: a.url })
    expect(moves.map((m) => m.reason)).toEqual(['manual'])
  })
})

describe('refusals leave the connection alone', () => {
  it('refuses directives naming a host outside allowedHosts, older epochs and malformed ones', async () => {
    const { a } = await twoRegions()
    const uplink = client({ endpoints: [a.url], control: { topic: 'ctl/gw-planned' } })
    const errors: UplinkError[] = []
    uplink.on('error', (e) => errors.push(e))
    let moves = 0
    uplink.on('failover', () => moves++)
    await uplink.start()
    await nextEvent(uplink, 'connect')
    await waitFor(
      () => a.subscriptions('gw-planned').includes('ctl/gw-planned'),
      'control subscription',
    )
    const send = (body: string) => a.publish('ctl/gw-planned', body, { qos: 1 })

    await send(JSON.stringify({ endpoint: 'mqtt://evil.example.net:1883', epoch: 10 }))
    await waitFor(() => errors.length === 1, 'refusal of a foreign host')
    expect(errors[0]?.code).toBe('DIRECTIVE_REFUSED')
    expect(errors[0]?.message).toContain('evil.example.net')

    await send(JSON.stringify({ endpoint: a.url, epoch: 10 }))
    await send(JSON.stringify({ endpoint: 'mqtt://127.0.0.2:1883', epoch: 9 }))
    await waitFor(() => errors.length === 2, 'refusal of an older epoch')
    expect(errors[1]).toMatchObject({
      code: 'DIRECTIVE_REFUSED',
      details: { epoch: 9, lastEpoch: 10 },
    })

    await send('{not json')
    await waitFor(() => errors.length === 3, 'refusal of malformed JSON')
    expect(errors[2]?.code).toBe('DIRECTIVE_INVALID')

    expect(moves).toBe(0)
    expect(a.disconnects.filter((d) => d.clientId === 'gw-planned')).toEqual([])
    expect(uplink.stats()).toMatchObject({ state: 'connected', address: '127.0.0.1' })
  })

  it('refuses an MQTT 5 redirect to a host outside allowedHosts', async () => {
    const redirector = await startRedirector({
      mode: 'connack',
      serverReference: 'evil.example.net:1883',
    })
    cleanup.push(() => redirector.stop())
    const uplink = client({ endpoints: [redirector.url], protocolVersion: 5 })
    const refused = nextEvent(uplink, 'error', (e) => e.code === 'DIRECTIVE_REFUSED')
    await uplink.start()
    expect((await refused).message).toContain('evil.example.net')
    expect(uplink.stats().endpoint).toBe(redirector.url)
  })

  it('stays connected when the target of a move cannot be reached, and retries', async () => {
    const { a } = await twoRegions()
    const dead = await closedPort()
    const uplink = client({ endpoints: [a.url] })
    await uplink.start()
    await nextEvent(uplink, 'connect')
    const failed = nextEvent(uplink, 'error', (e) => e.code === 'FAILOVER_FAILED')
    await uplink.failover(`mqtt://127.0.0.1:${dead}`)
    await failed
    await nextEvent(uplink, 'error', (e) => e.code === 'FAILOVER_FAILED')
    expect(uplink.stats()).toMatchObject({ state: 'connected', endpoint: a.url })
    expect(a.disconnects.filter((d) => d.clientId === 'gw-planned')).toEqual([])
  })

  it('flap damping: a planned move waits for minStayMs; an unreachable concierge keeps the endpoint', async () => {
    const { a, b } = await twoRegions()
    const concierge = await startConcierge({ body: { endpoint: b.url, epoch: 1 } })
    cleanup.push(() => concierge.stop())
    concierge.setFault('500')
    const minStayMs = 5_000
    const uplink = client({
      endpoints: [a.url],
      concierge: polled(concierge.url, { retries: 0 }),
      failover: { minStayMs },
    })
    const errors: UplinkError[] = []
    uplink.on('error', (e) => errors.push(e))
    await uplink.start()
    // Start-up with the concierge failing: the configured endpoint is used.
    await nextEvent(uplink, 'connect')
    const connectedAt = Date.now()
    expect(uplink.stats().endpoint).toBe(a.url)
    expect(errors.some((e) => e.code === 'CONCIERGE_ERROR')).toBe(true)

    concierge.setFault('none')
    const served = concierge.requestCount
    const moved = nextEvent(uplink, 'failover', () => true, 15_000)
    await waitFor(
      () => concierge.requests.slice(served).some((r) => r.status === 200),
      'the directive served',
    )
    const servedAt = Date.now()
    // The directive came well inside the stay: it is held, not followed, and not dropped.
    expect(servedAt - connectedAt).toBeLessThan(minStayMs - 1_000)
    expect(uplink.stats().endpoint).toBe(a.url)
    expect(b.connectCount).toBe(0)
    const event = await moved
    const movedAt = Date.now()
    expect(event).toMatchObject({ reason: 'concierge', from: a.url, to: b.url })
    expect(movedAt - connectedAt).toBeGreaterThanOrEqual(minStayMs)
    expect(uplink.stats().endpoint).toBe(b.url)
  })

  it('a concierge that stops answering does not hold up the reconnect to the next broker by its timeouts', async () => {
    const { a, b } = await twoRegions()
    const concierge = await startConcierge({ body: { endpoint: a.url, epoch: 1 } })
    cleanup.push(() => concierge.stop())
    const uplink = client({
      endpoints: [a.url, b.url],
      failoverAfter: 1,
      concierge: polled(concierge.url, { retries: 0, timeoutMs: 20_000 }),
    })
    uplink.on('error', () => {})
    await uplink.start()
    await nextEvent(uplink, 'connect')
    // From now on the concierge accepts and never answers; the poll after the 1 s interval
    // (the answer stale from then on) hangs.
    concierge.setFault('hang')
    const asked = concierge.requestCount
    await waitFor(() => concierge.requestCount > asked, 'a poll that hangs')
    const moved = nextEvent(uplink, 'connect', (e) => e.endpoint === b.url, 15_000)
    const lostAt = Date.now()
    await a.stop()
    await moved
    // Before, the reconnect first waited for that poll's 20 s timeout.
    expect(Date.now() - lostAt).toBeLessThan(8_000)
  })

  it('after a planned move the old broker keeps retained presence offline, the new one online', async () => {
    const { a, b } = await twoRegions()
    const uplink = client({
      clientId: 'gw-presence-move',
      endpoints: [a.url, b.url],
      presence: { topic: 'status/gw-presence-move' },
    })
    await uplink.start()
    await nextEvent(uplink, 'connect')
    await waitFor(
      () => a.publishes.some((p) => p.topic === 'status/gw-presence-move'),
      'online on the first broker',
    )
    const moved = nextEvent(uplink, 'failover')
    await uplink.failover(b.url)
    await moved
    await waitFor(
      () => a.disconnects.some((d) => d.clientId === 'gw-presence-move' && d.clean),
      'old connection closed cleanly',
    )
    const retained = async (broker: typeof a) => {
      const reader = await mqtt.connectAsync(broker.url, { clientId: `reader-${broker.host}` })
      cleanup.push(() => reader.endAsync())
      const got = new Promise<string>((r) => reader.once('message', (_t, p) => r(p.toString())))
      await reader.subscribeAsync('status/gw-presence-move', { qos: 1 })
      return got
    }
    expect(await retained(a)).toBe('offline')
    expect(await retained(b)).toBe('online')
  })

  it('a DNS watch that cannot resolve says so with an error event', async () => {
    const broker = await startBroker({ host: '127.0.0.1' })
    const dns = await startDnsServer()
    cleanup.push(
      () => broker.stop(),
      () => dns.stop(),
    )
    dns.set('iot.uplink.test', ['127.0.0.1'], 1)
    const uplink = client({
      endpoints: [`mqtt://iot.uplink.test:${broker.port}`],
      dns: {
        servers: [dns.server],
        timeoutMs: 200,
        systemFallback: false,
        watch: { minIntervalMs: 100 },
      },
    })
    await uplink.start()
    await nextEvent(uplink, 'connect')
    const failed = nextEvent(uplink, 'error', (e) => e.code.startsWith('DNS_'))
    dns.setFault('servfail')
    const error = await failed
    expect(error.code).toBe('DNS_SERVFAIL')
    expect(uplink.stats()).toMatchObject({ state: 'connected', address: '127.0.0.1' })
  })
})

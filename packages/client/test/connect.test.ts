import net from 'node:net'
import { startBroker, startDnsServer, type TestBroker, waitFor } from '@uplink/testkit'
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink, type Uplink } from '../src/index.js'
import { nextEvent, recordEvents } from './support/events.js'
import { closedPort } from './support/net.js'

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

/** aedes asks this hook before it accepts a CONNECT: every one is refused with `returnCode`. */
function refuseEveryLogin(broker: TestBroker, returnCode: number): void {
  ;(broker.aedes as unknown as { authenticate: unknown }).authenticate = (
    _client: unknown,
    _user: unknown,
    _pass: unknown,
    done: (err: Error, ok: boolean) => void,
  ) => done(Object.assign(new Error('refused'), { returnCode }), false)
}

describe('connecting and exchanging messages', () => {
  it('publishes in order through the outbox, subscribes, and reports stats', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const uplink = createUplink({ clientId: 'gw-basic', endpoints: [broker.url] })
    cleanup.push(() => uplink.stop())

    // Accepted while offline: stored, then drained in order once connected.
    for (let i = 0; i < 20; i++) await uplink.publish('telemetry/gw-basic', `m${i}`)
    expect(uplink.stats().outbox.messages).toBe(20)
    const received: string[] = []
    await uplink.subscribe('cmd/gw-basic/#', (topic, payload) =>
      received.push(`${topic}=${payload}`),
    )

    await uplink.start()
    await nextEvent(uplink, 'connect')
    await waitFor(() => broker.publishes.length === 20, '20 publishes at the broker')
    expect(broker.publishes.map((p) => p.payload.toString())).toEqual(
      Array.from({ length: 20 }, (_, i) => `m${i}`),
    )
    expect(broker.publishes.every((p) => p.clientId === 'gw-basic' && p.qos === 1)).toBe(true)
    await waitFor(() => uplink.stats().outbox.messages === 0, 'acknowledged messages removed')

    await waitFor(
      () => broker.subscriptions('gw-basic').includes('cmd/gw-basic/#'),
      'subscription at the broker',
    )
    await broker.publish('cmd/gw-basic/reboot', 'now', { qos: 1 })
    await waitFor(() => received.length === 1, 'command delivered')
    expect(received).toEqual(['cmd/gw-basic/reboot=now'])

    const stats = uplink.stats()
    expect(stats).toMatchObject({
      state: 'connected',
      endpoint: broker.url,
      address: '127.0.0.1',
      failovers: 0,
    })
    expect(stats.connectedSince).toBeTypeOf('number')
    expect(stats.attempts).toBe(1)
  })

  it('rejects bad input with typed errors and keeps what it had', async () => {
    const uplink = createUplink({ clientId: 'gw-bad', endpoints: ['mqtt://127.0.0.1:1'] })
    cleanup.push(() => uplink.stop())
    await uplink.publish('ok', 'x')
    await expect(uplink.publish('a/#', 'x')).rejects.toMatchObject({ code: 'INVALID_TOPIC' })
    await expect(uplink.publish('ok', 42 as never)).rejects.toMatchObject({
      code: 'INVALID_PAYLOAD',
    })
    await expect(uplink.publish('ok', 'x', { qos: 3 as never })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    await expect(uplink.subscribe('a/#/b')).rejects.toMatchObject({ code: 'INVALID_TOPIC' })
    expect(uplink.stats().outbox.messages).toBe(1)
  })

  it("a broker's CONNACK refusal is CONNECT_REFUSED with its reason code, and carries no stack frames", async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    refuseEveryLogin(broker, 5)
    const uplink = createUplink({
      clientId: 'gw-refused',
      endpoints: [broker.url],
      backoff: { initialMs: 20, maxMs: 40 },
    })
    cleanup.push(() => uplink.stop())
    await uplink.start()
    const { error } = await nextEvent(uplink, 'reconnecting')
    expect(error).toMatchObject({ code: 'CONNECT_REFUSED', details: { reasonCode: 5 } })
    expect(String(error.stack).split('\n')).toEqual([`UplinkError: ${error.message}`])
  })

  it('an attempt whose every address failed, or that got no CONNACK in time, carries no stack frames either', async () => {
    const dns = await startDnsServer()
    const held = new Set<net.Socket>()
    const silent = net.createServer((socket) => {
      held.add(socket)
      socket.on('error', () => {})
    })
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    cleanup.push(
      () => dns.stop(),
      () => {
        for (const socket of held) socket.destroy()
        return new Promise((resolve) => silent.close(resolve))
      },
    )
    const noStack = (error: Error) =>
      expect(String(error.stack).split('\n')).toEqual([`UplinkError: ${error.message}`])
    // Two addresses, both refused: the summary of several failures.
    dns.set('two.uplink.test', ['127.0.0.1', '127.0.0.2'], 5)
    const two = createUplink({
      clientId: 'gw-two',
      endpoints: [`mqtt://two.uplink.test:${await closedPort()}`],
      dns: { servers: [dns.server], timeoutMs: 500, family: 4 },
    })
    cleanup.push(() => two.stop())
    const failed = nextEvent(two, 'reconnecting')
    await two.start()
    const { error } = await failed
    expect(error).toMatchObject({ code: 'CONNECT_FAILED' })
    expect(error.message).toContain('(and 1 more)')
    noStack(error)
    // Accepted, and never a CONNACK.
    const { port } = silent.address() as net.AddressInfo
    const mute = createUplink({
      clientId: 'gw-mute',
      endpoints: [`mqtt://127.0.0.1:${port}`],
      connectTimeoutMs: 200,
    })
    cleanup.push(() => mute.stop())
    const timedOut = nextEvent(mute, 'reconnecting')
    await mute.start()
    const late = (await timedOut).error
    expect(late).toMatchObject({ code: 'CONNECT_TIMEOUT' })
    noStack(late)
  })

  it('keeps credentials out of errors, events and stats when the broker refuses them', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const secret = 's3cr3t-Pa55word'
    refuseEveryLogin(broker, 4)
    const uplink = createUplink({
      clientId: 'gw-secret',
      endpoints: [broker.url],
      username: 'device',
      password: secret,
      backoff: { initialMs: 20, maxMs: 40 },
    })
    cleanup.push(() => uplink.stop())
    const log = recordEvents(uplink, ['reconnecting', 'error', 'state', 'disconnect'])
    await uplink.start()
    const refused = await nextEvent(uplink, 'reconnecting')
    expect(refused.error.code).toBe('CONNECT_REFUSED')
    const seen = JSON.stringify(
      log.map(([name, arg]) => [
        name,
        arg,
        arg instanceof Error ? { message: arg.message, stack: arg.stack } : undefined,
        (arg as { error?: Error }).error?.message,
        (arg as { error?: Error }).error?.stack,
      ]),
    )
    expect(seen).not.toContain(secret)
    expect(JSON.stringify(uplink.stats())).not.toContain(secret)
    expect(String(uplink.stats().lastError?.message)).not.toContain(secret)
  })

  it('refuses endpoint URLs that carry credentials, without echoing them', () => {
    let error: Error | undefined
    try {
      createUplink({ clientId: 'gw', endpoints: ['mqtt://user:hunter2@127.0.0.1:1883'] })
    } catch (err) {
      error = err as Error
    }
    expect(error).toMatchObject({ code: 'INVALID_OPTIONS' })
    expect(error?.message).not.toContain('hunter2')
  })

  it('speaks MQTT 5 as well (Mosquitto)', async () => {
    const { startMosquitto } = await import('@uplink/testkit')
    const broker = await startMosquitto()
    cleanup.push(() => broker.stop())
    const uplink = createUplink({ clientId: 'gw-v5', endpoints: [broker.url], protocolVersion: 5 })
    cleanup.push(() => uplink.stop())
    const got: string[] = []
    await uplink.subscribe('cmd/gw-v5', (_t, p) => got.push(p.toString()))
    await uplink.start()
    await nextEvent(uplink, 'connect')
    const other = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'cloud' })
    cleanup.push(() => other.endAsync())
    await other.subscribeAsync('telemetry/gw-v5', { qos: 1 })
    const seen: string[] = []
    other.on('message', (_t, p) => seen.push(p.toString()))
    await uplink.publish('telemetry/gw-v5', 'v5-hello', { ttlSeconds: 60 })
    await waitFor(() => seen.length === 1, 'v5 publish relayed')
    await waitFor(
      () => uplink.stats().subscriptions === 1 && uplink.stats().outbox.messages === 0,
      'drained',
    )
    await other.publishAsync('cmd/gw-v5', 'v5-cmd', { qos: 1 })
    await waitFor(() => got.length === 1, 'v5 command delivered')
    expect(seen).toEqual(['v5-hello'])
    expect(got).toEqual(['v5-cmd'])
  })

  it('resolves the name through the configured DNS server', async () => {
    const broker = await startBroker()
    const dns = await startDnsServer()
    cleanup.push(
      () => broker.stop(),
      () => dns.stop(),
    )
    dns.set('broker.uplink.test', ['127.0.0.1'], 5)
    const uplink: Uplink = createUplink({
      clientId: 'gw-dns',
      endpoints: [`mqtt://broker.uplink.test:${broker.port}`],
      dns: { servers: [dns.server], timeoutMs: 500 },
    })
    cleanup.push(() => uplink.stop())
    await uplink.start()
    const connected = await nextEvent(uplink, 'connect')
    expect(connected).toMatchObject({
      endpoint: `mqtt://broker.uplink.test:${broker.port}`,
      address: '127.0.0.1',
    })
    expect(dns.queries.some((q) => q.name === 'broker.uplink.test')).toBe(true)
  })
})

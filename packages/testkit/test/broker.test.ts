import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { startBroker, type TestBroker } from '../src/broker.js'
import { waitFor } from '../src/loopback.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

function connect(url: string, clientId: string, extra: mqtt.IClientOptions = {}) {
  const client = mqtt.connect(url, { clientId, reconnectPeriod: 0, ...extra })
  cleanup.push(() => void client.end(true))
  return new Promise<mqtt.MqttClient>((resolve, reject) => {
    client.once('connect', () => resolve(client))
    client.once('error', reject)
  })
}

async function started(options?: Parameters<typeof startBroker>[0]): Promise<TestBroker> {
  const broker = await startBroker(options)
  cleanup.push(() => broker.stop())
  return broker
}

describe('startBroker', () => {
  it('records connects, publishes and subscriptions from a real MQTT.js client', async () => {
    const broker = await started()
    expect(broker.url).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/)
    const client = await connect(broker.url, 'dev-1')
    expect(broker.connectCount).toBe(1)
    expect(broker.connects[0]?.clientId).toBe('dev-1')
    expect(broker.clientCount).toBe(1)
    await client.subscribeAsync('cmd/#', { qos: 1 })
    expect(broker.subscriptions('dev-1')).toEqual(['cmd/#'])
    await client.publishAsync('t/1', 'hello', { qos: 1 })
    expect(broker.publishes).toMatchObject([{ topic: 't/1', clientId: 'dev-1', qos: 1 }])
    expect(broker.publishes[0]?.payload.toString()).toBe('hello')

    const got = new Promise<string>((r) => client.once('message', (_t, p) => r(p.toString())))
    await broker.publish('cmd/reboot', 'now', { qos: 1 })
    expect(await got).toBe('now')
    // Broker-originated publishes are not counted as received from a client.
    expect(broker.publishes).toHaveLength(1)
  })

  it('records a PUBLISH once it is acknowledged, even if the broker never finishes routing it', async () => {
    const broker = await started()
    // aedes writes a QoS 1 PUBACK before it routes the message: a broker whose routing stalls
    // (or one killed in that moment) has told the client "received" for a message it never
    // routed, and the record must still hold it.
    const mq = (
      broker.aedes as unknown as { mq: { emit(p: { topic: string }, cb: () => void): void } }
    ).mq
    const emit = mq.emit.bind(mq)
    mq.emit = (packet, cb) => {
      if (!packet.topic.startsWith('stall/')) emit(packet, cb)
    }
    const client = await connect(broker.url, 'dev-stall')
    await client.publishAsync('stall/1', 'acked', { qos: 1 })
    expect(broker.publishes).toMatchObject([{ topic: 'stall/1', clientId: 'dev-stall', qos: 1 }])
    expect(broker.publishes[0]?.payload.toString()).toBe('acked')
  })

  it('tells a clean DISCONNECT from a dropped link', async () => {
    const broker = await started()
    const a = await connect(broker.url, 'clean')
    await a.endAsync()
    await waitFor(() => broker.disconnects.length === 1, 'the clean disconnect')
    const b = await connect(broker.url, 'dropped')
    ;(b.stream as import('node:net').Socket).destroy()
    await waitFor(() => broker.disconnects.length === 2, 'the dropped link')
    expect(broker.disconnects.map((d) => [d.clientId, d.clean])).toEqual([
      ['clean', true],
      ['dropped', false],
    ])
  })

  it('kill() drops every connection at once and frees the port; stop() is graceful', async () => {
    const broker = await startBroker()
    const client = await connect(broker.url, 'k')
    const closed = new Promise<void>((r) => client.once('close', () => r()))
    await broker.kill()
    await closed
    // The port is free again: a new broker can take it.
    const again = await started({ port: broker.port })
    expect(again.port).toBe(broker.port)
  })

  it('binds a chosen loopback address, so two brokers can share a port as two regions', async () => {
    const east = await started({ host: '127.0.0.1' })
    const west = await started({ host: '127.0.0.2', port: east.port })
    expect(west.url).toBe(`mqtt://127.0.0.2:${east.port}`)
    await connect(west.url, 'w')
    expect([east.connectCount, west.connectCount]).toEqual([0, 1])
  })

  it('dropClient closes one client from the broker side', async () => {
    const broker = await started()
    const client = await connect(broker.url, 'victim')
    const closed = new Promise<void>((r) => client.once('close', () => r()))
    broker.dropClient('victim')
    await closed
    await waitFor(() => broker.clientCount === 0, 'the client gone')
  })

  it('refuses to bind anything but loopback', async () => {
    await expect(startBroker({ host: '0.0.0.0' })).rejects.toThrow(/loopback/)
  })
})

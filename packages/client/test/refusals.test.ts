import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBroker, startMosquitto, startRedirector, waitFor } from '@uplink/testkit'
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink, type UplinkEvents } from '../src/index.js'
import { nextEvent } from './support/events.js'

const cleanup: Array<() => Promise<unknown> | unknown> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

type Drop = Parameters<UplinkEvents['drop']>[0]

/** Mosquitto that lets anonymous clients publish and read under allowed/ only. */
async function mosquittoWithAcl() {
  const dir = mkdtempSync(join(tmpdir(), 'uplink-acl-'))
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
  const acl = join(dir, 'acl')
  writeFileSync(acl, 'topic readwrite allowed/#\n')
  // Mosquitto started as root drops to its own user, which must be able to read the file.
  chmodSync(dir, 0o755)
  chmodSync(acl, 0o644)
  const broker = await startMosquitto({ extraConfig: [`acl_file ${acl}`] })
  cleanup.push(() => broker.stop())
  return broker
}

describe('broker refusals do not stall delivery', () => {
  it('drops 40 QoS 1 and 3 QoS 2 publishes Mosquitto refuses (0x87 not authorized) and delivers the 5 behind them', async () => {
    const broker = await mosquittoWithAcl()
    const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'watch' })
    cleanup.push(() => watcher.endAsync())
    const seen: string[] = []
    watcher.on('message', (_t, p) => seen.push(p.toString()))
    await watcher.subscribeAsync('allowed/#', { qos: 1 })

    const uplink = createUplink({
      clientId: 'gw-acl',
      endpoints: [broker.url],
      protocolVersion: 5,
      inflightWindow: 32,
    })
    cleanup.push(() => uplink.stop())
    const drops: Drop[] = []
    uplink.on('drop', (e) => drops.push(e))
    for (let i = 0; i < 40; i++) await uplink.publish('denied/gw-acl', `no${i}`, { qos: 1 })
    for (let i = 0; i < 3; i++) await uplink.publish('denied/gw-acl', `no2-${i}`, { qos: 2 })
    for (let i = 0; i < 5; i++) await uplink.publish('allowed/gw-acl', `yes${i}`, { qos: 1 })
    await uplink.start()

    await waitFor(() => seen.length === 5, 'the 5 allowed messages delivered')
    expect(seen).toEqual(['yes0', 'yes1', 'yes2', 'yes3', 'yes4'])
    await waitFor(() => drops.length === 43, '43 refusals reported')
    expect(drops.every((d) => d.reason === 'refused' && d.topic === 'denied/gw-acl')).toBe(true)
    expect(drops.every((d) => d.reasonCode === 0x87 && d.reasonName === 'not authorized')).toBe(
      true,
    )
    expect(drops[0]?.error?.code).toBe('PUBLISH_REFUSED')
    await waitFor(() => uplink.stats().outbox.messages === 0, 'outbox empty')
    expect(uplink.stats().outbox.dropped.refused).toBe(43)
    expect(uplink.stats()).toMatchObject({ state: 'connected', inFlight: 0 })
  })
})

describe('QoS 2 refusals', () => {
  it('drops QoS 2 messages whose PUBCOMP carries a failure (0x92 packet identifier not found) and sends the rest', async () => {
    // No broker here can be made to fail a PUBCOMP: the testkit's MQTT 5 responder does.
    const server = await startRedirector({
      mode: 'disconnect',
      serverReference: 'unused',
      pubcompReasonCode: 0x92,
    })
    cleanup.push(() => server.stop())
    const uplink = createUplink({
      clientId: 'gw-pubcomp',
      endpoints: [server.url],
      protocolVersion: 5,
    })
    cleanup.push(() => uplink.stop({ timeoutMs: 100 }))
    const drops: Drop[] = []
    uplink.on('drop', (e) => drops.push(e))
    await uplink.publish('t/q2', 'a', { qos: 2 })
    await uplink.publish('t/q2', 'b', { qos: 2 })
    await uplink.publish('t/q1', 'c', { qos: 1 })
    await uplink.start()
    await waitFor(() => drops.length === 2 && uplink.stats().outbox.messages === 0, 'all settled')
    expect(drops.map((d) => [d.topic, d.reason, d.reasonCode, d.reasonName])).toEqual([
      ['t/q2', 'refused', 0x92, 'packet identifier not found'],
      ['t/q2', 'refused', 0x92, 'packet identifier not found'],
    ])
    expect(server.publishes.map((p) => p.payload.toString())).toEqual(['a', 'b', 'c'])
    expect(uplink.stats().inFlight).toBe(0)
  })
})

describe('poison messages do not block the queue', () => {
  it('refuses at publish() what no broker would take: NUL, control characters, lone surrogates, $SYS, a TTL MQTT 5 cannot carry', async () => {
    const uplink = createUplink({ clientId: 'gw-poison', endpoints: ['mqtt://127.0.0.1:1'] })
    cleanup.push(() => uplink.stop())
    for (const topic of [
      'a/\u0000',
      'a/\u0001',
      'a/\u007f',
      'a/\u0085',
      'a/\ud800',
      'a/\udc00b',
      '$SYS/x',
    ]) {
      await expect(uplink.publish(topic, 'x')).rejects.toMatchObject({ code: 'INVALID_TOPIC' })
    }
    // A surrogate pair is one character (U+1F600) and fine; `$aws/...` topics are published to.
    await uplink.publish('a/\ud83d\ude00', 'x')
    await uplink.publish('$aws/things/gw/shadow/update', 'x')
    for (const ttlSeconds of [Number.POSITIVE_INFINITY, 2 ** 32, Number.NaN]) {
      await expect(uplink.publish('a/b', 'x', { ttlSeconds })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      })
    }
    await uplink.publish('a/b', 'x', { ttlSeconds: 2 ** 32 - 1 })
    expect(uplink.stats().outbox.messages).toBe(3)
  })

  it('sets aside a message whose link aedes closes each time it is sent, and delivers the rest', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const uplink = createUplink({
      clientId: 'gw-poison',
      endpoints: [broker.url],
      backoff: { initialMs: 10, maxMs: 50, stableMs: 60_000 },
      poisonAfter: 3,
    })
    cleanup.push(() => uplink.stop())
    // aedes closes the link on a topic of more than 100 levels: valid MQTT, never taken there.
    const poison = Array.from({ length: 120 }, (_, i) => `l${i}`).join('/')
    await uplink.publish(poison, 'never')
    for (let i = 0; i < 10; i++) await uplink.publish('telemetry/gw-poison', `m${i}`)
    const dropped = nextEvent(uplink, 'drop')
    await uplink.start()
    const drop = await dropped
    expect(drop).toMatchObject({ topic: poison, reason: 'undeliverable' })
    await waitFor(() => broker.publishes.length === 10, 'the 10 behind it delivered')
    expect(broker.publishes.map((p) => p.payload.toString())).toEqual(
      Array.from({ length: 10 }, (_, i) => `m${i}`),
    )
    // Exactly the three links it was given, then it was set aside.
    expect(broker.connects.filter((c) => c.clientId === 'gw-poison')).toHaveLength(4)
    await waitFor(() => uplink.stats().outbox.messages === 0, 'outbox empty')
    expect(uplink.stats().outbox.dropped.undeliverable).toBe(1)
  })

  it('does not blame the oldest message when the link dies and comes back (a broker restart)', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const uplink = createUplink({
      clientId: 'gw-flaky',
      endpoints: [broker.url],
      backoff: { initialMs: 10, maxMs: 50, stableMs: 60_000 },
      poisonAfter: 3,
    })
    cleanup.push(() => uplink.stop())
    const drops: Drop[] = []
    uplink.on('drop', (e) => drops.push(e))
    await uplink.start()
    await nextEvent(uplink, 'connect')
    // Five links dropped by the broker with nothing in flight: no message is to blame.
    for (let i = 0; i < 5; i++) {
      const back = nextEvent(uplink, 'connect')
      broker.dropClient('gw-flaky')
      await back
    }
    for (let i = 0; i < 5; i++) await uplink.publish('telemetry/gw-flaky', `m${i}`)
    await waitFor(() => broker.publishes.length === 5, 'all delivered')
    expect(drops).toEqual([])
  })
})

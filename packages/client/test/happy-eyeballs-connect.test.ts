import { readFileSync } from 'node:fs'
import net from 'node:net'
import {
  createTestPki,
  startBroker,
  startDnsServer,
  startStalledListener,
  waitFor,
} from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../src/clock.js'
import { parseEndpoint } from '../src/endpoints.js'
import { UplinkError } from '../src/errors.js'
import { createUplink } from '../src/index.js'
import { openConnection } from '../src/transport.js'
import { nextEvent } from './support/events.js'

/**
 * Happy Eyeballs against real sockets: an address whose TCP handshake never completes (a
 * listener whose accept queue is full, so the kernel drops the SYN) beside a live broker.
 * Tried one after the other, as before, the dead address cost connectTimeoutMs (10 s) first.
 */

const cleanup: Array<() => Promise<unknown> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

/**
 * Sockets of this machine still in SYN_SENT towards `port` (from /proc/net/tcp and tcp6): a
 * racing attempt to a dead address stays there until it is closed. Read from the kernel, so it
 * holds on Node and on Bun alike. The stalled listener's own held connection is one of them.
 */
function connecting(port: number): number {
  let n = 0
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const [, , remote, state] = line.trim().split(/\s+/)
      if (state === '02' && remote && Number.parseInt(remote.split(':')[1] ?? '', 16) === port) n++
    }
  }
  return n
}

/** An mqtts device whose DNS answers 127.0.0.2 first, then 127.0.0.1, for broker.uplink.test. */
async function tlsDevice(clientId: string, port: number, ca: string) {
  const dns = await startDnsServer()
  cleanup.push(() => dns.stop())
  dns.set('broker.uplink.test', ['127.0.0.2', '127.0.0.1'])
  const uplink = createUplink({
    clientId,
    endpoints: [`mqtts://broker.uplink.test:${port}`],
    tls: { ca },
    dns: { servers: [dns.server], family: 4 },
  })
  cleanup.push(() => uplink.stop())
  return uplink
}

async function setup(dead: string[], live: boolean) {
  const broker = live ? await startBroker({ host: '127.0.0.1' }) : undefined
  if (broker) cleanup.push(() => broker.stop())
  let port = broker?.port ?? 0
  for (const host of dead) {
    const stalled = await startStalledListener({ host, port })
    port = stalled.port
    cleanup.push(() => stalled.stop())
  }
  const dns = await startDnsServer()
  cleanup.push(() => dns.stop())
  return { broker, port, dns }
}

describe('Happy Eyeballs', () => {
  it('a dead IPv6 address beside a live IPv4 one: connected within a second, default options', async () => {
    const { broker, port, dns } = await setup(['::1'], true)
    dns.set('broker.uplink.test', ['::1', '127.0.0.1'])
    const base = connecting(port)
    const uplink = createUplink({
      clientId: 'gw-he-v6',
      endpoints: [`mqtt://broker.uplink.test:${port}`],
      dns: { servers: [dns.server] },
    })
    cleanup.push(() => uplink.stop())
    const t0 = performance.now()
    await uplink.start()
    const connected = await nextEvent(uplink, 'connect')
    const took = performance.now() - t0
    expect(connected.address).toBe('127.0.0.1')
    // About one connection attempt delay (250 ms); the old sequential attempts took 10 s.
    expect(took).toBeLessThan(1_000)
    expect(uplink.stats()).toMatchObject({ address: '127.0.0.1', attempts: 1 })
    // The attempt to ::1 is gone: no socket of ours is left knocking at the dead address.
    await waitFor(() => connecting(port) === base, 'the losing socket closed')
    expect(broker?.connects.length).toBe(1)
  })

  it('a dead node in a multi-A answer, listed first: connected to the live one within a second', async () => {
    const { port, dns } = await setup(['127.0.0.2'], true)
    dns.set('broker.uplink.test', ['127.0.0.2', '127.0.0.1'])
    const uplink = createUplink({
      clientId: 'gw-he-v4',
      endpoints: [`mqtt://broker.uplink.test:${port}`],
      dns: { servers: [dns.server], family: 4 },
    })
    cleanup.push(() => uplink.stop())
    const t0 = performance.now()
    await uplink.start()
    expect((await nextEvent(uplink, 'connect')).address).toBe('127.0.0.1')
    expect(performance.now() - t0).toBeLessThan(1_000)
  })

  it('every address dead: the attempt fails within connectTimeoutMs as CONNECT_TIMEOUT naming them, and leaves no socket', async () => {
    const { port, dns } = await setup(['127.0.0.2', '127.0.0.3'], false)
    dns.set('broker.uplink.test', ['127.0.0.2', '127.0.0.3'])
    const base = connecting(port)
    const uplink = createUplink({
      clientId: 'gw-he-dead',
      endpoints: [`mqtt://broker.uplink.test:${port}`],
      dns: { servers: [dns.server], family: 4 },
      connectTimeoutMs: 1_000,
    })
    cleanup.push(() => uplink.stop())
    const t0 = performance.now()
    await uplink.start()
    const { error } = await nextEvent(uplink, 'reconnecting')
    const took = performance.now() - t0
    expect(error).toMatchObject({
      code: 'CONNECT_TIMEOUT',
      details: { addresses: ['127.0.0.2', '127.0.0.3'] },
    })
    expect(error.message).toMatch(/127\.0\.0\.2, 127\.0\.0\.3 within 1000 ms/)
    // One bound for the whole race, not one per address; the lower end is the timer itself.
    expect(took).toBeGreaterThanOrEqual(990)
    expect(took).toBeLessThan(1_900)
    expect(uplink.stats().attempts).toBe(1)
    await waitFor(() => connecting(port) === base, 'both racing sockets closed')
  })

  it('mqtts: a listener that takes TCP but never speaks TLS loses to one that completes TLS', async () => {
    const pki = createTestPki()
    const broker = await startBroker({ tls: pki.issue(['broker.uplink.test']) })
    cleanup.push(() => broker.stop())
    // Accepts the TCP connection and says nothing: the TLS handshake never completes.
    const silent = new Set<net.Socket>()
    const mute = net.createServer((socket) => {
      silent.add(socket)
      // Reads (and drops) the ClientHello, so that the client's close is seen here.
      socket.resume()
      socket.on('close', () => silent.delete(socket))
    })
    await new Promise<void>((r) => mute.listen(broker.port, '127.0.0.2', () => r()))
    cleanup.push(() => new Promise<void>((r) => mute.close(() => r())))
    const uplink = await tlsDevice('gw-he-tls', broker.port, pki.ca)
    const t0 = performance.now()
    await uplink.start()
    expect((await nextEvent(uplink, 'connect')).address).toBe('127.0.0.1')
    expect(performance.now() - t0).toBeLessThan(1_000)
    // The loser reached TCP; it is closed, not left open on the silent listener.
    await waitFor(() => silent.size === 0, 'the TCP-only loser closed')
  })

  it('mqtts: each racer verifies the certificate against the endpoint name, not the address', async () => {
    const pki = createTestPki()
    // 127.0.0.2 answers fastest with a valid certificate for another name: it must not win.
    const impostor = await startBroker({ host: '127.0.0.2', tls: pki.issue(['other.uplink.test']) })
    cleanup.push(() => impostor.stop())
    const broker = await startBroker({
      port: impostor.port,
      tls: pki.issue(['broker.uplink.test']),
    })
    cleanup.push(() => broker.stop())
    const uplink = await tlsDevice('gw-he-name', broker.port, pki.ca)
    await uplink.start()
    expect((await nextEvent(uplink, 'connect')).address).toBe('127.0.0.1')
    expect(impostor.connects).toHaveLength(0)
  })
})

describe('the attempt timer', () => {
  it('ends with the CONNACK: a connection outlives connectTimeoutMs', async () => {
    const broker = await startBroker({ host: '127.0.0.1' })
    cleanup.push(() => broker.stop())
    const clock = new ManualClock(Date.now())
    const connection = await openConnection({
      endpoint: parseEndpoint(`mqtt://127.0.0.1:${broker.port}`, 'endpoints[0]'),
      addresses: ['127.0.0.1'],
      attemptDelayMs: 250,
      clientId: 'gw-attempt-timer',
      protocolVersion: 4,
      keepalive: 60,
      clean: true,
      sessionExpirySeconds: 0,
      connectTimeoutMs: 1_000,
      clock,
    })
    cleanup.push(() => connection.destroy(new UplinkError('CONNECTION_LOST', 'test over')))
    // Past the attempt's bound (and short of keepalive): the attempt is over, the link stays.
    await clock.advance(5_000)
    // A PUBACK proves the link is still there (a client ended by the timer refuses to publish).
    await connection.publish('telemetry/attempt-timer', Buffer.from('x'), { qos: 1, retain: false })
    expect(connection.isOpen).toBe(true)
    expect(broker.disconnects).toEqual([])
  })
})

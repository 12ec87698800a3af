import dgram from 'node:dgram'
import { bindUdp } from '@uplink/testkit'
import dnsPacket, { type Packet } from 'dns-packet'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../src/clock.js'
import { type ResolverOptions, resolverOn } from '../src/dns.js'
import { UdpSockets } from '../src/dns-udp.js'
import { DEFAULTS } from '../src/options.js'
import { dnsReply as reply } from './support/dns-reply.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

interface Asked {
  query: Packet
  port: number
}

type Sender = (reply: Packet, from?: dgram.Socket) => void

/**
 * A DNS server on `host` that records the source port of every question and lets the test say
 * what goes back, from its own socket or from `others` (a forger on another port or address).
 */
async function scripted(
  host: string,
  onQuery: (asked: Asked, send: Sender) => void,
): Promise<{ server: string; port: number; asked: Asked[] }> {
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4')
  const port = await bindUdp(socket, host)
  const asked: Asked[] = []
  socket.on('message', (msg, rinfo) => {
    const entry = { query: dnsPacket.decode(msg), port: rinfo.port }
    asked.push(entry)
    onQuery(entry, (reply, from = socket) =>
      from.send(dnsPacket.encode(reply), rinfo.port, rinfo.address),
    )
  })
  cleanup.push(() => new Promise<void>((r) => socket.close(() => r())))
  const server = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
  return { server, port, asked }
}

async function udpSocket(host: string, port = 0): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4')
  await bindUdp(socket, host, port)
  cleanup.push(() => new Promise<void>((r) => socket.close(() => r())))
  return socket
}

/**
 * Takes the port a closed socket of the pool was bound to. The OS may hand a just-released
 * ephemeral port to the very next bind, and a "fresh port" check would then fail a pool that did
 * open a new socket; held here, the port cannot come back. A port that stays taken is a socket
 * the pool still holds open, and the test fails here.
 */
async function holdPort(port: number): Promise<void> {
  for (let tries = 0; ; tries++) {
    const socket = dgram.createSocket('udp4')
    try {
      await bindUdp(socket, '127.0.0.1', port)
      cleanup.push(() => new Promise<void>((r) => socket.close(() => r())))
      return
    } catch (err) {
      socket.close()
      // A runtime may release a closed socket's port a tick later: a bounded wait for it.
      if (tries >= 20) throw err
      await new Promise((r) => setImmediate(r))
    }
  }
}

function sockets(maxQueries: number, idleMs = 1_000) {
  const clock = new ManualClock()
  // Idle past the bound when the test is done: every socket it left open closes.
  cleanup.push(() => clock.advance(idleMs))
  return { clock, pool: new UdpSockets({ maxQueries, idleMs, clock }) }
}

/**
 * Ids 0, 1, 2 ... across the file's resolvers. Crypto-random ones repeat on a socket once in some
 * 10 000 runs, and a repeated id rightly moves the question to a fresh port, which the port
 * counts below would take for a broken budget.
 */
let drawn = 0
const distinctIds = () => (drawn++ % 0x10000) / 0x10000

function resolver(pool: UdpSockets, servers: string[], extra: Partial<ResolverOptions> = {}) {
  return resolverOn(pool, {
    servers,
    timeoutMs: 500,
    attempts: 1,
    family: 4,
    systemFallback: false,
    random: distinctIds,
    ...extra,
  })
}

const addresses = (r: { addresses: Array<{ address: string }> }) =>
  r.addresses.map((a) => a.address)

describe('the resolver shares its UDP socket, within bounds', () => {
  it('asks at most maxQueries questions from one source port, then from a fresh one', async () => {
    const dns = await scripted('127.0.0.1', (asked, send) => send(reply(asked.query)))
    const { pool } = sockets(3)
    const r = resolver(pool, [dns.server])
    for (let i = 0; i < 7; i++) {
      await r.resolve('iot.uplink.test')
      // A spent socket closes with its last answer: its port is held, so a new one must differ.
      if (i === 2 || i === 5) await holdPort(dns.asked[i]?.port as number)
    }
    const ports = dns.asked.map((a) => a.port)
    // Three questions a port: the first port's budget, the second's, then a third port.
    expect(new Set(ports.slice(0, 3)).size).toBe(1)
    expect(new Set(ports.slice(3, 6)).size).toBe(1)
    expect(new Set(ports).size).toBe(3)
    expect(ports[3]).not.toBe(ports[0])
    expect(ports[6]).not.toBe(ports[3])
  })

  it('shares the socket between resolvers of one process', async () => {
    const dns = await scripted('127.0.0.1', (asked, send) => send(reply(asked.query)))
    const { pool } = sockets(DEFAULTS.dnsSocket.maxQueries)
    await resolver(pool, [dns.server]).resolve('a.uplink.test')
    await resolver(pool, [dns.server]).resolve('b.uplink.test')
    expect(new Set(dns.asked.map((a) => a.port)).size).toBe(1)
  })

  it('closes a socket idle for idleMs: the next question asks from a fresh port', async () => {
    const dns = await scripted('127.0.0.1', (asked, send) => send(reply(asked.query)))
    const { pool, clock } = sockets(DEFAULTS.dnsSocket.maxQueries, 1_000)
    const r = resolver(pool, [dns.server])
    await r.resolve('iot.uplink.test')
    await clock.advance(999)
    await r.resolve('iot.uplink.test')
    expect(pool.size).toBe(1)
    // The idle timer armed when the first answer came has run out with nothing waiting.
    await clock.advance(1_000)
    expect(pool.size).toBe(0)
    await holdPort(dns.asked[1]?.port as number)
    await r.resolve('iot.uplink.test')
    const ports = dns.asked.map((a) => a.port)
    expect(ports[1]).toBe(ports[0])
    expect(ports[2]).not.toBe(ports[0])
  })

  it('gives concurrent questions on one socket each its own answer, by id', async () => {
    const pending: Asked[] = []
    const dns = await scripted('127.0.0.1', (asked, send) => {
      pending.push(asked)
      if (pending.length < 2) return
      // Answered in the reverse order of asking.
      for (const a of pending.reverse()) {
        const name = a.query.questions?.[0]?.name
        send(reply(a.query, {}, name === 'a.uplink.test' ? '127.0.0.10' : '127.0.0.11'))
      }
    })
    const { pool } = sockets(DEFAULTS.dnsSocket.maxQueries)
    const r = resolver(pool, [dns.server])
    const [a, b] = await Promise.all([r.resolve('a.uplink.test'), r.resolve('b.uplink.test')])
    expect(addresses(a)).toEqual(['127.0.0.10'])
    expect(addresses(b)).toEqual(['127.0.0.11'])
    expect(new Set(dns.asked.map((x) => x.port)).size).toBe(1)
  })

  it('never asks an id twice on one socket: the same id goes out from a fresh port', async () => {
    const dns = await scripted('127.0.0.1', (asked, send) => send(reply(asked.query)))
    const { pool } = sockets(DEFAULTS.dnsSocket.maxQueries)
    // Every id the same: a late answer to the first could otherwise pass for the second's.
    const r = resolver(pool, [dns.server], { random: () => 0.5 })
    await r.resolve('iot.uplink.test')
    await r.resolve('iot.uplink.test')
    expect(dns.asked.map((a) => a.query.id)).toEqual([0x8000, 0x8000])
    expect(dns.asked[1]?.port).not.toBe(dns.asked[0]?.port)
  })

  it('ignores a forged answer from another port or another address, and one with a wrong id', async () => {
    const forgerPort = await udpSocket('127.0.0.1')
    let forgerAddress: dgram.Socket | undefined
    const dns = await scripted('127.0.0.1', (asked, send) => {
      // Each forgery is a perfect answer but for where it comes from or its id; the real answer
      // follows them.
      send(reply(asked.query, {}, '127.0.0.66'), forgerPort)
      send(reply(asked.query, {}, '127.0.0.67'), forgerAddress)
      send(reply(asked.query, { id: ((asked.query.id ?? 0) + 1) & 0xffff }, '127.0.0.68'))
      setTimeout(() => send(reply(asked.query)), 20)
    })
    // The server's port on another loopback address: only the source address tells it apart.
    forgerAddress = await udpSocket('127.0.0.2', dns.port)
    const { pool } = sockets(DEFAULTS.dnsSocket.maxQueries)
    const r = resolver(pool, [dns.server])
    // Twice: the second question asks on the socket the forgeries were sent to.
    expect(addresses(await r.resolve('iot.uplink.test'))).toEqual(['127.0.0.8'])
    expect(addresses(await r.resolve('iot.uplink.test'))).toEqual(['127.0.0.8'])
    expect(new Set(dns.asked.map((a) => a.port)).size).toBe(1)
  })

  it('a late answer to a question that timed out is neither taken nor reported as garbage', async () => {
    let first: Asked | undefined
    let answerLate: (() => void) | undefined
    const dns = await scripted('127.0.0.1', (asked, send) => {
      if (!first) {
        first = asked
        answerLate = () => send(reply(asked.query, {}, '127.0.0.66'))
        return
      }
      // The second question's wait sees only the first's late answer.
      answerLate?.()
    })
    const { pool } = sockets(DEFAULTS.dnsSocket.maxQueries)
    const r = resolver(pool, [dns.server], { timeoutMs: 100 })
    await expect(r.resolve('iot.uplink.test')).rejects.toMatchObject({ code: 'DNS_TIMEOUT' })
    await expect(r.resolve('iot.uplink.test')).rejects.toMatchObject({ code: 'DNS_TIMEOUT' })
    expect(dns.asked[1]?.port).toBe(dns.asked[0]?.port)
  })

  it('knows an answer from an IPv6 server written out in full for the server', async () => {
    const dns = await scripted('::1', (asked, send) => send(reply(asked.query)))
    const { pool } = sockets(DEFAULTS.dnsSocket.maxQueries)
    const r = resolver(pool, [`[0:0:0:0:0:0:0:1]:${dns.port}`])
    expect(addresses(await r.resolve('iot.uplink.test'))).toEqual(['127.0.0.8'])
  })
})

import dgram from 'node:dgram'
import { lookup } from 'node:dns/promises'
import { hostname } from 'node:os'
import { bindUdp, startDnsServer, type TestDnsServer } from '@uplink/testkit'
import dnsPacket, { type Packet } from 'dns-packet'
import { afterEach, describe, expect, it } from 'vitest'
import { createResolver, parseDnsServer, type ResolverOptions } from '../src/dns.js'
import { UplinkError } from '../src/errors.js'
import { dnsReply as reply } from './support/dns-reply.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

async function server(host?: string): Promise<TestDnsServer> {
  const dns = await startDnsServer(host ? { host } : {})
  cleanup.push(() => dns.stop())
  return dns
}

/**
 * A server that answers each query with `replies` datagrams, in order: what the testkit server
 * cannot do, a stray or forged datagram arriving just before the real answer.
 */
async function scripted(replies: (query: Packet) => Packet[]): Promise<string> {
  const socket = dgram.createSocket('udp4')
  const port = await bindUdp(socket, '127.0.0.1')
  socket.on('message', (msg, rinfo) => {
    for (const reply of replies(dnsPacket.decode(msg))) {
      socket.send(dnsPacket.encode(reply), rinfo.port, rinfo.address)
    }
  })
  cleanup.push(() => new Promise<void>((r) => socket.close(() => r())))
  return `127.0.0.1:${port}`
}

function resolver(servers: string[], extra: Partial<ResolverOptions> = {}) {
  return createResolver({
    servers,
    timeoutMs: 200,
    attempts: 1,
    family: 0,
    systemFallback: false,
    ...extra,
  })
}

describe('createResolver', () => {
  it('asks afresh every time: A and AAAA, the TTL, no cache', async () => {
    const dns = await server()
    dns.set('iot.uplink.test', ['127.0.0.1', '::1'], 42)
    const r = resolver([dns.server])
    const first = await r.resolve('iot.uplink.test')
    expect(first).toMatchObject({
      source: 'dns',
      server: dns.server,
      ttl: 42,
      addresses: [
        { address: '127.0.0.1', family: 4, ttl: 42 },
        { address: '::1', family: 6, ttl: 42 },
      ],
    })
    dns.set('iot.uplink.test', ['127.0.0.2'], 5)
    const second = await r.resolve('iot.uplink.test')
    expect(second.addresses.map((a) => a.address)).toEqual(['127.0.0.2'])
    expect(second.ttl).toBe(5)
    expect(dns.queryCount).toBe(4)
  })

  it('asks only for the family it is told', async () => {
    const dns = await server()
    dns.set('iot.uplink.test', ['127.0.0.1', '::1'])
    expect(
      (await resolver([dns.server], { family: 6 }).resolve('iot.uplink.test')).addresses,
    ).toEqual([{ address: '::1', family: 6, ttl: 60 }])
    expect(dns.queries.map((q) => q.type)).toEqual(['AAAA'])
  })

  it('follows a CNAME chain and takes the smallest TTL along it', async () => {
    const dns = await server()
    dns.setCname('iot.uplink.test', 'region.uplink.test', 30)
    dns.setCname('region.uplink.test', 'east.uplink.test', 10)
    dns.set('east.uplink.test', ['127.0.0.7'], 300)
    const result = await resolver([dns.server], { family: 4 }).resolve('iot.uplink.test')
    expect(result.addresses.map((a) => a.address)).toEqual(['127.0.0.7'])
    expect(result.ttl).toBe(10)
  })

  it('retries over TCP when the UDP answer is truncated', async () => {
    const dns = await server()
    dns.set('iot.uplink.test', ['127.0.0.3'])
    dns.setFault('truncate')
    const result = await resolver([dns.server], { family: 4 }).resolve('iot.uplink.test')
    expect(result.addresses.map((a) => a.address)).toEqual(['127.0.0.3'])
    expect(dns.queries.map((q) => q.transport)).toEqual(['udp', 'tcp'])
  })

  it('ignores an answer with the wrong transaction id', async () => {
    const dns = await server()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    dns.setFault('wrong-id')
    const err = await resolver([dns.server], { family: 4 })
      .resolve('iot.uplink.test')
      .catch((e) => e)
    expect(err).toBeInstanceOf(UplinkError)
    // The only datagram that came was not an answer to our question.
    expect(err.code).toBe('DNS_MALFORMED')
  })

  it('keeps waiting past a stray datagram and takes the real answer after it', async () => {
    const address = scripted((query) => {
      const q = query.questions?.[0] as { name: string; type: 'A' }
      return [
        reply(query, { id: ((query.id ?? 0) + 1) & 0xffff }),
        reply(query, { questions: [{ ...q, name: 'other.uplink.test' }] }),
        reply(query, { type: 'query' }),
        reply(query),
      ]
    })
    const result = await resolver([await address], { family: 4 }).resolve('iot.uplink.test')
    expect(result.addresses.map((a) => a.address)).toEqual(['127.0.0.8'])
  })

  it('takes only addresses at the end of the CNAME chain from the queried name', async () => {
    const address = scripted((query) => {
      const q = query.questions?.[0] as { name: string; type: 'A' }
      return [
        reply(query, {
          answers: [
            // An address for a name nobody asked about must not be believed.
            { type: 'A', name: 'evil.uplink.test', ttl: 60, class: 'IN', data: '127.0.0.66' },
            { type: 'CNAME', name: q.name, ttl: 20, class: 'IN', data: 'East.Uplink.Test.' },
            { type: 'A', name: 'east.uplink.test', ttl: 40, class: 'IN', data: '127.0.0.9' },
          ],
        }),
      ]
    })
    const result = await resolver([await address], { family: 4 }).resolve('iot.uplink.test')
    expect(result.addresses.map((a) => a.address)).toEqual(['127.0.0.9'])
    expect(result.ttl).toBe(20)
  })

  it('gives up on a CNAME loop instead of spinning', async () => {
    const dns = await server()
    dns.setCname('a.uplink.test', 'b.uplink.test')
    dns.setCname('b.uplink.test', 'a.uplink.test')
    await expect(
      resolver([dns.server], { family: 4 }).resolve('a.uplink.test'),
    ).rejects.toMatchObject({ code: 'DNS_NO_ADDRESS' })
  })

  it('asks a DNS server on ::1', async () => {
    const dns = await server('::1')
    dns.set('iot.uplink.test', ['::1'])
    const result = await resolver([dns.server], { family: 6 }).resolve('iot.uplink.test')
    expect(result).toMatchObject({ server: dns.server, addresses: [{ address: '::1', family: 6 }] })
  })

  it('moves on to the next server after garbage', async () => {
    const bad = await server()
    const good = await server()
    bad.setFault('garbage')
    good.set('iot.uplink.test', ['127.0.0.1'])
    const result = await resolver([bad.server, good.server], { family: 4 }).resolve(
      'iot.uplink.test',
    )
    expect(result.server).toBe(good.server)
  })

  it('ignores garbage and reports DNS_MALFORMED when nothing else came', async () => {
    const dns = await server()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    dns.setFault('garbage')
    await expect(
      resolver([dns.server], { family: 4 }).resolve('iot.uplink.test'),
    ).rejects.toMatchObject({
      code: 'DNS_MALFORMED',
    })
  })

  it('moves on to the next server on SERVFAIL, timeout or refusal', async () => {
    const bad = await server()
    const silent = await server()
    const good = await server()
    bad.setFault('servfail')
    silent.setFault('drop')
    good.set('iot.uplink.test', ['127.0.0.9'])
    const result = await resolver([bad.server, silent.server, good.server], {
      family: 4,
    }).resolve('iot.uplink.test')
    expect(result).toMatchObject({ server: good.server, addresses: [{ address: '127.0.0.9' }] })
    expect([bad.queryCount, silent.queryCount, good.queryCount]).toEqual([1, 1, 1])
  })

  it('retries the servers for `attempts` rounds', async () => {
    const dns = await server()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    dns.setFault('drop', { times: 1 })
    const result = await resolver([dns.server], { family: 4, attempts: 2 }).resolve(
      'iot.uplink.test',
    )
    expect(result.addresses).toHaveLength(1)
    expect(dns.queryCount).toBe(2)
  })

  it('NXDOMAIN is final: no other server, no system fallback', async () => {
    const first = await server()
    const second = await server()
    second.set('nope.uplink.test', ['127.0.0.1'])
    const r = resolver([first.server, second.server], { family: 4, systemFallback: true })
    await expect(r.resolve('nope.uplink.test')).rejects.toMatchObject({ code: 'DNS_NXDOMAIN' })
    expect(second.queryCount).toBe(0)
  })

  it('reports SERVFAIL, REFUSED and timeouts by code when no server answers', async () => {
    const dns = await server()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    const r = resolver([dns.server], { family: 4 })
    dns.setFault('servfail')
    await expect(r.resolve('iot.uplink.test')).rejects.toMatchObject({ code: 'DNS_SERVFAIL' })
    dns.setFault('refused')
    await expect(r.resolve('iot.uplink.test')).rejects.toMatchObject({ code: 'DNS_REFUSED' })
    dns.setFault('drop')
    await expect(r.resolve('iot.uplink.test')).rejects.toMatchObject({ code: 'DNS_TIMEOUT' })
  })

  it("a server's failures carry no stack frames: SERVFAIL, a timeout, garbage, NXDOMAIN, no address", async () => {
    const dns = await server()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    dns.set('empty.uplink.test', [])
    const r = resolver([dns.server], { family: 4 })
    const failure = (name: string) =>
      r.resolve(name).then(
        () => expect.unreachable(`${name} resolved`),
        (err: UplinkError) => err,
      )
    const errors: UplinkError[] = []
    for (const fault of ['servfail', 'drop', 'garbage'] as const) {
      dns.setFault(fault)
      errors.push(await failure('iot.uplink.test'))
    }
    dns.setFault('none')
    errors.push(await failure('nope.uplink.test'), await failure('empty.uplink.test'))
    expect(errors.map((e) => e.code)).toEqual([
      'DNS_SERVFAIL',
      'DNS_TIMEOUT',
      'DNS_MALFORMED',
      'DNS_NXDOMAIN',
      'DNS_NO_ADDRESS',
    ])
    for (const e of errors) {
      // Built in a socket or timer callback, a stack would name only the resolver's internals,
      // and capturing one costs each failed lookup of a storm some 20 µs.
      expect(String(e.stack).split('\n')).toEqual([`UplinkError: ${e.message}`])
    }
  })

  it('a name with no addresses is DNS_NO_ADDRESS, final like NXDOMAIN', async () => {
    const first = await server()
    const second = await server()
    first.set('empty.uplink.test', [])
    second.set('empty.uplink.test', ['127.0.0.1'])
    const r = resolver([first.server, second.server], { systemFallback: true })
    await expect(r.resolve('empty.uplink.test')).rejects.toMatchObject({
      code: 'DNS_NO_ADDRESS',
    })
    expect(first.queries.map((q) => q.type).sort()).toEqual(['A', 'AAAA'])
    expect(second.queryCount).toBe(0)
  })

  it('an address of one family is enough when the other has none', async () => {
    const dns = await server()
    dns.set('iot.uplink.test', ['::1'], 7)
    const result = await resolver([dns.server]).resolve('iot.uplink.test')
    expect(result).toMatchObject({ ttl: 7, addresses: [{ address: '::1', family: 6 }] })
  })

  it('without fallback, the last server error is what the caller sees', async () => {
    const dns = await server()
    dns.setFault('drop')
    const err = await resolver([dns.server], { attempts: 2, timeoutMs: 50 })
      .resolve('iot.uplink.test')
      .catch((e) => e)
    expect(err).toMatchObject({ code: 'DNS_TIMEOUT' })
    // Two rounds, each asking A and AAAA.
    expect(dns.queryCount).toBe(4)
  })

  it('falls back to the system lookup when no server answers, and says why', async () => {
    const dns = await server()
    dns.setFault('drop')
    // The machine's own name resolves through /etc/hosts with no DNS server.
    const name = hostname()
    const expected = (await lookup(name, { all: true })).map((a) => a.address)
    const result = await resolver([dns.server], { systemFallback: true }).resolve(name)
    expect(result.source).toBe('system')
    expect(result.addresses.map((a) => a.address)).toEqual(expected)
    expect(result.fallbackReason).toMatchObject({ code: 'DNS_FALLBACK' })
    expect(result.fallbackReason?.details?.cause).toBe('DNS_TIMEOUT')
  })

  it('takes IP literals and localhost as they are, with no query', async () => {
    const dns = await server()
    const r = resolver([dns.server])
    expect(await r.resolve('127.0.0.4')).toMatchObject({
      source: 'literal',
      addresses: [{ address: '127.0.0.4', family: 4 }],
    })
    expect((await r.resolve('[::1]')).addresses).toEqual([{ address: '::1', family: 6, ttl: 0 }])
    expect((await r.resolve('localhost')).addresses[0]?.address).toBe('127.0.0.1')
    expect(dns.queryCount).toBe(0)
  })

  it('an already aborted signal rejects with no query', async () => {
    const dns = await server()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    const reason = new UplinkError('STOPPED', 'stopped')
    await expect(
      resolver([dns.server]).resolve('iot.uplink.test', AbortSignal.abort(reason)),
    ).rejects.toBe(reason)
    expect(dns.queryCount).toBe(0)
  })

  it('stops at once when aborted', async () => {
    const dns = await server()
    dns.setFault('drop')
    const r = resolver([dns.server], { timeoutMs: 10_000 })
    const controller = new AbortController()
    const pending = r.resolve('iot.uplink.test', controller.signal)
    const t0 = performance.now()
    controller.abort(new UplinkError('STOPPED', 'stopped'))
    await expect(pending).rejects.toMatchObject({ code: 'STOPPED' })
    expect(performance.now() - t0).toBeLessThan(1_000)
  })

  it('draws transaction ids from the random source', async () => {
    const dns = await server()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    const ids: number[] = []
    const r = resolver([dns.server], {
      family: 4,
      random: () => {
        const v = [0.25, 0.5][ids.length % 2] as number
        ids.push(Math.floor(v * 0x10000))
        return v
      },
    })
    await r.resolve('iot.uplink.test')
    await r.resolve('iot.uplink.test')
    expect(ids).toEqual([0x4000, 0x8000])
  })

  it('parses server addresses and refuses bad ones', () => {
    expect(parseDnsServer('10.0.0.2')).toMatchObject({ address: '10.0.0.2', port: 53 })
    expect(parseDnsServer('127.0.0.1:5353')).toMatchObject({ address: '127.0.0.1', port: 5353 })
    expect(parseDnsServer('[::1]:5353')).toMatchObject({ address: '::1', port: 5353 })
    expect(parseDnsServer('::1')).toMatchObject({ address: '::1', port: 53 })
    expect(() => parseDnsServer('dns.example.com')).toThrow(/dns.servers/)
    expect(() => parseDnsServer('127.0.0.1:99999')).toThrow(UplinkError)
  })
})

describe('createResolver, each family on its own', () => {
  const faults = ['servfail', 'refused', 'drop', 'garbage'] as const
  const codes = {
    servfail: 'DNS_SERVFAIL',
    refused: 'DNS_REFUSED',
    drop: 'DNS_TIMEOUT',
    garbage: 'DNS_MALFORMED',
  }

  for (const fault of faults) {
    it(`A answered, AAAA ${fault}: resolves with the A addresses and reports the AAAA failure`, async () => {
      const first = await server()
      const second = await server()
      first.set('iot.uplink.test', ['127.0.0.5', '127.0.0.6'], 30)
      first.setFault(fault, { type: 'AAAA' })
      second.set('iot.uplink.test', ['127.0.0.9'])
      // A long resolution delay, so that garbage and silence both end by the query timeout and
      // report what the server did rather than the delay running out.
      const result = await resolver([first.server, second.server], {
        resolutionDelayMs: 5_000,
      }).resolve('iot.uplink.test')
      expect(result).toMatchObject({
        source: 'dns',
        server: first.server,
        ttl: 30,
        addresses: [
          { address: '127.0.0.5', family: 4 },
          { address: '127.0.0.6', family: 4 },
        ],
        partial: { family: 6, error: { code: codes[fault] } },
      })
      expect(result.partial?.error).toBeInstanceOf(UplinkError)
      // The server that answered A is not counted as failed: nobody else is asked.
      expect(second.queryCount).toBe(0)
    })
  }

  it('AAAA answered, A refused: resolves with the AAAA addresses and reports the A failure', async () => {
    const dns = await server()
    dns.set('iot.uplink.test', ['::1'])
    dns.setFault('refused', { type: 'A' })
    const result = await resolver([dns.server]).resolve('iot.uplink.test')
    expect(result.addresses).toEqual([{ address: '::1', family: 6, ttl: 60 }])
    expect(result.partial).toMatchObject({ family: 4, error: { code: 'DNS_REFUSED' } })
  })

  it('a complete answer has no partial failure', async () => {
    const dns = await server()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    const result = await resolver([dns.server]).resolve('iot.uplink.test')
    expect(result.partial).toBeUndefined()
  })

  it('both families failing fail the server: the next one is asked', async () => {
    const bad = await server()
    const good = await server()
    bad.set('iot.uplink.test', ['127.0.0.1'])
    bad.setFault('refused')
    good.set('iot.uplink.test', ['127.0.0.2'])
    const result = await resolver([bad.server, good.server]).resolve('iot.uplink.test')
    expect(result).toMatchObject({ server: good.server, addresses: [{ address: '127.0.0.2' }] })
    expect(result.partial).toBeUndefined()
    expect(bad.queries.map((q) => q.type).sort()).toEqual(['A', 'AAAA'])
  })

  it('one family empty and the other failing is no answer: the next server is asked', async () => {
    const bad = await server()
    const good = await server()
    // A is empty and AAAA fails: nothing to connect to, so this server has not answered.
    bad.set('iot.uplink.test', ['::1'])
    bad.setFault('servfail', { type: 'AAAA' })
    good.set('iot.uplink.test', ['127.0.0.2'])
    const r = resolver([bad.server, good.server])
    expect((await r.resolve('iot.uplink.test')).server).toBe(good.server)
  })

  it('both families failing on every server: the error of the last one, by code', async () => {
    const first = await server()
    const second = await server()
    first.setFault('servfail')
    second.setFault('refused')
    await expect(
      resolver([first.server, second.server]).resolve('iot.uplink.test'),
    ).rejects.toMatchObject({ code: 'DNS_REFUSED' })
    expect(first.queryCount + second.queryCount).toBe(4)
  })

  it('NXDOMAIN stays final with both families asked', async () => {
    const first = await server()
    const second = await server()
    second.set('nope.uplink.test', ['127.0.0.1'])
    await expect(
      resolver([first.server, second.server], { systemFallback: true }).resolve('nope.uplink.test'),
    ).rejects.toMatchObject({ code: 'DNS_NXDOMAIN' })
    expect(second.queryCount).toBe(0)
  })

  it('waits for a silent family only the resolution delay, not the query timeout', async () => {
    const dns = await server()
    dns.set('iot.uplink.test', ['127.0.0.5'])
    dns.setFault('drop', { type: 'AAAA' })
    const r = resolver([dns.server], { timeoutMs: 10_000, resolutionDelayMs: 50 })
    const t0 = performance.now()
    const result = await r.resolve('iot.uplink.test')
    const took = performance.now() - t0
    expect(result.addresses.map((a) => a.address)).toEqual(['127.0.0.5'])
    expect(result.partial).toMatchObject({
      family: 6,
      error: { code: 'DNS_TIMEOUT', details: { resolutionDelayMs: 50, type: 'AAAA' } },
    })
    // Far below the 10 s query timeout, with room for a loaded machine.
    expect(took).toBeLessThan(5_000)
  })
})

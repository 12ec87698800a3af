import { spawnSync } from 'node:child_process'
import dgram from 'node:dgram'
import { Resolver } from 'node:dns/promises'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import dnsPacket, { type Packet } from 'dns-packet'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { startDnsServer, type TestDnsServer } from '../src/dns-server.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

async function started(): Promise<TestDnsServer> {
  const dns = await startDnsServer()
  cleanup.push(() => dns.stop())
  return dns
}

/** Node's own resolver (c-ares), pointed at the test server: an independent client. */
function nodeResolver(dns: TestDnsServer, timeout = 300): Resolver {
  const resolver = new Resolver({ timeout, tries: 1 })
  resolver.setServers([dns.server])
  return resolver
}

function query(name: string, type: 'A' | 'AAAA' = 'A', id = 4242): Packet {
  return { type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] }
}

/** One raw UDP exchange: the bytes that came back, or undefined after `waitMs`. */
function rawUdp(dns: TestDnsServer, packet: Packet, waitMs = 300): Promise<Buffer | undefined> {
  const socket = dgram.createSocket('udp4')
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.close()
      resolve(undefined)
    }, waitMs)
    socket.on('message', (msg) => {
      clearTimeout(timer)
      socket.close()
      resolve(msg)
    })
    socket.send(dnsPacket.encode(packet), dns.port, dns.host)
  })
}

function rawTcp(dns: TestDnsServer, packet: Packet): Promise<Packet> {
  const socket = net.connect({ host: dns.host, port: dns.port })
  cleanup.push(() => void socket.destroy())
  let buf = Buffer.alloc(0)
  return new Promise((resolve, reject) => {
    socket.on('error', reject)
    socket.on('connect', () => socket.write(dnsPacket.streamEncode(packet)))
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk])
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        resolve(dnsPacket.streamDecode(buf))
      }
    })
  })
}

function rmemMax(): number {
  try {
    return Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'))
  } catch {
    return 0
  }
}

describe('startDnsServer', () => {
  it('answers A and AAAA, and set() changes the answer at run time', async () => {
    const dns = await started()
    dns.set('iot.uplink.test', ['127.0.0.1', '::1'], 30)
    const resolver = nodeResolver(dns)
    expect(await resolver.resolve4('iot.uplink.test', { ttl: true })).toEqual([
      { address: '127.0.0.1', ttl: 30 },
    ])
    expect(await resolver.resolve6('iot.uplink.test')).toEqual(['::1'])
    dns.set('IOT.uplink.test', ['127.0.0.2'])
    expect(await resolver.resolve4('iot.uplink.test')).toEqual(['127.0.0.2'])
    await expect(resolver.resolve6('iot.uplink.test')).rejects.toMatchObject({ code: 'ENODATA' })
    expect(dns.queryCount).toBe(4)
    expect(dns.queries[0]).toMatchObject({ name: 'iot.uplink.test', type: 'A', transport: 'udp' })
  })

  it('follows CNAME chains in the answer', async () => {
    const dns = await started()
    dns.setCname('iot.uplink.test', 'region.uplink.test')
    dns.setCname('region.uplink.test', 'east.uplink.test')
    dns.set('east.uplink.test', ['127.0.0.5'])
    expect(await nodeResolver(dns).resolve4('iot.uplink.test')).toEqual(['127.0.0.5'])
    expect(await nodeResolver(dns).resolveCname('iot.uplink.test')).toEqual(['region.uplink.test'])
  })

  it('unknown names are NXDOMAIN; remove() forgets a name', async () => {
    const dns = await started()
    dns.set('gone.uplink.test', ['127.0.0.1'])
    dns.remove('gone.uplink.test')
    await expect(nodeResolver(dns).resolve4('gone.uplink.test')).rejects.toMatchObject({
      code: 'ENOTFOUND',
    })
  })

  it('fault drop: no answer at all', async () => {
    const dns = await started()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    dns.setFault('drop')
    await expect(nodeResolver(dns, 200).resolve4('iot.uplink.test')).rejects.toMatchObject({
      code: 'ETIMEOUT',
    })
    expect(await rawUdp(dns, query('iot.uplink.test'))).toBeUndefined()
  })

  it('faults servfail, nxdomain and refused', async () => {
    const dns = await started()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    const resolver = nodeResolver(dns)
    dns.setFault('servfail')
    await expect(resolver.resolve4('iot.uplink.test')).rejects.toMatchObject({ code: 'ESERVFAIL' })
    dns.setFault('nxdomain')
    await expect(resolver.resolve4('iot.uplink.test')).rejects.toMatchObject({ code: 'ENOTFOUND' })
    dns.setFault('refused')
    await expect(resolver.resolve4('iot.uplink.test')).rejects.toMatchObject({ code: 'EREFUSED' })
  })

  it('fault truncate: UDP says TC with no answers, TCP answers in full', async () => {
    const dns = await started()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    dns.setFault('truncate')
    const udp = dnsPacket.decode((await rawUdp(dns, query('iot.uplink.test'))) as Buffer)
    expect((udp.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE).toBeTruthy()
    expect(udp.answers).toEqual([])
    const tcp = await rawTcp(dns, query('iot.uplink.test'))
    expect(tcp.answers?.map((a) => (a as { data: string }).data)).toEqual(['127.0.0.1'])
    // c-ares retries over TCP on its own, as a well-behaved resolver must.
    expect(await nodeResolver(dns).resolve4('iot.uplink.test')).toEqual(['127.0.0.1'])
    expect(dns.queries.map((q) => q.transport)).toContain('tcp')
  })

  it('a truncation counts only the UDP queries it truncates', async () => {
    const dns = await started()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    dns.setFault('truncate', { times: 1 })
    const udp = dnsPacket.decode((await rawUdp(dns, query('iot.uplink.test'))) as Buffer)
    expect((udp.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE).toBeTruthy()
    await rawTcp(dns, query('iot.uplink.test'))
    const again = dnsPacket.decode((await rawUdp(dns, query('iot.uplink.test'))) as Buffer)
    expect((again.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE).toBeFalsy()
    expect(again.answers).toHaveLength(1)
    expect(dns.queries.map((q) => q.transport)).toEqual(['udp', 'tcp', 'udp'])
  })

  it('answers over TCP with faults too, and several queries on one connection', async () => {
    const dns = await started()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    dns.setFault('servfail', { times: 1 })
    const failed = await rawTcp(dns, query('iot.uplink.test'))
    expect((failed as { rcode?: string }).rcode).toBe('SERVFAIL')
    const ok = await rawTcp(dns, query('iot.uplink.test', 'A', 9))
    expect(ok).toMatchObject({ id: 9, type: 'response' })
    expect((ok.flags ?? 0) & dnsPacket.AUTHORITATIVE_ANSWER).toBeTruthy()
    expect(ok.answers).toHaveLength(1)
  })

  it('listens on ::1 as well, under the bracketed server form', async () => {
    const dns = await startDnsServer({ host: '::1' })
    cleanup.push(() => dns.stop())
    expect(dns.server).toBe(`[::1]:${dns.port}`)
    dns.set('iot.uplink.test', ['::1', '127.0.0.1'])
    expect(await nodeResolver(dns).resolve6('iot.uplink.test')).toEqual(['::1'])
    expect(await nodeResolver(dns).resolve4('iot.uplink.test')).toEqual(['127.0.0.1'])
  })

  it('refuses to bind anything but loopback', async () => {
    await expect(startDnsServer({ host: '0.0.0.0' })).rejects.toThrow(/loopback/)
  })

  it('fault wrong-id: the answer carries another transaction id', async () => {
    const dns = await started()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    dns.setFault('wrong-id')
    const answer = dnsPacket.decode(
      (await rawUdp(dns, query('iot.uplink.test', 'A', 77))) as Buffer,
    )
    expect(answer.id).not.toBe(77)
    expect(answer.answers).toHaveLength(1)
  })

  it('fault garbage: bytes that do not parse as DNS', async () => {
    const dns = await started()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    dns.setFault('garbage')
    const bytes = (await rawUdp(dns, query('iot.uplink.test'))) as Buffer
    expect(bytes).toBeDefined()
    const decoded = (() => {
      try {
        const p = dnsPacket.decode(bytes)
        return p.id === 4242 && p.questions?.[0]?.name === 'iot.uplink.test' ? 'parsed' : 'junk'
      } catch {
        return 'junk'
      }
    })()
    expect(decoded).toBe('junk')
  })

  it('a fault can target one name and a number of queries, then reverts', async () => {
    const dns = await started()
    dns.set('a.uplink.test', ['127.0.0.1'])
    dns.set('b.uplink.test', ['127.0.0.2'])
    dns.setFault('servfail', { name: 'a.uplink.test', times: 2 })
    const resolver = nodeResolver(dns)
    expect(await resolver.resolve4('b.uplink.test')).toEqual(['127.0.0.2'])
    await expect(resolver.resolve4('a.uplink.test')).rejects.toMatchObject({ code: 'ESERVFAIL' })
    await expect(resolver.resolve4('a.uplink.test')).rejects.toMatchObject({ code: 'ESERVFAIL' })
    expect(await resolver.resolve4('a.uplink.test')).toEqual(['127.0.0.1'])
  })

  it('a fault can target one record type: A answered, AAAA refused', async () => {
    const dns = await started()
    dns.set('iot.uplink.test', ['127.0.0.1', '::1'])
    dns.setFault('refused', { type: 'AAAA' })
    const resolver = nodeResolver(dns)
    expect(await resolver.resolve4('iot.uplink.test')).toEqual(['127.0.0.1'])
    await expect(resolver.resolve6('iot.uplink.test')).rejects.toMatchObject({ code: 'EREFUSED' })
    expect(await resolver.resolve4('iot.uplink.test')).toEqual(['127.0.0.1'])
  })

  it('survives malformed queries over UDP and TCP', async () => {
    const dns = await started()
    dns.set('iot.uplink.test', ['127.0.0.1'])
    const socket = dgram.createSocket('udp4')
    await new Promise<void>((r) =>
      socket.send(Buffer.from([1, 2, 3]), dns.port, dns.host, () => r()),
    )
    // A well-formed header that claims a question and carries none.
    const header = Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    await new Promise<void>((r) => socket.send(header, dns.port, dns.host, () => r()))
    socket.close()
    const tcp = net.connect({ host: dns.host, port: dns.port })
    await new Promise<void>((r) => tcp.on('connect', () => r()))
    await new Promise<void>((r) => tcp.write(Buffer.from([0, 3, 9, 9, 9]), () => r()))
    tcp.destroy()
    expect(await nodeResolver(dns).resolve4('iot.uplink.test')).toEqual(['127.0.0.1'])
    expect(dns.queryCount).toBe(1)
  })

  it('keeps a burst of 2 000 questions that arrive while it cannot read (a fleet storm)', async () => {
    // The kernel caps the buffer at net.core.rmem_max; at Linux's default cap (208 KiB) no
    // server can keep such a burst, and only one the default buffer holds is asked of it.
    const burst = rmemMax() >= 4 * 2 ** 20 ? 2000 : 100
    const dns = await started()
    dns.set('burst.test', ['127.0.0.9'])
    // The blast comes from another process while this one is blocked in spawnSync, so every
    // datagram waits in the server's receive buffer; the default buffer held some 200 of them.
    const blast = `
      const dgram = require('node:dgram')
      const s = dgram.createSocket('udp4')
      const q = Buffer.from(${JSON.stringify([...dnsPacket.encode(query('burst.test'))])})
      let left = ${burst}
      for (let i = 0; i < ${burst}; i++) s.send(q, ${dns.port}, ${JSON.stringify(dns.host)}, () => --left || s.close())
    `
    const out = spawnSync(process.execPath, ['-e', blast], { timeout: 20_000 })
    expect(out.status).toBe(0)
    await vi.waitFor(() => expect(dns.queries.length).toBe(burst), {
      timeout: 10_000,
      interval: 20,
    })
  })

  it('stop() can be called twice', async () => {
    const dns = await startDnsServer()
    await dns.stop()
    await dns.stop()
  })
})

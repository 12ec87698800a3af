import { randomBytes } from 'node:crypto'
import dgram from 'node:dgram'
import net, { isIPv4, isIPv6 } from 'node:net'
import dnsPacket, { type Answer, type Packet, type Question } from 'dns-packet'
import { assertLoopback, bindUdp, listen } from './loopback.js'

/**
 * drop: no answer at all. servfail, nxdomain, refused: that response code. truncate: over UDP an
 * empty answer with the TC bit set, so a client must ask again over TCP (which answers normally).
 * wrong-id: a correct answer under another transaction id. garbage: random bytes.
 */
export type DnsFault =
  | 'none'
  | 'drop'
  | 'servfail'
  | 'nxdomain'
  | 'refused'
  | 'truncate'
  | 'wrong-id'
  | 'garbage'

export interface DnsQueryRecord {
  name: string
  type: string
  /** The question's transaction id, as the client drew it. */
  id: number
  transport: 'udp' | 'tcp'
  at: number
}

export interface TestDnsServer {
  host: string
  port: number
  /** `host:port` (or `[::1]:port`), as a resolver's server list takes it. */
  server: string
  /** Answers for `name` from now on: IPv4 addresses as A records, IPv6 as AAAA. */
  set(name: string, addresses: string[], ttl?: number): void
  /** `name` is an alias of `target` (CNAME); chains are followed in the answer. */
  setCname(name: string, target: string, ttl?: number): void
  remove(name: string): void
  /**
   * Faults for every query, or only for `name` and/or one record `type` ('AAAA': a server that
   * answers A but fails AAAA), for the next `times` matching queries (default: until reset).
   */
  setFault(mode: DnsFault, options?: { name?: string; type?: string; times?: number }): void
  queries: DnsQueryRecord[]
  readonly queryCount: number
  stop(): Promise<void>
}

interface ZoneEntry {
  cname?: { target: string; ttl: number }
  a: string[]
  aaaa: string[]
  ttl: number
}

type Zone = Map<string, ZoneEntry>

// dns-packet encodes the response code only from the low four bits of `flags`.
const RCODES = { servfail: 2, nxdomain: 3, refused: 5 } as const

const norm = (name: string) => name.toLowerCase().replace(/\.$/, '')

function answersFor(
  zone: Zone,
  question: Question,
): { rcode: 'NOERROR' | 'NXDOMAIN'; answers: Answer[] } {
  const answers: Answer[] = []
  let name = norm(question.name)
  // Bounded so a CNAME loop set by a test cannot hang the server.
  for (let depth = 0; depth < 16; depth++) {
    const entry = zone.get(name)
    if (!entry) return { rcode: depth === 0 ? 'NXDOMAIN' : 'NOERROR', answers }
    if (entry.cname) {
      answers.push({
        type: 'CNAME',
        name,
        ttl: entry.cname.ttl,
        class: 'IN',
        data: entry.cname.target,
      })
      name = norm(entry.cname.target)
      continue
    }
    if (question.type === 'A') {
      for (const data of entry.a)
        answers.push({ type: 'A', name, ttl: entry.ttl, class: 'IN', data })
    }
    if (question.type === 'AAAA') {
      for (const data of entry.aaaa) {
        answers.push({ type: 'AAAA', name, ttl: entry.ttl, class: 'IN', data })
      }
    }
    return { rcode: 'NOERROR', answers }
  }
  return { rcode: 'NOERROR', answers }
}

/** An authoritative DNS server made with dns-packet, on UDP and TCP at the same loopback port. */
export async function startDnsServer(options: { host?: string } = {}): Promise<TestDnsServer> {
  const host = options.host ?? '127.0.0.1'
  assertLoopback(host)
  const zone: Zone = new Map()
  const queries: DnsQueryRecord[] = []
  let fault: {
    mode: DnsFault
    name?: string | undefined
    type?: string | undefined
    times: number
  } = {
    mode: 'none',
    times: Number.POSITIVE_INFINITY,
  }

  /** The fault that applies to this query, counting it down. */
  const faultFor = (name: string, type: string, transport: 'udp' | 'tcp'): DnsFault => {
    if (fault.mode === 'none') return 'none'
    // The retry over TCP that a truncation provokes is the normal answer, so it must neither be
    // faulted nor use up one of the `times`.
    if (fault.mode === 'truncate' && transport === 'tcp') return 'none'
    if (fault.name !== undefined && norm(fault.name) !== norm(name)) return 'none'
    if (fault.type !== undefined && fault.type.toUpperCase() !== type.toUpperCase()) return 'none'
    const mode = fault.mode
    if (--fault.times <= 0) fault = { mode: 'none', times: Number.POSITIVE_INFINITY }
    return mode
  }

  /** The reply bytes for a query, or undefined to stay silent (a malformed query included). */
  const reply = (buf: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined => {
    try {
      return answer(buf, transport)
    } catch {
      // A query that decodes but cannot be answered (an unencodable name, say) is dropped: a
      // test server that throws from a socket handler would take the whole test run down.
      return undefined
    }
  }

  const answer = (buf: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined => {
    let query: Packet
    try {
      query = dnsPacket.decode(buf)
    } catch {
      return undefined
    }
    const question = query.questions?.[0]
    if (!question || query.type !== 'query') return undefined
    queries.push({
      name: norm(question.name),
      type: question.type,
      id: query.id ?? 0,
      transport,
      at: Date.now(),
    })
    const mode = faultFor(question.name, question.type, transport)
    if (mode === 'drop') return undefined
    if (mode === 'garbage') {
      const junk = randomBytes(24)
      // 65535 questions cannot fit in 12 bytes, so no parser can take these bytes for an answer.
      junk.writeUInt16BE(0xffff, 4)
      return junk
    }
    const base = {
      type: 'response' as const,
      id: query.id ?? 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER,
      questions: [question],
    }
    if (mode === 'servfail' || mode === 'nxdomain' || mode === 'refused') {
      return dnsPacket.encode({ ...base, flags: base.flags | RCODES[mode] })
    }
    if (mode === 'truncate' && transport === 'udp') {
      return dnsPacket.encode({ ...base, flags: base.flags | dnsPacket.TRUNCATED_RESPONSE })
    }
    const { rcode, answers } = answersFor(zone, question)
    const id = mode === 'wrong-id' ? (base.id + 1) & 0xffff : base.id
    return dnsPacket.encode({
      ...base,
      id,
      flags: base.flags | (rcode === 'NXDOMAIN' ? RCODES.nxdomain : 0),
      answers,
    })
  }

  // UDP first on a port the OS picks, then TCP on the same number; retried if TCP lost the race.
  for (let attempt = 0; ; attempt++) {
    // A fleet's storm arrives in bursts faster than one JS thread answers: the default 208 KiB
    // buffer dropped thousands of questions a storm, and a dropped question costs the asking
    // client a whole timeout. Linux caps the size at net.core.rmem_max.
    const udp = dgram.createSocket({
      type: host.includes(':') ? 'udp6' : 'udp4',
      recvBufferSize: 4 * 2 ** 20,
    })
    const port = await bindUdp(udp, host)
    const tcp = net.createServer()
    try {
      await listen(tcp, host, port)
    } catch (err) {
      udp.close()
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 10) continue
      throw err
    }
    udp.on('message', (msg, rinfo) => {
      const out = reply(msg, 'udp')
      if (out && !stopped) udp.send(out, rinfo.port, rinfo.address)
    })
    udp.on('error', () => {})
    const sockets = new Set<net.Socket>()
    let stopped = false
    tcp.on('connection', (socket) => {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
      socket.on('error', () => {})
      let pending = Buffer.alloc(0)
      socket.on('data', (chunk) => {
        pending = Buffer.concat([pending, chunk])
        // Two-byte length framing (RFC 1035 4.2.2); several queries may share one connection.
        while (pending.length >= 2) {
          const size = pending.readUInt16BE(0)
          if (pending.length < 2 + size) break
          const out = reply(pending.subarray(2, 2 + size), 'tcp')
          pending = pending.subarray(2 + size)
          if (out && !socket.destroyed) {
            const frame = Buffer.alloc(2 + out.length)
            frame.writeUInt16BE(out.length, 0)
            out.copy(frame, 2)
            socket.write(frame)
          }
        }
      })
    })
    const entry = (name: string) => {
      const key = norm(name)
      const existing = zone.get(key)
      if (existing) return existing
      const fresh: ZoneEntry = { a: [], aaaa: [], ttl: 60 }
      zone.set(key, fresh)
      return fresh
    }
    return {
      host,
      port,
      server: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`,
      set(name, addresses, ttl = 60) {
        for (const a of addresses) {
          if (!isIPv4(a) && !isIPv6(a)) throw new Error(`not an IP address: ${a}`)
        }
        zone.set(norm(name), {
          a: addresses.filter((a) => isIPv4(a)),
          aaaa: addresses.filter((a) => isIPv6(a)),
          ttl,
        })
      },
      setCname(name, target, ttl = 60) {
        const e = entry(name)
        e.cname = { target: norm(target), ttl }
      },
      remove(name) {
        zone.delete(norm(name))
      },
      setFault(mode, faultOptions = {}) {
        fault = {
          mode,
          name: faultOptions.name,
          type: faultOptions.type,
          times: faultOptions.times ?? Number.POSITIVE_INFINITY,
        }
      },
      queries,
      get queryCount() {
        return queries.length
      },
      async stop() {
        if (stopped) return
        stopped = true
        const closed = new Promise<void>((r) => tcp.close(() => r()))
        for (const s of sockets) s.destroy()
        await new Promise<void>((r) => udp.close(() => r()))
        await closed
      },
    }
  }
}

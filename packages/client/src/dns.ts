import { randomInt } from 'node:crypto'
import dgram from 'node:dgram'
import { getServers, promises as systemDns } from 'node:dns'
import net, { isIP } from 'node:net'
import dnsPacket, { type Answer, type Packet } from 'dns-packet'
import type { RandomSource } from './clock.js'
import { UplinkError, type UplinkErrorCode } from './errors.js'

/**
 * The resolver. It asks DNS servers directly with dns-packet and keeps no cache, so a failover
 * record that changed a second ago is what the next connect sees. The operating system's lookup
 * (which may cache, per nscd or systemd-resolved) is only a fallback when no server answers.
 */

export interface ResolvedAddress {
  address: string
  family: 4 | 6
  /** Seconds the answer may be trusted (0 when unknown). */
  ttl: number
}

export interface Resolution {
  host: string
  addresses: ResolvedAddress[]
  /** The smallest TTL in the answer chain, seconds (0 for literals and system lookups). */
  ttl: number
  source: 'dns' | 'system' | 'literal'
  /** The server that answered, for source 'dns'. */
  server?: string | undefined
  /** Why the system's lookup was used instead of DNS (source 'system'). */
  fallbackReason?: UplinkError | undefined
}

export interface ResolverOptions {
  /** 'ip', 'ip:port' or '[v6]:port'. Default: the system's configured resolvers. */
  servers?: string[] | undefined
  timeoutMs: number
  /** Rounds over the server list. */
  attempts: number
  /** 0: A and AAAA; 4 or 6: one family. */
  family: 0 | 4 | 6
  systemFallback: boolean
  /** Source of transaction ids; default crypto-random (ids must not be guessable off-path). */
  random?: RandomSource | undefined
}

export interface Resolver {
  resolve(host: string, signal?: AbortSignal): Promise<Resolution>
}

interface Server {
  address: string
  port: number
  label: string
}

/** Parses 'ip', 'ip:port' or '[v6]:port'. */
export function parseDnsServer(text: string): Server {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text)
  let address = text
  let port = 53
  if (bracket) {
    address = bracket[1] as string
    if (bracket[2]) port = Number(bracket[2])
  } else if (isIP(text) !== 6) {
    const i = text.lastIndexOf(':')
    if (i > 0) {
      address = text.slice(0, i)
      port = Number(text.slice(i + 1))
    }
  }
  if (!isIP(address) || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new UplinkError(
      'INVALID_OPTIONS',
      `dns.servers: not an IP address with optional port: ${text}`,
    )
  }
  return { address, port, label: text }
}

const MAX_CHAIN = 8

/** A failed query: the code says whether another server could do better. */
class QueryError extends UplinkError {}

/** Checks a response against the question; undefined means "not our answer, keep waiting". */
function matches(response: Packet, id: number, name: string, type: 'A' | 'AAAA'): boolean {
  const q = response.questions?.[0]
  return (
    response.type === 'response' &&
    response.id === id &&
    response.questions?.length === 1 &&
    q !== undefined &&
    q.type === type &&
    (q.class ?? 'IN') === 'IN' &&
    q.name.toLowerCase().replace(/\.$/, '') === name
  )
}

function rcodeError(
  rcode: string | undefined,
  name: string,
  server: string,
): QueryError | undefined {
  const codes: Record<string, UplinkErrorCode> = {
    NXDOMAIN: 'DNS_NXDOMAIN',
    SERVFAIL: 'DNS_SERVFAIL',
    REFUSED: 'DNS_REFUSED',
  }
  if (!rcode || rcode === 'NOERROR') return undefined
  const code = codes[rcode] ?? 'DNS_SERVFAIL'
  return new QueryError(code, `${server} answered ${rcode} for ${name}`, {
    details: { rcode, server },
  })
}

/** One question over UDP; on a truncated answer, the same question over TCP. */
function queryUdp(
  server: Server,
  name: string,
  type: 'A' | 'AAAA',
  id: number,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<Packet> {
  const question = dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
  })
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(isIP(server.address) === 6 ? 'udp6' : 'udp4')
    let malformed = false
    const finish = (err: unknown, packet?: Packet) => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      socket.close()
      if (err) reject(err)
      else resolve(packet as Packet)
    }
    const onAbort = () => finish(signal?.reason)
    const timer = setTimeout(() => {
      finish(
        malformed
          ? new QueryError(
              'DNS_MALFORMED',
              `${server.label} sent only malformed answers for ${name}`,
            )
          : new QueryError(
              'DNS_TIMEOUT',
              `${server.label} did not answer for ${name} in ${timeoutMs} ms`,
            ),
      )
    }, timeoutMs)
    signal?.addEventListener('abort', onAbort, { once: true })
    socket.on('error', (err) =>
      finish(new QueryError('DNS_TIMEOUT', `${server.label}: ${err.message}`)),
    )
    socket.on('message', (msg, rinfo) => {
      // Only the server we asked may answer; anything else is noise or a spoofing attempt.
      if (rinfo.port !== server.port) return
      let packet: Packet
      try {
        packet = dnsPacket.decode(msg)
      } catch {
        malformed = true
        return
      }
      if (!matches(packet, id, name, type)) {
        malformed = true
        return
      }
      if ((packet.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE) {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        socket.close()
        queryTcp(server, name, type, id, timeoutMs, signal).then(resolve, reject)
        return
      }
      finish(undefined, packet)
    })
    socket.send(question, server.port, server.address)
  })
}

function queryTcp(
  server: Server,
  name: string,
  type: 'A' | 'AAAA',
  id: number,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<Packet> {
  const question = dnsPacket.streamEncode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
  })
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: server.address, port: server.port })
    let pending = Buffer.alloc(0)
    const finish = (err: unknown, packet?: Packet) => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      socket.destroy()
      if (err) reject(err)
      else resolve(packet as Packet)
    }
    const onAbort = () => finish(signal?.reason)
    const timer = setTimeout(
      () =>
        finish(new QueryError('DNS_TIMEOUT', `${server.label} (TCP) did not answer for ${name}`)),
      timeoutMs,
    )
    signal?.addEventListener('abort', onAbort, { once: true })
    socket.on('error', (err) =>
      finish(new QueryError('DNS_TIMEOUT', `${server.label} (TCP): ${err.message}`)),
    )
    socket.on('close', () =>
      finish(
        new QueryError(
          'DNS_MALFORMED',
          `${server.label} (TCP) closed without an answer for ${name}`,
        ),
      ),
    )
    socket.on('connect', () => socket.write(question))
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk])
      if (pending.length < 2) return
      const size = pending.readUInt16BE(0)
      if (pending.length < 2 + size) return
      let packet: Packet
      try {
        packet = dnsPacket.decode(pending.subarray(2, 2 + size))
      } catch {
        return finish(
          new QueryError('DNS_MALFORMED', `${server.label} (TCP) sent a malformed answer`),
        )
      }
      if (!matches(packet, id, name, type)) {
        return finish(
          new QueryError('DNS_MALFORMED', `${server.label} (TCP) answered another question`),
        )
      }
      finish(undefined, packet)
    })
  })
}

/**
 * Addresses at the end of the CNAME chain that starts at `name`. Records for other owners are
 * ignored: an answer may not smuggle in addresses for a name we did not ask about.
 */
function follow(
  records: Answer[],
  name: string,
  type: 'A' | 'AAAA',
): { addresses: ResolvedAddress[]; ttl: number } {
  // OPT pseudo-records have no ttl or data; everything we read has both.
  const answers = records as Array<{ type: string; name: string; ttl?: number; data?: unknown }>
  let owner = name
  let ttl = Number.POSITIVE_INFINITY
  const seen = new Set<string>()
  const key = (n: string) => n.toLowerCase().replace(/\.$/, '')
  for (let depth = 0; depth <= MAX_CHAIN; depth++) {
    const cname = answers.find((a) => a.type === 'CNAME' && key(a.name) === owner)
    if (!cname || seen.has(owner)) break
    seen.add(owner)
    ttl = Math.min(ttl, cname.ttl ?? 0)
    owner = key(cname.data as string)
  }
  const addresses: ResolvedAddress[] = []
  for (const a of answers) {
    if (a.type !== type || key(a.name) !== owner) continue
    const address = a.data as string
    const family = isIP(address)
    if (family !== (type === 'A' ? 4 : 6)) continue
    addresses.push({ address, family: family as 4 | 6, ttl: a.ttl ?? 0 })
    ttl = Math.min(ttl, a.ttl ?? 0)
  }
  return { addresses, ttl: Number.isFinite(ttl) ? ttl : 0 }
}

export function createResolver(options: ResolverOptions): Resolver {
  const servers = (options.servers?.length ? options.servers : getServers()).map(parseDnsServer)
  const nextId = options.random
    ? () => Math.floor((options.random as RandomSource)() * 0x10000) & 0xffff
    : () => randomInt(0x10000)
  const types: Array<'A' | 'AAAA'> =
    options.family === 4 ? ['A'] : options.family === 6 ? ['AAAA'] : ['A', 'AAAA']

  /** Both families from one server; an error from either fails the server. */
  const ask = async (server: Server, name: string, signal?: AbortSignal): Promise<Resolution> => {
    const results = await Promise.all(
      types.map(async (type) => {
        const packet = await queryUdp(server, name, type, nextId(), options.timeoutMs, signal)
        const err = rcodeError((packet as { rcode?: string }).rcode, name, server.label)
        if (err) throw err
        return follow(packet.answers ?? [], name, type)
      }),
    )
    const addresses = results.flatMap((r) => r.addresses)
    const ttl = Math.min(...results.filter((r) => r.addresses.length).map((r) => r.ttl), 3_600)
    return {
      host: name,
      addresses,
      ttl: addresses.length ? ttl : 0,
      source: 'dns',
      server: server.label,
    }
  }

  const system = async (host: string, reason: UplinkError): Promise<Resolution> => {
    try {
      const found = await systemDns.lookup(host, {
        all: true,
        family: options.family,
        verbatim: true,
      })
      return {
        host,
        addresses: found.map((f) => ({ address: f.address, family: f.family as 4 | 6, ttl: 0 })),
        ttl: 0,
        source: 'system',
        fallbackReason: new UplinkError(
          'DNS_FALLBACK',
          `no DNS server answered for ${host} (${reason.message}); used the system's lookup`,
          { cause: reason, details: { cause: reason.code } },
        ),
      }
    } catch {
      throw reason
    }
  }

  return {
    async resolve(host, signal) {
      const name = host.toLowerCase().replace(/\.$/, '')
      const family = isIP(name.replace(/^\[|\]$/g, ''))
      if (family) {
        const address = name.replace(/^\[|\]$/g, '')
        return {
          host,
          addresses: [{ address, family: family as 4 | 6, ttl: 0 }],
          ttl: 0,
          source: 'literal',
        }
      }
      if (name === 'localhost') {
        return {
          host,
          addresses: [{ address: '127.0.0.1', family: 4, ttl: 0 }],
          ttl: 0,
          source: 'literal',
        }
      }
      let last: UplinkError = new UplinkError('DNS_TIMEOUT', `no DNS server configured for ${host}`)
      for (let round = 0; round < options.attempts; round++) {
        for (const server of servers) {
          if (signal?.aborted) throw signal.reason
          try {
            const resolution = await ask(server, name, signal)
            return { ...resolution, host }
          } catch (err) {
            if (signal?.aborted) throw signal.reason
            if (!(err instanceof UplinkError)) throw err
            // NXDOMAIN is an authoritative "no such name": asking elsewhere would only hide it.
            if (err.code === 'DNS_NXDOMAIN') throw err
            last = err
          }
        }
      }
      if (options.systemFallback) return system(host, last)
      throw last
    },
  }
}

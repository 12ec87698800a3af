import { randomInt } from 'node:crypto'
import { getServers, promises as systemDns } from 'node:dns'
import net, { isIP } from 'node:net'
import dnsPacket, { type Answer, type Packet } from 'dns-packet'
import { type RandomSource, systemClock } from './clock.js'
import { encodeQuery } from './dns-query.js'
import { processUdpSockets, type UdpSockets, type UdpWaiter } from './dns-udp.js'
import { networkError, toUplinkError, UplinkError, type UplinkErrorCode } from './errors.js'
import { type ResolvedOptions, resolveResolverOptions } from './options.js'
import { retry } from './retry.js'

/**
 * The resolver. It asks DNS servers directly with dns-packet and keeps no cache, so a failover
 * record that changed a second ago is what the next connect sees. The operating system's lookup
 * (which may cache, per nscd or systemd-resolved) is only a fallback when no server answers.
 *
 * What a question costs, measured in the storm bench's device workers (the resolver runs on
 * every connect attempt): the socket, not the packet. Questions go out on a socket shared with
 * the process's other resolvers and bounded in questions and idle time (dns-udp.ts), A and AAAA
 * of one lookup on the same one; the question is written straight into a buffer (dns-query.ts).
 * Answers are still read by dns-packet: its decoder is a smaller share, and a hand-written one
 * is where malformed input would have to be proved harmless again. Left as they are, for the
 * same reason: a timer and an abort listener per question (each bounds a real wait). What is
 * left is mostly the send itself, and it depends on the server more than on us: on the bench's
 * 2-core VM a datagram to a server that sat idle costs the sending process 20-30 µs (the wake-up
 * of the receiver is charged to the sender), against 5 µs to a busy one, so a fleet that spreads
 * its questions over time, as backoff jitter does, pays more per question than one asking in step.
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
  /**
   * One family failed while the other answered with addresses (say, a dnsmasq that answers A
   * and REFUSED to AAAA): the addresses are used, and this says which family is missing and why.
   */
  partial?: PartialFailure | undefined
}

export interface PartialFailure {
  family: 4 | 6
  error: UplinkError
}

export interface ResolverOptions {
  /** 'ip', 'ip:port' or '[v6]:port'. Default: the system's configured resolvers. */
  servers?: string[] | undefined
  timeoutMs: number
  /** Rounds over the server list. */
  attempts: number
  /** 0: A and AAAA; 4 or 6: one family. */
  family: 0 | 4 | 6
  /**
   * With both families asked: how long to wait for the second once the first has addresses.
   * Default DEFAULTS.dns.resolutionDelayMs.
   */
  resolutionDelayMs?: number | undefined
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
  return { address: isIP(address) === 6 ? ipv6Text(address) : address, port, label: text }
}

/**
 * The text the socket reports a sender's IPv6 address in (RFC 5952: lower case, the longest run
 * of zeros compressed), so that an answer from '0:0::1' is known to come from '::1'.
 */
function ipv6Text(address: string): string {
  // An IPv4 tail ('::ffff:10.0.0.2') is reported as written, a URL would rewrite it in hex; a
  // zone id ('fe80::1%eth0') is no URL host.
  if (address.includes('.') || address.includes('%')) return address
  return new URL(`http://[${address}]/`).hostname.slice(1, -1)
}

const MAX_CHAIN = 8

type RecordType = 'A' | 'AAAA'

interface Exchange {
  server: Server
  name: string
  type: RecordType
  id: number
  timeoutMs: number
  /** Absent: nothing cancels it but its own timeout. */
  signal: AbortSignal | undefined
}

// No regex: this runs on every name of every answer.
const canonical = (name: string) => {
  const lower = name.toLowerCase()
  return lower.endsWith('.') ? lower.slice(0, -1) : lower
}

function question(x: Exchange): Packet {
  return {
    type: 'query',
    id: x.id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: x.type, name: x.name, class: 'IN' }],
  }
}

/** Whether `response` answers our question; anything else is not ours to read. */
function answers(response: Packet, x: Exchange): boolean {
  const q = response.questions?.[0]
  return (
    response.type === 'response' &&
    response.id === x.id &&
    response.questions?.length === 1 &&
    q !== undefined &&
    q.type === x.type &&
    (q.class ?? 'IN') === 'IN' &&
    canonical(q.name) === x.name
  )
}

function rcodeError(rcode: string | undefined, x: Exchange): UplinkError | undefined {
  if (!rcode || rcode === 'NOERROR') return undefined
  const codes: Record<string, UplinkErrorCode> = {
    NXDOMAIN: 'DNS_NXDOMAIN',
    SERVFAIL: 'DNS_SERVFAIL',
    REFUSED: 'DNS_REFUSED',
  }
  // FORMERR, NOTIMP and the rest say the same as SERVFAIL: this server cannot help, another may.
  const code = codes[rcode] ?? 'DNS_SERVFAIL'
  return networkError(code, `${x.server.label} answered ${rcode} for ${x.name} ${x.type}`, {
    details: { rcode, server: x.server.label, name: x.name, type: x.type },
  })
}

/**
 * Runs one socket exchange to its single outcome. Every exit (answer, timeout, socket error,
 * abort) goes through `settle`, which closes the socket, so no path leaks one.
 */
function exchange<T>(
  x: Exchange,
  open: (settle: (err: unknown, value?: T) => void) => { close(): void },
  onTimeout: () => UplinkError,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const signal = x.signal
    if (signal?.aborted) return reject(signal.reason)
    let done = false
    let handle: { close(): void } | undefined
    const settle = (err: unknown, value?: T) => {
      if (done) return
      done = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      handle?.close()
      if (err !== undefined) reject(err)
      else resolve(value as T)
    }
    const onAbort = () => settle(signal?.reason)
    // Real time, not the injected Clock: this bounds a real socket, and a manual clock in tests
    // would otherwise leave the exchange hanging until someone advanced it.
    const timer = setTimeout(() => settle(onTimeout()), x.timeoutMs)
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      handle = open(settle)
      if (done) handle.close()
    } catch (err) {
      settle(networkError('DNS_TIMEOUT', `${x.server.label}: ${String(err)}`, { cause: err }))
    }
  })
}

/** One question over UDP; on a truncated answer, the same question over TCP. */
async function query(x: Exchange, sockets: UdpSockets): Promise<Packet> {
  let malformed = false
  const packet = await exchange<Packet>(
    x,
    (settle) => {
      const waiter: UdpWaiter = {
        answer: (message) => {
          let response: Packet
          try {
            response = dnsPacket.decode(message)
          } catch {
            malformed = true
            return
          }
          // A stray or forged datagram must not end the wait: the real answer may still come.
          if (!answers(response, x)) {
            malformed = true
            return
          }
          settle(undefined, response)
        },
        stray: () => {
          malformed = true
        },
        fail: (err) =>
          settle(networkError('DNS_TIMEOUT', `${x.server.label}: ${err.message}`, { cause: err })),
      }
      const channel = sockets.send(x.server, x.id, encodeQuery(x.id, x.name, x.type), waiter)
      return { close: () => channel.release(x.id, waiter) }
    },
    () =>
      malformed
        ? networkError(
            'DNS_MALFORMED',
            `${x.server.label} sent only malformed or mismatched answers for ${x.name} ${x.type}`,
            { details: { server: x.server.label, name: x.name, type: x.type } },
          )
        : networkError(
            'DNS_TIMEOUT',
            `${x.server.label} did not answer for ${x.name} ${x.type} in ${x.timeoutMs} ms`,
            { details: { server: x.server.label, name: x.name, type: x.type } },
          ),
  )
  if ((packet.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE) return queryTcp(x)
  return packet
}

function queryTcp(x: Exchange): Promise<Packet> {
  const label = `${x.server.label} (TCP)`
  return exchange<Packet>(
    x,
    (settle) => {
      const socket = net.connect({ host: x.server.address, port: x.server.port })
      let pending = Buffer.alloc(0)
      socket.on('error', (err) =>
        settle(networkError('DNS_TIMEOUT', `${label}: ${err.message}`, { cause: err })),
      )
      socket.on('close', () =>
        settle(networkError('DNS_MALFORMED', `${label} closed without an answer for ${x.name}`)),
      )
      socket.on('connect', () => socket.write(dnsPacket.streamEncode(question(x))))
      socket.on('data', (chunk) => {
        pending = Buffer.concat([pending, chunk])
        // Two-byte length framing (RFC 1035 4.2.2): wait for the whole message.
        if (pending.length < 2 || pending.length < 2 + pending.readUInt16BE(0)) return
        let response: Packet
        try {
          response = dnsPacket.streamDecode(pending)
        } catch {
          return settle(networkError('DNS_MALFORMED', `${label} sent a malformed answer`))
        }
        // On a stream there is no "keep waiting": the one answer we asked for was wrong.
        if (!answers(response, x)) {
          return settle(networkError('DNS_MALFORMED', `${label} answered another question`))
        }
        settle(undefined, response)
      })
      return { close: () => socket.destroy() }
    },
    () => networkError('DNS_TIMEOUT', `${label} did not answer for ${x.name} in ${x.timeoutMs} ms`),
  )
}

/**
 * Addresses at the end of the CNAME chain that starts at `name`. Records for other owners are
 * ignored: an answer may not smuggle in addresses for a name we did not ask about.
 */
function follow(
  records: Answer[],
  name: string,
  type: RecordType,
): { addresses: ResolvedAddress[]; ttl: number } {
  // OPT pseudo-records have no ttl or data; everything we read has both.
  const rows = records as Array<{ type: string; name: string; ttl?: number; data?: unknown }>
  let owner = name
  let ttl = Number.POSITIVE_INFINITY
  const seen = new Set<string>()
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    const cname = rows.find((r) => r.type === 'CNAME' && canonical(r.name) === owner)
    if (!cname || typeof cname.data !== 'string' || seen.has(owner)) break
    seen.add(owner)
    ttl = Math.min(ttl, cname.ttl ?? 0)
    owner = canonical(cname.data)
  }
  const addresses: ResolvedAddress[] = []
  for (const r of rows) {
    if (r.type !== type || canonical(r.name) !== owner || typeof r.data !== 'string') continue
    const family = isIP(r.data)
    if (family !== (type === 'A' ? 4 : 6)) continue
    addresses.push({ address: r.data, family, ttl: r.ttl ?? 0 })
    ttl = Math.min(ttl, r.ttl ?? 0)
  }
  return { addresses, ttl }
}

type Found = { family: 4 | 6; addresses: ResolvedAddress[]; ttl: number }
type Failed = { family: 4 | 6; error: UplinkError }
/** What one family's question to one server came to. */
type FamilyOutcome = Found | Failed

/** Answers that no other server (and no system lookup) should be asked to overrule. */
const FINAL: ReadonlySet<UplinkErrorCode> = new Set(['DNS_NXDOMAIN', 'DNS_NO_ADDRESS'])

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

function literal(host: string, address: string, family: 4 | 6): Resolution {
  return { host, addresses: [{ address, family, ttl: 0 }], ttl: 0, source: 'literal' }
}

/** The record types asked for each `family`: constants, shared by every resolver. */
const FAMILY_TYPES: Record<0 | 4 | 6, readonly RecordType[]> = {
  0: ['A', 'AAAA'],
  4: ['A'],
  6: ['AAAA'],
}

export function createResolver(input: ResolverOptions): Resolver {
  return new DnsResolver(resolveResolverOptions(input), input.random)
}

/** createResolver on sockets of its own (tests: a small budget, a manual clock). */
export function resolverOn(sockets: UdpSockets, input: ResolverOptions): Resolver {
  return new DnsResolver(resolveResolverOptions(input), input.random, sockets)
}

/**
 * A client's resolver: its dns options are validated, filled in and shared between clients
 * already (options.ts), so they are kept as they are, not copied once more per client. Its
 * transaction ids are always crypto-random: the client's `random` times its backoff, and draws
 * that an observer can time must not also be the ids that keep forged answers out.
 */
export function clientResolver(dns: ResolvedOptions['dns']): Resolver {
  return new DnsResolver(dns, undefined)
}

/**
 * A class, not a closure per step: a gateway may run one client (so one resolver) per device,
 * and a fleet-sized process thousands, where half a dozen closures and their context per
 * resolver were a measurable share of a device's memory.
 */
class DnsResolver implements Resolver {
  private readonly servers: Server[]
  private readonly types: readonly RecordType[]

  constructor(
    private readonly options: Readonly<ResolverOptions & { resolutionDelayMs: number }>,
    private readonly random: RandomSource | undefined,
    private readonly sockets: UdpSockets = processUdpSockets,
  ) {
    this.servers = (options.servers?.length ? options.servers : getServers()).map(parseDnsServer)
    this.types = FAMILY_TYPES[options.family]
  }

  private nextId(): number {
    const random = this.random
    return random ? Math.floor(random() * 0x10000) & 0xffff : randomInt(0x10000)
  }

  /** One family from one server, as an outcome: its failure is judged beside the other's. */
  private async askType(
    server: Server,
    name: string,
    type: RecordType,
    signal: AbortSignal | undefined,
  ): Promise<FamilyOutcome> {
    const family = type === 'A' ? 4 : 6
    const x = { server, name, type, id: this.nextId(), timeoutMs: this.options.timeoutMs, signal }
    try {
      const packet = await query(x, this.sockets)
      const err = rcodeError((packet as { rcode?: string }).rcode, x)
      if (err) return { family, error: err }
      return { family, ...follow(packet.answers ?? [], name, type) }
    } catch (err) {
      // Never a rejection, even on the caller's abort: `ask` checks the caller's signal itself,
      // so the abort that ends a resolution delay is this family's outcome, not the whole's.
      return { family, error: toUplinkError(err, 'DNS_TIMEOUT', `${server.label} ${name} ${type}`) }
    }
  }

  /**
   * Both families from one server, each judged on its own (RFC 8305 section 3): once one has
   * answered with addresses, the other gets `resolutionDelayMs` more, not the whole query
   * timeout, so a server that never answers AAAA costs a device 50 ms, not 2 s per connect.
   */
  private askBoth(server: Server, name: string, signal?: AbortSignal): Promise<FamilyOutcome[]> {
    const { types } = this
    const { resolutionDelayMs } = this.options
    return new Promise((resolve) => {
      const local = new AbortController()
      const onAbort = () => local.abort(signal?.reason)
      signal?.addEventListener('abort', onAbort, { once: true })
      const outcomes: FamilyOutcome[] = []
      let timer: ReturnType<typeof setTimeout> | undefined
      const settle = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        resolve(outcomes.sort((a, b) => a.family - b.family))
      }
      for (const type of types) {
        this.askType(server, name, type, local.signal).then((outcome) => {
          outcomes.push(outcome)
          if (outcomes.length === types.length) return settle()
          if (timer !== undefined || !('addresses' in outcome) || !outcome.addresses.length) return
          const other = type === 'A' ? 'AAAA' : 'A'
          // Real time, like the query timeout it cuts short: it bounds a real socket exchange.
          timer = setTimeout(() => {
            local.abort(
              networkError(
                'DNS_TIMEOUT',
                `${server.label} did not answer ${name} ${other} within ${resolutionDelayMs} ms of the ${type} answer`,
                {
                  details: {
                    server: server.label,
                    name,
                    type: other,
                    resolutionDelayMs: resolutionDelayMs,
                  },
                },
              ),
            )
          }, resolutionDelayMs)
        })
      }
    })
  }

  /**
   * Every asked family from one server. Addresses of any family make an answer; a family that
   * failed beside them is reported as `partial` and the server is not counted as failed. Only
   * when no family yields an address does the server fail (or, for NXDOMAIN, the name).
   */
  private async ask(server: Server, name: string, signal?: AbortSignal): Promise<Resolution> {
    const { types } = this
    // Asking one family, the caller's signal is enough: a reconnect storm builds no signal per
    // resolve (building one showed up in the fleet benchmark's profile).
    const outcomes =
      types.length > 1
        ? await this.askBoth(server, name, signal)
        : [await this.askType(server, name, types[0] as RecordType, signal)]
    if (signal?.aborted) throw signal.reason
    const found = outcomes.filter((o): o is Found => 'addresses' in o && o.addresses.length > 0)
    const failed = outcomes.filter((o): o is Failed => 'error' in o)
    if (found.length === 0) {
      // NXDOMAIN is about the name, whichever family said it: final.
      const error = failed.find((f) => f.error.code === 'DNS_NXDOMAIN') ?? failed[0]
      if (error) throw error.error
      throw networkError('DNS_NO_ADDRESS', `${name} has no ${types.join(' or ')} record`, {
        details: { server: server.label, name, types: [...types] },
      })
    }
    const partial = failed[0]
    return {
      host: name,
      addresses: found.flatMap((r) => r.addresses),
      ttl: Math.min(...found.map((r) => r.ttl)),
      source: 'dns',
      server: server.label,
      ...(partial ? { partial: { family: partial.family, error: partial.error } } : {}),
    }
  }

  private async system(
    host: string,
    reason: UplinkError,
    signal?: AbortSignal,
  ): Promise<Resolution> {
    let found: Array<{ address: string; family: number }>
    try {
      found = await abortable(
        systemDns.lookup(host, { all: true, family: this.options.family, verbatim: true }),
        signal,
      )
    } catch {
      if (signal?.aborted) throw signal.reason
      // The DNS failure is the one worth reporting: the lookup was only a second chance.
      throw reason
    }
    return {
      host,
      addresses: found.map((f) => ({ address: f.address, family: f.family as 4 | 6, ttl: 0 })),
      ttl: 0,
      source: 'system',
      fallbackReason: networkError(
        'DNS_FALLBACK',
        `no DNS server answered for ${host} (${reason.message}); used the system's lookup`,
        { cause: reason, details: { cause: reason.code } },
      ),
    }
  }

  async resolve(host: string, signal?: AbortSignal): Promise<Resolution> {
    if (signal?.aborted) throw signal.reason
    const name = canonical(host)
    const bare = name.replace(/^\[(.*)\]$/, '$1')
    const family = isIP(bare)
    if (family === 4 || family === 6) return literal(host, bare, family)
    // RFC 6761: localhost never goes to DNS, and a device must reach its own broker offline.
    if (name === 'localhost') return literal(host, '127.0.0.1', 4)
    // One round asks every server in turn; `attempts` rounds follow each other at once.
    const round = async (): Promise<Resolution> => {
      // Built only when needed: this runs on every connect.
      let last: UplinkError | undefined
      for (const server of this.servers) {
        try {
          return { ...(await this.ask(server, name, signal)), host }
        } catch (err) {
          if (signal?.aborted) throw signal.reason
          if (!(err instanceof UplinkError)) throw err
          // Authoritative: asking elsewhere, or the system's cache, would only hide it.
          if (FINAL.has(err.code)) throw err
          last = err
        }
      }
      throw last ?? networkError('DNS_TIMEOUT', `no DNS server configured to resolve ${host}`)
    }
    const { options } = this
    const final = (err: unknown) => !(err instanceof UplinkError) || FINAL.has(err.code)
    try {
      return await retry(round, {
        retries: options.attempts - 1,
        // No wait between rounds, so no timer: the clock is never asked.
        clock: systemClock,
        signal,
        shouldRetry: (err) => !final(err),
      })
    } catch (err) {
      if (signal?.aborted || final(err) || !options.systemFallback) throw err
      return this.system(host, err as UplinkError, signal)
    }
  }
}

import dgram from 'node:dgram'
import { isIP } from 'node:net'
import { type Clock, systemClock } from './clock.js'
import { DEFAULTS } from './options.js'

/**
 * The UDP sockets the resolver asks through. Opening, binding and closing a socket for every
 * question was the largest share of a reconnecting fleet's DNS cost (the storm bench's profile:
 * `createSocket`, `bind`, `close` and their ticks, well over the cost of the queries' own sends),
 * where MQTT.js's c-ares keeps one socket per resolver open. So a socket to a server is shared by
 * every resolver in the process and by concurrent questions, and bounded in two ways, after
 * c-ares' ARES_OPT_UDP_MAX_QUERIES: it serves at most `maxQueries` questions, and it closes once
 * it has had nothing to wait for during `idleMs`; the next question then opens a fresh socket on
 * a fresh random port. A device asking once per connect attempt still gets a new port almost
 * every time; only a busy process (a gateway's fleet in a storm) reuses one, and then for a
 * bounded number of questions.
 *
 * What still stands between an off-path forger and a resolver: the datagram must come from the
 * server's address and port, carry the id of a question waiting on this socket (ids are random
 * and never reused on one socket, so a late answer to a question that gave up cannot pass for a
 * new question's), and answer that question exactly (dns.ts checks the question it echoes). A
 * shared port is known for longer than a one-shot one, which is what the two bounds are for.
 */

export interface UdpServer {
  address: string
  port: number
}

/** One question waiting on a socket. */
export interface UdpWaiter {
  /** A datagram from the server carrying this waiter's id: dns.ts reads and judges it. */
  answer(message: Buffer): void
  /**
   * A datagram from the server that is nobody's answer (unreadable, or an id never asked on
   * this socket): the server sent something else than an answer, which the waiter reports if
   * no answer comes.
   */
  stray(): void
  /** The socket failed: the question cannot be answered on it. */
  fail(err: Error): void
}

export interface UdpSocketsOptions {
  maxQueries: number
  idleMs: number
  clock: Clock
}

/** The socket a question was sent on, to give its place up when it settles. */
export interface UdpChannel {
  release(id: number, waiter: UdpWaiter): void
}

// An IP literal needs no lookup: answering at once spares a tick per send, and dgram's default
// lookup (dns.lookup) is only a detour for literals.
type LookupCallback = (err: Error | null, address: string, family: number) => void
function literalLookup(address: string, _options: unknown, callback: LookupCallback): void {
  callback(null, address, isIP(address))
}

class Channel implements UdpChannel {
  private readonly socket: dgram.Socket
  /** Every id asked on this socket (at most maxQueries): a late answer is known for one. */
  private readonly asked = new Set<number>()
  private readonly waiting = new Map<number, UdpWaiter>()
  private idleTimer: unknown
  private closed = false

  constructor(
    private readonly pool: UdpSockets,
    private readonly key: string,
    private readonly server: UdpServer,
  ) {
    const type = isIP(server.address) === 6 ? 'udp6' : 'udp4'
    this.socket = dgram.createSocket({ type, lookup: literalLookup as never })
    this.socket.on('message', (message, rinfo) => this.onMessage(message, rinfo))
    this.socket.on('error', (err) => this.onError(err))
    // A socket left idle must not hold the process open: a question waiting on it is held open
    // by its own timeout.
    this.socket.unref()
  }

  /** Whether the question `id` may be asked here: an id not asked on it before. A socket whose
   * budget is spent is no longer current (send retires it), so it is never asked. */
  accepts(id: number): boolean {
    return !this.closed && !this.asked.has(id)
  }

  send(id: number, packet: Buffer, waiter: UdpWaiter): UdpChannel {
    this.asked.add(id)
    this.waiting.set(id, waiter)
    // The budget spent, the next question goes to a fresh socket; this one closes when its
    // last question is done.
    if (this.asked.size >= this.pool.options.maxQueries) this.pool.retire(this.key, this)
    const { server } = this
    this.socket.send(packet, server.port, server.address, (err) => {
      if (err && this.waiting.get(id) === waiter) waiter.fail(err)
    })
    return this
  }

  release(id: number, waiter: UdpWaiter): void {
    if (this.waiting.get(id) !== waiter) return
    this.waiting.delete(id)
    if (this.waiting.size > 0 || this.closed) return
    if (!this.pool.isCurrent(this.key, this)) return this.close()
    // Checked when it fires, not rearmed on every question: a busy socket costs no timer churn.
    if (this.idleTimer === undefined) this.armIdle()
  }

  private armIdle(): void {
    this.idleTimer = this.pool.options.clock.setTimeout(() => {
      this.idleTimer = undefined
      if (this.waiting.size === 0) this.close()
    }, this.pool.options.idleMs)
  }

  private onMessage(message: Buffer, rinfo: dgram.RemoteInfo): void {
    // Only the server asked may answer: anything else is not even a stray from it.
    if (rinfo.port !== this.server.port || rinfo.address !== this.server.address) return
    const id = message.length >= 2 ? message.readUInt16BE(0) : -1
    const waiter = this.waiting.get(id)
    if (waiter) return waiter.answer(message)
    // A late answer to a question that gave up (timeout, abort) is nobody's business.
    if (this.asked.has(id)) return
    for (const w of this.waiting.values()) w.stray()
  }

  private onError(err: Error): void {
    const waiters = [...this.waiting.values()]
    this.close()
    for (const w of waiters) w.fail(err)
  }

  private close(): void {
    if (this.closed) return
    this.closed = true
    this.pool.retire(this.key, this)
    this.waiting.clear()
    if (this.idleTimer !== undefined) this.pool.options.clock.clearTimeout(this.idleTimer)
    this.idleTimer = undefined
    try {
      this.socket.close()
    } catch {
      // Already closed by a failed bind: nothing left to release.
    }
  }

  /** For tests: whether the socket is still open. */
  get open(): boolean {
    return !this.closed
  }
}

/** The sockets of one process (or of one test), one current socket per server. */
export class UdpSockets {
  private readonly current = new Map<string, Channel>()

  constructor(readonly options: UdpSocketsOptions) {}

  /** Sends the question `id` to `server`; `waiter` hears what comes back until it releases. */
  send(server: UdpServer, id: number, packet: Buffer, waiter: UdpWaiter): UdpChannel {
    const key = `${server.address} ${server.port}`
    let channel = this.current.get(key)
    if (!channel?.accepts(id)) {
      // A spent budget or an id already asked here: a fresh socket, rather than a reused id.
      if (channel) this.retire(key, channel)
      channel = new Channel(this, key, server)
      this.current.set(key, channel)
    }
    return channel.send(id, packet, waiter)
  }

  /** `channel` takes no new questions; it closes once its last one is done. */
  retire(key: string, channel: Channel): void {
    if (this.current.get(key) === channel) this.current.delete(key)
  }

  isCurrent(key: string, channel: Channel): boolean {
    return this.current.get(key) === channel
  }

  /** Open sockets taking new questions, for tests. */
  get size(): number {
    return this.current.size
  }
}

/** The process's sockets, shared by every resolver in it. */
export const processUdpSockets = new UdpSockets({ ...DEFAULTS.dnsSocket, clock: systemClock })

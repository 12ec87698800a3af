import net from 'node:net'
import { assertLoopback, listen } from './loopback.js'

/**
 * pass: bytes flow (after `latencyMs`). blackhole: sockets stay open and bytes vanish both ways,
 * like a NAT entry that expired or a route that went dark: no FIN, no RST, only silence.
 * reset: every socket is destroyed with a TCP RST, and new ones are reset on arrival.
 */
export type FaultMode = 'pass' | 'blackhole' | 'reset'

export interface ProxyTarget {
  host: string
  port: number
}

export interface TestFaultProxy {
  host: string
  port: number
  /** URL of the proxy for a client (`mqtt://127.0.0.1:port` by default). */
  url(scheme?: string): string
  readonly mode: FaultMode
  setMode(mode: FaultMode): void
  /** Delay added to every chunk, each direction; order is kept. */
  setLatency(ms: number): void
  /** Where new connections go (existing ones keep their upstream). */
  setTarget(target: ProxyTarget): void
  /** Client connections open right now. */
  readonly connectionCount: number
  /** Client connections accepted since start. */
  readonly acceptedCount: number
  stop(): Promise<void>
}

interface Pair {
  client: net.Socket
  upstream?: net.Socket
  /** Once blackholed, a pair never carries bytes again: its stream has lost data mid-flight. */
  dark: boolean
}

function hardClose(socket: net.Socket | undefined): void {
  if (!socket || socket.destroyed) return
  // resetAndDestroy sends RST, which is what a crashed middlebox or peer looks like.
  if (typeof socket.resetAndDestroy === 'function' && socket.readyState !== 'opening') {
    socket.resetAndDestroy()
  } else socket.destroy()
}

export async function startFaultProxy(
  target: ProxyTarget,
  options: { host?: string } = {},
): Promise<TestFaultProxy> {
  const host = options.host ?? '127.0.0.1'
  assertLoopback(host)
  assertLoopback(target.host)
  let upstreamTarget = { ...target }
  let mode: FaultMode = 'pass'
  let latencyMs = 0
  let accepted = 0
  const pairs = new Set<Pair>()
  // A dark pair's upstream outlives its client (the far side never learns), so stop() needs them.
  const upstreams = new Set<net.Socket>()

  const forward = (pair: Pair, from: net.Socket, to: () => net.Socket | undefined) => {
    from.on('data', (chunk: Buffer) => {
      if (pair.dark) return
      const send = () => {
        const dest = to()
        if (!pair.dark && dest && !dest.destroyed) dest.write(chunk)
      }
      // setTimeout with equal delays fires in insertion order, so order is kept per direction.
      if (latencyMs > 0) setTimeout(send, latencyMs)
      else send()
    })
  }

  const server = net.createServer((client) => {
    accepted++
    client.on('error', () => {})
    if (mode === 'reset') {
      hardClose(client)
      return
    }
    const pair: Pair = { client, dark: mode === 'blackhole' }
    pairs.add(pair)
    client.on('close', () => {
      pairs.delete(pair)
      if (!pair.dark) pair.upstream?.destroy()
    })
    if (pair.dark) return
    // Bytes that arrive before the upstream connects are buffered by the upstream socket.
    const upstream = net.connect(upstreamTarget)
    pair.upstream = upstream
    upstreams.add(upstream)
    upstream.on('error', () => {})
    upstream.on('close', () => {
      upstreams.delete(upstream)
      if (!pair.dark) client.destroy()
    })
    forward(pair, client, () => pair.upstream)
    forward(pair, upstream, () => pair.client)
  })
  server.on('error', () => {})
  const port = await listen(server, host)
  const urlHost = host.includes(':') ? `[${host}]` : host

  return {
    host,
    port,
    url: (scheme = 'mqtt') => `${scheme}://${urlHost}:${port}`,
    get mode() {
      return mode
    },
    setMode(next) {
      mode = next
      for (const pair of pairs) {
        if (next === 'blackhole') pair.dark = true
        if (next === 'reset') {
          pair.dark = true
          hardClose(pair.client)
          hardClose(pair.upstream)
        }
      }
    },
    setLatency(ms) {
      latencyMs = ms
    },
    setTarget(next) {
      assertLoopback(next.host)
      upstreamTarget = { ...next }
    },
    get connectionCount() {
      return pairs.size
    },
    get acceptedCount() {
      return accepted
    },
    async stop() {
      const closed = new Promise<void>((r) => server.close(() => r()))
      for (const pair of pairs) pair.client.destroy()
      for (const upstream of upstreams) upstream.destroy()
      await closed
    },
  }
}

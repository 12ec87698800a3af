import net from 'node:net'
import { Worker } from 'node:worker_threads'
import { assertLoopback } from './loopback.js'

/**
 * A listener whose TCP handshake never completes: what a client sees of an address that routes
 * nowhere (a dark IPv6 route, a dead node in a multi-A record), made on loopback. The listening
 * socket lives in a worker thread whose event loop is blocked, so nothing is ever accepted; its
 * accept queue (backlog 1) is filled by connections held here, and then Linux drops every
 * further SYN (net.ipv4.tcp_abort_on_overflow 0, the default): a connect just hangs.
 */
export interface StalledListener {
  host: string
  port: number
  /** Releases the held connections and the worker. */
  stop(): Promise<void>
}

// CommonJS, as an eval'd worker is. Atomics.wait blocks the thread without burning CPU, and the
// bound ends it even if nobody calls stop().
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const net = require('node:net')
const server = net.createServer()
server.on('error', (err) => parentPort.postMessage({ error: err.code || String(err) }))
server.listen({ host: workerData.host, port: workerData.port, backlog: 1 }, () => {
  parentPort.postMessage({ port: server.address().port })
  Atomics.wait(new Int32Array(workerData.flag), 0, 0, workerData.maxMs)
  server.close()
})
`

/** How long a held connection may take before it counts as hanging: loopback takes < 1 ms. */
const HANG_MS = 500

/** Whether a connect to host:port hangs; the socket is returned either way, to be held. */
function hangs(host: string, port: number): Promise<{ socket: net.Socket; hung: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port })
    const timer = setTimeout(() => resolve({ socket, hung: true }), HANG_MS)
    const answered = () => {
      clearTimeout(timer)
      resolve({ socket, hung: false })
    }
    // A reset is an answer too: not the hang this listener is for.
    socket.on('error', answered)
    socket.once('connect', answered)
  })
}

export async function startStalledListener(
  options: { host?: string; port?: number; maxMs?: number } = {},
): Promise<StalledListener> {
  const host = options.host ?? '127.0.0.1'
  assertLoopback(host)
  const flag = new SharedArrayBuffer(4)
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { host, port: options.port ?? 0, flag, maxMs: options.maxMs ?? 120_000 },
  })
  const held: net.Socket[] = []
  const stop = async () => {
    for (const s of held) s.destroy()
    Atomics.store(new Int32Array(flag), 0, 1)
    Atomics.notify(new Int32Array(flag), 0)
    await worker.terminate()
  }
  const started = await new Promise<{ port?: number; error?: string }>((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  if (started.port === undefined) {
    await stop()
    throw Object.assign(new Error(`stalled listener on ${host}: ${started.error}`), {
      code: started.error,
    })
  }
  const port = started.port
  // Fill the accept queue until a connect hangs; bounded, as a kernel that resets instead of
  // dropping would never hang and must fail loudly rather than loop.
  for (let i = 0; i < 16; i++) {
    const { socket, hung } = await hangs(host, port)
    held.push(socket)
    if (hung) return { host, port, stop }
  }
  await stop()
  throw new Error(`the accept queue of ${host}:${port} never filled: SYNs are not being dropped`)
}

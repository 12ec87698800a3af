import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import net from 'node:net'
import { assertLoopback } from './loopback.js'

/**
 * A listener whose TCP handshake never completes: what a client sees of an address that routes
 * nowhere (a dark IPv6 route, a dead node in a multi-A record), made on loopback. The listening
 * socket belongs to a small Python process that never calls accept(), so its accept queue
 * (backlog 0: one connection) is filled by connections held here, and then Linux drops every
 * further SYN (net.ipv4.tcp_abort_on_overflow 0, the default): a connect just hangs. A process
 * of its own, not a thread of ours: Bun's sockets accept natively even while a JS thread is
 * blocked, so a blocked worker stalled nothing there.
 */
export interface StalledListener {
  host: string
  port: number
  /** Releases the held connections and the worker. */
  stop(): Promise<void>
}

// Listens, says its port, then sleeps until its input closes (stop(), or this process dying)
// or the bound runs out, whichever is first.
const LISTENER = `
import select, socket, sys
host, port, max_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((host, port))
except OSError as e:
    print('error', e.errno, flush=True)
    sys.exit(1)
s.listen(0)
print('port', s.getsockname()[1], flush=True)
select.select([sys.stdin], [], [], max_s)
`
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'

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
  const maxMs = options.maxMs ?? 120_000
  const child = spawn(
    PYTHON,
    ['-c', LISTENER, host, String(options.port ?? 0), `${maxMs / 1000}`],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  )
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const held: net.Socket[] = []
  const stop = async () => {
    for (const s of held) s.destroy()
    child.stdin?.end()
    if (child.exitCode === null && child.signalCode === null) await exited
  }
  const started = await new Promise<{ port?: number; error?: string }>((resolve, reject) => {
    let out = ''
    child.stdout?.on('data', (chunk) => {
      out += chunk
      const line = /^(port|error) (\d+)\n/.exec(out)
      if (line?.[1] === 'port') resolve({ port: Number(line[2]) })
      else if (line) resolve({ error: line[2] === '98' ? 'EADDRINUSE' : `errno ${line[2]}` })
    })
    child.once('error', reject)
    child.once('exit', (code) => resolve({ error: `listener exited (${code})` }))
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

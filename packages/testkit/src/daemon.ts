import { type ChildProcess, spawn } from 'node:child_process'
import { freePort } from './loopback.js'

/** A third-party server run as a child process of the test. */
export interface Daemon {
  readonly pid: number | undefined
  readonly running: boolean
  /** The last few KiB the process wrote to stdout and stderr, for error messages. */
  output(): string
  signal(signal: NodeJS.Signals): void
  /** Sends `signal` (SIGTERM by default), escalates to SIGKILL after 5 s, waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>
}

export interface DaemonSpec {
  name: string
  binary: string
  args: string[]
  env?: NodeJS.ProcessEnv
  cwd?: string
  /** Signal the whole process group: for servers started by a shell script that forks the
   * real server (RabbitMQ's script and Erlang's VM). */
  group?: boolean
  /** Resolves true once the server serves; polled until `readyTimeoutMs`. */
  ready: () => Promise<boolean>
  readyTimeoutMs?: number
}

const OUTPUT_BYTES = 8192
const STOP_GRACE_MS = 5_000

/** Whether a failed start looks like a port taken by someone else between pick and bind. */
export function isPortRace(err: unknown): boolean {
  return /in use|EADDRINUSE|could not bind|bind\(\) to .* failed|can't bind/i.test(String(err))
}

/** Spawns a server and waits until `ready()`; throws with its output if it exits or stalls. */
export async function spawnDaemon(spec: DaemonSpec): Promise<Daemon> {
  const child: ChildProcess = spawn(spec.binary, spec.args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: spec.env ?? process.env,
    cwd: spec.cwd,
    detached: spec.group ?? false,
  })
  const kill = (signal: NodeJS.Signals) => {
    try {
      if (spec.group && child.pid) process.kill(-child.pid, signal)
      else child.kill(signal)
    } catch {}
  }
  let output = ''
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-OUTPUT_BYTES)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  let exited = false
  const exit = new Promise<void>((resolve) => {
    child.on('exit', () => {
      exited = true
      resolve()
    })
    child.on('error', (err) => {
      keep(Buffer.from(String(err)))
      exited = true
      resolve()
    })
  })
  const daemon: Daemon = {
    get pid() {
      return child.pid
    },
    get running() {
      return !exited
    },
    output: () => output,
    signal(signal) {
      if (!exited) kill(signal)
    },
    async stop(signal = 'SIGTERM') {
      if (exited) return
      kill(signal)
      const timer = setTimeout(() => kill('SIGKILL'), STOP_GRACE_MS)
      await exit
      clearTimeout(timer)
    },
  }
  const timeoutMs = spec.readyTimeoutMs ?? 10_000
  const deadline = Date.now() + timeoutMs
  while (!exited) {
    if (await spec.ready().catch(() => false)) return daemon
    if (Date.now() > deadline) {
      await daemon.stop('SIGKILL')
      throw new Error(`${spec.name} did not serve within ${timeoutMs} ms: ${output.trim()}`)
    }
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`${spec.name} exited at start: ${output.trim()}`)
}

/**
 * Runs `start` with `count` ports the OS picked on `host`; when a port was taken by someone else
 * before the server bound it, again with fresh ports (at most `attempts` times).
 */
export async function withFreePorts<T>(
  host: string,
  count: number,
  start: (ports: number[]) => Promise<T>,
  attempts = 5,
): Promise<T> {
  let last: unknown
  for (let attempt = 0; attempt < attempts; attempt++) {
    const ports: number[] = []
    while (ports.length < count) {
      const port = await freePort(host)
      if (!ports.includes(port)) ports.push(port)
    }
    try {
      return await start(ports)
    } catch (err) {
      if (!isPortRace(err)) throw err
      last = err
    }
  }
  throw last
}

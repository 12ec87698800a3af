/**
 * Child processes for the storm: each one is a TypeScript file run through tsx with the
 * `uplink-source` condition (so the workspace packages load from source, no build needed), and
 * spoken to over Node's IPC channel with structured clone ('advanced' serialization).
 */
import { type ChildProcess, fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

const require = createRequire(import.meta.url)

/** execArgv that lets a forked child run .ts files and resolve @uplink/* to their sources. */
export function tsExecArgv(extra: string[] = []): string[] {
  const loader = pathToFileURL(require.resolve('tsx')).href
  return ['--import', loader, '--conditions=uplink-source', ...extra]
}

export interface Child {
  name: string
  process: ChildProcess
  /** Sends a message and waits for the child's reply with the same `id` (bounded). */
  request<T = Record<string, unknown>>(
    message: Record<string, unknown>,
    timeoutMs?: number,
  ): Promise<T>
  send(message: Record<string, unknown>): void
  /** Calls `fn` for every unsolicited message (ticks, events). */
  onMessage(fn: (message: Record<string, unknown>) => void): void
  readonly exited: Promise<number | null>
  readonly alive: boolean
}

let nextId = 1

export interface ForkOptions {
  /** Expose `gc()`, for memory samples after a full collection. */
  gc?: boolean
  /** More Node flags for the child (V8's heap sizes, say). */
  execArgv?: string[]
  /**
   * The workspace's packages compiled as their build compiles them, not as tsx does
   * (as-built-hooks.mjs): for the processes whose cost of running them is measured.
   */
  asBuilt?: boolean
}

export function forkChild(file: string, name: string, options: ForkOptions = {}): Child {
  const extra = [
    ...(options.gc ? ['--expose-gc'] : []),
    ...(options.asBuilt ? ['--import', new URL('./as-built.mjs', import.meta.url).href] : []),
    ...(options.execArgv ?? []),
  ]
  // STORM_CPU_PROF=<dir>: a V8 CPU profile of every child, for finding where the time goes.
  const profileDir = process.env.STORM_CPU_PROF
  if (profileDir) extra.push('--cpu-prof', `--cpu-prof-dir=${profileDir}/${name}`)
  const child = fork(file, [], {
    execArgv: tsExecArgv(extra),
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const waiting = new Map<number, { resolve: (m: unknown) => void; reject: (e: Error) => void }>()
  const listeners: Array<(m: Record<string, unknown>) => void> = []
  let alive = true
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code, signal) => {
      alive = false
      for (const w of waiting.values())
        w.reject(new Error(`${name} exited (${code ?? signal}) before answering`))
      waiting.clear()
      resolve(code)
    })
  })
  child.on('error', () => {})
  child.on('message', (raw) => {
    const message = raw as Record<string, unknown>
    if (typeof message.replyTo === 'number') {
      const w = waiting.get(message.replyTo)
      waiting.delete(message.replyTo)
      if (!w) return
      if (typeof message.error === 'string') w.reject(new Error(`${name}: ${message.error}`))
      else w.resolve(message)
      return
    }
    for (const fn of listeners) fn(message)
  })
  return {
    name,
    process: child,
    request<T>(message: Record<string, unknown>, timeoutMs = 60_000): Promise<T> {
      const id = nextId++
      return new Promise<T>((resolve, reject) => {
        if (!alive) return reject(new Error(`${name} is not running`))
        const timer = setTimeout(() => {
          waiting.delete(id)
          reject(new Error(`${name} did not answer ${String(message.type)} within ${timeoutMs} ms`))
        }, timeoutMs)
        waiting.set(id, {
          resolve: (m) => {
            clearTimeout(timer)
            resolve(m as T)
          },
          reject: (e) => {
            clearTimeout(timer)
            reject(e)
          },
        })
        child.send({ ...message, id })
      })
    },
    send(message) {
      if (alive && child.connected) child.send(message)
    },
    onMessage(fn) {
      listeners.push(fn)
    },
    exited,
    get alive() {
      return alive
    },
  }
}

/** Ends a child: politely over IPC first, then SIGKILL after `graceMs`. */
export async function endChild(child: Child, graceMs = 5_000): Promise<void> {
  if (!child.alive) return
  child.send({ type: 'exit' })
  const timer = setTimeout(() => child.process.kill('SIGKILL'), graceMs)
  await child.exited
  clearTimeout(timer)
}

/**
 * The child side: answers requests with `handle`, which returns the reply's fields (or throws).
 * `{ type: 'exit' }` ends the process.
 */
export function serve(
  handle: (
    message: Record<string, unknown>,
  ) => Promise<Record<string, unknown>> | Record<string, unknown>,
  onExit: () => Promise<void> | void = () => {},
): void {
  process.on('message', (raw) => {
    const message = raw as Record<string, unknown>
    if (message.type === 'exit') {
      void Promise.resolve()
        .then(onExit)
        .finally(() => process.exit(0))
      return
    }
    const id = message.id
    Promise.resolve()
      .then(() => handle(message))
      .then(
        (reply) => process.send?.({ ...reply, replyTo: id }),
        (err: unknown) =>
          process.send?.({ replyTo: id, error: err instanceof Error ? err.message : String(err) }),
      )
  })
  // The parent is gone: nothing to report to, so do not linger.
  process.on('disconnect', () => process.exit(0))
}

/** Reports unsolicited data (ticks) to the parent. */
export function report(message: Record<string, unknown>): void {
  if (process.connected) process.send?.(message)
}

/** CPU seconds this process has used so far (user + system). */
export function cpuSeconds(): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/** The soft limit on open files (Linux /proc), or a conservative guess elsewhere. */
export function openFileLimit(): number {
  try {
    const text = readFileSync('/proc/self/limits', 'utf8')
    const line = text.split('\n').find((l) => l.startsWith('Max open files'))
    const soft = line ? Number(line.split(/\s{2,}/)[1]) : Number.NaN
    if (Number.isFinite(soft) && soft > 0) return soft
  } catch {}
  return 1024
}

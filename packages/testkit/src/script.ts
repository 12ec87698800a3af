import { type ChildProcess, spawn } from 'node:child_process'
import { basename } from 'node:path'

export interface ScriptProcess extends ChildProcess {
  /** Every complete line the script wrote to stdout, in order. */
  lines: string[]
  /**
   * Resolves with the exit code once the process has exited and its stdout is drained ('close',
   * not 'exit': lines a killed script wrote just before dying may still be in the pipe).
   */
  closed: Promise<number | null>
}

/**
 * Runs a TypeScript file in a second process of this runtime, with the workspace packages taken
 * from source: on Bun directly, on Node with tsx loaded in that same process (not the tsx CLI,
 * which forks a second process that a SIGKILL to the first would leave running). `cwd` must be
 * where `tsx` resolves from on Node (the repository root). `runtime` runs it on another
 * executable (a Bun binary from a Node test, say); `env` replaces the environment.
 */
export function runScript(
  file: string,
  args: string[] = [],
  options: { cwd?: string; runtime?: string; env?: NodeJS.ProcessEnv } = {},
): ScriptProcess {
  const runtime = options.runtime ?? process.execPath
  const bun = options.runtime ? basename(runtime).startsWith('bun') : Boolean(process.versions.bun)
  const loader = bun ? [] : ['--import', 'tsx']
  const child = spawn(runtime, [...loader, '--conditions=uplink-source', file, ...args], {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'inherit'],
  }) as ScriptProcess
  child.lines = []
  let rest = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    const parts = (rest + chunk.toString()).split('\n')
    rest = parts.pop() ?? ''
    child.lines.push(...parts)
  })
  child.closed = new Promise((resolve) => child.once('close', (code) => resolve(code)))
  return child
}

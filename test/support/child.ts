import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/**
 * Runs a fixture in one Node process with tsx loaded in it (not the tsx CLI, which forks a second
 * process that a SIGKILL to the first would leave running), packages taken from source.
 */
export function runFixture(name: string, args: string[]): ChildProcess & { lines: string[] } {
  const file = fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=uplink-source', file, ...args],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  ) as ChildProcess & { lines: string[] }
  child.lines = []
  let rest = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    const text = rest + chunk.toString()
    const parts = text.split('\n')
    rest = parts.pop() ?? ''
    child.lines.push(...parts)
  })
  return child
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)))
}

import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export type Fixture = ChildProcess & { lines: string[]; closed: Promise<number | null> }

/**
 * Runs a fixture in one Node process with tsx loaded in it (not the tsx CLI, which forks a second
 * process that a SIGKILL to the first would leave running), packages taken from source.
 */
export function runFixture(name: string, args: string[]): Fixture {
  const file = fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=uplink-source', file, ...args],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  ) as Fixture
  child.lines = []
  let rest = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    const parts = (rest + chunk.toString()).split('\n')
    rest = parts.pop() ?? ''
    child.lines.push(...parts)
  })
  // 'close', not 'exit': lines a killed child wrote before it died may still be in the pipe when
  // 'exit' fires, and every line counts (each one is a promise the test holds the outbox to).
  child.closed = new Promise((resolve) => child.once('close', (code) => resolve(code)))
  return child
}

export function exited(child: Fixture): Promise<number | null> {
  return child.closed
}

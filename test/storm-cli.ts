/** Runs `pnpm bench:storm`'s entry point in its own process, as a user (or a pod) would. */
import { spawn } from 'node:child_process'
import { tsExecArgv } from '../bench/storm/proc.js'

/** Resolves with its exit code and its output (stdout and stderr); killed after `timeoutMs`. */
export function storm(
  args: string[],
  timeoutMs = 45_000,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...tsExecArgv(), 'bench/storm/main.ts', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    const add = (d: Buffer) => {
      out += d
    }
    child.stdout.on('data', add)
    child.stderr.on('data', add)
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out })
    })
  })
}

import { fileURLToPath } from 'node:url'
import { runScript, type ScriptProcess } from '@uplink/testkit'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** Runs `test/fixtures/<name>` in a child process (see runScript). */
export function runFixture(name: string, args: string[]): ScriptProcess {
  return runScript(fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url)), args, {
    cwd: ROOT,
  })
}

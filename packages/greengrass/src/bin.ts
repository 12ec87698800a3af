#!/usr/bin/env node
import { GreengrassRunner } from './runner.js'

/**
 * `uplink-greengrass --work <folder>`: the component's Run step. The nucleus sends SIGTERM and
 * waits 5 s before SIGKILL: stop() finishes within that, and a hard cap below it exits anyway.
 */
const HARD_STOP_MS = 4_500

function workPath(argv: string[]): string {
  const i = argv.indexOf('--work')
  const path = i >= 0 ? argv[i + 1] : process.env.UPLINK_WORK_PATH
  if (!path) {
    process.stderr.write('usage: uplink-greengrass --work <folder for the outbox>\n')
    process.exit(2)
  }
  return path
}

// stdout: the nucleus writes it to the component's log at INFO.
const log = (line: string) => process.stdout.write(`[uplink] ${line}\n`)
// A fault in a listener or the network must not take the component down: log it, keep going.
process.on('unhandledRejection', (err) => log(`unhandled: ${(err as Error)?.message ?? err}`))
process.on('uncaughtException', (err) => log(`uncaught: ${err.message}`))

let runner: GreengrassRunner
try {
  runner = new GreengrassRunner({ workPath: workPath(process.argv.slice(2)), log })
} catch (err) {
  log((err as Error).message)
  process.exit(1)
}
let stopping = false
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    const cap = setTimeout(() => process.exit(1), HARD_STOP_MS)
    runner.stop().then(
      () => {
        clearTimeout(cap)
        log('stopped')
        process.exit(0)
      },
      (err) => {
        log(`stop: ${(err as Error).message}`)
        process.exit(1)
      },
    )
  })
}
void runner.start()

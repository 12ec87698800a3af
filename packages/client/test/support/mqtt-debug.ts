import { createRequire } from 'node:module'

/** The `debug` that MQTT.js itself requires: what DEBUG=mqttjs* turns on. */
const fromMqtt = createRequire(createRequire(import.meta.url).resolve('mqtt'))
export const debug = fromMqtt('debug') as {
  init?: (instance: { namespace: string }) => void
  enable(namespaces: string): void
  disable(): string
  log: (...args: unknown[]) => void
}

/**
 * Every namespace off and each line `debug` writes kept in the array returned, until the
 * function handed to `onCleanup` puts the namespaces and the writer back as they were.
 */
export function captureDebugLines(onCleanup: (undo: () => void) => void): string[] {
  const before = debug.disable()
  const lines: string[] = []
  const log = debug.log
  debug.log = (...args) => lines.push(args.map(String).join(' '))
  onCleanup(() => {
    debug.log = log
    debug.disable()
    if (before) debug.enable(before)
  })
  return lines
}

import type { Uplink, UplinkEvents } from '../../src/index.js'

type Args<K extends keyof UplinkEvents> = Parameters<UplinkEvents[K]>

/** The next `event` from the client whose first argument satisfies `match`. */
export function nextEvent<K extends keyof UplinkEvents>(
  uplink: Uplink,
  event: K,
  match: (arg: Args<K>[0]) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<Args<K>[0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      uplink.off(event, listener as never)
      reject(new Error(`no '${String(event)}' event within ${timeoutMs} ms`))
    }, timeoutMs)
    const listener = (...args: Args<K>) => {
      if (!match(args[0])) return
      clearTimeout(timer)
      uplink.off(event, listener as never)
      resolve(args[0])
    }
    uplink.on(event, listener as never)
  })
}

/** Records every event of the given names, in order, as [name, first argument]. */
export function recordEvents(
  uplink: Uplink,
  names: Array<keyof UplinkEvents>,
): Array<[string, unknown]> {
  const log: Array<[string, unknown]> = []
  for (const name of names) uplink.on(name, ((arg: unknown) => log.push([name, arg])) as never)
  return log
}

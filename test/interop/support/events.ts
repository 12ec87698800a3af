import type { Uplink, UplinkEvents } from '@uplink/client'
import { waitFor } from '@uplink/testkit'

type First<K extends keyof UplinkEvents> = Parameters<UplinkEvents[K]>[0]

/** The next `event` whose first argument satisfies `match`, within `timeoutMs`. */
export function nextEvent<K extends keyof UplinkEvents>(
  uplink: Uplink,
  event: K,
  match: (arg: First<K>) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<First<K>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      uplink.off(event, listener as never)
      reject(new Error(`no '${String(event)}' event within ${timeoutMs} ms`))
    }, timeoutMs)
    const listener = (arg: First<K>) => {
      if (!match(arg)) return
      clearTimeout(timer)
      uplink.off(event, listener as never)
      resolve(arg)
    }
    uplink.on(event, listener as never)
  })
}

export const connected = (uplink: Uplink, what = 'connected') =>
  waitFor(() => uplink.stats().state === 'connected', what, 10_000)

export const drained = (uplink: Uplink) =>
  waitFor(() => uplink.stats().outbox.messages === 0, 'outbox drained', 10_000)

import type { Clock } from './clock.js'

export interface IntervalTimer {
  set(fn: () => void, ms: number): number
  clear(id: number): void
}

/**
 * The interval timer MQTT.js's keepalive manager asks for, on Uplink's clock. The manager clears
 * and sets its interval on every packet it sends (a PINGREQ is only due on an idle link): many
 * thousand times a second while a backlog drains, and a real timer armed each time was a
 * measurable share of the drain. So at most one real timer is pending: setting the interval
 * again only moves its due time, and a timer that fires before the due time sleeps for the rest.
 * One interval at a time, which is how the manager uses it. A timer left pending after the last
 * clear fires into nothing (the system clock's timers never hold the process open).
 */
export function keepaliveTimer(clock: Clock): IntervalTimer {
  let nextId = 1
  let id = 0
  let fn: (() => void) | undefined
  let every = 0
  let due = 0
  let handle: unknown
  let handleDue = Number.POSITIVE_INFINITY

  const arm = (at: number) => {
    handleDue = at
    handle = clock.setTimeout(fire, Math.max(0, at - clock.now()))
  }
  const fire = () => {
    handle = undefined
    handleDue = Number.POSITIVE_INFINITY
    if (!fn) return
    const now = clock.now()
    if (now < due) return arm(due)
    due = now + every
    arm(due)
    fn()
  }

  return {
    set(callback, ms) {
      id = nextId++
      fn = callback
      every = ms
      due = clock.now() + ms
      if (handle === undefined || handleDue > due) {
        if (handle !== undefined) clock.clearTimeout(handle)
        arm(due)
      }
      return id
    },
    clear(which) {
      if (which === id) fn = undefined
    },
  }
}

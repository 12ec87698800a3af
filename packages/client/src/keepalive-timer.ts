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
  return new KeepaliveTimer(clock)
}

/**
 * A class, not closures over shared state: one lives as long as each connection, in a
 * fleet-sized process thousands, and four closures with their context per connection showed up
 * in a device's memory. `fire` is the one callback the clock needs, bound once.
 */
class KeepaliveTimer implements IntervalTimer {
  private nextId = 1
  private id = 0
  private fn: (() => void) | undefined
  private every = 0
  private due = 0
  private handle: unknown
  private handleDue = Number.POSITIVE_INFINITY
  private readonly fire = (): void => {
    this.handle = undefined
    this.handleDue = Number.POSITIVE_INFINITY
    const fn = this.fn
    if (!fn) return
    const now = this.clock.now()
    if (now < this.due) return this.arm(this.due)
    this.due = now + this.every
    this.arm(this.due)
    fn()
  }

  constructor(private readonly clock: Clock) {}

  set(callback: () => void, ms: number): number {
    this.id = this.nextId++
    this.fn = callback
    this.every = ms
    this.due = this.clock.now() + ms
    if (this.handle === undefined || this.handleDue > this.due) {
      if (this.handle !== undefined) this.clock.clearTimeout(this.handle)
      this.arm(this.due)
    }
    return this.id
  }

  clear(which: number): void {
    if (which === this.id) this.fn = undefined
  }

  private arm(at: number): void {
    this.handleDue = at
    this.handle = this.clock.setTimeout(this.fire, Math.max(0, at - this.clock.now()))
  }
}

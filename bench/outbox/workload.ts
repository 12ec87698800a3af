/** What bench:outbox and its profiler ask of the outbox: the messages, and publishes kept outstanding. */
import type { Outbox, OutboxInput } from '@uplink/client'

export const PAYLOAD = 200
const payload = new Uint8Array(PAYLOAD).fill(42)
const topics = Array.from({ length: 16 }, (_, i) => `telemetry/gw-bench/${i}`)

/** The i-th message: 200 bytes of telemetry on one of 16 topics, QoS 1. */
export const input = (i: number): OutboxInput => ({
  topic: topics[i % 16] as string,
  payload,
  qos: 1,
  retain: false,
  priority: 'telemetry',
})

/**
 * Enqueues `n` messages with `concurrency` always outstanding, as many sensors reporting at
 * once would, stopping early after `limitMs`; resolves with how many were stored.
 */
export function keepOutstanding(
  box: Outbox,
  n: number,
  concurrency: number,
  limitMs: number,
): Promise<number> {
  const t0 = performance.now()
  let started = 0
  let done = 0
  return new Promise<number>((resolve, reject) => {
    const next = (): void => {
      if (started >= n || performance.now() - t0 > limitMs) {
        if (done === started) resolve(done)
        return
      }
      const i = started++
      box.enqueue(input(i), Date.now()).then(() => {
        done++
        next()
      }, reject)
    }
    for (let i = 0; i < concurrency; i++) next()
  })
}

import type { Uplink } from '../../src/index.js'

/**
 * Publishes numbered telemetry every `everyMs` until stopped; `accepted` holds the sequence
 * numbers whose publish() resolved, which must all reach a broker.
 */
export function startTraffic(uplink: Uplink, topic: string, everyMs = 10) {
  const accepted: number[] = []
  let seq = 0
  const timer = setInterval(() => {
    const n = seq++
    uplink.publish(topic, JSON.stringify({ seq: n })).then(
      () => accepted.push(n),
      () => {},
    )
  }, everyMs)
  return {
    accepted,
    stop: () => clearInterval(timer),
  }
}

/** Sequence numbers found in publishes to `topic`, across brokers. */
export function sequences(
  publishes: Array<{ topic: string; payload: Buffer }>,
  topic: string,
): number[] {
  return publishes
    .filter((p) => p.topic === topic)
    .map((p) => JSON.parse(p.payload.toString()).seq as number)
}

export function missing(accepted: number[], delivered: number[]): number[] {
  const got = new Set(delivered)
  return accepted.filter((n) => !got.has(n))
}

/**
 * The run's timeline for the charts (html.ts), built by a pure function from what the run
 * collected (samples.ts): every series is relative to the failure.
 */
import { cpuCores, ratePerSecond } from './metrics.js'
import type { RunSamples } from './samples.js'

export interface Series {
  /** ms relative to the failure. */
  at: number[]
  values: number[]
}

export interface StormTimeline {
  /** ms relative to the failure; the failure is at 0. */
  start: number
  end: number
  /** DNS flip (crash, blackhole), ms after the failure. */
  flipAt?: number | undefined
  connectedPrimary: Series
  connectedSecondary: Series
  attemptsPerSec: Series
  secondaryConnectsPerSec: Series
  secondaryAcceptsPerSec: Series
  /** CPU in use, in cores, by the device workers and by each broker. */
  cpuDevices: Series
  cpuSecondary: Series
  cpuPrimary: Series
}

export type TimelineSamples = Pick<
  RunSamples,
  't0' | 'end' | 'flipAt' | 'workerTicks' | 'primaryTicks' | 'secondaryTicks'
> & { config: Pick<RunSamples['config'], 'warmupMs' | 'tickMs'> }

/** Rates and CPU are counted per second. */
const BUCKET_MS = 1_000

export function buildTimeline(s: TimelineSamples): StormTimeline {
  const { t0, workerTicks } = s
  // From a second before the warm-up began to the end of the drain.
  const start = -s.config.warmupMs - 1_000
  const end = s.end - t0
  const sampleAt: number[] = []
  for (let t = start; t <= end; t += s.config.tickMs) sampleAt.push(t)
  // Devices connected at each sample: every worker's latest tick by then, summed.
  const connectedAt = (address: number) =>
    sampleAt.map((rel) => {
      let total = 0
      for (const ticks of workerTicks) {
        let last: (typeof ticks)[number] | undefined
        for (const tick of ticks) {
          if (tick.at - t0 > rel) break
          last = tick
        }
        total += last?.connected[address] ?? 0
      }
      return total
    })
  const attemptTimes: number[] = []
  for (const ticks of workerTicks)
    for (const tick of ticks) for (let k = 0; k < tick.attempts; k++) attemptTimes.push(tick.at)
  const rateAt: number[] = []
  for (let t = start; t < end; t += BUCKET_MS) rateAt.push(t + BUCKET_MS / 2)
  const span = { from: t0 + start, to: t0 + end, bucketMs: BUCKET_MS }
  const rate = (times: number[]): Series => ({ at: rateAt, values: ratePerSecond(times, span) })
  const cpu = (processes: Array<Array<{ at: number; cpu: number }>>): Series => ({
    at: rateAt,
    values: cpuCores(processes, span),
  })
  return {
    start,
    end,
    flipAt: s.flipAt,
    connectedPrimary: { at: sampleAt, values: connectedAt(1) },
    connectedSecondary: { at: sampleAt, values: connectedAt(2) },
    attemptsPerSec: rate(attemptTimes),
    secondaryConnectsPerSec: rate(s.secondaryTicks.flatMap((t) => t.connects)),
    secondaryAcceptsPerSec: rate(s.secondaryTicks.flatMap((t) => t.accepts)),
    cpuDevices: cpu(workerTicks),
    cpuSecondary: cpu([s.secondaryTicks]),
    cpuPrimary: cpu([s.primaryTicks]),
  }
}

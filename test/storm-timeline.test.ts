/**
 * The storm's timeline builder on small hand-made ticks: the chart series, relative to the
 * failure, with every value worked out by hand here.
 */
import { describe, expect, it } from 'vitest'
import type { BrokerTick, WorkerTick } from '../bench/storm/samples.js'
import { buildTimeline, type TimelineSamples } from '../bench/storm/timeline.js'

const T0 = 10_000

const workerTick = (
  at: number,
  connected: number[],
  attempts: number,
  cpu: number,
): WorkerTick => ({
  at,
  connected,
  attempts,
  cpu,
  lagMs: 0,
  moved: 0,
  published: 0,
  pending: 0,
})

const brokerTick = (at: number, cpu: number, accepts: number[] = [], connects: number[] = []) =>
  ({ at, cpu, accepts, connects, clients: 0, receipts: 0, lagMs: 0 }) satisfies BrokerTick

// From 2 s before the failure (1 s warm-up + 1 s) to 1.4 s after it: samples every 500 ms,
// rates in four 1 s buckets starting at -2 s.
const samples: TimelineSamples = {
  t0: T0,
  end: 11_400,
  flipAt: 5_000,
  config: { warmupMs: 1_000, tickMs: 500 },
  workerTicks: [
    [
      workerTick(8_500, [0, 2, 0], 2, 1),
      workerTick(10_200, [1, 1, 0], 1, 1.5),
      workerTick(11_100, [0, 0, 2], 3, 2.4),
    ],
    [workerTick(9_100, [0, 1, 0], 1, 0), workerTick(10_600, [0, 0, 1], 0, 0.2)],
  ],
  primaryTicks: [brokerTick(9_000, 1), brokerTick(10_000, 2)],
  secondaryTicks: [
    brokerTick(9_500, 0, [9_300, 9_400], [9_400]),
    brokerTick(11_000, 0.75, [10_050, 10_100, 10_800, 10_900], [10_100, 10_900]),
  ],
}

describe('storm timeline builder', () => {
  const timeline = buildTimeline(samples)

  it('spans from before the warm-up to the end of the drain, relative to the failure', () => {
    expect(timeline.start).toBe(-2_000)
    expect(timeline.end).toBe(1_400)
    expect(timeline.flipAt).toBe(5_000)
  })

  it('counts devices connected to each broker from every worker’s latest tick at each sample', () => {
    const at = [-2_000, -1_500, -1_000, -500, 0, 500, 1_000]
    expect(timeline.connectedPrimary).toStrictEqual({ at, values: [0, 2, 2, 3, 3, 2, 1] })
    // The first worker's last tick (+1.1 s) is after the last sample.
    expect(timeline.connectedSecondary).toStrictEqual({ at, values: [0, 0, 0, 0, 0, 0, 1] })
  })

  it('counts attempts, the secondary’s sessions and accepts per 1 s bucket, at bucket centres', () => {
    const at = [-1_500, -500, 500, 1_500]
    expect(timeline.attemptsPerSec).toStrictEqual({ at, values: [2, 1, 1, 3] })
    expect(timeline.secondaryConnectsPerSec).toStrictEqual({ at, values: [0, 1, 2, 0] })
    expect(timeline.secondaryAcceptsPerSec).toStrictEqual({ at, values: [0, 2, 4, 0] })
  })

  it('spreads each interval’s CPU over the buckets it covers, summed over processes, in cores', () => {
    // First worker: 0.5 s of CPU over 8.5-10.2 s, then 0.9 s over 10.2-11.1 s; second worker:
    // 0.2 s over 9.1-10.6 s.
    expect(timeline.cpuDevices.values).toStrictEqual([0.15, 0.41, 0.94, 0.1])
    expect(timeline.cpuSecondary.values).toStrictEqual([0, 0.25, 0.5, 0])
    expect(timeline.cpuPrimary.values).toStrictEqual([0, 1, 0, 0])
    expect(timeline.cpuPrimary.at).toStrictEqual([-1_500, -500, 500, 1_500])
  })
})

/**
 * `pnpm bench:storm merge FILES...`: the shards' records (`--shard I/N --json FILE`) become one
 * record per scenario and client, as if one machine had run the whole fleet. Exact where it can
 * be: message counts are summed by device id and the percentiles recomputed from the union of
 * every device's times (never averaged); what cannot be exact across machines is said so.
 */
import { round } from './format.js'
import { percentileOf } from './metrics.js'
import type { PerDevice, StormRecord } from './record.js'
import type { Series, StormTimeline } from './timeline.js'

/** A record as a shard's `--json` writes it: with its timeline for the charts. */
export type ShardRecord = StormRecord & { timeline?: StormTimeline | undefined }

export interface MergedRecord extends StormRecord {
  /**
   * How many shards were merged, and the figures that are not exact across them: the sum of the
   * shards' peaks (an upper bound on the union's: the shards' seconds are not the same seconds)
   * and the sum of the accept rates each shard's probe measured.
   */
  merged: { shards: number; summed: string[] }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)
const max = (xs: number[]) => xs.reduce((a, b) => Math.max(a, b), 0)

function sumRecords(into: Record<string, number>, from: Record<string, number>) {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v
  return into
}

/** The shards' per-device figures in device order; throws if a device is missing or twice. */
export function unionPerDevice(shards: StormRecord[]): PerDevice & { first: number } {
  const sorted = [...shards].sort((a, b) => a.shard.firstDevice - b.shard.firstDevice)
  const fleet = sorted[0]?.shard.fleetDevices ?? 0
  const out: PerDevice = {
    recoveryMs: [],
    detectedMs: [],
    published: [],
    delivered: [],
    duplicates: [],
    attempts: [],
  }
  let next = 0
  for (const r of sorted) {
    const { firstDevice, fleetDevices, index, count } = r.shard
    if (fleetDevices !== fleet)
      throw new Error(`shard ${index}/${count} ran a fleet of ${fleetDevices}, another ${fleet}`)
    if (firstDevice < next) throw new Error(`device ${firstDevice} is in two shards`)
    if (firstDevice > next)
      throw new Error(`devices ${next} to ${firstDevice - 1} are in no shard (a shard missing?)`)
    if (r.perDevice.published.length !== r.devices)
      throw new Error(
        `shard ${index}/${count}: per-device figures for ${r.perDevice.published.length} of ${r.devices} devices`,
      )
    for (const key of Object.keys(out) as Array<keyof PerDevice>)
      (out[key] as Array<number | null>).push(...r.perDevice[key])
    next = firstDevice + r.devices
  }
  if (next !== fleet)
    throw new Error(`devices ${next} to ${fleet - 1} are in no shard (a shard missing?)`)
  return { first: 0, ...out }
}

/** One scenario and client's shards as one record. */
export function mergeShards(shards: StormRecord[]): MergedRecord {
  const first = shards[0]
  if (!first) throw new Error('no records to merge')
  const all = unionPerDevice(shards)
  const n = all.published.length
  const times = (xs: Array<number | null>) => xs.filter((x): x is number => x !== null)
  const recoveries = times(all.recoveryMs)
  const detections = times(all.detectedMs)
  const p = (f: number) => percentileOf(recoveries, n, f) ?? null
  const d = (f: number) =>
    detections.length ? (percentileOf(detections, detections.length, f) ?? null) : null
  const published = sum(all.published)
  const delivered = sum(all.delivered)
  const each = <T>(f: (r: StormRecord) => T) => shards.map(f)
  const rss = (f: (r: StormRecord) => number) =>
    round(sum(each((r) => f(r) * r.devices)) / Math.max(1, n), 1)
  const deviceCpu = sum(each((r) => r.cpu.devices))
  const gone = each((r) => r.detection.primaryProcessGoneMs).filter((x) => x !== undefined)
  return {
    ...first,
    devices: n,
    recovery: { p50Ms: p(0.5), p90Ms: p(0.9), p99Ms: p(0.99), allMs: p(1) },
    detection: {
      p50Ms: d(0.5),
      p99Ms: d(0.99),
      allMs: d(1),
      devices: detections.length,
      ...(gone.length ? { primaryProcessGoneMs: max(gone) } : {}),
    },
    connectAttempts: sum(all.attempts),
    // Each shard's rate is over its own window (the same failure, so nearly the same window).
    dns: each((r) => r.dns).some((x) => x.queries === null || x.perDevicePerMin === null)
      ? { queries: null, perDevicePerMin: null }
      : {
          queries: sum(each((r) => r.dns.queries ?? 0)),
          perDevicePerMin: rss((r) => r.dns.perDevicePerMin ?? 0),
        },
    peakConnectsPerSec: sum(each((r) => r.peakConnectsPerSec)),
    peakSessionsPerSec: sum(each((r) => r.peakSessionsPerSec)),
    messages: {
      published,
      delivered,
      lost: published - delivered,
      duplicates: sum(all.duplicates),
    },
    cpuSeconds: round(sum(each((r) => r.cpuSeconds)), 2),
    deviceCpuMsPerDevice: round((deviceCpu * 1_000) / Math.max(1, n), 2),
    deviceCpuUsPerMessage: round((deviceCpu * 1e6) / Math.max(1, published), 1),
    rssPerDeviceKiB: rss((r) => r.rssPerDeviceKiB),
    rssPerDeviceExclYoungGenKiB: rss((r) => r.rssPerDeviceExclYoungGenKiB),
    heapPerDeviceKiB: rss((r) => r.heapPerDeviceKiB),
    devicesOnSecondary: sum(each((r) => r.devicesOnSecondary)),
    // Each shard's bound is for its own slice; the slowest is the fleet's.
    boundMs: max(each((r) => r.boundMs)),
    acceptRatePerSec: sum(each((r) => r.acceptRatePerSec)),
    cpu: {
      devices: round(deviceCpu, 2),
      devicesByPhase: {
        connect: round(sum(each((r) => r.cpu.devicesByPhase?.connect ?? 0)), 2),
        steady: round(sum(each((r) => r.cpu.devicesByPhase?.steady ?? 0)), 2),
        storm: round(sum(each((r) => r.cpu.devicesByPhase?.storm ?? 0)), 2),
      },
      brokers: round(sum(each((r) => r.cpu.brokers)), 2),
      services: round(sum(each((r) => r.cpu.services)), 2),
    },
    undelivered: {
      unexpectedReceipts: sum(each((r) => r.undelivered.unexpectedReceipts)),
      undrainedDevices: sum(each((r) => r.undelivered.undrainedDevices)),
      queuedAtEnd: sum(each((r) => r.undelivered.queuedAtEnd)),
      drops: sum(each((r) => r.undelivered.drops)),
    },
    errors: shards.reduce((acc, r) => sumRecords(acc, r.errors), {} as Record<string, number>),
    load: {
      workersMaxLagMs: max(each((r) => r.load.workersMaxLagMs)),
      secondaryMaxLagMs: max(each((r) => r.load.secondaryMaxLagMs)),
    },
    machine: {
      cores: sum(each((r) => r.machine.cores)),
      loadAverageAtStart: max(each((r) => r.machine.loadAverageAtStart)),
    },
    wallSeconds: max(each((r) => r.wallSeconds)),
    ...(published > delivered
      ? { lostExamples: shards.flatMap((r) => r.lostExamples ?? []).slice(0, 10) }
      : {}),
    shard: { index: 0, count: 1, firstDevice: 0, fleetDevices: n },
    perDevice: {
      recoveryMs: all.recoveryMs,
      detectedMs: all.detectedMs,
      published: all.published,
      delivered: all.delivered,
      duplicates: all.duplicates,
      attempts: all.attempts,
    },
    merged: {
      shards: shards.length,
      summed: ['peakConnectsPerSec', 'peakSessionsPerSec', 'acceptRatePerSec'],
    },
  }
}

/** Sums series that share their sample times (the shards' timelines, relative to each failure). */
export function sumSeries(series: Series[]): Series {
  const byAt = new Map<number, number>()
  for (const s of series)
    s.at.forEach((at, i) => byAt.set(at, (byAt.get(at) ?? 0) + (s.values[i] ?? 0)))
  const at = [...byAt.keys()].sort((a, b) => a - b)
  return { at, values: at.map((t) => round(byAt.get(t) ?? 0, 2)) }
}

/** The shards' timelines summed, each relative to its own shard's failure. */
export function mergeTimelines(timelines: StormTimeline[]): StormTimeline | undefined {
  const first = timelines[0]
  if (!first) return undefined
  const s = (k: keyof Omit<StormTimeline, 'start' | 'end' | 'flipAt'>) =>
    sumSeries(timelines.map((t) => t[k]))
  return {
    start: Math.min(...timelines.map((t) => t.start)),
    end: Math.max(...timelines.map((t) => t.end)),
    flipAt: first.flipAt,
    connectedPrimary: s('connectedPrimary'),
    connectedSecondary: s('connectedSecondary'),
    attemptsPerSec: s('attemptsPerSec'),
    secondaryConnectsPerSec: s('secondaryConnectsPerSec'),
    secondaryAcceptsPerSec: s('secondaryAcceptsPerSec'),
    cpuDevices: s('cpuDevices'),
    cpuSecondary: s('cpuSecondary'),
    cpuPrimary: s('cpuPrimary'),
  }
}

/** Every shard's records, grouped by scenario and client, merged (in the order first seen). */
export function mergeRecords(
  records: ShardRecord[],
): Array<{ record: MergedRecord; timeline: StormTimeline | undefined }> {
  const groups = new Map<string, ShardRecord[]>()
  for (const r of records) {
    const key = `${r.scenario}/${r.client}`
    groups.set(key, [...(groups.get(key) ?? []), r])
  }
  return [...groups.values()].map((shards) => {
    const timelines = shards.map((r) => r.timeline)
    const complete = timelines.every((t) => t !== undefined)
    return {
      record: mergeShards(shards.map(({ timeline: _, ...r }) => r)),
      timeline: complete ? mergeTimelines(timelines as StormTimeline[]) : undefined,
    }
  })
}

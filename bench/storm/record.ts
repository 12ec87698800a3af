/**
 * The run's record in the design's format (plus what a reader needs to judge it), built by pure
 * functions from what the run collected (samples.ts).
 */
import type { ClientKind, Scenario } from './config.js'
import { round } from './format.js'
import { type Accounting, type DeviceLedger, maxLag, peakRate, percentileOf } from './metrics.js'
import type { DeviceReport, MemorySample, RunSamples } from './samples.js'
import { DERIVED } from './target.js'

/** One run's figures in the design's record format, plus what a reader needs to judge them. */
export interface StormRecord {
  scenario: Scenario
  client: ClientKind
  devices: number
  recovery: {
    p50Ms: number | null
    p90Ms: number | null
    p99Ms: number | null
    allMs: number | null
  }
  /**
   * When devices noticed their connection was gone (a planned move is make-before-break, so
   * there a device that lost nothing is not counted).
   */
  detection: {
    p50Ms: number | null
    p99Ms: number | null
    allMs: number | null
    devices: number
    primaryProcessGoneMs?: number
  }
  connectAttempts: number
  /**
   * DNS questions the fleet asked from the failure to the end of the drain, and per device per
   * minute of that window; null in target mode without our DNS server (not observable).
   */
  dns: { queries: number | null; perDevicePerMin: number | null }
  /** Connect attempts reaching the secondary (TCP accepts), most in any 1 s window. */
  peakConnectsPerSec: number
  /** MQTT sessions the secondary established (CONNACKs), most in any 1 s window. */
  peakSessionsPerSec: number
  messages: { published: number; delivered: number; lost: number; duplicates: number }
  /** CPU seconds of every process of the run: device workers, brokers, proxy, DNS/concierge. */
  cpuSeconds: number
  /**
   * CPU of the device workers from their devices' start to the end of the drain, ms per device:
   * the clients' own cost, without the brokers and the DNS server (which `cpuSeconds` adds).
   */
  deviceCpuMsPerDevice: number
  /**
   * The same per message published, µs: a run whose fleet took longer to move publishes more
   * (the rate is per device and second), and this takes that out. At the bench's 0.2 messages a
   * second, connecting and reconnecting cost far more than the messages do.
   */
  deviceCpuUsPerMessage: number
  /**
   * RSS growth of the device workers from just before their devices started to the end of the
   * warm-up, after a full GC, per device. The workers' young generation has a fixed size and
   * is resident before the first sample (fleet.ts WORKER_SEMI_SPACE_MIB), so this is the devices'.
   */
  rssPerDeviceKiB: number
  /**
   * The same without the growth of V8's young generation (0 with the fixed young generation;
   * kept for records of runs without it).
   */
  rssPerDeviceExclYoungGenKiB: number
  /** The V8 heap's share of it (after a full GC). */
  heapPerDeviceKiB: number
  store: 'memory' | 'sqlite'
  devicesOnSecondary: number
  /** The recovery this run could not beat, computed before the storm (see boundParts). */
  boundMs: number
  boundParts: Record<string, number>
  acceptRatePerSec: number
  /** CPU seconds by process kind; the device workers' also by phase (samples.ts DeviceCpu). */
  cpu: {
    devices: number
    devicesByPhase: { connect: number; steady: number; storm: number }
    brokers: number
    services: number
  }
  /**
   * Why a message might not be counted as delivered: still queued in a device at the end (not
   * lost, but not delivered within the run either; included in `messages.lost`), dropped by an
   * outbox, or a receipt for a message no publish() resolved for (should never happen).
   */
  undelivered: {
    unexpectedReceipts: number
    undrainedDevices: number
    queuedAtEnd: number
    drops: number
  }
  errors: Record<string, number>
  settings: Record<string, number | string | boolean>
  /**
   * How late a 250 ms tick ran, at worst, in the device workers and in the secondary during the
   * storm (a busy or CPU-starved process is late for everything):
   * beyond a second or so the machine, not the client, sets the pace.
   */
  load: { workersMaxLagMs: number; secondaryMaxLagMs: number }
  /** The 1-minute load average when the run began: above 0.5 or so, something else was busy. */
  machine: { cores: number; loadAverageAtStart: number; udpReceiveDropsDuringStorm?: number }
  wallSeconds: number
  lostExamples?: Array<{ device: number; seq: number }>
  /** Which slice of the fleet this run was (`--shard`): `devices` above counts the slice. */
  shard: { index: number; count: number; firstDevice: number; fleetDevices: number }
  /**
   * Per device of the slice, from `firstDevice` on: what an exact merge of shards needs (merge.ts
   * sums the counts by device id and recomputes the percentiles from the union of recoveries).
   */
  perDevice: PerDevice
  /** Target mode: the user's brokers (URLs only; credentials are never written). */
  target?: { primary: string; secondary: string }
  /**
   * Target mode: the figures that would need the broker's side, each derived from the devices'
   * side instead, with how.
   */
  derived?: Record<string, string>
}

export interface PerDevice {
  /** ms from the failure to the device's first CONNACK on the secondary; null: never. */
  recoveryMs: Array<number | null>
  /** ms from the failure until the device noticed its connection gone; null: never. */
  detectedMs: Array<number | null>
  published: number[]
  delivered: number[]
  duplicates: number[]
  attempts: number[]
}

/** The fleet's per-device reports, summed up. */
export interface DeviceFigures {
  /** Per device that reached the secondary: ms from the failure to its first CONNACK there. */
  recoveries: number[]
  /** Per device that noticed a loss: ms from the failure until it did. */
  losses: number[]
  attempts: number
  onSecondary: number
  queuedAtEnd: number
  drops: number
  errors: Record<string, number>
}

export function deviceFigures(reports: DeviceReport[], t0: number): DeviceFigures {
  const figures: DeviceFigures = {
    recoveries: [],
    losses: [],
    attempts: 0,
    onSecondary: 0,
    queuedAtEnd: 0,
    drops: 0,
    errors: {},
  }
  for (const r of reports) {
    for (let j = 0; j < r.published.length; j++) {
      const at = r.firstSecondaryAt[j] as number
      if (at > 0) figures.recoveries.push(at - t0)
      const lossAt = r.firstLossAt[j] as number
      if (lossAt > 0) figures.losses.push(lossAt - t0)
      figures.attempts += r.attempts[j] as number
      if (r.endAddr[j] === 2) figures.onSecondary++
    }
    figures.queuedAtEnd += r.queued
    figures.drops += r.drops
    for (const [k, v] of Object.entries(r.errors)) figures.errors[k] = (figures.errors[k] ?? 0) + v
  }
  return figures
}

/** The slice's per-device figures, ordered by device index from `first`. */
export function perDeviceOf(
  reports: DeviceReport[],
  t0: number,
  first: number,
  devices: number,
  perDevice: Accounting['perDevice'],
): PerDevice {
  const out: PerDevice = {
    recoveryMs: new Array(devices).fill(null),
    detectedMs: new Array(devices).fill(null),
    published: Array.from(perDevice.published.subarray(first, first + devices)),
    delivered: Array.from(perDevice.delivered.subarray(first, first + devices)),
    duplicates: Array.from(perDevice.duplicates.subarray(first, first + devices)),
    attempts: new Array(devices).fill(0),
  }
  for (const r of reports) {
    for (let j = 0; j < r.published.length; j++) {
      const k = r.first + j - first
      const at = r.firstSecondaryAt[j] as number
      out.recoveryMs[k] = at > 0 ? at - t0 : null
      const lossAt = r.firstLossAt[j] as number
      out.detectedMs[k] = lossAt > 0 ? lossAt - t0 : null
      out.attempts[k] = r.attempts[j] as number
    }
  }
  return out
}

/**
 * What every device issued, and which of those seqs never counted as published: the last
 * `pending` seqs (publish() unresolved at the end) and every rejected one.
 */
export function ledgerOf(reports: DeviceReport[], devices: number): DeviceLedger {
  const issued = new Uint32Array(devices)
  const notPublished = new Map<number, Set<number>>()
  const skip = (device: number, seq: number) => {
    const set = notPublished.get(device) ?? new Set<number>()
    set.add(seq)
    notPublished.set(device, set)
  }
  for (const r of reports) {
    for (let j = 0; j < r.published.length; j++) {
      const next = r.published[j] as number
      issued[r.first + j] = next
      for (let k = 1; k <= (r.pending[j] as number); k++) skip(r.first + j, next - k)
    }
    for (let k = 0; k + 1 < r.failed.length; k += 2)
      skip(r.first + (r.failed[k] as number), r.failed[k + 1] as number)
  }
  return { issued, notPublished }
}

/**
 * The workers' growth from `before` to `after`, summed. V8's young generation, left to itself,
 * grows with the allocation rate (a constant per process, not per device), so its growth is
 * kept apart; the fleet fixes its size, which makes that part 0.
 */
export function memoryGrowth(before: MemorySample[], after: MemorySample[]): RunSamples['memory'] {
  const growth = { rss: 0, youngGen: 0, heap: 0 }
  after.forEach((m, i) => {
    const b = before[i]
    growth.rss += m.rss - (b?.rss ?? 0)
    growth.youngGen += (m.spaces.new_space ?? 0) - (b?.spaces.new_space ?? 0)
    growth.heap += m.heapUsed - (b?.heapUsed ?? 0)
  })
  return growth
}

export function buildRecord(s: RunSamples): StormRecord {
  const { config, client, accounting } = s
  const n = config.devices
  const fleet = deviceFigures(s.reports, s.t0)
  // Recovery counts every device (one that never moved keeps a percentile from being met);
  // detection only the devices that noticed a loss.
  const p = (f: number) => percentileOf(fleet.recoveries, n, f) ?? null
  const { losses } = fleet
  const detected = (f: number) =>
    losses.length ? (percentileOf(losses, losses.length, f) ?? null) : null
  const recoveredAll = p(1)
  // Target mode sees no broker: the devices' first CONNACKs at the secondary stand in for both.
  const secondaryAt = (pick: 'connects' | 'accepts') =>
    s.target
      ? fleet.recoveries.map((ms) => s.t0 + ms)
      : s.secondaryTicks.flatMap((t) => t[pick]).filter((at) => at >= s.t0)
  // The storm's window for lateness: from the failure until the whole fleet had moved.
  const stormEnd = s.t0 + (recoveredAll ?? s.end - s.t0)
  const { udpDropsBefore, udpDropsAfter } = s.machine
  return {
    scenario: s.scenario,
    client,
    devices: n,
    recovery: { p50Ms: p(0.5), p90Ms: p(0.9), p99Ms: p(0.99), allMs: recoveredAll },
    detection: {
      p50Ms: detected(0.5),
      p99Ms: detected(0.99),
      allMs: detected(1),
      devices: losses.length,
      ...(s.primaryGoneMs !== undefined ? { primaryProcessGoneMs: s.primaryGoneMs } : {}),
    },
    connectAttempts: fleet.attempts,
    dns: {
      queries: s.dnsQueries ?? null,
      perDevicePerMin:
        s.dnsQueries === undefined
          ? null
          : round(s.dnsQueries / n / (Math.max(1, s.end - s.t0) / 60_000), 2),
    },
    peakConnectsPerSec: peakRate(secondaryAt('accepts')),
    peakSessionsPerSec: peakRate(secondaryAt('connects')),
    messages: {
      published: accounting.published,
      delivered: accounting.delivered,
      lost: accounting.lost,
      duplicates: accounting.duplicates,
    },
    cpuSeconds: round(s.cpu.devices + s.cpu.brokers + s.cpu.services, 2),
    deviceCpuMsPerDevice: round((s.cpu.devices * 1_000) / Math.max(1, n), 2),
    deviceCpuUsPerMessage: round((s.cpu.devices * 1e6) / Math.max(1, accounting.published), 1),
    rssPerDeviceKiB: round(s.memory.rss / n / 1024, 1),
    rssPerDeviceExclYoungGenKiB: round((s.memory.rss - s.memory.youngGen) / n / 1024, 1),
    heapPerDeviceKiB: round(s.memory.heap / n / 1024, 1),
    store: config.store,
    devicesOnSecondary: fleet.onSecondary,
    boundMs: s.bound.total,
    boundParts: s.bound.parts,
    acceptRatePerSec: s.acceptRate,
    cpu: {
      devices: round(s.cpu.devices, 2),
      devicesByPhase: {
        connect: round(s.cpu.byPhase.connect, 2),
        steady: round(s.cpu.byPhase.steady, 2),
        storm: round(s.cpu.byPhase.storm, 2),
      },
      brokers: round(s.cpu.brokers, 2),
      services: round(s.cpu.services, 2),
    },
    undelivered: {
      unexpectedReceipts: accounting.unexpected,
      undrainedDevices: s.undrained.reduce((a, b) => a + b, 0),
      queuedAtEnd: fleet.queuedAtEnd,
      drops: fleet.drops,
    },
    errors: fleet.errors,
    settings: {
      keepaliveS: config.keepalive,
      healthCheckMs: config.healthCheckMs,
      backoffInitialMs: config.backoff.initialMs,
      backoffMaxMs: client === 'uplink' ? config.backoff.maxMs : 0,
      reconnectPeriodMs: client === 'mqttjs' ? 1_000 : 0,
      ratePerDevice: config.rate,
      dnsTtlS: config.dnsTtl,
      workers: s.layout.workers,
      proxyShards: s.scenario === 'blackhole' ? s.layout.proxyShards : 0,
      seed: config.seed,
    },
    load: {
      workersMaxLagMs: maxLag(s.workerTicks, s.t0, stormEnd),
      secondaryMaxLagMs: maxLag([s.secondaryTicks], s.t0, stormEnd),
    },
    machine: {
      cores: s.machine.cores,
      loadAverageAtStart: s.machine.loadAverageAtStart,
      ...(udpDropsBefore !== undefined && udpDropsAfter !== undefined
        ? { udpReceiveDropsDuringStorm: udpDropsAfter - udpDropsBefore }
        : {}),
    },
    wallSeconds: round(s.wallMs / 1000, 1),
    ...(accounting.lost > 0 ? { lostExamples: accounting.lostExamples } : {}),
    shard: s.shard,
    perDevice: perDeviceOf(s.reports, s.t0, s.shard.firstDevice, n, accounting.perDevice),
    ...(s.target ? { target: s.target, derived: { ...DERIVED } } : {}),
  }
}

/**
 * The storm's record builder on small hand-made samples: what the device workers and brokers
 * report becomes the design's record, with every figure computed by hand here.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULTS, withFleetDefaults } from '../bench/storm/config.js'
import { buildRecord, deviceFigures, ledgerOf, memoryGrowth } from '../bench/storm/record.js'
import type {
  BrokerTick,
  DeviceReport,
  MemorySample,
  RunSamples,
  WorkerTick,
} from '../bench/storm/samples.js'

const T0 = 10_000

interface Device {
  /** Seqs issued. */
  published: number
  /** Unresolved publish() calls at the end: the last seqs. */
  pending?: number
  /** Absolute ms; 0 or absent: never. */
  secondaryAt?: number
  lossAt?: number
  attempts?: number
  /** 0 none, 1 primary, 2 secondary. */
  end?: number
}

function report(
  first: number,
  devices: Device[],
  rest: Partial<Pick<DeviceReport, 'queued' | 'drops' | 'errors' | 'cpu' | 'failed'>> = {},
): DeviceReport {
  return {
    first,
    queued: rest.queued ?? 0,
    queuedPer: new Uint32Array(devices.length),
    published: Uint32Array.from(devices, (d) => d.published),
    failed: rest.failed ?? new Int32Array(0),
    pending: Uint32Array.from(devices, (d) => d.pending ?? 0),
    firstSecondaryAt: Float64Array.from(devices, (d) => d.secondaryAt ?? 0),
    firstLossAt: Float64Array.from(devices, (d) => d.lossAt ?? 0),
    attempts: Uint32Array.from(devices, (d) => d.attempts ?? 0),
    endAddr: Uint8Array.from(devices, (d) => d.end ?? 0),
    drops: rest.drops ?? 0,
    errors: rest.errors ?? {},
    cpu: rest.cpu ?? 0,
  }
}

// Two workers: devices 0 and 1 in the first, device 2 in the second. Device 0 moved 2 s after
// the failure with its last publish() unresolved; device 1 never moved and had seq 0 rejected;
// device 2 moved after 3 s without noticing a loss.
const reports = [
  report(
    0,
    [
      { published: 3, pending: 1, secondaryAt: 12_000, lossAt: 10_500, attempts: 2, end: 2 },
      { published: 2, lossAt: 10_700, attempts: 5, end: 1 },
    ],
    { queued: 1, errors: { ECONNRESET: 2 }, failed: Int32Array.from([1, 0]) },
  ),
  report(2, [{ published: 1, secondaryAt: 13_000, attempts: 1, end: 2 }], {
    drops: 1,
    errors: { ECONNRESET: 1, ETIMEOUT: 1 },
  }),
]

const tick = (at: number, lagMs: number): WorkerTick => ({
  at,
  lagMs,
  cpu: 0,
  attempts: 0,
  connected: [],
  moved: 0,
  published: 0,
  pending: 0,
})

const brokerTick = (at: number, lagMs: number, accepts: number[], connects: number[]) =>
  ({ at, lagMs, accepts, connects, clients: 0, receipts: 0, cpu: 0 }) satisfies BrokerTick

function samples(overrides: Partial<RunSamples> = {}): RunSamples {
  return {
    scenario: 'crash',
    client: 'uplink',
    config: withFleetDefaults({ ...DEFAULTS, devices: 3 }),
    layout: { workers: 2, proxyShards: 3 },
    bound: {
      total: 16_000,
      parts: { healthCheckMs: 5_000, dnsTtlMs: 5_000, spreadMs: 1_000, acceptMs: 1_000 },
    },
    acceptRate: 3_000,
    t0: T0,
    end: 20_000,
    flipAt: 5_000,
    primaryGoneMs: 30,
    dnsQueries: 120,
    reports,
    undrained: [0, 1],
    accounting: {
      published: 4,
      delivered: 4,
      lost: 0,
      duplicates: 1,
      unexpected: 0,
      lostExamples: [],
      perDevice: {
        published: Uint32Array.from([2, 1, 1]),
        delivered: Uint32Array.from([2, 1, 1]),
        duplicates: Uint32Array.from([1, 0, 0]),
      },
    },
    memory: { rss: 3 * 10 * 1024, youngGen: 3 * 4 * 1024, heap: 3 * 2 * 1024 },
    cpu: {
      devices: 8.004,
      byPhase: { connect: 1.004, steady: 2, storm: 5 },
      brokers: 2.5,
      services: 0.333,
    },
    // A lag before the failure is not the storm's.
    workerTicks: [[tick(9_000, 900), tick(10_250, 120.4)], [tick(14_000, 300.6)]],
    primaryTicks: [],
    secondaryTicks: [
      brokerTick(10_250, 40, [9_300, 9_900, 10_100, 10_200], [9_200, 9_500, 10_150]),
      brokerTick(11_500, 55.5, [11_050, 11_300], [11_200, 11_400]),
    ],
    machine: { cores: 2, loadAverageAtStart: 0.5, udpDropsBefore: 10, udpDropsAfter: 25 },
    wallMs: 41_260,
    shard: { index: 0, count: 1, firstDevice: 0, fleetDevices: 3 },
    ...overrides,
  }
}

describe('storm record builder', () => {
  it('deviceFigures sums the per-device reports of every worker, times relative to the failure', () => {
    expect(deviceFigures(reports, T0)).toStrictEqual({
      recoveries: [2_000, 3_000],
      losses: [500, 700],
      attempts: 8,
      onSecondary: 2,
      queuedAtEnd: 1,
      drops: 1,
      errors: { ECONNRESET: 3, ETIMEOUT: 1 },
    })
  })

  it('ledgerOf counts every issued seq and leaves out unresolved and rejected ones', () => {
    const ledger = ledgerOf(reports, 3)
    expect([...ledger.issued]).toEqual([3, 2, 1])
    expect(ledger.notPublished).toStrictEqual(
      new Map([
        [0, new Set([2])],
        [1, new Set([0])],
      ]),
    )
  })

  it('memoryGrowth sums each worker against its own start, the young generation apart', () => {
    const before: MemorySample[] = [
      { rss: 100, heapUsed: 10, spaces: { new_space: 1 } },
      { rss: 200, heapUsed: 20, spaces: {} },
    ]
    const after = [
      { rss: 400, heapUsed: 50, spaces: { new_space: 51 } },
      { rss: 260, heapUsed: 25, spaces: { new_space: 8 } },
    ]
    expect(memoryGrowth(before, after)).toStrictEqual({ rss: 360, youngGen: 58, heap: 45 })
  })

  it('buildRecord gives the design record: percentiles over the whole fleet, peaks since the failure', () => {
    expect(buildRecord(samples())).toStrictEqual({
      scenario: 'crash',
      client: 'uplink',
      devices: 3,
      // 2 of 3 devices moved: the median is the second, the rest never came.
      recovery: { p50Ms: 3_000, p90Ms: null, p99Ms: null, allMs: null },
      detection: { p50Ms: 500, p99Ms: 700, allMs: 700, devices: 2, primaryProcessGoneMs: 30 },
      connectAttempts: 8,
      // 120 questions from 3 devices over the 10 s from the failure to the end of the drain.
      dns: { queries: 120, perDevicePerMin: 240 },
      // Since the failure only: 10 100, 10 200 and 11 050 fall in one second (with the accepts
      // before it, 9 300 to 10 200 would make 4).
      peakConnectsPerSec: 3,
      peakSessionsPerSec: 2,
      messages: { published: 4, delivered: 4, lost: 0, duplicates: 1 },
      cpuSeconds: 10.84,
      // The device workers' alone: 8.004 s over 3 devices and over 4 published messages.
      deviceCpuMsPerDevice: 2_668,
      deviceCpuUsPerMessage: 2_001_000,
      rssPerDeviceKiB: 10,
      rssPerDeviceExclYoungGenKiB: 6,
      heapPerDeviceKiB: 2,
      store: 'memory',
      devicesOnSecondary: 2,
      boundMs: 16_000,
      boundParts: { healthCheckMs: 5_000, dnsTtlMs: 5_000, spreadMs: 1_000, acceptMs: 1_000 },
      acceptRatePerSec: 3_000,
      cpu: {
        devices: 8,
        devicesByPhase: { connect: 1, steady: 2, storm: 5 },
        brokers: 2.5,
        services: 0.33,
      },
      undelivered: { unexpectedReceipts: 0, undrainedDevices: 1, queuedAtEnd: 1, drops: 1 },
      errors: { ECONNRESET: 3, ETIMEOUT: 1 },
      settings: {
        keepaliveS: 5,
        healthCheckMs: 5_000,
        backoffInitialMs: 1_000,
        backoffMaxMs: 60_000,
        reconnectPeriodMs: 0,
        ratePerDevice: 0.2,
        dnsTtlS: 5,
        workers: 2,
        proxyShards: 0,
        seed: 1,
      },
      // Not every device moved, so lateness is counted from the failure to the end.
      load: { workersMaxLagMs: 301, secondaryMaxLagMs: 56 },
      machine: { cores: 2, loadAverageAtStart: 0.5, udpReceiveDropsDuringStorm: 15 },
      wallSeconds: 41.3,
      shard: { index: 0, count: 1, firstDevice: 0, fleetDevices: 3 },
      // Per device, in index order: what a merge of shards sums and takes percentiles of.
      perDevice: {
        recoveryMs: [2_000, null, 3_000],
        detectedMs: [500, 700, null],
        published: [2, 1, 1],
        delivered: [2, 1, 1],
        duplicates: [1, 0, 0],
        attempts: [2, 5, 1],
      },
    })
  })

  it('buildRecord ends the lateness window when the last device moved', () => {
    // Device 1 moved too, at 2.5 s: all moved by 3 s, so the 14 000 tick is after the storm.
    const moved = [
      report(0, [
        { published: 1, secondaryAt: 12_000, end: 2 },
        { published: 1, secondaryAt: 12_500, end: 2 },
      ]),
      reports[1] as DeviceReport,
    ]
    const record = buildRecord(samples({ reports: moved }))
    expect(record.recovery).toStrictEqual({
      p50Ms: 2_500,
      p90Ms: 3_000,
      p99Ms: 3_000,
      allMs: 3_000,
    })
    expect(record.load.workersMaxLagMs).toBe(120)
    // Nobody noticed a loss: no detection percentiles, and device 1 is on the secondary now.
    expect(record.detection).toMatchObject({ p50Ms: null, p99Ms: null, allMs: null, devices: 0 })
    expect(record.devicesOnSecondary).toBe(3)
  })

  it('buildRecord for the baseline: its settings, lost examples, and no UDP figure when unknown', () => {
    const lostExamples = [{ device: 1, seq: 1 }]
    const record = buildRecord(
      samples({
        client: 'mqttjs',
        scenario: 'blackhole',
        primaryGoneMs: undefined,
        accounting: {
          published: 4,
          delivered: 3,
          lost: 1,
          duplicates: 0,
          unexpected: 2,
          lostExamples,
          perDevice: {
            published: Uint32Array.from([2, 1, 1]),
            delivered: Uint32Array.from([2, 0, 1]),
            duplicates: Uint32Array.from([0, 0, 0]),
          },
        },
        machine: {
          cores: 2,
          loadAverageAtStart: 0.5,
          udpDropsBefore: undefined,
          udpDropsAfter: 25,
        },
      }),
    )
    expect(record.settings).toMatchObject({
      backoffMaxMs: 0,
      reconnectPeriodMs: 1_000,
      proxyShards: 3,
    })
    expect(record.lostExamples).toStrictEqual(lostExamples)
    expect(record.messages.lost).toBe(1)
    expect(record.undelivered.unexpectedReceipts).toBe(2)
    expect(record.machine).toStrictEqual({ cores: 2, loadAverageAtStart: 0.5 })
    expect('primaryProcessGoneMs' in record.detection).toBe(false)
  })
})

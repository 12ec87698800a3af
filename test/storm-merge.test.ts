/**
 * Sharding's pure parts on hand-made inputs: the slices tile the fleet, the flags parse, and
 * merging the shards' records sums by device and recomputes the percentiles from every device.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULTS, parseArgs, shardRun } from '../bench/storm/config.js'
import { mergeRecords, mergeShards, sumSeries, unionPerDevice } from '../bench/storm/merge.js'
import type { PerDevice, StormRecord } from '../bench/storm/record.js'
import { msUntil, parseShard, parseStartAt, shardSlice } from '../bench/storm/shard.js'

describe('shard slices', () => {
  it('the N slices of a fleet tile it: contiguous, disjoint, sizes within one of each other', () => {
    for (const [fleet, n] of [
      [80, 4],
      [10, 3],
      [7, 7],
      [100_000, 16],
    ] as const) {
      let next = 0
      const sizes: number[] = []
      for (let i = 0; i < n; i++) {
        const s = shardSlice(fleet, { index: i, count: n })
        expect(s.first).toBe(next)
        next = s.first + s.devices
        sizes.push(s.devices)
      }
      expect(next).toBe(fleet)
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1)
    }
  })

  it('--shard, --start-at and --fail-at-ms parse; bad values are refused with the flag named', () => {
    expect(parseShard('2/4')).toEqual({ index: 2, count: 4 })
    for (const bad of ['4/4', '1', '-1/4', '1/0', 'a/b', undefined])
      expect(() => parseShard(bad)).toThrow(/--shard/)
    expect(parseStartAt('2026-12-01T11:00:00Z')).toBe(Date.UTC(2026, 11, 1, 11))
    expect(parseStartAt('1700000000000')).toBe(1_700_000_000_000)
    expect(() => parseStartAt('soon')).toThrow(/--start-at/)
    expect(msUntil(5_000, 3_000)).toBe(2_000)
    expect(msUntil(1_000, 3_000)).toBe(0)
    expect(msUntil(undefined, 3_000)).toBe(0)
    const c = parseArgs([
      '--devices',
      '80',
      '--shard',
      '3/4',
      '--start-at',
      '1000',
      '--fail-at-ms',
      '9000',
    ])
    expect(shardRun(c)).toEqual({ first: 60, devices: 20 })
    expect(c.startAt).toBe(1_000)
    expect(c.failAtMs).toBe(9_000)
    expect(() => parseArgs(['--fail-at-ms', '9000'])).toThrow(/--start-at/)
    expect(() => parseArgs(['--devices', '3', '--shard', '0/4'])).toThrow(/more shards/)
    expect(parseArgs([]).shard).toEqual(DEFAULTS.shard)
  })
})

/** A shard's record: only what merge reads is meaningful; the rest is filler. */
function shardRecord(
  index: number,
  count: number,
  firstDevice: number,
  perDevice: PerDevice,
  extra: Partial<StormRecord> = {},
): StormRecord {
  const devices = perDevice.published.length
  return {
    scenario: 'crash',
    client: 'uplink',
    devices,
    recovery: { p50Ms: 1, p90Ms: 1, p99Ms: 1, allMs: 1 },
    detection: { p50Ms: 1, p99Ms: 1, allMs: 1, devices, primaryProcessGoneMs: 20 + index },
    connectAttempts: 0,
    dns: { queries: 10 * devices, perDevicePerMin: 6 + index },
    peakConnectsPerSec: 100,
    peakSessionsPerSec: 90,
    messages: { published: 0, delivered: 0, lost: 0, duplicates: 0 },
    cpuSeconds: 1.5,
    rssPerDeviceKiB: 40,
    rssPerDeviceExclYoungGenKiB: 30,
    heapPerDeviceKiB: 10,
    store: 'memory',
    devicesOnSecondary: perDevice.recoveryMs.filter((x) => x !== null).length,
    boundMs: 10_000 + index,
    boundParts: {},
    acceptRatePerSec: 1_000,
    deviceCpuMsPerDevice: 0,
    deviceCpuUsPerMessage: 0,
    cpu: {
      devices: 1,
      devicesByPhase: { connect: 0.25, steady: 0.25, storm: 0.5 },
      brokers: 0.25,
      services: 0.25,
    },
    undelivered: { unexpectedReceipts: 0, undrainedDevices: index, queuedAtEnd: 0, drops: 0 },
    errors: { ECONNRESET: 1 },
    settings: { seed: 1 },
    load: { workersMaxLagMs: 10 * index, secondaryMaxLagMs: 5 },
    machine: { cores: 2, loadAverageAtStart: 0.5 + index },
    wallSeconds: 30 + index,
    shard: { index, count, firstDevice, fleetDevices: 5 },
    perDevice,
    ...extra,
  }
}

// A fleet of 5 over two shards: devices 0-2 and 3-4. Device 1 never reached the secondary and
// lost a message; device 3 delivered one twice.
const a = shardRecord(0, 2, 0, {
  recoveryMs: [1_000, null, 3_000],
  detectedMs: [100, 200, null],
  published: [4, 4, 4],
  delivered: [4, 3, 4],
  duplicates: [0, 0, 0],
  attempts: [2, 7, 1],
})
const b = shardRecord(1, 2, 3, {
  recoveryMs: [2_000, 4_000],
  detectedMs: [300, 400],
  published: [5, 6],
  delivered: [5, 6],
  duplicates: [1, 0],
  attempts: [3, 1],
})

describe('merge of shard records', () => {
  it('sums messages by device and recomputes the percentiles from the union of all devices', () => {
    // Given in the wrong order: merge puts the devices in id order.
    const m = mergeShards([b, a])
    expect(m.devices).toBe(5)
    expect(m.messages).toEqual({ published: 23, delivered: 22, lost: 1, duplicates: 1 })
    expect(m.connectAttempts).toBe(14)
    // 30 + 20 questions; the rate is the device-weighted mean of 6 (3 devices) and 7 (2).
    expect(m.dns).toEqual({ queries: 50, perDevicePerMin: 6.4 })
    // Recoveries 1, 2, 3, 4 s of 5 devices (one never moved): p50 is the 3rd, p90 the 5th (none).
    // The shards' own medians, 3 s and 2 s, averaged would say 2.5 s.
    expect(m.recovery).toEqual({ p50Ms: 3_000, p90Ms: null, p99Ms: null, allMs: null })
    // Detection only over the devices that noticed: 100, 200, 300, 400.
    expect(m.detection).toEqual({
      p50Ms: 200,
      p99Ms: 400,
      allMs: 400,
      devices: 4,
      primaryProcessGoneMs: 21,
    })
    expect(m.devicesOnSecondary).toBe(4)
    expect(m.perDevice.published).toEqual([4, 4, 4, 5, 6])
    expect(m.perDevice.recoveryMs).toEqual([1_000, null, 3_000, 2_000, 4_000])
    expect(m.shard).toEqual({ index: 0, count: 1, firstDevice: 0, fleetDevices: 5 })
    expect(m.merged).toEqual({
      shards: 2,
      summed: ['peakConnectsPerSec', 'peakSessionsPerSec', 'acceptRatePerSec'],
    })
    expect(m.peakConnectsPerSec).toBe(200)
    expect(m.cpuSeconds).toBe(3)
    expect(m.cpu).toEqual({
      devices: 2,
      devicesByPhase: { connect: 0.5, steady: 0.5, storm: 1 },
      brokers: 0.5,
      services: 0.5,
    })
    // Per device and per message from the sums, never averaged from the shards' own figures.
    expect(m.deviceCpuMsPerDevice).toBe(400)
    expect(m.deviceCpuUsPerMessage).toBe(86_956.5)
    expect(m.rssPerDeviceKiB).toBe(40)
    expect(m.boundMs).toBe(10_001)
    expect(m.errors).toEqual({ ECONNRESET: 2 })
    expect(m.undelivered.undrainedDevices).toBe(1)
    expect(m.load.workersMaxLagMs).toBe(10)
    expect(m.machine).toEqual({ cores: 4, loadAverageAtStart: 1.5 })
    expect(m.wallSeconds).toBe(31)
  })

  it('the whole fleet once: a missing shard, an overlap or a different fleet is refused', () => {
    expect(() => mergeShards([a])).toThrow(/devices 3 to 4 are in no shard/)
    expect(() => mergeShards([b])).toThrow(/devices 0 to 2 are in no shard/)
    expect(() => mergeShards([a, a, b])).toThrow(/in two shards/)
    const other = { ...b, shard: { ...b.shard, fleetDevices: 6 } }
    expect(() => unionPerDevice([a, other])).toThrow(/fleet of 6/)
    expect(() => mergeShards([])).toThrow(/no records/)
  })

  it('groups by scenario and client and sums the timelines at the same sample times', () => {
    const timeline = (v: number) => {
      const s = { at: [-1_000, 0, 1_000], values: [v, v, v] }
      return {
        start: -1_000,
        end: 1_000,
        connectedPrimary: s,
        connectedSecondary: s,
        attemptsPerSec: s,
        secondaryConnectsPerSec: s,
        secondaryAcceptsPerSec: s,
        cpuDevices: s,
        cpuSecondary: s,
        cpuPrimary: s,
      }
    }
    const base = { ...a, client: 'mqttjs' as const }
    const merged = mergeRecords([
      { ...a, timeline: timeline(1) },
      { ...base, timeline: timeline(5) },
      { ...b, timeline: timeline(2) },
      { ...b, client: 'mqttjs', timeline: timeline(6) },
    ])
    expect(merged.map((m) => `${m.record.scenario}/${m.record.client}`)).toEqual([
      'crash/uplink',
      'crash/mqttjs',
    ])
    expect(merged[0]?.timeline?.connectedSecondary.values).toEqual([3, 3, 3])
    expect(merged[1]?.timeline?.attemptsPerSec.values).toEqual([11, 11, 11])
    // Without every shard's timeline there is none to draw.
    expect(mergeRecords([a, b])[0]?.timeline).toBeUndefined()
    expect(
      sumSeries([
        { at: [0, 250], values: [1, 2] },
        { at: [250, 500], values: [3, 4] },
      ]),
    ).toEqual({ at: [0, 250, 500], values: [1, 5, 4] })
  })
})

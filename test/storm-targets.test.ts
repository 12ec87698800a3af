import { describe, expect, it } from 'vitest'
import { parseArgs } from '../bench/storm/config.js'
import type { StormRecord } from '../bench/storm/record.js'
import { checkTargets } from '../bench/storm/report.js'
import { arrivalSpreadMs, recoveryBound } from '../bench/storm/storm.js'

/** The fields the targets read; the rest of a record does not enter them. */
function record(client: 'uplink' | 'mqttjs', over: Partial<StormRecord> = {}): StormRecord {
  return {
    scenario: 'crash',
    client,
    devices: 2_000,
    store: 'memory',
    devicesOnSecondary: 2_000,
    recovery: { p50Ms: 5_000, p90Ms: 8_000, p99Ms: 9_000, allMs: 10_000 },
    boundMs: 11_700,
    boundParts: {},
    messages: { published: 100, delivered: 100, lost: 0, duplicates: 0 },
    peakConnectsPerSec: 600,
    acceptRatePerSec: 2_500,
    connectAttempts: 4_000,
    dns: { queries: 1_000, perDevicePerMin: 20 },
    rssPerDeviceKiB: 30,
    heapPerDeviceKiB: 25,
    deviceCpuMsPerDevice: 4,
    wallSeconds: 40,
    ...over,
  } as StormRecord
}

const verdicts = (records: StormRecord[]) =>
  Object.fromEntries(checkTargets(records).map((c) => [c.target.split(' (')[0], c.ok]))

describe('the storm targets (issue 15), judged against the baseline of the same run', () => {
  it('attempts at most half, memory within 25 %, device CPU no more: each met or missed on its own', () => {
    const base = record('mqttjs', {
      connectAttempts: 8_000,
      rssPerDeviceKiB: 24,
      deviceCpuMsPerDevice: 4,
    })
    const met = verdicts([record('uplink'), base])
    expect(met).toMatchObject({
      "connect attempts <= 0.5 x the baseline's": true,
      "memory per device within 25 % of the baseline's": true,
      "device workers' CPU per device <= the baseline's": true,
    })
    const missed = verdicts([
      record('uplink', {
        connectAttempts: 4_001,
        rssPerDeviceKiB: 30.1,
        deviceCpuMsPerDevice: 4.01,
      }),
      base,
    ])
    expect(missed).toMatchObject({
      "connect attempts <= 0.5 x the baseline's": false,
      "memory per device within 25 % of the baseline's": false,
      "device workers' CPU per device <= the baseline's": false,
    })
  })

  it('recovery is judged against the bound itself, and the peak against the accept rate', () => {
    const late = verdicts([
      record('uplink', { recovery: { p50Ms: 1, p90Ms: 1, p99Ms: 1, allMs: 11_701 } }),
    ])
    expect(late['all back within health check + DNS TTL + spread + devices/accept rate']).toBe(
      false,
    )
    const fast = verdicts([record('uplink', { peakConnectsPerSec: 2_501 })])
    expect(fast['all back within health check + DNS TTL + spread + devices/accept rate']).toBe(true)
    expect(fast['peak connects/s <= accept rate']).toBe(false)
  })

  it('without a baseline in the run, no comparison is claimed', () => {
    const alone = checkTargets([record('uplink')]).map((c) => c.target)
    expect(alone.some((t) => t.includes('baseline'))).toBe(false)
  })
})

describe('the bench sizes Uplink’s arrival spread as its README tells a user to', () => {
  it('max(1 s, the whole fleet / the measured accept rate), unless --spread-ms is given', () => {
    const sized = parseArgs(['--devices', '10000'])
    expect(arrivalSpreadMs(sized, 10_000, 2_000)).toBe(5_000)
    expect(arrivalSpreadMs(sized, 1_000, 2_000)).toBe(1_000)
    // A shard's bound and spread are the whole fleet's, not its slice's.
    const bound = recoveryBound('crash', 'uplink', { ...sized, devices: 2_500 }, 2_000, 10_000)
    expect(bound.parts.spreadMs).toBe(5_000)
    expect(arrivalSpreadMs(parseArgs(['--spread-ms', '0']), 10_000, 2_000)).toBe(0)
  })
})

/**
 * The storm sharded over processes, as it would be over machines: four `pnpm bench:storm
 * --shard I/4` processes (each with its own pair of aedes regions on loopback, sharing the clock
 * through --start-at and --fail-at-ms) and `bench:storm merge` of their JSON give the same fleet
 * and the same accounting as one unsharded run of the same devices and seeds. Publishing runs on
 * the clock, so the counts themselves differ between runs; what must match is who took part and
 * that nothing was lost, and the merge must be exactly the shards' figures summed by device.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { MergedRecord, ShardRecord } from '../bench/storm/merge.js'
import { percentileOf } from '../bench/storm/metrics.js'
import { storm } from './storm-cli.js'

const DEVICES = 80
const SHARDS = 4
const dir = mkdtempSync(join(tmpdir(), 'uplink-storm-shard-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const FLEET = [
  ['--devices', DEVICES],
  ['--scenario', 'crash'],
  ['--compare', 'none'],
  ['--rate', 4],
  ['--health-check-ms', 1_000],
  ['--backoff-initial-ms', 200],
  ['--backoff-max-ms', 1_000],
  ['--warmup-ms', 1_000],
  ['--tail-ms', 500],
  ['--workers', 1],
  ['--probe', 20],
  ['--seed', 7],
  ['--no-progress'],
]
  .flat()
  .map(String)

const readRecords = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as ShardRecord[]

describe('fleet storm sharded over processes', () => {
  it('four shards merge to the fleet of one unsharded run: every device, 0 lost, exact sums', async () => {
    // Time for four Node processes to load tsx on a busy machine before the shared start.
    const startAt = Date.now() + 4_000
    const shardFile = (i: number) => join(dir, `shard-${i}.json`)
    const [whole, ...shards] = await Promise.all([
      storm([...FLEET, '--json', join(dir, 'whole.json')]),
      ...Array.from({ length: SHARDS }, (_, i) =>
        storm([
          ...FLEET,
          ...['--shard', `${i}/${SHARDS}`, '--start-at', String(startAt), '--fail-at-ms', '9000'],
          ...['--json', shardFile(i)],
        ]),
      ),
    ])
    expect(whole.code, whole.out).toBe(0)
    for (const s of shards) expect(s.code, s.out).toBe(0)

    const merge = await storm([
      'merge',
      ...Array.from({ length: SHARDS }, (_, i) => shardFile(i)),
      ...['--json', join(dir, 'merged.json'), '--html', join(dir, 'merged.html')],
    ])
    expect(merge.code, merge.out).toBe(0)
    expect(merge.out).toMatch(/merged 4 files \(4 shards per run\)/)
    const [merged] = readRecords(join(dir, 'merged.json')) as unknown as MergedRecord[]
    const [one] = readRecords(join(dir, 'whole.json'))
    const parts = Array.from({ length: SHARDS }, (_, i) => readRecords(shardFile(i))[0])
    if (!merged || !one || parts.some((p) => !p)) throw new Error('a record is missing')
    const shardRecords = parts as ShardRecord[]

    // Each shard ran its own slice: 20 devices from 0, 20, 40, 60.
    expect(shardRecords.map((r) => [r.shard.firstDevice, r.devices])).toEqual([
      [0, 20],
      [20, 20],
      [40, 20],
      [60, 20],
    ])
    // The same fleet as the unsharded run: every device id took part (published) in both,
    // every one ended on the secondary, and nothing was lost in either.
    for (const r of [merged, one]) {
      expect(r.devices).toBe(DEVICES)
      expect(r.perDevice.published).toHaveLength(DEVICES)
      expect(r.perDevice.published.every((p) => p > 0)).toBe(true)
      expect(r.devicesOnSecondary).toBe(DEVICES)
      expect(r.messages.lost).toBe(0)
      expect(r.messages.delivered).toBe(r.messages.published)
    }
    expect(merged.merged.shards).toBe(SHARDS)
    // Exact accounting: the merged counts are the shards' summed, device by device.
    const sum = (f: (r: ShardRecord) => number) => shardRecords.reduce((s, r) => s + f(r), 0)
    expect(merged.messages.published).toBe(sum((r) => r.messages.published))
    expect(merged.messages.delivered).toBe(sum((r) => r.messages.delivered))
    expect(merged.messages.duplicates).toBe(sum((r) => r.messages.duplicates))
    expect(merged.connectAttempts).toBe(sum((r) => r.connectAttempts))
    expect(merged.perDevice.published).toEqual(shardRecords.flatMap((r) => r.perDevice.published))
    // Recovery from every device's own time, not from the shards' percentiles.
    const times = shardRecords.flatMap((r) => r.perDevice.recoveryMs) as number[]
    expect(times.every((t) => typeof t === 'number')).toBe(true)
    expect(merged.recovery.p50Ms).toBe(percentileOf(times, DEVICES, 0.5))
    expect(merged.recovery.p90Ms).toBe(percentileOf(times, DEVICES, 0.9))
    expect(merged.recovery.allMs).toBe(Math.max(...times))
    // The page draws the summed timelines.
    expect(readFileSync(join(dir, 'merged.html'), 'utf8')).toMatch(
      /Uplink fleet reconnect storm: 80 devices/,
    )
  }, 90_000)
})

/**
 * Sharding the fleet over machines (or pods): shard I of N runs a contiguous slice of the device
 * indexes. A device's id and its jitter's seed come from its index in the whole fleet, so a
 * device behaves the same whichever shard runs it; a shared start time lines the shards' scenario
 * clocks up.
 */

export interface Shard {
  index: number
  count: number
}

/** `I/N` (0 <= I < N) as a Shard; throws a message for the command line otherwise. */
export function parseShard(text: string | undefined): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text ?? '')
  const index = Number(m?.[1])
  const count = Number(m?.[2])
  if (!m || count < 1 || count > 10_000 || index >= count)
    throw new Error('--shard must be I/N with 0 <= I < N <= 10000 (e.g. 0/4)')
  return { index, count }
}

/** The devices shard `index` of `count` runs: [first, first + devices), the slices tile the fleet. */
export function shardSlice(fleet: number, shard: Shard): { first: number; devices: number } {
  const first = Math.floor((fleet * shard.index) / shard.count)
  const next = Math.floor((fleet * (shard.index + 1)) / shard.count)
  return { first, devices: next - first }
}

/**
 * `--start-at`: epoch ms, or an ISO 8601 time (`2026-12-01T11:00:00Z`, as `date -u -d +2min
 * --iso-8601=seconds` prints it). Every shard starts its run then.
 */
export function parseStartAt(text: string | undefined): number {
  const t = /^\d+$/.test(text ?? '') ? Number(text) : Date.parse(text ?? '')
  if (!Number.isFinite(t)) throw new Error('--start-at must be epoch ms or an ISO 8601 time')
  return t
}

/** How long to wait from `now` for a shared moment (0 if it has passed). */
export function msUntil(at: number | undefined, now: number): number {
  return at === undefined ? 0 : Math.max(0, at - now)
}

/** Pure figures from raw samples: percentiles, rates, message accounting, timelines. */
import { readFileSync } from 'node:fs'
import { round } from './format.js'

/**
 * The time by which `fraction` of all `total` devices had moved, from per-device times
 * (missing devices never moved). Undefined when fewer than that many moved.
 */
export function percentileOf(times: number[], total: number, fraction: number): number | undefined {
  if (total === 0) return 0
  const sorted = [...times].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil(fraction * total))
  return rank <= sorted.length ? sorted[rank - 1] : undefined
}

/** The most events in any window of `windowMs` (sliding), as a rate per second. */
export function peakRate(times: number[], windowMs = 1_000): number {
  const sorted = [...times].sort((a, b) => a - b)
  let best = 0
  let lo = 0
  for (let hi = 0; hi < sorted.length; hi++) {
    while ((sorted[hi] as number) - (sorted[lo] as number) >= windowMs) lo++
    best = Math.max(best, hi - lo + 1)
  }
  return (best * 1_000) / windowMs
}

/** Time from `from` to `to` (ms) cut into buckets of `bucketMs`, at least one. */
export interface BucketSpan {
  from: number
  to: number
  bucketMs: number
}

/** The end of the bucket `t` falls in. */
const bucketEnd = (span: BucketSpan, t: number) =>
  span.from + (Math.floor((t - span.from) / span.bucketMs) + 1) * span.bucketMs

/** Sums what `fill` adds into the buckets by time (outside the span: ignored), per second. */
function perSecond(
  span: BucketSpan,
  fill: (add: (t: number, amount: number) => void) => void,
): number[] {
  const { from, to, bucketMs } = span
  const out = new Array<number>(Math.max(1, Math.ceil((to - from) / bucketMs))).fill(0)
  fill((t, amount) => {
    const i = Math.floor((t - from) / bucketMs)
    if (i >= 0 && i < out.length) out[i] = (out[i] as number) + amount
  })
  return out.map((c) => (c * 1_000) / bucketMs)
}

/** Events per second in each bucket. */
export function ratePerSecond(times: number[], span: BucketSpan): number[] {
  return perSecond(span, (add) => {
    for (const t of times) add(t, 1)
  })
}

/** CPU time used per bucket (in cores: CPU seconds per second), summed over processes. */
export function cpuCores(
  processes: Array<Array<{ at: number; cpu: number }>>,
  span: BucketSpan,
): number[] {
  const cores = perSecond(span, (add) => {
    for (const ticks of processes) {
      for (let k = 1; k < ticks.length; k++) {
        const a = ticks[k - 1] as { at: number; cpu: number }
        const b = ticks[k] as { at: number; cpu: number }
        // A late tick covers a longer interval: spread its CPU over the interval, not its end.
        const perMs = (b.cpu - a.cpu) / Math.max(1, b.at - a.at)
        for (let t = a.at; t < b.at; ) {
          const edge = Math.min(b.at, bucketEnd(span, t))
          add(t, perMs * (edge - t))
          t = edge
        }
      }
    }
  })
  return cores.map((c) => round(c, 2))
}

/** The latest tick any of these processes reported between `from` and `to`. */
export function maxLag(
  processes: Array<Array<{ at: number; lagMs: number }>>,
  from: number,
  to: number,
): number {
  let max = 0
  for (const ticks of processes)
    for (const t of ticks) if (t.at >= from && t.at <= to && t.lagMs > max) max = t.lagMs
  return Math.round(max)
}

export interface DeviceLedger {
  /** Per device: messages whose publish() resolved, as a set of seqs [0, issued) minus `lost`. */
  issued: Uint32Array
  /** Per device: seqs that were issued but never counted as published (rejected, unresolved). */
  notPublished: Map<number, Set<number>>
}

export interface Accounting {
  published: number
  delivered: number
  lost: number
  duplicates: number
  /** Receipts for a seq that no publish() resolved for (should be 0; shown if not). */
  unexpected: number
  /** Per-device examples of lost seqs, for a reproduction. */
  lostExamples: Array<{ device: number; seq: number }>
  /** The same counts per device index (what a merge of shards sums by device). */
  perDevice: { published: Uint32Array; delivered: Uint32Array; duplicates: Uint32Array }
}

/**
 * Exact accounting by sequence number: every (device, seq) whose publish() resolved must appear
 * in at least one broker's receipts; extra appearances are duplicates.
 */
export function account(ledger: DeviceLedger, receiptFiles: string[]): Accounting {
  const n = ledger.issued.length
  // Per device a count per seq; seqs are dense from 0, so a flat array per device does.
  const seen: Uint8Array[] = new Array(n)
  for (let d = 0; d < n; d++) seen[d] = new Uint8Array(ledger.issued[d] as number)
  let unexpected = 0
  let duplicates = 0
  const perDevice = {
    published: new Uint32Array(n),
    delivered: new Uint32Array(n),
    duplicates: new Uint32Array(n),
  }
  for (const file of receiptFiles) {
    let buffer: Buffer
    try {
      buffer = readFileSync(file)
    } catch {
      continue
    }
    for (let o = 0; o + 8 <= buffer.length; o += 8) {
      const d = buffer.readUInt32LE(o)
      const seq = buffer.readUInt32LE(o + 4)
      const row = seen[d]
      if (!row || seq >= row.length || ledger.notPublished.get(d)?.has(seq)) {
        unexpected++
        continue
      }
      if ((row[seq] as number) > 0) {
        duplicates++
        perDevice.duplicates[d] = (perDevice.duplicates[d] as number) + 1
      }
      if ((row[seq] as number) < 255) row[seq] = (row[seq] as number) + 1
    }
  }
  let published = 0
  let delivered = 0
  const lostExamples: Array<{ device: number; seq: number }> = []
  for (let d = 0; d < n; d++) {
    const row = seen[d] as Uint8Array
    const skip = ledger.notPublished.get(d)
    for (let seq = 0; seq < row.length; seq++) {
      if (skip?.has(seq)) continue
      published++
      perDevice.published[d] = (perDevice.published[d] as number) + 1
      if ((row[seq] as number) > 0) {
        delivered++
        perDevice.delivered[d] = (perDevice.delivered[d] as number) + 1
      } else if (lostExamples.length < 10) lostExamples.push({ device: d, seq })
    }
  }
  return {
    published,
    delivered,
    lost: published - delivered,
    duplicates,
    unexpected,
    lostExamples,
    perDevice,
  }
}

/**
 * Target mode's accounting, from the devices' side (no receipts at the user's brokers): a
 * published message counts as delivered once no device holds it any more (its broker
 * acknowledged it); what a device still held at the end, or its outbox dropped, is lost.
 * Duplicates cannot be seen from here (0).
 */
export function accountFromDevices(
  ledger: DeviceLedger,
  queuedPer: Map<number, number>,
  drops: number,
): Accounting {
  const n = ledger.issued.length
  const perDevice = {
    published: new Uint32Array(n),
    delivered: new Uint32Array(n),
    duplicates: new Uint32Array(n),
  }
  for (let d = 0; d < n; d++) {
    const published = (ledger.issued[d] as number) - (ledger.notPublished.get(d)?.size ?? 0)
    perDevice.published[d] = published
    perDevice.delivered[d] = Math.max(0, published - (queuedPer.get(d) ?? 0))
  }
  const published = perDevice.published.reduce((a, b) => a + b, 0)
  const delivered = Math.max(0, perDevice.delivered.reduce((a, b) => a + b, 0) - drops)
  return {
    published,
    delivered,
    lost: published - delivered,
    duplicates: 0,
    unexpected: 0,
    lostExamples: [],
    perDevice,
  }
}

/**
 * The fleet: device worker processes, each running a contiguous range of devices. Starting them,
 * connecting them to the primary, the steady publishing before the failure, and the drain and
 * the collection of every device's figures after it.
 */
import type { DeviceSettings } from './devices.js'
import type { Child } from './proc.js'
import { memoryGrowth } from './record.js'
import { BROKER_NAME, PRIMARY_ADDRESS, type Regions, SECONDARY_ADDRESS } from './regions.js'
import type { RunContext } from './run-context.js'
import type { DeviceReport, MemorySample, RunSamples, WorkerTick } from './samples.js'

export interface Worker {
  child: Child
  /** Its devices: [first, first + count). */
  first: number
  count: number
  /** Filled as the worker reports. */
  ticks: WorkerTick[]
}

export interface Fleet {
  workers: Worker[]
  /** Each worker's memory and CPU once it had loaded, before its devices started. */
  inits: Array<MemorySample & { cpu: number }>
}

/** What every device is told: where to connect, how to back off, how to notice a move. */
export function deviceSettings(ctx: RunContext, regions: Regions): DeviceSettings {
  const { config, scenario, client } = ctx
  const { dns, concierge } = ctx.servers
  const { target } = regions
  if (!dns && !target) throw new Error('the DNS server is not running')
  return {
    client,
    host: BROKER_NAME,
    port: regions.port,
    dnsServer: target ? config.target?.dnsServer : dns?.server,
    target: target
      ? { endpoints: [target.primary, target.secondary], auth: target.auth }
      : undefined,
    keepalive: config.keepalive,
    connectTimeoutMs: config.connectTimeoutMs,
    backoff: {
      initialMs: config.backoff.initialMs,
      maxMs: config.backoff.maxMs,
      jitter: 'full',
      stableMs: config.backoff.stableMs,
      informed: { spreadMs: config.backoff.spreadMs },
    },
    dnsWatch:
      scenario === 'dns-flip'
        ? { minIntervalMs: config.dnsWatchMinMs, maxIntervalMs: 300_000 }
        : undefined,
    concierge:
      concierge && scenario === 'concierge-flip'
        ? {
            url: concierge.url,
            intervalMs: config.conciergeIntervalMs,
            jitter: config.conciergeJitter,
          }
        : undefined,
    allowedHosts: target ? [] : ['*.storm.test'],
    minStayMs: config.minStayMs,
    store: config.store,
    storeDir: ctx.dir,
    payloadBytes: config.payloadBytes,
    seed: config.seed,
  }
}

export async function startFleet(
  ctx: RunContext,
  regions: Regions,
  workerCount: number,
): Promise<Fleet> {
  const n = ctx.config.devices
  const settings = deviceSettings(ctx, regions)
  ctx.progress.phase('starting device workers')
  const workers: Worker[] = []
  for (let w = 0; w < workerCount; w++) {
    const offset = Math.floor((n * w) / workerCount)
    const count = Math.floor((n * (w + 1)) / workerCount) - offset
    const first = ctx.firstDevice + offset
    const child = ctx.fork('device-worker.ts', `devices-${w}`, { gc: true })
    const ticks: WorkerTick[] = []
    child.onMessage((m) => {
      if (m.type === 'tick') ticks.push(m as unknown as WorkerTick)
    })
    workers.push({ child, first, count, ticks })
  }
  const inits = await Promise.all(
    workers.map((w) =>
      w.child.request<MemorySample & { cpu: number }>({
        type: 'init',
        settings,
        first: w.first,
        count: w.count,
        // Target mode: told apart by endpoint (the user's brokers may share an address).
        primaryAddress: regions.target?.primary ?? PRIMARY_ADDRESS,
        secondaryAddress: regions.target?.secondary ?? SECONDARY_ADDRESS,
        tickMs: ctx.config.tickMs,
      }),
    ),
  )
  return { workers, inits }
}

/** A figure summed over the workers' latest ticks. */
export function fleetSum(fleet: Fleet, f: (t: WorkerTick) => number): number {
  return fleet.workers.reduce((s, w) => {
    const t = w.ticks.at(-1)
    return s + (t ? f(t) : 0)
  }, 0)
}

/** Connects every device to the primary at half the secondary's accept rate; throws if some did not. */
export async function connectFleet(ctx: RunContext, fleet: Fleet, acceptRate: number) {
  const n = ctx.config.devices
  const onPrimary = () => fleetSum(fleet, (t) => t.connected[1] ?? 0)
  const rampPerSec = Math.max(200, Math.round(acceptRate * 0.5))
  ctx.progress.phase(`connecting ${n} devices (${rampPerSec}/s)`)
  await Promise.all(
    fleet.workers.map((w) =>
      w.child.request(
        { type: 'start', rampPerSec: rampPerSec / fleet.workers.length },
        120_000 + (n / rampPerSec) * 1_000,
      ),
    ),
  )
  const allUp = await ctx.waitUntil(
    () => onPrimary() === n,
    30_000 + (n / rampPerSec) * 2_000,
    () => ctx.progress.update(onPrimary(), n, 'on the primary'),
  )
  if (!allUp) throw new Error(`only ${onPrimary()} of ${n} devices connected to the primary`)
}

/**
 * Steady publishing for the warm-up; then the workers' memory (after a full GC) against their
 * start, and the mark from which connect attempts are counted.
 */
export async function warmUp(ctx: RunContext, fleet: Fleet): Promise<RunSamples['memory']> {
  const periodMs = 1_000 / ctx.config.rate
  await Promise.all(fleet.workers.map((w) => w.child.request({ type: 'publish', periodMs })))
  ctx.progress.phase('warm-up')
  await ctx.waitUntil(
    () => false,
    ctx.config.warmupMs,
    () =>
      ctx.progress.update(
        fleetSum(fleet, (t) => t.published),
        0,
        'published',
      ),
  )
  const memory = await Promise.all(
    fleet.workers.map((w) => w.child.request<MemorySample>({ type: 'memory' })),
  )
  await Promise.all(fleet.workers.map((w) => w.child.request({ type: 'mark' })))
  return memoryGrowth(fleet.inits, memory)
}

/** Stops publishing and waits (bounded) for every queue to empty; per worker, who did not. */
export async function drainFleet(fleet: Fleet): Promise<number[]> {
  const drains = await Promise.all(
    fleet.workers.map((w) =>
      w.child.request<{ undrained: number }>({ type: 'drain', timeoutMs: 30_000 }, 60_000),
    ),
  )
  return drains.map((d) => d.undrained)
}

export function collectFleet(fleet: Fleet): Promise<DeviceReport[]> {
  return Promise.all(fleet.workers.map((w) => w.child.request<DeviceReport>({ type: 'collect' })))
}

/** CPU seconds the workers used since they loaded, from their final reports. */
export function fleetCpuSeconds(fleet: Fleet, reports: DeviceReport[]): number {
  return reports.reduce((s, r, i) => s + r.cpu - (fleet.inits[i]?.cpu ?? 0), 0)
}

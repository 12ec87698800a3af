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
import type { DeviceCpu, DeviceReport, MemorySample, RunSamples, WorkerTick } from './samples.js'

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
  /**
   * Each worker's memory and CPU just before its devices started (after the accept-rate probe,
   * which runs in a worker): what the devices' figures are measured from. Set by connectFleet.
   */
  baselines: Array<MemorySample & { cpu: number }>
  /** Each worker's CPU seconds when publishing began (warmUp) and at the mark before the failure. */
  cpuAt: { publishing: number[]; mark: number[] }
}

/**
 * V8's young generation, per semi-space (MiB), fixed for every device worker of either client
 * (`--min-semi-space-size` = `--max-semi-space-size`). Left to itself, Node 24 grows it with the
 * allocation rate to 64 MiB a semi-space: a per-process constant of up to 128 MiB that says how
 * busy the worker was, not how many devices it holds, and that made the memory per device
 * compare the two clients' allocation rates. 16 MiB is V8's long-standing 64-bit default
 * maximum; the worker writes it in full before its baseline (device-worker.ts).
 */
export const WORKER_SEMI_SPACE_MIB = 16

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
      // Sized once the accept rate is known: connectFleet sends it with the start.
      informed: { spreadMs: 0 },
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
    const child = ctx.fork('device-worker.ts', `devices-${w}`, {
      gc: true,
      // Uplink as its package is published; the baseline is MQTT.js's published JavaScript.
      asBuilt: true,
      execArgv: [
        `--min-semi-space-size=${WORKER_SEMI_SPACE_MIB}`,
        `--max-semi-space-size=${WORKER_SEMI_SPACE_MIB}`,
        // STORM_WORKER_FLAGS="--trace-opt --trace-deopt": Node and V8 flags for the device
        // workers alone, for finding what their compilers do.
        ...(process.env.STORM_WORKER_FLAGS?.split(/\s+/).filter(Boolean) ?? []),
      ],
    })
    const ticks: WorkerTick[] = []
    child.onMessage((m) => {
      if (m.type === 'tick') ticks.push(m as unknown as WorkerTick)
    })
    workers.push({ child, first, count, ticks })
  }
  await Promise.all(
    workers.map((w) =>
      w.child.request({
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
  return { workers, baselines: [], cpuAt: { publishing: [], mark: [] } }
}

/** A figure summed over the workers' latest ticks. */
export function fleetSum(fleet: Fleet, f: (t: WorkerTick) => number): number {
  return fleet.workers.reduce((s, w) => {
    const t = w.ticks.at(-1)
    return s + (t ? f(t) : 0)
  }, 0)
}

/** Connects every device to the primary at half the secondary's accept rate; throws if some did not. */
export async function connectFleet(
  ctx: RunContext,
  fleet: Fleet,
  acceptRate: number,
  spreadMs: number,
) {
  const n = ctx.config.devices
  const onPrimary = () => fleetSum(fleet, (t) => t.connected[1] ?? 0)
  const rampPerSec = Math.max(200, Math.round(acceptRate * 0.5))
  ctx.progress.phase(`connecting ${n} devices (${rampPerSec}/s)`)
  const started = await Promise.all(
    fleet.workers.map((w) =>
      w.child.request<{ baseline: MemorySample & { cpu: number } }>(
        { type: 'start', rampPerSec: rampPerSec / fleet.workers.length, spreadMs },
        120_000 + (n / rampPerSec) * 1_000,
      ),
    ),
  )
  fleet.baselines = started.map((s) => s.baseline)
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
  const publishing = await Promise.all(
    fleet.workers.map((w) => w.child.request<{ cpu: number }>({ type: 'publish', periodMs })),
  )
  fleet.cpuAt.publishing = publishing.map((p) => p.cpu)
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
  const marks = await Promise.all(
    fleet.workers.map((w) => w.child.request<{ cpu: number }>({ type: 'mark' })),
  )
  fleet.cpuAt.mark = marks.map((m) => m.cpu)
  return memoryGrowth(fleet.baselines, memory)
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

/**
 * CPU seconds the workers used from their devices' start, from their final reports, and its
 * phases: connecting the fleet, the steady warm-up, and the storm (failure to the end of the
 * drain).
 */
export function fleetCpuSeconds(fleet: Fleet, reports: DeviceReport[]): DeviceCpu {
  const sum = (f: (i: number) => number) => reports.reduce((s, _, i) => s + f(i), 0)
  const at = (xs: number[], i: number) => xs[i] ?? 0
  const start = (i: number) => fleet.baselines[i]?.cpu ?? 0
  const { publishing, mark } = fleet.cpuAt
  return {
    devices: sum((i) => (reports[i]?.cpu ?? 0) - start(i)),
    byPhase: {
      connect: sum((i) => at(publishing, i) - start(i)),
      steady: sum((i) => at(mark, i) - at(publishing, i)),
      storm: sum((i) => (reports[i]?.cpu ?? 0) - at(mark, i)),
    },
  }
}

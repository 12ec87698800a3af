/**
 * The fleet reconnect storm: sets up two regions (aedes brokers in their own processes on
 * 127.0.0.1 and 127.0.0.2, same port, so a DNS flip is all that changes), a DNS server and a
 * concierge in this process, and the fleet in device worker processes; measures the secondary's
 * accept rate; then fails the primary one of four ways and measures the fleet's way over.
 *
 * `runScenario` is the sequence of phases (regions.ts, fleet.ts, probe.ts, failure.ts), each
 * handed the run's context (run-context.ts); what they collect becomes the record and the
 * timeline through pure builders (record.ts, timeline.ts).
 */
import { writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { DEFAULTS as UPLINK_DEFAULTS } from '@uplink/client'
import type { ClientKind, Scenario, StormConfig } from './config.js'
import { awaitFailureMoment, injectFailure, recoverTarget, watchRecovery } from './failure.js'
import {
  collectFleet,
  connectFleet,
  drainFleet,
  type Fleet,
  fleetCpuSeconds,
  startFleet,
  warmUp,
} from './fleet.js'
import { fmtS } from './format.js'
import { udpReceiveDrops } from './machine.js'
import { account, accountFromDevices } from './metrics.js'
import { type AcceptRate, measureAcceptRate } from './probe.js'
import { openFileLimit } from './proc.js'
import { buildRecord, ledgerOf, type StormRecord } from './record.js'
import { type Regions, regionsCpuSeconds, startRegions, stopBrokers } from './regions.js'
import { RunContext, type RunHooks, sleep } from './run-context.js'
import type { DeviceReport, RecoveryBound, RunSamples } from './samples.js'
import { msUntil } from './shard.js'
import { buildTimeline, type StormTimeline } from './timeline.js'

export interface StormRun {
  record: StormRecord
  timeline: StormTimeline
}

/**
 * Worker processes and proxy shards: enough that none runs out of open files, and one per 5 000
 * devices. Each worker carries some 30 MiB that does not grow with its devices (V8's young
 * generation, compiled code), so fewer workers report a truer memory per device. SQLite runs
 * take two at least: a commit's fsync blocks its worker's event loop.
 */
export function layout(config: StormConfig): { workers: number; proxyShards: number } {
  const limit = openFileLimit()
  const perDevice = config.store === 'sqlite' ? 6 : 2.5
  const workers =
    config.workers ||
    Math.max(
      config.store === 'sqlite' ? 2 : 1,
      Math.ceil(config.devices / 5_000),
      Math.ceil((config.devices * perDevice) / (limit * 0.7)),
    )
  const proxyShards = Math.max(1, Math.ceil((config.devices * 2 + 500) / (limit * 0.8)))
  return { workers, proxyShards }
}

/**
 * The recovery bound for a run, before the storm: the time a client of its kind need not exceed.
 * For a failure: [keepalive x 1.5 for blackhole] + health-check delay + how late the client can
 * learn of the flip + one step + devices / accept rate. Uplink learns of it when the answer it
 * holds runs out (informed backoff re-resolves then, never sooner than its probe floor), however
 * long its ladder's wait, and then steps within 0..spreadMs; MQTT.js ignores the TTL and retries
 * every reconnectPeriod (1 s). For a planned move: the signal's poll interval with its jitter +
 * devices / accept rate.
 */
export function recoveryBound(
  scenario: Scenario,
  client: ClientKind,
  config: StormConfig,
  acceptRate: number,
  fleetDevices = config.devices,
): RecoveryBound {
  const parts: Record<string, number> = {}
  if (scenario === 'blackhole') parts.keepaliveDetectMs = config.keepalive * 1_500
  if (scenario === 'crash' || scenario === 'blackhole') {
    parts.healthCheckMs = config.healthCheckMs
    if (client === 'uplink') {
      const floor = UPLINK_DEFAULTS.backoff.informed.minProbeIntervalMs
      parts.dnsTtlMs = Math.max(config.dnsTtl * 1_000, floor)
      parts.spreadMs = arrivalSpreadMs(config, fleetDevices, acceptRate)
    } else parts.reconnectPeriodMs = 1_000
  }
  if (scenario === 'dns-flip') {
    parts.pollMs = Math.max(config.dnsTtl * 1_000, config.dnsWatchMinMs)
  }
  if (scenario === 'concierge-flip') {
    parts.pollMs = Math.round(config.conciergeIntervalMs * (1 + config.conciergeJitter))
  }
  parts.acceptMs = Math.round((config.devices / Math.max(1, acceptRate)) * 1_000)
  const total = Object.values(parts).reduce((a, b) => a + b, 0)
  return { total, parts }
}

/**
 * Uplink's arrival spread: `--spread-ms`, or as the README tells a user to size it: the time the
 * secondary needs to accept the whole fleet (every shard's devices), 1 s at least (the SDK's
 * default). Without it a 10 000-device fleet's ladders bring it to the new address at some
 * 3 000 a second, above what this machine's aedes accepts.
 */
export function arrivalSpreadMs(config: StormConfig, fleetDevices: number, acceptRate: number) {
  if (config.backoff.spreadMs !== undefined) return config.backoff.spreadMs
  return Math.max(1_000, Math.round((fleetDevices / Math.max(1, acceptRate)) * 1_000))
}

/** One scenario for one kind of client, on fresh brokers and a fresh fleet. */
export async function runScenario(
  scenario: Scenario,
  client: ClientKind,
  input: StormConfig,
  hooks: RunHooks = {},
): Promise<StormRun> {
  const ctx = new RunContext(scenario, client, input, hooks)
  try {
    const { config } = ctx
    // Every shard starts at the shared moment (a pod that came up early waits for the rest).
    const startIn = msUntil(config.startAt, Date.now())
    if (startIn > 0) {
      ctx.progress.phase(`starting in ${(startIn / 1000).toFixed(1)} s (--start-at)`)
      await sleep(startIn)
    }
    const plan = layout(config)
    const regions = await startRegions(ctx, plan.proxyShards)
    const fleet = await startFleet(ctx, regions, plan.workers)
    const rate = await measureAcceptRate(ctx, regions, fleet)
    const bound = recoveryBound(scenario, client, config, rate.perSec, ctx.fleetDevices)
    ctx.log(`${scenario} / ${client}: ${probeText(rate, bound)}`)
    await connectFleet(
      ctx,
      fleet,
      rate.perSec,
      arrivalSpreadMs(config, ctx.fleetDevices, rate.perSec),
    )
    const memory = await warmUp(ctx, fleet)
    const udpDropsBefore = udpReceiveDrops()
    await awaitFailureMoment(ctx)
    const failure = await injectFailure(ctx, regions)
    await watchRecovery(ctx, fleet, failure, bound.total)
    const { udpDropsAfter, ...counted } = await drainAndCount(ctx, regions, fleet)
    const samples: RunSamples = {
      scenario,
      client,
      config,
      layout: plan,
      bound,
      acceptRate: rate.perSec,
      t0: failure.t0,
      flipAt: failure.flipAt,
      primaryGoneMs: failure.primaryGoneMs,
      memory,
      workerTicks: fleet.workers.map((w) => w.ticks),
      primaryTicks: regions.primary.ticks,
      secondaryTicks: regions.secondary.ticks,
      ...counted,
      dnsQueries: ctx.servers.dns ? ctx.dnsQueriesBetween(failure.t0, counted.end) : undefined,
      machine: {
        cores: availableParallelism(),
        loadAverageAtStart: ctx.loadAverageAtStart,
        udpDropsBefore,
        udpDropsAfter,
      },
      wallMs: Date.now() - ctx.startedAt,
      shard: { ...config.shard, firstDevice: ctx.firstDevice, fleetDevices: input.devices },
      target: regions.target
        ? { primary: regions.target.primary, secondary: regions.target.secondary }
        : undefined,
    }
    const record = buildRecord(samples)
    if (process.env.STORM_DEBUG_TICKS) dumpTicks(process.env.STORM_DEBUG_TICKS, samples)
    const timeline = buildTimeline(samples)
    ctx.progress.done(
      `${scenario} / ${client}: ${record.devicesOnSecondary}/${record.devices} on the secondary, ` +
        `all in ${record.recovery.allMs === null ? 'never' : fmtS(record.recovery.allMs)}, ` +
        `lost ${record.messages.lost}`,
    )
    return { record, timeline }
  } finally {
    await ctx.close()
  }
}

/**
 * After the storm: drain every queue, collect every device's figures and every process's CPU,
 * stop the brokers (so their receipts are complete), and count the messages by sequence.
 */
async function drainAndCount(ctx: RunContext, regions: Regions, fleet: Fleet) {
  ctx.progress.phase('draining')
  const undrained = await drainFleet(fleet)
  const end = Date.now()
  const udpDropsAfter = udpReceiveDrops()
  const reports = await collectFleet(fleet)
  const brokers = await regionsCpuSeconds(regions)
  const cpu = {
    ...fleetCpuSeconds(fleet, reports),
    brokers,
    services: ctx.servicesCpuSeconds(),
  }
  ctx.progress.phase('stopping')
  await stopBrokers(regions)
  await recoverTarget(ctx)
  const ledger = ledgerOf(reports, ctx.firstDevice + ctx.config.devices)
  const accounting = regions.target
    ? accountFromDevices(
        ledger,
        queuedByDevice(reports),
        sumOf(reports, (r) => r.drops),
      )
    : account(ledger, [regions.primary.receipts, regions.secondary.receipts])
  return { end, udpDropsAfter, reports, undrained, cpu, accounting }
}

const sumOf = <T>(xs: T[], f: (x: T) => number) => xs.reduce((a, x) => a + f(x), 0)

/** Per device index: what it still held at the end. */
function queuedByDevice(reports: DeviceReport[]): Map<number, number> {
  const out = new Map<number, number>()
  for (const r of reports) r.queuedPer.forEach((q, j) => q > 0 && out.set(r.first + j, q))
  return out
}

/** What the probe measured and the bound it gives, for the log. */
function probeText(rate: AcceptRate, bound: RecoveryBound) {
  const parts = Object.entries(bound.parts)
    .map(([k, v]) => `${k} ${fmtS(v)}`)
    .join(' + ')
  return (
    `secondary accepts ${rate.perSec} connections/s ` +
    (rate.derived
      ? '(derived: timed at the probing clients, the broker is not ours; '
      : `(broker side: ${rate.brokerConnects} raw MQTT connects in ${rate.brokerSpanMs} ms; `) +
    `${rate.clientAcks} CONNACKs in ${rate.clientSpanMs} ms at the clients); ` +
    `recovery bound ${fmtS(bound.total)} = ${parts}`
  )
}

/** STORM_DEBUG_TICKS=<file>: the raw ticks of the run, for digging. */
function dumpTicks(file: string, s: RunSamples): void {
  writeFileSync(
    file,
    JSON.stringify({ t0: s.t0, workers: s.workerTicks, secondary: s.secondaryTicks }),
  )
}

/** Every scenario, each for Uplink and (with --compare) the baseline, one after another. */
export async function runStorm(config: StormConfig, hooks: RunHooks = {}): Promise<StormRun[]> {
  const runs: StormRun[] = []
  for (const scenario of config.scenarios) {
    for (const client of config.clients) {
      runs.push(await runScenario(scenario, client, config, hooks))
    }
  }
  return runs
}

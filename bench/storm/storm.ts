/**
 * The fleet reconnect storm: sets up two regions (aedes brokers in their own processes on
 * 127.0.0.1 and 127.0.0.2, same port, so a DNS flip is all that changes), a DNS server and a
 * concierge in this process, and the fleet in device worker processes; measures the secondary's
 * accept rate; then fails the primary one of four ways and measures the fleet's way over.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startConcierge, startDnsServer, type TestConcierge } from '@uplink/testkit'
import { type ClientKind, type Scenario, type StormConfig, withFleetDefaults } from './config.js'
import type { DeviceSettings } from './devices.js'
import {
  type Accounting,
  account,
  emptyBuckets,
  peakRate,
  percentileOf,
  ratePerSecond,
} from './metrics.js'
import { type Child, endChild, forkChild, openFileLimit } from './proc.js'
import { Progress } from './progress.js'

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))

/** The fleet's broker name, and the second region's own name for the concierge's directive. */
export const BROKER_NAME = 'mqtt.storm.test'
export const REGION_B_NAME = 'region-b.storm.test'
export const PRIMARY_ADDRESS = '127.0.0.1'
export const SECONDARY_ADDRESS = '127.0.0.2'
/** Blackhole: the primary broker sits behind the fault proxy, which takes 127.0.0.1. */
const HIDDEN_PRIMARY_ADDRESS = '127.0.0.3'

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
  /** Connect attempts reaching the secondary (TCP accepts), most in any 1 s window. */
  peakConnectsPerSec: number
  /** MQTT sessions the secondary established (CONNACKs), most in any 1 s window. */
  peakSessionsPerSec: number
  messages: { published: number; delivered: number; lost: number; duplicates: number }
  cpuSeconds: number
  rssPerDeviceKiB: number
  /** The same without the growth of V8's young generation (a constant per worker process). */
  rssPerDeviceExclYoungGenKiB: number
  /** The V8 heap's share of it (after a full GC). */
  heapPerDeviceKiB: number
  store: 'memory' | 'sqlite'
  devicesOnSecondary: number
  /** The recovery this run could not beat, computed before the storm (see boundParts). */
  boundMs: number
  boundParts: Record<string, number>
  acceptRatePerSec: number
  cpu: { devices: number; brokers: number; services: number }
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
}

export interface Series {
  /** ms relative to the failure. */
  at: number[]
  values: number[]
}

export interface StormTimeline {
  /** ms relative to the failure; the failure is at 0. */
  start: number
  end: number
  /** DNS flip (crash, blackhole), ms after the failure. */
  flipAt?: number | undefined
  connectedPrimary: Series
  connectedSecondary: Series
  attemptsPerSec: Series
  secondaryConnectsPerSec: Series
  secondaryAcceptsPerSec: Series
  /** CPU in use, in cores, by the device workers and by each broker. */
  cpuDevices: Series
  cpuSecondary: Series
  cpuPrimary: Series
}

export interface StormRun {
  record: StormRecord
  timeline: StormTimeline
}

interface WorkerTick {
  at: number
  cpu: number
  lagMs: number
  attempts: number
  connected: number[]
  moved: number
  published: number
  pending: number
}

interface BrokerTick {
  at: number
  clients: number
  /** MQTT sessions established (CONNACK sent). */
  connects: number[]
  /** TCP connections accepted: connect attempts that reached the broker. */
  accepts: number[]
  receipts: number
  cpu: number
  lagMs: number
}

/** CPU time used per bucket (in cores: CPU seconds per second), summed over processes. */
function cpuCores(
  processes: Array<Array<{ at: number; cpu: number }>>,
  from: number,
  to: number,
  bucketMs: number,
): number[] {
  const out = emptyBuckets(from, to, bucketMs)
  const n = out.length
  for (const ticks of processes) {
    for (let k = 1; k < ticks.length; k++) {
      const a = ticks[k - 1] as { at: number; cpu: number }
      const b = ticks[k] as { at: number; cpu: number }
      // A late tick covers a longer interval: spread its CPU over the interval, not its end.
      const span = Math.max(1, b.at - a.at)
      const perMs = (b.cpu - a.cpu) / span
      for (let t = a.at; t < b.at; ) {
        const i = Math.floor((t - from) / bucketMs)
        const edge = Math.min(b.at, from + (i + 1) * bucketMs)
        if (i >= 0 && i < n) out[i] = (out[i] as number) + perMs * (edge - t)
        t = edge
      }
    }
  }
  return out.map((c) => round((c * 1_000) / bucketMs, 2))
}

/** The latest tick any of these processes reported between `from` and `to`. */
function maxLag(processes: Array<Array<{ at: number; lagMs: number }>>, from: number, to: number) {
  let max = 0
  for (const ticks of processes)
    for (const t of ticks) if (t.at >= from && t.at <= to && t.lagMs > max) max = t.lagMs
  return Math.round(max)
}

/** Housekeeping while a run waits (trimming the servers' request logs). */
let everyPoll: (() => void) | undefined

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function waitUntil(
  predicate: () => boolean,
  timeoutMs: number,
  onPoll?: () => void,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    onPoll?.()
    everyPoll?.()
    if (predicate()) return true
    await sleep(100)
  }
  return predicate()
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
 * The recovery bound for a run, before the storm: the time nothing can beat. For a failure:
 * [keepalive x 1.5 for blackhole] + health-check delay + the largest backoff wait a device can
 * be in when DNS flips + devices / accept rate. For a planned move: the signal's poll interval
 * with its jitter + devices / accept rate.
 */
export function recoveryBound(
  scenario: Scenario,
  client: ClientKind,
  config: StormConfig,
  acceptRate: number,
): { total: number; parts: Record<string, number> } {
  const parts: Record<string, number> = {}
  if (scenario === 'blackhole') parts.keepaliveDetectMs = config.keepalive * 1_500
  if (scenario === 'crash' || scenario === 'blackhole') {
    parts.healthCheckMs = config.healthCheckMs
    // Full jitter can draw near-zero waits, so by the flip a device may be on any step of its
    // ladder: the largest wait it can be in is the cap. MQTT.js waits reconnectPeriod, flat.
    parts.largestBackoffMs = client === 'uplink' ? config.backoff.maxMs : 1_000
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

export interface RunHooks {
  log?: (line: string) => void
}

/** One scenario for one kind of client, on fresh brokers and a fresh fleet. */
export async function runScenario(
  scenario: Scenario,
  client: ClientKind,
  input: StormConfig,
  hooks: RunHooks = {},
): Promise<StormRun> {
  const config = withFleetDefaults(input)
  const log = hooks.log ?? (() => {})
  const began = Date.now()
  const dir = mkdtempSync(join(tmpdir(), 'uplink-storm-'))
  const children: Child[] = []
  let dns: Awaited<ReturnType<typeof startDnsServer>> | undefined
  let concierge: TestConcierge | undefined
  const progress = new Progress(config.progress, `${scenario} / ${client}`)
  const cpuParentStart = process.cpuUsage()
  // Other work on the machine skews every timing here; the record says how busy it was.
  const loadAtStart = round(loadavg()[0] ?? 0, 2)
  try {
    const { workers: workerCount, proxyShards } = layout(config)
    const N = config.devices

    // --- the regions -------------------------------------------------------------------------
    progress.phase('starting brokers')
    const startBrokerChild = async (name: string, host: string, port: number) => {
      const child = forkChild(here('./broker-process.ts'), name)
      children.push(child)
      const ticks: BrokerTick[] = []
      child.onMessage((m) => {
        if (m.type === 'tick') ticks.push(m as unknown as BrokerTick)
      })
      const receipts = join(dir, `${name}.receipts`)
      const started = await child.request<{ port: number; cpu: number }>({
        type: 'start',
        host,
        port,
        receipts,
        tickMs: config.tickMs,
      })
      return { child, ticks, receipts, port: started.port, cpu0: started.cpu }
    }
    const blackhole = scenario === 'blackhole'
    const primary = await startBrokerChild(
      'primary',
      blackhole ? HIDDEN_PRIMARY_ADDRESS : PRIMARY_ADDRESS,
      0,
    )
    let port = primary.port
    let proxy: Child | undefined
    let proxyCpu0 = 0
    if (blackhole) {
      proxy = forkChild(here('./proxy-process.ts'), 'proxy')
      children.push(proxy)
      const p = await proxy.request<{ port: number; cpu: number }>({
        type: 'start',
        host: PRIMARY_ADDRESS,
        target: { host: HIDDEN_PRIMARY_ADDRESS, port: primary.port },
        shards: proxyShards,
      })
      port = p.port
      proxyCpu0 = p.cpu
    }
    const secondary = await startBrokerChild('secondary', SECONDARY_ADDRESS, port)

    // --- DNS and the concierge, in this process ---------------------------------------------
    dns = await startDnsServer({ host: '127.0.0.1' })
    dns.set(BROKER_NAME, [PRIMARY_ADDRESS], config.dnsTtl)
    dns.set(REGION_B_NAME, [SECONDARY_ADDRESS], config.dnsTtl)
    const primaryUrl = `mqtt://${BROKER_NAME}:${port}`
    if (scenario === 'concierge-flip') {
      concierge = await startConcierge({ body: { endpoint: primaryUrl, epoch: 1 } })
    }
    const servers = { dns, concierge }
    everyPoll = () => trimServerLogs(servers.dns, servers.concierge)

    // --- the fleet -----------------------------------------------------------------------------
    const settings: DeviceSettings = {
      client,
      host: BROKER_NAME,
      port,
      dnsServer: dns.server,
      keepalive: config.keepalive,
      connectTimeoutMs: config.connectTimeoutMs,
      backoff: { ...config.backoff, jitter: 'full' },
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
      allowedHosts: ['*.storm.test'],
      minStayMs: config.minStayMs,
      store: config.store,
      storeDir: dir,
      payloadBytes: config.payloadBytes,
      seed: config.seed,
    }
    progress.phase('starting device workers')
    const workers: Array<{ child: Child; first: number; count: number; ticks: WorkerTick[] }> = []
    for (let w = 0; w < workerCount; w++) {
      const first = Math.floor((N * w) / workerCount)
      const count = Math.floor((N * (w + 1)) / workerCount) - first
      const child = forkChild(here('./device-worker.ts'), `devices-${w}`, { gc: true })
      children.push(child)
      const ticks: WorkerTick[] = []
      child.onMessage((m) => {
        if (m.type === 'tick') ticks.push(m as unknown as WorkerTick)
      })
      workers.push({ child, first, count, ticks })
    }
    const inits = await Promise.all(
      workers.map((w) =>
        w.child.request<{
          rss: number
          heapUsed: number
          spaces: Record<string, number>
          cpu: number
        }>({
          type: 'init',
          settings,
          first: w.first,
          count: w.count,
          primaryAddress: PRIMARY_ADDRESS,
          secondaryAddress: SECONDARY_ADDRESS,
          tickMs: config.tickMs,
        }),
      ),
    )
    const latest = () => workers.map((w) => w.ticks[w.ticks.length - 1])
    const sum = (f: (t: WorkerTick) => number) => latest().reduce((s, t) => s + (t ? f(t) : 0), 0)

    // --- the secondary's accept rate ---------------------------------------------------------
    progress.phase('measuring the secondary accept rate')
    const probeCount = config.probe || Math.max(100, Math.min(N, 2_000))
    const probeRound = async (total: number, tag: string) => {
      // One client process, so the broker keeps a core to itself: on a 2-core machine two busy
      // probe processes measure the CPU contention, not the broker.
      const prober = workers[0] as (typeof workers)[number]
      const result = await prober.child.request<{
        ok: number
        failed: number
        firstSentAt: number
        lastAckAt: number
      }>(
        {
          type: 'probe',
          host: SECONDARY_ADDRESS,
          port,
          count: total,
          // As many at once as fit the broker's listen backlog (Node's default 511): beyond it
          // the kernel drops SYNs and the 1 s SYN retransmit would be measured, not the broker.
          window: 400,
          tag,
        },
        60_000,
      )
      const brokerSide = await secondary.child.request<{ at: number[] }>({ type: 'probe-connects' })
      return { results: [result], at: brokerSide.at }
    }
    // A first, unmeasured round warms the broker's code paths up (JIT), as a long-running
    // broker's would be; then the better of two measured rounds (a busy moment of a shared
    // 2-core machine should not pass for the broker's capacity).
    const emptied = () =>
      waitUntil(() => (secondary.ticks[secondary.ticks.length - 1]?.clients ?? 1) === 0, 10_000)
    await probeRound(Math.min(500, Math.ceil(probeCount / 4)), 'w')
    let probe: Awaited<ReturnType<typeof probeRound>> | undefined
    let acceptRate = 0
    let probeSpan = 0
    let accepted: number[] = []
    for (const tag of ['m', 'n']) {
      await emptied()
      const round = await probeRound(probeCount, tag)
      // The rate at which the broker completed CONNECTs, as the broker saw it.
      const at = [...round.at].sort((a, b) => a - b)
      const span = Math.max(1, (at.at(-1) ?? 0) - (at[0] ?? 0))
      const rate = Math.round(((at.length - 1) * 1_000) / span)
      if (rate > acceptRate || !probe) {
        probe = round
        acceptRate = rate
        probeSpan = span
        accepted = at
      }
    }
    if (!probe) throw new Error('no probe round')
    const probeOk = probe.results.reduce((s, p) => s + p.ok, 0)
    const clientSpan =
      Math.max(...probe.results.map((p) => p.lastAckAt)) -
      Math.min(...probe.results.map((p) => p.firstSentAt))
    // The probe's clients say DISCONNECT; wait for the secondary to be empty again.
    await waitUntil(() => (secondary.ticks[secondary.ticks.length - 1]?.clients ?? 1) === 0, 10_000)
    const bound = recoveryBound(scenario, client, config, acceptRate)
    log(
      `${scenario} / ${client}: secondary accepts ${acceptRate} connections/s ` +
        `(broker side: ${accepted.length} raw MQTT connects in ${probeSpan} ms; ` +
        `${probeOk} CONNACKs in ${clientSpan} ms at the clients); recovery bound ${fmtS(bound.total)} = ` +
        Object.entries(bound.parts)
          .map(([k, v]) => `${k} ${fmtS(v)}`)
          .join(' + '),
    )

    // --- connect the fleet to the primary ----------------------------------------------------
    const rampPerSec = Math.max(200, Math.round(acceptRate * 0.5))
    progress.phase(`connecting ${N} devices (${rampPerSec}/s)`)
    await Promise.all(
      workers.map((w) =>
        w.child.request(
          { type: 'start', rampPerSec: rampPerSec / workers.length },
          120_000 + (N / rampPerSec) * 1_000,
        ),
      ),
    )
    const allUp = await waitUntil(
      () => sum((t) => t.connected[1] ?? 0) === N,
      30_000 + (N / rampPerSec) * 2_000,
      () =>
        progress.update(
          sum((t) => t.connected[1] ?? 0),
          N,
          'on the primary',
        ),
    )
    if (!allUp) {
      throw new Error(
        `only ${sum((t) => t.connected[1] ?? 0)} of ${N} devices connected to the primary`,
      )
    }

    // --- steady state -----------------------------------------------------------------------
    const periodMs = 1_000 / config.rate
    await Promise.all(workers.map((w) => w.child.request({ type: 'publish', periodMs })))
    progress.phase('warm-up')
    await waitUntil(
      () => false,
      config.warmupMs,
      () =>
        progress.update(
          sum((t) => t.published),
          0,
          'published',
        ),
    )
    const memory = await Promise.all(
      workers.map((w) =>
        w.child.request<{ rss: number; heapUsed: number; spaces: Record<string, number> }>({
          type: 'memory',
        }),
      ),
    )
    // V8's young generation grows to its working size once a worker is busy (some 16-32 MiB a
    // process): a constant per process, not per device, that small fleets would otherwise spread
    // over few devices. Reported apart.
    const youngDelta = memory.reduce(
      (s, m, i) => s + ((m.spaces.new_space ?? 0) - (inits[i]?.spaces.new_space ?? 0)),
      0,
    )
    const rssDelta = memory.reduce((s, m, i) => s + (m.rss - (inits[i]?.rss ?? 0)), 0)
    const heapDelta = memory.reduce((s, m, i) => s + (m.heapUsed - (inits[i]?.heapUsed ?? 0)), 0)
    await Promise.all(workers.map((w) => w.child.request({ type: 'mark' })))

    // --- the failure -------------------------------------------------------------------------
    const udpDrops0 = udpReceiveDrops()
    const t0 = Date.now()
    let flipAt: number | undefined
    /** Crash: when the killed process was reaped (its sockets are closed by then). */
    let primaryGoneMs: number | undefined
    let flipTimer: NodeJS.Timeout | undefined
    const flipDns = () => {
      flipAt = Date.now() - t0
      dns?.set(BROKER_NAME, [SECONDARY_ADDRESS], config.dnsTtl)
    }
    switch (scenario) {
      case 'crash':
        void primary.child.exited.then(() => {
          primaryGoneMs = Date.now() - t0
        })
        primary.child.process.kill('SIGKILL')
        flipTimer = setTimeout(flipDns, config.healthCheckMs)
        break
      case 'blackhole':
        await proxy?.request({ type: 'mode', mode: 'blackhole' })
        flipTimer = setTimeout(flipDns, config.healthCheckMs)
        break
      case 'dns-flip':
        flipDns()
        break
      case 'concierge-flip':
        concierge?.setBody({ endpoint: `mqtt://${REGION_B_NAME}:${port}`, epoch: 2 })
        break
    }
    // The baseline has no DNS watch and no concierge: on a planned move it never moves, and
    // waiting three bounds to show it would only make the run long. One bound and 5 s more.
    const cannotMove =
      client === 'mqttjs' && (scenario === 'dns-flip' || scenario === 'concierge-flip')
    const deadlineMs = cannotMove
      ? bound.total + 5_000
      : Math.max(20_000, config.recoveryTimeoutFactor * bound.total)
    progress.phase('storm')
    const moved = await waitUntil(
      () => sum((t) => t.moved) >= N,
      deadlineMs,
      () => {
        progress.update(
          sum((t) => t.moved),
          N,
          `on the secondary  t+${((Date.now() - t0) / 1000).toFixed(1)}s`,
        )
      },
    )
    if (flipTimer && flipAt === undefined) {
      // The fleet moved before the simulated health check (or the wait ended): flip anyway, so
      // the end state is the same for every run.
      clearTimeout(flipTimer)
      flipDns()
    }
    progress.phase(moved ? 'tail' : 'tail (not every device moved)')
    await sleep(config.tailMs)

    // --- drain and account ------------------------------------------------------------------
    progress.phase('draining')
    const drains = await Promise.all(
      workers.map((w) =>
        w.child.request<{ undrained: number }>({ type: 'drain', timeoutMs: 30_000 }, 60_000),
      ),
    )
    const end = Date.now()
    const udpDrops1 = udpReceiveDrops()
    const collected = await Promise.all(
      workers.map((w) =>
        w.child.request<{
          first: number
          queued: number
          published: Uint32Array
          failed: Int32Array
          pending: Uint32Array
          firstSecondaryAt: Float64Array
          firstLossAt: Float64Array
          attempts: Uint32Array
          endAddr: Uint8Array
          drops: number
          errors: Record<string, number>
          cpu: number
        }>({ type: 'collect' }),
      ),
    )
    const brokerCpu = async (b: typeof primary) => {
      if (b.child.alive) {
        const s = await b.child.request<{ cpu: number }>({ type: 'stats' }).catch(() => undefined)
        if (s) return s.cpu - b.cpu0
      }
      return (b.ticks[b.ticks.length - 1]?.cpu ?? b.cpu0) - b.cpu0
    }
    const cpuBrokers =
      (await brokerCpu(primary)) +
      (await brokerCpu(secondary)) +
      (proxy ? (await proxy.request<{ cpu: number }>({ type: 'stats' })).cpu - proxyCpu0 : 0)
    const parentCpu = process.cpuUsage(cpuParentStart)
    const cpuServices = (parentCpu.user + parentCpu.system) / 1e6
    const cpuDevices = collected.reduce((s, c, i) => s + c.cpu - (inits[i]?.cpu ?? 0), 0)

    progress.phase('stopping')
    await Promise.all(
      [secondary, primary]
        .filter((b) => b.child.alive)
        .map((b) => b.child.request({ type: 'stop' }, 20_000).catch(() => {})),
    )

    // Per-device figures, fleet-wide.
    const issued = new Uint32Array(N)
    const notPublished = new Map<number, Set<number>>()
    const recoveries: number[] = []
    const losses: number[] = []
    let attempts = 0
    let onSecondary = 0
    let drops = 0
    const errors: Record<string, number> = {}
    for (const c of collected) {
      for (let j = 0; j < c.published.length; j++) {
        const d = c.first + j
        issued[d] = c.published[j] as number
        const unresolved = c.pending[j] as number
        if (unresolved > 0) {
          const set = notPublished.get(d) ?? new Set<number>()
          for (let k = 1; k <= unresolved; k++) set.add((c.published[j] as number) - k)
          notPublished.set(d, set)
        }
        const at = c.firstSecondaryAt[j] as number
        if (at > 0) recoveries.push(at - t0)
        const lossAt = c.firstLossAt[j] as number
        if (lossAt > 0) losses.push(lossAt - t0)
        attempts += c.attempts[j] as number
        if (c.endAddr[j] === 2) onSecondary++
      }
      for (let k = 0; k + 1 < c.failed.length; k += 2) {
        const d = c.first + (c.failed[k] as number)
        const set = notPublished.get(d) ?? new Set<number>()
        set.add(c.failed[k + 1] as number)
        notPublished.set(d, set)
      }
      drops += c.drops
      for (const [k, v] of Object.entries(c.errors)) errors[k] = (errors[k] ?? 0) + v
    }
    const accounting: Accounting = account({ issued, notPublished }, [
      primary.receipts,
      secondary.receipts,
    ])
    const secondaryConnects = secondary.ticks.flatMap((t) => t.connects).filter((t) => t >= t0)
    const secondaryAccepts = secondary.ticks.flatMap((t) => t.accepts).filter((t) => t >= t0)
    const p = (f: number) => percentileOf(recoveries, N, f) ?? null
    const recoveredAll = p(1)
    const record: StormRecord = {
      scenario,
      client,
      devices: N,
      recovery: { p50Ms: p(0.5), p90Ms: p(0.9), p99Ms: p(0.99), allMs: p(1) },
      detection: {
        p50Ms: losses.length ? (percentileOf(losses, losses.length, 0.5) ?? null) : null,
        p99Ms: losses.length ? (percentileOf(losses, losses.length, 0.99) ?? null) : null,
        allMs: losses.length ? (percentileOf(losses, losses.length, 1) ?? null) : null,
        devices: losses.length,
        ...(primaryGoneMs !== undefined ? { primaryProcessGoneMs: primaryGoneMs } : {}),
      },
      connectAttempts: attempts,
      peakConnectsPerSec: peakRate(secondaryAccepts),
      peakSessionsPerSec: peakRate(secondaryConnects),
      messages: {
        published: accounting.published,
        delivered: accounting.delivered,
        lost: accounting.lost,
        duplicates: accounting.duplicates,
      },
      cpuSeconds: round(cpuDevices + cpuBrokers + cpuServices, 2),
      rssPerDeviceKiB: round(rssDelta / N / 1024, 1),
      rssPerDeviceExclYoungGenKiB: round((rssDelta - youngDelta) / N / 1024, 1),
      heapPerDeviceKiB: round(heapDelta / N / 1024, 1),
      store: config.store,
      devicesOnSecondary: onSecondary,
      boundMs: bound.total,
      boundParts: bound.parts,
      acceptRatePerSec: acceptRate,
      cpu: {
        devices: round(cpuDevices, 2),
        brokers: round(cpuBrokers, 2),
        services: round(cpuServices, 2),
      },
      undelivered: {
        unexpectedReceipts: accounting.unexpected,
        undrainedDevices: drains.reduce((s, d) => s + d.undrained, 0),
        queuedAtEnd: collected.reduce((s, c) => s + c.queued, 0),
        drops,
      },
      errors,
      settings: {
        keepaliveS: config.keepalive,
        healthCheckMs: config.healthCheckMs,
        backoffInitialMs: config.backoff.initialMs,
        backoffMaxMs: client === 'uplink' ? config.backoff.maxMs : 0,
        reconnectPeriodMs: client === 'mqttjs' ? 1_000 : 0,
        ratePerDevice: config.rate,
        dnsTtlS: config.dnsTtl,
        workers: workerCount,
        proxyShards: blackhole ? proxyShards : 0,
        seed: config.seed,
      },
      load: {
        workersMaxLagMs: maxLag(
          workers.map((w) => w.ticks),
          t0,
          t0 + (recoveredAll ?? end - t0),
        ),
        secondaryMaxLagMs: maxLag([secondary.ticks], t0, t0 + (recoveredAll ?? end - t0)),
      },
      machine: {
        cores: availableParallelism(),
        loadAverageAtStart: loadAtStart,
        ...(udpDrops0 !== undefined && udpDrops1 !== undefined
          ? { udpReceiveDropsDuringStorm: udpDrops1 - udpDrops0 }
          : {}),
      },
      wallSeconds: round((Date.now() - began) / 1000, 1),
      ...(accounting.lost > 0 ? { lostExamples: accounting.lostExamples } : {}),
    }

    if (process.env.STORM_DEBUG_TICKS) {
      const { writeFileSync } = await import('node:fs')
      writeFileSync(
        process.env.STORM_DEBUG_TICKS,
        JSON.stringify({ t0, workers: workers.map((w) => w.ticks), secondary: secondary.ticks }),
      )
    }
    // Timeline, relative to the failure.
    const start = -config.warmupMs - 1_000
    const endRel = end - t0
    const sampleAt: number[] = []
    for (let t = start; t <= endRel; t += config.tickMs) sampleAt.push(t)
    const connectedAt = (code: number) =>
      sampleAt.map((rel) => {
        let total = 0
        for (const w of workers) {
          let last: WorkerTick | undefined
          for (const tick of w.ticks) {
            if (tick.at - t0 > rel) break
            last = tick
          }
          total += last?.connected[code] ?? 0
        }
        return total
      })
    const attemptTimes: number[] = []
    for (const w of workers)
      for (const tick of w.ticks) for (let k = 0; k < tick.attempts; k++) attemptTimes.push(tick.at)
    const bucket = 1_000
    const rateAt: number[] = []
    for (let t = start; t < endRel; t += bucket) rateAt.push(t + bucket / 2)
    const allSecondaryConnects = secondary.ticks.flatMap((t) => t.connects)
    const allSecondaryAccepts = secondary.ticks.flatMap((t) => t.accepts)
    const timeline: StormTimeline = {
      start,
      end: endRel,
      flipAt,
      connectedPrimary: { at: sampleAt, values: connectedAt(1) },
      connectedSecondary: { at: sampleAt, values: connectedAt(2) },
      attemptsPerSec: {
        at: rateAt,
        values: ratePerSecond(attemptTimes, t0 + start, t0 + endRel, bucket),
      },
      secondaryConnectsPerSec: {
        at: rateAt,
        values: ratePerSecond(allSecondaryConnects, t0 + start, t0 + endRel, bucket),
      },
      secondaryAcceptsPerSec: {
        at: rateAt,
        values: ratePerSecond(allSecondaryAccepts, t0 + start, t0 + endRel, bucket),
      },
      cpuDevices: {
        at: rateAt,
        values: cpuCores(
          workers.map((w) => w.ticks),
          t0 + start,
          t0 + endRel,
          bucket,
        ),
      },
      cpuSecondary: {
        at: rateAt,
        values: cpuCores([secondary.ticks], t0 + start, t0 + endRel, bucket),
      },
      cpuPrimary: {
        at: rateAt,
        values: cpuCores([primary.ticks], t0 + start, t0 + endRel, bucket),
      },
    }
    progress.done(
      `${scenario} / ${client}: ${onSecondary}/${N} on the secondary, ` +
        `all in ${record.recovery.allMs === null ? 'never' : fmtS(record.recovery.allMs)}, ` +
        `lost ${accounting.lost}`,
    )
    return { record, timeline }
  } finally {
    everyPoll = undefined
    progress.done()
    // A child writing a CPU profile (STORM_CPU_PROF) needs longer to exit.
    const grace = process.env.STORM_CPU_PROF ? 60_000 : 3_000
    await Promise.all(children.map((c) => endChild(c, grace)))
    await dns?.stop().catch(() => {})
    await concierge?.stop().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * UDP datagrams the kernel dropped for a full receive buffer, machine-wide (Linux; undefined
 * elsewhere). A fleet's DNS queries in one burst can overflow the test DNS server's socket: the
 * devices then wait for their resolver's timeout and ask again.
 */
function udpReceiveDrops(): number | undefined {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('Udp:'))
    const names = lines[0]?.split(/\s+/) ?? []
    const values = lines[1]?.split(/\s+/) ?? []
    const i = names.indexOf('RcvbufErrors')
    return i > 0 ? Number(values[i]) : undefined
  } catch {
    return undefined
  }
}

/** The testkit servers keep a record of every request; a fleet's worth is not needed here. */
function trimServerLogs(
  dns: { queries?: unknown } | undefined,
  concierge: TestConcierge | undefined,
): void {
  const queries = dns?.queries
  if (Array.isArray(queries) && queries.length > 10_000) queries.length = 0
  if (concierge && concierge.requests.length > 10_000) concierge.requests.length = 0
}

export function fmtS(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-'
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`
}

function round(n: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(n * f) / f
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

/**
 * One run's own state, owned in one place: what it was asked, its scratch directory, its
 * progress line, and every process and server it started, which `close()` ends whatever
 * happened. The phases (regions.ts, fleet.ts, failure.ts) take it and add what they start.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TestConcierge, TestDnsServer } from '@uplink/testkit'
import {
  type ClientKind,
  type Scenario,
  type StormConfig,
  shardRun,
  withFleetDefaults,
} from './config.js'
import { round } from './format.js'
import { type Child, endChild, type ForkOptions, forkChild } from './proc.js'
import { Progress } from './progress.js'

export interface RunHooks {
  log?: (line: string) => void
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export class RunContext {
  /** The settings of this process's part of the fleet: `devices` is the shard's slice. */
  readonly config: StormConfig
  /** The index of this process's first device in the whole fleet (0 unless sharded). */
  readonly firstDevice: number
  /** Devices in the whole fleet, every shard's. */
  readonly fleetDevices: number
  readonly log: (line: string) => void
  readonly progress: Progress
  readonly startedAt = Date.now()
  /** Receipts and SQLite outboxes; removed by close(). */
  readonly dir = mkdtempSync(join(tmpdir(), 'uplink-storm-'))
  /** Servers in this process (DNS, concierge), set by the phase that starts them. */
  readonly servers: { dns?: TestDnsServer; concierge?: TestConcierge } = {}
  private readonly children: Child[] = []
  /** When each DNS question reached the server (its log is trimmed; these are kept). */
  private readonly dnsQueryTimes: number[] = []
  /** This process's CPU at the start: the DNS server and the concierge run here. */
  readonly cpuAtStart: NodeJS.CpuUsage
  /** Other work on the machine skews every timing here; the record says how busy it was. */
  readonly loadAverageAtStart: number

  constructor(
    readonly scenario: Scenario,
    readonly client: ClientKind,
    input: StormConfig,
    hooks: RunHooks = {},
  ) {
    // Fleet-size defaults from the whole fleet (every shard shares them), then the slice.
    const whole = withFleetDefaults(input)
    const slice = shardRun(whole)
    this.config = { ...whole, devices: slice.devices }
    this.firstDevice = slice.first
    this.fleetDevices = whole.devices
    this.log = hooks.log ?? (() => {})
    this.progress = new Progress(this.config.progress, `${scenario} / ${client}`)
    this.cpuAtStart = process.cpuUsage()
    this.loadAverageAtStart = round(loadavg()[0] ?? 0, 2)
  }

  /** Forks one of the storm's child scripts (beside this file); close() will end it. */
  fork(script: string, name: string, options: ForkOptions = {}): Child {
    const child = forkChild(fileURLToPath(new URL(script, import.meta.url)), name, options)
    this.children.push(child)
    return child
  }

  /** CPU seconds this process has used since the run began. */
  servicesCpuSeconds(): number {
    const used = process.cpuUsage(this.cpuAtStart)
    return (used.user + used.system) / 1e6
  }

  /** Polls `predicate` every 100 ms until it holds or `timeoutMs` ran out; says which. */
  async waitUntil(
    predicate: () => boolean,
    timeoutMs: number,
    onPoll?: () => void,
  ): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      onPoll?.()
      this.trimServerLogs()
      if (predicate()) return true
      await sleep(100)
    }
    return predicate()
  }

  /** Ends every child and server this run started and removes its directory. */
  async close(): Promise<void> {
    this.progress.done()
    // A child writing a CPU profile (STORM_CPU_PROF) needs longer to exit.
    const grace = process.env.STORM_CPU_PROF ? 60_000 : 3_000
    await Promise.all(this.children.map((c) => endChild(c, grace)))
    await this.servers.dns?.stop().catch(() => {})
    await this.servers.concierge?.stop().catch(() => {})
    rmSync(this.dir, { recursive: true, force: true })
  }

  /** DNS questions the server got in [from, to] (epoch ms), of every device in this process. */
  dnsQueriesBetween(from: number, to: number): number {
    this.trimServerLogs(0)
    return this.dnsQueryTimes.filter((at) => at >= from && at <= to).length
  }

  /**
   * The testkit servers keep a record of every request; a fleet's worth is not needed here. Of
   * the DNS log only each question's time is kept, for the queries-per-device figure.
   */
  private trimServerLogs(above = 10_000): void {
    const { dns, concierge } = this.servers
    if (dns && dns.queries.length > above) {
      for (const q of dns.queries) this.dnsQueryTimes.push(q.at)
      dns.queries.length = 0
    }
    if (concierge && concierge.requests.length > 10_000) concierge.requests.length = 0
  }
}

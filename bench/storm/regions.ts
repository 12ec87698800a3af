/**
 * The two regions: an aedes broker process each on 127.0.0.1 and 127.0.0.2 at the same port (so a
 * DNS flip is all that changes), the fault proxy in front of the primary for the blackhole, and
 * in this process the DNS server and, for concierge-flip, the concierge.
 */
import { join } from 'node:path'
import { startConcierge, startDnsServer } from '@uplink/testkit'
import type { Child } from './proc.js'
import type { RunContext } from './run-context.js'
import type { BrokerTick } from './samples.js'
import { brokerParts, readTargetAuth, type TargetAuth, type TargetConfig } from './target.js'

/** The fleet's broker name, and the second region's own name for the concierge's directive. */
export const BROKER_NAME = 'mqtt.storm.test'
export const REGION_B_NAME = 'region-b.storm.test'
export const PRIMARY_ADDRESS = '127.0.0.1'
export const SECONDARY_ADDRESS = '127.0.0.2'
/** Blackhole: the primary broker sits behind the fault proxy, which takes 127.0.0.1. */
const HIDDEN_PRIMARY_ADDRESS = '127.0.0.3'

export interface Broker {
  /** Undefined in target mode: the user's broker, seen only from the devices. */
  child?: Child | undefined
  /** Filled as the broker reports. */
  ticks: BrokerTick[]
  /** Its receipts file: (device, seq) of every telemetry PUBLISH it acknowledged. */
  receipts: string
  port: number
  cpuAtStart: number
}

export interface Regions {
  primary: Broker
  secondary: Broker
  /** Blackhole only: the fault proxy that holds the primary's address. */
  proxy?: { child: Child; cpuAtStart: number } | undefined
  /** The port the fleet connects to, in both regions (target mode: the primary's). */
  port: number
  /** Target mode: the user's brokers (normalized URLs) and what the devices log in with. */
  target?: { primary: string; secondary: string; auth: TargetAuth } | undefined
}

async function startBroker(ctx: RunContext, name: string, host: string, port: number) {
  const child = ctx.fork('broker-process.ts', name)
  const ticks: BrokerTick[] = []
  child.onMessage((m) => {
    if (m.type === 'tick') ticks.push(m as unknown as BrokerTick)
  })
  const receipts = join(ctx.dir, `${name}.receipts`)
  const started = await child.request<{ port: number; cpu: number }>({
    type: 'start',
    host,
    port,
    receipts,
    tickMs: ctx.config.tickMs,
  })
  return { child, ticks, receipts, port: started.port, cpuAtStart: started.cpu }
}

/** Target mode: nothing to start; the brokers are the user's, seen from the devices only. */
function targetRegions(target: TargetConfig): Regions {
  const remote = (url: string): Broker => ({
    ticks: [],
    receipts: '',
    port: brokerParts(url).port,
    cpuAtStart: 0,
  })
  const primary = remote(target.primary)
  return {
    primary,
    secondary: remote(target.secondary),
    port: primary.port,
    target: {
      primary: target.primary,
      secondary: target.secondary,
      auth: readTargetAuth(target),
    },
  }
}

export async function startRegions(ctx: RunContext, proxyShards: number): Promise<Regions> {
  const { config, scenario } = ctx
  if (config.target) return targetRegions(config.target)
  ctx.progress.phase('starting brokers')
  const blackhole = scenario === 'blackhole'
  const primary = await startBroker(
    ctx,
    'primary',
    blackhole ? HIDDEN_PRIMARY_ADDRESS : PRIMARY_ADDRESS,
    0,
  )
  let port = primary.port
  let proxy: Regions['proxy']
  if (blackhole) {
    const child = ctx.fork('proxy-process.ts', 'proxy')
    const p = await child.request<{ port: number; cpu: number }>({
      type: 'start',
      host: PRIMARY_ADDRESS,
      target: { host: HIDDEN_PRIMARY_ADDRESS, port: primary.port },
      shards: proxyShards,
    })
    port = p.port
    proxy = { child, cpuAtStart: p.cpu }
  }
  const secondary = await startBroker(ctx, 'secondary', SECONDARY_ADDRESS, port)

  const dns = await startDnsServer({ host: '127.0.0.1' })
  ctx.servers.dns = dns
  dns.set(BROKER_NAME, [PRIMARY_ADDRESS], config.dnsTtl)
  dns.set(REGION_B_NAME, [SECONDARY_ADDRESS], config.dnsTtl)
  if (scenario === 'concierge-flip') {
    ctx.servers.concierge = await startConcierge({
      body: { endpoint: `mqtt://${BROKER_NAME}:${port}`, epoch: 1 },
    })
  }
  return { primary, secondary, proxy, port }
}

/** The secondary's connected clients, as of its latest tick (1 before the first). */
export function secondaryClients(regions: Regions): number {
  return regions.secondary.ticks.at(-1)?.clients ?? 1
}

/** CPU seconds the brokers and the proxy used since they started (a killed one: to its last tick). */
export async function regionsCpuSeconds(regions: Regions): Promise<number> {
  const brokerCpu = async (b: Broker) => {
    if (b.child?.alive) {
      const s = await b.child.request<{ cpu: number }>({ type: 'stats' }).catch(() => undefined)
      if (s) return s.cpu - b.cpuAtStart
    }
    return (b.ticks.at(-1)?.cpu ?? b.cpuAtStart) - b.cpuAtStart
  }
  const { proxy } = regions
  return (
    (await brokerCpu(regions.primary)) +
    (await brokerCpu(regions.secondary)) +
    (proxy
      ? (await proxy.child.request<{ cpu: number }>({ type: 'stats' })).cpu - proxy.cpuAtStart
      : 0)
  )
}

/** Stops the brokers still running, so their receipts files are complete. */
export async function stopBrokers(regions: Regions): Promise<void> {
  await Promise.all(
    [regions.secondary, regions.primary]
      .map((b) => b.child)
      .filter((c) => c?.alive)
      .map((c) => c?.request({ type: 'stop' }, 20_000).catch(() => {})),
  )
}

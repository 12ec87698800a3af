/**
 * What the storm's child processes report, as the parent keeps it: the raw samples that the
 * record and the timeline are built from (record.ts, timeline.ts).
 */
import type { ClientKind, Scenario, StormConfig } from './config.js'
import type { Accounting } from './metrics.js'

/** A device worker's tick (every `tickMs`). */
export interface WorkerTick {
  at: number
  cpu: number
  lagMs: number
  attempts: number
  /** Devices connected, indexed by address: 0 none, 1 primary, 2 secondary. */
  connected: number[]
  moved: number
  published: number
  pending: number
}

/** A broker process's tick. */
export interface BrokerTick {
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

/** A worker's memory, after a full GC. */
export interface MemorySample {
  rss: number
  heapUsed: number
  spaces: Record<string, number>
}

/** A device worker's answer to `collect`: per device, indexed from `first`. */
export interface DeviceReport {
  first: number
  queued: number
  /** Per device: messages still waiting or in flight at the end. */
  queuedPer: Uint32Array
  /** Messages issued (the next seq). */
  published: Uint32Array
  /** Pairs (device index, seq) whose publish() rejected. */
  failed: Int32Array
  /** publish() calls still unresolved: the last `pending` seqs. */
  pending: Uint32Array
  /** Epoch ms of the first CONNACK on the secondary; 0: never. */
  firstSecondaryAt: Float64Array
  /** Epoch ms the device noticed its connection gone; 0: never. */
  firstLossAt: Float64Array
  /** Connect attempts since the mark (just before the failure). */
  attempts: Uint32Array
  /** The address connected at the end: 0 none, 1 primary, 2 secondary. */
  endAddr: Uint8Array
  drops: number
  errors: Record<string, number>
  cpu: number
}

/** The device workers' CPU seconds from their devices' start to the end of the drain. */
export interface DeviceCpu {
  devices: number
  /** connect: starting and connecting the fleet; steady: the warm-up; storm: failure to drain. */
  byPhase: { connect: number; steady: number; storm: number }
}

/** The recovery a run cannot beat, computed before the storm, and its parts (ms). */
export interface RecoveryBound {
  total: number
  parts: Record<string, number>
}

/** Everything one run collected, from which its record and timeline are built. */
export interface RunSamples {
  scenario: Scenario
  client: ClientKind
  /** With the fleet defaults filled in. */
  config: StormConfig
  layout: { workers: number; proxyShards: number }
  bound: RecoveryBound
  acceptRate: number
  /** Epoch ms of the failure, and of the end of the drain. */
  t0: number
  end: number
  /** DNS flip (crash, blackhole), ms after the failure. */
  flipAt: number | undefined
  /** Crash: when the killed primary was reaped, ms after the failure. */
  primaryGoneMs: number | undefined
  reports: DeviceReport[]
  /** Per worker: devices that had not drained their queue by the drain's deadline. */
  undrained: number[]
  accounting: Accounting
  /** DNS questions from the failure to the end of the drain; undefined: not our DNS server. */
  dnsQueries: number | undefined
  /** Growth from the workers' start to the end of the warm-up, bytes, summed over workers. */
  memory: { rss: number; youngGen: number; heap: number }
  /**
   * CPU seconds during the run: device workers (from their devices' start), brokers and proxy,
   * this process's servers (DNS, concierge).
   */
  cpu: DeviceCpu & { brokers: number; services: number }
  workerTicks: WorkerTick[][]
  primaryTicks: BrokerTick[]
  secondaryTicks: BrokerTick[]
  machine: {
    cores: number
    loadAverageAtStart: number
    /** The kernel's UDP receive-buffer drops, machine-wide, before and after the storm. */
    udpDropsBefore: number | undefined
    udpDropsAfter: number | undefined
  }
  wallMs: number
  /** Which slice of the fleet this run was (index 0 of 1 unless sharded). */
  shard: { index: number; count: number; firstDevice: number; fleetDevices: number }
  /** Target mode: the user's brokers (URLs, never credentials). */
  target?: { primary: string; secondary: string } | undefined
}

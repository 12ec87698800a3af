/**
 * A device worker: a slice of the fleet in one process. It starts its devices at a bounded
 * ramp, publishes each one's telemetry at a fixed rate (one shared timer, not one per device),
 * tracks where every device is connected, and reports a tick to the parent several times a
 * second. At the end it hands over per-device figures in typed arrays.
 */
import { PerformanceObserver } from 'node:perf_hooks'
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8'
import { createDevice, type Device, type DeviceSettings, loadSqlite } from './devices.js'
import { probeConnects } from './probe-connects.js'
import { cpuSeconds, report, serve } from './proc.js'
import type { TargetAuth } from './target.js'

const NONE = 0
const PRIMARY = 1
const SECONDARY = 2
const OTHER = 3

let settings: DeviceSettings
let first = 0
let count = 0
let primaryAddress = ''
let secondaryAddress = ''
const devices: Device[] = []
let addr = new Uint8Array(0)
let firstSecondaryAt = new Float64Array(0)
/** When each device first noticed it had lost its connection, after the failure. */
let firstLossAt = new Float64Array(0)
let nextSeq = new Uint32Array(0)
let pending = new Uint32Array(0)
let attemptsAtMark = new Uint32Array(0)
let nextDue = new Float64Array(0)
const failed: number[] = []
const connectedBy = [0, 0, 0, 0]
const errors: Record<string, number> = {}
let drops = 0
let attemptsSinceTick = 0
let marked = false
let publishing = false
let periodMs = 1_000
let publishTimer: NodeJS.Timeout | undefined
let ticker: NodeJS.Timeout | undefined
let publishedTotal = 0
let pendingTotal = 0

function classify(address: string): number {
  if (address === primaryAddress) return PRIMARY
  if (address === secondaryAddress) return SECONDARY
  return OTHER
}

function setAddr(j: number, code: number): void {
  const was = addr[j] as number
  if (was === code) return
  connectedBy[was] = (connectedBy[was] as number) - 1
  connectedBy[code] = (connectedBy[code] as number) + 1
  addr[j] = code
  if (code === SECONDARY && marked && firstSecondaryAt[j] === 0) firstSecondaryAt[j] = Date.now()
}

function onSecondaryCount(): number {
  let n = 0
  for (let j = 0; j < count; j++) if ((firstSecondaryAt[j] as number) > 0) n++
  return n
}

/**
 * How late the tick itself ran: a busy (or CPU-starved) worker delays its devices' every step.
 */
let lastTickAt = Date.now()
let tickMs = 250
/** Garbage collection since the last tick: total and longest pause, ms. */
let gcMs = 0
let gcMaxMs = 0
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcMs += e.duration
    if (e.duration > gcMaxMs) gcMaxMs = e.duration
  }
}).observe({ entryTypes: ['gc'] })

function tick(): void {
  const attempts = attemptsSinceTick
  attemptsSinceTick = 0
  const now = Date.now()
  const lagMs = Math.max(0, now - lastTickAt - tickMs)
  lastTickAt = now
  const gcTotal = gcMs
  const gcMax = gcMaxMs
  gcMs = 0
  gcMaxMs = 0
  report({
    type: 'tick',
    at: Date.now(),
    cpu: cpuSeconds(),
    lagMs,
    gcMs: Math.round(gcTotal),
    gcMaxMs: Math.round(gcMax),
    heapMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
    attempts,
    connected: [...connectedBy],
    moved: onSecondaryCount(),
    published: publishedTotal,
    pending: pendingTotal,
  })
}

function publishDue(): void {
  if (!publishing) return
  const now = Date.now()
  for (let j = 0; j < devices.length; j++) {
    if ((nextDue[j] as number) > now) continue
    const due = (nextDue[j] as number) + periodMs
    // A worker that fell behind does not burst to catch up: the device just keeps its rate.
    nextDue[j] = due > now ? due : now + periodMs
    const device = devices[j] as Device
    const seq = nextSeq[j] as number
    nextSeq[j] = seq + 1
    pending[j] = (pending[j] as number) + 1
    pendingTotal++
    device.publish(seq).then(
      () => {
        pending[j] = (pending[j] as number) - 1
        pendingTotal--
        publishedTotal++
      },
      (err: { code?: string }) => {
        pending[j] = (pending[j] as number) - 1
        pendingTotal--
        failed.push(j, seq)
        const code = `publish:${err?.code ?? 'error'}`
        errors[code] = (errors[code] ?? 0) + 1
      },
    )
  }
}

async function startDevices(rampPerSec: number): Promise<void> {
  const batchMs = 20
  const perBatch = Math.max(1, Math.round((rampPerSec * batchMs) / 1000))
  for (let j = 0; j < count; j += perBatch) {
    const end = Math.min(count, j + perBatch)
    for (let k = j; k < end; k++) {
      const device = createDevice(first + k, settings, {
        connected: (address) => setAddr(k, classify(address)),
        disconnected: () => {
          if (marked && firstLossAt[k] === 0 && addr[k] !== NONE) firstLossAt[k] = Date.now()
          setAddr(k, NONE)
        },
        attempt: () => {
          attemptsSinceTick++
        },
        dropped: () => {
          drops++
        },
        error: (code) => {
          errors[code] = (errors[code] ?? 0) + 1
        },
      })
      devices.push(device)
      device.start()
    }
    if (end < count) await new Promise((r) => setTimeout(r, batchMs))
  }
}

/** Committed bytes per V8 heap space: the young generation grows with load, not with devices. */
function heapSpaces(): Record<string, number> {
  const out: Record<string, number> = {}
  for (const s of getHeapSpaceStatistics()) out[s.space_name] = s.space_size
  return out
}

function gcAndRss(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc) {
    gc()
    gc()
  }
  return process.memoryUsage.rss()
}

/** Memory after a full GC, with the heap's share and its spaces. */
function memorySample() {
  return { rss: gcAndRss(), heapUsed: process.memoryUsage().heapUsed, spaces: heapSpaces() }
}

/**
 * Short-lived garbage, twice the young generation's size: every page of both semi-spaces is
 * written once, so they are resident before the baseline sample and the RSS delta after the
 * warm-up is the devices' alone. (The fleet fixes the young generation's size for the worker,
 * fleet.ts; a growing one would otherwise add a per-process constant that depends on how fast
 * the client allocates, not on how many devices it runs.)
 */
let youngSink: unknown
function touchYoungGeneration(): void {
  const young = heapSpaces().new_space ?? 0
  // About 1 KiB an array: a bounded loop, 64 MiB of allocation at most.
  const n = Math.min(65_536, Math.ceil((2 * young) / 1_024))
  for (let i = 0; i < n; i++) youngSink = new Array<number>(120).fill(i)
  youngSink = undefined
}

serve(async (m) => {
  switch (m.type) {
    case 'init': {
      settings = m.settings as DeviceSettings
      first = Number(m.first)
      count = Number(m.count)
      primaryAddress = String(m.primaryAddress)
      secondaryAddress = String(m.secondaryAddress)
      if (settings.store === 'sqlite') await loadSqlite()
      addr = new Uint8Array(count)
      connectedBy[NONE] = count
      firstSecondaryAt = new Float64Array(count)
      firstLossAt = new Float64Array(count)
      nextSeq = new Uint32Array(count)
      pending = new Uint32Array(count)
      attemptsAtMark = new Uint32Array(count)
      nextDue = new Float64Array(count)
      tickMs = Number(m.tickMs ?? 250)
      lastTickAt = Date.now()
      ticker = setInterval(tick, tickMs)
      return { ...memorySample(), cpu: cpuSeconds() }
    }
    case 'probe':
      return probeConnects(
        String(m.host),
        Number(m.port),
        Number(m.count),
        Number(m.window ?? 64),
        String(m.tag),
        Number(m.timeoutMs ?? 15_000),
        m.auth ? { secure: Boolean(m.secure), auth: m.auth as TargetAuth } : undefined,
      )
    case 'start': {
      // The baseline is taken here, after the accept-rate probe (which runs in a worker) and
      // just before the devices: CPU and memory from now on are the devices'.
      touchYoungGeneration()
      const baseline = { ...memorySample(), cpu: cpuSeconds() }
      settings.backoff.informed.spreadMs = Number(m.spreadMs)
      await startDevices(Number(m.rampPerSec))
      return { started: devices.length, baseline }
    }
    case 'publish': {
      periodMs = Number(m.periodMs)
      const now = Date.now()
      const random = Math.random
      for (let j = 0; j < count; j++) nextDue[j] = now + random() * periodMs
      publishing = true
      publishTimer ??= setInterval(publishDue, 25)
      return { cpu: cpuSeconds() }
    }
    case 'memory': {
      const sample = memorySample()
      // STORM_HEAP_SNAPSHOT=<dir>: the heap at the end of the warm-up, for finding what a device holds.
      const dir = process.env.STORM_HEAP_SNAPSHOT
      if (dir) writeHeapSnapshot(`${dir}/${settings.client}-${first}.heapsnapshot`)
      return sample
    }
    case 'mark':
      for (let j = 0; j < devices.length; j++) attemptsAtMark[j] = (devices[j] as Device).attempts()
      marked = true
      return { at: Date.now(), cpu: cpuSeconds() }
    case 'drain': {
      publishing = false
      if (publishTimer) clearInterval(publishTimer)
      publishTimer = undefined
      const deadline = Date.now() + Number(m.timeoutMs ?? 30_000)
      let left = devices.map((_, j) => j)
      while (Date.now() < deadline) {
        left = left.filter((j) => (pending[j] as number) > 0 || !(devices[j] as Device).drained())
        if (left.length === 0) break
        await new Promise((r) => setTimeout(r, 100))
      }
      return { undrained: left.length }
    }
    case 'collect': {
      const attempts = new Uint32Array(count)
      for (let j = 0; j < devices.length; j++)
        attempts[j] = (devices[j] as Device).attempts() - (attemptsAtMark[j] as number)
      tick()
      const queuedPer = Uint32Array.from(devices, (d) => d.queued())
      const queued = queuedPer.reduce((a, b) => a + b, 0)
      return {
        first,
        queued,
        queuedPer,
        published: nextSeq,
        failed: Int32Array.from(failed),
        pending,
        firstSecondaryAt,
        firstLossAt,
        attempts,
        endAddr: addr,
        drops,
        errors,
        cpu: cpuSeconds(),
        rss: process.memoryUsage.rss(),
      }
    }
    default:
      throw new Error(`unknown request ${String(m.type)}`)
  }
})

process.on('exit', () => {
  if (ticker) clearInterval(ticker)
})

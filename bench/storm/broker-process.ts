/**
 * One region: an aedes broker (testkit's startBroker) in its own process, so that the crash
 * scenario can SIGKILL it. It reports its port, then every tick its connected clients, the
 * device connects it accepted since the last tick (timestamps) and its CPU time.
 *
 * Every telemetry PUBLISH is recorded before the broker acknowledges it (in authorizePublish,
 * which aedes runs before it writes the PUBACK) as 8 bytes (device index, seq) appended with a
 * synchronous write to a receipts file: a SIGKILL cannot lose a message the device saw
 * acknowledged, so the parent's accounting stays exact.
 */
import { closeSync, openSync, writeSync } from 'node:fs'
import { startBroker, type TestBroker } from '@uplink/testkit'
import { PROBE_PREFIX, parsePayload, TOPIC_PREFIX } from './payload.js'
import { cpuSeconds, report, serve } from './proc.js'

let broker: TestBroker | undefined
let fd: number | undefined
let ticker: NodeJS.Timeout | undefined
let receipts = 0
let probeConnects: number[] = []
/** TCP connections handed to aedes: every connect attempt that reached this broker. */
let accepts: number[] = []
const record = Buffer.alloc(8)
/** How late each tick ran: a busy (or CPU-starved) broker is late for everything. */
let lastTickAt = Date.now()
let tickMs = 250

function tick(): void {
  if (!broker) return
  const connects: number[] = []
  for (const c of broker.connects) {
    if (c.clientId.startsWith(PROBE_PREFIX)) probeConnects.push(c.at)
    else connects.push(c.at)
  }
  // The testkit keeps every record; the bench has counted them, so it lets them go.
  broker.connects.length = 0
  broker.disconnects.length = 0
  broker.publishes.length = 0
  const accepted = accepts
  accepts = []
  const now = Date.now()
  const lagMs = Math.max(0, now - lastTickAt - tickMs)
  lastTickAt = now
  report({
    type: 'tick',
    at: Date.now(),
    clients: broker.clientCount,
    connects,
    accepts: accepted,
    receipts,
    cpu: cpuSeconds(),
    lagMs,
    rss: process.memoryUsage.rss(),
  })
}

serve(
  async (m) => {
    switch (m.type) {
      case 'start': {
        fd = openSync(String(m.receipts), 'a')
        broker = await startBroker({ host: String(m.host), port: Number(m.port ?? 0) })
        const aedes = broker.aedes
        const handle = aedes.handle.bind(aedes)
        aedes.handle = (socket, req) => {
          accepts.push(Date.now())
          return handle(socket, req)
        }
        const authorize = aedes.authorizePublish
        aedes.authorizePublish = (client, packet, callback) => {
          if (packet.topic.startsWith(TOPIC_PREFIX) && fd !== undefined) {
            const parsed = parsePayload(packet.payload as Buffer)
            if (parsed) {
              record.writeUInt32LE(parsed[0], 0)
              record.writeUInt32LE(parsed[1], 4)
              writeSync(fd, record)
              receipts++
            }
          }
          authorize.call(aedes, client, packet, callback)
        }
        tickMs = Number(m.tickMs ?? 250)
        lastTickAt = Date.now()
        ticker = setInterval(tick, tickMs)
        return { port: broker.port, pid: process.pid, cpu: cpuSeconds() }
      }
      case 'probe-connects': {
        // Broker-side times of the probe's CONNECTs (for the accept-rate measurement).
        tick()
        const at = probeConnects
        probeConnects = []
        return { at }
      }
      case 'stats':
        tick()
        return { clients: broker?.clientCount ?? 0, receipts, cpu: cpuSeconds() }
      case 'stop': {
        tick()
        if (ticker) clearInterval(ticker)
        await broker?.stop()
        if (fd !== undefined) closeSync(fd)
        fd = undefined
        return { receipts, cpu: cpuSeconds() }
      }
      default:
        throw new Error(`unknown request ${String(m.type)}`)
    }
  },
  async () => {
    if (fd !== undefined) closeSync(fd)
  },
)

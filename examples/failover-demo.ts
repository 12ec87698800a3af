/**
 * The failover demo: two regions (two aedes brokers on 127.0.0.1 and 127.0.0.2), a DNS server
 * that names the broker, and one gateway publishing telemetry. The primary region crashes; a
 * simulated health check notices and flips the DNS record; the gateway finds the secondary on
 * its own. Then the primary region comes back and the concierge names it again: a planned
 * failback that moves the healthy connection make-before-break. Run: pnpm demo
 */
import { createUplink } from '@uplink/client'
import { startBroker, startConcierge, startDnsServer, type TestBroker } from '@uplink/testkit'

const HEALTH_CHECK_MS = 3_000
const RUN_BEFORE_CRASH_MS = 3_000
const AFTER_FAILOVER_MS = 3_000
const PUBLISH_EVERY_MS = 100
const NAME = 'iot.region.test'
const EAST = 'east.region.test'

const t0 = Date.now()
const say = (who: string, text: string) =>
  console.log(`${((Date.now() - t0) / 1000).toFixed(2).padStart(7)}s  ${who.padEnd(8)} ${text}`)
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms))

const primary = await startBroker({ host: '127.0.0.1' })
const secondary = await startBroker({ host: '127.0.0.2', port: primary.port })
const dns = await startDnsServer()
dns.set(NAME, ['127.0.0.1'], 5)
dns.set(EAST, ['127.0.0.1'], 5)
// The concierge has nothing to say until the planned failback: an epoch-0 directive naming the
// endpoint the gateway is configured with.
const concierge = await startConcierge({
  body: { endpoint: `mqtt://${NAME}:${primary.port}`, epoch: 0 },
})
say('world', `primary region 127.0.0.1:${primary.port}, secondary 127.0.0.2:${secondary.port}`)
say('world', `DNS ${dns.server}: ${NAME} -> 127.0.0.1 (TTL 5 s)`)

const uplink = createUplink({
  clientId: 'gw-demo',
  endpoints: [`mqtt://${NAME}:${primary.port}`],
  dns: { servers: [dns.server], timeoutMs: 500 },
  keepalive: 5,
  concierge: {
    url: concierge.url,
    intervalMs: 1_000,
    jitter: 0.1,
    allowedHosts: ['*.region.test'],
  },
  failover: { minStayMs: 2_000 },
  presence: { topic: 'status/gw-demo' },
})
uplink.on('state', (e) => say('gateway', `state ${e.previous} -> ${e.state}`))
uplink.on('connect', (e) =>
  say(
    'gateway',
    `connected to ${e.endpoint} at ${e.address} (session present: ${e.sessionPresent})`,
  ),
)
uplink.on('disconnect', (e) => say('gateway', `lost ${e.address}: ${e.error.code}`))
uplink.on('reconnecting', (e) =>
  say('gateway', `attempt ${e.attempt} failed (${e.error.code}); next in ${e.delayMs} ms`),
)
uplink.on('failover', (e) =>
  say('gateway', `FAILOVER ${e.fromAddress} -> ${e.toAddress} (${e.reason}) in ${e.durationMs} ms`),
)
uplink.on('dns-fallback', (e) =>
  say('gateway', `DNS fell back to the system resolver: ${e.error.message}`),
)

await uplink.start()
let sent = 0
const publishing = setInterval(() => {
  const seq = sent++
  void uplink.publish('telemetry/gw-demo', JSON.stringify({ seq, at: Date.now() }))
}, PUBLISH_EVERY_MS)

await delay(RUN_BEFORE_CRASH_MS)
say('world', 'primary region CRASHES (every socket destroyed)')
await primary.kill()
await delay(HEALTH_CHECK_MS)
say('world', `health check failed: DNS ${NAME} -> 127.0.0.2`)
dns.set(NAME, ['127.0.0.2'], 5)
await new Promise<void>((resolve) => {
  if (uplink.stats().address === '127.0.0.2') resolve()
  else uplink.on('connect', (e) => e.address === '127.0.0.2' && resolve())
})
await delay(AFTER_FAILOVER_MS)

// The primary region is repaired; operations move the fleet back on purpose. The gateway's
// connection to the secondary is healthy, so only the concierge can tell it.
const restored = await startBroker({ host: '127.0.0.1', port: primary.port })
say('world', `primary region restored; concierge: endpoint mqtt://${EAST}:${primary.port}, epoch 1`)
concierge.setBody({ endpoint: `mqtt://${EAST}:${primary.port}`, epoch: 1 })
await new Promise<void>((resolve) => {
  uplink.on('failover', (e) => e.reason === 'concierge' && resolve())
})
await delay(AFTER_FAILOVER_MS)
clearInterval(publishing)
await uplink.stop({ timeoutMs: 5_000 })

const seqs = (b: TestBroker) =>
  b.publishes
    .filter((p) => p.topic === 'telemetry/gw-demo')
    .map((p) => JSON.parse(p.payload.toString()).seq as number)
const all = [...seqs(primary), ...seqs(secondary), ...seqs(restored)]
const unique = new Set(all)
const lost = Array.from({ length: sent }, (_, i) => i).filter((i) => !unique.has(i))
console.log(
  `\nsent ${sent}, delivered ${unique.size} (primary ${seqs(primary).length}, secondary ${seqs(secondary).length}, ` +
    `restored primary ${seqs(restored).length}), ` +
    `lost ${lost.length}, duplicates ${all.length - unique.size}`,
)
await Promise.all([secondary.stop(), restored.stop(), dns.stop(), concierge.stop()])
process.exit(lost.length === 0 ? 0 : 1)

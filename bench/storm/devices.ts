/**
 * The two kinds of device the storm runs: an Uplink client, and the baseline, a plain MQTT.js
 * client set up as a user would without Uplink (the broker's DNS name, reconnectPeriod 1 s, its
 * in-memory offline queue, every connect resolved through an uncached resolver pointed at the
 * same DNS server). Both speak the same small interface so the worker treats them alike.
 */
import dns from 'node:dns'
import net from 'node:net'
import { join } from 'node:path'
import { createUplink, type Outbox, type Uplink } from '@uplink/client'
import { MqttClient } from 'mqtt'
import { DEVICES_PER_RESOLVER } from './config.js'
import { deviceId, makePayload, topicFor } from './payload.js'
import type { TargetAuth } from './target.js'

export interface DeviceSettings {
  client: 'uplink' | 'mqttjs'
  host: string
  port: number
  /** Undefined: the system's resolvers (target mode without --dns-server). */
  dnsServer: string | undefined
  /**
   * Target mode: the user's brokers, primary first, and the login; the worker tells them apart
   * by the endpoint a device connected to, not by its address (both may share one).
   */
  target?: { endpoints: string[]; auth: TargetAuth } | undefined
  keepalive: number
  connectTimeoutMs: number
  backoff: {
    initialMs: number
    maxMs: number
    jitter: 'full'
    stableMs: number
    informed: { spreadMs: number }
  }
  dnsWatch?: { minIntervalMs: number; maxIntervalMs: number } | undefined
  concierge?: { url: string; intervalMs: number; jitter: number } | undefined
  allowedHosts: string[]
  minStayMs: number
  store: 'memory' | 'sqlite'
  storeDir: string
  payloadBytes: number
  seed: number
}

/** What the worker sees of a device: where it is, how often it tried, and publishing. */
export interface DeviceEvents {
  /** Connected (CONNACK) to `address`; a device moving make-before-break reports only this. */
  connected(address: string): void
  disconnected(): void
  /** One connection attempt (a socket towards a resolved address). */
  attempt(): void
  /** A stored message was dropped by the outbox (overflow, expiry): that would be a loss. */
  dropped(): void
  error(code: string): void
}

export interface Device {
  readonly index: number
  start(): void
  /** Resolves when the message counts as published (Uplink: stored in the outbox). */
  publish(seq: number): Promise<void>
  attempts(): number
  /** Nothing waiting to be sent and nothing in flight. */
  drained(): boolean
  /** Messages still waiting or in flight (not yet acknowledged by a broker). */
  queued(): number
  close(): Promise<void>
}

/** mulberry32: a small seeded PRNG, so each device's jitter is reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

type SqliteOutboxFactory = (options: { path: string }) => Outbox
let sqliteOutbox: SqliteOutboxFactory | undefined

/** Loads @uplink/store-sqlite only when asked for (the memory runs do not need it). */
export async function loadSqlite(): Promise<void> {
  const mod = (await import('@uplink/store-sqlite')) as { sqliteOutbox: SqliteOutboxFactory }
  sqliteOutbox = mod.sqliteOutbox
}

export function createDevice(index: number, s: DeviceSettings, events: DeviceEvents): Device {
  return s.client === 'uplink' ? uplinkDevice(index, s, events) : mqttjsDevice(index, s, events)
}

function uplinkDevice(index: number, s: DeviceSettings, events: DeviceEvents): Device {
  const id = deviceId(index)
  const topic = topicFor(index)
  let outbox: Outbox | undefined
  if (s.store === 'sqlite') {
    if (!sqliteOutbox) throw new Error('loadSqlite() first')
    outbox = sqliteOutbox({ path: join(s.storeDir, `${id}.db`) })
  }
  const uplink: Uplink = createUplink({
    clientId: id,
    endpoints: s.target?.endpoints ?? [`mqtt://${s.host}:${s.port}`],
    ...(s.target
      ? {
          ...(s.dnsServer ? { dns: { servers: [s.dnsServer] } } : {}),
          ...(s.target.auth.username !== undefined ? { username: s.target.auth.username } : {}),
          ...(s.target.auth.password !== undefined ? { password: s.target.auth.password } : {}),
          ...(s.target.auth.tls ? { tls: s.target.auth.tls } : {}),
        }
      : {
          dns: {
            servers: [s.dnsServer as string],
            family: 4 as const,
            // Loopback only: a device must never ask the machine's real resolvers about test names.
            systemFallback: false,
            ...(s.dnsWatch ? { watch: s.dnsWatch } : {}),
          },
        }),
    keepalive: s.keepalive,
    connectTimeoutMs: s.connectTimeoutMs,
    backoff: s.backoff,
    failover: { minStayMs: s.minStayMs, allowedHosts: s.allowedHosts },
    ...(s.concierge ? { concierge: { ...s.concierge, allowedHosts: s.allowedHosts } } : {}),
    ...(outbox ? { outbox } : {}),
    random: seededRandom(s.seed * 1_000_003 + index),
  })
  uplink.on('connect', (e) => events.connected(s.target ? e.endpoint : e.address))
  uplink.on('disconnect', () => events.disconnected())
  // 'connecting' is one reconnect attempt, 'migrating' one make-before-break attempt.
  uplink.on('state', (e) => {
    if (e.state === 'connecting' || e.state === 'migrating') events.attempt()
  })
  uplink.on('reconnecting', (e) => {
    if (e.error) events.error(`reconnect:${e.error.code}`)
  })
  uplink.on('drop', () => events.dropped())
  uplink.on('error', (e) => events.error(e.code))
  return {
    index,
    start: () => void uplink.start(),
    publish: (seq) => uplink.publish(topic, makePayload(index, seq, s.payloadBytes), { qos: 1 }),
    attempts: () => uplink.stats().attempts,
    drained: () => {
      const st = uplink.stats()
      return st.outbox.messages === 0 && st.inFlight === 0
    },
    // In-flight messages are still in the outbox until acknowledged.
    queued: () => uplink.stats().outbox.messages,
    close: () => uplink.stop({ timeoutMs: 500 }),
  }
}

/** Uncached resolvers, by server and group of devices: every lookup is a fresh query. */
const resolvers = new Map<string, dns.Resolver>()
/** The resolver baseline device `index` asks `server` through (shared by DEVICES_PER_RESOLVER). */
export function baselineResolver(server: string, index: number): dns.Resolver {
  const key = `${server} ${Math.floor(index / DEVICES_PER_RESOLVER)}`
  let resolver = resolvers.get(key)
  if (!resolver) {
    resolver = new dns.Resolver({ timeout: 2_000, tries: 2 })
    resolver.setServers([server])
    resolvers.set(key, resolver)
  }
  return resolver
}

function lookupVia(server: string, index: number): net.LookupFunction {
  const r = baselineResolver(server, index)
  type Callback = (
    err: NodeJS.ErrnoException | null,
    address: string | dns.LookupAddress[],
    family?: number,
  ) => void
  const lookup = (hostname: string, options: dns.LookupOptions, callback: Callback) => {
    r.resolve4(hostname, (err, addresses) => {
      if (err) return callback(err, '')
      if (options.all)
        callback(
          null,
          addresses.map((address) => ({ address, family: 4 })),
        )
      else callback(null, addresses[0] ?? '', 4)
    })
  }
  return lookup as unknown as net.LookupFunction
}

function mqttjsDevice(index: number, s: DeviceSettings, events: DeviceEvents): Device {
  const id = deviceId(index)
  const topic = topicFor(index)
  const lookup = lookupVia(s.dnsServer as string, index)
  let attempts = 0
  let client: MqttClient | undefined
  return {
    index,
    start() {
      client = new MqttClient(
        () => {
          attempts++
          events.attempt()
          return net.connect({ host: s.host, port: s.port, lookup })
        },
        {
          clientId: id,
          protocolVersion: 4,
          keepalive: s.keepalive,
          reconnectPeriod: 1_000,
          connectTimeout: 30_000,
          clean: true,
        },
      )
      const c = client
      c.on('connect', () => {
        const address = (c.stream as net.Socket | undefined)?.remoteAddress
        events.connected(address ?? '')
      })
      c.on('close', () => events.disconnected())
      c.on('error', (err) => events.error((err as { code?: string }).code ?? err.message))
    },
    publish(seq) {
      // Counted as published once MQTT.js has taken it (into its offline queue, if offline).
      client?.publish(topic, makePayload(index, seq, s.payloadBytes), { qos: 1 })
      return Promise.resolve()
    },
    attempts: () => attempts,
    drained() {
      if (!client) return true
      const c = client as unknown as { queue: unknown[]; outgoing: Record<string, unknown> }
      return client.connected && c.queue.length === 0 && Object.keys(c.outgoing).length === 0
    },
    queued() {
      if (!client) return 0
      const c = client as unknown as { queue: unknown[]; outgoing: Record<string, unknown> }
      return c.queue.length + Object.keys(c.outgoing).length
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (!client) return resolve()
        client.end(true, {}, () => resolve())
      }),
  }
}

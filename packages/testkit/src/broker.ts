import net from 'node:net'
import tls from 'node:tls'
import { Aedes } from 'aedes'
import { assertLoopback, listen } from './loopback.js'

/**
 * One PUBLISH a client sent the broker and the broker accepted (broker-originated and $SYS
 * publishes are left out), recorded before a QoS 1 PUBACK goes out: whatever a client was told
 * the broker received is here, even if the broker was killed before routing it.
 */
export interface ReceivedPublish {
  topic: string
  payload: Buffer
  clientId: string
  qos: number
  retain: boolean
  at: number
}

export interface ConnectRecord {
  clientId: string
  at: number
}

export interface DisconnectRecord {
  clientId: string
  at: number
  /** True when the client sent DISCONNECT before closing (a clean disconnect). */
  clean: boolean
}

export interface TestBroker {
  /** mqtt:// (or mqtts:// with `tls`) URL on the bound loopback address. */
  url: string
  host: string
  port: number
  /** The aedes instance itself, for tests that need to reach inside. */
  aedes: Aedes
  publishes: ReceivedPublish[]
  connects: ConnectRecord[]
  readonly connectCount: number
  disconnects: DisconnectRecord[]
  readonly clientCount: number
  clientIds(): string[]
  /** Topic filters the client currently holds (all clients when no id is given). */
  subscriptions(clientId?: string): string[]
  /** Closes one client's connection from the broker's side, as a broker that drops it would. */
  dropClient(clientId: string): void
  /** Publishes from the broker itself (e.g. a command to a device). */
  publish(
    topic: string,
    payload: string | Uint8Array,
    options?: { qos?: 0 | 1 | 2; retain?: boolean },
  ): Promise<void>
  /** Graceful: stops accepting, closes every client, resolves when the port is free. */
  stop(): Promise<void>
  /** As a crashed process would: every socket destroyed at once, no goodbye. */
  kill(): Promise<void>
}

export interface BrokerOptions {
  /** Loopback address to bind (default 127.0.0.1); 127.0.0.2 lets two brokers be two regions. */
  host?: string
  /** Port to bind; default one the OS picks. Two brokers on different hosts may share one. */
  port?: number
  /** Serve MQTT over TLS with this key and certificate. */
  tls?: { key: string | Buffer; cert: string | Buffer }
}

export async function startBroker(options: BrokerOptions = {}): Promise<TestBroker> {
  const host = options.host ?? '127.0.0.1'
  assertLoopback(host)
  const aedes = await Aedes.createBroker()
  const publishes: ReceivedPublish[] = []
  const connects: ConnectRecord[] = []
  const disconnects: DisconnectRecord[] = []
  const sockets = new Set<net.Socket>()
  // aedes keeps its live clients here; its type declarations leave the map out.
  const clients = () =>
    (aedes as unknown as { clients: Record<string, { close(): void; subscriptions?: object }> })
      .clients

  aedes.on('client', (client) => connects.push({ clientId: client.id, at: Date.now() }))
  aedes.on('clientDisconnect', (client) => {
    // aedes sets `_disconnected` only when the client sent a DISCONNECT packet: the one way to
    // tell a clean goodbye from a dropped link.
    const clean = (client as unknown as { _disconnected?: boolean })._disconnected === true
    disconnects.push({ clientId: client.id, at: Date.now(), clean })
  })
  aedes.on('connectionError', () => {})
  aedes.on('clientError', () => {})
  // Recorded once authorized, which is before aedes writes a QoS 1 PUBACK: its 'publish' event
  // comes after, once the message is routed, and a kill() in between left a message the device
  // had been told was received out of the record (the outage test failed so under Bun).
  const authorize = aedes.authorizePublish
  aedes.authorizePublish = function (this: Aedes, client, packet, callback) {
    authorize.call(this, client, packet, (err) => {
      if (!err && client) {
        publishes.push({
          topic: packet.topic,
          payload: Buffer.from(packet.payload as Buffer),
          clientId: client.id,
          qos: packet.qos,
          retain: packet.retain,
          at: Date.now(),
        })
      }
      callback(err)
    })
  }

  const onConnection = (socket: net.Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    aedes.handle(socket)
  }
  const server = options.tls
    ? tls.createServer({ key: options.tls.key, cert: options.tls.cert }, onConnection)
    : net.createServer(onConnection)
  server.on('error', () => {})
  const port = await listen(server, host, options.port ?? 0).catch(async (err) => {
    await new Promise<void>((r) => aedes.close(() => r()))
    throw err
  })
  const urlHost = host.includes(':') ? `[${host}]` : host
  let closed = false

  const close = async (hard: boolean) => {
    if (closed) return
    closed = true
    const serverClosed = new Promise<void>((r) => server.close(() => r()))
    if (hard) for (const socket of sockets) socket.destroy()
    await new Promise<void>((r) => aedes.close(() => r()))
    for (const socket of sockets) socket.destroy()
    await serverClosed
  }

  return {
    url: `${options.tls ? 'mqtts' : 'mqtt'}://${urlHost}:${port}`,
    host,
    port,
    aedes,
    publishes,
    connects,
    get connectCount() {
      return connects.length
    },
    disconnects,
    get clientCount() {
      return aedes.connectedClients
    },
    clientIds: () => Object.keys(clients()),
    dropClient(clientId) {
      clients()[clientId]?.close()
    },
    subscriptions(clientId) {
      const ids = clientId === undefined ? Object.keys(clients()) : [clientId]
      const filters: string[] = []
      for (const id of ids) {
        const client = clients()[id]
        if (client?.subscriptions) filters.push(...Object.keys(client.subscriptions))
      }
      return filters
    },
    publish: (topic, payload, publishOptions = {}) =>
      new Promise<void>((resolve, reject) => {
        aedes.publish(
          {
            cmd: 'publish',
            topic,
            payload: typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload),
            qos: publishOptions.qos ?? 0,
            retain: publishOptions.retain ?? false,
            dup: false,
          },
          (err) => (err ? reject(err) : resolve()),
        )
      }),
    stop: () => close(false),
    kill: () => close(true),
  }
}

/**
 * Two regions on one port, 127.0.0.1 and 127.0.0.2, so that one URL (a DNS name's port) reaches
 * either. The port the OS picked on 127.0.0.1 can be held on 127.0.0.2 by a listener of another
 * test file running beside: then another pick, a few times.
 */
export async function startBrokerPair(
  options: Omit<BrokerOptions, 'host' | 'port'> = {},
): Promise<[TestBroker, TestBroker]> {
  for (let attempt = 0; ; attempt++) {
    const a = await startBroker({ ...options, host: '127.0.0.1' })
    try {
      return [a, await startBroker({ ...options, host: '127.0.0.2', port: a.port })]
    } catch (err) {
      await a.stop()
      if (attempt >= 4) throw err
    }
  }
}

import { ManualClock } from '../../src/clock.js'
import type { Connection } from '../../src/connection.js'
import { parseEndpoint } from '../../src/endpoints.js'
import { openConnection } from '../../src/transport.js'

/** One MQTT 3.1.1 connection to a broker on 127.0.0.1, made by the transport itself. */
export const connectTo = (port: number, clientId: string): Promise<Connection> =>
  openConnection({
    endpoint: parseEndpoint(`mqtt://127.0.0.1:${port}`, 'endpoints[0]'),
    addresses: ['127.0.0.1'],
    attemptDelayMs: 250,
    clientId,
    protocolVersion: 4,
    keepalive: 60,
    clean: true,
    sessionExpirySeconds: 0,
    connectTimeoutMs: 5_000,
    clock: new ManualClock(),
  })

/** MQTT.js's client under a connection: what a test of the transport's settings reads. */
export const mqttClientOf = <T>(connection: Connection): T =>
  (connection as unknown as { client: T }).client

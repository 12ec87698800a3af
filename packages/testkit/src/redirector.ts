import net from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { listen } from './loopback.js'

/**
 * A small MQTT 5 responder for what no broker here can produce: a server redirect. In `connack`
 * mode it refuses every CONNECT with reason 0x9C "use another server" (or 0x9D "server moved")
 * and a Server Reference. In `disconnect` mode it accepts, answers pings, PUBACKs and SUBACKs,
 * and sends DISCONNECT with the redirect when `redirectAll()` is called. It takes QoS 2 too
 * (PUBREC, then PUBCOMP), and `pubcompReasonCode` makes every PUBCOMP a failure, which no broker
 * here can be made to send.
 */
export interface TestRedirector {
  url: string
  host: string
  port: number
  /** CONNECT packets received. */
  connects: number
  /** Topics of PUBLISH packets received (disconnect mode). */
  publishes: Array<{ topic: string; payload: Buffer }>
  /** Sends DISCONNECT with the redirect to every connected client (disconnect mode). */
  redirectAll(): void
  setServerReference(reference: string): void
  stop(): Promise<void>
}

export async function startRedirector(options: {
  mode: 'connack' | 'disconnect'
  serverReference: string
  reasonCode?: 0x9c | 0x9d
  /** Reason code of every PUBCOMP (disconnect mode); default 0, success. */
  pubcompReasonCode?: number
  host?: string
}): Promise<TestRedirector> {
  const host = options.host ?? '127.0.0.1'
  const reasonCode = options.reasonCode ?? 0x9c
  let reference = options.serverReference
  const sockets = new Set<net.Socket>()
  const live = new Set<net.Socket>()
  const opts = { protocolVersion: 5 }
  const state = { connects: 0, publishes: [] as Array<{ topic: string; payload: Buffer }> }

  const send = (socket: net.Socket, packet: Packet) => {
    if (!socket.destroyed) socket.write(mqttPacket.generate(packet, opts))
  }

  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => {
      sockets.delete(socket)
      live.delete(socket)
    })
    socket.on('error', () => {})
    const parser = mqttPacket.parser(opts)
    parser.on('error', () => socket.destroy())
    parser.on('packet', (packet: Packet) => {
      switch (packet.cmd) {
        case 'connect':
          state.connects++
          if (options.mode === 'connack') {
            send(socket, {
              cmd: 'connack',
              sessionPresent: false,
              reasonCode,
              properties: { serverReference: reference },
            })
            socket.end()
          } else {
            send(socket, { cmd: 'connack', sessionPresent: false, reasonCode: 0 })
            live.add(socket)
          }
          break
        case 'pingreq':
          send(socket, { cmd: 'pingresp' })
          break
        case 'publish':
          state.publishes.push({ topic: packet.topic, payload: Buffer.from(packet.payload) })
          if (packet.qos === 1)
            send(socket, { cmd: 'puback', messageId: packet.messageId as number, reasonCode: 0 })
          if (packet.qos === 2)
            send(socket, { cmd: 'pubrec', messageId: packet.messageId as number, reasonCode: 0 })
          break
        case 'pubrel':
          send(socket, {
            cmd: 'pubcomp',
            messageId: packet.messageId,
            reasonCode: options.pubcompReasonCode ?? 0,
          })
          break
        case 'subscribe':
          send(socket, {
            cmd: 'suback',
            messageId: packet.messageId,
            granted: packet.subscriptions.map((s) => s.qos),
          })
          break
        case 'disconnect':
          socket.end()
          break
      }
    })
    socket.on('data', (chunk) => parser.parse(chunk))
  })
  const port = await listen(server, host)
  const urlHost = host.includes(':') ? `[${host}]` : host
  return {
    url: `mqtt://${urlHost}:${port}`,
    host,
    port,
    get connects() {
      return state.connects
    },
    publishes: state.publishes,
    redirectAll() {
      for (const socket of live) {
        send(socket, { cmd: 'disconnect', reasonCode, properties: { serverReference: reference } })
        socket.end()
      }
    },
    setServerReference(r) {
      reference = r
    },
    async stop() {
      for (const s of sockets) s.destroy()
      await new Promise((r) => server.close(r))
    },
  }
}

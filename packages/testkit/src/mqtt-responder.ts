import net from 'node:net'
import mqttPacket, { type ISubscribePacket, type Packet } from 'mqtt-packet'
import { listen } from './loopback.js'

/** One client connection of a responder: its socket, and how to send it a packet. */
export interface ResponderPeer {
  socket: net.Socket
  /** Writes `packet` unless the socket is gone. */
  send(packet: Packet): void
  /** Which connection this is, from 1. */
  n: number
}

export interface MqttResponder {
  url: string
  host: string
  port: number
  /** Destroys every connection and closes the listener. */
  stop(): Promise<void>
}

/**
 * The skeleton of the testkit's scripted MQTT responders (redirector.ts, pubrel-responder.ts):
 * a loopback listener, a packet parser per connection, and every connection tracked so that
 * stop() ends them. What to answer is the caller's: `onPacket` for each packet parsed.
 */
export async function startMqttResponder(options: {
  protocolVersion: 4 | 5
  host?: string
  onPacket(packet: Packet, peer: ResponderPeer): void
  onClose?(peer: ResponderPeer): void
}): Promise<MqttResponder> {
  const host = options.host ?? '127.0.0.1'
  const opts = { protocolVersion: options.protocolVersion }
  const sockets = new Set<net.Socket>()
  let connections = 0
  const server = net.createServer((socket) => {
    const peer: ResponderPeer = {
      socket,
      n: ++connections,
      send: (packet) => {
        if (!socket.destroyed) socket.write(mqttPacket.generate(packet, opts))
      },
    }
    sockets.add(socket)
    socket.on('close', () => {
      sockets.delete(socket)
      options.onClose?.(peer)
    })
    socket.on('error', () => {})
    const parser = mqttPacket.parser(opts)
    parser.on('error', () => socket.destroy())
    parser.on('packet', (packet: Packet) => options.onPacket(packet, peer))
    socket.on('data', (chunk) => parser.parse(chunk))
  })
  const port = await listen(server, host)
  const urlHost = host.includes(':') ? `[${host}]` : host
  return {
    url: `mqtt://${urlHost}:${port}`,
    host,
    port,
    async stop() {
      for (const s of sockets) s.destroy()
      await new Promise((r) => server.close(r))
    },
  }
}

/** The SUBACK that grants every filter of `subscribe` the QoS it asked for. */
export function grantAll(subscribe: ISubscribePacket): Packet {
  return {
    cmd: 'suback',
    messageId: subscribe.messageId,
    granted: subscribe.subscriptions.map((s) => s.qos),
  }
}

import net from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { listen } from './loopback.js'

/**
 * A small MQTT 3.1.1 responder for a moment no broker here can be made to hit on cue: the link
 * lost between the client's PUBREC and the broker's PUBREL of an inbound QoS 2 message. Its
 * first connection has no session; once the client has subscribed, it is sent one QoS 2
 * PUBLISH (`topic`, `payload`, packet id 7), and the link is cut as its PUBREC arrives. Every
 * later connection has the session, and gets the PUBREL it is owed, as MQTT 4.4 requires.
 * `log` records what came in, per connection (`2 pubcomp 7`).
 */
export interface TestPubrelResponder {
  url: string
  log: string[]
  stop(): Promise<void>
}

export async function startPubrelResponder(options: {
  topic: string
  payload: string
  host?: string
}): Promise<TestPubrelResponder> {
  const host = options.host ?? '127.0.0.1'
  const opts = { protocolVersion: 4 }
  const log: string[] = []
  const sockets = new Set<net.Socket>()
  let connections = 0
  const server = net.createServer((socket) => {
    const n = ++connections
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    const send = (packet: Packet) => {
      if (!socket.destroyed) socket.write(mqttPacket.generate(packet, opts))
    }
    const parser = mqttPacket.parser(opts)
    parser.on('error', () => socket.destroy())
    parser.on('packet', (packet: Packet) => {
      const id =
        'messageId' in packet && packet.messageId !== undefined ? ` ${packet.messageId}` : ''
      log.push(`${n} ${packet.cmd}${id}`)
      switch (packet.cmd) {
        case 'connect':
          send({ cmd: 'connack', sessionPresent: n > 1, returnCode: 0 })
          if (n > 1) send({ cmd: 'pubrel', messageId: 7 })
          break
        case 'subscribe':
          send({
            cmd: 'suback',
            messageId: packet.messageId,
            granted: packet.subscriptions.map((s) => s.qos),
          })
          if (n === 1)
            send({
              cmd: 'publish',
              topic: options.topic,
              payload: Buffer.from(options.payload),
              qos: 2,
              messageId: 7,
              dup: false,
              retain: false,
            })
          break
        case 'pubrec':
          if (n === 1) socket.destroy()
          break
        case 'pingreq':
          send({ cmd: 'pingresp' })
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
    log,
    async stop() {
      for (const s of sockets) s.destroy()
      await new Promise((r) => server.close(r))
    },
  }
}

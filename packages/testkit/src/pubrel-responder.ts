import { grantAll, startMqttResponder } from './mqtt-responder.js'

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
  const log: string[] = []
  const responder = await startMqttResponder({
    protocolVersion: 4,
    host: options.host,
    onPacket(packet, { send, socket, n }) {
      const id =
        'messageId' in packet && packet.messageId !== undefined ? ` ${packet.messageId}` : ''
      log.push(`${n} ${packet.cmd}${id}`)
      switch (packet.cmd) {
        case 'connect':
          send({ cmd: 'connack', sessionPresent: n > 1, returnCode: 0 })
          if (n > 1) send({ cmd: 'pubrel', messageId: 7 })
          break
        case 'subscribe':
          send(grantAll(packet))
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
    },
  })
  return { url: responder.url, log, stop: () => responder.stop() }
}

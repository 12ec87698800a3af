import { grantAll, type ResponderPeer, startMqttResponder } from './mqtt-responder.js'

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
  const reasonCode = options.reasonCode ?? 0x9c
  let reference = options.serverReference
  const live = new Set<ResponderPeer>()
  const state = { connects: 0, publishes: [] as Array<{ topic: string; payload: Buffer }> }
  const responder = await startMqttResponder({
    protocolVersion: 5,
    host: options.host,
    onClose: (peer) => live.delete(peer),
    onPacket(packet, peer) {
      const { send, socket } = peer
      switch (packet.cmd) {
        case 'connect':
          state.connects++
          if (options.mode === 'connack') {
            send({
              cmd: 'connack',
              sessionPresent: false,
              reasonCode,
              properties: { serverReference: reference },
            })
            socket.end()
          } else {
            send({ cmd: 'connack', sessionPresent: false, reasonCode: 0 })
            live.add(peer)
          }
          break
        case 'pingreq':
          send({ cmd: 'pingresp' })
          break
        case 'publish':
          state.publishes.push({ topic: packet.topic, payload: Buffer.from(packet.payload) })
          if (packet.qos === 1)
            send({ cmd: 'puback', messageId: packet.messageId as number, reasonCode: 0 })
          if (packet.qos === 2)
            send({ cmd: 'pubrec', messageId: packet.messageId as number, reasonCode: 0 })
          break
        case 'pubrel':
          send({
            cmd: 'pubcomp',
            messageId: packet.messageId,
            reasonCode: options.pubcompReasonCode ?? 0,
          })
          break
        case 'subscribe':
          send(grantAll(packet))
          break
        case 'disconnect':
          socket.end()
          break
      }
    },
  })
  return {
    url: responder.url,
    host: responder.host,
    port: responder.port,
    get connects() {
      return state.connects
    },
    publishes: state.publishes,
    redirectAll() {
      for (const { send, socket } of live) {
        send({ cmd: 'disconnect', reasonCode, properties: { serverReference: reference } })
        socket.end()
      }
    },
    setServerReference(r) {
      reference = r
    },
    stop: () => responder.stop(),
  }
}

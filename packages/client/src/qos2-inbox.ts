import { Readable } from 'node:stream'
import type { IStore } from 'mqtt'

type Packet = Parameters<IStore['put']>[0]
type PacketCallback = Parameters<IStore['get']>[1]

/**
 * Inbound QoS 2 messages between the PUBREC the client sent and the broker's PUBREL, for one
 * broker's session rather than one connection. MQTT.js hands a QoS 2 message to the application
 * only on PUBREL, finding it in its incoming store; each connection is a new MqttClient with a
 * store of its own, so a link lost between PUBREC and PUBREL left the broker's PUBREL, resent on
 * the next connection as MQTT requires, finding nothing: the message was completed at the broker
 * and never delivered. At most one entry per packet id (65 535).
 */
export class Qos2Inbox implements IStore {
  /** Each message with the connection it came on (counted by `begin()`). */
  private readonly held = new Map<number, { packet: Packet; connection: number }>()
  private connection = 0

  /** A connection to this broker is about to be made: what it receives is its own. */
  begin(): this {
    this.connection++
    return this
  }

  put(packet: Packet, cb: (err?: Error) => void): this {
    this.held.set(packet.messageId as number, { packet, connection: this.connection })
    cb()
    return this
  }

  get(packet: Pick<Packet, 'messageId'>, cb: PacketCallback): this {
    return this.answer(this.held.get(packet.messageId as number), cb)
  }

  del(packet: Pick<Packet, 'messageId'>, cb: PacketCallback): this {
    const id = packet.messageId as number
    const found = this.held.get(id)
    this.held.delete(id)
    return this.answer(found, cb)
  }

  /** As MQTT.js's own store answers: the packet, or an error when it holds none. */
  private answer(found: { packet: Packet } | undefined, cb: PacketCallback): this {
    if (found) cb(undefined, found.packet)
    else cb(new Error('missing packet'))
    return this
  }

  createStream(): ReturnType<IStore['createStream']> {
    const packets = [...this.held.values()].map((e) => e.packet)
    return Readable.from(packets) as unknown as ReturnType<IStore['createStream']>
  }

  /** MQTT.js closes its stores as each connection ends; this one outlives them. */
  close(cb: (err?: Error) => void): void {
    cb()
  }

  /**
   * The broker has no session: no PUBREL will come for what earlier connections received. What
   * the latest one received already (a PUBLISH in the CONNACK's packet) stays.
   */
  forgetEarlier(): void {
    for (const [id, e] of this.held) if (e.connection < this.connection) this.held.delete(id)
  }

  get size(): number {
    return this.held.size
  }
}

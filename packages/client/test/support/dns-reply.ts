import dnsPacket, { type Packet } from 'dns-packet'

/** An authoritative answer to `query`'s question: one A record (`data`), with `over` laid on top. */
export function dnsReply(query: Packet, over: Partial<Packet> = {}, data = '127.0.0.8'): Packet {
  const q = query.questions?.[0] as { name: string; type: 'A' }
  return {
    type: 'response',
    id: query.id ?? 0,
    flags: dnsPacket.AUTHORITATIVE_ANSWER,
    questions: [q],
    answers: [{ type: 'A', name: q.name, ttl: 60, class: 'IN', data }],
    ...over,
  }
}

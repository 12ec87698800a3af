import dnsPacket from 'dns-packet'
import { describe, expect, it } from 'vitest'
import { encodeQuery } from '../src/dns-query.js'

const reference = (id: number, name: string, type: 'A' | 'AAAA') =>
  dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
  })

describe('encodeQuery', () => {
  const names = [
    'iot.uplink.test',
    'a',
    'mqtt.storm.test',
    'x-1.region_b.example.com',
    `${'a'.repeat(63)}.test`,
    // The odd ones take dns-packet's path: the bytes must still be dns-packet's.
    `${'a'.repeat(64)}.test`,
    'a..b',
    'münchen.example',
    '',
  ]
  for (const name of names) {
    for (const type of ['A', 'AAAA'] as const) {
      it(`writes the bytes dns-packet writes: ${JSON.stringify(name.slice(0, 20))} ${type}`, () => {
        expect(encodeQuery(0xbeef, name, type).equals(reference(0xbeef, name, type))).toBe(true)
      })
    }
  }

  it('reads back as the question asked, with recursion desired', () => {
    const packet = dnsPacket.decode(encodeQuery(7, 'iot.uplink.test', 'AAAA'))
    expect(packet).toMatchObject({
      id: 7,
      type: 'query',
      questions: [{ name: 'iot.uplink.test', type: 'AAAA', class: 'IN' }],
    })
    expect((packet.flags ?? 0) & dnsPacket.RECURSION_DESIRED).toBeTruthy()
  })
})

import { randomInt } from 'node:crypto'
import dgram from 'node:dgram'
import { isIPv6 } from 'node:net'
import dnsPacket from 'dns-packet'

export interface DnsProbeAnswer {
  rcode: string
  /** Addresses of the A or AAAA records in the answer, sorted. */
  addresses: string[]
}

/** One UDP query to a DNS server, for starters to see what their server answers right now. */
export function dnsProbe(
  server: { host: string; port: number },
  name: string,
  type: 'A' | 'AAAA' = 'A',
  timeoutMs = 500,
): Promise<DnsProbeAnswer> {
  const socket = dgram.createSocket(isIPv6(server.host) ? 'udp6' : 'udp4')
  const id = randomInt(0, 65_536)
  return new Promise<DnsProbeAnswer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no DNS answer for ${name}`)), timeoutMs)
    socket.on('error', reject)
    socket.on('message', (message) => {
      const packet = dnsPacket.decode(message)
      if (packet.id !== id) return
      clearTimeout(timer)
      const addresses = (packet.answers ?? [])
        .flatMap((a) => (a.type === 'A' || a.type === 'AAAA' ? [a.data] : []))
        .sort()
      // dns-packet decodes the response code, but its types leave it out.
      const rcode = (packet as { rcode?: string }).rcode ?? 'NOERROR'
      resolve({ rcode, addresses })
    })
    const query = dnsPacket.encode({
      type: 'query',
      id,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type, name }],
    })
    socket.send(query, server.port, server.host)
  }).finally(() => socket.close())
}

/** Waits until the server answers `name` with exactly `addresses` (of that family). */
export async function awaitDnsAnswer(
  server: { host: string; port: number },
  name: string,
  addresses: string[],
  timeoutMs = 5_000,
): Promise<void> {
  const want = [...addresses].sort().join(',')
  const type = addresses.some(isIPv6) ? 'AAAA' : 'A'
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    const answer = await dnsProbe(server, name, type).catch((err) => ({
      rcode: String(err),
      addresses: [],
    }))
    last = `${answer.rcode} ${answer.addresses.join(',')}`
    if (answer.addresses.join(',') === want) return
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`DNS server still answers ${name} with ${last}, not ${want}`)
}

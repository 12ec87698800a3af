/** What the machine itself says about a run. */
import { readFileSync } from 'node:fs'

/**
 * UDP datagrams the kernel dropped for a full receive buffer, machine-wide (Linux; undefined
 * elsewhere). A fleet's DNS traffic in one burst can overflow a socket's buffer, the test DNS
 * server's or a resolver's: the devices then wait for their resolver's timeout and ask again.
 */
export function udpReceiveDrops(): number | undefined {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('Udp:'))
    const names = lines[0]?.split(/\s+/) ?? []
    const values = lines[1]?.split(/\s+/) ?? []
    const i = names.indexOf('RcvbufErrors')
    return i > 0 ? Number(values[i]) : undefined
  } catch {
    return undefined
  }
}

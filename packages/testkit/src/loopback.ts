import type { Socket as UdpSocket } from 'node:dgram'
import type { AddressInfo, Server } from 'node:net'

/** Test servers bind only loopback addresses: 127.0.0.0/8 or ::1. */
export function assertLoopback(host: string): void {
  const ok = host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
  if (!ok) throw new Error(`testkit servers bind loopback addresses only, not ${host}`)
}

/** Listens on `host` with a port the OS picks (or the one given) and returns the port. */
export function listen(server: Server, host: string, port = 0): Promise<number> {
  assertLoopback(host)
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve((server.address() as AddressInfo).port)
    })
  })
}

export function bindUdp(socket: UdpSocket, host: string, port = 0): Promise<number> {
  assertLoopback(host)
  return new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(port, host, () => {
      socket.off('error', reject)
      resolve(socket.address().port)
    })
  })
}

/** Polls `predicate` until it holds, failing after `timeoutMs` with `what` in the message. */
export async function waitFor(
  predicate: () => boolean,
  what: string,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

import type { Socket as UdpSocket } from 'node:dgram'
import { type AddressInfo, connect, createServer, type Server } from 'node:net'

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

/**
 * A port the OS picks on `host`, freed again for a child process to take. Another process may
 * take it first: callers retry on a lost race (see `withFreePorts`).
 */
export async function freePort(host: string): Promise<number> {
  const server = createServer()
  const port = await listen(server, host)
  await new Promise((r) => server.close(r))
  return port
}

/** Whether something accepts TCP connections on host:port right now. */
export function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port }, () => {
      socket.destroy()
      resolve(true)
    })
    socket.on('error', () => resolve(false))
  })
}

import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { startFaultProxy } from '../src/fault-proxy.js'
import { listen, waitFor } from '../src/loopback.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

/** An echo server that also remembers what it received. */
async function echoServer() {
  const received: Buffer[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((s) => {
    sockets.add(s)
    s.on('error', () => {})
    s.on('data', (d) => {
      received.push(d)
      s.write(d)
    })
  })
  const port = await listen(server, '127.0.0.1')
  cleanup.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  )
  return { host: '127.0.0.1', port, received: () => Buffer.concat(received).toString() }
}

async function dial(port: number) {
  const socket = net.connect({ host: '127.0.0.1', port })
  cleanup.push(() => void socket.destroy())
  const data: Buffer[] = []
  let error: NodeJS.ErrnoException | undefined
  let closed = false
  socket.on('data', (d) => data.push(d))
  socket.on('error', (e) => {
    error = e
  })
  socket.on('close', () => {
    closed = true
  })
  await new Promise((r) => socket.once('connect', r))
  return {
    socket,
    text: () => Buffer.concat(data).toString(),
    error: () => error,
    closed: () => closed,
  }
}

describe('startFaultProxy', () => {
  it('pass: bytes flow both ways', async () => {
    const echo = await echoServer()
    const proxy = await startFaultProxy(echo)
    cleanup.push(() => proxy.stop())
    const c = await dial(proxy.port)
    c.socket.write('ping')
    await waitFor(() => c.text() === 'ping', 'the echo')
    expect(proxy.connectionCount).toBe(1)
    expect(proxy.url()).toBe(`mqtt://127.0.0.1:${proxy.port}`)
  })

  it('blackhole: the socket stays open and bytes vanish both ways', async () => {
    const echo = await echoServer()
    const proxy = await startFaultProxy(echo)
    cleanup.push(() => proxy.stop())
    const c = await dial(proxy.port)
    c.socket.write('a')
    await waitFor(() => c.text() === 'a', 'the first echo')
    proxy.setMode('blackhole')
    c.socket.write('b')
    // Give a lost byte every chance to arrive; on loopback 200 ms is an eternity.
    await new Promise((r) => setTimeout(r, 200))
    expect(echo.received()).toBe('a')
    expect(c.text()).toBe('a')
    expect(c.closed()).toBe(false)
    // New connections are accepted and then hear nothing.
    const d = await dial(proxy.port)
    d.socket.write('c')
    await new Promise((r) => setTimeout(r, 100))
    expect(echo.received()).toBe('a')
    expect(d.closed()).toBe(false)
    expect(proxy.acceptedCount).toBe(2)
  })

  it('reset: open sockets are reset and new ones refused', async () => {
    const echo = await echoServer()
    const proxy = await startFaultProxy(echo)
    cleanup.push(() => proxy.stop())
    const c = await dial(proxy.port)
    proxy.setMode('reset')
    await waitFor(() => c.closed(), 'the reset')
    expect(c.error()?.code).toBe('ECONNRESET')
    const socket = net.connect({ host: '127.0.0.1', port: proxy.port })
    const outcome = await new Promise<string>((r) => {
      socket.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'))
      socket.on('close', () => r('closed'))
    })
    expect(['ECONNRESET', 'closed']).toContain(outcome)
    expect(proxy.connectionCount).toBe(0)
  })

  it('latency delays each chunk and keeps order', async () => {
    const echo = await echoServer()
    const proxy = await startFaultProxy(echo)
    cleanup.push(() => proxy.stop())
    proxy.setLatency(150)
    const c = await dial(proxy.port)
    const t0 = performance.now()
    c.socket.write('1')
    c.socket.write('2')
    await waitFor(() => c.text() === '12', 'both chunks')
    // Two hops of 150 ms each: out and back.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290)
  })

  it('setTarget sends new connections elsewhere', async () => {
    const one = await echoServer()
    const two = await echoServer()
    const proxy = await startFaultProxy(one)
    cleanup.push(() => proxy.stop())
    proxy.setTarget(two)
    const c = await dial(proxy.port)
    c.socket.write('x')
    await waitFor(() => c.text() === 'x', 'the echo')
    expect([one.received(), two.received()]).toEqual(['', 'x'])
  })
})

import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { startStalledListener } from '../src/stalled-listener.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

describe('startStalledListener', () => {
  it('a connect to it neither completes nor fails: the SYN is dropped', async () => {
    const stalled = await startStalledListener({ host: '127.0.0.2' })
    cleanup.push(() => stalled.stop())
    const socket = net.connect({ host: stalled.host, port: stalled.port })
    cleanup.push(() => void socket.destroy())
    const outcome = await new Promise<string>((resolve) => {
      socket.once('connect', () => resolve('connected'))
      socket.once('error', (err) => resolve(String((err as NodeJS.ErrnoException).code)))
      // Past the first SYN retransmission (1 s): a reset or a late accept would show by then.
      setTimeout(() => resolve('pending'), 1_500)
    })
    expect(outcome).toBe('pending')
  })

  it('binds the port it is given, beside a live listener on another loopback address', async () => {
    const live = net.createServer()
    await new Promise<void>((r) => live.listen(0, '127.0.0.1', () => r()))
    cleanup.push(() => new Promise<void>((r) => live.close(() => r())))
    const port = (live.address() as net.AddressInfo).port
    const stalled = await startStalledListener({ host: '127.0.0.2', port })
    cleanup.push(() => stalled.stop())
    expect(stalled.port).toBe(port)
  })

  it('refuses to bind anything but loopback', async () => {
    await expect(startStalledListener({ host: '0.0.0.0' })).rejects.toThrow(/loopback/)
  })
})

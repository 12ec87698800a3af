import net from 'node:net'
import { waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../src/clock.js'
import { interleave, RaceError, race } from '../src/happy-eyeballs.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

/** A connector whose attempts the test settles by hand; it records starts and aborts. */
function scripted() {
  const started: string[] = []
  const aborted: string[] = []
  const settle = new Map<string, { ok(): void; fail(err: Error): void }>()
  const connect = (address: string, signal: AbortSignal) =>
    new Promise<string>((resolve, reject) => {
      started.push(address)
      signal.addEventListener('abort', () => {
        aborted.push(address)
        reject(signal.reason)
      })
      settle.set(address, { ok: () => resolve(address), fail: reject })
    })
  const at = (address: string) => {
    const s = settle.get(address)
    if (!s) throw new Error(`${address} was never started`)
    return s
  }
  return { started, aborted, connect, at }
}

describe('interleave', () => {
  it('puts IPv6 first and alternates the families, each in the resolver order', () => {
    expect(interleave(['10.0.0.1', '10.0.0.2', '10.0.0.3', '2001:db8::1', '2001:db8::2'])).toEqual([
      '2001:db8::1',
      '10.0.0.1',
      '2001:db8::2',
      '10.0.0.2',
      '10.0.0.3',
    ])
    expect(interleave(['10.0.0.1', '10.0.0.2'])).toEqual(['10.0.0.1', '10.0.0.2'])
    expect(interleave(['::1'])).toEqual(['::1'])
  })
})

describe('race', () => {
  it('starts the next address only after the attempt delay, and the first to connect wins', async () => {
    const clock = new ManualClock()
    const s = scripted()
    const released: string[] = []
    const result = race(['127.0.0.1', '127.0.0.2', '::1'], s.connect, (v) => released.push(v), {
      clock,
      attemptDelayMs: 250,
    })
    await clock.advance(0)
    expect(s.started).toEqual(['::1'])
    await clock.advance(249)
    expect(s.started).toEqual(['::1'])
    await clock.advance(1)
    expect(s.started).toEqual(['::1', '127.0.0.1'])
    // The second connects while the first is still pending: it wins, the others stop.
    s.at('127.0.0.1').ok()
    expect(await result).toEqual({ address: '127.0.0.1', value: '127.0.0.1' })
    expect(s.aborted).toEqual(['::1'])
    await clock.advance(10_000)
    expect(s.started).toEqual(['::1', '127.0.0.1'])
    expect(released).toEqual([])
  })

  it('a failed attempt starts the next at once, without waiting the delay', async () => {
    const clock = new ManualClock()
    const s = scripted()
    const result = race(['127.0.0.1', '127.0.0.2'], s.connect, () => {}, {
      clock,
      attemptDelayMs: 250,
    })
    await clock.advance(0)
    s.at('127.0.0.1').fail(new Error('ECONNREFUSED'))
    await clock.advance(0)
    expect(s.started).toEqual(['127.0.0.1', '127.0.0.2'])
    s.at('127.0.0.2').ok()
    expect((await result).address).toBe('127.0.0.2')
    expect(clock.now()).toBe(0)
  })

  it('an attempt that connects after the winner is released', async () => {
    const clock = new ManualClock()
    const released: string[] = []
    const result = race(
      ['127.0.0.1', '127.0.0.2'],
      // Ignores the abort and connects anyway, as a socket may in the tick after the winner's.
      (address) =>
        new Promise<string>((resolve) => {
          if (address === '127.0.0.2') resolve(address)
          else clock.setTimeout(() => resolve(address), 300)
        }),
      (v) => released.push(v),
      { clock, attemptDelayMs: 250 },
    )
    await clock.advance(250)
    expect((await result).address).toBe('127.0.0.2')
    await clock.advance(50)
    expect(released).toEqual(['127.0.0.1'])
  })

  it('with every address failed, rejects with each failure in order', async () => {
    const clock = new ManualClock()
    const s = scripted()
    const result = race(['127.0.0.1', '127.0.0.2'], s.connect, () => {}, {
      clock,
      attemptDelayMs: 250,
    })
    const settled = result.catch((e) => e)
    await clock.advance(250)
    s.at('127.0.0.2').fail(new Error('second'))
    s.at('127.0.0.1').fail(new Error('first'))
    const err = await settled
    expect(err).toBeInstanceOf(RaceError)
    expect((err as RaceError).failures.map((f) => [f.address, (f.error as Error).message])).toEqual(
      [
        ['127.0.0.2', 'second'],
        ['127.0.0.1', 'first'],
      ],
    )
  })

  it('the failure of every address costs no stack trace, and the stack limit is left as it was', async () => {
    const limit = Error.stackTraceLimit
    const err = await race(
      ['127.0.0.1'],
      () => Promise.reject(new Error('refused')),
      () => {},
      {
        clock: new ManualClock(),
        attemptDelayMs: 250,
      },
    ).catch((e) => e)
    expect(err).toBeInstanceOf(RaceError)
    expect(err.message).toBe('all 1 addresses failed')
    // Only the message line (on Bun too, whose engine would leave none): no frame was captured.
    expect(String(err.stack).split('\n')).toEqual(['Error: all 1 addresses failed'])
    expect(Error.stackTraceLimit).toBe(limit)
  })

  it('an abort ends every pending attempt and rejects with its reason', async () => {
    const clock = new ManualClock()
    const s = scripted()
    const controller = new AbortController()
    const result = race(['127.0.0.1', '127.0.0.2', '127.0.0.3'], s.connect, () => {}, {
      clock,
      attemptDelayMs: 250,
      signal: controller.signal,
    })
    await clock.advance(250)
    const reason = new Error('stopped')
    controller.abort(reason)
    await expect(result).rejects.toBe(reason)
    expect(s.aborted.sort()).toEqual(['127.0.0.1', '127.0.0.2'])
    await clock.advance(1_000)
    expect(s.started).toHaveLength(2)
  })

  it('a lone address runs on the race signal itself: an abort ends it with the reason', async () => {
    const clock = new ManualClock()
    const controller = new AbortController()
    let given: AbortSignal | undefined
    const s = scripted()
    const result = race(
      ['127.0.0.1'],
      (address, signal) => {
        given = signal
        return s.connect(address, signal)
      },
      () => {},
      { clock, attemptDelayMs: 250, signal: controller.signal },
    )
    expect(given).toBe(controller.signal)
    const reason = new Error('stopped')
    controller.abort(reason)
    await expect(result).rejects.toBe(reason)
    expect(s.aborted).toEqual(['127.0.0.1'])
  })

  it('on real loopback sockets, the loser that connected too is closed on the listener side', async () => {
    // Two listeners on one port at two loopback addresses: both accept, only one may stay.
    const open = new Set<net.Socket>()
    let accepted = 0
    let port = 0
    for (const host of ['127.0.0.1', '127.0.0.2']) {
      const server = net.createServer((socket) => {
        accepted++
        open.add(socket)
        socket.resume()
        socket.on('close', () => open.delete(socket))
      })
      await new Promise<void>((r) => server.listen(port, host, () => r()))
      port = (server.address() as net.AddressInfo).port
      cleanup.push(() => new Promise<void>((r) => server.close(() => r())))
    }
    const clock = new ManualClock()
    const connect = (address: string, signal: AbortSignal) =>
      new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect({ host: address, port })
        signal.addEventListener('abort', () => {
          socket.destroy()
          reject(signal.reason)
        })
        socket.once('connect', () => resolve(socket))
        socket.once('error', reject)
      })
    // No delay: both attempts start together and both handshakes complete.
    const result = race(['127.0.0.1', '127.0.0.2'], connect, (s) => s.destroy(), {
      clock,
      attemptDelayMs: 0,
    })
    await clock.advance(0)
    const { value } = await result
    cleanup.push(() => void value.destroy())
    await waitFor(() => accepted === 2 && open.size === 1, 'the loser closed at its listener')
    expect(open.size).toBe(1)
    expect([...open][0]?.remotePort).toBe(value.localPort)
  })
})

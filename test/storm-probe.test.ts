/** The storm's accept-rate probe: the broker-side rate (pure) and the probing client's connections. */
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { acceptRateOf } from '../bench/storm/probe.js'
import { probeConnects } from '../bench/storm/probe-connects.js'

describe('storm accept-rate probe', () => {
  it('is the connects after the first per second of the broker-side span, in any order', () => {
    expect(acceptRateOf([300, 1_100, 100, 200])).toStrictEqual({ perSec: 3, spanMs: 1_000 })
  })

  it('a single connect has no rate (and no zero span to divide by)', () => {
    expect(acceptRateOf([500])).toStrictEqual({ perSec: 0, spanMs: 1 })
  })

  it('answers only once every probe connection has closed, so the memory baseline after it holds none', async () => {
    // A listener that accepts every CONNECT and counts the probe's goodbyes (its FIN). A probe
    // socket closes only after this side's FIN, sent in answer to that goodbye.
    let goodbyes = 0
    const server = net.createServer((socket) => {
      socket.once('data', () => socket.write(Buffer.from([0x20, 0x02, 0x00, 0x00])))
      socket.on('end', () => goodbyes++)
      socket.on('error', () => {})
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const { port } = server.address() as net.AddressInfo
      const result = await probeConnects('127.0.0.1', port, 50, 10, 't', 10_000, undefined)
      expect(result).toMatchObject({ ok: 50, failed: 0 })
      expect(goodbyes).toBe(50)
    } finally {
      await new Promise((r) => server.close(r))
    }
  })
})

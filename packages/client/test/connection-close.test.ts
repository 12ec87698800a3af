import { describe, expect, it } from 'vitest'
import { ConnectionClose } from '../src/connection.js'
import { UplinkError } from '../src/errors.js'

class Closable extends ConnectionClose {
  close(reason: UplinkError): boolean {
    return this.settleClose(reason)
  }
}

const lost = () => new UplinkError('CONNECTION_LOST', 'gone')

describe('ConnectionClose: closed made when asked for, onClose for a holder that only needs waking', () => {
  it('closed asked for before the close resolves with the first reason, once; the same promise every time', async () => {
    const c = new Closable()
    const closed = c.closed
    expect(c.closed).toBe(closed)
    const first = lost()
    expect(c.close(first)).toBe(true)
    expect(c.close(new UplinkError('STOPPED', 'again'))).toBe(false)
    expect(await closed).toBe(first)
    expect(c.closedBy).toBe(first)
    expect(c.isOpen).toBe(false)
  })

  it('closed first asked for after the close is already resolved with its reason', async () => {
    const c = new Closable()
    const reason = lost()
    c.close(reason)
    expect(await c.closed).toBe(reason)
    expect(c.closed).toBe(c.closed)
  })

  it('onClose is called once, a microtask after the close; the last listener set is the one called', async () => {
    const c = new Closable()
    const calls: string[] = []
    c.onClose(() => calls.push('replaced'))
    c.onClose(() => calls.push('listener'))
    c.close(lost())
    expect(calls).toEqual([])
    await Promise.resolve()
    expect(calls).toEqual(['listener'])
    c.close(lost())
    await Promise.resolve()
    expect(calls).toEqual(['listener'])
  })

  it('onClose on a closed connection is called a microtask later, not at once', async () => {
    const c = new Closable()
    c.close(lost())
    let called = 0
    c.onClose(() => called++)
    expect(called).toBe(0)
    await Promise.resolve()
    expect(called).toBe(1)
  })
})

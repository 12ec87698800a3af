import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ManualClock } from '@uplink/client'
import { startGreengrassNucleus, type TestNucleus, waitFor } from '@uplink/testkit'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { IpcConnection } from '../src/ipc-connection.js'
import { IpcSession } from '../src/ipc-session.js'

const dir = mkdtempSync(join(tmpdir(), 'uplink-ipc-session-'))
const socketPath = join(dir, 'ipc.socket')
const svcuid = 'a-token-the-nucleus-keeps'
const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function nucleusAtPath(): Promise<TestNucleus> {
  const nucleus = await startGreengrassNucleus({ socketPath })
  nucleus.addComponent('dev.uplink.Uplink', {}, { svcuid })
  cleanup.push(() => nucleus.stop())
  return nucleus
}

describe('the IPC session: one connection at a time, rebuilt with backoff', () => {
  it('retries a nucleus that is not there yet after a jittered, capped delay, then sets up the connection', async () => {
    const clock = new ManualClock()
    const errors: string[] = []
    const ready: IpcConnection[] = []
    const session = new IpcSession(
      { socketPath, authToken: svcuid },
      async (ipc) => {
        ready.push(ipc)
      },
      (err) => errors.push(err.message),
      clock,
      () => 0.5,
    )
    cleanup.push(() => session.stop())
    session.start()
    await waitFor(() => errors.length === 1, 'the first failed attempt')
    // Full jitter over 100 ms at the first failure, random 0.5: 50 ms.
    expect(clock.nextDelay()).toBe(50)
    await clock.advance(50)
    await waitFor(() => errors.length === 2, 'the second failed attempt')
    expect(clock.nextDelay()).toBe(100)
    const nucleus = await nucleusAtPath()
    await clock.advance(100)
    await waitFor(() => ready.length === 1, 'the connection set up')
    expect(session.current).toBe(ready[0])

    nucleus.dropConnections()
    await waitFor(
      () => session.current === undefined && clock.pending() === 1,
      'the backoff after a drop',
    )
    await clock.advance(clock.nextDelay() ?? 0)
    await waitFor(() => ready.length === 2, 'a new connection')
    expect(ready[1]).not.toBe(ready[0])
    expect(nucleus.connectionCount()).toBe(1)
  })

  it('a failing set-up closes the connection and counts as a failed attempt', async () => {
    const nucleus = await nucleusAtPath()
    const clock = new ManualClock()
    let calls = 0
    const errors: string[] = []
    const session = new IpcSession(
      { socketPath, authToken: svcuid },
      async () => {
        calls++
        if (calls === 1) throw new Error('GetConfiguration refused')
      },
      (err) => errors.push(err.message),
      clock,
      () => 0.5,
    )
    cleanup.push(() => session.stop())
    session.start()
    await waitFor(() => errors.length === 1 && clock.pending() === 1, 'the failed set-up')
    expect(errors).toEqual(['GetConfiguration refused'])
    await clock.advance(clock.nextDelay() ?? 0)
    await waitFor(() => calls === 2 && nucleus.connectionCount() === 1, 'the second set-up')
  })

  it('stops: no attempt after stop()', async () => {
    const clock = new ManualClock()
    const errors: string[] = []
    const session = new IpcSession(
      { socketPath: join(dir, 'none'), authToken: 'x' },
      async () => {},
      (e) => errors.push(e.message),
      clock,
      () => 0.5,
    )
    session.start()
    await waitFor(() => errors.length === 1, 'a failed attempt')
    session.stop()
    await clock.advance(60_000)
    expect(errors).toHaveLength(1)
    expect(clock.pending()).toBe(0)
  })
})

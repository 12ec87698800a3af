import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../src/clock.js'
import type { Connection } from '../src/connection.js'
import { GuardedEmitter } from '../src/emitter.js'
import { parseEndpoint } from '../src/endpoints.js'
import { UplinkError } from '../src/errors.js'
import type { ConnectionState, UplinkEvents } from '../src/events.js'
import { resolveOptions, type UplinkOptions } from '../src/options.js'
import { type SessionHooks, Supervisor } from '../src/supervisor.js'
import {
  type ScriptedConnection,
  ScriptedResolver,
  ScriptedTransport,
} from './support/scripted-transport.js'

/**
 * The state machine alone: a scripted transport and resolver, the manual clock, no sockets and
 * no sleeps. Every `await clock.advance(0)` lets the loop run up to its next wait.
 */

const A = 'mqtt://a.example:1883'
const B = 'mqtt://b.example:1883'

interface Rig {
  clock: ManualClock
  transport: ScriptedTransport
  resolver: ScriptedResolver
  supervisor: Supervisor
  states: ConnectionState[]
  events: Array<[string, unknown]>
  hooks: Array<[keyof SessionHooks, string]>
  tick(ms?: number): Promise<void>
}

const rigs: Rig[] = []
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.supervisor.stop()
})

function rig(options: Partial<UplinkOptions> = {}, extra: Partial<SessionHooks> = {}): Rig {
  const clock = new ManualClock(0)
  const transport = new ScriptedTransport()
  const resolver = new ScriptedResolver()
  const emitter = new GuardedEmitter<UplinkEvents>()
  const states: ConnectionState[] = []
  const events: Array<[string, unknown]> = []
  const hooks: Array<[keyof SessionHooks, string]> = []
  for (const name of [
    'connect',
    'disconnect',
    'reconnecting',
    'failover',
    'error',
    'dns-partial',
  ] as const) {
    emitter.on(name, ((e: unknown) => events.push([name, e])) as never)
  }
  emitter.on('state', (e) => states.push(e.state))
  const where = (c: Connection) => `${c.endpoint.host}/${c.address}`
  const resolved = resolveOptions({
    clientId: 'gw-sm',
    endpoints: [A, B],
    clock,
    random: () => 0.5,
    backoff: { jitter: 'none' },
    ...options,
  })
  const supervisor = new Supervisor(
    resolved,
    { resolver, connect: transport.connect },
    {
      established: async (c) => {
        hooks.push(['established', where(c)])
      },
      lost: (c) => hooks.push(['lost', where(c)]),
      retired: (c) => hooks.push(['retired', where(c)]),
      leaving: async (c) => {
        hooks.push(['leaving', where(c)])
      },
      ...extra,
    },
    emitter,
  )
  const r: Rig = {
    clock,
    transport,
    resolver,
    supervisor,
    states,
    events,
    hooks,
    tick: (ms = 0) => clock.advance(ms),
  }
  rigs.push(r)
  return r
}

const named = (r: Rig, name: string) => r.events.filter(([n]) => n === name).map(([, e]) => e)

/** Starts and connects to the first endpoint. */
async function connected(r: Rig): Promise<ScriptedConnection> {
  r.supervisor.start()
  await r.tick()
  const c = r.transport.pending().accept()
  await r.tick()
  expect(r.supervisor.stats().state).toBe('connected')
  return c
}

/** No attempt until `ms` have passed, and then one to `url`. */
async function nextAttemptAfter(r: Rig, ms: number, url: string): Promise<void> {
  await r.tick(ms - 1)
  expect(r.transport.pendingCount).toBe(0)
  await r.tick(1)
  expect(r.transport.pending().url).toBe(url)
}

/** Starts, and fails the first attempt. */
async function backingOff(r: Rig): Promise<Rig> {
  r.supervisor.start()
  await r.tick()
  r.transport.pending().fail()
  await r.tick()
  expect(r.supervisor.stats().state).toBe('backing-off')
  return r
}

describe('Supervisor states: idle, resolving, connecting, connected', () => {
  it('is idle until started, then resolves, connects and is connected', async () => {
    const r = rig()
    expect(r.supervisor.stats().state).toBe('idle')
    r.resolver.hold()
    r.supervisor.start()
    await r.tick()
    expect(r.supervisor.stats().state).toBe('resolving')
    expect(r.resolver.asked).toEqual(['a.example'])
    expect(r.transport.attempts).toHaveLength(0)
    r.resolver.release()
    await r.tick()
    expect(r.supervisor.stats().state).toBe('connecting')
    const attempt = r.transport.pending()
    expect(attempt.params).toMatchObject({
      clientId: 'gw-sm',
      addresses: ['10.0.0.1'],
      endpoint: { url: A },
    })
    const c = attempt.accept()
    await r.tick()
    expect(r.states).toEqual(['resolving', 'connecting', 'connected'])
    expect(r.supervisor.current).toBe(c)
    expect(r.supervisor.stats()).toMatchObject({ address: '10.0.0.1', attempts: 1 })
    expect(named(r, 'connect')).toEqual([
      { endpoint: A, address: '10.0.0.1', sessionPresent: false },
    ])
    expect(r.hooks).toEqual([['established', 'a.example/10.0.0.1']])
  })

  it('races the other addresses again when the winner fails before its CONNACK, not after a refusal', async () => {
    const r = rig()
    r.resolver.answer('a.example', ['10.0.0.1', '10.0.0.2'])
    r.supervisor.start()
    await r.tick()
    r.transport.pending().fail(
      new UplinkError('CONNECT_FAILED', 'closed before CONNACK', {
        details: { address: '10.0.0.1' },
      }),
    )
    await r.tick()
    // At once, with what is left, and no backoff in between.
    expect(r.transport.pending().params.addresses).toEqual(['10.0.0.2'])
    expect(named(r, 'reconnecting')).toEqual([])
    r.transport.pending().fail(
      new UplinkError('CONNECT_REFUSED', 'not authorized', {
        details: { address: '10.0.0.2', reasonCode: 5 },
      }),
    )
    await r.tick()
    expect(r.transport.pendingCount).toBe(0)
    expect(r.supervisor.stats()).toMatchObject({ state: 'backing-off', attempts: 2 })
  })
})

describe('Supervisor before each attempt', () => {
  it('asks beforeReconnect first, and a move it asks for aims that very attempt', async () => {
    let asked = 0
    let r: Rig | undefined
    r = rig(
      {},
      {
        beforeReconnect: async () => {
          asked++
          r?.supervisor.requestMove(parseEndpoint(B, 'b'), 'concierge')
        },
      },
    )
    r.supervisor.start()
    await r.tick()
    expect(asked).toBe(1)
    expect(r.transport.pending().url).toBe(B)
    r.transport.pending().fail()
    await r.tick(1_000)
    expect(asked).toBe(2)
  })
})

describe('Supervisor backing-off: the ladder on the clock', () => {
  it('waits 1 s, 2 s, 4 s after failures, and not a tick less', async () => {
    const r = rig({ endpoints: [A], backoff: { jitter: 'none', maxMs: 4_000 } })
    r.supervisor.start()
    for (const delay of [1_000, 2_000, 4_000, 4_000]) {
      await r.tick()
      r.transport.pending().fail()
      await r.tick()
      expect(r.supervisor.stats().state).toBe('backing-off')
      await r.tick(delay - 1)
      expect(r.transport.pendingCount).toBe(0)
      await r.tick(1)
    }
    const reconnecting = named(r, 'reconnecting') as Array<{ attempt: number; delayMs: number }>
    expect(reconnecting.map((e) => [e.attempt, e.delayMs])).toEqual([
      [1, 1_000],
      [2, 2_000],
      [3, 4_000],
      [4, 4_000],
    ])
    expect(r.transport.attempts).toHaveLength(5)
  })

  it('keeps climbing after a connection that drops early, and starts over after stableMs', async () => {
    const r = rig({ endpoints: [A], backoff: { jitter: 'none', stableMs: 30_000 } })
    r.supervisor.start()
    await r.tick()
    r.transport.pending().fail()
    await r.tick(1_000)
    // Up, and dropped before stableMs: the next wait is the second rung.
    r.transport.pending().accept().drop()
    await r.tick()
    expect(r.hooks.map(([h]) => h)).toEqual(['established', 'lost'])
    expect((named(r, 'reconnecting').at(-1) as { delayMs: number }).delayMs).toBe(2_000)
    await r.tick(2_000)
    const stable = r.transport.pending().accept()
    await r.tick(30_000)
    stable.drop()
    await r.tick()
    // Stayed up 30 s: reconnect within the arrival spread (random 0.5 x 1 000 ms), and the
    // ladder starts from the bottom.
    expect(named(r, 'reconnecting').at(-1)).toMatchObject({ attempt: 0, delayMs: 500 })
    await r.tick(499)
    expect(r.transport.attempts).toHaveLength(3)
    await r.tick(1)
    expect(r.transport.attempts).toHaveLength(4)
    r.transport.pending().fail()
    await r.tick()
    expect(named(r, 'reconnecting').at(-1)).toMatchObject({ attempt: 1, delayMs: 1_000 })
    expect(named(r, 'disconnect')).toHaveLength(2)
  })

  it('without informed backoff a stable connection lost reconnects at once', async () => {
    const r = rig({ endpoints: [A], backoff: { jitter: 'none', stableMs: 1_000, informed: false } })
    r.supervisor.start()
    await r.tick()
    const up = r.transport.pending().accept()
    await r.tick(1_000)
    up.drop()
    await r.tick()
    expect(named(r, 'reconnecting').at(-1)).toMatchObject({ attempt: 0, delayMs: 0 })
    expect(r.transport.attempts).toHaveLength(2)
  })

  it('moves to the next endpoint after failoverAfter consecutive failures', async () => {
    const r = rig({ failoverAfter: 2 })
    r.supervisor.start()
    for (let i = 0; i < 2; i++) {
      await r.tick()
      r.transport.pending().fail()
      await r.tick(10_000)
    }
    expect(r.transport.attempts.map((a) => a.url)).toEqual([A, A, B])
    expect(r.supervisor.stats().endpoint).toBe(B)
    r.transport.pending().accept()
    await r.tick()
    expect(r.supervisor.stats()).toMatchObject({ state: 'connected', endpoint: B })
  })

  it('a manual move asked for while backing off cuts the wait at once and goes there', async () => {
    const r = await backingOff(rig())
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'manual')
    await r.tick()
    expect(r.transport.pending().url).toBe(B)
  })

  it('a concierge move asked for while backing off cuts the wait after the spread', async () => {
    const r = await backingOff(rig({ backoff: { jitter: 'none', initialMs: 32_000 } }))
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'concierge')
    // random() is 0.5: half of the default 1 s spread.
    await nextAttemptAfter(r, 500, B)
  })
})

describe('Supervisor connected: the loop parks until the connection closes or the bell rings', () => {
  it('wakes for every move and for the close of whichever connection it holds, moved off or not', async () => {
    const r = rig({ backoff: { jitter: 'none', informed: false } })
    const a = await connected(r)
    // Parked: no timer pending while connected.
    expect(r.clock.pending()).toBe(0)
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'manual')
    await r.tick()
    const b = r.transport.pending().accept({ address: '10.0.0.2' })
    await r.tick()
    expect(a.isOpen).toBe(false)
    expect(r.supervisor.current).toBe(b)
    // A move that comes to nothing (already there) leaves it parked on b.
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'manual')
    await r.tick()
    expect(r.transport.pendingCount).toBe(0)
    r.supervisor.requestMove(parseEndpoint(A, 'a'), 'manual')
    await r.tick()
    const a2 = r.transport.pending().accept({ address: '10.0.0.3' })
    await r.tick()
    expect(r.supervisor.current).toBe(a2)
    expect(r.clock.pending()).toBe(0)
    // The close of the connection it holds now ends the hold: lost, said, and reconnected.
    a2.drop()
    await r.tick()
    expect(r.hooks.at(-1)).toEqual(['lost', 'a.example/10.0.0.3'])
    expect(named(r, 'disconnect')).toMatchObject([{ endpoint: A, address: '10.0.0.3' }])
    await r.tick(1_000)
    expect(r.transport.pending().url).toBe(A)
    r.transport.pending().accept({ address: '10.0.0.4' })
    await r.tick()
    expect(r.supervisor.stats()).toMatchObject({ state: 'connected', address: '10.0.0.4' })
    // And stop() wakes it once more, to close what it holds.
    const held = r.supervisor.current as ScriptedConnection
    await r.supervisor.stop()
    expect(held.isOpen).toBe(false)
    expect(r.supervisor.stats().state).toBe('stopped')
    expect(r.hooks.at(-1)).toEqual(['lost', 'a.example/10.0.0.4'])
  })
})

describe('Supervisor migrating: planned moves are make-before-break', () => {
  it('opens the target while the old link carries on, then retires the old one cleanly', async () => {
    const r = rig()
    const old = await connected(r)
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'manual')
    await r.tick()
    expect(r.supervisor.stats().state).toBe('migrating')
    expect(old.isOpen).toBe(true)
    expect(r.supervisor.current).toBe(old)
    const next = r.transport.pending()
    expect(next.url).toBe(B)
    next.accept({ address: '10.0.0.9' })
    await r.tick()
    expect(r.supervisor.current?.endpoint.url).toBe(B)
    expect(old.closedWith).toBe('end')
    // The old link was retired, not lost: `lost` is for connections that went away.
    expect(r.hooks).toEqual([
      ['established', 'a.example/10.0.0.1'],
      ['retired', 'a.example/10.0.0.1'],
      ['leaving', 'a.example/10.0.0.1'],
      ['established', 'b.example/10.0.0.9'],
    ])
    expect(named(r, 'failover')).toEqual([
      {
        from: A,
        to: B,
        fromAddress: '10.0.0.1',
        toAddress: '10.0.0.9',
        reason: 'manual',
        durationMs: 0,
      },
    ])
    expect(named(r, 'disconnect')).toEqual([])
    expect(r.states.slice(-2)).toEqual(['migrating', 'connected'])
  })

  it('stays where it is when the target cannot be reached, and tries again after a backoff', async () => {
    const r = rig()
    const old = await connected(r)
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'manual')
    await r.tick()
    r.transport.pending().fail()
    await r.tick()
    expect(r.supervisor.stats().state).toBe('connected')
    expect(r.supervisor.current).toBe(old)
    expect(named(r, 'error')).toMatchObject([
      { code: 'FAILOVER_FAILED', details: { reason: 'manual', target: B } },
    ])
    expect(r.hooks.map(([h]) => h)).toEqual(['established'])
    await nextAttemptAfter(r, 1_000, B)
  })

  it('the old link ending while a failed move waits to retry hands over to the reconnect, aimed at the target', async () => {
    const r = rig()
    const old = await connected(r)
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'manual')
    await r.tick()
    r.transport.pending().fail()
    await r.tick(500)
    old.drop()
    await r.tick()
    expect(r.hooks.map(([h]) => h)).toEqual(['established', 'lost'])
    expect(r.supervisor.stats().state).toBe('backing-off')
    await r.tick(1_000)
    expect(r.transport.pending().url).toBe(B)
  })

  it('a newer request during the wait replaces the failed move', async () => {
    const r = rig({ endpoints: [A, B, 'mqtt://c.example:1883'] })
    await connected(r)
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'manual')
    await r.tick()
    r.transport.pending().fail()
    await r.tick()
    r.supervisor.requestMove(parseEndpoint('mqtt://c.example:1883', 'c'), 'manual')
    await r.tick()
    expect(r.transport.pending().url).toBe('mqtt://c.example:1883')
  })

  it('waits minStayMs on an endpoint before a concierge move (flap damping); a manual one does not', async () => {
    const r = rig({ failover: { minStayMs: 60_000 } })
    await connected(r)
    await r.tick(20_000)
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'concierge')
    await nextAttemptAfter(r, 40_000, B)
  })

  it('ignores a move to where it already is', async () => {
    const r = rig()
    await connected(r)
    r.supervisor.requestMove(parseEndpoint(A, 'a'), 'manual')
    await r.tick(100_000)
    expect(r.transport.attempts).toHaveLength(1)
    expect(r.supervisor.stats().state).toBe('connected')
  })

  it('recall (a directive confirmed again) moves a device connected elsewhere, after minStayMs', async () => {
    const r = rig({ failover: { minStayMs: 60_000 } })
    await connected(r)
    r.supervisor.recall(parseEndpoint(B, 'b'), 'concierge')
    await nextAttemptAfter(r, 60_000, B)
    r.transport.pending().accept()
    await r.tick()
    expect(r.supervisor.stats()).toMatchObject({ state: 'connected', endpoint: B })
    expect(named(r, 'failover')).toMatchObject([{ from: A, to: B, reason: 'concierge' }])
  })

  it('recall does not start a failing move again: its backoff runs out first', async () => {
    const r = rig({ failover: { minStayMs: 0 } })
    await connected(r)
    r.supervisor.recall(parseEndpoint(B, 'b'), 'concierge')
    await r.tick()
    r.transport.pending().fail()
    await r.tick(500)
    // The answer said again while the move waits to retry: it neither cuts the wait nor dials.
    r.supervisor.recall(parseEndpoint(B, 'b'), 'concierge')
    await nextAttemptAfter(r, 500, B)
    expect(r.transport.attempts.map((a) => a.url)).toEqual([A, B, B])
  })

  it('recall does nothing offline: the wait of the ladder is not cut short', async () => {
    const r = await backingOff(rig())
    r.supervisor.recall(parseEndpoint(B, 'b'), 'concierge')
    await nextAttemptAfter(r, 1_000, A)
  })

  it.each(['manual', 'control'] as const)(
    'recall does not undo a %s move: that word stands until the directive changes',
    async (reason) => {
      const r = rig({ failover: { minStayMs: 0 } })
      await connected(r)
      r.supervisor.requestMove(parseEndpoint(B, 'b'), reason)
      await r.tick()
      r.transport.pending().accept()
      await r.tick()
      expect(r.supervisor.stats().endpoint).toBe(B)
      r.supervisor.recall(parseEndpoint(A, 'a'), 'concierge')
      await r.tick(100_000)
      expect(r.transport.attempts).toHaveLength(2)
      expect(r.supervisor.stats()).toMatchObject({ state: 'connected', endpoint: B })
    },
  )

  it('recall does not undo a manual move after a plain reconnect to the same endpoint (a blip)', async () => {
    const r = rig({ failover: { minStayMs: 0 }, backoff: { jitter: 'none', informed: false } })
    await connected(r)
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'manual')
    await r.tick()
    const onB = r.transport.pending().accept()
    await r.tick()
    await r.tick(31_000)
    onB.drop()
    await r.tick()
    r.transport.pending().accept()
    await r.tick()
    expect(r.supervisor.stats()).toMatchObject({ state: 'connected', endpoint: B })
    r.supervisor.recall(parseEndpoint(A, 'a'), 'concierge')
    await r.tick(100_000)
    expect(r.transport.attempts.map((a) => a.url)).toEqual([A, B, B])
    expect(r.supervisor.stats().endpoint).toBe(B)
  })

  it("a move's failover durationMs runs to the new CONNACK, not through the old link's last words", async () => {
    const r = rig(
      {},
      { leaving: () => new Promise<void>((resolve) => r.clock.setTimeout(resolve, 700)) },
    )
    await connected(r)
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'manual')
    await r.tick(300)
    r.transport.pending().accept()
    await r.tick(700)
    expect(named(r, 'failover')).toMatchObject([{ from: A, to: B, durationMs: 300 }])
  })

  it('recall during the handover of a manual move (its last words on the old link) does not undo it', async () => {
    const X = 'mqtt://x.example:1883'
    let leaving = 0
    const r = rig(
      { failover: { minStayMs: 60_000, allowedHosts: ['x.example'] } },
      {
        leaving: () => {
          leaving++
          return new Promise<void>((resolve) => r.clock.setTimeout(resolve, 500))
        },
      },
    )
    await connected(r)
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'manual')
    await r.tick()
    r.transport.pending().accept()
    await r.tick()
    expect(leaving).toBe(1)
    r.supervisor.recall(parseEndpoint(X, 'x'), 'concierge')
    await r.tick(500)
    await r.tick(60_000)
    expect(r.transport.attempts.map((a) => a.url)).toEqual([A, B])
    expect(r.supervisor.stats()).toMatchObject({ state: 'connected', endpoint: B })
  })

  it('a move given up (its old link died) leaves no climbed ladder: the next move retries after initialMs', async () => {
    const r = rig({ failover: { minStayMs: 0 }, backoff: { jitter: 'none', informed: false } })
    const old = await connected(r)
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'concierge')
    await r.tick()
    // Seven failures in a row climb the move's ladder: 1, 2, 4 ... 60 s.
    const waits: Array<number | undefined> = []
    for (let i = 0; i < 7; i++) {
      r.transport.pending().fail()
      await r.tick()
      waits.push(r.clock.nextDelay())
      await r.tick(r.clock.nextDelay() ?? 0)
    }
    expect(waits.at(-1)).toBe(60_000)
    old.drop()
    await r.tick()
    r.transport.pending().fail()
    await r.tick()
    await r.tick(r.clock.nextDelay() ?? 0)
    r.transport.pending().accept()
    await r.tick()
    expect(r.supervisor.stats()).toMatchObject({ state: 'connected', endpoint: B })
    await r.tick(3 * 3_600_000)
    r.supervisor.requestMove(parseEndpoint(A, 'a'), 'manual')
    await r.tick()
    r.transport.pending().fail()
    await nextAttemptAfter(r, 1_000, A)
  })

  it('a lost link leaves `connected` at once, not after a slow concierge refresh before the reconnect', async () => {
    let slow = false
    const r = rig(
      { backoff: { jitter: 'none', informed: false } },
      {
        beforeReconnect: () =>
          slow
            ? new Promise<void>((resolve) => r.clock.setTimeout(resolve, 15_000))
            : Promise.resolve(),
      },
    )
    const c = await connected(r)
    await r.tick(60_000)
    slow = true
    c.drop()
    await r.tick()
    expect(r.supervisor.stats().state).toBe('resolving')
    expect(r.transport.pendingCount).toBe(0)
    await nextAttemptAfter(r, 2_000, A)
  })

  it('a concierge that does not answer holds an attempt 2 s at most (it held each up to twice its timeout), and is not asked again within the floor', async () => {
    let asked = 0
    const r = rig(
      { endpoints: [A], backoff: { jitter: 'none' } },
      {
        // Stale, and never answering.
        refreshDueAt: () => 0,
        beforeReconnect: () => {
          asked++
          return new Promise<void>(() => {})
        },
      },
    )
    r.supervisor.start()
    await nextAttemptAfter(r, 2_000, A)
    r.transport.pending().fail()
    // The next attempt after its 1 s, 3 s after that refresh: within the 5 s floor, not asked.
    await nextAttemptAfter(r, 1_000, A)
    expect(asked).toBe(1)
    r.transport.pending().fail()
    // 2 s on: 5 s since it was asked, so asked again, and waited for 2 s again.
    await nextAttemptAfter(r, 2_000 + 2_000, A)
    expect(asked).toBe(2)
  })

  it('when the old link dies while the move fails, reconnects aimed at the target', async () => {
    const r = rig()
    const old = await connected(r)
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'concierge')
    await r.tick(60_000)
    const move = r.transport.pending()
    old.drop()
    move.fail()
    await r.tick()
    expect(r.hooks.map(([h]) => h)).toEqual(['established', 'lost'])
    expect(named(r, 'disconnect')).toHaveLength(1)
    await r.tick(1_000)
    expect(r.transport.pending().url).toBe(B)
    r.transport.pending().accept()
    await r.tick()
    expect(named(r, 'failover')).toMatchObject([{ from: A, to: B, reason: 'concierge' }])
  })
})

describe('Supervisor redirects (MQTT 5 Server Reference)', () => {
  const redirect = (address: string) =>
    new UplinkError('CONNECT_REFUSED', 'use another server', {
      details: { reasonCode: 0x9c, address, serverReference: 'b.example' },
    })

  it('follows a CONNACK redirect at once, three in a row, then backs off', async () => {
    const r = rig({ endpoints: [A], failover: { allowedHosts: ['b.example'] } })
    r.supervisor.start()
    await r.tick()
    for (let i = 0; i < 3; i++) {
      r.transport.pending().fail(redirect('10.0.0.1'))
      await r.tick()
      expect(r.transport.pending().url).toBe(B)
    }
    r.transport.pending().fail(redirect('10.0.0.1'))
    await r.tick()
    expect(r.supervisor.stats().state).toBe('backing-off')
    expect(named(r, 'reconnecting')).toHaveLength(1)
  })

  it('refuses a redirect to a host outside allowedHosts and backs off instead', async () => {
    const r = rig({ endpoints: [A] })
    r.supervisor.start()
    await r.tick()
    r.transport.pending().fail(redirect('10.0.0.1'))
    await r.tick()
    expect(named(r, 'error')).toMatchObject([{ code: 'DIRECTIVE_REFUSED' }])
    expect(r.supervisor.stats().state).toBe('backing-off')
  })

  it('a DISCONNECT naming another server moves a connected device there at once', async () => {
    const r = rig()
    const c = await connected(r)
    c.drop(
      new UplinkError('CONNECTION_LOST', 'server moved', {
        details: { reasonCode: 0x9d, address: '10.0.0.1', serverReference: 'b.example' },
      }),
    )
    await r.tick()
    expect(r.transport.pending().url).toBe(B)
    r.transport.pending().accept()
    await r.tick()
    expect(named(r, 'failover')).toMatchObject([{ from: A, to: B, reason: 'server-redirect' }])
    expect(named(r, 'reconnecting')).toEqual([])
  })
})

describe('Supervisor stopped: stop() returns at once from every state', () => {
  const stopNow = async (r: Rig) => {
    // No clock advance: stop() must not wait on a timer.
    await r.supervisor.stop()
    expect(r.supervisor.stats().state).toBe('stopped')
    expect(r.clock.pending()).toBe(0)
  }

  it('idle', async () => {
    await stopNow(rig())
  })

  it('resolving', async () => {
    const r = rig()
    r.resolver.hold()
    r.supervisor.start()
    await r.tick()
    expect(r.supervisor.stats().state).toBe('resolving')
    await stopNow(r)
    expect(r.transport.attempts).toHaveLength(0)
  })

  it('connecting: the attempt is aborted', async () => {
    const r = rig()
    r.supervisor.start()
    await r.tick()
    const attempt = r.transport.pending()
    await stopNow(r)
    expect(attempt.signal.aborted).toBe(true)
    expect(named(r, 'reconnecting')).toEqual([])
  })

  it('connected: the connection is closed, and no reconnect follows', async () => {
    const r = rig()
    const c = await connected(r)
    await stopNow(r)
    expect(c.isOpen).toBe(false)
    expect(r.hooks.map(([h]) => h)).toEqual(['established', 'lost'])
    expect(named(r, 'disconnect')).toEqual([])
    expect(r.transport.attempts).toHaveLength(1)
  })

  it('migrating: the move is aborted and the old link closed', async () => {
    const r = rig()
    const c = await connected(r)
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'manual')
    await r.tick()
    const move = r.transport.pending()
    await stopNow(r)
    expect(move.signal.aborted).toBe(true)
    expect(c.isOpen).toBe(false)
    expect(named(r, 'error')).toEqual([])
  })

  it('migrating, after the new CONNACK: the new connection is closed too, not left open', async () => {
    let leave: () => void = () => {}
    const r = rig({}, { leaving: () => new Promise<void>((resolve) => (leave = resolve)) })
    const old = await connected(r)
    r.supervisor.requestMove(parseEndpoint(B, 'b'), 'manual')
    await r.tick()
    const next = r.transport.pending().accept()
    await r.tick()
    const stopped = r.supervisor.stop()
    leave()
    await stopped
    expect(r.supervisor.stats().state).toBe('stopped')
    expect([old.isOpen, next.isOpen]).toEqual([false, false])
    // Never used, so never announced, and closed with a DISCONNECT: no will at its broker.
    expect(next.closedWith).toBe('end')
    expect(named(r, 'connect')).toHaveLength(1)
  })

  it('backing-off: the wait ends', async () => {
    const r = await backingOff(rig())
    await stopNow(r)
    expect(r.transport.attempts).toHaveLength(1)
  })

  it('reconnecting after a connection was up (the abort signal let go while connected): the lookup and the attempt are aborted', async () => {
    const r = rig({ backoff: { jitter: 'none', informed: false } })
    const c = await connected(r)
    // Stable, so the reconnect is at once; its lookup hangs until stop() aborts it.
    await r.tick(120_000)
    r.resolver.hold()
    c.drop()
    await r.tick()
    expect(r.supervisor.stats().state).toBe('resolving')
    await stopNow(r)
    expect(r.transport.attempts).toHaveLength(1)
    // And an attempt under way on the signal made after the connection was held.
    const r2 = rig({ backoff: { jitter: 'none', informed: false } })
    const c2 = await connected(r2)
    await r2.tick(120_000)
    c2.drop()
    await r2.tick()
    const attempt = r2.transport.pending()
    await stopNow(r2)
    expect(attempt.signal.aborted).toBe(true)
    expect((attempt.signal.reason as UplinkError).code).toBe('STOPPED')
  })
})

describe('Supervisor informed backoff: the wait ends early only on news', () => {
  const HOST = 'a.example'
  /** One endpoint, a 32 s wait after the first failure (no jitter), the TTL given. */
  const waiting = async (ttl: number, options: Partial<UplinkOptions> = {}, extra = {}) => {
    const r = rig(
      {
        endpoints: [A],
        ...options,
        backoff: { jitter: 'none', initialMs: 32_000, maxMs: 60_000, ...options.backoff },
      },
      extra,
    )
    r.resolver.answer(HOST, ['10.0.0.1'], ttl)
    await backingOff(r)
    expect(named(r, 'reconnecting').at(-1)).toMatchObject({ delayMs: 32_000 })
    return r
  }

  it('a 32 s wait ends within TTL + spread once DNS names a new address', async () => {
    const r = await waiting(5)
    await r.tick(2_000)
    r.resolver.answer(HOST, ['10.0.0.2'], 5)
    // The TTL runs out at 5 s; the answer is news; random() 0.5 of the 1 s spread: 5.5 s.
    await nextAttemptAfter(r, 3_500, A)
    expect(r.transport.pending().params.addresses).toEqual(['10.0.0.2'])
    expect(r.resolver.asked).toHaveLength(3)
  })

  it('an attempt whose own answer names a new address goes there after the spread, on a fresh ladder; an unchanged answer goes at once', async () => {
    // TTL 60 s: no probe comes before the 1 s rung; the attempt's own lookup finds the move.
    const r = rig({ endpoints: [A], backoff: { jitter: 'none', initialMs: 1_000 } })
    r.resolver.answer(HOST, ['10.0.0.1'], 60)
    await backingOff(r)
    await r.tick(1_000)
    // The same address: the attempt goes at the rung itself.
    expect(r.transport.pending().params.addresses).toEqual(['10.0.0.1'])
    r.transport.pending().fail()
    r.resolver.answer(HOST, ['10.0.0.2'], 60)
    // The 2 s rung asks DNS, learns 10.0.0.2, and waits random() 0.5 x the 1 s spread.
    await r.tick(2_000)
    expect(r.resolver.asked).toHaveLength(3)
    await nextAttemptAfter(r, 500, A)
    expect(r.transport.pending().params.addresses).toEqual(['10.0.0.2'])
    r.transport.pending().fail()
    await r.tick()
    // The news started a fresh ladder: the failure after it waits the first rung again.
    expect(named(r, 'reconnecting').at(-1)).toMatchObject({ attempt: 1, delayMs: 1_000 })
  })

  it('an unchanged answer, or one that only drops or rotates tried addresses, lets the ladder run', async () => {
    const r = rig({ endpoints: [A], backoff: { jitter: 'none', initialMs: 32_000 } })
    r.resolver.answer(HOST, ['10.0.0.1', '10.0.0.3'], 5)
    await backingOff(r)
    r.resolver.answer(HOST, ['10.0.0.3'], 5)
    await r.tick(20_000)
    r.resolver.answer(HOST, ['10.0.0.1'], 5)
    await nextAttemptAfter(r, 32_000 - 20_000, A)
    // Looked at 5, 10, ..., 30 s: six probes, none of them news.
    expect(r.resolver.asked).toHaveLength(1 + 6 + 1)
  })

  it('probes honour the TTL above the floor, and the floor above the TTL', async () => {
    // TTL 12 s, floor 8 s: looks at 12 and 24 s; at 36 s the wait has ended.
    const long = await waiting(12, { backoff: { informed: { minProbeIntervalMs: 8_000 } } })
    await long.tick(32_000 - 1)
    expect(long.resolver.asked).toHaveLength(1 + 2)
    // TTL 1 s, floor 8 s: looks at 8, 16 and 24 s, not every second.
    const short = await waiting(1, { backoff: { informed: { minProbeIntervalMs: 8_000 } } })
    await short.tick(32_000 - 1)
    expect(short.resolver.asked).toHaveLength(1 + 3)
    expect([long.transport.pendingCount, short.transport.pendingCount]).toEqual([0, 0])
  })

  it('a changed answer starts a fresh ladder; failures before it keep climbing', async () => {
    const r = rig({ endpoints: [A], backoff: { jitter: 'none', initialMs: 1_000 } })
    r.resolver.answer(HOST, ['10.0.0.1'], 5)
    r.supervisor.start()
    for (const delay of [1_000, 2_000, 4_000, 8_000, 16_000]) {
      await r.tick()
      r.transport.pending().fail()
      await r.tick(delay)
    }
    r.transport.pending().fail()
    await r.tick()
    r.resolver.answer(HOST, ['10.0.0.2'], 5)
    await r.tick(5_500)
    r.transport.pending().fail()
    await r.tick()
    const ladder = named(r, 'reconnecting').map((e) => {
      const { attempt, delayMs } = e as { attempt: number; delayMs: number }
      return [attempt, delayMs]
    })
    expect(ladder).toEqual([
      [1, 1_000],
      [2, 2_000],
      [3, 4_000],
      [4, 8_000],
      [5, 16_000],
      [6, 32_000],
      [1, 1_000],
    ])
  })

  it('a stale concierge answer is refreshed during the wait; its new endpoint ends the wait after the spread', async () => {
    let r: Rig | undefined
    let refreshed = 0
    r = await waiting(
      60,
      { endpoints: [A, B], failoverAfter: 10 },
      {
        refreshDueAt: () => 10_000,
        beforeReconnect: async () => {
          refreshed++
          if (r && r.clock.now() >= 10_000)
            r.supervisor.requestMove(parseEndpoint(B, 'b'), 'concierge')
        },
      },
    )
    await nextAttemptAfter(r, 10_500, B)
    // At 10 s during the wait only: not before the first attempt (not stale yet), nor again
    // before the attempt to B, within the probes' floor of that refresh.
    expect(refreshed).toBe(1)
    expect(r.resolver.asked).toEqual([HOST, 'b.example'])
  })

  it('a resolver error during a probe changes nothing: the next look is after the floor', async () => {
    const r = await waiting(5)
    r.resolver.failing = new UplinkError('DNS_TIMEOUT', 'no answer')
    await r.tick(5_000)
    expect(r.resolver.asked).toHaveLength(2)
    r.resolver.failing = undefined
    r.resolver.answer(HOST, ['10.0.0.1'], 5)
    await nextAttemptAfter(r, 32_000 - 5_000, A)
    expect(r.resolver.asked).toHaveLength(2 + 5 + 1)
    expect(named(r, 'error')).toEqual([])
  })

  it('stop() during a probe returns at once, the lookup or the concierge refresh still pending', async () => {
    const dns = await waiting(5)
    dns.resolver.hold()
    await dns.tick(5_000)
    expect(dns.resolver.asked).toHaveLength(2)
    await dns.supervisor.stop()
    expect([dns.supervisor.stats().state, dns.clock.pending()]).toEqual(['stopped', 0])
    let concierge: Rig | undefined
    concierge = await waiting(
      60,
      {},
      {
        refreshDueAt: () => 10_000,
        beforeReconnect: () =>
          concierge?.clock.now() ? new Promise<void>(() => {}) : Promise.resolve(),
      },
    )
    await concierge.tick(10_000)
    await concierge.supervisor.stop()
    expect([concierge.supervisor.stats().state, concierge.transport.attempts.length]).toEqual([
      'stopped',
      1,
    ])
  })

  it('off (backoff.informed false): no look during the wait, which runs to its end', async () => {
    const r = await waiting(5, { backoff: { informed: false } })
    r.resolver.answer(HOST, ['10.0.0.2'], 5)
    await nextAttemptAfter(r, 32_000, A)
    expect(r.resolver.asked).toHaveLength(2)
  })
})

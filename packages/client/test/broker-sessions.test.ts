import { describe, expect, it } from 'vitest'
import { BrokerSessions } from '../src/broker-sessions.js'

const want = (...filters: Array<[string, 0 | 1 | 2]>) =>
  filters.map(([topic, qos]) => ({ topic, qos }))

describe('BrokerSessions: what to send a broker on a new connection', () => {
  it('no session: every wanted filter, nothing to unsubscribe', () => {
    const f = new BrokerSessions()
    f.subscribed('a', want(['old/#', 1]))
    f.dropped('old/#')
    expect(f.plan('a', false, want(['x/#', 1], ['y/#', 0]))).toEqual({
      subscribe: ['x/#', 'y/#'],
      unsubscribe: [],
    })
  })

  it('a kept session it knows: only what changed since it acknowledged, a higher QoS included', () => {
    const f = new BrokerSessions()
    f.plan('a', false, want(['x/#', 1], ['q/#', 0]))
    f.subscribed('a', want(['x/#', 1], ['q/#', 0]))
    // Away on b: y/# added, x/# dropped, q/# raised to QoS 1.
    f.plan('b', false, [])
    f.dropped('x/#')
    f.subscribed('b', want(['y/#', 1], ['q/#', 1]))
    expect(f.plan('a', true, want(['y/#', 1], ['q/#', 1]))).toEqual({
      subscribe: ['y/#', 'q/#'],
      unsubscribe: ['x/#'],
    })
    // b acknowledged them: nothing to send there.
    expect(f.plan('b', true, want(['y/#', 1], ['q/#', 1]))).toEqual({
      subscribe: [],
      unsubscribe: [],
    })
  })

  it('an unsubscribe acknowledged is not sent again', () => {
    const f = new BrokerSessions()
    f.subscribed('a', want(['x/#', 1]))
    f.dropped('x/#')
    f.unsubscribed('a', ['x/#'])
    expect(f.plan('a', true, [])).toEqual({ subscribe: [], unsubscribe: [] })
  })

  it('a kept session it never saw (a restart, another broker): everything, and every filter dropped here', () => {
    const f = new BrokerSessions()
    f.subscribed('a', want(['x/#', 1], ['z/#', 1]))
    f.dropped('x/#')
    expect(f.plan('c', true, want(['z/#', 1]))).toEqual({
      subscribe: ['z/#'],
      unsubscribe: ['x/#'],
    })
    // Subscribed again since: not to be unsubscribed anywhere.
    f.subscribed('a', want(['x/#', 1]))
    expect(f.plan('d', true, want(['x/#', 1])).unsubscribe).toEqual([])
  })

  it('remembers eight brokers: the least recently used beyond them is unknown again', () => {
    const f = new BrokerSessions()
    for (let i = 0; i < 9; i++) f.subscribed(`b${i}`, want(['x/#', 1]))
    expect(f.plan('b0', true, want(['x/#', 1])).subscribe).toEqual(['x/#'])
    expect(f.plan('b8', true, want(['x/#', 1])).subscribe).toEqual([])
  })
})

describe('BrokerSessions: the QoS 2 inbox of a broker session', () => {
  it('is the same across connections to one broker, apart for another, and emptied by a new session there', () => {
    const s = new BrokerSessions()
    const a = s.inbox('a')
    a.put(
      {
        cmd: 'publish',
        messageId: 7,
        topic: 't',
        payload: Buffer.from('x'),
        qos: 2,
        dup: false,
        retain: false,
      },
      () => {},
    )
    expect(s.inbox('a')).toBe(a)
    expect(s.inbox('b')).not.toBe(a)
    // A kept session keeps what awaits its PUBREL; the filters stay unknown.
    expect(s.plan('a', true, want(['x/#', 2]))).toEqual({ subscribe: ['x/#'], unsubscribe: [] })
    expect(a.size).toBe(1)
    s.plan('a', false, want(['x/#', 2]))
    expect(a.size).toBe(0)
    // What the connection that learnt of the new session received already (in the CONNACK's
    // packet) stays: only earlier connections' messages are forgotten.
    expect(s.inbox('a')).toBe(a)
    a.put(
      {
        cmd: 'publish',
        messageId: 8,
        topic: 't',
        payload: Buffer.from('y'),
        qos: 2,
        dup: false,
        retain: false,
      },
      () => {},
    )
    s.plan('a', false, want(['x/#', 2]))
    expect(a.size).toBe(1)
  })
})

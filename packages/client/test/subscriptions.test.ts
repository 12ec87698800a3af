import { describe, expect, it } from 'vitest'
import { Subscriptions } from '../src/subscriptions.js'
import type { InboundMessage } from '../src/transport.js'

const message = (topic: string) =>
  ({ topic, payload: Buffer.from('x'), qos: 1, retain: false }) as unknown as InboundMessage

describe('Subscriptions', () => {
  it('removing a handler never added to a filter keeps the filter, made without a handler', () => {
    const subs = new Subscriptions()
    subs.add('cmd/#', 1)
    expect(subs.remove('cmd/#', () => {})).toBe(false)
    expect(subs.all()).toEqual([{ topic: 'cmd/#', qos: 1 }])
    expect(subs.remove('cmd/#')).toBe(true)
    expect(subs.all()).toEqual([])
  })

  it('anyQos2 says whether a filter is held at QoS 2, raised or removed', () => {
    const subs = new Subscriptions()
    expect(subs.anyQos2).toBe(false)
    subs.add('cmd/#', 1)
    expect(subs.anyQos2).toBe(false)
    subs.add('cmd/#', 2)
    expect(subs.anyQos2).toBe(true)
    subs.remove('cmd/#')
    expect(subs.anyQos2).toBe(false)
  })

  it('a handler that subscribes during dispatch does not hear the message it is handling; it hears the next', () => {
    const subs = new Subscriptions()
    const heard: string[] = []
    const later = (t: string) => heard.push(`later ${t}`)
    subs.add('cmd/#', 1, (t) => {
      heard.push(`first ${t}`)
      subs.add('cmd/#', 1, later)
      subs.add('cmd/+', 1, later)
    })
    subs.dispatch(message('cmd/a'), (e) => {
      throw e
    })
    expect(heard).toEqual(['first cmd/a'])
    subs.dispatch(message('cmd/b'), (e) => {
      throw e
    })
    expect(heard).toEqual(['first cmd/a', 'first cmd/b', 'later cmd/b', 'later cmd/b'])
  })

  it('the last handler removed drops the filter; one of two keeps it', () => {
    const subs = new Subscriptions()
    const a = () => {}
    const b = () => {}
    subs.add('cmd/#', 1, a)
    subs.add('cmd/#', 1, b)
    expect(subs.remove('cmd/#', a)).toBe(false)
    expect(subs.remove('cmd/#', b)).toBe(true)
  })

  it("a shared subscription's handler hears the topics its filter matches", () => {
    const subs = new Subscriptions()
    const heard: string[] = []
    subs.add('$share/workers/cmd/+', 1, (topic) => heard.push(topic))
    subs.dispatch(message('cmd/reboot'), () => {})
    subs.dispatch(message('telemetry/x'), () => {})
    expect(heard).toEqual(['cmd/reboot'])
  })
})

import { describe, expect, it } from 'vitest'
import { GuardedEmitter } from '../src/emitter.js'
import type { UplinkError } from '../src/errors.js'

interface Events {
  error: (err: UplinkError) => void
  tick: (n: number) => void
}

/** The emitter stores a lone listener bare; these pin down that it behaves like a list of them. */
describe('GuardedEmitter listener storage', () => {
  it('calls one, two and three listeners of an event in the order added, each once', () => {
    const e = new GuardedEmitter<Events>()
    const heard: string[] = []
    e.on('tick', (n) => heard.push(`a${n}`))
    e.emit('tick', 1)
    e.on('tick', (n) => heard.push(`b${n}`))
    e.emit('tick', 2)
    e.on('tick', (n) => heard.push(`c${n}`))
    e.emit('tick', 3)
    expect(heard).toEqual(['a1', 'a2', 'b2', 'a3', 'b3', 'c3'])
    expect(e.listenerCount('tick')).toBe(3)
  })

  it('a once listener hears one emit, alone or beside a plain one, and is gone after', () => {
    const e = new GuardedEmitter<Events>()
    const heard: number[] = []
    e.once('tick', (n) => heard.push(n))
    expect(e.emit('tick', 1)).toBe(true)
    expect(e.emit('tick', 2)).toBe(false)
    const plain = (n: number) => heard.push(n * 10)
    e.on('tick', plain)
    e.once('tick', (n) => heard.push(n * 100))
    e.emit('tick', 3)
    e.emit('tick', 4)
    expect(heard).toEqual([1, 30, 300, 40])
    expect(e.listeners('tick')).toEqual([plain])
  })

  it('off removes by function, by context, or all; the rest keep hearing', () => {
    const e = new GuardedEmitter<Events>()
    const heard: string[] = []
    const ctxA = { name: 'A' }
    const ctxB = { name: 'B' }
    function named(this: { name: string }, n: number) {
      heard.push(`${this.name}${n}`)
    }
    const other = (n: number) => heard.push(`o${n}`)
    e.on('tick', named, ctxA)
    e.on('tick', named, ctxB)
    e.on('tick', other)
    e.emit('tick', 1)
    e.off('tick', named, ctxA)
    e.emit('tick', 2)
    e.off('tick', other)
    e.emit('tick', 3)
    expect(e.listenerCount('tick')).toBe(1)
    e.off('tick')
    expect(e.emit('tick', 4)).toBe(false)
    expect(heard).toEqual(['A1', 'B1', 'o1', 'B2', 'o2', 'B3'])
    expect(e.eventNames()).toEqual([])
  })

  it('a listener added or removed during an emit does not change who hears that emit', () => {
    const e = new GuardedEmitter<Events>()
    const heard: string[] = []
    const late = () => heard.push('late')
    const second = () => heard.push('second')
    e.on('tick', () => {
      heard.push('first')
      e.on('tick', late)
      e.off('tick', second)
    })
    e.on('tick', second)
    e.emit('tick', 1)
    expect(heard).toEqual(['first', 'second'])
    heard.length = 0
    e.emit('tick', 2)
    expect(heard).toEqual(['first', 'late'])
  })
})

/** The storm's accept-rate figure from the broker's connect times (a pure part of the probe). */
import { describe, expect, it } from 'vitest'
import { acceptRateOf } from '../bench/storm/probe.js'

describe('storm accept-rate probe', () => {
  it('is the connects after the first per second of the broker-side span, in any order', () => {
    expect(acceptRateOf([300, 1_100, 100, 200])).toStrictEqual({ perSec: 3, spanMs: 1_000 })
  })

  it('a single connect has no rate (and no zero span to divide by)', () => {
    expect(acceptRateOf([500])).toStrictEqual({ perSec: 0, spanMs: 1 })
  })
})

import { describe, expect, it } from 'vitest'
import { MAX_TTL_SECONDS } from '../src/topics.js'
import { expiryInterval } from '../src/transport.js'

describe('expiryInterval (the MQTT 5 message expiry interval the transport sends)', () => {
  it('is what is left of the time to live after the time queued, rounded up to whole seconds', () => {
    const expiresAt = 1_000_000 + 60_000
    expect(expiryInterval(expiresAt, 1_000_000)).toBe(60)
    expect(expiryInterval(expiresAt, 1_000_000 + 32_000)).toBe(28)
    expect(expiryInterval(expiresAt, 1_000_000 + 32_001)).toBe(28)
    expect(expiryInterval(expiresAt, 1_000_000 + 31_999)).toBe(29)
  })

  it('is at least a second, even at or past the expiry (0 would mean no expiry)', () => {
    expect(expiryInterval(5_000, 4_999)).toBe(1)
    expect(expiryInterval(5_000, 5_000)).toBe(1)
    expect(expiryInterval(5_000, 9_000)).toBe(1)
  })

  it('never exceeds what 32 bits carry, for entries stored before publish() bounded TTLs', () => {
    expect(expiryInterval(Number.MAX_SAFE_INTEGER, 0)).toBe(MAX_TTL_SECONDS)
  })
})

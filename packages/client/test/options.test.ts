import { describe, expect, it } from 'vitest'
import { createUplink } from '../src/client.js'
import { DEFAULTS, resolveOptions, type UplinkOptions } from '../src/options.js'

const base: UplinkOptions = { clientId: 'gw-1', endpoints: ['mqtt://broker.example.com'] }

describe('options', () => {
  it('fills defaults from one place', () => {
    const o = resolveOptions(base)
    expect(o.keepalive).toBe(DEFAULTS.keepalive)
    expect(o.backoff).toEqual(DEFAULTS.backoff)
    expect(o.failoverAfter).toBe(3)
    expect(o.connectAttemptDelayMs).toBe(250)
    expect(o.dns.resolutionDelayMs).toBe(50)
    expect(o.endpoints[0]?.url).toBe('mqtt://broker.example.com:1883')
  })

  it.each<[string, Partial<UplinkOptions> | Record<string, unknown>]>([
    ['clientId', { clientId: '' }],
    ['endpoints', { endpoints: [] }],
    ['endpoints[0]', { endpoints: ['ftp://x'] }],
    ['keepalive', { keepalive: 0 }],
    ['keepalive', { keepalive: 1.5 }],
    ['backoff.initialMs', { backoff: { initialMs: -1 } }],
    ['backoff.maxMs', { backoff: { initialMs: 5_000, maxMs: 1_000 } }],
    ['backoff.jitter', { backoff: { jitter: 'random' } }],
    ['protocolVersion', { protocolVersion: 3 }],
    ['dns.servers', { dns: { servers: 'a' } }],
    ['presence.topic', { presence: { topic: 'status/#' } }],
    ['outbox', { outbox: {} }],
    ['failoverAfter', { failoverAfter: 0 }],
    ['connectAttemptDelayMs', { connectAttemptDelayMs: 5 }],
    ['dns.resolutionDelayMs', { dns: { resolutionDelayMs: -1 } }],
  ])('a bad %s throws INVALID_OPTIONS naming it', (field, patch) => {
    expect(() => createUplink({ ...base, ...patch } as UplinkOptions)).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTIONS', message: expect.stringContaining(field) }),
    )
  })
})

import { describe, expect, it } from 'vitest'
import { createUplink } from '../src/client.js'
import {
  DEFAULTS,
  resolveOptions,
  resolvePublishOptions,
  resolveStopOptions,
  resolveSubscribeOptions,
  type UplinkOptions,
} from '../src/options.js'

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
    ['backoff.informed', { backoff: { informed: 'yes' } }],
    ['backoff.informed.spreadMs', { backoff: { informed: { spreadMs: -1 } } }],
    ['backoff.informed.minProbeIntervalMs', { backoff: { informed: { minProbeIntervalMs: 10 } } }],
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

describe('options are resolved section by section, every field filled in', () => {
  it('the concierge section comes out validated and complete, not as it went in', () => {
    const input = { url: 'https://concierge.example.com/v1', allowedHosts: ['*.example.com'] }
    const o = resolveOptions({ ...base, concierge: input })
    expect(o.concierge).toEqual({
      url: 'https://concierge.example.com/v1',
      allowedHosts: ['broker.example.com', '*.example.com'],
      intervalMs: DEFAULTS.concierge.intervalMs,
      jitter: DEFAULTS.concierge.jitter,
      timeoutMs: DEFAULTS.concierge.timeoutMs,
      retries: DEFAULTS.concierge.retries,
      tls: undefined,
    })
    // The caller's object is not touched.
    expect(input).toEqual({
      url: 'https://concierge.example.com/v1',
      allowedHosts: ['*.example.com'],
    })
  })

  it('informed backoff is on by default; false turns it off, an object overrides a field', () => {
    const on = (informed?: boolean | { spreadMs?: number }) =>
      resolveOptions({ ...base, backoff: { informed } }).backoff.informed
    expect(on()).toEqual({ spreadMs: 1_000, minProbeIntervalMs: 5_000 })
    expect(on(true)).toEqual(on())
    expect(on(false)).toBeUndefined()
    expect(on({ spreadMs: 0 })).toEqual({ spreadMs: 0, minProbeIntervalMs: 5_000 })
  })

  it('a memory outbox when none is given, and the redirect cap from DEFAULTS', () => {
    const o = resolveOptions(base)
    expect(typeof o.outbox.enqueue).toBe('function')
    expect(o.failover.maxRedirects).toBe(DEFAULTS.maxRedirects)
  })

  it('publish, subscribe and stop arguments get their defaults from DEFAULTS', () => {
    expect(resolvePublishOptions({})).toEqual({
      qos: DEFAULTS.publish.qos,
      retain: DEFAULTS.publish.retain,
      priority: DEFAULTS.publish.priority,
      ttlSeconds: undefined,
    })
    expect(resolveSubscribeOptions({})).toEqual({ qos: DEFAULTS.subscribe.qos })
    expect(resolveStopOptions({})).toEqual({ timeoutMs: DEFAULTS.stopTimeoutMs })
  })

  it.each([
    ['qos', () => resolveSubscribeOptions({ qos: 3 })],
    ['priority', () => resolvePublishOptions({ priority: 'urgent' })],
    ['timeoutMs', () => resolveStopOptions({ timeoutMs: -1 })],
    ['publish.prioirty', () => resolvePublishOptions({ prioirty: 'alarm' })],
    ['publish.ttl', () => resolvePublishOptions({ ttl: 5 })],
    ['subscribe.qso', () => resolveSubscribeOptions({ qso: 1 })],
    ['stop.timeout', () => resolveStopOptions({ timeout: 5 })],
  ])('a bad %s is INVALID_ARGUMENT naming it', (field, call) => {
    expect(call).toThrow(
      expect.objectContaining({
        code: 'INVALID_ARGUMENT',
        message: expect.stringContaining(field),
      }),
    )
  })
})

describe('resolved option groups are shared between clients', () => {
  it('two clients given equal options hold one frozen backoff, dns, failover and session', () => {
    const servers = ['127.0.0.1:5353']
    const input: UplinkOptions = { ...base, backoff: { maxMs: 7_000 }, dns: { servers } }
    const a = resolveOptions(input)
    const b = resolveOptions({ ...input, clientId: 'gw-2' })
    for (const group of ['backoff', 'dns', 'failover', 'session'] as const) {
      expect(b[group]).toBe(a[group])
      expect(Object.isFrozen(a[group])).toBe(true)
    }
    expect(a.backoff.maxMs).toBe(7_000)
    expect(a.dns.servers).toEqual(servers)
    // A caller's own array is copied, never frozen.
    expect(Object.isFrozen(servers)).toBe(false)
    expect(() => {
      ;(a.backoff as { maxMs: number }).maxMs = 1
    }).toThrow(TypeError)
  })

  it('endpoints without TLS settings are one frozen list; with them each client keeps its own', () => {
    const endpoints = ['mqtt://a.example:1883', 'mqtt://B.example']
    const a = resolveOptions({ ...base, endpoints })
    const b = resolveOptions({ ...base, clientId: 'gw-2', endpoints: [...endpoints] })
    expect(b.endpoints).toBe(a.endpoints)
    expect(Object.isFrozen(a.endpoints)).toBe(true)
    expect(Object.isFrozen(a.endpoints[0])).toBe(true)
    expect(a.endpoints).toEqual([
      { url: 'mqtt://a.example:1883', host: 'a.example', port: 1883, secure: false },
      { url: 'mqtt://b.example:1883', host: 'b.example', port: 1883, secure: false },
    ])
    expect(Object.isFrozen(endpoints)).toBe(false)
    const other = resolveOptions({ ...base, endpoints: ['mqtt://c.example'] })
    expect(other.endpoints).not.toBe(a.endpoints)
    // TLS settings (a client's own certificates) are never put in a shared list.
    const tls = { alpnProtocols: ['mqtt'] }
    const s1 = resolveOptions({ ...base, endpoints: ['mqtts://a.example'], tls })
    const s2 = resolveOptions({ ...base, endpoints: ['mqtts://a.example'], tls })
    expect(s1.endpoints).not.toBe(s2.endpoints)
    expect(s1.endpoints[0]?.tls).toBe(tls)
  })

  it('different values resolve to different groups', () => {
    const a = resolveOptions({ ...base, backoff: { maxMs: 8_000 } })
    const b = resolveOptions({ ...base, backoff: { maxMs: 9_000 } })
    expect(a.backoff).not.toBe(b.backoff)
    expect(b.backoff.maxMs).toBe(9_000)
  })
})

describe('a refused option names its field in details, not only in the message', () => {
  it.each([
    [{ keepalive: -1 }, 'keepalive'],
    [{ backoff: { initialMs: 'soon' } }, 'backoff.initialMs'],
    [{ endpoints: ['mqtt://a.example.com', 'http://b.example.com'] }, 'endpoints[1]'],
    [{ endpoints: [{ url: 'mqtt://a.example.com', tls: { ca: 'x' } }] }, 'endpoints[0].tls'],
  ])('%j: details.field is %s', (over, field) => {
    expect(() => resolveOptions({ ...base, ...over } as UplinkOptions)).toThrow(
      expect.objectContaining({
        code: 'INVALID_OPTIONS',
        details: expect.objectContaining({ field }),
      }),
    )
  })
})

describe('stop() arguments', () => {
  it('a bad stop() argument is refused on a stopped client too (it resolved there unchecked)', async () => {
    const uplink = createUplink(base)
    await uplink.stop()
    await expect(uplink.stop({ timeoutMs: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(uplink.stop()).resolves.toBeUndefined()
  })
})

import { createPrivateKey } from 'node:crypto'
import { createTestPki } from '@uplink/testkit'
import { describe, expect, it } from 'vitest'
import { createUplink } from '../src/client.js'
import { memoryOutbox } from '../src/memory-outbox.js'
import type { UplinkOptions } from '../src/options.js'

const base: UplinkOptions = { clientId: 'gw-1', endpoints: ['mqtt://broker.example.com'] }

function create(patch: Record<string, unknown>) {
  return () => createUplink({ ...base, ...patch } as unknown as UplinkOptions)
}

describe('options say what they mean', () => {
  it.each<[string, string, Record<string, unknown>]>([
    ['keepAlive', 'keepalive', { keepAlive: 30 }],
    ['clientID', 'clientId', { clientID: 'x' }],
    ['backoff.initialMS', 'backoff.initialMs', { backoff: { initialMS: 10 } }],
    ['dns.watch.minInterval', 'dns.watch.minIntervalMs', { dns: { watch: { minInterval: 1 } } }],
    [
      'endpoints[0].tsl',
      'endpoints[0].tls',
      { endpoints: [{ url: 'mqtts://a.example.com', tsl: {} }] },
    ],
  ])('an unknown key %s is refused, naming %s', (key, near, patch) => {
    expect(create(patch)).toThrow(
      expect.objectContaining({
        code: 'INVALID_OPTIONS',
        message: expect.stringMatching(
          new RegExp(
            `^${key.replace(/[.[\]]/g, '\\$&')} is not an option; did you mean ${near.replace(/[.[\]]/g, '\\$&')}\\?$`,
          ),
        ),
      }),
    )
  })

  it.each<[string, Record<string, unknown>]>([
    ['session.clean', { session: { clean: 'false' } }],
    ['dns.systemFallback', { dns: { systemFallback: 0 } }],
    ['presence.qos', { presence: { topic: 'status/gw', qos: 3 } }],
    ['presence.offline', { presence: { topic: 'status/gw', offline: 5 } }],
    ['presence.online', { presence: { topic: 'status/gw', online: {} } }],
    ['presence.topic', { presence: { topic: 'status/\u0000' } }],
    ['clientId', { clientId: 'gw\u0000' }],
    ['clientId', { clientId: 'x'.repeat(100_000) }],
    [
      'concierge.jitter',
      { concierge: { url: 'https://c.example.com', allowedHosts: [], jitter: Number.NaN } },
    ],
    [
      'dns.watch.maxIntervalMs',
      { dns: { watch: { minIntervalMs: 60_000, maxIntervalMs: 10_000 } } },
    ],
    ['tls', { tls: 'oops' }],
    ['endpoints[0]', { endpoints: ['mqtt://broker.example.com:0'] }],
    ['outbox', { outbox: { enqueue: async () => ({}) } }],
    ['poisonAfter', { poisonAfter: 0 }],
  ])('a bad %s throws INVALID_OPTIONS naming it', (field, patch) => {
    expect(create(patch)).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTIONS', message: expect.stringContaining(field) }),
    )
  })

  it('says a 100 KB clientId is too long, not that it is missing', () => {
    expect(create({ clientId: 'x'.repeat(100_000) })).toThrow(/clientId is longer than 65535 bytes/)
  })

  it('names the missing methods of an outbox', () => {
    // A memory outbox whose `take` is hidden: every other method is still there.
    const partial = Object.assign(Object.create(memoryOutbox()), { take: undefined })
    expect(create({ outbox: partial })).toThrow(
      /outbox must implement the Outbox interface \(missing take\)/,
    )
  })

  it('a misspelt publish option is INVALID_ARGUMENT with the name meant, and nothing is stored', async () => {
    const uplink = createUplink(base)
    await expect(uplink.publish('a/b', 'x', { prioirty: 'alarm' } as never)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'publish.prioirty is not an option; did you mean publish.priority?',
    })
    expect(uplink.stats().outbox.messages).toBe(0)
    await uplink.stop()
  })

  it('refuses null publish options and unsubscribe after stop with typed errors', async () => {
    const uplink = createUplink(base)
    await expect(uplink.publish('a/b', 'x', null as never)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    await uplink.stop()
    await expect(uplink.unsubscribe('a/#')).rejects.toMatchObject({ code: 'STOPPED' })
    await expect(uplink.subscribe('a/#')).rejects.toMatchObject({ code: 'STOPPED' })
    await expect(uplink.publish('a/b', 'x')).rejects.toMatchObject({ code: 'STOPPED' })
  })

  it('a TLS key with a wrong passphrase is TLS_ERROR naming the field, marked not retryable', () => {
    const issued = createTestPki().issue(['gw-1.example.com'])
    const key = createPrivateKey(issued.key).export({
      format: 'pem',
      type: 'pkcs8',
      cipher: 'aes-256-cbc',
      passphrase: 'right-passphrase',
    })
    const endpoints = ['mqtts://broker.example.com']
    let thrown: unknown
    try {
      createUplink({ ...base, endpoints, tls: { cert: issued.cert, key, passphrase: 'wrong-one' } })
    } catch (err) {
      thrown = err
    }
    expect(thrown).toMatchObject({
      code: 'TLS_ERROR',
      message: expect.stringMatching(
        /^tls: the private key cannot be decrypted with the passphrase .*retrying will not help$/,
      ),
      details: { field: 'tls', retryable: false },
    })
    expect((thrown as Error).message).not.toContain('wrong-one')
    // The right passphrase is accepted.
    createUplink({
      ...base,
      endpoints,
      tls: { cert: issued.cert, key, passphrase: 'right-passphrase' },
    })
  })
})

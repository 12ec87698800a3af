import { createPrivateKey } from 'node:crypto'
import { inspect } from 'node:util'
import { createTestPki, startBroker } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink } from '../src/index.js'
import { nextEvent } from './support/events.js'

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

describe('credentials never appear', () => {
  it('util.inspect, JSON.stringify and String() of the client and its stats, at depth 10, hold no password, passphrase or key', async () => {
    const pki = createTestPki()
    const issued = pki.issue(['gw.example.com'])
    const passphrase = 'pass-phrase-7731'
    const key = createPrivateKey(issued.key).export({
      format: 'pem',
      type: 'pkcs8',
      cipher: 'aes-256-cbc',
      passphrase,
    }) as string
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const password = 'hunter2-password-9917'
    const uplink = createUplink({
      clientId: 'gw-secret',
      // A connected plain endpoint (so MQTT.js holds the password) and a TLS one with the key.
      endpoints: [
        broker.url,
        { url: 'mqtts://tls.example.com', tls: { ca: pki.ca, cert: issued.cert, key, passphrase } },
      ],
      tls: { ca: pki.ca, cert: issued.cert, key, passphrase },
      username: 'gw',
      password,
      concierge: { url: 'https://c.example.com', allowedHosts: [], tls: { key, passphrase } },
    })
    cleanup.push(() => uplink.stop())
    await uplink.start()
    await nextEvent(uplink, 'connect')
    const keyBody = key.split('\n')[1] as string
    const views = [uplink, uplink.stats()].flatMap((o) => [
      inspect(o, { depth: 10 }),
      inspect(o, { depth: 10, showHidden: true }),
      // Without the custom view too: the fields underneath hold nothing in the clear.
      inspect(o, { depth: 10, showHidden: true, customInspect: false }),
      JSON.stringify(o) ?? '',
      String(o),
    ])
    for (const view of views) {
      expect(view).not.toContain(password)
      expect(view).not.toContain(passphrase)
      expect(view).not.toContain(keyBody)
      expect(view).not.toContain('PRIVATE KEY')
    }
    expect(inspect(uplink)).toContain('gw-secret')
  })

  it.each([
    ['passphrase', { passphrase: 987654321 }, 'must be a string'],
    ['key', { key: 987654321 }, 'must be PEM text or a Buffer'],
    ['ca', { ca: [987654321] }, 'must be PEM text or a Buffer, or an array of them'],
  ])(
    'a TLS %s of the wrong type is INVALID_OPTIONS naming the field, never showing the value',
    (name, tls, must) => {
      const pki = createTestPki()
      const issued = pki.issue(['gw.example.com'])
      let caught: unknown
      try {
        createUplink({
          clientId: 'gw-secret-type',
          endpoints: ['mqtts://gw.example.com'],
          tls: { cert: issued.cert, key: issued.key, ...tls } as never,
        })
      } catch (err) {
        caught = err
      }
      expect(caught).toMatchObject({ code: 'INVALID_OPTIONS', message: `tls.${name} ${must}` })
      expect(inspect(caught, { depth: 10, showHidden: true })).not.toContain('987654321')
    },
  )
})

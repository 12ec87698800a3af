import { describe, expect, it } from 'vitest'
import { EndpointPool, parseEndpoint } from '../src/endpoints.js'
import { UplinkError } from '../src/errors.js'

describe('parseEndpoint', () => {
  it('normalises URLs and fills default ports', () => {
    expect(parseEndpoint('mqtts://IoT.Example.com', 'e')).toMatchObject({
      url: 'mqtts://iot.example.com:8883',
      host: 'iot.example.com',
      port: 8883,
      secure: true,
    })
    expect(parseEndpoint('mqtt://[::1]:1884', 'e')).toMatchObject({
      url: 'mqtt://[::1]:1884',
      host: '::1',
      port: 1884,
    })
  })

  it('drops the root dot of a host name: one endpoint however it is spelled', () => {
    expect(parseEndpoint('mqtts://IoT.Example.com.:8883', 'e')).toMatchObject({
      url: 'mqtts://iot.example.com:8883',
      host: 'iot.example.com',
    })
  })

  it('takes per-endpoint TLS over the shared one', () => {
    const shared = { ca: 'shared' }
    expect(
      parseEndpoint({ url: 'mqtts://a.example.com', tls: { ca: 'own' } }, 'e', shared).tls,
    ).toEqual({ ca: 'own' })
    expect(parseEndpoint('mqtts://a.example.com', 'e', shared).tls).toBe(shared)
    expect(parseEndpoint('mqtt://a.example.com', 'e', shared).tls).toBeUndefined()
  })

  it("refuses an endpoint's own TLS on mqtt:// (it was dropped, and the device spoke in the clear)", () => {
    expect(() =>
      parseEndpoint({ url: 'mqtt://a.example.com', tls: { ca: 'own' } }, 'endpoints[1]'),
    ).toThrow(
      expect.objectContaining({
        code: 'INVALID_OPTIONS',
        message: 'endpoints[1].tls is given for an mqtt:// endpoint; TLS needs mqtts://',
        details: { field: 'endpoints[1].tls' },
      }),
    )
  })

  it.each([
    ['http://a.example.com', 'must use mqtt://'],
    ['mqtt://user:secret@a.example.com', 'must not carry credentials'],
    ['mqtt://a.example.com/path', 'no path'],
    ['not a url', 'not a valid URL'],
    ['', 'must be a URL'],
  ])('refuses %s with a message naming the field', (url, text) => {
    const err = (() => {
      try {
        parseEndpoint(url, 'endpoints[2]')
      } catch (e) {
        return e as UplinkError
      }
    })()
    expect(err).toBeInstanceOf(UplinkError)
    expect(err?.code).toBe('INVALID_OPTIONS')
    expect(err?.message).toContain('endpoints[2]')
    expect(err?.message).toContain(text)
    expect(err?.message).not.toContain('secret')
  })
})

describe('EndpointPool', () => {
  const a = parseEndpoint('mqtt://a.example.com', 'a')
  const b = parseEndpoint('mqtt://b.example.com', 'b')

  it('moves on after failoverAfter consecutive failures, wrapping around', () => {
    const pool = new EndpointPool([a, b], 2)
    expect(pool.failed()).toBeUndefined()
    expect(pool.failed()).toEqual({ from: a, to: b })
    expect(pool.current()).toBe(b)
    pool.failed()
    expect(pool.failed()).toEqual({ from: b, to: a })
  })

  it('a success resets the count', () => {
    const pool = new EndpointPool([a, b], 2)
    pool.failed()
    pool.succeeded()
    expect(pool.failed()).toBeUndefined()
    expect(pool.current()).toBe(a)
  })

  it('a single endpoint stays put', () => {
    const pool = new EndpointPool([a], 1)
    expect(pool.failed()).toBeUndefined()
    expect(pool.current()).toBe(a)
  })

  it('an endpoint outside the list is kept until it fails, then the list resumes', () => {
    const pool = new EndpointPool([a, b], 1)
    const c = parseEndpoint('mqtt://c.example.com', 'c')
    pool.moveTo(c)
    expect(pool.current()).toBe(c)
    expect(pool.failed()).toEqual({ from: c, to: a })
  })
})

import { describe, expect, it } from 'vitest'
import {
  EpochFloor,
  hostAllowed,
  parseDirective,
  parseServerReference,
  RedirectPolicy,
} from '../src/directive.js'
import { parseEndpoint } from '../src/endpoints.js'
import { UplinkError } from '../src/errors.js'

const allowed = ['*.example.com', 'broker.partner.net']
const moves = { allowedHosts: allowed, plaintext: false }
const rules = { ...moves, lastEpoch: undefined }

describe('hostAllowed', () => {
  it.each([
    ['iot.example.com', true],
    ['IOT.Example.COM.', true],
    ['example.com', false],
    ['a.b.example.com', false],
    ['evil-example.com', false],
    ['iot.example.com.evil.net', false],
    ['broker.partner.net', true],
    ['x.broker.partner.net', false],
    ['127.0.0.1', false],
  ])('%s -> %s', (host, ok) => {
    expect(hostAllowed(host, allowed)).toBe(ok)
  })
})

describe('parseDirective', () => {
  it('accepts a well-formed directive', () => {
    const d = parseDirective(
      '{"endpoint":"mqtts://west.example.com:8883","epoch":7,"pollIntervalSeconds":60}',
      rules,
    )
    expect(d.endpoint.url).toBe('mqtts://west.example.com:8883')
    expect(d.epoch).toBe(7)
    expect(d.pollIntervalSeconds).toBe(60)
  })

  it.each([
    ['not json', 'not valid JSON'],
    ['[1]', 'JSON object'],
    ['{"endpoint":"mqtts://a.example.com"}', 'epoch'],
    ['{"endpoint":"mqtts://a.example.com","epoch":-1}', 'epoch'],
    ['{"endpoint":"mqtts://a.example.com","epoch":1.5}', 'epoch'],
    ['{"endpoint":"http://a.example.com","epoch":1}', 'mqtt://'],
    ['{"endpoint":"mqtts://u:p@a.example.com","epoch":1}', 'credentials'],
    ['{"epoch":1}', 'directive.endpoint'],
    [
      '{"endpoint":"mqtts://a.example.com","epoch":1,"pollIntervalSeconds":0}',
      'pollIntervalSeconds',
    ],
    [`{"endpoint":"mqtts://a.example.com","epoch":1,"x":"${'a'.repeat(5000)}"}`, 'larger'],
  ])('refuses %s as invalid', (raw, text) => {
    expect(() => parseDirective(raw, rules)).toThrow(
      expect.objectContaining({
        code: 'DIRECTIVE_INVALID',
        message: expect.stringContaining(text),
      }),
    )
  })

  it('refuses a host outside the allow-list', () => {
    expect(() => parseDirective('{"endpoint":"mqtts://evil.net","epoch":9}', rules)).toThrow(
      expect.objectContaining({ code: 'DIRECTIVE_REFUSED' }),
    )
  })

  it('refuses an endpoint in the { url, tls } form: a directive cannot choose what the device trusts', () => {
    const raw = '{"endpoint":{"url":"mqtts://a.example.com","tls":{"ca":"x"}},"epoch":1}'
    expect(() => parseDirective(raw, rules)).toThrow(
      expect.objectContaining({
        code: 'DIRECTIVE_INVALID',
        message: expect.stringContaining('URL string'),
      }),
    )
  })

  it('refuses mqtt:// unless a configured endpoint is mqtt:// too', () => {
    const raw = '{"endpoint":"mqtt://a.example.com","epoch":1}'
    expect(() => parseDirective(raw, rules)).toThrow(
      expect.objectContaining({
        code: 'DIRECTIVE_REFUSED',
        message: expect.stringContaining('without TLS'),
      }),
    )
    expect(parseDirective(raw, { ...rules, plaintext: true }).endpoint.url).toBe(
      'mqtt://a.example.com:1883',
    )
  })

  it('refuses an epoch lower than the last one seen, accepts the same or higher', () => {
    const raw = (epoch: number) => `{"endpoint":"mqtts://a.example.com","epoch":${epoch}}`
    expect(() => parseDirective(raw(4), { ...moves, lastEpoch: 5 })).toThrow(
      expect.objectContaining({ code: 'DIRECTIVE_REFUSED' }),
    )
    expect(parseDirective(raw(5), { ...moves, lastEpoch: 5 }).epoch).toBe(5)
  })
})

describe('parseServerReference', () => {
  const current = parseEndpoint('mqtts://east.example.com:8883', 'c', { ca: 'x' })
  it('keeps scheme and port, takes the first of several', () => {
    expect(parseServerReference('west.example.com', current, moves).url).toBe(
      'mqtts://west.example.com:8883',
    )
    expect(
      parseServerReference('west.example.com:9999 other.example.com', current, moves).url,
    ).toBe('mqtts://west.example.com:9999')
    expect(parseServerReference('west.example.com', current, moves).tls).toEqual({ ca: 'x' })
  })
  it('refuses a URL that leaves TLS for mqtt://, unless a configured endpoint is mqtt://', () => {
    expect(() => parseServerReference('mqtt://west.example.com:1883', current, moves)).toThrow(
      expect.objectContaining({
        code: 'DIRECTIVE_REFUSED',
        message: expect.stringContaining('without TLS'),
      }),
    )
    const plain = { ...moves, plaintext: true }
    expect(parseServerReference('mqtt://west.example.com:1883', current, plain).secure).toBe(false)
  })
  it('refuses hosts outside the allow-list and garbage', () => {
    expect(() => parseServerReference('evil.net', current, moves)).toThrow(
      expect.objectContaining({ code: 'DIRECTIVE_REFUSED' }),
    )
    expect(() => parseServerReference('', current, moves)).toThrow(
      expect.objectContaining({ code: 'DIRECTIVE_INVALID' }),
    )
  })
})

describe('RedirectPolicy', () => {
  const current = parseEndpoint('mqtt://a.example.com:1883', 'current')
  const redirect = (serverReference?: string) =>
    new UplinkError('CONNECT_REFUSED', 'use another server', {
      details: {
        reasonCode: 0x9c,
        address: '10.0.0.1',
        ...(serverReference ? { serverReference } : {}),
      },
    })

  it('follows `max` redirects in a row, then none until reset()', () => {
    const policy = new RedirectPolicy({ ...moves, plaintext: true }, 2)
    expect(policy.target(redirect('b.example.com'), current)?.url).toBe('mqtt://b.example.com:1883')
    expect(policy.target(redirect('c.example.com:1884'), current)?.url).toBe(
      'mqtt://c.example.com:1884',
    )
    expect(policy.target(redirect('b.example.com'), current)).toBeUndefined()
    policy.reset()
    expect(policy.target(redirect('b.example.com'), current)?.url).toBe('mqtt://b.example.com:1883')
  })

  it('ignores an error without a server reference and refuses a host outside the list', () => {
    const policy = new RedirectPolicy({ ...moves, plaintext: true }, 3)
    expect(policy.target(redirect(), current)).toBeUndefined()
    expect(() => policy.target(redirect('evil.test'), current)).toThrow(
      expect.objectContaining({ code: 'DIRECTIVE_REFUSED' }),
    )
  })
})

describe('EpochFloor', () => {
  it('only rises', () => {
    const floor = new EpochFloor()
    expect(floor.value).toBeUndefined()
    floor.raise(5)
    floor.raise(3)
    expect(floor.value).toBe(5)
    floor.raise(7)
    expect(floor.value).toBe(7)
  })
})

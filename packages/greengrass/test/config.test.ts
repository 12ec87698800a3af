import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isUplinkError } from '@uplink/client'
import { createTestPki } from '@uplink/testkit'
import { afterAll, describe, expect, it } from 'vitest'
import { type DeviceEnv, parseComponentConfig } from '../src/config.js'
import { checkRule, expandTopic, firstMatch, suffixOf } from '../src/rules.js'

const dir = mkdtempSync(join(tmpdir(), 'uplink-gg-config-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const file = (name: string, text: string) => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}
// Real certificates: createUplink opens every key it is given (a bad one is TLS_ERROR up front).
const rootPki = createTestPki('Root CA')
const regionPki = createTestPki('Region CA')
const device = rootPki.issue(['gw-7'], { usage: 'client' })
const deviceB = regionPki.issue(['gw-7'], { usage: 'client' })
const PEM = {
  CA_ROOT: rootPki.ca,
  CA_REGION: regionPki.ca,
  CERT: device.cert,
  KEY: device.key,
  CERT_B: deviceB.cert,
  KEY_B: deviceB.key,
}
const ca = file('ca.pem', PEM.CA_ROOT)
const regionCa = file('region-ca.pem', PEM.CA_REGION)
const cert = file('cert.pem', PEM.CERT)
const key = file('key.pem', PEM.KEY)
const certB = file('cert-b.pem', PEM.CERT_B)
const keyB = file('key-b.pem', PEM.KEY_B)

const env: DeviceEnv = {
  thingName: 'gw-7',
  rootCaPath: ca,
  iotDataEndpoint: 'abc-ats.iot.eu-west-1.amazonaws.com',
  region: 'eu-west-1',
}

function refused(raw: unknown, e: DeviceEnv = env): string {
  try {
    parseComponentConfig(raw, e)
  } catch (err) {
    expect(isUplinkError(err, 'INVALID_OPTIONS')).toBe(true)
    return (err as Error).message
  }
  throw new Error('accepted')
}

describe('the component configuration', () => {
  it('defaults to the nucleus endpoint, the thing-name client id and GG_ROOT_CA_PATH as CA', () => {
    const s = parseComponentConfig({ certificatePath: cert, privateKeyPath: key }, env)
    expect(s.uplink.clientId).toBe('gw-7-uplink')
    expect(s.uplink.endpoints).toEqual([
      {
        url: 'mqtts://abc-ats.iot.eu-west-1.amazonaws.com:8883',
        tls: { ca: PEM.CA_ROOT, cert: PEM.CERT, key: PEM.KEY },
      },
    ])
    expect(s.forward.map((r) => r.cloudTopic)).toEqual([
      'dt/gw-7/{suffix}',
      'dt/gw-7/alarm/{suffix}',
    ])
    expect(s.commands[0]?.cloudTopic).toBe('cmd/gw-7/#')
  })

  it('gives each endpoint its own certificate, key and CA over the shared ones', () => {
    const s = parseComponentConfig(
      {
        certificatePath: cert,
        privateKeyPath: key,
        endpoints: [
          'mqtts://iot-a.example.com:8883',
          {
            url: 'mqtts://iot-b.example.com:8883',
            certificatePath: certB,
            privateKeyPath: keyB,
            rootCaPath: regionCa,
          },
        ],
      },
      env,
    )
    expect(s.uplink.endpoints).toEqual([
      {
        url: 'mqtts://iot-a.example.com:8883',
        tls: { ca: PEM.CA_ROOT, cert: PEM.CERT, key: PEM.KEY },
      },
      {
        url: 'mqtts://iot-b.example.com:8883',
        tls: { ca: PEM.CA_REGION, cert: PEM.CERT_B, key: PEM.KEY_B },
      },
    ])
  })

  it('gives an mqtt:// endpoint none of the shared certificates, and refuses certificates of its own', () => {
    const s = parseComponentConfig(
      { certificatePath: cert, privateKeyPath: key, endpoints: ['mqtt://127.0.0.1:1883'] },
      env,
    )
    expect(s.uplink.endpoints).toEqual([{ url: 'mqtt://127.0.0.1:1883' }])
    const own = { url: 'mqtt://127.0.0.1:1883', certificatePath: cert, privateKeyPath: key }
    expect(refused({ endpoints: [own] })).toBe(
      'endpoints[0].certificatePath is given for an mqtt:// endpoint; TLS needs mqtts://',
    )
  })

  it('names the field when a certificate cannot be read, or comes without its key', () => {
    expect(refused({ certificatePath: join(dir, 'nope.pem'), privateKeyPath: key })).toBe(
      'certificatePath names a file that cannot be read (ENOENT)',
    )
    expect(refused({ endpoints: [{ url: 'mqtts://x.example.com', certificatePath: cert }] })).toBe(
      'endpoints[0].certificatePath and privateKeyPath go together',
    )
  })

  it('refuses unknown options, and Uplink options that createUplink refuses', () => {
    expect(refused({ keepAlive: 30 })).toBe('keepAlive is not an option; did you mean keepalive?')
    expect(refused({ keepalive: 0 })).toMatch(/^keepalive must be an integer/)
    expect(refused({ endpoints: ['tcp://x.example.com'] })).toMatch(/^endpoints\[0\] must use mqtt/)
    expect(refused({ outbox: { overflow: 'spill' } })).toBe(
      'outbox.overflow must be one of drop-oldest, reject',
    )
    expect(refused({}, { ...env, iotDataEndpoint: undefined })).toBe(
      'endpoints is empty and aws.greengrass.Nucleus has no iotDataEndpoint',
    )
    // accessControl is the nucleus's, in the same configuration: allowed.
    expect(() => parseComponentConfig({ accessControl: {} }, env)).not.toThrow()
  })

  it('refuses unknown keys at every level, naming the field path and the key meant', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [
        { outbox: { maxMessage: 10 } },
        'outbox.maxMessage is not an option; did you mean outbox.maxMessages?',
      ],
      [
        { status: { intervalSecond: 5 } },
        'status.intervalSecond is not an option; did you mean status.intervalSeconds?',
      ],
      [
        { componentUpdates: { maxDeferral: 0 } },
        'componentUpdates.maxDeferral is not an option; did you mean componentUpdates.maxDeferrals?',
      ],
      [{ control: { topic: 'ctl/gw-7', qos: 2 } }, 'control.qos is not an option'],
      // Off (url ''), and still checked: the typo would be in force the day it is turned on.
      [
        { concierge: { url: '', intervalMS: 5 } },
        'concierge.intervalMS is not an option; did you mean concierge.intervalMs?',
      ],
      [
        { backoff: { informed: { spreadMS: 1 } } },
        'backoff.informed.spreadMS is not an option; did you mean backoff.informed.spreadMs?',
      ],
      [
        { forward: [{ localTopic: 'a/#', cloudTopic: 'b/{suffix}', priorty: 'alarm' }] },
        'forward[0].priorty is not an option; did you mean forward[0].priority?',
      ],
      [
        { commands: [{ cloudTopic: 'c/#', localTopic: 'l/{suffix}', qoss: 0 }] },
        'commands[0].qoss is not an option; did you mean commands[0].qos?',
      ],
      [
        { endpoints: ['mqtts://a.example.com', { url: 'mqtts://b.example.com', certPath: cert }] },
        'endpoints[1].certPath is not an option',
      ],
    ]
    for (const [raw, message] of cases) expect(refused(raw)).toBe(message)
    // presence is Uplink's, handed over as it is: its other options are options here too.
    expect(() => parseComponentConfig({ presence: { topic: 'p/gw-7', qos: 0 } }, env)).not.toThrow()
  })

  it('refuses a group that is not an object, a boolean that is not one, and a status topic one cannot publish to', () => {
    expect(refused({ dns: null })).toBe('dns must be an object')
    expect(refused({ outbox: 'big' })).toBe('outbox must be an object')
    expect(refused({ control: ['x'] })).toBe('control must be an object')
    expect(refused({ componentUpdates: { deferWhileAlarmsUnsent: 'true' } })).toBe(
      'componentUpdates.deferWhileAlarmsUnsent must be true or false',
    )
    expect(refused({ status: { topic: 'uplink/#' } })).toMatch(
      /^status\.topic must be a topic one can publish to: /,
    )
    expect(refused({ control: { topic: 7 } })).toBe('control.topic must be a string')
    expect(parseComponentConfig({ status: { topic: '' } }, env).status.topic).toBe('')
  })

  it('names a misplaced key but never echoes its value, which may be a secret', () => {
    const secret = '-----BEGIN PRIVATE KEY-----\nSECRETKEYMATERIAL'
    const endpoint = { url: 'mqtts://b.example.com', privateKey: secret }
    const message = refused({ endpoints: [endpoint] })
    expect(message).toMatch(/^endpoints\[0\]\.privateKey is not an option/)
    expect(message).not.toContain('SECRETKEYMATERIAL')
    expect(refused({ privateKey: secret })).not.toContain('SECRETKEYMATERIAL')
  })

  it('refuses a rule whose filter is invalid or whose template cannot make a topic', () => {
    expect(refused({ forward: [{ localTopic: 'a/#/b', cloudTopic: 'x' }] })).toMatch(
      /^forward\[0\] is not a valid rule/,
    )
    expect(refused({ commands: [{ cloudTopic: 'cmd/#', localTopic: 'in/+/{suffix}' }] })).toMatch(
      /^commands\[0\] is not a valid rule/,
    )
    expect(refused({ forward: [{ localTopic: 'a/#', cloudTopic: 'x', priority: 'urgent' }] })).toBe(
      'forward[0].priority must be one of alarm, telemetry',
    )
  })

  it('turns optional features off with an empty string, on with a value', () => {
    const off = parseComponentConfig({}, env)
    expect(off.uplink.concierge).toBeUndefined()
    expect(off.uplink.presence).toBeUndefined()
    const on = parseComponentConfig(
      {
        concierge: { url: 'https://c.example.com/{thingName}', allowedHosts: ['*.example.com'] },
        presence: { topic: 'status/{thingName}' },
        dns: { servers: ['127.0.0.1:5353'], watch: true },
      },
      env,
    )
    expect(on.uplink.concierge?.url).toBe('https://c.example.com/gw-7')
    expect(on.uplink.presence?.topic).toBe('status/gw-7')
    expect(on.uplink.dns?.servers).toEqual(['127.0.0.1:5353'])
  })

  it('has a fingerprint that changes with the configuration and not otherwise', () => {
    const one = parseComponentConfig({ keepalive: 30 }, env).fingerprint
    expect(parseComponentConfig({ keepalive: 30 }, env).fingerprint).toBe(one)
    expect(parseComponentConfig({ keepalive: 31 }, env).fingerprint).not.toBe(one)
  })
})

describe('topic rules', () => {
  it('expands {suffix} to what a trailing # matched and {topic} to the whole topic', () => {
    expect(suffixOf('uplink/out/#', 'uplink/out/a/b')).toBe('a/b')
    expect(suffixOf('#', 'a/b')).toBe('a/b')
    expect(suffixOf('uplink/+/x', 'uplink/q/x')).toBe('')
    expect(expandTopic('dt/gw/{suffix}', 'uplink/out/#', 'uplink/out/t/1')).toBe('dt/gw/t/1')
    expect(expandTopic('all/{topic}', 'uplink/+/x', 'uplink/q/x')).toBe('all/uplink/q/x')
    expect(() => checkRule('a/#', 'dt/{suffix}')).not.toThrow()
  })

  it('counts {suffix} of a $share/{group}/ command rule from the filter after the group', () => {
    expect(suffixOf('$share/gws/cmd/all/#', 'cmd/all/reboot/now')).toBe('reboot/now')
    expect(expandTopic('uplink/in/{suffix}', '$share/gws/cmd/#', 'cmd/a/b')).toBe('uplink/in/a/b')
    const s = parseComponentConfig(
      {
        commands: [
          { cloudTopic: '$share/gws/cmd/{thingName}/#', localTopic: 'uplink/in/{suffix}' },
        ],
      },
      env,
    )
    const rule = s.commands[0] as { cloudTopic: string; localTopic: string }
    expect(firstMatch(s.commands, 'cmd/gw-7/reboot', (r) => r.cloudTopic)).toBe(rule)
    expect(expandTopic(rule.localTopic, rule.cloudTopic, 'cmd/gw-7/reboot')).toBe(
      'uplink/in/reboot',
    )
  })

  it('gives a message to the first rule that matches', () => {
    const rules = [{ f: 'uplink/alarm/#' }, { f: 'uplink/#' }]
    expect(firstMatch(rules, 'uplink/alarm/x', (r) => r.f)).toBe(rules[0])
    expect(firstMatch(rules, 'uplink/out/x', (r) => r.f)).toBe(rules[1])
    expect(firstMatch(rules, 'other', (r) => r.f)).toBeUndefined()
  })
})

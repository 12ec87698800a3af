import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parseComponentConfig } from '../src/config.js'
import { defaultConfiguration, GREENGRASS_DEFAULTS } from '../src/defaults.js'
import { componentRecipe } from '../src/recipe.js'

/**
 * The recipe against the rules of the Greengrass component recipe reference, read as the
 * nucleus reads it: recipe keys case-insensitively (so two keys that differ only in case would
 * collide), values as written.
 */

type Json = Record<string, unknown>
const pkgDir = new URL('..', import.meta.url)
const shipped = JSON.parse(readFileSync(new URL('recipe.json', pkgDir), 'utf8')) as Json
const gdk = JSON.parse(readFileSync(new URL('gdk-config.json', pkgDir), 'utf8'))
const pkg = JSON.parse(readFileSync(new URL('package.json', pkgDir), 'utf8'))

/** Lower-cases the keys of the recipe's own structure (not of DefaultConfiguration's contents). */
function caseless(value: unknown, depth = 0, stopAt?: string): unknown {
  if (Array.isArray(value)) return value.map((v) => caseless(v, depth + 1, stopAt))
  if (typeof value !== 'object' || value === null) return value
  const out: Json = {}
  for (const [k, v] of Object.entries(value)) {
    const key = k.toLowerCase()
    if (key in out) throw new Error(`keys differing only in case: ${k}`)
    out[key] = key === 'defaultconfiguration' ? v : caseless(v, depth + 1, stopAt)
  }
  return out
}

const LIFECYCLE_STEPS = ['setenv', 'install', 'startup', 'run', 'shutdown', 'recover', 'bootstrap']
const ARCHITECTURES = ['amd64', 'aarch64', 'arm', 'x86', '*']
const PERMISSIONS = ['NONE', 'OWNER', 'ALL']
const IPC_PUBSUB_OPERATIONS = [
  'aws.greengrass#PublishToTopic',
  'aws.greengrass#SubscribeToTopic',
  '*',
]

describe('the component recipe', () => {
  const r = caseless(shipped) as Json

  it('is the one the code builds, with the name and version of gdk-config.json and package.json', () => {
    const [name, entry] = Object.entries(gdk.component)[0] as [string, { version: string }]
    expect(entry.version).toBe(pkg.version)
    expect(shipped).toEqual(componentRecipe({ name, version: pkg.version }))
  })

  it('has the required fields: format 2020-01-25, a name outside aws.greengrass, a semantic version', () => {
    expect(r.recipeformatversion).toBe('2020-01-25')
    const name = String(r.componentname)
    expect(name).toMatch(/^[A-Za-z0-9._-]{1,128}$/)
    expect(name.toLowerCase().startsWith('aws.greengrass')).toBe(false)
    expect(name.toLowerCase().startsWith('amazon')).toBe(false)
    expect(String(r.componentversion)).toMatch(/^\d+\.\d+\.\d+$/)
    expect(r.componenttype).toBe('aws.greengrass.generic')
  })

  it('has linux manifests for x86_64, aarch64 and armv7l that nucleus lite also matches (runtime "*")', () => {
    const manifests = r.manifests as Json[]
    const platforms = manifests.map((m) => m.platform as Json)
    expect(platforms.map((p) => [p.os, p.architecture, p['architecture.detail']])).toEqual([
      ['linux', 'amd64', undefined],
      ['linux', 'aarch64', undefined],
      ['linux', 'arm', 'armv7l'],
    ])
    for (const p of platforms) {
      expect(ARCHITECTURES).toContain(p.architecture)
      expect(p.runtime).toBe('*')
    }
  })

  it('runs the runner from the unpacked ZIP with the outbox under the work path, unprivileged', () => {
    for (const m of r.manifests as Json[]) {
      const lifecycle = m.lifecycle as Json
      for (const step of Object.keys(lifecycle)) expect(LIFECYCLE_STEPS).toContain(step)
      const run = lifecycle.run as Json
      expect(run.script).toBe(
        'node {artifacts:decompressedPath}/uplink-greengrass/dist/bin.js --work {work:path}',
      )
      expect(run.requiresprivilege).toBe(false)
      const [artifact, ...more] = m.artifacts as Json[]
      expect(more).toEqual([])
      expect(String(artifact?.uri)).toMatch(
        /^s3:\/\/BUCKET_NAME\/dev\.uplink\.Uplink\/\d+\.\d+\.\d+\/uplink-greengrass\.zip$/,
      )
      // The ZIP's base name is the folder Greengrass unpacks it into.
      expect(String(run.script)).toContain(
        `/${String(artifact?.uri)
          .split('/')
          .at(-1)
          ?.replace(/\.zip$/, '')}/`,
      )
      expect(artifact?.unarchive).toBe('ZIP')
      const permission = artifact?.permission as Json
      expect(PERMISSIONS).toContain(permission.read)
      expect(PERMISSIONS).toContain(permission.execute)
    }
  })

  it('documents every option in DefaultConfiguration, and that configuration is valid as it stands', () => {
    const config = (r.componentconfiguration as Json).defaultconfiguration as Json
    const { accessControl, ...options } = config
    expect(options).toEqual(defaultConfiguration())
    const settings = parseComponentConfig(options, {
      thingName: 'gw',
      rootCaPath: undefined,
      iotDataEndpoint: 'abc-ats.iot.eu-west-1.amazonaws.com',
      region: 'eu-west-1',
    })
    expect(settings.uplink.endpoints).toEqual([
      { url: 'mqtts://abc-ats.iot.eu-west-1.amazonaws.com:8883', tls: {} },
    ])
    expect(settings.uplink.clientId).toBe('gw-uplink')
    expect(accessControl).toBeDefined()
  })

  it('grants aws.greengrass.ipc.pubsub for exactly its local topics', () => {
    const config = (r.componentconfiguration as Json).defaultconfiguration as Json
    const acl = (config.accessControl as Json)['aws.greengrass.ipc.pubsub'] as Record<
      string,
      { operations: string[]; resources: string[]; policyDescription?: string }
    >
    const policies = Object.entries(acl)
    expect(policies.length).toBeGreaterThan(0)
    for (const [id, p] of policies) {
      expect(id.startsWith(String(r.componentname))).toBe(true)
      for (const op of p.operations) expect(IPC_PUBSUB_OPERATIONS).toContain(op)
    }
    const granted = (op: string) =>
      policies.filter(([, p]) => p.operations.includes(op)).flatMap(([, p]) => p.resources)
    expect(granted('aws.greengrass#SubscribeToTopic')).toEqual(
      GREENGRASS_DEFAULTS.forward.map((f) => f.localTopic),
    )
    expect(granted('aws.greengrass#PublishToTopic')).toEqual(['uplink/in/*', 'uplink/status'])
  })
})

import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { type InspectOptions, inspect } from 'node:util'
import {
  checkKeys,
  createUplink,
  type EndpointInput,
  type TlsConfig,
  UplinkError,
  type UplinkOptions,
  validateTopic,
} from '@uplink/client'
import {
  COMMAND_RULE_KEYS,
  CONFIG_KEYS,
  checkGroups,
  ENDPOINT_KEYS,
  FORWARD_RULE_KEYS,
} from './config-keys.js'
import { defaultConfiguration, GREENGRASS_DEFAULTS } from './defaults.js'
import { isObject, type Json } from './json.js'
import {
  type CommandRule,
  checkRule,
  expandFixed,
  type FixedVars,
  type ForwardRule,
} from './rules.js'

/**
 * The component's configuration (its Greengrass configuration, camelCase keys) turned into
 * Uplink options and rules. Everything is checked here, before anything is applied: the Uplink
 * options by createUplink's own validation, the rest field by field. A bad field throws an
 * UplinkError INVALID_OPTIONS naming it; the running configuration is never touched by a
 * configuration that fails here.
 */

export interface DeviceEnv {
  thingName: string
  /** GG_ROOT_CA_PATH: the default CA for every endpoint. */
  rootCaPath: string | undefined
  /** aws.greengrass.Nucleus's iotDataEndpoint and awsRegion. */
  iotDataEndpoint: string | undefined
  region: string | undefined
}

export interface OutboxSettings {
  maxMessages: number
  maxBytes: number
  overflow: 'drop-oldest' | 'reject'
  durability: 'full' | 'normal'
}

export interface ComponentSettings {
  /** Everything but the outbox, which the runner keeps across reconfigurations. */
  uplink: UplinkOptions
  outbox: OutboxSettings
  forward: ForwardRule[]
  commands: CommandRule[]
  status: { topic: string; intervalSeconds: number }
  componentUpdates: {
    deferWhileAlarmsUnsent: boolean
    recheckAfterMs: number
    maxDeferrals: number
  }
  /** Compares two configurations: equal means nothing to apply. */
  fingerprint: string
  /** The part a client is built from (options, outbox, command subscriptions). */
  clientFingerprint: string
}

function fail(field: string, must: string): never {
  throw new UplinkError('INVALID_OPTIONS', `${field} ${must}`, { details: { field } })
}

/** Configuration over the defaults: objects merge key by key, arrays and values replace. */
export function overDefaults(base: Json, over: Json): Json {
  const out: Json = { ...base }
  for (const [k, v] of Object.entries(over)) {
    out[k] = isObject(v) && isObject(base[k]) ? overDefaults(base[k] as Json, v) : v
  }
  return out
}

function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    fail(field, `must be a whole number from ${min} to ${max}`)
  return v
}

function str(v: unknown, field: string): string {
  if (typeof v !== 'string') fail(field, 'must be a string')
  return v
}

function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') fail(field, 'must be true or false')
  return v
}

/** A topic the component publishes to locally: '' is off. */
function publishable(v: unknown, field: string): string {
  const topic = str(v, field)
  if (topic === '') return topic
  try {
    validateTopic(topic)
  } catch (err) {
    fail(field, `must be a topic one can publish to: ${(err as Error).message}`)
  }
  return topic
}

function oneOf<T extends string | number>(v: unknown, field: string, values: readonly T[]): T {
  if (!values.includes(v as T)) fail(field, `must be one of ${values.join(', ')}`)
  return v as T
}

function readPem(path: string, field: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    fail(
      field,
      `names a file that cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    )
  }
}

function tlsFrom(c: Json, field: string, fallback: TlsConfig): TlsConfig {
  const cert = str(c.certificatePath ?? '', `${field}certificatePath`)
  const key = str(c.privateKeyPath ?? '', `${field}privateKeyPath`)
  const ca = str(c.rootCaPath ?? '', `${field}rootCaPath`)
  if (Boolean(cert) !== Boolean(key))
    fail(`${field}certificatePath`, 'and privateKeyPath go together')
  return {
    ...fallback,
    ...(ca ? { ca: readPem(ca, `${field}rootCaPath`) } : {}),
    ...(cert ? { cert: readPem(cert, `${field}certificatePath`) } : {}),
    ...(key ? { key: readPem(key, `${field}privateKeyPath`) } : {}),
  }
}

function endpointsFrom(c: Json, env: DeviceEnv, tls: TlsConfig): EndpointInput[] {
  const list = c.endpoints
  if (!Array.isArray(list)) fail('endpoints', 'must be an array')
  if (list.length === 0) {
    if (!env.iotDataEndpoint)
      fail('endpoints', 'is empty and aws.greengrass.Nucleus has no iotDataEndpoint')
    return [{ url: `mqtts://${env.iotDataEndpoint}:${GREENGRASS_DEFAULTS.port}`, tls }]
  }
  return list.map((e, i) => {
    // The shared certificates (and GG_ROOT_CA_PATH, always set) are for mqtts:// endpoints: a
    // plaintext one (a broker on the device, a test) gets none, as createUplink requires.
    if (typeof e === 'string') return secure(e) ? { url: e, tls } : { url: e }
    if (!isObject(e)) fail(`endpoints[${i}]`, 'must be a URL or { url, certificatePath, ... }')
    checkKeys(e, ENDPOINT_KEYS, `endpoints[${i}]`)
    const url = str(e.url, `endpoints[${i}].url`)
    if (secure(url)) return { url, tls: tlsFrom(e, `endpoints[${i}].`, tls) }
    for (const key of Object.keys(ENDPOINT_KEYS).filter((k) => k !== 'url'))
      if (str(e[key] ?? '', `endpoints[${i}].${key}`))
        fail(`endpoints[${i}].${key}`, 'is given for an mqtt:// endpoint; TLS needs mqtts://')
    return { url }
  })
}

/** An mqtts:// URL; anything else the client's own check judges (and refuses, if bad). */
function secure(url: string): boolean {
  try {
    return new URL(url).protocol === 'mqtts:'
  } catch {
    return false
  }
}

function forwardFrom(c: Json, vars: FixedVars): ForwardRule[] {
  if (!Array.isArray(c.forward)) fail('forward', 'must be an array of rules')
  return c.forward.map((r: unknown, i) => {
    const f = `forward[${i}]`
    if (!isObject(r)) fail(f, 'must be { localTopic, cloudTopic, qos, priority, ttlSeconds }')
    checkKeys(r, FORWARD_RULE_KEYS, f)
    const rule: ForwardRule = {
      localTopic: str(r.localTopic, `${f}.localTopic`),
      cloudTopic: expandFixed(str(r.cloudTopic, `${f}.cloudTopic`), vars),
      qos: oneOf(r.qos ?? 1, `${f}.qos`, [0, 1, 2] as const),
      priority: oneOf(r.priority ?? 'telemetry', `${f}.priority`, ['alarm', 'telemetry'] as const),
      ttlSeconds: int(r.ttlSeconds ?? 0, `${f}.ttlSeconds`, 0, 365 * 86_400),
    }
    try {
      checkRule(rule.localTopic, rule.cloudTopic)
    } catch (err) {
      fail(f, `is not a valid rule: ${(err as Error).message}`)
    }
    return rule
  })
}

function commandsFrom(c: Json, vars: FixedVars): CommandRule[] {
  if (!Array.isArray(c.commands)) fail('commands', 'must be an array of rules')
  return c.commands.map((r: unknown, i) => {
    const f = `commands[${i}]`
    if (!isObject(r)) fail(f, 'must be { cloudTopic, localTopic, qos }')
    checkKeys(r, COMMAND_RULE_KEYS, f)
    const rule: CommandRule = {
      cloudTopic: expandFixed(str(r.cloudTopic, `${f}.cloudTopic`), vars),
      localTopic: expandFixed(str(r.localTopic, `${f}.localTopic`), vars),
      qos: oneOf(r.qos ?? 1, `${f}.qos`, [0, 1, 2] as const),
    }
    try {
      checkRule(rule.cloudTopic, rule.localTopic)
    } catch (err) {
      fail(f, `is not a valid rule: ${(err as Error).message}`)
    }
    return rule
  })
}

/** A hash, not the JSON itself: the options hold private keys, which must not sit in a string. */
function digest(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex')
}

/** An empty string or list in the configuration means "not set". */
const set = <T>(v: T): T | undefined =>
  v === '' || (Array.isArray(v) && v.length === 0) ? undefined : v

export function parseComponentConfig(raw: unknown, env: DeviceEnv): ComponentSettings {
  if (!isObject(raw)) fail('configuration', 'must be an object')
  // Key names only, never values: a typo is named, a private key path or URL is not echoed.
  checkKeys(raw, CONFIG_KEYS, '')
  const c = overDefaults(defaultConfiguration(), raw)
  checkGroups(c)
  const clientId =
    str(c.clientId, 'clientId') || `${env.thingName}${GREENGRASS_DEFAULTS.clientIdSuffix}`
  const vars: FixedVars = { thingName: env.thingName, region: env.region ?? '', clientId }
  const tls = tlsFrom(
    { ...c, rootCaPath: str(c.rootCaPath, 'rootCaPath') || env.rootCaPath || '' },
    '',
    {},
  )
  const dns = c.dns as Json
  const concierge = c.concierge as Json
  const control = c.control as Json
  const presence = c.presence as Json
  const uplink: UplinkOptions = {
    clientId,
    endpoints: endpointsFrom(c, env, tls),
    tls,
    protocolVersion: c.protocolVersion as 4 | 5,
    keepalive: c.keepalive as number,
    connectTimeoutMs: c.connectTimeoutMs as number,
    backoff: c.backoff as UplinkOptions['backoff'],
    failoverAfter: c.failoverAfter as number,
    dns: { ...(dns as UplinkOptions['dns']), servers: set(dns.servers as string[]) },
    concierge: set(str(concierge.url, 'concierge.url'))
      ? ({
          ...concierge,
          url: expandFixed(String(concierge.url), vars),
        } as UplinkOptions['concierge'])
      : undefined,
    control: set(str(control.topic, 'control.topic'))
      ? { topic: expandFixed(String(control.topic), vars) }
      : undefined,
    failover: c.failover as UplinkOptions['failover'],
    session: c.session as UplinkOptions['session'],
    inflightWindow: c.inflightWindow as number,
    maxPayloadBytes: c.maxPayloadBytes as number,
    presence: set(str(presence.topic, 'presence.topic'))
      ? ({
          ...presence,
          topic: expandFixed(String(presence.topic), vars),
        } as UplinkOptions['presence'])
      : undefined,
  }
  // Uplink's own validation, on a client that is never started: it opens nothing.
  createUplink(uplink)
  const o = c.outbox as Json
  const status = c.status as Json
  const updates = c.componentUpdates as Json
  return hidingSecrets({
    uplink,
    outbox: {
      maxMessages: int(o.maxMessages, 'outbox.maxMessages', 1, 2 ** 40),
      maxBytes: int(o.maxBytes, 'outbox.maxBytes', 1024, 2 ** 50),
      overflow: oneOf(o.overflow, 'outbox.overflow', ['drop-oldest', 'reject'] as const),
      durability: oneOf(o.durability, 'outbox.durability', ['full', 'normal'] as const),
    },
    forward: forwardFrom(c, vars),
    commands: commandsFrom(c, vars),
    status: {
      topic: publishable(status.topic, 'status.topic'),
      intervalSeconds: int(status.intervalSeconds, 'status.intervalSeconds', 0, 86_400),
    },
    componentUpdates: {
      deferWhileAlarmsUnsent: bool(
        updates.deferWhileAlarmsUnsent,
        'componentUpdates.deferWhileAlarmsUnsent',
      ),
      recheckAfterMs: int(
        updates.recheckAfterMs,
        'componentUpdates.recheckAfterMs',
        1_000,
        3_600_000,
      ),
      maxDeferrals: int(updates.maxDeferrals, 'componentUpdates.maxDeferrals', 0, 1_000),
    },
    fingerprint: digest({ c, env }),
    clientFingerprint: digest({ uplink, outbox: c.outbox, commands: c.commands, env }),
  })
}

/**
 * The settings with util.inspect showing no secret: the client options hold the private key,
 * certificates and login read from their files, and the runner's `configuration` returns these.
 */
function hidingSecrets(settings: ComponentSettings): ComponentSettings {
  Object.defineProperty(settings, inspect.custom, {
    value: (_depth: number, options: InspectOptions, show: typeof inspect) =>
      show({ ...settings, uplink: '[client options: certificates and login not shown]' }, options),
  })
  return settings
}

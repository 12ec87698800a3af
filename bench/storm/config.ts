/** The storm's settings: defaults in one object, flags parsed and checked in one function. */
import { parseShard, parseStartAt, type Shard, shardSlice } from './shard.js'
import { normalizeBrokerUrl, type TargetConfig } from './target.js'

export const SCENARIOS = ['crash', 'blackhole', 'dns-flip', 'concierge-flip'] as const
export type Scenario = (typeof SCENARIOS)[number]
export type ClientKind = 'uplink' | 'mqttjs'

export interface StormConfig {
  devices: number
  scenarios: Scenario[]
  /** Uplink always; the MQTT.js baseline too with `--compare mqttjs`. */
  clients: ClientKind[]
  store: 'memory' | 'sqlite'
  /** Telemetry messages per second per device (QoS 1). */
  rate: number
  payloadBytes: number
  /** Crash and blackhole: the simulated health check flips DNS this long after the failure. */
  healthCheckMs: number
  /** Seconds; the blackhole scenario is noticed by keepalive alone. */
  keepalive: number
  connectTimeoutMs: number
  /**
   * Uplink's ladder, and its informed backoff's arrival spread (`backoff.informed.spreadMs`: a
   * device that learns of a new address waits a random 0..spreadMs before it goes there).
   * Undefined: sized as the README tells a user to size it, max(1 s, fleet / the secondary's
   * measured accept rate) (arrivalSpreadMs in storm.ts).
   */
  backoff: { initialMs: number; maxMs: number; stableMs: number; spreadMs?: number | undefined }
  /**
   * TTL of the broker's DNS record, seconds. 0: 5 s, or longer for a large fleet, so the DNS
   * watch asks about 500 times a second at most (one 2-core machine plays every device; at
   * 1 000 a second, each a UDP socket of its own, the workers ran seconds late).
   */
  dnsTtl: number
  /** dns-flip: the DNS watch re-resolves when the TTL runs out, not more often than this. */
  dnsWatchMinMs: number
  /**
   * concierge-flip: the concierge poll interval and its jitter (fraction). 0: 5 s, or longer
   * for a large fleet: about 250 requests a second at most. Each poll is a TCP connection and an
   * HTTP exchange on both ends, on the same 2 cores as every device; at 500 to 1 000 a second
   * the devices' own timers ran seconds late (the SDK's default interval is 5 minutes: 33 a
   * second for 10 000 devices).
   */
  conciergeIntervalMs: number
  conciergeJitter: number
  /** Flap damping for planned moves; 0 so a fleet that just connected may move at once. */
  minStayMs: number
  /** Steady publishing before the failure, and after the whole fleet has moved. */
  warmupMs: number
  tailMs: number
  /** Device worker processes (0: one per 5 000 devices, enough for the open-file limit). */
  workers: number
  /** Raw connections in the accept-rate probe (0: min(devices, 2000), at least 100). */
  probe: number
  /** Bound on waiting for the fleet to move, as a multiple of the computed bound (min 20 s). */
  recoveryTimeoutFactor: number
  seed: number
  tickMs: number
  progress: boolean
  /** Target mode: existing brokers instead of the storm's own regions (target.ts). */
  target?: TargetConfig | undefined
  /** `--shard I/N`: this process runs the I-th slice of the `devices` (shard.ts). */
  shard: Shard
  /** Epoch ms every shard starts at (`--start-at`); undefined: at once. */
  startAt?: number | undefined
  /** With `startAt`: the failure is injected this long after it, in every shard alike. */
  failAtMs?: number | undefined
  json?: string | undefined
  html?: string | undefined
}

export const DEFAULTS: StormConfig = {
  devices: 2_000,
  scenarios: ['crash'],
  clients: ['uplink', 'mqttjs'],
  store: 'memory',
  rate: 0.2,
  payloadBytes: 64,
  healthCheckMs: 5_000,
  keepalive: 5,
  connectTimeoutMs: 10_000,
  // The SDK's own ladder: with informed backoff the cap no longer bounds recovery (a waiting
  // device learns of the flip from DNS), so the bench need not shorten it to keep runs short.
  backoff: { initialMs: 1_000, maxMs: 60_000, stableMs: 30_000 },
  dnsTtl: 0,
  dnsWatchMinMs: 1_000,
  conciergeIntervalMs: 0,
  conciergeJitter: 0.2,
  minStayMs: 0,
  warmupMs: 3_000,
  tailMs: 2_000,
  workers: 0,
  probe: 0,
  recoveryTimeoutFactor: 3,
  seed: 1,
  tickMs: 250,
  progress: true,
  shard: { index: 0, count: 1 },
}

/**
 * Devices that share one of the baseline's resolvers: as many as Uplink's shared DNS sockets
 * carry questions (dns-udp.ts). A resolver is one c-ares socket with the kernel's default
 * receive buffer (208 KiB): shared by a whole worker's 5 000 devices, the answers to their
 * lookups after a crash arrived in one burst while the busy worker was not reading, and the
 * kernel dropped 28 000 to 37 000 of them a 10 000-device storm (9 000 to 15 000 lookups failed
 * with ETIMEOUT, each after its device had waited out two 2 s resolver timeouts). On a real fleet each device has its own socket; 32 to a resolver keeps every burst
 * within one buffer, for ~18 KiB of RSS a resolver (~0.6 KiB a device, counted as the baseline's).
 */
export const DEVICES_PER_RESOLVER = 32

export const USAGE = `pnpm bench:storm [flags]

  --devices N              devices in the fleet (default ${DEFAULTS.devices})
  --scenario S             crash | blackhole | dns-flip | concierge-flip | all (default crash)
  --compare mqttjs|none    also run the plain MQTT.js baseline (default mqttjs)
  --store memory|sqlite    the devices' outbox (sqlite: one file per device in a temp dir)
  --rate R                 telemetry messages per second per device (default ${DEFAULTS.rate})
  --payload-bytes B        telemetry payload size (default ${DEFAULTS.payloadBytes})
  --health-check-ms MS     crash/blackhole: failure to DNS flip (default ${DEFAULTS.healthCheckMs})
  --keepalive S            MQTT keepalive, seconds (default ${DEFAULTS.keepalive})
  --backoff-max-ms MS      Uplink backoff cap (default ${DEFAULTS.backoff.maxMs}, the SDK's)
  --backoff-initial-ms MS  Uplink first backoff ceiling (default ${DEFAULTS.backoff.initialMs})
  --spread-ms MS           Uplink informed backoff's arrival spread (default max(1000, devices / accept rate x 1000),
                           as the README says to size it; the SDK's default is 1000)
  --connect-timeout-ms MS  Uplink bound on one attempt (default ${DEFAULTS.connectTimeoutMs})
  --dns-ttl S              TTL of the broker's record (default max(5, devices / 500))
  --concierge-interval-ms  concierge poll interval (default max(5000, 4 x devices) ms)
  --warmup-ms MS           steady publishing before the failure (default ${DEFAULTS.warmupMs})
  --tail-ms MS             publishing after the fleet moved (default ${DEFAULTS.tailMs})
  --workers N              device worker processes (default: one per 5 000 devices)
  --probe N                connections in the accept-rate probe (default min(devices, 2000))
  --seed N                 seed for every device's jitter (default ${DEFAULTS.seed})
  --shard I/N              run the I-th of N slices of the fleet (ids and seeds as in the whole fleet)
  --start-at TIME          every shard starts then (epoch ms or ISO 8601, e.g. 2026-12-01T11:00:00Z)
  --fail-at-ms MS          with --start-at: inject the failure MS after it (the same moment in every shard)
  target mode (your own brokers instead of the built-in aedes regions; Uplink only; crash or blackhole):
  --primary URL            the broker the fleet starts on (mqtt:// or mqtts://)
  --secondary URL          the broker it fails over to
  --username-file F        --password-file F   credentials, read from files (never printed)
  --ca F  --cert F  --key F                    TLS: CA bundle, client certificate and key (PEM)
  --dns-server IP[:PORT]   resolve the brokers' names there (default: the system's resolvers)
  --fail-cmd CMD           shell command that fails the primary at the scenario's moment
                           (default: a printed countdown; you fail it when it reaches 0)
  --recover-cmd CMD        shell command run after the run, to bring the primary back
  --cmd-timeout-ms MS      bound on each command (default 30000)
  --countdown-s S          without --fail-cmd: the countdown (default 10)
  --json FILE              write one record per run
  --html FILE              write a self-contained page with charts
  --no-progress            no progress bar on stderr`

function num(flag: string, value: string | undefined, min: number, max: number): number {
  const n = Number(value)
  if (value === undefined || !Number.isFinite(n) || n < min || n > max)
    throw new Error(`${flag} must be a number from ${min} to ${max}`)
  return n
}

/**
 * Numeric flags: the setting each one sets (a dotted path), its range, and whether it is rounded
 * to a whole number (default yes).
 */
const NUMERIC: Record<string, [path: string, min: number, max: number, round?: boolean]> = {
  '--devices': ['devices', 1, 100_000],
  '--rate': ['rate', 0.01, 100, false],
  '--payload-bytes': ['payloadBytes', 16, 65_536],
  '--health-check-ms': ['healthCheckMs', 0, 600_000],
  '--keepalive': ['keepalive', 1, 600],
  '--backoff-max-ms': ['backoff.maxMs', 1, 600_000],
  '--backoff-initial-ms': ['backoff.initialMs', 1, 600_000],
  '--spread-ms': ['backoff.spreadMs', 0, 600_000],
  '--connect-timeout-ms': ['connectTimeoutMs', 100, 600_000],
  '--dns-ttl': ['dnsTtl', 1, 3_600],
  '--concierge-interval-ms': ['conciergeIntervalMs', 1_000, 600_000],
  '--warmup-ms': ['warmupMs', 0, 600_000],
  '--tail-ms': ['tailMs', 0, 600_000],
  '--workers': ['workers', 1, 64],
  '--probe': ['probe', 10, 20_000],
  '--seed': ['seed', 0, 2 ** 31],
  '--fail-at-ms': ['failAtMs', 1_000, 3_600_000],
}

function setPath(c: StormConfig, path: string, v: number): void {
  const keys = path.split('.')
  let target = c as unknown as Record<string, unknown>
  for (const k of keys.slice(0, -1)) target = target[k] as Record<string, unknown>
  target[keys.at(-1) as string] = v
}

export function parseArgs(argv: string[]): StormConfig {
  const c: StormConfig = { ...DEFAULTS, backoff: { ...DEFAULTS.backoff } }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string
    const [name, inline] = flag.includes('=') ? flag.split('=', 2) : [flag, undefined]
    const value = () => inline ?? argv[++i]
    const numeric = NUMERIC[name as string]
    if (numeric) {
      const [path, min, max, round = true] = numeric
      const v = num(name as string, value(), min, max)
      setPath(c, path, round ? Math.round(v) : v)
      continue
    }
    switch (name) {
      case '--scenario': {
        const v = value()
        if (v === 'all') c.scenarios = [...SCENARIOS]
        else if (SCENARIOS.includes(v as Scenario)) c.scenarios = [v as Scenario]
        else throw new Error(`--scenario must be one of ${SCENARIOS.join(', ')}, all`)
        break
      }
      case '--compare': {
        const v = value()
        if (v === 'mqttjs') c.clients = ['uplink', 'mqttjs']
        else if (v === 'none') c.clients = ['uplink']
        else throw new Error('--compare must be mqttjs or none')
        break
      }
      case '--store': {
        const v = value()
        if (v !== 'memory' && v !== 'sqlite') throw new Error('--store must be memory or sqlite')
        c.store = v
        break
      }
      case '--shard':
        c.shard = parseShard(value())
        break
      case '--start-at':
        c.startAt = parseStartAt(value())
        break
      case '--primary':
      case '--secondary':
        targetOf(c)[name.slice(2) as 'primary' | 'secondary'] = normalizeBrokerUrl(name, value())
        break
      case '--username-file':
      case '--password-file':
      case '--ca':
      case '--cert':
      case '--key':
      case '--dns-server':
      case '--fail-cmd':
      case '--recover-cmd': {
        const v = value()
        if (!v) throw new Error(`${name} needs a value`)
        targetOf(c)[TARGET_FLAGS[name]] = v
        break
      }
      case '--cmd-timeout-ms':
        targetOf(c).cmdTimeoutMs = Math.round(num(name, value(), 100, 3_600_000))
        break
      case '--countdown-s':
        targetOf(c).countdownS = Math.round(num(name, value(), 0, 3_600))
        break
      case '--json':
        c.json = value()
        break
      case '--html':
        c.html = value()
        break
      case '--no-progress':
        c.progress = false
        break
      case '--help':
      case '-h':
        throw new HelpRequested()
      default:
        throw new Error(`unknown flag ${flag}\n\n${USAGE}`)
    }
  }
  if (c.backoff.maxMs < c.backoff.initialMs)
    throw new Error('--backoff-max-ms must not be below --backoff-initial-ms')
  if (c.failAtMs !== undefined && c.startAt === undefined)
    throw new Error('--fail-at-ms needs --start-at')
  if (c.shard.count > c.devices) throw new Error('--shard: more shards than devices')
  if (c.target) checkTarget(c, c.target)
  return withFleetDefaults(c)
}

/** Fills in the settings whose default depends on the fleet's size (those left at 0). */
export function withFleetDefaults(c: StormConfig): StormConfig {
  return {
    ...c,
    dnsTtl: c.dnsTtl || Math.max(5, Math.ceil(c.devices / 500)),
    conciergeIntervalMs: c.conciergeIntervalMs || Math.max(5_000, 4 * c.devices),
  }
}

const TARGET_FLAGS = {
  '--username-file': 'usernameFile',
  '--password-file': 'passwordFile',
  '--ca': 'ca',
  '--cert': 'cert',
  '--key': 'key',
  '--dns-server': 'dnsServer',
  '--fail-cmd': 'failCmd',
  '--recover-cmd': 'recoverCmd',
} as const satisfies Record<string, keyof TargetConfig>

function targetOf(c: StormConfig): TargetConfig {
  c.target ??= { primary: '', secondary: '', cmdTimeoutMs: 30_000, countdownS: 10 }
  return c.target
}

/**
 * Target mode runs Uplink alone (the baseline has no list of endpoints to fail over along) and
 * only the scenarios a user's own command can cause: the primary failing.
 */
function checkTarget(c: StormConfig, t: TargetConfig): void {
  if (!t.primary || !t.secondary)
    throw new Error('target mode needs both --primary and --secondary')
  if (t.primary === t.secondary) throw new Error('--primary and --secondary must differ')
  if (c.scenarios.some((s) => s !== 'crash' && s !== 'blackhole'))
    throw new Error(
      'target mode runs --scenario crash or blackhole (your --fail-cmd fails the primary)',
    )
  c.clients = ['uplink']
}

/**
 * The part of the fleet this process runs: its first device index and how many. The fleet-size
 * defaults (DNS TTL, concierge interval) stay those of the whole fleet, as every shard shares them.
 */
export function shardRun(c: StormConfig): { first: number; devices: number } {
  return shardSlice(c.devices, c.shard)
}

export class HelpRequested extends Error {}

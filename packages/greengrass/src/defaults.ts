import { CONCIERGE_DEFAULTS, DEFAULTS } from '@uplink/client'
import { SQLITE_DEFAULTS } from '@uplink/store-sqlite'

/**
 * The component's own defaults, in one place. Uplink's options take their defaults from
 * @uplink/client's DEFAULTS and the outbox's from @uplink/store-sqlite, so the recipe's
 * DefaultConfiguration (recipe.ts builds it from defaultConfiguration() below) can never
 * disagree with what the runner does with an empty configuration.
 */
export const GREENGRASS_DEFAULTS = {
  /** The client id when none is configured: the nucleus itself connects as the thing name. */
  clientIdSuffix: '-uplink',
  /** AWS IoT Core's MQTT over TLS port. */
  port: 8883,
  forward: [
    {
      localTopic: 'uplink/out/#',
      cloudTopic: 'dt/{thingName}/{suffix}',
      qos: 1 as const,
      priority: 'telemetry' as const,
      ttlSeconds: 0,
    },
    {
      localTopic: 'uplink/alarm/#',
      cloudTopic: 'dt/{thingName}/alarm/{suffix}',
      qos: 1 as const,
      priority: 'alarm' as const,
      ttlSeconds: 0,
    },
  ],
  commands: [
    { cloudTopic: 'cmd/{thingName}/#', localTopic: 'uplink/in/{suffix}', qos: 1 as const },
  ],
  status: { topic: 'uplink/status', intervalSeconds: 60 },
  componentUpdates: { deferWhileAlarmsUnsent: true, recheckAfterMs: 10_000, maxDeferrals: 6 },
  /** Each step of a stop (in-flight acks, presence, disconnect) gets this long: within the 5 s grace. */
  stopStepTimeoutMs: 1_000,
  /** Reconnecting to the nucleus after the IPC connection drops. */
  ipcBackoff: { initialMs: 100, maxMs: 10_000, jitter: 'full' as const },
  /** The outbox file, in the component's work folder. */
  outboxFile: 'outbox.db',
}

/** What an empty configuration means, written out: the recipe's DefaultConfiguration. */
export function defaultConfiguration(): Record<string, unknown> {
  return {
    endpoints: [],
    certificatePath: '',
    privateKeyPath: '',
    rootCaPath: '',
    clientId: '',
    protocolVersion: DEFAULTS.protocolVersion,
    keepalive: DEFAULTS.keepalive,
    connectTimeoutMs: DEFAULTS.connectTimeoutMs,
    backoff: { ...DEFAULTS.backoff },
    failoverAfter: DEFAULTS.failoverAfter,
    dns: { servers: [], ...DEFAULTS.dns, watch: false },
    concierge: {
      url: '',
      allowedHosts: [],
      // The options only: the client's bounds on a directive's poll interval are not settings.
      intervalMs: CONCIERGE_DEFAULTS.intervalMs,
      jitter: CONCIERGE_DEFAULTS.jitter,
      timeoutMs: CONCIERGE_DEFAULTS.timeoutMs,
      retries: CONCIERGE_DEFAULTS.retries,
    },
    control: { topic: '' },
    failover: { allowedHosts: [], ...DEFAULTS.failover },
    session: { ...DEFAULTS.session },
    inflightWindow: DEFAULTS.inflightWindow,
    maxPayloadBytes: DEFAULTS.maxPayloadBytes,
    presence: { topic: '' },
    outbox: {
      maxMessages: SQLITE_DEFAULTS.maxMessages,
      maxBytes: SQLITE_DEFAULTS.maxBytes,
      overflow: SQLITE_DEFAULTS.overflow,
      durability: SQLITE_DEFAULTS.durability,
    },
    forward: GREENGRASS_DEFAULTS.forward.map((r) => ({ ...r })),
    commands: GREENGRASS_DEFAULTS.commands.map((r) => ({ ...r })),
    status: { ...GREENGRASS_DEFAULTS.status },
    componentUpdates: { ...GREENGRASS_DEFAULTS.componentUpdates },
  }
}

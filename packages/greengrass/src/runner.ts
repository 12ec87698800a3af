import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { inspect } from 'node:util'
import {
  createUplink,
  isUplinkError,
  type Outbox,
  type Uplink,
  type UplinkStats,
} from '@uplink/client'
import { sqliteOutbox } from '@uplink/store-sqlite'
import { type ComponentSettings, type DeviceEnv, parseComponentConfig } from './config.js'
import { GREENGRASS_DEFAULTS } from './defaults.js'
import { type IpcConnection, IpcError, type IpcStream } from './ipc-connection.js'
import {
  type ComponentState,
  type ComponentUpdateEvent,
  deferComponentUpdate,
  getConfiguration,
  type LocalMessage,
  publishToTopic,
  sendConfigurationValidityReport,
  subscribeToComponentUpdates,
  subscribeToConfigurationUpdate,
  subscribeToTopic,
  subscribeToValidateConfigurationUpdates,
  updateState,
  type ValidateConfigurationEvent,
} from './ipc-operations.js'
import { IpcSession } from './ipc-session.js'
import { keptOpen } from './kept-outbox.js'
import { expandTopic, firstMatch } from './rules.js'

export interface GreengrassRunnerOptions {
  /** The outbox lives here: the recipe passes {work:path}. */
  workPath: string
  /** Default process.env: the variables the nucleus sets for a component. */
  env?: NodeJS.ProcessEnv
  /** One line per event worth a person's attention; default stderr (the component's log). */
  log?: (line: string) => void
}

export interface RunnerCounts {
  forwarded: number
  forwardErrors: number
  commands: number
  commandsDropped: number
  reconfigurations: number
}

export interface RunnerStatus extends RunnerCounts {
  thingName: string
  region: string | undefined
  state: ComponentState | 'STARTING'
  /** Forwarding filters the nucleus refused to subscribe to (its access policy): not forwarded. */
  refusedLocalTopics: string[]
  uplink: Omit<UplinkStats, 'lastError'> & {
    lastError: { code: string; message: string } | undefined
  }
}

const NUCLEUS = 'aws.greengrass.Nucleus'

function required(env: NodeJS.ProcessEnv, name: string): string {
  const v = env[name]
  if (!v)
    throw new Error(`${name} is not set: run this as a Greengrass component (or see the README)`)
  return v
}

/**
 * The component: configuration over IPC in, local messages to the cloud through Uplink, cloud
 * commands back to local topics. Only this class decides when the Uplink client is replaced.
 */
export class GreengrassRunner {
  private readonly session: IpcSession
  private readonly thingName: string
  private readonly rootCaPath: string | undefined
  private readonly log: (line: string) => void
  private nucleus: Pick<DeviceEnv, 'iotDataEndpoint' | 'region'> = {
    iotDataEndpoint: undefined,
    region: undefined,
  }
  private settings: ComponentSettings | undefined
  private client: Uplink | undefined
  private outbox: Outbox | undefined
  private kept: Outbox | undefined
  /** Local subscriptions on the current IPC connection, by filter. */
  private local = new Map<string, IpcStream>()
  /** Forwarding filters the nucleus refused at the last sync; tried again at every reload. */
  private refusedLocal = new Set<string>()
  /** Set while one client is being replaced by the next: local messages wait for it. */
  private swapping: Promise<void> | undefined
  private chain: Promise<void> = Promise.resolve()
  private readonly deferrals = new Map<string, number>()
  private statusTimer: ReturnType<typeof setInterval> | undefined
  private state: ComponentState | 'STARTING' = 'STARTING'
  private stopped = false
  private firstApplied: (() => void) | undefined
  readonly counts: RunnerCounts = {
    forwarded: 0,
    forwardErrors: 0,
    commands: 0,
    commandsDropped: 0,
    reconfigurations: 0,
  }

  constructor(private readonly options: GreengrassRunnerOptions) {
    const env = options.env ?? process.env
    this.thingName = required(env, 'AWS_IOT_THING_NAME')
    this.rootCaPath = env.GG_ROOT_CA_PATH || undefined
    this.log = options.log ?? ((line) => process.stdout.write(`[uplink] ${line}\n`))
    this.session = new IpcSession(
      {
        socketPath: required(env, 'AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT'),
        authToken: required(env, 'SVCUID'),
      },
      (ipc) => this.connected(ipc),
      (err) => this.log(`IPC: ${err.message}`),
    )
  }

  /** What util.inspect shows: never the SVCUID or the private keys the settings hold. */
  [inspect.custom](): string {
    return `GreengrassRunner { thing: ${this.thingName}, state: ${this.state}, ${JSON.stringify(this.counts)} }`
  }

  /** The Uplink client in use (replaced by each reconfiguration). */
  get uplink(): Uplink | undefined {
    return this.client
  }

  get configuration(): ComponentSettings | undefined {
    return this.settings
  }

  /**
   * Connects to the nucleus and resolves once the first configuration is applied (RUNNING) or
   * refused (ERRORED). It keeps running either way: a later valid configuration is applied.
   */
  start(): Promise<void> {
    const applied = new Promise<void>((resolve) => {
      this.firstApplied = resolve
    })
    this.session.start()
    return applied
  }

  private async connected(ipc: IpcConnection): Promise<void> {
    this.local = new Map()
    // Nucleus lite implements a subset of IPC: without these the component still forwards; it
    // just cannot refuse a deployment, follow one live, or defer one.
    const optional = (what: string, subscribe: Promise<unknown>) =>
      subscribe.catch((err: Error) => this.log(`${what} not available: ${err.message}`))
    await optional(
      'deployment validation',
      subscribeToValidateConfigurationUpdates(ipc, (e) => void this.validate(ipc, e)),
    )
    await optional(
      'live configuration',
      subscribeToConfigurationUpdate(ipc, () => void this.reload().catch(() => {})),
    )
    await optional(
      'component update deferral',
      subscribeToComponentUpdates(ipc, (e) => void this.componentUpdate(ipc, e)),
    )
    // A nucleus that cannot answer GetConfiguration yet fails the set-up: the session retries.
    await this.reload()
  }

  private device(): DeviceEnv {
    return { thingName: this.thingName, rootCaPath: this.rootCaPath, ...this.nucleus }
  }

  /**
   * Reads and applies the configuration; runs one at a time, in the order asked. The returned
   * promise rejects on an IPC failure (the chain itself logs it and goes on).
   */
  private reload(): Promise<void> {
    const run = this.chain.then(() => this.reloadNow())
    this.chain = run.catch((err) => this.log(`configuration: ${(err as Error).message}`))
    return run
  }

  private async reloadNow(): Promise<void> {
    const ipc = this.session.current
    if (!ipc || this.stopped) return
    const nucleusValue = async (key: string) => {
      const v = await getConfiguration(ipc, [key], NUCLEUS).catch(() => undefined)
      return typeof v === 'string' && v ? v : undefined
    }
    this.nucleus = {
      iotDataEndpoint: await nucleusValue('iotDataEndpoint'),
      region: await nucleusValue('awsRegion'),
    }
    const raw = await getConfiguration(ipc)
    let settings: ComponentSettings
    try {
      settings = parseComponentConfig(raw, this.device())
    } catch (err) {
      const why = isUplinkError(err) ? `${err.code}: ${err.message}` : String(err)
      if (this.settings) {
        this.log(`configuration refused, the running one stays: ${why}`)
        // This may be the set-up of a new IPC connection (a reconnect reads the configuration
        // again): the running settings need their local subscriptions on it, or nothing local
        // is forwarded from now on. The status timer publishes on whatever connection is current.
        await this.serve(ipc)
        return
      }
      this.log(`configuration refused, nothing to run: ${why}`)
      await this.report(ipc, 'ERRORED')
      return
    }
    try {
      await this.apply(settings)
    } catch (err) {
      // Only the outbox can fail here (a disk that cannot be written): nothing is forwarding.
      this.log(`configuration could not be applied: ${(err as Error).message}`)
      await this.report(ipc, 'ERRORED')
      return
    }
    await this.serve(ipc)
  }

  /**
   * Subscribes the forwarding filters on this connection, then reports how that went. A filter
   * the access policy refuses does not stop the others: the component stays RUNNING, carrying
   * what it may, and says which filters it cannot (a log line each, and the status JSON). Only
   * when it can subscribe to none of them is it ERRORED: then it carries no local data at all,
   * and ERRORED is how a Greengrass operator learns of it (the deployment shows it failed, the
   * component's state is not RUNNING). ERRORED for one refused filter of several would instead
   * have the nucleus restart the component and a deployment roll back, stopping the data that
   * does flow, over a policy only a new deployment can change (which retries the filters).
   */
  private async serve(ipc: IpcConnection): Promise<void> {
    await this.syncLocal(ipc)
    const wanted = this.settings?.forward.length ?? 0
    await this.report(ipc, wanted > 0 && this.local.size === 0 ? 'ERRORED' : 'RUNNING')
  }

  private async report(ipc: IpcConnection, state: ComponentState): Promise<void> {
    if (this.state !== state) {
      await updateState(ipc, state)
      this.state = state
      this.log(`state ${state}`)
    }
    this.firstApplied?.()
    this.firstApplied = undefined
  }

  private async apply(settings: ComponentSettings): Promise<void> {
    if (this.settings?.fingerprint === settings.fingerprint) return
    if (this.client && this.settings?.clientFingerprint === settings.clientFingerprint) {
      // Only forwarding rules, status or update policy changed: the connection stays.
      this.settings = settings
      this.restartStatus()
      return
    }
    let release = () => {}
    this.swapping = new Promise((r) => {
      release = r
    })
    try {
      const previous = this.client
      if (previous) {
        this.counts.reconfigurations++
        // Waits for what is in flight to be acknowledged, so the next client sends nothing twice.
        await previous.stop({ timeoutMs: GREENGRASS_DEFAULTS.stopStepTimeoutMs })
      }
      if (
        !this.outbox ||
        JSON.stringify(this.settings?.outbox) !== JSON.stringify(settings.outbox)
      ) {
        await this.outbox?.close()
        this.outbox = undefined
        // The nucleus makes {work:path}; an embedding user may pass a folder not made yet.
        mkdirSync(this.options.workPath, { recursive: true })
        this.outbox = sqliteOutbox({
          path: join(this.options.workPath, GREENGRASS_DEFAULTS.outboxFile),
          ...settings.outbox,
        })
        this.kept = keptOpen(this.outbox)
      }
      const client = createUplink({ ...settings.uplink, outbox: this.kept })
      this.watch(client)
      for (const rule of settings.commands) {
        void client.subscribe(
          rule.cloudTopic,
          (topic, payload) => this.command(rule, topic, payload),
          {
            qos: rule.qos,
          },
        )
      }
      await client.start()
      this.client = client
      this.settings = settings
      this.restartStatus()
      this.log(
        `running: ${settings.uplink.endpoints.map((e) => (typeof e === 'string' ? e : e.url)).join(', ')}`,
      )
    } finally {
      this.swapping = undefined
      release()
    }
  }

  private watch(client: Uplink): void {
    client.on('state', (e) => this.log(`uplink ${e.previous} -> ${e.state}`))
    client.on('failover', (e) => this.log(`failover ${e.from} -> ${e.to} (${e.reason})`))
    client.on('drop', (e) => this.log(`dropped ${e.topic} (${e.reason})`))
    client.on('error', (e) => this.log(`uplink ${e.code}: ${e.message}`))
  }

  /** One IPC subscription per forwarding filter, on the current connection. */
  private async syncLocal(ipc: IpcConnection): Promise<void> {
    const wanted = new Set(this.settings?.forward.map((r) => r.localTopic))
    for (const [filter, stream] of this.local) {
      if (!wanted.has(filter)) {
        stream.close()
        this.local.delete(filter)
      }
    }
    const refused = new Set<string>()
    for (const filter of wanted) {
      if (this.local.has(filter)) continue
      try {
        const stream = await subscribeToTopic(ipc, filter, (m) =>
          this.track(this.forward(filter, m)),
        )
        this.local.set(filter, stream)
      } catch (err) {
        // A lost connection or a nucleus that does not answer fails the set-up (it is retried);
        // a refusal of this one filter is the policy's answer, and the other filters go on.
        if (!refusedFilter(err)) throw err
        refused.add(filter)
        this.log(
          `local topic ${filter} is not forwarded: the nucleus refused SubscribeToTopic (${err.shape.replace('aws.greengrass#', '')}); the component's accessControl must allow it`,
        )
      }
    }
    this.refusedLocal = refused
  }

  /** Forwards not yet stored: stop() waits for them, so what the nucleus handed over is kept. */
  private readonly storing = new Set<Promise<void>>()

  private track(forwarding: Promise<void>): void {
    this.storing.add(forwarding)
    void forwarding.finally(() => this.storing.delete(forwarding))
  }

  private async forward(filter: string, message: LocalMessage): Promise<void> {
    // Overlapping filters deliver a message once per subscription: the first matching rule owns it.
    const rule = firstMatch(this.settings?.forward ?? [], message.topic, (r) => r.localTopic)
    if (!rule || rule.localTopic !== filter) return
    const topic = expandTopic(rule.cloudTopic, rule.localTopic, message.topic)
    if (this.swapping) await this.swapping
    const client = this.client
    if (!client) {
      this.counts.forwardErrors++
      return
    }
    try {
      await client.publish(topic, message.payload, {
        qos: rule.qos,
        priority: rule.priority,
        ttlSeconds: rule.ttlSeconds > 0 ? rule.ttlSeconds : undefined,
      })
      this.counts.forwarded++
    } catch (err) {
      this.counts.forwardErrors++
      this.log(`not forwarded ${message.topic}: ${(err as Error).message}`)
    }
  }

  private command(
    rule: ComponentSettings['commands'][number],
    topic: string,
    payload: Buffer,
  ): void {
    const owner = firstMatch(this.settings?.commands ?? [], topic, (r) => r.cloudTopic)
    if (owner?.cloudTopic !== rule.cloudTopic) return
    const ipc = this.session.current
    if (!ipc) {
      this.counts.commandsDropped++
      this.log(`command on ${topic} dropped: no IPC connection`)
      return
    }
    const local = expandTopic(rule.localTopic, rule.cloudTopic, topic)
    publishToTopic(ipc, local, payload).then(
      () => this.counts.commands++,
      (err) => {
        this.counts.commandsDropped++
        this.log(`command on ${topic} not delivered to ${local}: ${(err as Error).message}`)
      },
    )
  }

  private async validate(ipc: IpcConnection, event: ValidateConfigurationEvent): Promise<void> {
    let status: 'ACCEPTED' | 'REJECTED' = 'ACCEPTED'
    let message: string | undefined
    try {
      parseComponentConfig(event.configuration, this.device())
    } catch (err) {
      status = 'REJECTED'
      message = isUplinkError(err) ? `${err.code}: ${err.message}` : String(err)
      this.log(`deployment ${event.deploymentId} refused: ${message}`)
    }
    await sendConfigurationValidityReport(ipc, event.deploymentId, status, message).catch((err) =>
      this.log(`validity report: ${(err as Error).message}`),
    )
  }

  /** Alarms still in the outbox (stored, not yet acknowledged by a broker)? */
  private async alarmsUnsent(): Promise<boolean> {
    if (!this.kept) return false
    // head(), not take(): looking must not hand the message out.
    const first = await this.kept.head()
    return first?.priority === 'alarm'
  }

  private async componentUpdate(ipc: IpcConnection, event: ComponentUpdateEvent): Promise<void> {
    const policy = this.settings?.componentUpdates
    if (event.kind !== 'pre' || !policy?.deferWhileAlarmsUnsent) return
    const count = this.deferrals.get(event.deploymentId) ?? 0
    if (count >= policy.maxDeferrals || !(await this.alarmsUnsent())) return
    this.deferrals.set(event.deploymentId, count + 1)
    this.log(
      `deferring deployment ${event.deploymentId}: alarms unsent (${count + 1}/${policy.maxDeferrals})`,
    )
    await deferComponentUpdate(
      ipc,
      event.deploymentId,
      policy.recheckAfterMs,
      'alarms unsent',
    ).catch((err) => this.log(`defer: ${(err as Error).message}`))
  }

  status(): RunnerStatus {
    const stats = this.client?.stats()
    const lastError = stats?.lastError
    return {
      thingName: this.thingName,
      region: this.nucleus.region,
      state: this.state,
      refusedLocalTopics: [...this.refusedLocal],
      ...this.counts,
      uplink: stats && {
        ...stats,
        lastError: lastError && { code: lastError.code, message: lastError.message },
      },
    } as RunnerStatus
  }

  private restartStatus(): void {
    clearInterval(this.statusTimer)
    const s = this.settings?.status
    if (!s || !s.topic || s.intervalSeconds === 0) return
    this.statusTimer = setInterval(() => {
      const ipc = this.session.current
      if (ipc) {
        publishToTopic(ipc, s.topic, { json: this.status() }).catch((err) =>
          this.log(`status: ${(err as Error).message}`),
        )
      }
    }, s.intervalSeconds * 1000)
    this.statusTimer.unref?.()
  }

  /**
   * Stops within the nucleus's grace period (5 s): waits for in-flight messages a bounded time,
   * disconnects, closes the outbox (everything unsent stays in it for the next start).
   */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    clearInterval(this.statusTimer)
    if (this.swapping) await this.swapping
    const step = GREENGRASS_DEFAULTS.stopStepTimeoutMs
    // Intake first: no new local messages. One request-response after the terminations lets
    // through what the nucleus had already sent before it saw them; those are stored too.
    for (const stream of this.local.values()) stream.close()
    this.local.clear()
    const ipc = this.session.current
    if (ipc)
      await bounded(
        step,
        getConfiguration(ipc).catch(() => undefined),
      )
    await bounded(step, Promise.allSettled([...this.storing]))
    await this.client?.stop({ timeoutMs: step })
    await this.outbox?.close()
    this.session.stop()
    this.firstApplied?.()
  }
}

/** The nucleus's answer about one filter (its access policy, or the filter itself). */
function refusedFilter(err: unknown): err is IpcError {
  return (
    err instanceof IpcError &&
    (err.shape.endsWith('#UnauthorizedError') || err.shape.endsWith('#InvalidArgumentsError'))
  )
}

/** `work`, or nothing after `ms`: every wait in a stop is bounded. */
function bounded(ms: number, work: Promise<unknown>): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise((resolve) => {
    timer = setTimeout(resolve, ms)
  })
  return Promise.race([work, late]).finally(() => clearTimeout(timer))
}

/** Runs the component (what the `uplink-greengrass` bin does, for users who embed it). */
export async function runGreengrassComponent(
  options: GreengrassRunnerOptions,
): Promise<GreengrassRunner> {
  const runner = new GreengrassRunner(options)
  await runner.start()
  return runner
}

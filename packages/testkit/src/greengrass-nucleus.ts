import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EventStreamCodec, type MessageHeaders } from '@smithy/eventstream-codec'
import { fromUtf8, toUtf8 } from '@smithy/util-utf8'

/**
 * A fake Greengrass nucleus: the eventstream RPC server of Greengrass IPC on a unix socket in a
 * temp dir, serving components from an in-memory configuration. It checks the SVCUID of the
 * connect message, serves the operations @uplink/greengrass uses, records what components tell
 * it (state updates, deferrals, validity reports) and routes local pub/sub between connected
 * components. Its framing is written here on the Smithy codec and shares no code with the
 * @uplink/greengrass client, so the official aws-iot-device-sdk-v2 client can prove it speaks
 * the protocol (packages/greengrass/test/nucleus-official-client.test.ts).
 */

const T = { Message: 0, Error: 1, Ping: 2, PingResponse: 3, Connect: 4, ConnectAck: 5 } as const
const F = { ConnectionAccepted: 1, TerminateStream: 2 } as const
const codec = new EventStreamCodec(toUtf8, fromUtf8)
const NS = 'aws.greengrass#'

type Json = Record<string, unknown>

export interface NucleusComponent {
  name: string
  /** The environment the nucleus gives this component's processes. */
  env: Record<string, string>
}

export interface StateUpdate {
  component: string
  state: string
}

export interface Deferral {
  component: string
  deploymentId: string
  recheckAfterMs: number
  message: string
}

export interface ValidityReport {
  component: string
  deploymentId: string
  status: string
  message: string | undefined
}

export interface TestNucleus {
  socketPath: string
  /**
   * Registers a component with its configuration; returns its environment. `svcuid` keeps a
   * token across a restarted nucleus (the real one keeps it across its own restarts).
   */
  addComponent(name: string, configuration?: Json, options?: { svcuid?: string }): NucleusComponent
  configuration(name: string): Json
  readonly states: StateUpdate[]
  readonly deferrals: Deferral[]
  readonly validityReports: ValidityReport[]
  /** Every local publish routed, in order. */
  readonly published: Array<{ component: string; topic: string; payload: Buffer }>
  /** Every message handed to a subscriber, in order: what that component was given. */
  readonly delivered: Array<{ component: string; topic: string; payload: Buffer }>
  /**
   * A deployment that changes `name`'s configuration: components subscribed to validation are
   * asked first (waiting up to `validationTimeoutMs` for their reports); if none rejects, the
   * configuration is replaced and the update events are sent. Resolves with the outcome.
   */
  deployConfiguration(
    name: string,
    configuration: Json,
    options?: { validationTimeoutMs?: number },
  ): Promise<{ deploymentId: string; accepted: boolean; message: string | undefined }>
  /**
   * Tells components subscribed to component updates that a deployment is about to run; with a
   * `deploymentId` it asks again about that one, as the nucleus does once a deferral runs out.
   */
  announceComponentUpdate(options?: { isGgcRestarting?: boolean; deploymentId?: string }): string
  /** Publishes on local pub/sub as if from another component. */
  publish(topic: string, payload: Buffer | Json): void
  /** From now on answers these operations with a ServiceError (a nucleus still starting). */
  refuse(operations: string[]): void
  /** Drops every IPC connection at once (as a nucleus restart does). */
  dropConnections(): void
  connectionCount(component?: string): number
  stop(): Promise<void>
}

interface Stream {
  id: number
  operation: string
  request: Json
}

interface Conn {
  socket: net.Socket
  component: string | undefined
  streams: Map<number, Stream>
}

export function topicFilterMatches(filter: string, topic: string): boolean {
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}

/** Greengrass access-control resources: `*` matches any run of characters, MQTT wildcards literally or as filters. */
function resourceMatches(resource: string, topic: string): boolean {
  if (resource === '*' || resource === topic) return true
  if (resource.includes('*')) {
    const re = new RegExp(`^${resource.split('*').map(escape).join('.*')}$`)
    return re.test(topic)
  }
  return topicFilterMatches(resource, topic)
}

function escape(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')
}

function authorized(configuration: Json, operation: string, topic: string): boolean {
  const acl = (configuration.accessControl as Json | undefined)?.['aws.greengrass.ipc.pubsub'] as
    | Record<string, { operations?: string[]; resources?: string[] }>
    | undefined
  if (!acl) return false
  return Object.values(acl).some(
    (p) =>
      (p.operations ?? []).some((o) => o === '*' || o === operation) &&
      (p.resources ?? []).some((r) => resourceMatches(r, topic)),
  )
}

function at(value: unknown, keyPath: string[]): unknown {
  let v = value
  for (const k of keyPath) {
    if (!v || typeof v !== 'object' || !(k in v)) return undefined
    v = (v as Json)[k]
  }
  return v
}

export async function startGreengrassNucleus(
  /**
   * `socketPath`: where to listen (a restart at the same path); default a new temp dir.
   * `unsupported`: operations answered with a ServiceError, as Greengrass nucleus lite answers
   * the IPC operations it does not implement.
   */
  options: {
    nucleusConfiguration?: Json
    thingName?: string
    socketPath?: string
    unsupported?: string[]
  } = {},
): Promise<TestNucleus> {
  const dir = options.socketPath ? undefined : mkdtempSync(join(tmpdir(), 'uplink-nucleus-'))
  const socketPath = options.socketPath ?? join(dir as string, 'ipc.socket')
  const tokens = new Map<string, string>()
  const configs = new Map<string, Json>([
    [
      'aws.greengrass.Nucleus',
      {
        iotDataEndpoint: 'example-ats.iot.us-east-1.amazonaws.com',
        awsRegion: 'us-east-1',
        ...options.nucleusConfiguration,
      },
    ],
  ])
  const conns = new Set<Conn>()
  const states: StateUpdate[] = []
  const deferrals: Deferral[] = []
  const validityReports: ValidityReport[] = []
  const published: TestNucleus['published'] = []
  const delivered: TestNucleus['delivered'] = []
  const refused = new Set(options.unsupported)
  const reportWaiters = new Map<string, (r: ValidityReport) => void>()
  let deployments = 0

  const send = (
    conn: Conn,
    streamId: number,
    type: number,
    flags: number,
    headers: Record<string, string>,
    payload: unknown,
  ) => {
    const h: MessageHeaders = {
      ':message-type': { type: 'integer', value: type },
      ':message-flags': { type: 'integer', value: flags },
      ':stream-id': { type: 'integer', value: streamId },
    }
    for (const [k, v] of Object.entries(headers)) h[k] = { type: 'string', value: v }
    const body = payload === undefined ? new Uint8Array(0) : Buffer.from(JSON.stringify(payload))
    if (!conn.socket.destroyed) conn.socket.write(codec.encode({ headers: h, body }))
  }
  const shaped = (shape: string) => ({
    ':content-type': 'application/json',
    'service-model-type': NS + shape,
  })
  const respond = (conn: Conn, s: Stream, payload: Json, streaming: boolean) =>
    send(
      conn,
      s.id,
      T.Message,
      streaming ? 0 : F.TerminateStream,
      shaped(`${s.operation}Response`),
      payload,
    )
  const fail = (conn: Conn, s: Stream, shape: string, message: string) => {
    conn.streams.delete(s.id)
    send(conn, s.id, T.Error, F.TerminateStream, shaped(shape), { message })
  }
  const event = (conn: Conn, s: Stream, shape: string, payload: Json) =>
    send(conn, s.id, T.Message, 0, shaped(shape), payload)
  const subscribers = (operation: string, component?: string) => {
    const out: Array<{ conn: Conn; stream: Stream }> = []
    for (const conn of conns) {
      if (component !== undefined && conn.component !== component) continue
      for (const stream of conn.streams.values())
        if (stream.operation === operation) out.push({ conn, stream })
    }
    return out
  }

  const route = (from: string, topic: string, publishMessage: Json) => {
    const binary = publishMessage.binaryMessage as { message?: string } | undefined
    const json = publishMessage.jsonMessage as { message?: unknown } | undefined
    const payload = binary
      ? Buffer.from(binary.message ?? '', 'base64')
      : Buffer.from(JSON.stringify(json?.message ?? null))
    published.push({ component: from, topic, payload })
    for (const { conn, stream } of subscribers('SubscribeToTopic')) {
      if (!topicFilterMatches(String(stream.request.topic), topic)) continue
      if (stream.request.receiveMode === 'RECEIVE_MESSAGES_FROM_OTHERS' && conn.component === from)
        continue
      const context = { topic }
      if (!conn.socket.destroyed)
        delivered.push({ component: conn.component as string, topic, payload })
      event(
        conn,
        stream,
        'SubscriptionResponseMessage',
        binary
          ? { binaryMessage: { message: binary.message ?? '', context } }
          : { jsonMessage: { message: json?.message ?? null, context } },
      )
    }
  }

  const handle = (conn: Conn, s: Stream) => {
    const component = conn.component as string
    const r = s.request
    if (refused.has(s.operation)) {
      return fail(conn, s, 'ServiceError', `${s.operation} is not supported`)
    }
    switch (s.operation) {
      case 'GetConfiguration': {
        const name = typeof r.componentName === 'string' ? r.componentName : component
        const config = configs.get(name)
        const keyPath = Array.isArray(r.keyPath) ? (r.keyPath as string[]) : []
        const value = config && at(config, keyPath)
        if (value === undefined)
          return fail(conn, s, 'ResourceNotFoundError', `no ${name} ${keyPath.join('.')}`)
        // A leaf comes back as { <last key>: value }, as the nucleus answers.
        const last = keyPath[keyPath.length - 1]
        const wrapped =
          (value !== null && typeof value === 'object') || last === undefined
            ? value
            : { [last]: value }
        return respond(conn, s, { componentName: name, value: wrapped }, false)
      }
      case 'UpdateState':
        states.push({ component, state: String(r.state) })
        return respond(conn, s, {}, false)
      case 'DeferComponentUpdate':
        deferrals.push({
          component,
          deploymentId: String(r.deploymentId),
          recheckAfterMs: Number(r.recheckAfterMs ?? 0),
          message: String(r.message ?? ''),
        })
        return respond(conn, s, {}, false)
      case 'SendConfigurationValidityReport': {
        const report = r.configurationValidityReport as Json | undefined
        const entry: ValidityReport = {
          component,
          deploymentId: String(report?.deploymentId),
          status: String(report?.status),
          message: typeof report?.message === 'string' ? report.message : undefined,
        }
        validityReports.push(entry)
        reportWaiters.get(`${component} ${entry.deploymentId}`)?.(entry)
        return respond(conn, s, {}, false)
      }
      case 'PublishToTopic': {
        const topic = String(r.topic ?? '')
        if (!authorized(configs.get(component) ?? {}, `${NS}PublishToTopic`, topic))
          return fail(conn, s, 'UnauthorizedError', `${component} may not publish to ${topic}`)
        respond(conn, s, {}, false)
        return route(component, topic, (r.publishMessage as Json) ?? {})
      }
      case 'SubscribeToTopic': {
        const topic = String(r.topic ?? '')
        if (!authorized(configs.get(component) ?? {}, `${NS}SubscribeToTopic`, topic))
          return fail(conn, s, 'UnauthorizedError', `${component} may not subscribe to ${topic}`)
        return respond(conn, s, {}, true)
      }
      case 'SubscribeToConfigurationUpdate':
      case 'SubscribeToValidateConfigurationUpdates':
      case 'SubscribeToComponentUpdates':
        return respond(conn, s, {}, true)
      default:
        return fail(conn, s, 'ServiceError', `the fake nucleus does not serve ${s.operation}`)
    }
  }

  const onMessage = (conn: Conn, headers: MessageHeaders, body: Uint8Array) => {
    const int = (name: string) => {
      const h = headers[name]
      return h && (h.type === 'integer' || h.type === 'short' || h.type === 'byte') ? h.value : 0
    }
    const str = (name: string) => {
      const h = headers[name]
      return h?.type === 'string' ? h.value : undefined
    }
    const type = int(':message-type')
    const flags = int(':message-flags')
    const streamId = int(':stream-id')
    const json = (): Json =>
      body.length === 0 ? {} : JSON.parse(Buffer.from(body).toString('utf8'))
    if (conn.component === undefined) {
      // The first message must be Connect with the protocol version and a known SVCUID.
      let token: unknown
      try {
        token = json().authToken
      } catch {}
      const component = typeof token === 'string' ? tokens.get(token) : undefined
      if (type !== T.Connect || str(':version') !== '0.1.0' || !component) {
        send(conn, 0, T.ConnectAck, 0, {}, undefined)
        conn.socket.end()
        return
      }
      conn.component = component
      send(conn, 0, T.ConnectAck, F.ConnectionAccepted, {}, undefined)
      return
    }
    if (type === T.Ping) return send(conn, 0, T.PingResponse, 0, {}, undefined)
    if (type !== T.Message || streamId === 0) return
    const existing = conn.streams.get(streamId)
    if (existing) {
      if (flags & F.TerminateStream) conn.streams.delete(streamId)
      return
    }
    const operation = str('operation') ?? ''
    if (!operation.startsWith(NS)) {
      send(conn, streamId, T.Error, F.TerminateStream, shaped('ServiceError'), {
        message: 'no operation header',
      })
      return
    }
    const s: Stream = { id: streamId, operation: operation.slice(NS.length), request: {} }
    try {
      s.request = json()
    } catch {
      return fail(conn, s, 'InvalidArgumentsError', 'the payload is not JSON')
    }
    conn.streams.set(streamId, s)
    handle(conn, s)
  }

  const server = net.createServer((socket) => {
    const conn: Conn = { socket, component: undefined, streams: new Map() }
    conns.add(conn)
    let buffer = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      try {
        while (buffer.length >= 12) {
          const total = buffer.readUInt32BE(0)
          if (total < 16 || total > 16 * 2 ** 20) throw new Error('bad prelude')
          if (buffer.length < total) break
          const m = codec.decode(buffer.subarray(0, total))
          buffer = buffer.subarray(total)
          onMessage(conn, m.headers, m.body)
        }
      } catch {
        socket.destroy()
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => conns.delete(conn))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(socketPath, () => resolve())
  })

  return {
    socketPath,
    states,
    deferrals,
    validityReports,
    published,
    delivered,
    addComponent(name, configuration = {}, opts = {}) {
      const svcuid = opts.svcuid ?? randomBytes(16).toString('hex')
      tokens.set(svcuid, name)
      configs.set(name, structuredClone(configuration))
      return {
        name,
        env: {
          AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: socketPath,
          SVCUID: svcuid,
          AWS_IOT_THING_NAME: options.thingName ?? 'test-thing',
          AWS_REGION: String(configs.get('aws.greengrass.Nucleus')?.awsRegion ?? 'us-east-1'),
          GGC_VERSION: '2.14.0',
        },
      }
    },
    configuration: (name) => structuredClone(configs.get(name) ?? {}),
    async deployConfiguration(name, configuration, opts = {}) {
      const deploymentId = `deployment-${++deployments}`
      const validators = subscribers('SubscribeToValidateConfigurationUpdates', name)
      const timeoutMs = opts.validationTimeoutMs ?? 5_000
      const reports = validators.map(
        ({ conn, stream }) =>
          new Promise<ValidityReport | undefined>((resolve) => {
            const key = `${name} ${deploymentId}`
            const timer = setTimeout(() => resolve(undefined), timeoutMs)
            reportWaiters.set(key, (r) => {
              clearTimeout(timer)
              resolve(r)
            })
            event(conn, stream, 'ValidateConfigurationUpdateEvents', {
              validateConfigurationUpdateEvent: { deploymentId, configuration },
            })
          }),
      )
      const results = await Promise.all(reports)
      reportWaiters.delete(`${name} ${deploymentId}`)
      const rejected = results.find((r) => r?.status === 'REJECTED')
      if (rejected) return { deploymentId, accepted: false, message: rejected.message }
      const before = configs.get(name) ?? {}
      configs.set(name, structuredClone(configuration))
      const changed = [...new Set([...Object.keys(before), ...Object.keys(configuration)])].filter(
        (k) => JSON.stringify(before[k]) !== JSON.stringify(configuration[k]),
      )
      for (const { conn, stream } of subscribers('SubscribeToConfigurationUpdate', name)) {
        for (const key of changed) {
          event(conn, stream, 'ConfigurationUpdateEvents', {
            configurationUpdateEvent: { componentName: name, keyPath: [key] },
          })
        }
      }
      return { deploymentId, accepted: true, message: undefined }
    },
    announceComponentUpdate(opts = {}) {
      const deploymentId = opts.deploymentId ?? `deployment-${++deployments}`
      for (const { conn, stream } of subscribers('SubscribeToComponentUpdates')) {
        event(conn, stream, 'ComponentUpdatePolicyEvents', {
          preUpdateEvent: { deploymentId, isGgcRestarting: opts.isGgcRestarting ?? false },
        })
      }
      return deploymentId
    },
    publish(topic, payload) {
      route(
        'test',
        topic,
        Buffer.isBuffer(payload)
          ? { binaryMessage: { message: payload.toString('base64') } }
          : { jsonMessage: { message: payload } },
      )
    },
    refuse(operations) {
      refused.clear()
      for (const o of operations) refused.add(o)
    },
    dropConnections() {
      for (const conn of conns) conn.socket.destroy()
    },
    connectionCount: (component) =>
      [...conns].filter(
        (c) => c.component !== undefined && (component === undefined || c.component === component),
      ).length,
    async stop() {
      for (const conn of conns) conn.socket.destroy()
      await new Promise((r) => server.close(r))
      if (dir) rmSync(dir, { recursive: true, force: true })
    },
  }
}

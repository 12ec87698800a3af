import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { inspect } from 'node:util'
import {
  createTestPki,
  startBroker,
  startGreengrassNucleus,
  type TestBroker,
  type TestNucleus,
  waitFor,
} from '@uplink/testkit'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { IpcConnection } from '../src/ipc-connection.js'
import { type LocalMessage, publishToTopic, subscribeToTopic } from '../src/ipc-operations.js'
import { GreengrassRunner, type RunnerStatus } from '../src/runner.js'

const NAME = 'com.example.Uplink'
const policy = (resources: string[]) => ({
  'aws.greengrass.ipc.pubsub': {
    [`${NAME}:pubsub:1`]: {
      operations: ['aws.greengrass#PublishToTopic', 'aws.greengrass#SubscribeToTopic'],
      resources,
    },
  },
})
const ACL = policy(['uplink/*'])

let nucleus: TestNucleus
let broker: TestBroker
let work: string
const cleanup: Array<() => unknown> = []

beforeEach(async () => {
  nucleus = await startGreengrassNucleus({ thingName: 'gw-1' })
  broker = await startBroker()
  work = mkdtempSync(join(tmpdir(), 'uplink-gg-'))
})
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
  await broker.stop()
  await nucleus.stop()
  rmSync(work, { recursive: true, force: true })
})

function base(extra: Record<string, unknown> = {}) {
  return {
    accessControl: ACL,
    endpoints: [broker.url],
    keepalive: 5,
    backoff: { initialMs: 50, maxMs: 200 },
    status: { topic: 'uplink/status', intervalSeconds: 1 },
    ...extra,
  }
}

async function run(config: Record<string, unknown>) {
  const { env } = nucleus.addComponent(NAME, config)
  const log: string[] = []
  const runner = new GreengrassRunner({ workPath: work, env, log: (l) => log.push(l) })
  cleanup.push(() => runner.stop())
  await runner.start()
  return { runner, log, env }
}

async function otherComponent() {
  const { env } = nucleus.addComponent('com.example.Sensor', { accessControl: ACL })
  const ipc = await IpcConnection.connect({
    socketPath: nucleus.socketPath,
    authToken: env.SVCUID as string,
  })
  cleanup.push(() => ipc.close())
  return ipc
}

const at = (topic: string) => broker.publishes.filter((p) => p.topic === topic)

describe('the Greengrass runner, in process, against the fake nucleus and an aedes broker', () => {
  it('forwards local topics to the cloud by rule, with the default client id and templates', async () => {
    const { runner } = await run(base())
    expect(nucleus.states).toEqual([{ component: NAME, state: 'RUNNING' }])
    const sensor = await otherComponent()
    await publishToTopic(sensor, 'uplink/out/temp/1', Buffer.from('21.5'))
    await publishToTopic(sensor, 'uplink/alarm/door', { json: { open: true } })
    await waitFor(() => broker.publishes.length === 2, 'two forwarded messages')
    expect(broker.publishes.map((p) => [p.clientId, p.topic, p.payload.toString()])).toEqual([
      ['gw-1-uplink', 'dt/gw-1/temp/1', '21.5'],
      ['gw-1-uplink', 'dt/gw-1/alarm/door', '{"open":true}'],
    ])
    expect(runner.counts.forwarded).toBe(2)
  })

  it('shows neither the SVCUID nor a private key to util.inspect', async () => {
    const key = join(work, 'key.pem')
    const cert = join(work, 'cert.pem')
    writeFileSync(key, '-----BEGIN PRIVATE KEY-----\nSECRETKEYMATERIAL\n')
    writeFileSync(cert, '-----BEGIN CERTIFICATE-----\nCERT\n')
    const { env } = nucleus.addComponent(NAME, base({ certificatePath: cert, privateKeyPath: key }))
    const runner = new GreengrassRunner({ workPath: work, env, log: () => {} })
    cleanup.push(() => runner.stop())
    await runner.start()
    const shown = inspect(runner, { depth: 10 })
    expect(shown).toContain('GreengrassRunner')
    expect(shown).not.toContain(env.SVCUID as string)
    expect(shown).not.toContain('SECRETKEYMATERIAL')
  })

  it('shows no private key to util.inspect of the configuration it runs (which holds the key read from its file)', async () => {
    const issued = createTestPki().issue(['gw-1'], { usage: 'client' })
    const key = join(work, 'key.pem')
    const cert = join(work, 'cert.pem')
    writeFileSync(key, issued.key)
    writeFileSync(cert, issued.cert)
    const { runner } = await run(base({ certificatePath: cert, privateKeyPath: key }))
    expect(nucleus.states).toEqual([{ component: NAME, state: 'RUNNING' }])
    const keyLine = String(issued.key).split('\n')[1] as string
    expect(JSON.stringify(runner.configuration?.uplink)).toContain(keyLine)
    const shown = inspect(runner.configuration, { depth: 10 })
    expect(shown).toContain('forward')
    expect(shown).not.toContain(keyLine)
  })

  it('logs one readable line per state change and failover, never an object', async () => {
    const { log } = await run(base())
    await waitFor(() => log.some((l) => l.endsWith('-> connected')), 'the connected line')
    expect(log).toContain('uplink connecting -> connected')
    expect(log.join('\n')).not.toContain('[object')
  })

  it('republishes a cloud command on the local topic its rule names', async () => {
    await run(base())
    const sensor = await otherComponent()
    const got: LocalMessage[] = []
    await subscribeToTopic(sensor, 'uplink/in/#', (m) => got.push(m))
    await waitFor(
      () => broker.subscriptions('gw-1-uplink').includes('cmd/gw-1/#'),
      'the subscription',
    )
    await broker.publish('cmd/gw-1/reboot', 'now', { qos: 1 })
    await waitFor(() => got.length === 1, 'the command, locally')
    expect(got[0]).toEqual({ topic: 'uplink/in/reboot', payload: Buffer.from('now') })
  })

  it('reports ERRORED on an invalid first configuration, and RUNNING once a valid one arrives', async () => {
    const { log } = await run(base({ keepalive: -1 }))
    expect(nucleus.states).toEqual([{ component: NAME, state: 'ERRORED' }])
    expect(log.join('\n')).toContain('INVALID_OPTIONS: keepalive')
    const deployed = await nucleus.deployConfiguration(NAME, base())
    expect(deployed.accepted).toBe(true)
    await waitFor(() => nucleus.states.length === 2, 'RUNNING')
    expect(nucleus.states[1]?.state).toBe('RUNNING')
  })

  it('refuses an invalid deployment through the validity report and keeps the running configuration', async () => {
    const { runner } = await run(base())
    const before = runner.uplink
    const refused = await nucleus.deployConfiguration(
      NAME,
      base({ forward: [{ localTopic: 'a/#/b', cloudTopic: 'x' }] }),
    )
    expect(refused.accepted).toBe(false)
    expect(refused.message).toMatch(/^INVALID_OPTIONS: forward\[0\]/)
    const unknown = await nucleus.deployConfiguration(NAME, base({ endpiont: 'typo' }))
    expect(unknown.message).toBe(
      'INVALID_OPTIONS: endpiont is not an option; did you mean endpoints?',
    )
    expect(runner.uplink).toBe(before)
    expect(runner.counts.reconfigurations).toBe(0)
  })

  it('moves to new endpoints on a configuration update, keeping the outbox: nothing lost, nothing sent twice', async () => {
    const second = await startBroker({ host: '127.0.0.2' })
    cleanup.push(() => second.stop())
    const { runner } = await run(base())
    const sensor = await otherComponent()
    for (let i = 0; i < 20; i++)
      await publishToTopic(sensor, 'uplink/out/n', Buffer.from(String(i)))
    await waitFor(() => broker.publishes.length === 20, 'twenty delivered')
    await waitFor(() => runner.uplink?.stats().outbox.messages === 0, 'twenty acknowledged')
    await broker.kill()
    for (let i = 20; i < 40; i++)
      await publishToTopic(sensor, 'uplink/out/n', Buffer.from(String(i)))
    const accepted = await nucleus.deployConfiguration(NAME, base({ endpoints: [second.url] }))
    expect(accepted.accepted).toBe(true)
    await waitFor(
      () => runner.counts.reconfigurations === 1 && runner.counts.forwarded === 40,
      'applied',
    )
    for (let i = 40; i < 50; i++)
      await publishToTopic(sensor, 'uplink/out/n', Buffer.from(String(i)))
    const both = () =>
      [...broker.publishes, ...second.publishes].filter((p) => p.topic === 'dt/gw-1/n')
    await waitFor(
      () => new Set(both().map((p) => p.payload.toString())).size === 50,
      'all fifty',
      10_000,
    )
    const atSecond = second.publishes.map((p) => Number(p.payload.toString()))
    expect(atSecond).toEqual([...atSecond].sort((a, b) => a - b))
    expect(atSecond.at(-1)).toBe(49)
    expect(both()).toHaveLength(50)
    await waitFor(() => runner.uplink?.stats().outbox.messages === 0, 'the outbox empty')
  })

  it('applies a change of forwarding rules without a new client or connection', async () => {
    const { runner } = await run(base())
    const client = runner.uplink
    const changed = base({
      forward: [{ localTopic: 'uplink/out/#', cloudTopic: 'v2/{thingName}/{suffix}' }],
    })
    expect((await nucleus.deployConfiguration(NAME, changed)).accepted).toBe(true)
    const sensor = await otherComponent()
    await waitFor(
      () => runner.configuration?.forward[0]?.cloudTopic === 'v2/gw-1/{suffix}',
      'applied',
    )
    await publishToTopic(sensor, 'uplink/out/t', Buffer.from('x'))
    await waitFor(() => broker.publishes.length === 1, 'the message')
    expect(broker.publishes[0]?.topic).toBe('v2/gw-1/t')
    expect(runner.uplink).toBe(client)
    expect(runner.counts.reconfigurations).toBe(0)
    expect(broker.connectCount).toBe(1)
  })

  it('runs on a nucleus without validation, configuration or component-update IPC (as nucleus lite may be)', async () => {
    await nucleus.stop()
    nucleus = await startGreengrassNucleus({
      thingName: 'gw-1',
      unsupported: [
        'SubscribeToValidateConfigurationUpdates',
        'SubscribeToConfigurationUpdate',
        'SubscribeToComponentUpdates',
      ],
    })
    const { log } = await run(base())
    expect(nucleus.states).toEqual([{ component: NAME, state: 'RUNNING' }])
    expect(log.filter((l) => l.includes('not available'))).toHaveLength(3)
    const sensor = await otherComponent()
    await publishToTopic(sensor, 'uplink/out/lite', Buffer.from('x'))
    await waitFor(() => broker.publishes.length === 1, 'forwarded')
  })

  it('defers a component update while alarms are unsent, a bounded number of times', async () => {
    await broker.kill()
    const { runner } = await run(
      base({ componentUpdates: { maxDeferrals: 2, recheckAfterMs: 5_000 } }),
    )
    const sensor = await otherComponent()
    const first = nucleus.announceComponentUpdate()
    await publishToTopic(sensor, 'uplink/alarm/fire', Buffer.from('!'))
    await waitFor(() => runner.counts.forwarded === 1, 'the alarm stored')
    const second = nucleus.announceComponentUpdate()
    await waitFor(() => nucleus.deferrals.length === 1, 'the first deferral')
    nucleus.announceComponentUpdate({ deploymentId: second })
    await waitFor(() => nucleus.deferrals.length === 2, 'the second deferral')
    nucleus.announceComponentUpdate({ deploymentId: second })
    // A third ask about the same deployment gets no deferral: the bound lets the update go.
    const sensorSeen = nucleus.published.length
    await publishToTopic(sensor, 'uplink/out/marker', Buffer.from('m'))
    await waitFor(
      () => nucleus.published.length > sensorSeen && runner.counts.forwarded === 2,
      'a marker after it',
    )
    expect(nucleus.deferrals.map((d) => d.deploymentId)).toEqual([second, second])
    expect(nucleus.deferrals[0]).toMatchObject({ recheckAfterMs: 5_000, message: 'alarms unsent' })
    expect(first).not.toBe(second)
  })

  it('retries the set-up while the nucleus cannot answer GetConfiguration yet', async () => {
    nucleus.refuse(['GetConfiguration'])
    const { env } = nucleus.addComponent(NAME, base())
    const log: string[] = []
    const runner = new GreengrassRunner({ workPath: work, env, log: (l) => log.push(l) })
    cleanup.push(() => runner.stop())
    const started = runner.start()
    await waitFor(
      () => log.filter((l) => l.includes('GetConfiguration')).length >= 2,
      'two refusals',
    )
    expect(nucleus.states).toEqual([])
    nucleus.refuse([])
    await started
    expect(nucleus.states).toEqual([{ component: NAME, state: 'RUNNING' }])
  })

  it('builds a new IPC connection when the nucleus drops it, and forwards again', async () => {
    const { runner } = await run(base())
    nucleus.dropConnections()
    await waitFor(() => nucleus.connectionCount(NAME) === 1, 'the runner reconnected')
    const sensor = await otherComponent()
    // Its local subscriptions are made again on the new connection.
    await waitFor(() => {
      publishToTopic(sensor, 'uplink/out/again', Buffer.from('x')).catch(() => {})
      return runner.counts.forwarded > 0
    }, 'a forward after the reconnect')
    // Forwarded means stored in the outbox; the broker has it a moment later.
    await waitFor(() => broker.publishes.some((p) => p.topic === 'dt/gw-1/again'), 'at the broker')
  })

  it('publishes its status (the client stats) on the local status topic', async () => {
    await run(base())
    const sensor = await otherComponent()
    const got: LocalMessage[] = []
    await subscribeToTopic(sensor, 'uplink/status', (m) => got.push(m))
    await waitFor(() => got.length > 0, 'a status message', 5_000)
    const status = JSON.parse(got[0]?.payload.toString() ?? '{}')
    expect(status).toMatchObject({
      thingName: 'gw-1',
      state: 'RUNNING',
      uplink: { state: 'connected' },
    })
  })
})

/**
 * The runner's local subscriptions (what it forwards) when things around them go wrong: a new IPC
 * connection while the stored configuration is one it refused, and an access policy that
 * refuses some or all of the forwarding filters.
 */
describe('the runner’s local subscriptions', () => {
  it('subscribes again on a new IPC connection while the stored configuration is one it refused, and keeps forwarding', async () => {
    // Without deployment validation (nucleus lite) a bad configuration is stored; the runner
    // refuses it and keeps the running one, and a reconnect reads the bad one again.
    await nucleus.stop()
    nucleus = await startGreengrassNucleus({
      thingName: 'gw-1',
      unsupported: ['SubscribeToValidateConfigurationUpdates'],
    })
    const { runner, log } = await run(base())
    await nucleus.deployConfiguration(NAME, base({ endpoints: ['https://nope.example.com'] }))
    await waitFor(() => log.some((l) => l.includes('the running one stays')), 'the refusal')
    nucleus.dropConnections()
    await waitFor(() => nucleus.connectionCount(NAME) === 1, 'the runner reconnected')
    await waitFor(
      () => log.filter((l) => l.includes('the running one stays')).length === 2,
      'the configuration read again on the new connection',
    )
    const local = await otherComponent()
    await publishToTopic(local, 'uplink/out/after', Buffer.from('x'))
    await waitFor(() => at('dt/gw-1/after').length === 1, 'forwarded after the reconnect')
    expect(runner.counts.forwarded).toBe(1)
    // The status timer publishes on the new connection too.
    const status: LocalMessage[] = []
    await subscribeToTopic(local, 'uplink/status', (m) => status.push(m))
    await waitFor(() => status.length > 0, 'a status message after the reconnect', 5_000)
    expect(nucleus.states).toEqual([{ component: NAME, state: 'RUNNING' }])
  })

  it('forwards the filters the access policy allows, stays RUNNING and names the refused one in its log and status', async () => {
    const forward = [
      { localTopic: 'uplink/out/#', cloudTopic: 'dt/{thingName}/{suffix}' },
      { localTopic: 'sensors/#', cloudTopic: 'dt/{thingName}/sensors/{suffix}' },
    ]
    const { runner, log, env } = await run(base({ forward }))
    expect(nucleus.states).toEqual([{ component: NAME, state: 'RUNNING' }])
    expect(log).toContain(
      "local topic sensors/# is not forwarded: the nucleus refused SubscribeToTopic (UnauthorizedError); the component's accessControl must allow it",
    )
    expect(log.join('\n')).not.toContain(env.SVCUID as string)
    expect(runner.status().refusedLocalTopics).toEqual(['sensors/#'])
    const local = await otherComponent()
    const status: LocalMessage[] = []
    await subscribeToTopic(local, 'uplink/status', (m) => status.push(m))
    await publishToTopic(local, 'uplink/out/t', Buffer.from('ok'))
    await waitFor(() => at('dt/gw-1/t').length === 1, 'the allowed filter forwarded')
    await waitFor(() => status.length > 0, 'a status message', 5_000)
    const shown = JSON.parse(status[0]?.payload.toString() ?? '{}') as RunnerStatus
    expect(shown.refusedLocalTopics).toEqual(['sensors/#'])
  })

  it('reports ERRORED when the access policy refuses every forwarding filter, and RUNNING once a deployment allows them', async () => {
    const { runner } = await run(base({ accessControl: policy(['uplink/in/*', 'uplink/status']) }))
    expect(nucleus.states).toEqual([{ component: NAME, state: 'ERRORED' }])
    expect(runner.status().refusedLocalTopics).toEqual(['uplink/out/#', 'uplink/alarm/#'])
    const fixed = await nucleus.deployConfiguration(NAME, base())
    expect(fixed.accepted).toBe(true)
    await waitFor(() => nucleus.states.length === 2, 'RUNNING')
    expect(nucleus.states[1]?.state).toBe('RUNNING')
    expect(runner.status().refusedLocalTopics).toEqual([])
    const local = await otherComponent()
    await publishToTopic(local, 'uplink/alarm/door', Buffer.from('open'))
    await waitFor(() => at('dt/gw-1/alarm/door').length === 1, 'forwarded once allowed')
  })
})

import { startGreengrassNucleus, type TestNucleus, waitFor } from '@uplink/testkit'
import { eventstream_rpc, greengrasscoreipc } from 'aws-iot-device-sdk-v2'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

/**
 * The fake nucleus against the official client (aws-iot-device-sdk-v2 on the AWS CRT's native
 * eventstream RPC): if these pass, the fake speaks the real protocol, not our client's idea of
 * it. Every operation the component uses is called here.
 */

const ACL = {
  'aws.greengrass.ipc.pubsub': {
    'test:pubsub': {
      policyDescription: 'local topics',
      operations: ['aws.greengrass#PublishToTopic', 'aws.greengrass#SubscribeToTopic'],
      resources: ['local/*'],
    },
  },
}

let nucleus: TestNucleus
let clients: greengrasscoreipc.Client[] = []

beforeEach(async () => {
  nucleus = await startGreengrassNucleus({ nucleusConfiguration: { awsRegion: 'eu-west-1' } })
})
afterEach(async () => {
  for (const c of clients) await c.close()
  clients = []
  await nucleus.stop()
})

async function officialClient(env: Record<string, string>): Promise<greengrasscoreipc.Client> {
  // createDefaultClientConfig reads the two variables the nucleus sets, at call time.
  const saved = { ...process.env }
  Object.assign(process.env, env)
  try {
    const client = greengrasscoreipc.createClient()
    clients.push(client)
    await client.connect()
    return client
  } finally {
    process.env = saved
  }
}

describe('the fake nucleus, called by the official aws-iot-device-sdk-v2 IPC client', () => {
  it('accepts the connect message carrying the SVCUID and refuses an unknown one', async () => {
    const { env } = nucleus.addComponent('com.example.A', {})
    await officialClient(env)
    expect(nucleus.connectionCount('com.example.A')).toBe(1)
    await expect(officialClient({ ...env, SVCUID: 'not-a-token' })).rejects.toBeInstanceOf(
      eventstream_rpc.RpcError,
    )
  })

  it('serves GetConfiguration for the component, a key path, and the nucleus leaf values', async () => {
    const { env } = nucleus.addComponent('com.example.A', { a: { b: 2 }, list: [1, 2] })
    const client = await officialClient(env)
    const all = await client.getConfiguration({ keyPath: [] })
    expect(all.value).toEqual({ a: { b: 2 }, list: [1, 2] })
    expect((await client.getConfiguration({ keyPath: ['a'] })).value).toEqual({ b: 2 })
    const region = await client.getConfiguration({
      componentName: 'aws.greengrass.Nucleus',
      keyPath: ['awsRegion'],
    })
    expect(region).toEqual({
      componentName: 'aws.greengrass.Nucleus',
      value: { awsRegion: 'eu-west-1' },
    })
    const missing = client.getConfiguration({ keyPath: ['nope'] })
    await expect(missing).rejects.toMatchObject({
      serviceError: { message: expect.stringContaining('nope') },
    })
  })

  it('records UpdateState and DeferComponentUpdate, and streams component updates', async () => {
    const { env } = nucleus.addComponent('com.example.A', {})
    const client = await officialClient(env)
    await client.updateState({ state: greengrasscoreipc.model.ReportedLifecycleState.RUNNING })
    expect(nucleus.states).toEqual([{ component: 'com.example.A', state: 'RUNNING' }])
    const events: greengrasscoreipc.model.ComponentUpdatePolicyEvents[] = []
    const op = client.subscribeToComponentUpdates({})
    op.on('message', (e) => events.push(e))
    await op.activate()
    const deploymentId = nucleus.announceComponentUpdate()
    await waitFor(() => events.length === 1, 'the pre-update event')
    expect(events[0]?.preUpdateEvent?.deploymentId).toBe(deploymentId)
    await client.deferComponentUpdate({
      deploymentId,
      recheckAfterMs: 5_000,
      message: 'alarms unsent',
    })
    expect(nucleus.deferrals).toEqual([
      { component: 'com.example.A', deploymentId, recheckAfterMs: 5_000, message: 'alarms unsent' },
    ])
    await op.close()
  })

  it('asks validators, takes their validity report, and streams configuration updates', async () => {
    const { env } = nucleus.addComponent('com.example.A', { x: 1 })
    const client = await officialClient(env)
    const validations: greengrasscoreipc.model.ValidateConfigurationUpdateEvents[] = []
    const validate = client.subscribeToValidateConfigurationUpdates({})
    validate.on('message', (e) => {
      validations.push(e)
      const ev = e.validateConfigurationUpdateEvent
      void client.sendConfigurationValidityReport({
        configurationValidityReport: {
          deploymentId: ev?.deploymentId ?? '',
          status:
            ev?.configuration?.x === 'bad'
              ? greengrasscoreipc.model.ConfigurationValidityStatus.REJECTED
              : greengrasscoreipc.model.ConfigurationValidityStatus.ACCEPTED,
          message: 'x must be a number',
        },
      })
    })
    await validate.activate()
    const updates: greengrasscoreipc.model.ConfigurationUpdateEvents[] = []
    const updatesOp = client.subscribeToConfigurationUpdate({ keyPath: [] })
    updatesOp.on('message', (e) => updates.push(e))
    await updatesOp.activate()

    const refused = await nucleus.deployConfiguration('com.example.A', { x: 'bad' })
    expect(refused).toMatchObject({ accepted: false, message: 'x must be a number' })
    expect(nucleus.configuration('com.example.A')).toEqual({ x: 1 })
    const ok = await nucleus.deployConfiguration('com.example.A', { x: 2 })
    expect(ok.accepted).toBe(true)
    await waitFor(() => updates.length === 1, 'the configuration update event')
    expect(updates[0]?.configurationUpdateEvent).toEqual({
      componentName: 'com.example.A',
      keyPath: ['x'],
    })
    expect(validations.map((v) => v.validateConfigurationUpdateEvent?.configuration)).toEqual([
      { x: 'bad' },
      { x: 2 },
    ])
    expect(nucleus.validityReports.map((r) => r.status)).toEqual(['REJECTED', 'ACCEPTED'])
    await validate.close()
    await updatesOp.close()
  })

  it('routes binary and JSON messages between two components, honouring accessControl', async () => {
    const a = await officialClient(
      nucleus.addComponent('com.example.A', { accessControl: ACL }).env,
    )
    const b = await officialClient(
      nucleus.addComponent('com.example.B', { accessControl: ACL }).env,
    )
    const got: greengrasscoreipc.model.SubscriptionResponseMessage[] = []
    const sub = b.subscribeToTopic({ topic: 'local/+/data' })
    sub.on('message', (m) => got.push(m))
    await sub.activate()
    await a.publishToTopic({
      topic: 'local/a/data',
      publishMessage: { binaryMessage: { message: Buffer.from([0, 1, 255]) } },
    })
    await a.publishToTopic({
      topic: 'local/a/data',
      publishMessage: { jsonMessage: { message: { t: 21.5 } } },
    })
    await a.publishToTopic({
      topic: 'local/a/other',
      publishMessage: { jsonMessage: { message: 1 } },
    })
    await waitFor(() => got.length === 2, 'two routed messages')
    expect(Buffer.from(got[0]?.binaryMessage?.message as ArrayBuffer)).toEqual(
      Buffer.from([0, 1, 255]),
    )
    expect(got[0]?.binaryMessage?.context?.topic).toBe('local/a/data')
    expect(got[1]?.jsonMessage?.message).toEqual({ t: 21.5 })
    const denied = a.publishToTopic({
      topic: 'elsewhere/x',
      publishMessage: { jsonMessage: { message: 1 } },
    })
    await expect(denied).rejects.toMatchObject({ serviceError: expect.anything() })
    await sub.close()
  })

  it('drops every connection on request, and the client sees its disconnection', async () => {
    const client = await officialClient(nucleus.addComponent('com.example.A', {}).env)
    let disconnected = false
    client.on('disconnection', () => {
      disconnected = true
    })
    nucleus.dropConnections()
    await waitFor(() => disconnected, 'the disconnection event')
    expect(nucleus.connectionCount()).toBe(0)
  })
})

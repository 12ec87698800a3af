import { isUplinkError } from '@uplink/client'
import { startGreengrassNucleus, type TestNucleus, waitFor } from '@uplink/testkit'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { IpcConnection, IpcError } from '../src/ipc-connection.js'
import {
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
} from '../src/ipc-operations.js'

const ACL = {
  'aws.greengrass.ipc.pubsub': {
    p: { operations: ['*'], resources: ['local/*'] },
  },
}

let nucleus: TestNucleus
const open: IpcConnection[] = []

beforeEach(async () => {
  nucleus = await startGreengrassNucleus()
})
afterEach(async () => {
  for (const c of open.splice(0)) c.close()
  await nucleus.stop()
})

async function connect(env: Record<string, string>): Promise<IpcConnection> {
  const c = await IpcConnection.connect({
    socketPath: env.AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT as string,
    authToken: env.SVCUID as string,
  })
  open.push(c)
  return c
}

describe('our Greengrass IPC client against the fake nucleus', () => {
  it('connects with the SVCUID; a wrong one is CONNECT_REFUSED and never appears in the error', async () => {
    const { env } = nucleus.addComponent('com.example.Uplink', { a: 1 })
    await connect(env)
    const err = await connect({ ...env, SVCUID: 'secret-wrong-token' }).catch((e) => e)
    expect(isUplinkError(err, 'CONNECT_REFUSED')).toBe(true)
    expect(String(err.message)).not.toContain('secret-wrong-token')
  })

  it('a missing socket is CONNECT_FAILED', async () => {
    const err = await IpcConnection.connect({
      socketPath: `${nucleus.socketPath}.nope`,
      authToken: 'x',
    }).catch((e) => e)
    expect(isUplinkError(err, 'CONNECT_FAILED')).toBe(true)
  })

  it('reads its own configuration, a nucleus leaf, and gets a modelled error for a missing key', async () => {
    const ipc = await connect(nucleus.addComponent('com.example.Uplink', { a: { b: 1 } }).env)
    expect(await getConfiguration(ipc)).toEqual({ a: { b: 1 } })
    expect(await getConfiguration(ipc, ['iotDataEndpoint'], 'aws.greengrass.Nucleus')).toBe(
      'example-ats.iot.us-east-1.amazonaws.com',
    )
    const err = await getConfiguration(ipc, ['missing']).catch((e: IpcError) => e)
    expect(err).toBeInstanceOf(IpcError)
    expect((err as IpcError).shape).toBe('aws.greengrass#ResourceNotFoundError')
  })

  it('validates, reports, and hears the configuration update that follows', async () => {
    const ipc = await connect(nucleus.addComponent('com.example.Uplink', { v: 1 }).env)
    const keyPaths: string[][] = []
    await subscribeToValidateConfigurationUpdates(ipc, (e) => {
      void sendConfigurationValidityReport(
        ipc,
        e.deploymentId,
        e.configuration.v === 0 ? 'REJECTED' : 'ACCEPTED',
        'INVALID_OPTIONS: v must be positive',
      )
    })
    await subscribeToConfigurationUpdate(ipc, (k) => keyPaths.push(k))
    expect(await nucleus.deployConfiguration('com.example.Uplink', { v: 0 })).toMatchObject({
      accepted: false,
      message: 'INVALID_OPTIONS: v must be positive',
    })
    expect((await nucleus.deployConfiguration('com.example.Uplink', { v: 2 })).accepted).toBe(true)
    await waitFor(() => keyPaths.length === 1, 'the update event')
    expect(keyPaths).toEqual([['v']])
    expect(await getConfiguration(ipc)).toEqual({ v: 2 })
  })

  it('reports state, hears a component update and defers it', async () => {
    const ipc = await connect(nucleus.addComponent('com.example.Uplink', {}).env)
    await updateState(ipc, 'RUNNING')
    const seen: string[] = []
    await subscribeToComponentUpdates(ipc, (e) => {
      seen.push(e.deploymentId)
      if (e.kind === 'pre') void deferComponentUpdate(ipc, e.deploymentId, 10_000, 'alarms unsent')
    })
    const id = nucleus.announceComponentUpdate()
    await waitFor(() => nucleus.deferrals.length === 1, 'the deferral')
    expect(nucleus.states).toEqual([{ component: 'com.example.Uplink', state: 'RUNNING' }])
    expect(nucleus.deferrals[0]).toMatchObject({ deploymentId: id, recheckAfterMs: 10_000 })
  })

  it('publishes binary and JSON, receives others but not its own, and a stream closes cleanly', async () => {
    const a = await connect(nucleus.addComponent('com.example.A', { accessControl: ACL }).env)
    const b = await connect(nucleus.addComponent('com.example.B', { accessControl: ACL }).env)
    const atA: LocalMessage[] = []
    const atB: LocalMessage[] = []
    await subscribeToTopic(a, 'local/#', (m) => atA.push(m))
    const sub = await subscribeToTopic(b, 'local/#', (m) => atB.push(m))
    await publishToTopic(a, 'local/x', Buffer.from('bin'))
    await publishToTopic(a, 'local/y', { json: { ok: true } })
    await waitFor(() => atB.length === 2, 'two messages at B')
    expect(atB.map((m) => [m.topic, m.payload.toString()])).toEqual([
      ['local/x', 'bin'],
      ['local/y', '{"ok":true}'],
    ])
    expect(atA).toEqual([])
    // A publish racing the close: whatever the nucleus handed B before it saw the termination
    // reaches B's handler (one round trip after the close lets it through).
    const racing = publishToTopic(a, 'local/racing', Buffer.from('racing'))
    await new Promise((r) => setImmediate(r))
    sub.close()
    await racing
    await getConfiguration(b)
    const handedToB = nucleus.delivered.filter((d) => d.component === 'com.example.B')
    expect(atB.map((m) => m.topic)).toEqual(handedToB.map((d) => d.topic))
    const before = atB.length
    await publishToTopic(a, 'local/z', Buffer.from('after'))
    await publishToTopic(b, 'local/w', Buffer.from('from b'))
    await waitFor(() => atA.length === 1, 'B to A')
    expect(atB).toHaveLength(before)
    const denied = await publishToTopic(a, 'cloud/x', Buffer.from('x')).catch((e) => e)
    expect(denied.shape).toBe('aws.greengrass#UnauthorizedError')
  })

  it('a dropped connection fails pending streams and emits close once', async () => {
    const ipc = await connect(nucleus.addComponent('com.example.Uplink', {}).env)
    const ended: Array<Error | undefined> = []
    await subscribeToConfigurationUpdate(
      ipc,
      () => {},
      (e) => ended.push(e),
    )
    let closes = 0
    ipc.on('close', () => closes++)
    nucleus.dropConnections()
    await waitFor(() => closes === 1, 'close')
    expect(ended).toHaveLength(1)
    expect(isUplinkError(ended[0], 'CONNECTION_LOST')).toBe(true)
    expect(isUplinkError(await getConfiguration(ipc).catch((e) => e), 'CONNECTION_LOST')).toBe(true)
  })
})

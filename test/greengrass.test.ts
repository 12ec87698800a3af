import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { accessControl } from '@uplink/greengrass'
import {
  createTestPki,
  runScript,
  type ScriptProcess,
  startDnsServer,
  startGreengrassNucleus,
  startMosquitto,
  type TestDnsServer,
  type TestMosquitto,
  type TestNucleus,
  waitFor,
} from '@uplink/testkit'
import { greengrasscoreipc } from 'aws-iot-device-sdk-v2'
import mqtt from 'mqtt'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

/**
 * The component end to end: the runner as a child process with the environment the nucleus
 * gives a component, the fake nucleus, a second component on the official aws-iot-device-sdk-v2
 * IPC client, and two Mosquitto brokers with TLS and client certificates as two regions behind
 * one DNS name (the testkit DNS server).
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BIN = fileURLToPath(new URL('../packages/greengrass/src/bin.ts', import.meta.url))
const NAME = 'dev.uplink.Uplink'
const SENSOR = 'com.example.Sensor'
const HOST = 'iot.uplink.test'
const HOST_B = 'iot-b.uplink.test'

const SENSOR_ACL = {
  'aws.greengrass.ipc.pubsub': {
    'com.example.Sensor:pubsub:1': {
      operations: ['aws.greengrass#PublishToTopic', 'aws.greengrass#SubscribeToTopic'],
      resources: ['uplink/*'],
    },
  },
}

interface Region {
  broker: TestMosquitto
  /** Payloads of dt/# in arrival order, seen by a cloud-side subscriber. */
  seen: string[]
  cloud: mqtt.MqttClient
}

let dir: string
let files: { ca: string; cert: string; key: string }
/** The brokers' certificate: both regions answer to both names. */
let server: { cert: string; key: string }
let pki: ReturnType<typeof createTestPki>
let dns: TestDnsServer
let nucleus: TestNucleus
let a: Region
let b: Region
let sensor: greengrasscoreipc.Client
const cleanup: Array<() => unknown> = []

function write(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

async function region(host: string, port?: number): Promise<Region> {
  const broker = await startMosquitto({
    host,
    port,
    tls: { ...server, ca: pki.ca, requireCertificate: true },
  })
  const observer = pki.issue(['cloud-observer'], { usage: 'client' })
  const cloud = await mqtt.connectAsync({
    host,
    port: broker.port,
    protocol: 'mqtts',
    servername: HOST,
    ca: pki.ca,
    cert: observer.cert,
    key: observer.key,
    reconnectPeriod: 0,
  })
  cloud.on('error', () => {})
  const seen: string[] = []
  cloud.on('message', (_t, payload) => seen.push(payload.toString()))
  await cloud.subscribeAsync('dt/#', { qos: 1 })
  return { broker, seen, cloud }
}

function configuration(extra: Record<string, unknown> = {}) {
  return {
    accessControl: accessControl(NAME),
    endpoints: [`mqtts://${HOST}:${a.broker.port}`],
    certificatePath: files.cert,
    privateKeyPath: files.key,
    keepalive: 2,
    connectTimeoutMs: 2_000,
    backoff: { initialMs: 100, maxMs: 400 },
    dns: { servers: [dns.server], systemFallback: false, timeoutMs: 500 },
    status: { topic: 'uplink/status', intervalSeconds: 1 },
    ...extra,
  }
}

let env: Record<string, string>

let lastRunner: ScriptProcess | undefined
function startRunner(): ScriptProcess {
  const child = runScript(BIN, ['--work', join(dir, 'work')], {
    cwd: ROOT,
    // GG_ROOT_CA_PATH: the default CA for every endpoint, as the nucleus sets it.
    env: { ...process.env, ...env, GG_ROOT_CA_PATH: files.ca },
  })
  lastRunner = child
  cleanup.push(async () => {
    if (child.exitCode === null) child.kill('SIGKILL')
    await child.closed
  })
  return child
}

async function running(times: number): Promise<void> {
  await waitFor(
    () =>
      nucleus.states.filter((s) => s.component === NAME && s.state === 'RUNNING').length >= times,
    'the runner RUNNING',
    15_000,
  ).catch((err) => {
    throw new Error(`${err.message}; its log:\n${lastRunner?.lines.join('\n')}`)
  })
}

async function officialClient(componentEnv: Record<string, string>) {
  const saved = { ...process.env }
  Object.assign(process.env, componentEnv)
  try {
    const client = greengrasscoreipc.createClient()
    await client.connect()
    cleanup.push(() => client.close())
    return client
  } finally {
    process.env = saved
  }
}

const send = (i: number | string) =>
  sensor.publishToTopic({
    topic: 'uplink/out/seq',
    publishMessage: { binaryMessage: { message: Buffer.from(String(i)) } },
  })

/** Payloads in the order a broker first saw them (at least once may repeat one). */
const firstSeen = (list: string[]) => [...new Set(list)]
const range = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => String(from + i))

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'uplink-gg-e2e-'))
  pki = createTestPki()
  server = pki.issue([HOST, HOST_B])
  const client = pki.issue(['gw-1'], { usage: 'client' })
  files = {
    ca: write('ca.pem', pki.ca),
    cert: write('gw.pem', client.cert),
    key: write('gw.key', client.key),
  }
  dns = await startDnsServer()
  dns.set(HOST, ['127.0.0.1'], 1)
  dns.set(HOST_B, ['127.0.0.2'], 1)
  a = await region('127.0.0.1')
  b = await region('127.0.0.2', a.broker.port)
  nucleus = await startGreengrassNucleus({ thingName: 'gw-1' })
  env = nucleus.addComponent(NAME, configuration()).env
  sensor = await officialClient(nucleus.addComponent(SENSOR, { accessControl: SENSOR_ACL }).env)
})

afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
  for (const r of [a, b]) {
    r.cloud.end(true)
    // A crash is quicker than a clean stop; stop() then removes its directory (kill() keeps it,
    // for a restart), which every run of this file had left in /tmp.
    await r.broker.kill()
    await r.broker.stop()
  }
  await nucleus.stop()
  await dns.stop()
  rmSync(dir, { recursive: true, force: true })
})

describe('@uplink/greengrass as a component, end to end', () => {
  it('forwards over mutual TLS; when the primary dies and DNS flips, the rest arrives at the secondary in order', async () => {
    startRunner()
    await running(1)
    for (let i = 0; i < 20; i++) await send(i)
    await waitFor(() => a.seen.length === 20, 'twenty at the primary', 10_000)
    expect(a.seen).toEqual(range(0, 20))
    await a.broker.kill()
    dns.set(HOST, ['127.0.0.2'], 1)
    for (let i = 20; i < 60; i++) await send(i)
    await waitFor(
      () => range(20, 60).every((s) => b.seen.includes(s)),
      'the rest at the secondary',
      15_000,
    )
    // At least once: a message whose PUBACK died with the primary may come again, first.
    expect(firstSeen(b.seen).filter((s) => Number(s) >= 20)).toEqual(range(20, 60))
  })

  it('stops on SIGTERM within 5 s with the outbox intact; a restart sends everything stored', async () => {
    await a.broker.kill()
    const first = startRunner()
    await running(1)
    const status: Array<{ uplink?: { outbox?: { messages?: number } } }> = []
    const watch = sensor.subscribeToTopic({ topic: 'uplink/status' })
    // The status comes as JSON: the client's stats().
    watch.on('message', (m) => status.push(m.jsonMessage?.message as (typeof status)[number]))
    await watch.activate()
    for (let i = 0; i < 30; i++) await send(i)
    await waitFor(() => status.at(-1)?.uplink?.outbox?.messages === 30, 'thirty stored', 10_000)
    const t0 = Date.now()
    first.kill('SIGTERM')
    expect(await first.closed).toBe(0)
    expect(Date.now() - t0).toBeLessThan(5_000)
    expect(first.lines).toContain('[uplink] stopped')
    dns.set(HOST, ['127.0.0.2'], 1)
    startRunner()
    await waitFor(() => b.seen.length >= 30, 'thirty at the secondary after the restart', 15_000)
    expect(firstSeen(b.seen)).toEqual(range(0, 30))
    await watch.close()
  })

  it('SIGTERM mid-stream: every message the nucleus handed the runner reaches the cloud after a restart, in order', async () => {
    const first = startRunner()
    await running(1)
    let sending = true
    let n = 0
    const loop = (async () => {
      while (sending && n < 400) {
        await send(n++)
        await new Promise((r) => setTimeout(r, 5))
      }
    })()
    await waitFor(() => a.seen.length >= 20, 'a stream under way', 10_000)
    first.kill('SIGTERM')
    expect(await first.closed).toBe(0)
    sending = false
    await loop
    const handed = nucleus.delivered
      .filter((d) => d.component === NAME && d.topic === 'uplink/out/seq')
      .map((d) => d.payload.toString())
    // Mid-stream: the runner was stopped while messages were still coming.
    expect(handed.length).toBeLessThan(n)
    startRunner()
    await running(2)
    await waitFor(() => handed.every((h) => a.seen.includes(h)), 'all it was handed', 15_000)
    expect(firstSeen(a.seen)).toEqual(handed)
  })

  it('moves to the endpoints of a configuration update; refuses an invalid one and keeps running as it was', async () => {
    startRunner()
    await running(1)
    await send('before')
    await waitFor(() => a.seen.includes('before'), 'a message at the primary', 10_000)
    const moved = await nucleus.deployConfiguration(
      NAME,
      configuration({ endpoints: [`mqtts://${HOST_B}:${b.broker.port}`] }),
    )
    expect(moved.accepted).toBe(true)
    await waitFor(
      () => {
        void send('after').catch(() => {})
        return b.seen.includes('after')
      },
      'a message at the new endpoint',
      10_000,
    )
    const refused = await nucleus.deployConfiguration(
      NAME,
      configuration({ endpoints: ['https://not-mqtt.example.com'] }),
    )
    expect(refused.accepted).toBe(false)
    expect(refused.message).toMatch(
      /^INVALID_OPTIONS: endpoints\[0\] must use mqtt:\/\/ or mqtts:\/\//,
    )
    expect(nucleus.configuration(NAME).endpoints).toEqual([`mqtts://${HOST_B}:${b.broker.port}`])
    await send('still')
    await waitFor(() => b.seen.includes('still'), 'the running configuration kept', 10_000)
    expect(nucleus.states.filter((s) => s.component === NAME).map((s) => s.state)).toEqual([
      'RUNNING',
    ])
  })

  it('republishes a cloud command on the local topic for a subscribed component', async () => {
    startRunner()
    await running(1)
    const got: Array<{ topic: string | undefined; payload: string }> = []
    const sub = sensor.subscribeToTopic({ topic: 'uplink/in/#' })
    sub.on('message', (m) =>
      got.push({
        topic: m.binaryMessage?.context?.topic,
        payload: Buffer.from(m.binaryMessage?.message as ArrayBuffer).toString(),
      }),
    )
    await sub.activate()
    // The runner subscribes once connected; until then a command has no subscriber.
    await waitFor(
      () => {
        if (got.length === 0) a.cloud.publish('cmd/gw-1/reboot', 'now', { qos: 1 })
        return got.length > 0
      },
      'the command, locally',
      10_000,
    )
    expect(got[0]).toEqual({ topic: 'uplink/in/reboot', payload: 'now' })
    await sub.close()
  })
})

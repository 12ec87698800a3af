/**
 * The example gateways, run as they ship: examples/node-gateway on Node and examples/bun-gateway
 * on Bun (the Bun binary of the workspace's `bun` devDependency), each against a testkit broker.
 * Messages must arrive, a command must be acknowledged, SIGTERM must end the process with exit 0
 * within its bound, no log line may carry the password, and the outbox must open intact after.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sqliteOutbox } from '@uplink/store-sqlite'
import { runScript, type ScriptProcess, startBroker, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SECRET = 'pa55-not-in-any-log'
const STOP_TIMEOUT_MS = 2_000

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

const GATEWAYS = [
  { name: 'node-gateway', runtime: process.execPath, driver: 'better-sqlite3' },
  {
    name: 'bun-gateway',
    runtime: join(ROOT, 'node_modules/bun/bin/bun.exe'),
    driver: 'bun:sqlite',
  },
]

/** Starts a gateway against `url`, its outbox in a fresh data directory. */
function spawnGateway(name: string, runtime: string, url: string) {
  const dataDir = mkdtempSync(join(tmpdir(), `uplink-${name}-`))
  cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }))
  const id = `gw-${name}`
  const child: ScriptProcess = runScript(join(ROOT, 'examples', name, 'main.ts'), [], {
    cwd: ROOT,
    runtime,
    env: {
      ...process.env,
      GATEWAY_ID: id,
      UPLINK_ENDPOINTS: url,
      UPLINK_USERNAME: 'gateway',
      UPLINK_PASSWORD: SECRET,
      DATA_DIR: dataDir,
      TELEMETRY_MS: '20',
      // Below the sensor's start (25): the first reading crosses it, so an alarm goes out.
      ALARM_ABOVE: '0',
      STOP_TIMEOUT_MS: String(STOP_TIMEOUT_MS),
    },
  })
  cleanup.push(() => void child.kill('SIGKILL'))
  return { child, id, outboxPath: join(dataDir, 'outbox.db') }
}

/** Signals the gateway; it must exit 0 within its bound (plus the runtime's own exit). */
async function stopWith(child: ScriptProcess, signal: NodeJS.Signals): Promise<void> {
  const signalled = Date.now()
  child.kill(signal)
  expect(await child.closed).toBe(0)
  // Far under systemd's TimeoutStopSec (10 s in the unit file).
  expect(Date.now() - signalled).toBeLessThan(STOP_TIMEOUT_MS + 2_000)
}

/** What the gateway's `stopped` line says it left unsent. */
const unsentAtStop = (child: ScriptProcess) =>
  Number(child.lines.find((l) => l.includes(' stopped '))?.match(/unsent=(\d+)/)?.[1])

/** Opens the outbox the gateway left: it must not be moved aside as corrupt. */
function reopen(path: string) {
  const box = sqliteOutbox({ path })
  cleanup.push(() => box.close())
  expect(box.info().movedAside).toBeUndefined()
  return box
}

describe.each(GATEWAYS)('examples/$name', ({ name, runtime, driver }) => {
  it('publishes telemetry, an alarm and presence, acknowledges a command, stops cleanly on SIGTERM', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const { child, id, outboxPath } = spawnGateway(name, runtime, broker.url)
    const on = (topic: string) => broker.publishes.filter((p) => p.topic === topic)
    // Generous: starting a runtime with a TypeScript loader on a loaded machine takes seconds.
    await waitFor(() => on(`telemetry/${id}`).length >= 5, 'telemetry', 15_000)
    expect(on(`alarms/${id}`).length).toBeGreaterThanOrEqual(1)
    expect(on(`presence/${id}`).map((p) => String(p.payload))).toContain('online')
    await waitFor(
      () => broker.subscriptions(id).includes(`commands/${id}/+`),
      'the command subscription',
    )
    await broker.publish(`commands/${id}/reboot`, '{}', { qos: 1 })
    await waitFor(() => on(`acks/${id}`).length === 1, 'the command acknowledged')
    expect(JSON.parse(String(on(`acks/${id}`)[0]?.payload))).toMatchObject({
      command: 'reboot',
      ok: true,
    })

    await stopWith(child, 'SIGTERM')
    expect(
      on(`presence/${id}`)
        .map((p) => String(p.payload))
        .at(-1),
    ).toBe('offline')
    const events = child.lines.map((line) => line.split(' ')[1])
    expect(events).toEqual(
      expect.arrayContaining(['started', 'connect', 'alarm', 'command', 'stopping', 'stopped']),
    )
    expect(child.lines.find((l) => l.includes(' started '))).toContain(`driver=${driver}`)
    expect(child.lines.join('\n')).not.toContain(SECRET)
    expect(reopen(outboxPath).stats().messages).toBe(unsentAtStop(child))
  }, 40_000)

  it('with its broker gone, SIGINT still stops it within the bound and the unsent messages stay stored', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const { child, id, outboxPath } = spawnGateway(name, runtime, broker.url)
    await waitFor(() => broker.clientIds().includes(id), 'the gateway connected', 15_000)
    await broker.kill()
    await waitFor(() => child.lines.some((l) => l.includes(' disconnect ')), 'the disconnect')
    // The gateway runs on real time: in 300 ms its sensor (every 20 ms) queues about 15
    // readings with no broker to take them.
    await new Promise((r) => setTimeout(r, 300))

    await stopWith(child, 'SIGINT')
    const unsent = unsentAtStop(child)
    expect(unsent).toBeGreaterThan(0)
    expect(child.lines.join('\n')).not.toContain(SECRET)
    // Every message it had not sent is still in the file, for the next start to send.
    expect(reopen(outboxPath).stats().messages).toBe(unsent)
  }, 40_000)
})

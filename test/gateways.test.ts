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

describe.each(GATEWAYS)('examples/$name', ({ name, runtime, driver }) => {
  it('publishes telemetry, an alarm and presence, acknowledges a command, stops cleanly on SIGTERM', async () => {
    const broker = await startBroker()
    cleanup.push(() => broker.stop())
    const dataDir = mkdtempSync(join(tmpdir(), `uplink-${name}-`))
    cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }))
    const id = `gw-${name}`
    const child: ScriptProcess = runScript(join(ROOT, 'examples', name, 'main.ts'), [], {
      cwd: ROOT,
      runtime,
      env: {
        ...process.env,
        GATEWAY_ID: id,
        UPLINK_ENDPOINTS: broker.url,
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

    const signalled = Date.now()
    child.kill('SIGTERM')
    expect(await child.closed).toBe(0)
    // Within the gateway's own bound (plus the runtime's exit), far under systemd's 10 s.
    expect(Date.now() - signalled).toBeLessThan(STOP_TIMEOUT_MS + 2_000)
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

    // The outbox the gateway left opens as it is: not moved aside as corrupt, nothing lost.
    const box = sqliteOutbox({ path: join(dataDir, 'outbox.db') })
    cleanup.push(() => box.close())
    expect(box.info().movedAside).toBeUndefined()
    const left = Number(
      child.lines.find((l) => l.includes(' stopped '))?.match(/unsent=(\d+)/)?.[1],
    )
    expect(box.stats().messages).toBe(left)
  }, 40_000)
})

/**
 * The fleet storm benchmark, small: a few dozen Uplink devices through the benchmark's own code
 * (broker processes, device workers, DNS flip after a crash, exact accounting by sequence), so
 * the benchmark keeps working. It asserts the accounting, never the speed.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULTS, type StormConfig } from '../bench/storm/config.js'
import { runScenario } from '../bench/storm/storm.js'

const DEVICES = 36

const config: StormConfig = {
  ...DEFAULTS,
  devices: DEVICES,
  scenarios: ['crash'],
  clients: ['uplink'],
  rate: 4,
  healthCheckMs: 1_000,
  keepalive: 5,
  backoff: { initialMs: 200, maxMs: 1_000, stableMs: 30_000, spreadMs: 200 },
  warmupMs: 1_000,
  tailMs: 500,
  workers: 2,
  probe: 50,
  seed: 7,
  progress: false,
}

describe('fleet storm benchmark (smoke)', () => {
  it('crash: every device ends on the secondary and no published message is lost', async () => {
    const { record, timeline } = await runScenario('crash', 'uplink', config)

    expect(record.devices).toBe(DEVICES)
    expect(record.devicesOnSecondary).toBe(DEVICES)
    expect(record.recovery.allMs).not.toBeNull()
    // Every device published before and after the failure, and every message whose publish()
    // resolved reached a broker: exact, by sequence number.
    expect(record.messages.published).toBeGreaterThan(DEVICES * 4)
    expect(record.messages.lost).toBe(0)
    expect(record.messages.delivered).toBe(record.messages.published)
    expect(record.undelivered).toEqual({
      unexpectedReceipts: 0,
      undrainedDevices: 0,
      queuedAtEnd: 0,
      drops: 0,
    })
    expect(record.connectAttempts).toBeGreaterThanOrEqual(DEVICES)
    expect(record.acceptRatePerSec).toBeGreaterThan(0)
    // The timeline ends with the whole fleet on the secondary.
    expect(timeline.connectedSecondary.values.at(-1)).toBe(DEVICES)
    expect(timeline.connectedPrimary.values.at(-1)).toBe(0)
  }, 60_000)
})

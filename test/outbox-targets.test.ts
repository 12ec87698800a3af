import { describe, expect, it } from 'vitest'
import { check, driverTargets, targetLines } from '../bench/outbox/targets.js'

const runs = (...perSecond: number[]) =>
  perSecond.map((p) => ({ perSecond: p, cpuUsPerMessage: 1e6 / p }))

describe('bench:outbox targets', () => {
  it('decides on the median of the rounds’ own ratios, not the ratio of the medians', () => {
    // Rounds' ratios 0.5, 0.95, 1.0: median 0.95, met at 0.92; the medians' quotient, 90/100,
    // would miss it.
    const c = check('better-sqlite3', 't', 0.92, runs(50, 95, 90), runs(100, 100, 90))
    expect(c.ratio).toBeCloseTo(0.95)
    expect(c.spread).toEqual([0.5, 1])
    expect(c.met).toBe(true)
    expect(check('better-sqlite3', 't', 0.96, runs(50, 95, 90), runs(100, 100, 90)).met).toBe(false)
  })

  it('gives the CPU-time ratio as the baseline’s CPU per message over Uplink’s', () => {
    const uplink = [{ perSecond: 10, cpuUsPerMessage: 40 }]
    const raw = [{ perSecond: 10, cpuUsPerMessage: 30 }]
    expect(check('node:sqlite', 't', 0.9, uplink, raw).cpuRatio).toBeCloseTo(0.75)
  })

  it('prints each driver’s two targets, met or missed, each against the ceiling run beside it', () => {
    const checks = driverTargets('node:sqlite', {
      full: runs(95),
      fullRaw: runs(100),
      reopened: runs(70),
      reopenedRaw: runs(100),
    })
    const lines = targetLines(checks)
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(
      /^node:sqlite: drain after a restart >= 0\.9 x raw MQTT\.js +0\.70 .*missed$/,
    )
    expect(lines[1]).toMatch(
      /^node:sqlite: enqueue, durability full >= 0\.9 x raw node:sqlite +0\.95 .*met$/,
    )
  })
})

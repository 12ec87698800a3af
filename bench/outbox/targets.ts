/**
 * The issue's targets for the SQLite outbox, checked against one run's rounds: each a ratio of
 * Uplink to its ceiling, measured side by side in every round; the median of the rounds' ratios
 * decides, and their spread is printed beside it so a noisy run reads as one.
 */

/** One round's figure for each side. */
export interface Paired {
  uplink: number[]
  baseline: number[]
}

/** What a target reads of a run. */
export interface Measured {
  perSecond: number
  cpuUsPerMessage: number
}

export interface TargetCheck {
  driver: string
  target: string
  /** The ratio a target asks for at least. */
  atLeast: number
  /** Median of the rounds' ratios. */
  ratio: number
  /** Lowest and highest round's ratio. */
  spread: [number, number]
  /**
   * The same from the process's CPU time per message (the baseline's over Uplink's): less moved
   * by neighbours' load, blind to time spent waiting for the disk.
   */
  cpuRatio: number
  met: boolean
}

/** Uplink's drain after a restart against raw MQTT.js, and durable enqueue against raw SQLite. */
export const TARGETS = { reopenedDrain: 0.9, enqueueFull: 0.9 } as const

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

/** Each round's Uplink figure over the same round's baseline. */
export const roundRatios = ({ uplink, baseline }: Paired): number[] =>
  uplink.map((x, i) => x / (baseline[i] as number))

export function check(
  driver: string,
  target: string,
  atLeast: number,
  uplink: Measured[],
  baseline: Measured[],
): TargetCheck {
  const ratios = roundRatios({
    uplink: uplink.map((r) => r.perSecond),
    baseline: baseline.map((r) => r.perSecond),
  })
  const ratio = median(ratios)
  return {
    driver,
    target,
    atLeast,
    ratio,
    spread: [Math.min(...ratios), Math.max(...ratios)],
    cpuRatio: median(
      roundRatios({
        uplink: baseline.map((r) => r.cpuUsPerMessage),
        baseline: uplink.map((r) => r.cpuUsPerMessage),
      }),
    ),
    met: ratio >= atLeast,
  }
}

/** The two targets of one driver, each against the ceiling run beside it. */
export function driverTargets(
  driver: string,
  rounds: { full: Measured[]; fullRaw: Measured[]; reopened: Measured[]; reopenedRaw: Measured[] },
): TargetCheck[] {
  const { reopenedDrain, enqueueFull } = TARGETS
  return [
    check(
      driver,
      `drain after a restart >= ${reopenedDrain} x raw MQTT.js`,
      reopenedDrain,
      rounds.reopened,
      rounds.reopenedRaw,
    ),
    check(
      driver,
      `enqueue, durability full >= ${enqueueFull} x raw ${driver}`,
      enqueueFull,
      rounds.full,
      rounds.fullRaw,
    ),
  ]
}

/** One line a target: what, the median ratio with the rounds' spread, met or missed. */
export function targetLines(checks: TargetCheck[]): string[] {
  const width = Math.max(...checks.map((c) => `${c.driver}: ${c.target}`.length))
  return checks.map((c) => {
    const what = `${c.driver}: ${c.target}`.padEnd(width)
    const spread = `${c.spread[0].toFixed(2)}-${c.spread[1].toFixed(2)}`
    const cpu = `CPU time ${c.cpuRatio.toFixed(2)}`
    return `${what}  ${c.ratio.toFixed(2)} (rounds ${spread}; ${cpu})  ${c.met ? 'met' : 'missed'}`
  })
}

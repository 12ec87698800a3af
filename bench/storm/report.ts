/** Tables for a person: the runs, the baseline ratios and the issue's targets. */
import { DEVICES_PER_RESOLVER, type StormConfig } from './config.js'
import { fmtS } from './format.js'
import type { StormRecord } from './record.js'

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

export function settingsText(config: StormConfig): string {
  const b = config.backoff
  const lines = [
    `fleet: ${config.devices} devices, ${config.rate} QoS 1 messages/s each (${config.payloadBytes} B), ` +
      `${config.store} outbox`,
    `keepalive ${config.keepalive} s (a blackholed link is noticed within ${fmtS(config.keepalive * 1_500)}); ` +
      `health check flips DNS ${fmtS(config.healthCheckMs)} after a failure; DNS TTL ${config.dnsTtl} s`,
    `Uplink backoff: ${b.initialMs} ms doubling to ${b.maxMs} ms, full jitter, stable after ${b.stableMs} ms, ` +
      `informed (arrival spread ${b.spreadMs === undefined ? 'max(1000 ms, fleet / accept rate)' : `${b.spreadMs} ms`})` +
      (b.maxMs !== 60_000 ? ` (the SDK's default cap is 60000 ms)` : ''),
    `Uplink planned moves: DNS watch at most every max(TTL, ${config.dnsWatchMinMs} ms); concierge every ` +
      `${config.conciergeIntervalMs} ms ±${config.conciergeJitter * 100}%; failover.minStayMs ${config.minStayMs}; ` +
      `dns.family 4, dns.systemFallback off (loopback names only)`,
  ]
  const t = config.target
  if (t)
    // URLs and file names only: the files' contents are never printed.
    lines.push(
      `target mode: primary ${t.primary}, secondary ${t.secondary}` +
        `${t.dnsServer ? ` (DNS via ${t.dnsServer})` : ''}; the failure by ` +
        `${t.failCmd ? `--fail-cmd (bounded at ${t.cmdTimeoutMs} ms)` : `you, at the end of a ${t.countdownS} s countdown`}` +
        `${t.usernameFile || t.passwordFile ? '; login from files' : ''}` +
        `${t.ca || t.cert ? '; TLS files given' : ''}; figures marked * are derived from the devices' side` +
        " (the DNS flip and health check above are your own failover's)",
    )
  if (config.shard.count > 1)
    lines.push(
      `shard ${config.shard.index}/${config.shard.count} of the fleet` +
        `${config.startAt !== undefined ? `, starting at ${new Date(config.startAt).toISOString()}` : ''}` +
        `${config.failAtMs !== undefined ? `, the failure ${config.failAtMs} ms after it` : ''}`,
    )
  if (config.clients.includes('mqttjs'))
    lines.push(
      'baseline: MQTT.js 5 MqttClient, reconnectPeriod 1000 ms, clean session, in-memory offline queue, ' +
        `net.connect lookup through uncached dns.Resolvers (one per ${DEVICES_PER_RESOLVER} devices) on the same DNS server`,
    )
  return lines.join('\n')
}

/** The columns of a run, for the terminal table and the HTML page alike. */
export const RUN_COLUMNS = [
  'scenario',
  'client',
  'on 2nd',
  'p50',
  'p90',
  'p99',
  'all',
  'bound',
  'attempts',
  'peak/s',
  'accept/s',
  'published',
  'delivered',
  'lost',
  'dup',
  'CPU s',
  'dev ms/dev',
  'dev µs/msg',
  'KiB/dev',
]

export function runCells(r: StormRecord): string[] {
  return [
    r.scenario,
    r.client,
    `${r.devicesOnSecondary}/${r.devices}`,
    fmtS(r.recovery.p50Ms),
    fmtS(r.recovery.p90Ms),
    fmtS(r.recovery.p99Ms),
    fmtS(r.recovery.allMs),
    fmtS(r.boundMs),
    String(r.connectAttempts),
    // Target mode: measured from the devices' side (record.derived), marked with *.
    `${r.peakConnectsPerSec}${r.derived ? '*' : ''}`,
    `${r.acceptRatePerSec}${r.derived ? '*' : ''}`,
    String(r.messages.published),
    String(r.messages.delivered),
    String(r.messages.lost),
    String(r.messages.duplicates),
    r.cpuSeconds.toFixed(1),
    // The device workers' CPU alone (brokers and DNS are in `CPU s`), per device and per message.
    r.deviceCpuMsPerDevice.toFixed(2),
    r.deviceCpuUsPerMessage.toFixed(0),
    r.rssPerDeviceKiB.toFixed(1),
  ]
}

export function runsTable(records: StormRecord[]): string {
  const note = records.some((r) => r.derived)
    ? "\n* derived from the devices' side (target mode: the brokers are not ours to see; the record's `derived` says how)"
    : ''
  return table(RUN_COLUMNS, records.map(runCells)) + note
}

function ratio(base: number | null, ours: number | null): string {
  if (base === null && ours === null) return '-'
  if (base === null) return 'baseline never'
  if (ours === null) return 'uplink never'
  if (ours === 0) return base === 0 ? '1.00' : '∞'
  return (base / ours).toFixed(2)
}

/** Baseline against Uplink, per scenario: baseline / Uplink (above 1: Uplink is better). */
export function ratioTable(records: StormRecord[]): string | undefined {
  const rows: string[][] = []
  for (const ours of records.filter((r) => r.client === 'uplink')) {
    const base = records.find((r) => r.client === 'mqttjs' && r.scenario === ours.scenario)
    if (!base) continue
    const add = (
      metric: string,
      u: number | null,
      b: number | null,
      fmt: (v: number | null) => string,
    ) => rows.push([ours.scenario, metric, fmt(u), fmt(b), ratio(b, u)])
    add('recovery all', ours.recovery.allMs, base.recovery.allMs, fmtS)
    add('recovery p99', ours.recovery.p99Ms, base.recovery.p99Ms, fmtS)
    add('connect attempts', ours.connectAttempts, base.connectAttempts, (v) => String(v ?? '-'))
    add('DNS queries/device/min', ours.dns.perDevicePerMin, base.dns.perDevicePerMin, (v) =>
      String(v ?? '-'),
    )
    add('peak connects/s', ours.peakConnectsPerSec, base.peakConnectsPerSec, (v) =>
      String(v ?? '-'),
    )
    add('lost', ours.messages.lost, base.messages.lost, (v) => String(v ?? '-'))
    add('CPU s, every process', ours.cpuSeconds, base.cpuSeconds, (v) => (v ?? 0).toFixed(1))
    add('device CPU ms/device', ours.deviceCpuMsPerDevice, base.deviceCpuMsPerDevice, (v) =>
      (v ?? 0).toFixed(2),
    )
    add('device CPU µs/message', ours.deviceCpuUsPerMessage, base.deviceCpuUsPerMessage, (v) =>
      (v ?? 0).toFixed(0),
    )
    add('KiB/device', ours.rssPerDeviceKiB, base.rssPerDeviceKiB, (v) => (v ?? 0).toFixed(1))
  }
  if (rows.length === 0) return undefined
  return table(['scenario', 'metric', 'uplink', 'mqttjs', 'mqttjs/uplink'], rows)
}

export interface TargetCheck {
  scenario: string
  target: string
  measured: string
  ok: boolean
}

/** The issue's targets, checked against Uplink's runs. */
export function checkTargets(records: StormRecord[]): TargetCheck[] {
  const out: TargetCheck[] = []
  for (const r of records.filter((x) => x.client === 'uplink')) {
    const add = (target: string, measured: string, ok: boolean) =>
      out.push({ scenario: r.scenario, target, measured, ok })
    const all = r.recovery.allMs
    add(
      'every device on the secondary',
      `${r.devicesOnSecondary}/${r.devices}`,
      r.devicesOnSecondary === r.devices,
    )
    add('0 messages lost', `${r.messages.lost} of ${r.messages.published}`, r.messages.lost === 0)
    const within = (what: string) =>
      add(
        `all back within ${what} (${fmtS(r.boundMs)})`,
        fmtS(all),
        all !== null && all <= r.boundMs,
      )
    const base = records.find((x) => x.client === 'mqttjs' && x.scenario === r.scenario)
    if (r.scenario === 'crash') {
      within('health check + DNS TTL + spread + devices/accept rate')
      add(
        `peak connects/s <= accept rate (${r.acceptRatePerSec}/s)`,
        `${r.peakConnectsPerSec}/s`,
        r.peakConnectsPerSec <= r.acceptRatePerSec,
      )
      if (base) baselineTargets(r, base, add)
    }
    if (r.scenario === 'blackhole')
      within('keepalive x 1.5 + health check + DNS TTL + spread + devices/accept rate')
    if (r.scenario === 'dns-flip' || r.scenario === 'concierge-flip')
      within('poll interval + jitter + devices/accept rate')
    // Below some 1 000 devices the per-process constants swamp the per-device memory.
    if (r.store === 'memory' && r.devices >= 1_000)
      add(
        'memory per device < 64 KiB (RSS delta / devices)',
        `${r.rssPerDeviceKiB} KiB (heap ${r.heapPerDeviceKiB} KiB)`,
        r.rssPerDeviceKiB < 64,
      )
    if (r.devices >= 10_000)
      add('10 000 devices: run under 3 minutes', `${r.wallSeconds} s`, r.wallSeconds < 180)
  }
  return out
}

/** Issue 15's targets against the baseline of the same scenario in the same run. */
function baselineTargets(
  r: StormRecord,
  base: StormRecord,
  add: (target: string, measured: string, ok: boolean) => void,
): void {
  add(
    "connect attempts <= 0.5 x the baseline's",
    `${r.connectAttempts} vs ${base.connectAttempts} (${(r.connectAttempts / Math.max(1, base.connectAttempts)).toFixed(2)} x)`,
    r.connectAttempts <= 0.5 * base.connectAttempts,
  )
  const q = r.dns.perDevicePerMin
  const bq = base.dns.perDevicePerMin
  if (q !== null && bq !== null)
    add('DNS queries per device per minute, beside the baseline (reported)', `${q} vs ${bq}`, true)
  const x = (ours: number, theirs: number) => (ours / Math.max(0.01, theirs)).toFixed(2)
  add(
    "memory per device within 25 % of the baseline's",
    `${r.rssPerDeviceKiB} vs ${base.rssPerDeviceKiB} KiB (${x(r.rssPerDeviceKiB, base.rssPerDeviceKiB)} x; heap ${r.heapPerDeviceKiB} vs ${base.heapPerDeviceKiB})`,
    r.rssPerDeviceKiB <= 1.25 * base.rssPerDeviceKiB,
  )
  // Per device, not per message: at a few messages a minute the connects dominate (README).
  add(
    "device workers' CPU per device <= the baseline's",
    `${r.deviceCpuMsPerDevice} vs ${base.deviceCpuMsPerDevice} ms (${x(r.deviceCpuMsPerDevice, base.deviceCpuMsPerDevice)} x)`,
    r.deviceCpuMsPerDevice <= base.deviceCpuMsPerDevice,
  )
}

export function targetsTable(checks: TargetCheck[]): string {
  return table(
    ['scenario', 'target', 'measured', 'met'],
    checks.map((c) => [c.scenario, c.target, c.measured, c.ok ? 'yes' : 'NO']),
  )
}

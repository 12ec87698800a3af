/**
 * A self-contained HTML page: the tables and, per scenario, Uplink and the baseline side by
 * side on the same axes: devices connected to each broker over time, and connect attempts per
 * second (with the secondary's accepted connects and its measured accept rate). Inline SVG only.
 */
import { availableParallelism } from 'node:os'
import { fmtS } from './format.js'
import { RUN_COLUMNS, runCells, type TargetCheck } from './report.js'
import type { StormRun } from './storm.js'
import type { Series } from './timeline.js'

const COLORS = {
  primary: '#2b6cb0',
  secondary: '#dd6b20',
  attempts: '#805ad5',
  accepts: '#2f855a',
  accept: '#718096',
  failure: '#c53030',
  flip: '#4a5568',
}

const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

function niceStep(range: number, target: number): number {
  const raw = range / Math.max(1, target)
  const pow = 10 ** Math.floor(Math.log10(raw || 1))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * pow >= raw) return m * pow
  return 10 * pow
}

interface Line {
  series: Series
  color: string
  label: string
  dashed?: boolean
}

interface ChartSpec {
  title: string
  yLabel: string
  xMin: number
  xMax: number
  yMax: number
  lines: Line[]
  vlines: Array<{ x: number; label: string; color: string }>
  hlines: Array<{ y: number; label: string; color: string }>
}

function chart(spec: ChartSpec): string {
  const W = 620
  const H = 270
  const m = { l: 58, r: 14, t: 46, b: 40 }
  const pw = W - m.l - m.r
  const ph = H - m.t - m.b
  const yMax = spec.yMax > 0 ? spec.yMax : 1
  const xs = (x: number) => m.l + ((x - spec.xMin) / (spec.xMax - spec.xMin || 1)) * pw
  const ys = (y: number) => m.t + ph - (Math.min(y, yMax * 1.05) / (yMax * 1.05)) * ph
  const parts: string[] = []
  parts.push(
    `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="#fff" stroke="#cbd5e0"/>`,
  )
  const yStep = niceStep(yMax, 5)
  for (let y = 0; y <= yMax * 1.05; y += yStep) {
    const py = ys(y).toFixed(1)
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${py}" y2="${py}" stroke="#edf2f7"/>`)
    parts.push(
      `<text x="${m.l - 6}" y="${py}" text-anchor="end" dominant-baseline="middle" class="tick">${yStep < 1 ? y.toFixed(1) : Math.round(y)}</text>`,
    )
  }
  const xStepS = niceStep((spec.xMax - spec.xMin) / 1000, 8)
  const firstTick = Math.ceil(spec.xMin / 1000 / xStepS) * xStepS
  for (let s = firstTick; s * 1000 <= spec.xMax; s += xStepS) {
    const px = xs(s * 1000).toFixed(1)
    parts.push(`<line x1="${px}" x2="${px}" y1="${m.t}" y2="${m.t + ph}" stroke="#edf2f7"/>`)
    parts.push(
      `<text x="${px}" y="${m.t + ph + 14}" text-anchor="middle" class="tick">${Number(s.toFixed(1))}</text>`,
    )
  }
  parts.push(
    `<text x="${m.l + pw / 2}" y="${H - 6}" text-anchor="middle" class="axis">seconds since the failure</text>`,
    `<text x="14" y="${m.t + ph / 2}" text-anchor="middle" class="axis" transform="rotate(-90 14 ${m.t + ph / 2})">${esc(spec.yLabel)}</text>`,
    `<text x="${m.l}" y="18" class="title">${esc(spec.title)}</text>`,
  )
  for (const h of spec.hlines) {
    const py = ys(h.y).toFixed(1)
    parts.push(
      `<line x1="${m.l}" x2="${m.l + pw}" y1="${py}" y2="${py}" stroke="${h.color}" stroke-dasharray="6 4"/>`,
      `<text x="${m.l + pw - 4}" y="${Number(py) - 4}" text-anchor="end" class="note" fill="${h.color}">${esc(h.label)}</text>`,
    )
  }
  spec.vlines.forEach((v, i) => {
    if (v.x < spec.xMin || v.x > spec.xMax) return
    const px = xs(v.x).toFixed(1)
    // Labels step down, so markers close together stay readable.
    parts.push(
      `<line x1="${px}" x2="${px}" y1="${m.t}" y2="${m.t + ph}" stroke="${v.color}" stroke-dasharray="3 3"/>`,
      `<text x="${Number(px) + 3}" y="${m.t + 11 + i * 11}" class="note" fill="${v.color}">${esc(v.label)}</text>`,
    )
  })
  for (const line of spec.lines) {
    const pts: string[] = []
    for (let i = 0; i < line.series.at.length; i++) {
      const x = line.series.at[i] as number
      if (x < spec.xMin || x > spec.xMax) continue
      pts.push(`${xs(x).toFixed(1)},${ys(line.series.values[i] as number).toFixed(1)}`)
    }
    if (pts.length === 0) continue
    parts.push(
      `<polyline fill="none" stroke="${line.color}" stroke-width="2" ${line.dashed ? 'stroke-dasharray="5 3"' : ''} points="${pts.join(' ')}"/>`,
    )
  }
  // Legend: one row between the title and the plot, so it never hides a line.
  let lx = m.l
  for (const line of spec.lines) {
    const y = 34
    parts.push(
      `<line x1="${lx}" x2="${lx + 18}" y1="${y}" y2="${y}" stroke="${line.color}" stroke-width="2" ${line.dashed ? 'stroke-dasharray="5 3"' : ''}/>`,
      `<text x="${lx + 22}" y="${y}" dominant-baseline="middle" class="legend">${esc(line.label)}</text>`,
    )
    lx += 30 + line.label.length * 6.2
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">${parts.join('')}</svg>`
}

function maxOf(values: number[]): number {
  let m = 0
  for (const v of values) if (v > m) m = v
  return m
}

function scenarioSection(runs: StormRun[]): string {
  const first = runs[0]
  if (!first) return ''
  const xMin = Math.min(...runs.map((r) => r.timeline.start))
  const xMax = Math.max(...runs.map((r) => r.timeline.end))
  const devices = first.record.devices
  const rateMax = Math.max(
    ...runs.map((r) =>
      Math.max(
        maxOf(r.timeline.attemptsPerSec.values),
        maxOf(r.timeline.secondaryConnectsPerSec.values),
        maxOf(r.timeline.secondaryAcceptsPerSec.values),
        r.record.acceptRatePerSec,
      ),
    ),
  )
  const cores = availableParallelism()
  const cpuMax = Math.max(
    cores,
    ...runs.map((r) =>
      Math.max(
        maxOf(r.timeline.cpuDevices.values),
        maxOf(r.timeline.cpuSecondary.values),
        maxOf(r.timeline.cpuPrimary.values),
      ),
    ),
  )
  const columns = runs.map((run) => {
    const r = run.record
    const t = run.timeline
    const vlines = [{ x: 0, label: 'failure', color: COLORS.failure }]
    if (t.flipAt !== undefined && t.flipAt > 0)
      vlines.push({ x: t.flipAt, label: 'DNS flip', color: COLORS.flip })
    if (r.recovery.allMs !== null)
      vlines.push({ x: r.recovery.allMs, label: 'all moved', color: COLORS.secondary })
    const name = r.client === 'uplink' ? 'Uplink' : 'MQTT.js baseline'
    const connected = chart({
      title: `${name}: devices connected`,
      yLabel: 'devices',
      xMin,
      xMax,
      yMax: devices,
      lines: [
        { series: t.connectedPrimary, color: COLORS.primary, label: 'on the primary' },
        { series: t.connectedSecondary, color: COLORS.secondary, label: 'on the secondary' },
      ],
      vlines,
      hlines: [],
    })
    const rates = chart({
      title: `${name}: connects per second`,
      yLabel: 'per second',
      xMin,
      xMax,
      yMax: rateMax,
      lines: [
        { series: t.attemptsPerSec, color: COLORS.attempts, label: 'attempts (all devices)' },
        {
          series: t.secondaryAcceptsPerSec,
          color: COLORS.secondary,
          label: 'reaching the secondary',
        },
        {
          series: t.secondaryConnectsPerSec,
          color: COLORS.accepts,
          label: 'sessions at the secondary',
          dashed: true,
        },
      ],
      vlines,
      hlines: [
        {
          y: r.acceptRatePerSec,
          label: `measured accept rate ${r.acceptRatePerSec}/s`,
          color: COLORS.accept,
        },
      ],
    })
    const cpu = chart({
      title: `${name}: CPU in use`,
      yLabel: 'cores',
      xMin,
      xMax,
      yMax: cpuMax,
      lines: [
        { series: t.cpuDevices, color: COLORS.attempts, label: 'device workers' },
        { series: t.cpuSecondary, color: COLORS.secondary, label: 'secondary broker' },
        { series: t.cpuPrimary, color: COLORS.primary, label: 'primary broker' },
      ],
      vlines,
      hlines: [{ y: cores, label: `${cores} cores on this machine`, color: COLORS.accept }],
    })
    const summary =
      `on the secondary ${r.devicesOnSecondary}/${r.devices}; recovery p50 ${fmtS(r.recovery.p50Ms)}, ` +
      `p99 ${fmtS(r.recovery.p99Ms)}, all ${fmtS(r.recovery.allMs)} (bound ${fmtS(r.boundMs)}); ` +
      `${r.connectAttempts} attempts; peak ${r.peakConnectsPerSec} connects/s; ` +
      `lost ${r.messages.lost} of ${r.messages.published}, ${r.messages.duplicates} duplicates; ` +
      `longest a 250 ms tick ran late: device workers ${r.load.workersMaxLagMs} ms, secondary ${r.load.secondaryMaxLagMs} ms; load average at start ${r.machine.loadAverageAtStart}`
    return `<div class="col"><h3>${esc(name)}</h3>${connected}${rates}${cpu}<p class="sum">${esc(summary)}</p></div>`
  })
  return `<section><h2>${esc(first.record.scenario)}</h2><div class="row">${columns.join('')}</div></section>`
}

function htmlTable(headers: string[], rows: string[][]): string {
  const th = headers.map((h) => `<th>${esc(h)}</th>`).join('')
  const trs = rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')
  return `<table><thead><tr>${th}</tr></thead><tbody>${trs}</tbody></table>`
}

export function renderHtml(
  runs: StormRun[],
  texts: { settings: string; checks: TargetCheck[] },
): string {
  const scenarios = [...new Set(runs.map((r) => r.record.scenario))]
  const runsHtml = htmlTable(
    RUN_COLUMNS,
    runs.map((run) => runCells(run.record)),
  )
  const checks = htmlTable(
    ['scenario', 'target', 'measured', 'met'],
    texts.checks.map((c) => [c.scenario, c.target, c.measured, c.ok ? 'yes' : 'NO']),
  )
  const sections = scenarios
    .map((s) => scenarioSection(runs.filter((r) => r.record.scenario === s)))
    .join('')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Uplink fleet reconnect storm</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:20px;color:#1a202c;background:#f7fafc}
h1{font-size:20px;margin:0 0 6px}h2{font-size:17px;margin:18px 0 4px}h3{font-size:14px;margin:4px 0}
pre{background:#edf2f7;padding:8px;white-space:pre-wrap;font-size:12px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #cbd5e0;padding:2px 6px;text-align:right}
td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}
.row{display:flex;gap:16px;flex-wrap:wrap}.col{background:#fff;border:1px solid #e2e8f0;padding:6px}
.sum{font-size:12px;max-width:620px;margin:2px 0}
svg text{font-family:system-ui,sans-serif}.tick{font-size:10px;fill:#4a5568}.axis{font-size:11px;fill:#2d3748}
.title{font-size:13px;font-weight:600;fill:#1a202c}.note{font-size:10px}.legend{font-size:11px;fill:#2d3748}
</style></head><body>
<h1>Uplink fleet reconnect storm: ${Math.max(0, ...runs.map((r) => r.record.devices))} devices</h1>
<pre>${esc(texts.settings)}</pre>
${runsHtml}
${texts.checks.length ? `<h2>Targets (Uplink)</h2>${checks}` : ''}
${sections}
</body></html>
`
}

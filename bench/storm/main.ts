/**
 * pnpm bench:storm — the fleet reconnect-storm benchmark. See `--help` and bench/storm/storm.ts.
 * Prints a table (and the baseline ratios and the targets); `--json FILE` writes one record per
 * run, `--html FILE` a page with the charts.
 *
 * For digging: STORM_CPU_PROF=<dir> writes a V8 CPU profile of every child process, and
 * STORM_DEBUG_TICKS=<file> dumps the raw per-process ticks of the last run.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { HelpRequested, parseArgs, USAGE } from './config.js'
import { renderHtml } from './html.js'
import { checkTargets, ratioTable, runsTable, settingsText, targetsTable } from './report.js'
import { runStorm } from './storm.js'

async function main(): Promise<number> {
  let config: ReturnType<typeof parseArgs>
  try {
    config = parseArgs(process.argv.slice(2).filter((a) => a !== '--'))
  } catch (err) {
    if (err instanceof HelpRequested) {
      console.log(USAGE)
      return 0
    }
    console.error((err as Error).message)
    return 2
  }
  const settings = settingsText(config)
  console.log(settings)
  console.log()
  const started = Date.now()
  const runs = await runStorm(config, { log: (line) => console.log(line) })
  const records = runs.map((r) => r.record)
  console.log()
  console.log(runsTable(records))
  const ratios = ratioTable(records)
  if (ratios) {
    console.log('\nbaseline / Uplink (above 1: Uplink does better)')
    console.log(ratios)
  }
  const checks = checkTargets(records)
  if (checks.length > 0) {
    console.log('\ntargets (Uplink)')
    console.log(targetsTable(checks))
  }
  for (const r of records) {
    const errs = Object.entries(r.errors)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')
    if (errs) console.log(`${r.scenario} / ${r.client} events: ${errs}`)
    if (r.lostExamples)
      console.log(`${r.scenario} / ${r.client} lost e.g. ${JSON.stringify(r.lostExamples)}`)
    const drops = r.machine.udpReceiveDropsDuringStorm
    if (drops)
      console.log(
        `${r.scenario} / ${r.client}: the kernel dropped ${drops} UDP datagrams (DNS) for a full receive buffer during the storm`,
      )
    if (r.undelivered.undrainedDevices || r.undelivered.drops || r.undelivered.unexpectedReceipts)
      console.log(`${r.scenario} / ${r.client} ${JSON.stringify(r.undelivered)}`)
  }
  console.log(`\ntotal ${((Date.now() - started) / 1000).toFixed(1)} s`)
  if (config.json) {
    const file = resolve(config.json)
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(file, `${JSON.stringify(records, null, 2)}\n`)
    console.log(`wrote ${file}`)
  }
  if (config.html) {
    const file = resolve(config.html)
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(file, renderHtml(runs, config, { settings, checks }))
    console.log(`wrote ${file}`)
  }
  return 0
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)

/**
 * pnpm bench:storm — the fleet reconnect-storm benchmark. See `--help` and bench/storm/storm.ts.
 * Prints a table (and the baseline ratios and the targets); `--json FILE` writes one record per
 * run, `--html FILE` a page with the charts. `merge FILES...` combines the records of the shards
 * of one fleet (`--shard I/N`) into one table, JSON and page (merge.ts).
 *
 * For digging: STORM_CPU_PROF=<dir> writes a V8 CPU profile of every child process, and
 * STORM_DEBUG_TICKS=<file> dumps the raw per-process ticks of the last run.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { HelpRequested, parseArgs, USAGE } from './config.js'
import { renderHtml } from './html.js'
import { mergeRecords, type ShardRecord } from './merge.js'
import { checkTargets, ratioTable, runsTable, settingsText, targetsTable } from './report.js'
import { runStorm, type StormRun } from './storm.js'

async function main(): Promise<number> {
  const argv = process.argv.slice(2).filter((a) => a !== '--')
  if (argv[0] === 'merge') return mergeMain(argv.slice(1))
  let config: ReturnType<typeof parseArgs>
  try {
    config = parseArgs(argv)
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
  report(runs, settings, config)
  console.log(`\ntotal ${((Date.now() - started) / 1000).toFixed(1)} s`)
  return 0
}

/** `merge FILES... [--json OUT] [--html OUT]`: the shards' records as one fleet's. */
function mergeMain(argv: string[]): number {
  const files: string[] = []
  const out: { json?: string; html?: string } = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    if (a === '--json' || a === '--html') {
      const v = argv[++i]
      if (!v) return fail(`${a} needs a file`)
      out[a === '--json' ? 'json' : 'html'] = v
    } else if (a.startsWith('--')) return fail(`unknown flag ${a}\n\n${MERGE_USAGE}`)
    else files.push(a)
  }
  if (files.length === 0) return fail(MERGE_USAGE)
  let merged: ReturnType<typeof mergeRecords>
  try {
    merged = mergeRecords(
      files.flatMap((f) => JSON.parse(readFileSync(f, 'utf8')) as ShardRecord[]),
    )
  } catch (err) {
    return fail(`merge: ${(err as Error).message}`)
  }
  const shards = merged[0]?.record.merged.shards ?? 0
  const settings =
    `merged ${files.length} files (${shards} shards per run): messages summed by device id, ` +
    "recovery percentiles from the union of every device's recovery; peak connects/s and the " +
    "accept rate are the sums of the shards' (an upper bound)"
  console.log(settings)
  if (out.html && merged.some((m) => !m.timeline))
    return fail("merge: --html needs every shard's timeline (records written by --json)")
  report(merged as StormRun[], settings, out)
  return 0
}

const MERGE_USAGE = 'pnpm bench:storm merge FILES... [--json OUT] [--html OUT]'

function fail(message: string): number {
  console.error(message)
  return 2
}

/** The tables, the notes on each run, and the files asked for. */
function report(runs: StormRun[], settings: string, out: { json?: string; html?: string }): void {
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
  // Each record with its timeline, so that `merge` can draw the shards' charts as one.
  if (out.json)
    write(out.json, `${JSON.stringify(runs.map((r) => ({ ...r.record, timeline: r.timeline })))}\n`)
  if (out.html) write(out.html, renderHtml(runs, { settings, checks }))
}

function write(path: string, text: string): void {
  const file = resolve(path)
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, text)
  console.log(`wrote ${file}`)
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)

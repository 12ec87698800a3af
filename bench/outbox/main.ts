/**
 * pnpm bench:outbox [--json FILE] [--messages N] [--drain N] [--concurrency N] [--rounds N]
 *                   [--drivers better-sqlite3,node:sqlite]
 *
 * Figures for the SQLite outbox, each beside its ceiling, measured in the same run on the same
 * disk. The script builds the packages first and measures the build, what users import. Each
 * Uplink figure runs right beside a run of its own ceiling, the two taking turns going first
 * round by round; rates are medians of the rounds, ratios medians of each round's ratio, so a
 * neighbour's burst of load on a shared machine lands on both sides. The two targets
 * are printed met or missed, with the rounds' spread and the same ratio in CPU time.
 * Each SQLite driver of this runtime (better-sqlite3 and node:sqlite on Node) is measured beside
 * its own raw ceiling:
 * - enqueue: 200-byte messages into sqliteOutbox with durability full and normal, N publishes
 *   always outstanding so group commit has company, against the same driver used raw, inserting
 *   the same rows into the same table, as many to a transaction as the outbox can commit at once
 *   (the outstanding publishes, at most groupCommit.maxBatch: 2 000), WAL and synchronous FULL;
 * - drain: a filled outbox drained by the Uplink client to a testkit broker against raw MQTT.js
 *   publishing QoS 1 with the same in-flight window to the same kind of broker: the backlog as
 *   one process stored it, the same after a restart (read back from disk), and the client with
 *   its in-memory outbox, to tell the client's share from SQLite's;
 * - read back: the store alone handing out a reopened backlog window by window, better-sqlite3's
 *   whole-page read against its row-by-row one;
 * - bytes on disk per stored message.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createUplink, DEFAULTS, memoryOutbox, type Outbox } from '@uplink/client'
import { DRIVERS, SQLITE_DEFAULTS, type SqliteDriver, sqliteOutbox } from '@uplink/store-sqlite'
import { startBroker } from '@uplink/testkit'
import mqtt from 'mqtt'
import { driverTargets, median, roundRatios, targetLines } from './targets.js'
import { input, keepOutstanding, PAYLOAD } from './workload.js'

const { values } = parseArgs({
  options: {
    json: { type: 'string' },
    messages: { type: 'string', default: '200000' },
    drain: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '5' },
    drivers: {
      type: 'string',
      default: process.versions.bun ? 'bun:sqlite' : 'better-sqlite3,node:sqlite',
    },
  },
})
const BENCH_DRIVERS = values.drivers.split(',') as SqliteDriver[]
for (const d of BENCH_DRIVERS) {
  if (!DRIVERS.includes(d)) throw new Error(`--drivers: ${d} is not one of ${DRIVERS.join(', ')}`)
}
const N = Number(values.messages)
const DRAIN_N = Number(values.drain)
const CONCURRENCY = Number(values.concurrency)
const ROUNDS = Number(values.rounds)
const WINDOW = DEFAULTS.inflightWindow
// The ceiling commits as many rows at a time as the outbox can: no more than are outstanding,
// and no more than its group commit's batch. With 10 000 a transaction (as it once was) the raw
// loop made a fifth of the outbox's fsyncs, which no store that answers each publish once it is
// durable can match with 2 000 publishes outstanding: that measured the window, not the store.
const RAW_TRANSACTION = Math.min(CONCURRENCY, SQLITE_DEFAULTS.groupCommit.maxBatch)
// Every run stops at this, done or not, so a slow disk or a stuck drain cannot hang the bench;
// a run cut short reports the messages it did manage.
const TIME_LIMIT_MS = 60_000

const dir = mkdtempSync(join(tmpdir(), 'uplink-bench-outbox-'))

interface Run {
  messages: number
  seconds: number
  perSecond: number
  /** The process's CPU time (user and system) per message: what preemption by neighbours moves least. */
  cpuUsPerMessage: number
}
/** Where a run started, on the wall clock and in the process's CPU time. */
const startClock = () => ({ at: performance.now(), cpu: process.cpuUsage() })
const run = (messages: number, from: ReturnType<typeof startClock>): Run => {
  const seconds = (performance.now() - from.at) / 1000
  const cpu = process.cpuUsage(from.cpu)
  return {
    messages,
    seconds,
    perSecond: messages / seconds,
    cpuUsPerMessage: (cpu.user + cpu.system) / messages,
  }
}

let fileNo = 0
const freshPath = (name: string) => join(dir, `${name}-${fileNo++}.db`)

function fileBytes(path: string): number {
  let total = 0
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      total += statSync(path + suffix).size
    } catch {}
  }
  return total
}

/** Keeps CONCURRENCY publishes outstanding, as many sensors reporting at once would. */
async function enqueueRun(driver: SqliteDriver, durability: 'full' | 'normal') {
  const path = freshPath(`enqueue-${durability}`)
  const box = sqliteOutbox({ path, driver, durability, maxMessages: N + 1, maxBytes: 2 ** 40 })
  const from = startClock()
  const done = await keepOutstanding(box, N, CONCURRENCY, TIME_LIMIT_MS)
  const result = run(done, from)
  const { transactions } = box.info()
  await box.close()
  // Closed: the WAL is checkpointed into the file and removed, so this is the stored size.
  return { ...result, transactions, bytesPerMessage: fileBytes(path) / done }
}

/** A driver's own API, the little the ceiling needs: statements with run(), and exec(). */
interface RawDb {
  exec(sql: string): void
  prepare(sql: string): { run(...params: unknown[]): unknown }
  close(): void
}
const load = createRequire(import.meta.url)
const RAW_OPEN: Record<SqliteDriver, (path: string) => RawDb> = {
  'better-sqlite3': (path) => new (load('better-sqlite3'))(path),
  'node:sqlite': (path) => new (load('node:sqlite').DatabaseSync)(path),
  'bun:sqlite': (path) => new (load('bun:sqlite').Database)(path),
}

/** The ceiling: the same rows into the same table, straight through the same driver. */
function rawInsertRun(driver: SqliteDriver): Run {
  const db = RAW_OPEN[driver](freshPath('raw'))
  db.exec('PRAGMA locking_mode = EXCLUSIVE')
  db.exec('PRAGMA journal_mode = WAL')
  db.exec('PRAGMA synchronous = FULL')
  db.exec(`CREATE TABLE messages (id INTEGER PRIMARY KEY, priority INTEGER NOT NULL,
    topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,
    enqueued_at INTEGER NOT NULL, expires_at INTEGER, size INTEGER NOT NULL);
    CREATE INDEX messages_alarms ON messages (id) WHERE priority = 0;`)
  const insert = db.prepare('INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
  const batch = (from: number, to: number) => {
    db.exec('BEGIN')
    for (let i = from; i < to; i++) {
      const m = input(i)
      insert.run(i + 1, 1, m.topic, m.payload, 1, 0, Date.now(), null, m.topic.length + PAYLOAD)
    }
    db.exec('COMMIT')
  }
  const from = startClock()
  const t0 = from.at
  let done = 0
  while (done < N && performance.now() - t0 < TIME_LIMIT_MS) {
    const to = Math.min(N, done + RAW_TRANSACTION)
    batch(done, to)
    done = to
  }
  const result = run(done, from)
  db.close()
  return result
}

/**
 * An outbox made by `make` holding DRAIN_N messages; with `restart`, closed and made again from
 * the same options: a restart with a backlog, nothing in memory, every message read back from
 * the file.
 */
async function filled<O, B extends Outbox>(make: (o: O) => B, o: O, restart: boolean): Promise<B> {
  const box = make(o)
  await Promise.all(Array.from({ length: DRAIN_N }, (_, i) => box.enqueue(input(i), Date.now())))
  if (!restart) return box
  await box.close()
  return make(o)
}

/**
 * The store alone reading a backlog back after a restart the way the drain does (a window out,
 * each acknowledged, the next window): better-sqlite3 reads a page in one JSON text and one blob
 * (store-sqlite's page.ts), against the row-by-row read it keeps for an outbox allowed 512 MiB
 * or more (`maxBytes` 2^40 here). The other drivers read row by row either way.
 */
async function readBackRun(driver: SqliteDriver, wholePages: boolean): Promise<Run> {
  const maxBytes = wholePages ? SQLITE_DEFAULTS.maxBytes : 2 ** 40
  const box = await filled(sqliteOutbox, { path: freshPath('read-back'), driver, maxBytes }, true)
  const from = startClock()
  let done = 0
  while (performance.now() - from.at < TIME_LIMIT_MS) {
    const batch = await box.take(WINDOW, Date.now())
    if (batch.length === 0) break
    for (const e of batch) await box.ack(e.id)
    done += batch.length
  }
  const result = run(done, from)
  await box.close()
  return result
}

async function until(check: () => boolean, t0: number): Promise<void> {
  while (!check() && performance.now() - t0 < TIME_LIMIT_MS) {
    await new Promise((r) => setTimeout(r, 2))
  }
}

/**
 * sqlite: the backlog of an outage, stored and drained by one process (what the outbox keeps in
 * memory is not read back); sqlite-reopened: the same after a restart, every row read from disk;
 * memory: the in-memory outbox, which tells the client's own cost apart from SQLite's.
 */
type DrainKind = 'sqlite' | 'sqlite-reopened' | 'memory'

/**
 * A filled outbox drained by the client: timed from start() to the last acknowledgement.
 */
async function uplinkDrain(
  round: number,
  kind: DrainKind,
  driver: SqliteDriver = 'better-sqlite3',
): Promise<Run & { received: number }> {
  const box =
    kind === 'memory'
      ? await filled(memoryOutbox, { maxMessages: DRAIN_N, maxBytes: 2 ** 40 }, false)
      : await filled(sqliteOutbox, { path: freshPath('drain'), driver }, kind === 'sqlite-reopened')
  const broker = await startBroker()
  const uplink = createUplink({
    clientId: `bench-uplink-${kind}-${driver.replace(':', '-')}-${round}`,
    endpoints: [broker.url],
    outbox: box,
    inflightWindow: WINDOW,
  })
  const from = startClock()
  const t0 = from.at
  await uplink.start()
  // The outbox's own count: the client's stats() builds a whole report, too dear to poll.
  await until(() => box.stats().messages === 0, t0)
  const result = run(DRAIN_N - box.stats().messages, from)
  const received = broker.publishes.length
  await uplink.stop()
  await broker.stop()
  return { ...result, received }
}

/**
 * mqtt-packet's switch for its number cache, which Uplink's connections turn off and which is
 * process-wide: the raw runs turn it back on, as MQTT.js has it in a process without Uplink.
 */
const mqttPackets = createRequire(createRequire(import.meta.url).resolve('mqtt'))(
  'mqtt-packet',
) as {
  writeToStream: { cacheNumbers: boolean }
}

/** The ceiling: MQTT.js itself, WINDOW QoS 1 publishes awaiting PUBACK at any time. */
async function rawMqttDrain(round: number): Promise<Run & { received: number }> {
  mqttPackets.writeToStream.cacheNumbers = true
  const broker = await startBroker()
  const from = startClock()
  const t0 = from.at
  const client = await mqtt.connectAsync(broker.url, {
    clientId: `bench-raw-${round}`,
    reconnectPeriod: 0,
  })
  let next = 0
  let acked = 0
  await Promise.all(
    Array.from({ length: WINDOW }, async () => {
      while (next < DRAIN_N && performance.now() - t0 < TIME_LIMIT_MS) {
        const m = input(next++)
        // A view, not a copy: what the client hands MQTT.js too.
        const body = Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength)
        await client.publishAsync(m.topic, body, { qos: 1 })
        acked++
      }
    }),
  )
  const result = run(acked, from)
  const received = broker.publishes.length
  await client.endAsync()
  await broker.stop()
  return { ...result, received }
}

type Drained = Run & { received: number }
/** The sides in a different order each round. */
const rotate = <T>(xs: T[], r: number): T[] => [
  ...xs.slice(r % xs.length),
  ...xs.slice(0, r % xs.length),
]

const fmt = (n: number) => Math.round(n).toLocaleString('en-US')

type Enqueued = Awaited<ReturnType<typeof enqueueRun>>
/** Each Uplink figure's rounds, and its ceiling's, run right beside it. */
interface DriverRounds {
  readBack: Run[]
  readBackByRow: Run[]
  full: Enqueued[]
  fullRaw: Run[]
  normal: Enqueued[]
  normalRaw: Run[]
  drain: Drained[]
  drainRaw: Drained[]
  reopened: Drained[]
  reopenedRaw: Drained[]
}

/**
 * An Uplink side and its ceiling, back to back, the ceiling first in every other round: a ratio
 * of two runs seconds apart is what a neighbour's burst of load on a shared machine moves least.
 */
const pair =
  <A, B>(
    r: number,
    uplink: () => Promise<A> | A,
    ceiling: () => Promise<B> | B,
    into: [A[], B[]],
  ) =>
  async () => {
    const keep = <T>(list: T[], x: T) => {
      if (r >= 0) list.push(x)
    }
    if (r % 2 === 0) keep(into[1], await ceiling())
    keep(into[0], await uplink())
    if (r % 2 !== 0) keep(into[1], await ceiling())
  }

try {
  const perDriver = new Map<SqliteDriver, DriverRounds>(
    BENCH_DRIVERS.map((d) => [
      d,
      {
        readBack: [],
        readBackByRow: [],
        full: [],
        fullRaw: [],
        normal: [],
        normalRaw: [],
        drain: [],
        drainRaw: [],
        reopened: [],
        reopenedRaw: [],
      },
    ]),
  )
  const shared = { drainMemory: [] as Drained[], memoryRaw: [] as Drained[] }
  // Round -1 warms up: the first side to publish through MQTT.js and aedes would otherwise pay
  // for their compilation. Its figures are thrown away.
  for (let r = -1; r < ROUNDS; r++) {
    // Rotate which pair goes first, so none always gets the warmer disk cache or the quieter
    // moment.
    for (const [driver, d] of perDriver) {
      const raw = () => rawInsertRun(driver)
      const enqueuePairs = [
        pair(r, () => enqueueRun(driver, 'full'), raw, [d.full, d.fullRaw]),
        pair(r, () => enqueueRun(driver, 'normal'), raw, [d.normal, d.normalRaw]),
      ]
      if (driver === 'better-sqlite3') {
        const byRow = () => readBackRun(driver, false)
        enqueuePairs.push(
          pair(r, () => readBackRun(driver, true), byRow, [d.readBack, d.readBackByRow]),
        )
      }
      for (const side of rotate(enqueuePairs, r + 1)) await side()
    }
    const raw = () => rawMqttDrain(r)
    const drainPairs = [
      pair(r, () => uplinkDrain(r, 'memory'), raw, [shared.drainMemory, shared.memoryRaw]),
      ...[...perDriver].flatMap(([driver, d]) => [
        pair(r, () => uplinkDrain(r, 'sqlite', driver), raw, [d.drain, d.drainRaw]),
        pair(r, () => uplinkDrain(r, 'sqlite-reopened', driver), raw, [d.reopened, d.reopenedRaw]),
      ]),
    ]
    for (const side of rotate(drainPairs, r + 1)) await side()
    process.stderr.write(r < 0 ? 'warm-up done\n' : `round ${r + 1}/${ROUNDS} done\n`)
  }
  const rate = (runs: Run[]) => median(runs.map((x) => x.perSecond))
  // Each round's two sides ran back to back: their ratio is what load from neighbours disturbs
  // least, so the ratio reported is the median of the rounds' ratios.
  const perSecond = (runs: Run[]) => runs.map((x) => x.perSecond)
  const ratio = (runs: Run[], base: Run[]) =>
    median(roundRatios({ uplink: perSecond(runs), baseline: perSecond(base) }))
  const allRaw = (pick: (d: DriverRounds) => Run[]) => [...perDriver.values()].flatMap(pick)
  // The ceilings, all their runs: each figure's ratio is to its own, run beside it.
  const drainRaw = rate([...shared.memoryRaw, ...allRaw((d) => [...d.drainRaw, ...d.reopenedRaw])])
  /** An Uplink figure: its rate, its own ceiling's beside it, and the rounds' ratios' median. */
  const figure = (runs: Run[], base: Run[]) => ({
    rate: rate(runs),
    base: rate(base),
    ratio: ratio(runs, base),
  })
  const memory = figure(shared.drainMemory, shared.memoryRaw)
  const figures = [...perDriver].map(([driver, d]) => ({
    driver,
    full: figure(d.full, d.fullRaw),
    normal: figure(d.normal, d.normalRaw),
    raw: rate([...d.fullRaw, ...d.normalRaw]),
    drain: figure(d.drain, d.drainRaw),
    reopened: figure(d.reopened, d.reopenedRaw),
    readBack: d.readBack.length > 0 ? figure(d.readBack, d.readBackByRow) : undefined,
    perMessage: median(d.full.map((x) => x.bytesPerMessage)),
    transactions: median(d.full.map((x) => x.transactions)),
    rounds: d,
  }))
  const targets = figures.flatMap((f) => driverTargets(f.driver, f.rounds))
  const lost = [
    ...shared.drainMemory,
    ...[...perDriver.values()].flatMap((d) => [...d.drain, ...d.reopened]),
  ].filter((x) => x.received < x.messages).length

  const rows: Array<[string, string, string, string]> = []
  const row = (name: string, f: ReturnType<typeof figure>, ceiling: string) =>
    rows.push([name, `${fmt(f.rate)} msg/s`, `${fmt(f.base)} msg/s ${ceiling}`, f.ratio.toFixed(2)])
  for (const f of figures) {
    row(`${f.driver}: enqueue, durability full`, f.full, 'raw')
    row(`${f.driver}: enqueue, durability normal`, f.normal, 'raw')
    row(`${f.driver}: drain, QoS 1, window ${WINDOW}`, f.drain, 'MQTT.js')
    row(`${f.driver}:   after a restart (from disk)`, f.reopened, 'MQTT.js')
    if (f.readBack) row(`${f.driver}:   the store alone, pages whole`, f.readBack, 'by row')
    rows.push([
      `${f.driver}: on disk per message (${PAYLOAD} B)`,
      `${f.perMessage.toFixed(0)} B`,
      '',
      '',
    ])
  }
  row('the same client, in-memory outbox', memory, 'MQTT.js')
  const runtimeName = process.versions.bun
    ? `Bun ${process.versions.bun}`
    : `Node ${process.versions.node}`
  console.log(
    `\nSQLite outbox (built packages): ${fmt(N)} enqueues of ${PAYLOAD} B with ${fmt(CONCURRENCY)} outstanding, ${fmt(DRAIN_N)} drained; rates are medians of ${ROUNDS} rounds, ratios medians of the rounds' ratios; ${process.platform} ${process.arch}, ${runtimeName}\n`,
  )
  console.log(
    `${'figure'.padEnd(44)} ${'Uplink'.padStart(16)} ${'baseline'.padStart(24)} ${'ratio'.padStart(6)}`,
  )
  for (const [name, a, b, r] of rows) {
    console.log(`${name.padEnd(44)} ${a.padStart(16)} ${b.padStart(24)} ${r.padStart(6)}`)
  }
  for (const f of figures) {
    console.log(
      `\ngroup commit (${f.driver}): ${fmt(N)} messages in ${fmt(f.transactions)} transactions (full); raw: ${fmt(RAW_TRANSACTION)} rows a transaction`,
    )
  }
  console.log("\ntargets (medians of the rounds' ratios, the rounds' lowest and highest)")
  for (const line of targetLines(targets)) console.log(line)
  if (lost > 0) console.log(`WARNING: ${lost} drain run(s) reached the broker short`)

  if (values.json) {
    const rounded = (runs: Run[]) => runs.map((x) => Math.round(x.perSecond))
    const ratio3 = (x: number) => Number(x.toFixed(3))
    const record = {
      benchmark: 'outbox',
      platform: `${process.platform} ${process.arch}`,
      runtime: runtimeName,
      payloadBytes: PAYLOAD,
      rounds: ROUNDS,
      enqueue: { messages: N, concurrency: CONCURRENCY, rawRowsPerTransaction: RAW_TRANSACTION },
      drain: {
        messages: DRAIN_N,
        window: WINDOW,
        rawMqttJsPerSecond: Math.round(drainRaw),
        memoryOutboxPerSecond: Math.round(memory.rate),
        memoryOutboxRatio: ratio3(memory.ratio),
        runs: {
          memoryOutbox: rounded(shared.drainMemory),
          rawMqttJsBesideMemory: rounded(shared.memoryRaw),
        },
      },
      drivers: Object.fromEntries(
        figures.map((f) => [
          f.driver,
          {
            enqueue: {
              fullPerSecond: Math.round(f.full.rate),
              normalPerSecond: Math.round(f.normal.rate),
              rawPerSecond: Math.round(f.raw),
              ratioFull: ratio3(f.full.ratio),
              ratioNormal: ratio3(f.normal.ratio),
              transactionsFull: f.transactions,
              runs: {
                full: rounded(f.rounds.full),
                rawBesideFull: rounded(f.rounds.fullRaw),
                normal: rounded(f.rounds.normal),
                rawBesideNormal: rounded(f.rounds.normalRaw),
              },
            },
            drain: {
              uplinkPerSecond: Math.round(f.drain.rate),
              ratio: ratio3(f.drain.ratio),
              reopenedPerSecond: Math.round(f.reopened.rate),
              reopenedRatio: ratio3(f.reopened.ratio),
              runs: {
                uplink: rounded(f.rounds.drain),
                rawMqttJsBesideUplink: rounded(f.rounds.drainRaw),
                reopened: rounded(f.rounds.reopened),
                rawMqttJsBesideReopened: rounded(f.rounds.reopenedRaw),
              },
            },
            readBack: f.readBack && {
              wholePagesPerSecond: Math.round(f.readBack.rate),
              rowByRowPerSecond: Math.round(f.readBack.base),
              ratio: ratio3(f.readBack.ratio),
              runs: {
                wholePages: rounded(f.rounds.readBack),
                rowByRow: rounded(f.rounds.readBackByRow),
              },
            },
            bytesOnDiskPerMessage: Math.round(f.perMessage),
          },
        ]),
      ),
      targets: targets.map((t) => ({
        ...t,
        ratio: ratio3(t.ratio),
        spread: t.spread.map(ratio3),
        cpuRatio: ratio3(t.cpuRatio),
      })),
    }
    writeFileSync(values.json, `${JSON.stringify(record, null, 2)}\n`)
    console.log(`wrote ${values.json}`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}

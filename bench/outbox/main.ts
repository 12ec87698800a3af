/**
 * pnpm bench:outbox [--json FILE] [--messages N] [--drain N] [--concurrency N] [--rounds N]
 *
 * Figures for the SQLite outbox, each beside its ceiling, measured in the same run on the same
 * disk. The script builds the packages first and measures the build, what users import. Sides
 * take turns going first round by round; rates are medians of the rounds, ratios medians of
 * each round's ratio, so a neighbour's burst of load on a shared machine lands on both sides.
 * - enqueue: 200-byte messages into sqliteOutbox with durability full and normal, N publishes
 *   always outstanding so group commit has company, against raw better-sqlite3 inserting the
 *   same rows into the same table, 10 000 to a transaction, WAL and synchronous FULL;
 * - drain: a filled outbox drained by the Uplink client to a testkit broker against raw MQTT.js
 *   publishing QoS 1 with the same in-flight window to the same kind of broker: the backlog as
 *   one process stored it, the same after a restart (read back from disk), and the client with
 *   its in-memory outbox, to tell the client's share from SQLite's;
 * - bytes on disk per stored message.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createUplink, DEFAULTS, memoryOutbox, type OutboxInput } from '@uplink/client'
import { sqliteOutbox } from '@uplink/store-sqlite'
import { startBroker } from '@uplink/testkit'
import mqtt from 'mqtt'

const { values } = parseArgs({
  options: {
    json: { type: 'string' },
    messages: { type: 'string', default: '200000' },
    drain: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '5' },
  },
})
const N = Number(values.messages)
const DRAIN_N = Number(values.drain)
const CONCURRENCY = Number(values.concurrency)
const ROUNDS = Number(values.rounds)
const PAYLOAD = 200
const WINDOW = DEFAULTS.inflightWindow
const RAW_TRANSACTION = 10_000
// Every run stops at this, done or not, so a slow disk or a stuck drain cannot hang the bench;
// a run cut short reports the messages it did manage.
const TIME_LIMIT_MS = 60_000

const dir = mkdtempSync(join(tmpdir(), 'uplink-bench-outbox-'))
const payload = new Uint8Array(PAYLOAD).fill(42)
const topics = Array.from({ length: 16 }, (_, i) => `telemetry/gw-bench/${i}`)
const input = (i: number): OutboxInput => ({
  topic: topics[i % 16] as string,
  payload,
  qos: 1,
  retain: false,
  priority: 'telemetry',
})

interface Run {
  messages: number
  seconds: number
  perSecond: number
}
const run = (messages: number, ms: number): Run => ({
  messages,
  seconds: ms / 1000,
  perSecond: messages / (ms / 1000),
})

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
async function enqueueRun(durability: 'full' | 'normal') {
  const path = freshPath(`enqueue-${durability}`)
  const box = sqliteOutbox({ path, durability, maxMessages: N + 1, maxBytes: 2 ** 40 })
  const t0 = performance.now()
  let started = 0
  let done = 0
  await new Promise<void>((resolve, reject) => {
    const next = (): void => {
      if (started >= N || performance.now() - t0 > TIME_LIMIT_MS) {
        if (done === started) resolve()
        return
      }
      const i = started++
      box.enqueue(input(i), Date.now()).then(() => {
        done++
        next()
      }, reject)
    }
    for (let i = 0; i < CONCURRENCY; i++) next()
  })
  const result = run(done, performance.now() - t0)
  const { transactions } = box.info()
  await box.close()
  // Closed: the WAL is checkpointed into the file and removed, so this is the stored size.
  return { ...result, transactions, bytesPerMessage: fileBytes(path) / done }
}

/** The ceiling: the same rows into the same table, straight through better-sqlite3. */
function rawInsertRun(): Run {
  const Database = createRequire(import.meta.url)('better-sqlite3')
  const db = new Database(freshPath('raw'))
  db.pragma('locking_mode = EXCLUSIVE')
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.exec(`CREATE TABLE messages (id INTEGER PRIMARY KEY, priority INTEGER NOT NULL,
    topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,
    enqueued_at INTEGER NOT NULL, expires_at INTEGER, size INTEGER NOT NULL);
    CREATE INDEX messages_alarms ON messages (id) WHERE priority = 0;`)
  const insert = db.prepare('INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const m = input(i)
      insert.run(i + 1, 1, m.topic, m.payload, 1, 0, Date.now(), null, m.topic.length + PAYLOAD)
    }
  })
  const t0 = performance.now()
  let done = 0
  while (done < N && performance.now() - t0 < TIME_LIMIT_MS) {
    const to = Math.min(N, done + RAW_TRANSACTION)
    batch(done, to)
    done = to
  }
  const result = run(done, performance.now() - t0)
  db.close()
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
async function uplinkDrain(round: number, kind: DrainKind): Promise<Run & { received: number }> {
  const path = freshPath('drain')
  let box =
    kind === 'memory'
      ? memoryOutbox({ maxMessages: DRAIN_N, maxBytes: 2 ** 40 })
      : sqliteOutbox({ path })
  await Promise.all(Array.from({ length: DRAIN_N }, (_, i) => box.enqueue(input(i), Date.now())))
  if (kind === 'sqlite-reopened') {
    // A restart with a backlog: nothing is in memory, every message is read back from the file.
    await box.close()
    box = sqliteOutbox({ path })
  }
  const broker = await startBroker()
  const uplink = createUplink({
    clientId: `bench-uplink-${kind}-${round}`,
    endpoints: [broker.url],
    outbox: box,
    inflightWindow: WINDOW,
  })
  const t0 = performance.now()
  await uplink.start()
  // The outbox's own count: the client's stats() builds a whole report, too dear to poll.
  await until(() => box.stats().messages === 0, t0)
  const result = run(DRAIN_N - box.stats().messages, performance.now() - t0)
  const received = broker.publishes.length
  await uplink.stop()
  await broker.stop()
  return { ...result, received }
}

/** The ceiling: MQTT.js itself, WINDOW QoS 1 publishes awaiting PUBACK at any time. */
async function rawMqttDrain(round: number): Promise<Run & { received: number }> {
  const broker = await startBroker()
  const t0 = performance.now()
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
        await client.publishAsync(m.topic, Buffer.from(m.payload), { qos: 1 })
        acked++
      }
    }),
  )
  const result = run(acked, performance.now() - t0)
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

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}
const fmt = (n: number) => Math.round(n).toLocaleString('en-US')

try {
  const rounds = {
    full: [] as Awaited<ReturnType<typeof enqueueRun>>[],
    normal: [] as Awaited<ReturnType<typeof enqueueRun>>[],
    raw: [] as Run[],
    drainUplink: [] as Drained[],
    drainReopened: [] as Drained[],
    drainMemory: [] as Drained[],
    drainRaw: [] as Drained[],
  }
  // Round -1 warms up: the first side to publish through MQTT.js and aedes would otherwise pay
  // for their compilation. Its figures are thrown away.
  for (let r = -1; r < ROUNDS; r++) {
    const keep = <T>(list: T[], x: T) => {
      if (r >= 0) list.push(x)
    }
    // Rotate which side goes first, so neither always gets the warmer disk cache or the quieter
    // moment.
    const enqueueSides = [
      async () => keep(rounds.full, await enqueueRun('full')),
      async () => keep(rounds.normal, await enqueueRun('normal')),
      async () => keep(rounds.raw, rawInsertRun()),
    ]
    for (const side of rotate(enqueueSides, r + 1)) await side()
    const drainSides = [
      async () => keep(rounds.drainRaw, await rawMqttDrain(r)),
      async () => keep(rounds.drainUplink, await uplinkDrain(r, 'sqlite')),
      async () => keep(rounds.drainReopened, await uplinkDrain(r, 'sqlite-reopened')),
      async () => keep(rounds.drainMemory, await uplinkDrain(r, 'memory')),
    ]
    for (const side of rotate(drainSides, r + 1)) await side()
    process.stderr.write(r < 0 ? 'warm-up done\n' : `round ${r + 1}/${ROUNDS} done\n`)
  }
  const rate = (runs: Run[]) => median(runs.map((x) => x.perSecond))
  // Each round's two sides ran back to back: their ratio is what load from neighbours disturbs
  // least, so the ratio reported is the median of the rounds' ratios.
  const ratio = (runs: Run[], base: Run[]) =>
    median(runs.map((x, i) => x.perSecond / (base[i] as Run).perSecond))
  const figures = {
    full: { rate: rate(rounds.full), ratio: ratio(rounds.full, rounds.raw) },
    normal: { rate: rate(rounds.normal), ratio: ratio(rounds.normal, rounds.raw) },
    raw: rate(rounds.raw),
    drain: { rate: rate(rounds.drainUplink), ratio: ratio(rounds.drainUplink, rounds.drainRaw) },
    reopened: {
      rate: rate(rounds.drainReopened),
      ratio: ratio(rounds.drainReopened, rounds.drainRaw),
    },
    memory: { rate: rate(rounds.drainMemory), ratio: ratio(rounds.drainMemory, rounds.drainRaw) },
    drainRaw: rate(rounds.drainRaw),
  }
  const perMessage = median(rounds.full.map((x) => x.bytesPerMessage))
  const transactions = median(rounds.full.map((x) => x.transactions))
  const lost = [...rounds.drainUplink, ...rounds.drainReopened, ...rounds.drainMemory].filter(
    (x) => x.received < x.messages,
  ).length

  const rawSql = `${fmt(figures.raw)} msg/s raw`
  const rawMqtt = `${fmt(figures.drainRaw)} msg/s MQTT.js`
  const rows: Array<[string, string, string, string]> = [
    [
      'enqueue, durability full (group commit)',
      `${fmt(figures.full.rate)} msg/s`,
      rawSql,
      figures.full.ratio.toFixed(2),
    ],
    [
      'enqueue, durability normal (group commit)',
      `${fmt(figures.normal.rate)} msg/s`,
      rawSql,
      figures.normal.ratio.toFixed(2),
    ],
    [
      `drain to a broker, QoS 1, window ${WINDOW}`,
      `${fmt(figures.drain.rate)} msg/s`,
      rawMqtt,
      figures.drain.ratio.toFixed(2),
    ],
    [
      '  after a restart (all read from disk)',
      `${fmt(figures.reopened.rate)} msg/s`,
      rawMqtt,
      figures.reopened.ratio.toFixed(2),
    ],
    [
      '  the same client, in-memory outbox',
      `${fmt(figures.memory.rate)} msg/s`,
      rawMqtt,
      figures.memory.ratio.toFixed(2),
    ],
    [`on disk per stored message (${PAYLOAD} B payload)`, `${perMessage.toFixed(0)} B`, '', ''],
  ]
  console.log(
    `\nSQLite outbox (built packages): ${fmt(N)} enqueues of ${PAYLOAD} B with ${fmt(CONCURRENCY)} outstanding, ${fmt(DRAIN_N)} drained; rates are medians of ${ROUNDS} rounds, ratios medians of the rounds' ratios; ${process.platform} ${process.arch}, Node ${process.versions.node}\n`,
  )
  console.log(
    `${'figure'.padEnd(44)} ${'Uplink'.padStart(16)} ${'baseline'.padStart(24)} ${'ratio'.padStart(6)}`,
  )
  for (const [name, a, b, r] of rows) {
    console.log(`${name.padEnd(44)} ${a.padStart(16)} ${b.padStart(24)} ${r.padStart(6)}`)
  }
  console.log(
    `\ngroup commit: ${fmt(N)} messages in ${fmt(transactions)} transactions (full); raw: ${fmt(RAW_TRANSACTION)} rows a transaction`,
  )
  if (lost > 0) console.log(`WARNING: ${lost} drain run(s) reached the broker short`)

  if (values.json) {
    const perSecond = (runs: Run[]) => runs.map((x) => Math.round(x.perSecond))
    const ratio3 = (x: number) => Number(x.toFixed(3))
    const record = {
      benchmark: 'outbox',
      platform: `${process.platform} ${process.arch}`,
      node: process.versions.node,
      payloadBytes: PAYLOAD,
      rounds: ROUNDS,
      enqueue: {
        messages: N,
        concurrency: CONCURRENCY,
        fullPerSecond: Math.round(figures.full.rate),
        normalPerSecond: Math.round(figures.normal.rate),
        rawBetterSqlite3PerSecond: Math.round(figures.raw),
        rawRowsPerTransaction: RAW_TRANSACTION,
        ratioFull: ratio3(figures.full.ratio),
        ratioNormal: ratio3(figures.normal.ratio),
        transactionsFull: transactions,
        runs: {
          full: perSecond(rounds.full),
          normal: perSecond(rounds.normal),
          raw: perSecond(rounds.raw),
        },
      },
      drain: {
        messages: DRAIN_N,
        window: WINDOW,
        uplinkPerSecond: Math.round(figures.drain.rate),
        rawMqttJsPerSecond: Math.round(figures.drainRaw),
        ratio: ratio3(figures.drain.ratio),
        reopenedPerSecond: Math.round(figures.reopened.rate),
        reopenedRatio: ratio3(figures.reopened.ratio),
        memoryOutboxPerSecond: Math.round(figures.memory.rate),
        memoryOutboxRatio: ratio3(figures.memory.ratio),
        runs: {
          uplink: perSecond(rounds.drainUplink),
          reopened: perSecond(rounds.drainReopened),
          memoryOutbox: perSecond(rounds.drainMemory),
          rawMqttJs: perSecond(rounds.drainRaw),
        },
      },
      bytesOnDiskPerMessage: Math.round(perMessage),
    }
    writeFileSync(values.json, `${JSON.stringify(record, null, 2)}\n`)
    console.log(`wrote ${values.json}`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}

/**
 * pnpm bench:outbox [--json FILE] [--messages N] [--drain N] [--concurrency N] [--rounds N]
 *
 * Figures for the SQLite outbox, each beside its ceiling, measured in the same run on the same
 * disk. Sides are interleaved round by round and each figure is the median of the rounds, so a
 * neighbour's burst of load on a shared machine lands on both sides rather than on one.
 * - enqueue: 200-byte messages into sqliteOutbox with durability full and normal, N publishes
 *   always outstanding so group commit has company, against raw better-sqlite3 inserting the
 *   same rows into the same table, 10 000 to a transaction, WAL and synchronous FULL;
 * - drain: a filled outbox drained by the Uplink client to a testkit broker against raw MQTT.js
 *   publishing QoS 1 with the same in-flight window to the same kind of broker, and the client
 *   with its in-memory outbox, to tell the client's share from SQLite's;
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
    rounds: { type: 'string', default: '3' },
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
 * A filled outbox drained by the client: timed from start() to the last acknowledgement. With
 * the in-memory outbox too, which tells the client's own cost apart from SQLite's.
 */
async function uplinkDrain(
  round: number,
  kind: 'sqlite' | 'memory',
): Promise<Run & { received: number }> {
  const box =
    kind === 'sqlite'
      ? sqliteOutbox({ path: freshPath('drain') })
      : memoryOutbox({ maxMessages: DRAIN_N, maxBytes: 2 ** 40 })
  await Promise.all(Array.from({ length: DRAIN_N }, (_, i) => box.enqueue(input(i), Date.now())))
  const broker = await startBroker()
  const uplink = createUplink({
    clientId: `bench-uplink-${kind}-${round}`,
    endpoints: [broker.url],
    outbox: box,
    inflightWindow: WINDOW,
  })
  const t0 = performance.now()
  await uplink.start()
  await until(() => uplink.stats().outbox.messages === 0, t0)
  const result = run(DRAIN_N - uplink.stats().outbox.messages, performance.now() - t0)
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
    drainUplink: [] as Array<Run & { received: number }>,
    drainMemory: [] as Array<Run & { received: number }>,
    drainRaw: [] as Array<Run & { received: number }>,
  }
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate which side goes first, so neither always gets the warmer disk cache.
    const enqueueSides = [
      async () => rounds.full.push(await enqueueRun('full')),
      async () => rounds.normal.push(await enqueueRun('normal')),
      async () => rounds.raw.push(rawInsertRun()),
    ]
    for (const side of r % 2 ? enqueueSides.reverse() : enqueueSides) await side()
    const drainSides = [
      async () => rounds.drainRaw.push(await rawMqttDrain(r)),
      async () => rounds.drainUplink.push(await uplinkDrain(r, 'sqlite')),
      async () => rounds.drainMemory.push(await uplinkDrain(r, 'memory')),
    ]
    for (const side of r % 2 ? drainSides.reverse() : drainSides) await side()
    process.stderr.write(`round ${r + 1}/${ROUNDS} done\n`)
  }
  const rate = (runs: Run[]) => median(runs.map((x) => x.perSecond))
  const full = rate(rounds.full)
  const normal = rate(rounds.normal)
  const raw = rate(rounds.raw)
  const drainUplink = rate(rounds.drainUplink)
  const drainRaw = rate(rounds.drainRaw)
  const drainMemory = rate(rounds.drainMemory)
  const perMessage = median(rounds.full.map((x) => x.bytesPerMessage))
  const transactions = median(rounds.full.map((x) => x.transactions))
  const lost = [...rounds.drainUplink, ...rounds.drainMemory].filter(
    (x) => x.received < x.messages,
  ).length

  const rows: Array<[string, string, string, string]> = [
    [
      'enqueue, durability full (group commit)',
      `${fmt(full)} msg/s`,
      `${fmt(raw)} msg/s raw`,
      (full / raw).toFixed(2),
    ],
    [
      'enqueue, durability normal (group commit)',
      `${fmt(normal)} msg/s`,
      `${fmt(raw)} msg/s raw`,
      (normal / raw).toFixed(2),
    ],
    [
      `drain to a broker, QoS 1, window ${WINDOW}`,
      `${fmt(drainUplink)} msg/s`,
      `${fmt(drainRaw)} msg/s MQTT.js`,
      (drainUplink / drainRaw).toFixed(2),
    ],
    [
      '  the same client, in-memory outbox',
      `${fmt(drainMemory)} msg/s`,
      `${fmt(drainRaw)} msg/s MQTT.js`,
      (drainMemory / drainRaw).toFixed(2),
    ],
    [`on disk per stored message (${PAYLOAD} B payload)`, `${perMessage.toFixed(0)} B`, '', ''],
  ]
  console.log(
    `\nSQLite outbox: ${fmt(N)} enqueues of ${PAYLOAD} B with ${fmt(CONCURRENCY)} outstanding, ${fmt(DRAIN_N)} drained; median of ${ROUNDS} rounds; ${process.platform} ${process.arch}, Node ${process.versions.node}\n`,
  )
  console.log(
    `${'figure'.padEnd(44)} ${'Uplink'.padStart(16)} ${'baseline'.padStart(24)} ${'ratio'.padStart(6)}`,
  )
  for (const [name, a, b, ratio] of rows) {
    console.log(`${name.padEnd(44)} ${a.padStart(16)} ${b.padStart(24)} ${ratio.padStart(6)}`)
  }
  console.log(
    `\ngroup commit: ${fmt(N)} messages in ${fmt(transactions)} transactions (full); raw: ${fmt(RAW_TRANSACTION)} rows a transaction`,
  )
  if (lost > 0) console.log(`WARNING: ${lost} drain run(s) reached the broker short`)

  if (values.json) {
    const record = {
      benchmark: 'outbox',
      platform: `${process.platform} ${process.arch}`,
      node: process.versions.node,
      payloadBytes: PAYLOAD,
      rounds: ROUNDS,
      enqueue: {
        messages: N,
        concurrency: CONCURRENCY,
        fullPerSecond: Math.round(full),
        normalPerSecond: Math.round(normal),
        rawBetterSqlite3PerSecond: Math.round(raw),
        rawRowsPerTransaction: RAW_TRANSACTION,
        ratioFull: Number((full / raw).toFixed(3)),
        ratioNormal: Number((normal / raw).toFixed(3)),
        transactionsFull: transactions,
        runs: {
          full: rounds.full.map((x) => Math.round(x.perSecond)),
          normal: rounds.normal.map((x) => Math.round(x.perSecond)),
          raw: rounds.raw.map((x) => Math.round(x.perSecond)),
        },
      },
      drain: {
        messages: DRAIN_N,
        window: WINDOW,
        uplinkPerSecond: Math.round(drainUplink),
        rawMqttJsPerSecond: Math.round(drainRaw),
        ratio: Number((drainUplink / drainRaw).toFixed(3)),
        memoryOutboxPerSecond: Math.round(drainMemory),
        memoryOutboxRatio: Number((drainMemory / drainRaw).toFixed(3)),
        runs: {
          uplink: rounds.drainUplink.map((x) => Math.round(x.perSecond)),
          memoryOutbox: rounds.drainMemory.map((x) => Math.round(x.perSecond)),
          rawMqttJs: rounds.drainRaw.map((x) => Math.round(x.perSecond)),
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

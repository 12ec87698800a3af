/**
 * pnpm bench:outbox [--json FILE] [--messages N]
 *
 * Figures for the SQLite outbox, each beside its ceiling in the same run on the same disk:
 * - enqueue: 200-byte messages through sqliteOutbox (durability full and normal, group commit)
 *   against raw better-sqlite3 inserting the same rows in large transactions;
 * - drain: a full outbox drained by the Uplink client to a testkit broker against raw MQTT.js
 *   publishing QoS 1 with the same in-flight window to the same broker;
 * - bytes on disk per stored message.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createUplink, DEFAULTS, type OutboxInput } from '@uplink/client'
import { sqliteOutbox } from '@uplink/store-sqlite'
import { startBroker, waitFor } from '@uplink/testkit'
import mqtt from 'mqtt'

const { values } = parseArgs({
  options: {
    json: { type: 'string' },
    messages: { type: 'string', default: '200000' },
    drain: { type: 'string', default: '20000' },
  },
})
const N = Number(values.messages)
const DRAIN_N = Number(values.drain)
const PAYLOAD = 200
const BURST = 1_000
const WINDOW = DEFAULTS.inflightWindow
// Every loop is bounded in time as well as count, so a slow disk cannot hang the benchmark.
const TIME_LIMIT_MS = 60_000

const dir = mkdtempSync(join(tmpdir(), 'uplink-bench-outbox-'))
const payload = new Uint8Array(PAYLOAD).fill(42)
const input = (i: number): OutboxInput => ({
  topic: `telemetry/gw-bench/${i % 16}`,
  payload,
  qos: 1,
  retain: false,
  priority: 'telemetry',
})

function fileBytes(path: string): number {
  let total = 0
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      total += statSync(path + suffix).size
    } catch {}
  }
  return total
}

/** Publishes arrive in bursts of BURST (as from many sensors at once) and share commits. */
async function enqueueRun(durability: 'full' | 'normal') {
  const path = join(dir, `enqueue-${durability}.db`)
  const box = sqliteOutbox({ path, durability, maxMessages: N + 1 })
  const t0 = performance.now()
  let done = 0
  while (done < N && performance.now() - t0 < TIME_LIMIT_MS) {
    const burst = Math.min(BURST, N - done)
    await Promise.all(
      Array.from({ length: burst }, (_, i) => box.enqueue(input(done + i), Date.now())),
    )
    done += burst
  }
  const seconds = (performance.now() - t0) / 1000
  const { transactions } = box.info()
  await box.close()
  return { messages: done, perSecond: done / seconds, transactions, bytesOnDisk: fileBytes(path) }
}

/** The ceiling: the same rows, straight into better-sqlite3, 10 000 to a transaction. */
function rawInsertRun() {
  const Database = createRequire(import.meta.url)('better-sqlite3')
  const path = join(dir, 'raw.db')
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.exec(
    'CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, priority INTEGER, topic TEXT, payload BLOB, qos INTEGER, retain INTEGER, enqueued_at INTEGER, expires_at INTEGER, size INTEGER)',
  )
  const insert = db.prepare(
    'INSERT INTO messages (priority, topic, payload, qos, retain, enqueued_at, expires_at, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  )
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const m = input(i)
      insert.run(1, m.topic, m.payload, 1, 0, Date.now(), null, m.topic.length + PAYLOAD)
    }
  })
  const t0 = performance.now()
  let done = 0
  while (done < N && performance.now() - t0 < TIME_LIMIT_MS) {
    const to = Math.min(N, done + 10_000)
    batch(done, to)
    done = to
  }
  const seconds = (performance.now() - t0) / 1000
  db.close()
  return { messages: done, perSecond: done / seconds }
}

async function uplinkDrain() {
  const path = join(dir, 'drain.db')
  const box = sqliteOutbox({ path })
  await Promise.all(Array.from({ length: DRAIN_N }, (_, i) => box.enqueue(input(i), Date.now())))
  const broker = await startBroker()
  const uplink = createUplink({ clientId: 'bench-uplink', endpoints: [broker.url], outbox: box })
  const t0 = performance.now()
  await uplink.start()
  await waitFor(() => uplink.stats().outbox.messages === 0, 'the outbox drained', TIME_LIMIT_MS)
  const seconds = (performance.now() - t0) / 1000
  await uplink.stop()
  await broker.stop()
  return { messages: DRAIN_N, perSecond: DRAIN_N / seconds, received: broker.publishes.length }
}

async function rawMqttDrain() {
  const broker = await startBroker()
  const client = await mqtt.connectAsync(broker.url, { clientId: 'bench-raw', reconnectPeriod: 0 })
  const t0 = performance.now()
  let next = 0
  // The same window as Uplink's drainer: WINDOW QoS 1 publishes awaiting PUBACK at once.
  await Promise.all(
    Array.from({ length: WINDOW }, async () => {
      while (next < DRAIN_N && performance.now() - t0 < TIME_LIMIT_MS) {
        const m = input(next++)
        await client.publishAsync(m.topic, Buffer.from(m.payload), { qos: 1 })
      }
    }),
  )
  const seconds = (performance.now() - t0) / 1000
  await client.endAsync()
  await broker.stop()
  return { messages: DRAIN_N, perSecond: DRAIN_N / seconds, received: broker.publishes.length }
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US')
try {
  const full = await enqueueRun('full')
  const normal = await enqueueRun('normal')
  const raw = rawInsertRun()
  const drainRaw = await rawMqttDrain()
  const drainUplink = await uplinkDrain()
  const perMessage = full.bytesOnDisk / full.messages

  const rows: Array<[string, string, string, string]> = [
    [
      'enqueue, durability full (group commit)',
      `${fmt(full.perSecond)} msg/s`,
      `${fmt(raw.perSecond)} msg/s raw`,
      (full.perSecond / raw.perSecond).toFixed(2),
    ],
    [
      'enqueue, durability normal',
      `${fmt(normal.perSecond)} msg/s`,
      `${fmt(raw.perSecond)} msg/s raw`,
      (normal.perSecond / raw.perSecond).toFixed(2),
    ],
    [
      'drain to a broker, QoS 1, window ' + WINDOW,
      `${fmt(drainUplink.perSecond)} msg/s`,
      `${fmt(drainRaw.perSecond)} msg/s MQTT.js`,
      (drainUplink.perSecond / drainRaw.perSecond).toFixed(2),
    ],
    ['on disk per stored message (200 B payload)', `${perMessage.toFixed(0)} B`, '', ''],
  ]
  console.log(
    `\nSQLite outbox (${N.toLocaleString('en-US')} enqueues of ${PAYLOAD} B, ${DRAIN_N.toLocaleString('en-US')} drained; ${process.platform}, Node ${process.versions.node})\n`,
  )
  console.log(
    `${'figure'.padEnd(44)} ${'Uplink'.padStart(16)} ${'baseline'.padStart(24)} ${'ratio'.padStart(6)}`,
  )
  for (const [name, a, b, r] of rows)
    console.log(`${name.padEnd(44)} ${a.padStart(16)} ${b.padStart(24)} ${r.padStart(6)}`)
  console.log(
    `\ngroup commit: ${fmt(full.messages)} messages in ${fmt(full.transactions)} transactions (full)`,
  )

  if (values.json) {
    const record = {
      benchmark: 'outbox',
      payloadBytes: PAYLOAD,
      enqueue: {
        full: {
          perSecond: Math.round(full.perSecond),
          transactions: full.transactions,
          messages: full.messages,
        },
        normal: {
          perSecond: Math.round(normal.perSecond),
          transactions: normal.transactions,
          messages: normal.messages,
        },
        rawBetterSqlite3: { perSecond: Math.round(raw.perSecond), messages: raw.messages },
        ratioFull: full.perSecond / raw.perSecond,
        ratioNormal: normal.perSecond / raw.perSecond,
      },
      drain: {
        window: WINDOW,
        uplink: { perSecond: Math.round(drainUplink.perSecond), messages: DRAIN_N },
        rawMqttJs: { perSecond: Math.round(drainRaw.perSecond), messages: DRAIN_N },
        ratio: drainUplink.perSecond / drainRaw.perSecond,
      },
      bytesOnDiskPerMessage: Math.round(perMessage),
    }
    writeFileSync(values.json, `${JSON.stringify(record, null, 2)}\n`)
    console.log(`wrote ${values.json}`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}

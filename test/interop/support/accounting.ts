import type { Uplink } from '@uplink/client'
import { waitFor } from '@uplink/testkit'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'

/**
 * Exact accounting by sequence number: a device publishes numbered payloads, a subscriber on
 * each broker collects what arrives, and `account` says what was lost, sent twice or reordered.
 */

/** A subscriber on one broker, recording the sequence numbers that arrive on `topic`. */
export interface Collector {
  url: string
  seqs: number[]
  /** MQTT 5 message expiry intervals as delivered, by sequence number. */
  expiry: Map<number, number | undefined>
  stop(): Promise<void>
}

export async function collect(
  url: string,
  topic: string,
  options: IClientOptions = {},
): Promise<Collector> {
  const client: MqttClient = await mqtt.connectAsync(url, {
    clientId: `collector-${Math.random().toString(16).slice(2, 10)}`,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...options,
  })
  client.on('error', () => {})
  const seqs: number[] = []
  const expiry = new Map<number, number | undefined>()
  client.on('message', (t, payload, packet) => {
    if (t !== topic) return
    const seq = JSON.parse(payload.toString()).seq as number
    seqs.push(seq)
    expiry.set(seq, packet.properties?.messageExpiryInterval)
  })
  await client.subscribeAsync(topic, { qos: 1 })
  return { url, seqs, expiry, stop: () => client.endAsync(true).then(() => {}) }
}

/** Publishes `{ seq }` every `everyMs`; `accepted` holds the numbers whose publish() resolved. */
export function publishNumbered(
  uplink: Uplink,
  topic: string,
  options: { everyMs?: number; ttlSeconds?: number } = {},
) {
  const accepted: number[] = []
  let seq = 0
  const publishOne = () => {
    const n = seq++
    const extra = options.ttlSeconds === undefined ? {} : { ttlSeconds: options.ttlSeconds }
    return uplink.publish(topic, JSON.stringify({ seq: n }), { qos: 1, ...extra }).then(
      () => {
        accepted.push(n)
      },
      () => {},
    )
  }
  const timer = setInterval(publishOne, options.everyMs ?? 10)
  return {
    accepted,
    /** A burst of `count` at once (messages in flight when something happens). */
    burst: (count: number) => Promise.all(Array.from({ length: count }, publishOne)),
    stop: () => clearInterval(timer),
  }
}

export interface Accounting {
  /** Accepted by the device and delivered by no broker. */
  lost: number[]
  /** Deliveries beyond the first of each number, over all brokers. */
  duplicates: number
  /** First deliveries that came after a higher number on the same broker. */
  reordered: number
  /** Distinct numbers delivered per broker, in the order given. */
  perBroker: number[]
}

/**
 * `account`, once the brokers have had time to pass on what they acknowledged. A device's empty
 * outbox says every message was acknowledged, not delivered: Mosquitto acknowledges a PUBLISH
 * and queues the subscriber's copy behind that subscriber's 20 in flight, so right after a
 * backlog drains the subscriber can be a few behind (CI saw six, on a loaded machine). What is
 * still missing after `timeoutMs` is lost.
 */
export async function delivered(
  accepted: number[],
  collectors: Array<Pick<Collector, 'seqs'>>,
  timeoutMs = 5_000,
): Promise<Accounting> {
  const arrived = () => account(accepted, collectors).lost.length === 0
  // Not arrived in time: the accounting says what is missing, better than a timeout would.
  await waitFor(arrived, 'every accepted message at a subscriber', timeoutMs).catch(() => {})
  return account(accepted, collectors)
}

function account(accepted: number[], collectors: Array<Pick<Collector, 'seqs'>>): Accounting {
  const seen = new Set<number>()
  let deliveries = 0
  let reordered = 0
  const perBroker: number[] = []
  for (const { seqs } of collectors) {
    let highest = -1
    const here = new Set<number>()
    for (const seq of seqs) {
      deliveries++
      if (!here.has(seq) && !seen.has(seq) && seq < highest) reordered++
      here.add(seq)
      seen.add(seq)
      highest = Math.max(highest, seq)
    }
    perBroker.push(here.size)
  }
  return {
    lost: accepted.filter((n) => !seen.has(n)),
    duplicates: deliveries - seen.size,
    reordered,
    perBroker,
  }
}

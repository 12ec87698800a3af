import type { OutboxEntry, Priority, Qos } from '@uplink/client'

/** A stored message as the drain reads it: an array in COLUMNS order, cheaper than an object. */
export type Row = [
  id: number,
  priority: number,
  topic: string,
  payload: Uint8Array,
  qos: number,
  retain: number,
  enqueuedAt: number,
  expiresAt: number | null,
  size: number,
]

/** Where each column sits in a Row: `row[COL.size]`, not `row[8]`. */
export const COL = {
  id: 0,
  priority: 1,
  topic: 2,
  payload: 3,
  qos: 4,
  retain: 5,
  enqueuedAt: 6,
  expiresAt: 7,
  size: 8,
} as const

/** The table's columns in Row order. */
export const COLUMNS = 'id, priority, topic, payload, qos, retain, enqueued_at, expires_at, size'
export const WIDTH = 9

export const ALARM = 0
export const TELEMETRY = 1
export type PriorityCode = typeof ALARM | typeof TELEMETRY
export const PRIORITY: Record<Priority, PriorityCode> = { alarm: ALARM, telemetry: TELEMETRY }

export function toEntry(row: Row): OutboxEntry {
  const expiresAt = row[COL.expiresAt]
  return {
    id: row[COL.id],
    topic: row[COL.topic],
    payload: row[COL.payload],
    qos: row[COL.qos] as Qos,
    retain: row[COL.retain] === 1,
    priority: row[COL.priority] === ALARM ? 'alarm' : 'telemetry',
    enqueuedAt: row[COL.enqueuedAt],
    expiresAt: expiresAt ?? undefined,
  }
}

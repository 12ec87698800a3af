/**
 * Telemetry payloads carry the device and the sequence number, so that delivery is counted
 * exactly at the brokers: `<device index>:<seq>;` padded to the configured size.
 */
export const TOPIC_PREFIX = 'storm/'

export function deviceId(index: number): string {
  return `dev-${String(index).padStart(6, '0')}`
}

export function topicFor(index: number): string {
  return `${TOPIC_PREFIX}${deviceId(index)}`
}

export function makePayload(index: number, seq: number, size: number): Buffer {
  const head = `${index}:${seq};`
  return Buffer.from(head.length >= size ? head : head.padEnd(size, '.'))
}

/** [device index, seq] from a payload, or undefined for anything else. */
export function parsePayload(payload: Uint8Array): [number, number] | undefined {
  let index = 0
  let seq = 0
  let i = 0
  let digits = 0
  for (; i < payload.length && payload[i] !== 58; i++) {
    const c = (payload[i] as number) - 48
    if (c < 0 || c > 9) return undefined
    index = index * 10 + c
    digits++
  }
  if (digits === 0 || i >= payload.length) return undefined
  digits = 0
  for (i++; i < payload.length && payload[i] !== 59; i++) {
    const c = (payload[i] as number) - 48
    if (c < 0 || c > 9) return undefined
    seq = seq * 10 + c
    digits++
  }
  if (digits === 0 || i >= payload.length) return undefined
  return [index, seq]
}

/** The probe's client ids, kept apart from devices in the brokers' connect timelines. */
export const PROBE_PREFIX = 'probe-'

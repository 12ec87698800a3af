import { UplinkError } from './errors.js'

const MAX_TOPIC_BYTES = 65_535

/** A topic a message is published to: no wildcards, no NUL, 1 to 65 535 bytes of UTF-8. */
export function validateTopic(topic: unknown): string {
  if (typeof topic !== 'string' || topic.length === 0) {
    throw new UplinkError('INVALID_TOPIC', 'topic must be a non-empty string')
  }
  if (topic.includes('+') || topic.includes('#') || topic.includes('\u0000')) {
    throw new UplinkError('INVALID_TOPIC', `topic "${topic}" must not contain +, # or NUL`)
  }
  if (Buffer.byteLength(topic) > MAX_TOPIC_BYTES) {
    throw new UplinkError('INVALID_TOPIC', 'topic is longer than 65535 bytes')
  }
  return topic
}

/** A subscription filter: `+` and `#` only as whole levels, `#` only last. */
export function validateFilter(filter: unknown): string {
  if (typeof filter !== 'string' || filter.length === 0) {
    throw new UplinkError('INVALID_TOPIC', 'topic filter must be a non-empty string')
  }
  if (filter.includes('\u0000') || Buffer.byteLength(filter) > MAX_TOPIC_BYTES) {
    throw new UplinkError('INVALID_TOPIC', 'topic filter has NUL or is longer than 65535 bytes')
  }
  const levels = filter.split('/')
  levels.forEach((level, i) => {
    const wild = level.includes('+') || level.includes('#')
    if (wild && level.length !== 1) {
      throw new UplinkError(
        'INVALID_TOPIC',
        `topic filter "${filter}": a wildcard must fill its level`,
      )
    }
    if (level === '#' && i !== levels.length - 1) {
      throw new UplinkError('INVALID_TOPIC', `topic filter "${filter}": # must be the last level`)
    }
  })
  return filter
}

/** Whether `topic` matches `filter` under MQTT's rules ($-topics do not match leading wildcards). */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    const level = f[i]
    if (level === '#') return true
    if (i >= t.length) return false
    if (level !== '+' && level !== t[i]) return false
  }
  return f.length === t.length
}

export function toPayload(payload: unknown, maxBytes: number): Uint8Array {
  let bytes: Uint8Array
  if (typeof payload === 'string') bytes = Buffer.from(payload, 'utf8')
  else if (payload instanceof Uint8Array) bytes = payload
  else throw new UplinkError('INVALID_PAYLOAD', 'payload must be a string, Buffer or Uint8Array')
  if (bytes.byteLength > maxBytes) {
    throw new UplinkError(
      'INVALID_PAYLOAD',
      `payload is ${bytes.byteLength} bytes, above maxPayloadBytes (${maxBytes})`,
    )
  }
  return bytes
}

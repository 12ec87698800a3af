import { UplinkError } from './errors.js'

const MAX_TOPIC_BYTES = 65_535

/** The longest message expiry MQTT 5 can carry (a 32-bit count of seconds). */
export const MAX_TTL_SECONDS = 2 ** 32 - 1

/**
 * Characters no topic may hold. NUL and lone surrogates are not UTF-8 the spec allows (MQTT
 * 1.5.4); the C0 and C1 control characters (U+0001-U+001F, U+007F-U+009F) are ones it says
 * SHOULD NOT appear, and Mosquitto closes the link on them, so a message with one would block the
 * queue: refused here instead. With the `u` flag a surrogate pair is one code point, so only a
 * lone half matches.
 */
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udfff]/u

function checkCharacters(topic: string, what: string): void {
  const bad = FORBIDDEN.exec(topic)
  if (!bad) return
  const code = (bad[0].codePointAt(0) as number).toString(16).padStart(4, '0')
  throw new UplinkError(
    'INVALID_TOPIC',
    `${what} must not contain U+${code.toUpperCase()} (NUL, control characters and lone surrogates are refused)`,
  )
}

/**
 * A topic a message is published to: no wildcards, no NUL, control characters or lone
 * surrogates, 1 to 65 535 bytes of UTF-8, and not under `$SYS/` (the broker's own). Other `$`
 * topics are allowed: AWS IoT's `$aws/...` are published to by devices.
 */
export function validateTopic(topic: unknown): string {
  if (typeof topic !== 'string' || topic.length === 0) {
    throw new UplinkError('INVALID_TOPIC', 'topic must be a non-empty string')
  }
  checkCharacters(topic, 'topic')
  if (topic.includes('+') || topic.includes('#')) {
    throw new UplinkError('INVALID_TOPIC', `topic "${topic}" must not contain + or #`)
  }
  if (topic.startsWith('$SYS/') || topic === '$SYS') {
    throw new UplinkError('INVALID_TOPIC', `topic "${topic}": $SYS is the broker's own`)
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
  checkCharacters(filter, 'topic filter')
  if (Buffer.byteLength(filter) > MAX_TOPIC_BYTES) {
    throw new UplinkError('INVALID_TOPIC', 'topic filter is longer than 65535 bytes')
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
  const [first, group] = levels
  if (first === '$share' && (levels.length < 3 || !group || group === '+' || group === '#')) {
    throw new UplinkError(
      'INVALID_TOPIC',
      `topic filter "${filter}": a shared subscription is $share/{group}/{filter}, the group a name`,
    )
  }
  return filter
}

/**
 * The filter an MQTT 5 shared subscription, `$share/{group}/{filter}`, delivers topics for
 * (itself for any other filter).
 */
export function unshared(filter: string): string {
  if (!filter.startsWith('$share/')) return filter
  const end = filter.indexOf('/', '$share/'.length)
  return end < 0 ? filter : filter.slice(end + 1)
}

/** Whether `topic` matches `filter` under MQTT's rules ($-topics do not match leading wildcards). */
export function topicMatches(filter: string, topic: string): boolean {
  filter = unshared(filter)
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

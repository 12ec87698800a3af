/**
 * MQTT 5 reason codes (spec 2.4) by number, so that an error or event says "not authorized"
 * rather than 0x87. Codes below 0x80 are successes; only failures are listed.
 */
const NAMES: Readonly<Record<number, string>> = {
  0x80: 'unspecified error',
  0x81: 'malformed packet',
  0x82: 'protocol error',
  0x83: 'implementation specific error',
  0x84: 'unsupported protocol version',
  0x85: 'client identifier not valid',
  0x86: 'bad user name or password',
  0x87: 'not authorized',
  0x88: 'server unavailable',
  0x89: 'server busy',
  0x8a: 'banned',
  0x8b: 'server shutting down',
  0x8c: 'bad authentication method',
  0x8d: 'keep alive timeout',
  0x8e: 'session taken over',
  0x8f: 'topic filter invalid',
  0x90: 'topic name invalid',
  0x91: 'packet identifier in use',
  0x92: 'packet identifier not found',
  0x93: 'receive maximum exceeded',
  0x94: 'topic alias invalid',
  0x95: 'packet too large',
  0x96: 'message rate too high',
  0x97: 'quota exceeded',
  0x98: 'administrative action',
  0x99: 'payload format invalid',
  0x9a: 'retain not supported',
  0x9b: 'qos not supported',
  0x9c: 'use another server',
  0x9d: 'server moved',
  0x9e: 'shared subscriptions not supported',
  0x9f: 'connection rate exceeded',
  0xa0: 'maximum connect time',
  0xa1: 'subscription identifiers not supported',
  0xa2: 'wildcard subscriptions not supported',
}

/** The spec's name for a failure reason code; `reason code 0x..` for one the spec does not name. */
export function reasonName(code: number): string {
  return NAMES[code] ?? `reason code 0x${code.toString(16).padStart(2, '0')}`
}

/** Whether `code` is an MQTT 5 failure (0x80 and above). */
export function isFailureCode(code: unknown): code is number {
  return typeof code === 'number' && Number.isInteger(code) && code >= 0x80 && code <= 0xff
}

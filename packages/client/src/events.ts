import type { UplinkError } from './errors.js'
import type { DeliveryDropReason, DropReason, Priority } from './outbox.js'
import type { InboundMessage } from './transport.js'

export type ConnectionState =
  | 'idle'
  | 'resolving'
  | 'connecting'
  | 'connected'
  | 'migrating'
  | 'backing-off'
  | 'stopped'

export type FailoverReason =
  | 'connection-lost'
  | 'dns-changed'
  | 'concierge'
  | 'control'
  | 'server-redirect'
  | 'manual'

export interface FailoverEvent {
  /** Endpoint URL the device was on (never with credentials). */
  from: string
  to: string
  fromAddress: string | undefined
  toAddress: string
  reason: FailoverReason
  /** From the moment the move began (or the link was lost) to the new CONNACK. */
  durationMs: number
}

/** A DNS answer had addresses of one family while the other failed; the addresses were used. */
export interface DnsPartialEvent {
  host: string
  /** The DNS server that answered. */
  server: string | undefined
  /** The family that is missing from the answer. */
  family: 4 | 6
  /** Why it is missing: DNS_REFUSED, DNS_SERVFAIL, DNS_TIMEOUT, DNS_MALFORMED, … */
  error: UplinkError
}

/** Events, typed. Listening is optional: errors are reported, never thrown at the host process. */
export interface UplinkEvents {
  state: (e: { state: ConnectionState; previous: ConnectionState }) => void
  connect: (e: { endpoint: string; address: string; sessionPresent: boolean }) => void
  disconnect: (e: { endpoint: string; address: string; error: UplinkError }) => void
  reconnecting: (e: {
    attempt: number
    delayMs: number
    endpoint: string
    error: UplinkError
  }) => void
  failover: (e: FailoverEvent) => void
  message: (topic: string, payload: Buffer, message: InboundMessage) => void
  /**
   * A stored message discarded, never to be sent: `overflow` or `expired` (the outbox), `refused`
   * (the broker answered with an MQTT 5 failure reason code, given with its name) or
   * `undeliverable` (its link was closed under it `poisonAfter` times in a row).
   */
  drop: (e: {
    id: number
    topic: string
    priority: Priority
    reason: DropReason | DeliveryDropReason
    reasonCode?: number
    reasonName?: string
    error?: UplinkError
  }) => void
  'dns-fallback': (e: { host: string; error: UplinkError }) => void
  'dns-partial': (e: DnsPartialEvent) => void
  error: (err: UplinkError) => void
}

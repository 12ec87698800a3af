export { type BackoffPolicy, backoffDelay, type JitterMode } from './backoff.js'
export { createUplink, Uplink, type UplinkStats } from './client.js'
export { type Clock, ManualClock, type RandomSource, systemClock } from './clock.js'
export { CONCIERGE_DEFAULTS, type ConciergeOptions } from './concierge.js'
export type { Connect, Connection, ConnectParams, InboundMessage } from './connection.js'
export {
  createResolver,
  type PartialFailure,
  type Resolution,
  type ResolvedAddress,
  type Resolver,
  type ResolverOptions,
} from './dns.js'
export { type Endpoint, type EndpointInput, parseEndpoint, type TlsConfig } from './endpoints.js'
export {
  type AnyErrorDetails,
  type ErrorDetails,
  type ErrorDetailsOf,
  isUplinkError,
  UplinkError,
  type UplinkErrorCode,
} from './errors.js'
export type {
  ConnectionState,
  DnsPartialEvent,
  FailoverEvent,
  FailoverReason,
  UplinkEvents,
} from './events.js'
export { entrySize, type MemoryOutboxOptions, memoryOutbox } from './memory-outbox.js'
/** For outbox implementations: refuse unknown option keys the way createUplink does. */
export { checkKeys, type KeyTree } from './option-keys.js'
export {
  DEFAULTS,
  type PresenceOptions,
  type PublishOptions,
  type UplinkOptions,
} from './options.js'
export type {
  DeliveryDropReason,
  DropReason,
  Outbox,
  OutboxEntry,
  OutboxInput,
  OutboxListener,
  OutboxStats,
  Priority,
  Qos,
} from './outbox.js'
export type { MessageHandler } from './subscriptions.js'
export { topicMatches, unshared, validateFilter, validateTopic } from './topics.js'

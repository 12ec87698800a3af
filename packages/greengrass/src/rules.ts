import { topicMatches, unshared, validateFilter, validateTopic } from '@uplink/client'

/**
 * Topic rules: where a local message goes in the cloud, and where a cloud command goes locally.
 * A template may use {thingName}, {region} and {clientId} (fixed at configuration time) and
 * {topic} (the whole incoming topic) and {suffix} (the levels a trailing `#` matched).
 */

export interface ForwardRule {
  localTopic: string
  cloudTopic: string
  qos: 0 | 1 | 2
  priority: 'alarm' | 'telemetry'
  /** 0: never expires. */
  ttlSeconds: number
}

export interface CommandRule {
  cloudTopic: string
  localTopic: string
  qos: 0 | 1 | 2
}

export type FixedVars = { thingName: string; region: string; clientId: string }

export function expandFixed(template: string, vars: FixedVars): string {
  return template
    .replaceAll('{thingName}', vars.thingName)
    .replaceAll('{region}', vars.region)
    .replaceAll('{clientId}', vars.clientId)
}

/** The levels of `topic` that a trailing `#` of `filter` matched ('' when it ends otherwise). */
export function suffixOf(filter: string, topic: string): string {
  filter = unshared(filter)
  if (filter !== '#' && !filter.endsWith('/#')) return ''
  const fixed = filter.split('/').length - 1
  return topic.split('/').slice(fixed).join('/')
}

export function expandTopic(template: string, filter: string, topic: string): string {
  return template.replaceAll('{suffix}', suffixOf(filter, topic)).replaceAll('{topic}', topic)
}

/** Throws INVALID_TOPIC unless the filter is valid and the template can make a valid topic. */
export function checkRule(filter: string, template: string): void {
  validateFilter(filter)
  const sample = unshared(filter).replace(/#$/, 'a').replaceAll('+', 'a')
  validateTopic(expandTopic(template, filter, sample))
}

/** The first rule whose filter matches wins, so a specific rule goes before a catch-all. */
export function firstMatch<R>(
  rules: readonly R[],
  topic: string,
  filterOf: (rule: R) => string,
): R | undefined {
  return rules.find((r) => topicMatches(filterOf(r), topic))
}
